"""Object poses in datasets: the sim reports them in a fixed order per task, collection's RLDS stores
them as `observation/object_state` (zero-padded to the widest task's), the readers read them back,
and datasets without them keep working."""

import numpy as np

from robopolicy.data.collect import _object_state_dim
from robopolicy.data.episode import Episode
from robopolicy.data.rlds_reader import load_episodes
from robopolicy.data.rlds_writer import build_rlds_dataset, write_raw_episode
from robopolicy.sim.env import TabletopEnv


def test_env_reports_each_object_body_pose_in_spec_order():
    with TabletopEnv(task="goal_open_drawer", image_size=32, cameras=()) as env:
        env.reset(init_state=env.sample_init_state(0))
        poses = env.object_state()
        assert poses.dtype == np.float32 and poses.shape == (_object_state_dim("goal_open_drawer"),)
        first = env.scene_task.handles[env.spec.objects[0].name].body
        np.testing.assert_allclose(poses[:3], env.data.xpos[first], rtol=1e-6)
        np.testing.assert_allclose(poses[3:7], env.data.xquat[first], rtol=1e-6)
        # Unit quaternions throughout.
        np.testing.assert_allclose(np.linalg.norm(poses.reshape(-1, 7)[:, 3:], axis=1), 1.0, rtol=1e-5)


def _episode(i: int, width: int | None) -> Episode:
    rng = np.random.default_rng(i)
    n = 5
    return Episode(
        frames={"agentview": rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)},
        state=rng.normal(size=(n, 9)).astype(np.float32),
        action=rng.normal(size=(n, 7)).astype(np.float32),
        reward=np.zeros(n, np.float32),
        task=f"task_{width}",
        instruction="do it",
        episode_id=i,
        object_state=None if width is None else rng.normal(size=(n, width)).astype(np.float32),
    )


def _build(tmp_path, episodes, object_state_dim):
    for e in episodes:
        write_raw_episode(tmp_path / "raw", e)
    build_rlds_dataset(
        tmp_path / "raw",
        tmp_path / "ds",
        config_name="t",
        cameras=("agentview",),
        image_shape=(16, 16),
        state_dim=9,
        action_dim=7,
        object_state_dim=object_state_dim,
    )
    return load_episodes(tmp_path / "ds")


def test_object_state_round_trips_zero_padded_to_the_widest_task(tmp_path):
    written = [_episode(0, 7), _episode(1, 14)]
    read = _build(tmp_path, written, 14)
    assert set(read[0].frames) == {"agentview"}  # not mistaken for a camera
    np.testing.assert_array_equal(read[0].object_state[:, :7], written[0].object_state)
    np.testing.assert_array_equal(read[0].object_state[:, 7:], 0.0)
    np.testing.assert_array_equal(read[1].object_state, written[1].object_state)


def test_datasets_without_object_state_keep_working(tmp_path):
    read = _build(tmp_path, [_episode(0, None), _episode(1, None)], 0)
    assert [e.object_state for e in read] == [None, None]
    assert read[0].state.shape == (5, 9)
