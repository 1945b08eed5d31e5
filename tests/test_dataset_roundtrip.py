import numpy as np
import pytest

from robopolicy.data.episode import Episode
from robopolicy.data.rlds_reader import find_dataset_dir, load_episodes
from robopolicy.data.rlds_writer import build_rlds_dataset, write_raw_episode
from robopolicy.errors import UserError


def _random_episode(rng: np.random.Generator, eid: int, n: int) -> Episode:
    return Episode(
        frames={cam: rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8) for cam in ("agentview", "wrist")},
        state=rng.normal(size=(n, 9)).astype(np.float32),
        action=rng.uniform(-1, 1, size=(n, 7)).astype(np.float32),
        reward=(np.arange(n) == n - 1).astype(np.float32),
        task="cube_on_plate",
        instruction="put the red cube on the plate",
        episode_id=eid,
        seed=100 + eid,
    )


def test_write_then_read_back_identical(tmp_path):
    rng = np.random.default_rng(0)
    episodes = [_random_episode(rng, i, n) for i, n in enumerate([4, 7, 5])]
    for e in episodes:
        write_raw_episode(tmp_path / "raw", e)
    ds_dir = build_rlds_dataset(
        tmp_path / "raw",
        tmp_path / "ds",
        config_name="t16",
        cameras=("agentview", "wrist"),
        image_shape=(16, 16),
        state_dim=9,
        action_dim=7,
    )
    assert not (tmp_path / "raw").exists()  # staging removed after a successful build
    assert find_dataset_dir(tmp_path / "ds") == ds_dir
    back = load_episodes(tmp_path / "ds")
    assert [b.episode_id for b in back] == [0, 1, 2]
    for a, b in zip(episodes, back, strict=True):
        for cam in a.frames:
            np.testing.assert_array_equal(a.frames[cam], b.frames[cam])
        np.testing.assert_array_equal(a.state, b.state)
        np.testing.assert_array_equal(a.action, b.action)
        np.testing.assert_array_equal(a.reward, b.reward)
        assert (b.task, b.instruction, b.seed, b.success) == (a.task, a.instruction, a.seed, True)


def test_missing_and_non_dataset_paths_name_the_path(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_episodes(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"empty: not an RLDS dataset"):
        load_episodes(tmp_path / "empty")
