import numpy as np
import pytest

from robopolicy.sim import TabletopEnv, load_init_states, make_expert, run_expert_episode
from robopolicy.sim.spec_expert import SpecExpert


@pytest.fixture(scope="module")
def env() -> TabletopEnv:
    e = TabletopEnv(image_size=64)
    yield e
    e.close()


@pytest.fixture(scope="module")
def init_states(env: TabletopEnv) -> np.ndarray:
    return load_init_states("cube_on_plate", env)


def test_attributes(env: TabletopEnv) -> None:
    assert env.action_dim == 7 and env.state_dim == 9
    assert "cube" in env.instruction
    assert env.max_steps == env.spec.max_steps


def test_observation_shapes_and_content(env: TabletopEnv, init_states: np.ndarray) -> None:
    obs, info = env.reset(init_state=init_states[0])
    assert set(obs) == {"agentview", "wrist", "state"}
    for cam in ("agentview", "wrist"):
        img = obs[cam]
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8
        assert img.std() > 10, f"{cam} looks blank"
    assert obs["state"].shape == (9,) and obs["state"].dtype == np.float32
    assert not info["success"]
    # The red cube must be visible in the front camera.
    red = (obs["agentview"][..., 0] > 150) & (obs["agentview"][..., 1] < 80)
    assert red.sum() >= 3
    # Upright: the table (warm, bright) fills the bottom rows of the front camera, not the top.
    assert obs["agentview"][-8:].mean() > obs["agentview"][:4].mean()


def test_step_api(env: TabletopEnv) -> None:
    env.reset(seed=3)
    _, reward, terminated, truncated, info = env.step(np.zeros(7))
    assert reward == 0.0 and not terminated and not truncated
    assert info["sim_error"] is None
    assert set(info) == {"success", "On(cube, plate)", "sim_error", "failure_reason"}
    assert info["failure_reason"] == "goal On(cube, plate) not met: cube never grasped"


def test_failure_reason_follows_the_cube(init_states: np.ndarray) -> None:
    e = TabletopEnv(render=False)
    e.reset(init_state=init_states[0])
    expert = make_expert(e)
    expert.reset()
    reasons = []
    for _ in range(e.max_steps):
        _, _, terminated, _, info = e.step(expert.act())
        reasons.append(info["failure_reason"])
        if terminated:
            break
    assert reasons[0] == "goal On(cube, plate) not met: cube never grasped"
    assert "goal On(cube, plate) not met: cube still held" in reasons  # while carried
    assert reasons[-1] is None and info["success"] and info["On(cube, plate)"]


def test_layouts_keep_the_objects_apart() -> None:
    e = TabletopEnv(render=False)
    cube, plate = e.scene_task.handles["cube"], e.scene_task.handles["plate"]
    gaps = []
    for seed in range(40):
        e.sample_init_state(seed)
        gaps.append(np.linalg.norm(e.data.xpos[cube.body][:2] - e.data.xpos[plate.body][:2]))
    # min_separation = 0.17 m in the spec, more than the clearance radii alone ask for (0.129 m).
    assert min(gaps) >= 0.17 - 1e-3


def test_reset_with_seed_matches_sample_init_state(env: TabletopEnv) -> None:
    state = env.sample_init_state(7)
    env.reset(seed=7)
    np.testing.assert_array_equal(env.get_state(), state)


def test_determinism(init_states: np.ndarray) -> None:
    e = TabletopEnv(render=False)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(15, 7))
    finals = []
    for _ in range(2):
        e.reset(init_state=init_states[1])
        for a in actions:
            e.step(a)
        finals.append(e.data.qpos.copy())
    np.testing.assert_array_equal(finals[0], finals[1])


def test_fixed_states_differ_from_collection_seeds(env: TabletopEnv, init_states: np.ndarray) -> None:
    e = TabletopEnv(render=False)
    assert init_states.shape == (50, e.state_size)
    collection = np.stack([e.sample_init_state(s) for s in range(100)])
    qpos = slice(0, e.model.nq)
    dist = np.linalg.norm(init_states[:, None, qpos] - collection[None, :, qpos], axis=-1)
    assert dist.min() > 1e-3
    assert len({s.tobytes() for s in init_states}) == 50


@pytest.mark.parametrize("i", [0, 17, 42])
def test_expert_succeeds_on_fixed_states(init_states: np.ndarray, i: int) -> None:
    e = TabletopEnv(render=False)
    expert = make_expert(e)
    assert isinstance(expert, SpecExpert)
    ep = run_expert_episode(e, init_state=init_states[i], expert=expert)
    assert ep["success"], f"expert failed on fixed state {i}"
    assert 40 <= ep["num_steps"] <= 70  # the old cube-on-plate script took 45-60 steps
    assert ep["actions"].shape == (ep["num_steps"], 7)
    assert np.all(np.abs(ep["actions"]) <= 1.0)


def test_expert_noise_records_clean_actions(init_states: np.ndarray) -> None:
    e = TabletopEnv(render=False)
    ep = run_expert_episode(e, init_state=init_states[3], noise_std=0.1, noise_seed=0)
    assert not np.allclose(ep["actions"], ep["executed_actions"])


def test_stale_init_states_raise(tmp_path, monkeypatch) -> None:
    from robopolicy.sim import init_states as mod

    src = mod.init_states_file("cube_on_plate")
    with np.load(src) as data:
        fields = {k: data[k] for k in data.files}
    fields["mjcf_sha256"] = np.asarray("0" * 64)
    bad = tmp_path / "init_states.npz"
    np.savez(bad, **fields)
    monkeypatch.setattr(mod, "init_states_file", lambda task: bad)
    with pytest.raises(mod.InitStatesError, match=r"robopolicy init-states cube_on_plate"):
        mod.load_init_states("cube_on_plate")


def test_unclosed_env_exits_cleanly() -> None:
    import subprocess
    import sys

    # With JAX loaded (as in any policy script) mujoco's own __del__ ran too late at interpreter exit.
    code = "import jax\nfrom robopolicy.sim import TabletopEnv\nenv = TabletopEnv(image_size=32)\nenv.reset(seed=0)\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Exception ignored" not in proc.stderr
