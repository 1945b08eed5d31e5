"""Every class of bad input gives a problem naming the dataset, the episode and the key."""

import numpy as np
import pytest
import tensorflow_datasets as tfds
from rlds_fixtures import libero_episode, libero_step_features, write_rlds

from robopolicy.data.dataset_check import check_dataset, check_datasets
from robopolicy.data.episode import Episode
from robopolicy.data.rlds_reader import load_episodes
from robopolicy.data.rlds_writer import build_rlds_dataset, write_raw_episode
from robopolicy.data.validate import (
    ArraySpec,
    DatasetError,
    Problem,
    check_action_dims,
    check_arrays,
    check_episode,
    raise_if_problems,
    validate_episodes,
    validate_mixture,
)


def _episode(eid: int, n: int = 4, action_dim: int = 7, size: int = 8) -> Episode:
    rng = np.random.default_rng(eid)
    return Episode(
        frames={"agentview": rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)},
        state=rng.normal(size=(n, 3)).astype(np.float32),
        action=rng.uniform(-1, 1, size=(n, action_dim)).astype(np.float32),
        reward=np.zeros(n, np.float32),
        task="t",
        instruction="do it",
        episode_id=eid,
    )


def _ours(tmp_path, episodes, name="d", action_dim=7):
    for e in episodes:
        write_raw_episode(tmp_path / name / "raw", e)
    return build_rlds_dataset(
        tmp_path / name / "raw",
        tmp_path / name / "ds",
        config_name="c",
        cameras=("agentview",),
        image_shape=(8, 8),
        state_dim=3,
        action_dim=action_dim,
    )


SPECS = {"action": ArraySpec((2,), "floating"), "image": ArraySpec((None, None, 3), "uint8")}


def test_check_arrays_hand_cases():
    good = {"action": np.zeros((3, 2), np.float32), "image": np.zeros((3, 4, 4, 3), np.uint8)}
    assert check_arrays(good, SPECS, "ds", 5) == []

    nan = dict(good, action=np.array([[0, 0], [np.inf, 0], [np.nan, 1]], np.float32))
    assert check_arrays(nan, SPECS, "ds", 5) == [
        Problem("ds", 5, "action", "contains NaN or Inf at 2 step(s), first at step 1")
    ]
    [p] = check_arrays(dict(good, image=np.zeros((3, 4, 4, 3), np.float32)), SPECS, "ds", 1)
    assert (p.key, p.message) == ("image", "has wrong dtype float32, expected uint8")
    [p] = check_arrays(dict(good, action=np.zeros((3, 5), np.float32)), SPECS, "ds", 1)
    assert p.message == "has wrong shape (3, 5), expected floating [T, 2]"
    [p] = check_arrays({"action": good["action"]}, SPECS, "ds", 1)
    assert (p.key, p.message) == ("image", "is missing")
    [p] = check_arrays(dict(good, image=np.zeros((2, 4, 4, 3), np.uint8)), SPECS, "ds", 1)
    assert p.message == "has 2 steps but 'action' has 3"
    short = {"action": np.zeros((1, 2), np.float32), "image": np.zeros((1, 4, 4, 3), np.uint8)}
    assert (
        check_arrays(short, SPECS, "ds", 1)[0].message
        == "has 1 step: one-step episode, needs at least 2 steps"
    )
    empty = {"action": np.zeros((0, 2), np.float32), "image": np.zeros((0, 4, 4, 3), np.uint8)}
    assert check_arrays(empty, SPECS, "ds", 1)[0].message == "has 0 steps: empty episode"
    # Everything is reported, not only the first problem.
    both = {"action": np.full((3, 2), np.nan, np.float32), "image": np.zeros((3, 4, 4), np.uint8)}
    assert {p.key for p in check_arrays(both, SPECS, "ds", 1)} == {"action", "image"}


def test_episode_validate_and_training_entry_points():
    bad = _episode(3)
    bad.state[2, 1] = np.nan
    with pytest.raises(DatasetError, match=r"^mem: episode 3: key 'state' contains NaN or Inf"):
        raise_if_problems(check_episode(bad, "mem"))
    with pytest.raises(DatasetError, match=r"episode 1: key 'frames/agentview' has per-step shape"):
        validate_episodes([_episode(0), _episode(1, size=6)], "mem")
    with pytest.raises(
        DatasetError,
        match=r"^b: episode 0: key 'action' has action dimension 6, which disagrees with 7 in a$",
    ):
        validate_mixture({"a": [_episode(0)], "b": [_episode(1, action_dim=6)]})
    assert check_action_dims({"a": 7, "b": 7}) == []


def test_nan_in_our_dataset_names_dataset_episode_and_key(tmp_path):
    episodes = [_episode(i) for i in range(4)]
    episodes[2].action[1, 3] = np.nan
    ds = _ours(tmp_path, episodes)
    with pytest.raises(
        DatasetError, match=rf"^{ds}: episode 2( \(record \d\))?: key 'action' contains NaN or Inf"
    ):
        load_episodes(ds)
    result = check_dataset(str(ds))
    assert (result.episodes, result.valid_episodes) == (4, 3)
    [p] = result.problems
    assert (p.dataset, p.episode, p.key) == (str(ds), 2, "action")


def test_short_and_empty_episodes_and_action_dims_across_datasets(tmp_path):
    a = _ours(tmp_path, [_episode(0), _episode(1, n=1)], name="a")
    b = _ours(tmp_path, [_episode(0, action_dim=6)], name="b", action_dim=6)
    results, cross = check_datasets([str(a), str(b)])
    [short] = results[0].problems
    assert (short.episode, short.key) == (1, "action") and "one-step episode" in short.message
    [p] = cross
    assert (p.dataset, p.key) == (str(b), "action") and "dimension 6, which disagrees with 7" in p.message

    features = {
        "observation": {"state": tfds.features.Tensor(shape=(3,), dtype=np.float32)},
        "action": tfds.features.Tensor(shape=(7,), dtype=np.float32),
        "language_instruction": tfds.features.Text(),
    }
    step = {
        "observation": {"state": np.zeros(3, np.float32)},
        "action": np.zeros(7, np.float32),
        "language_instruction": "x",
    }
    ds = write_rlds(tmp_path / "empty", features, [{"steps": [step, step]}, {"steps": []}])
    [p] = check_dataset(str(ds)).problems
    assert (p.key, p.message) == ("action", "has 0 steps: empty episode")


def test_foreign_dataset_with_wrong_dtype_and_missing_key(tmp_path):
    features = {
        "observation": {
            "rgb": tfds.features.Tensor(shape=(4, 4, 3), dtype=np.float32),  # images as floats: wrong
            "state": tfds.features.Tensor(shape=(3,), dtype=np.float32),
        },
        "action": tfds.features.Tensor(shape=(2,), dtype=np.float32),
        # no language_instruction: missing
    }
    step = {
        "observation": {"rgb": np.zeros((4, 4, 3), np.float32), "state": np.zeros(3, np.float32)},
        "action": np.zeros(2, np.float32),
    }
    ds = write_rlds(tmp_path / "f", features, [{"steps": [step, step]}] * 2)
    problems = check_dataset(str(ds)).problems
    assert {(p.episode, p.key, p.message) for p in problems} == {
        (i, key, message)
        for i in (0, 1)
        for key, message in [
            ("observation/rgb", "has wrong dtype float32, expected uint8"),
            ("language_instruction", "is missing"),
        ]
    }
    assert all(str(p).startswith(f"{ds}: episode ") for p in problems)


def test_per_step_shapes_of_unknown_size_are_reported(tmp_path):
    features = {
        "observation": {"state": tfds.features.Tensor(shape=(None,), dtype=np.float32)},
        "action": tfds.features.Tensor(shape=(2,), dtype=np.float32),
    }
    step = {"observation": {"state": np.zeros(3, np.float32)}, "action": np.zeros(2, np.float32)}
    ds = write_rlds(tmp_path / "d", features, [{"steps": [step, step]}])
    problems = check_dataset(str(ds)).problems
    assert [(p.episode, p.key, p.message) for p in problems] == [
        (0, "observation/state", "has a per-step shape with unknown sizes (None,), which is not supported"),
        (0, "language_instruction", "is missing"),
    ]


def test_libero_schema_violations(tmp_path):
    rng = np.random.default_rng(0)
    features = libero_step_features()
    del features["observation"]["wrist_image"]
    features["observation"]["state"] = tfds.features.Tensor(shape=(9,), dtype=np.float32)
    episode = libero_episode(rng, 2, "pick", size=256)
    for s in episode["steps"]:
        del s["observation"]["wrist_image"]
        s["observation"]["state"] = np.zeros(9, np.float32)
    ds = write_rlds(tmp_path / "l", features, [episode])
    problems = {(p.key, p.message.split(",")[0]) for p in check_dataset(str(ds), "libero").problems}
    assert problems == {
        ("observation/wrist_image", "is missing"),
        ("observation/state", "has wrong shape (2"),
    }


def test_float_width_and_reward_checks(tmp_path):
    features = {
        "observation": {
            "cam": tfds.features.Tensor(shape=(4, 4, 3), dtype=np.uint8),
            "state": tfds.features.Tensor(shape=(3,), dtype=np.float32),
        },
        "action": tfds.features.Tensor(shape=(2,), dtype=np.float64),
        "reward": tfds.features.Scalar(dtype=np.float32),
        "language_instruction": tfds.features.Text(),
    }
    steps = [
        {
            "observation": {"cam": np.zeros((4, 4, 3), np.uint8), "state": np.zeros(3, np.float32)},
            "action": np.zeros(2, np.float64),
            "reward": np.float32(r),
            "language_instruction": "go",
        }
        for r in (0.0, np.nan)
    ]
    ds = write_rlds(tmp_path / "w", features, [{"steps": steps}])
    problems = {(p.key, p.message) for p in check_dataset(str(ds)).problems}
    assert problems == {
        ("action", "has wrong dtype float64, expected float32"),
        ("reward", "contains NaN or Inf at 1 step(s), first at step 1"),
    }
    toml = tmp_path / "any_float.toml"
    toml.write_text(
        'cameras = { "observation/cam" = "agentview" }\nfloat_dtype = "floating"\nreward = "missing_key"\n'
    )
    [episode] = load_episodes(ds, mapping=str(toml))
    assert episode.action.dtype == np.float32 and episode.reward.tolist() == [0.0, 0.0]
