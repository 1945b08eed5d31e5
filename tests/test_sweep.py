"""Sweeps: grid planning, resume, faults recorded per episode, crashed and killed workers, blind order."""

import os
import textwrap
from dataclasses import replace

import pytest
from eval_fixtures import make_checkpoint

from robopolicy.errors import UserError
from robopolicy.eval.execution import ExecutionSettings
from robopolicy.eval.results_store import ResultsStore
from robopolicy.eval.sweep import plan_sweep, run_sweep
from robopolicy.eval.sweep_config import SweepConfig, load_sweep_toml

QUIET = lambda msg: None  # noqa: E731


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "run", steps=(1, 2))


def _config(run_dir, tmp_path, **kw):
    base = SweepConfig(
        db=str(tmp_path / "r.db"),
        run_dirs=(str(run_dir),),
        tasks=("cube_on_plate",),
        init_states="0:3",
        seeds=(0,),
        settings=(ExecutionSettings(name="chunk", max_steps=4),),
        workers=0,
    )
    return replace(base, **kw)


def test_grid_runs_once_and_resumes(run_dir, tmp_path):
    settings = (
        ExecutionSettings(name="chunk", max_steps=4),
        ExecutionSettings(name="ens", mode="temporal_ensemble", max_steps=4, settle_steps=2),
    )
    config = _config(run_dir, tmp_path, settings=settings, init_states="0:2", seeds=(0, 1), video_episodes=1)
    plan = run_sweep(config, QUIET)
    assert (plan.total, plan.skipped) == (2 * 2 * 2 * 2, 0)  # checkpoints × settings × states × seeds
    with ResultsStore(config.db) as store:
        eps = store.episodes()
        assert len(store.runs()) == 4 and len(eps) == 16
        assert all(e["steps"] == 4 and e["failure_reason"].startswith("timeout") for e in eps)
        videos = [e["video_path"] for e in eps if e["video_path"]]
        assert len(videos) == 4 * 2 and all(os.path.getsize(v) > 1000 for v in videos)
        stamps = {e["episode_id"]: e["updated_at"] for e in eps}
    again = run_sweep(config, QUIET)
    assert (again.skipped, again.units) == (16, [])
    with ResultsStore(config.db) as store:
        assert {e["episode_id"]: e["updated_at"] for e in store.episodes()} == stamps


def test_blind_order_is_shuffled_and_shares_initial_states(run_dir, tmp_path):
    config = _config(run_dir, tmp_path, episodes_per_unit=1, init_states="0:6")
    plain = [(u.policy, u.episodes) for u in plan_sweep(config).units]
    blind = [(u.policy, u.episodes) for u in plan_sweep(replace(config, blind=True, blind_seed=3)).units]
    assert sorted(plain) == sorted(blind) and plain != blind
    by_policy = {}
    for policy, eps in blind:
        by_policy.setdefault(policy, set()).update(eps)
    assert len(by_policy) == 2 and len({frozenset(v) for v in by_policy.values()}) == 1


def test_user_errors_before_any_work(run_dir, tmp_path):
    with pytest.raises(UserError, match="no_such_run"):
        run_sweep(_config(run_dir, tmp_path, run_dirs=(str(tmp_path / "no_such_run"),)), QUIET)
    with pytest.raises(UserError, match="juggle"):
        run_sweep(_config(run_dir, tmp_path, tasks=("cube_on_plate", "juggle")), QUIET)
    with pytest.raises(UserError, match="out of range"):
        run_sweep(_config(run_dir, tmp_path, init_states="0:999"), QUIET)
    assert not (tmp_path / "r.db").exists()


def test_sweep_toml_and_unknown_keys(run_dir, tmp_path):
    (tmp_path / "s.toml").write_text(
        textwrap.dedent(f"""
        db = "out/r.db"
        run_dirs = ["{run_dir}"]
        tasks = ["cube_on_plate"]
        seeds = [0, 1]
        [[settings]]
        name = "ens"
        mode = "temporal_ensemble"
        suite_step_caps = {{ libero_style_long = 520 }}
        """)
    )
    config = load_sweep_toml(tmp_path / "s.toml", workers=1)
    assert config.db == str(tmp_path / "out/r.db") and config.workers == 1 and config.seeds == (0, 1)
    assert config.settings[0].step_cap("libero_style_long", 150) == 520
    assert config.settings[0].step_cap("", 150) == 150
    (tmp_path / "bad.toml").write_text('tasks = ["cube_on_plate"]\nrun_dirs = ["x"]\nworkerz = 2\n')
    with pytest.raises(UserError, match="workerz"):
        load_sweep_toml(tmp_path / "bad.toml")


def test_policy_exception_and_physics_blowup_are_episode_failures(run_dir, tmp_path, monkeypatch):
    from robopolicy.eval.action_selector import ActionSelector
    from robopolicy.sim import TabletopEnv

    act = ActionSelector.act
    calls = {"n": 0}

    def flaky_act(self, obs, active):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("denoiser exploded")
        return act(self, obs, active)

    check = TabletopEnv._check_sim
    steps = {"n": 0}

    def unstable(self, before):
        steps["n"] += 1
        return "physics diverged (|qvel| > 1e3)" if steps["n"] == 3 else check(self, before)

    real_step = TabletopEnv.step

    def step(self, action):
        steps["stepped"] = steps.get("stepped", 0) + 1
        if steps["stepped"] == 5:
            raise RuntimeError("mj_step failed")
        return real_step(self, action)

    monkeypatch.setattr(TabletopEnv, "step", step)
    monkeypatch.setattr(ActionSelector, "act", flaky_act)
    monkeypatch.setattr(TabletopEnv, "_check_sim", unstable)
    config = _config(run_dir, tmp_path, checkpoints=(str(run_dir),), run_dirs=())
    run_sweep(config, QUIET)
    with ResultsStore(config.db) as store:
        reasons = [e["failure_reason"] for e in store.episodes()]
    assert len(reasons) == 3
    assert reasons[0] == "policy_error: RuntimeError: denoiser exploded"
    assert reasons[1].startswith("sim_error: physics diverged")
    assert reasons[2] == "sim_error: RuntimeError: mj_step failed"


def test_ray_backend_against_local_cluster(run_dir, tmp_path, monkeypatch):
    """One local cluster for the Ray backend's promises: the task search path travels with the tasks
    (workers start before the user's task folder is named); each task gets the CPUs and GPUs the
    sweep asks for; filmed episodes' videos come back next to the store; a unit whose task raises
    has the exception's type and message as its episodes' failure reason and in the driver's log."""
    ray = pytest.importorskip("ray")
    from robopolicy.eval.ray_backend import run_ray
    from robopolicy.eval.work_units import WorkUnit
    from robopolicy.paths import envs_dir
    from robopolicy.sim.init_states import save_init_states
    from robopolicy.tasks.task_path import TASK_PATH_ENV

    monkeypatch.delenv(TASK_PATH_ENV, raising=False)
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False)  # a declared GPU: Ray only counts it
    messages: list[str] = []
    try:
        user = tmp_path / "user_tasks" / "ray_cube"
        user.mkdir(parents=True)
        spec = (envs_dir() / "cube_on_plate" / "task.toml").read_text()
        (user / "task.toml").write_text(spec.replace('name = "cube_on_plate"', 'name = "ray_cube"'))
        monkeypatch.setenv(TASK_PATH_ENV, str(user.parent))
        save_init_states("ray_cube", 3)
        config = _config(
            run_dir,
            tmp_path,
            checkpoints=(str(run_dir),),
            run_dirs=(),
            backend="ray",
            tasks=("cube_on_plate", "ray_cube"),
            video_episodes=1,
            ray_num_cpus=0.5,
            ray_num_gpus=0.5,
        )
        run_sweep(config, messages.append)
        with ResultsStore(config.db) as store:
            run_id = store.register_run("gone", 1, ExecutionSettings().to_dict(), "h")
        gone = str(tmp_path / "gone" / "checkpoints" / "1")
        broken = WorkUnit(
            config.db,
            run_id,
            gone,
            ExecutionSettings().to_dict(),
            "",
            "cube_on_plate",
            ((0, 0), (1, 0)),
            (),
            str(tmp_path / "videos"),
        )
        run_ray([broken], config.db, messages.append)
    finally:
        ray.shutdown()
    with ResultsStore(config.db) as store:
        episodes = store.episodes()
    ok = [e for e in episodes if e["run_id"] != run_id]
    assert len(ok) == 6
    assert {e["task"] for e in ok} == {"cube_on_plate", "ray_cube"}
    assert not [e["failure_reason"] for e in ok if "worker_crash" in str(e["failure_reason"])]
    videos = sorted(e["video_path"] for e in ok if e["video_path"])
    assert len(videos) == 2 and all(os.path.getsize(v) > 1000 for v in videos)
    assert {os.path.dirname(v) for v in videos} == {str(tmp_path / "videos")}
    done = [m for m in messages if " done (" in m]
    assert done and all("CPU 0.5" in m and "GPU 0.5" in m for m in done)
    failed = [e["failure_reason"] for e in episodes if e["run_id"] == run_id]
    assert len(failed) == 2 and all(r.startswith("worker_crash: UserError: ") and gone in r for r in failed)
    assert any("failed" in m and "task cube_on_plate" in m and gone in m for m in messages)


def test_ray_options_from_toml_and_cli(run_dir, tmp_path, monkeypatch, capsys):
    """`--ray-address` overrides the file's address; task resources come from the file, checked >= 0."""
    import robopolicy.eval.stored_eval
    import robopolicy.eval.sweep
    from robopolicy.cli import main

    ran = []
    monkeypatch.setattr(robopolicy.eval.sweep, "run_sweep", ran.append)
    monkeypatch.setattr(robopolicy.eval.stored_eval, "format_sweep_summary", lambda db: "")
    head = (
        f'run_dirs = ["{run_dir}"]\ntasks = ["cube_on_plate"]\nbackend = "ray"\nray_address = "ray://a:1"\n'
    )
    (tmp_path / "s.toml").write_text(head + "ray_num_gpus = 0.25\n")
    assert main(["sweep", "--config", str(tmp_path / "s.toml"), "--ray-address", "ray://b:2"]) == 0
    assert (ran[0].ray_address, ran[0].ray_num_cpus, ran[0].ray_num_gpus) == ("ray://b:2", 1.0, 0.25)
    assert main(["sweep", "--config", str(tmp_path / "s.toml")]) == 0
    assert ran[1].ray_address == "ray://a:1"
    (tmp_path / "bad.toml").write_text(head + "ray_num_cpus = -1\n")
    capsys.readouterr()
    assert main(["sweep", "--config", str(tmp_path / "bad.toml")]) == 2
    assert "ray_num_cpus" in capsys.readouterr().err and len(ran) == 2


def test_ray_missing_is_one_line_error(monkeypatch):
    import builtins

    from robopolicy.eval.ray_backend import import_ray

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(UserError, match=r"robopolicy\[ray\]"):
        import_ray()


def test_temporal_ensemble_weights():
    import numpy as np

    from robopolicy.eval.action_selector import ensemble_weights

    w = ensemble_weights(3, 0.01)
    assert w == pytest.approx(np.exp(-0.01 * np.arange(3)) / np.exp(-0.01 * np.arange(3)).sum())
    assert w[0] > w[1] > w[2]  # the oldest prediction weighs most (ACT)
    assert ensemble_weights(4, 0.0) == pytest.approx([0.25] * 4)


def test_execution_settings_validation():
    with pytest.raises(ValueError, match="mode"):
        ExecutionSettings(mode="sometimes")
    with pytest.raises(ValueError, match="self_verify_candidates"):
        ExecutionSettings(self_verify_candidates=0)
    with pytest.raises(UserError, match="unknown key"):
        ExecutionSettings.from_dict({"mdoe": "chunk"})
    a, b = ExecutionSettings(name="x"), ExecutionSettings(name="y")
    assert a.config_hash() == b.config_hash()  # the name is a label, not part of the identity
    assert a.config_hash() != ExecutionSettings(settle_steps=10).config_hash()
