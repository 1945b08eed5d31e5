"""Every class of bad input gives a problem naming the dataset, the episode and the key."""

import re

import numpy as np
import pytest
import tensorflow_datasets as tfds
from rlds_fixtures import libero_episode, libero_step_features, write_rlds

from robopolicy.cli import main
from robopolicy.data.dataset_check import check_dataset, check_datasets
from robopolicy.data.episode import Episode
from robopolicy.data.rlds_reader import load_episodes
from robopolicy.data.rlds_writer import build_rlds_dataset, write_raw_episode
from robopolicy.data.robust_range import RobustRange, outside
from robopolicy.data.validate import (
    ArraySpec,
    DatasetError,
    EpisodeValues,
    Problem,
    check_action_dims,
    check_arrays,
    check_episode,
    check_rlds_flags,
    check_value_ranges,
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


def test_robust_range_hand_cases():
    # Percentiles taken inward over 7 samples: q01 is the 2nd smallest, q99 the 2nd largest.
    # dim 0: 1..6 and a wild 1000: median 4, |x - 4| = 3 2 1 0 1 2 996, MAD 2; floor 1 % of
    #   max(q99 - q01 = 6 - 2, |4|, 1) = 0.04, so the MAD rules and the 1000 moves nothing.
    # dim 1: a gripper at +1 in 5 of 7 steps: median 1, MAD 0, floor 1 % of max(1 - -1, 1, 1) = 0.02.
    # dim 2: constant 0: MAD 0, floor 1 % of max(0, 0, 1) = 0.01.
    # dim 3: mostly 0 in large units: MAD 0, floor 1 % of max(50 - 0, 0, 1) = 0.5.
    values = np.array(
        [
            [1, 1, 0, 0],
            [2, 1, 0, 0],
            [3, -1, 0, 0],
            [4, 1, 0, 50],
            [5, -1, 0, 0],
            [6, 1, 0, 60],
            [1000, 1, 0, 0],
        ],
        dtype=np.float32,
    )
    r = RobustRange.of(values, factor=10)
    np.testing.assert_allclose(r.median, [4, 1, 0, 0])
    np.testing.assert_allclose(r.scale, [2, 0.02, 0.01, 0.5])
    np.testing.assert_allclose(r.low, [-16, 0.8, -0.1, -5])
    np.testing.assert_allclose(r.high, [24, 1.2, 0.1, 5])
    # With more samples the wild value no longer moves the 99th percentile: the MAD rules.
    many = np.concatenate([np.tile(np.arange(1.0, 6.0), 40), [1000.0]])[:, None]
    r = RobustRange.of(many)
    np.testing.assert_allclose((r.median, r.scale), ([3.0], [1.0]))
    np.testing.assert_allclose((r.low, r.high), ([-997.0], [1003.0]))
    flagged = outside(np.array([[-998.0], [-997.0], [1003.0], [1003.5]]), r.low, r.high)
    assert flagged[:, 0].tolist() == [True, False, False, True]


def test_rlds_flag_hand_cases():
    ok = np.array([True, False, False]), np.array([False, False, True])
    assert check_rlds_flags(*ok, "ds", 4) == []
    assert check_rlds_flags(None, None, "ds", 4) == []
    problems = check_rlds_flags(
        np.array([False, True, False, True]), np.array([True, False, True, False]), "ds", 4, ("first", "last")
    )
    assert [(p.key, p.message) for p in problems] == [
        ("first", "is False at step 0, the first step"),
        ("first", "is True at 2 step(s) other than the first, first at step 1"),
        ("last", "is False at step 3, the last step"),
        ("last", "is True at 2 step(s) other than the last, first at step 0"),
    ]
    assert str(problems[0]) == "ds: episode 4: key 'first' is False at step 0, the first step"


def test_value_ranges_one_line_per_episode_key_and_dim():
    rng = np.random.default_rng(0)

    def values(eid, n=50):
        action = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
        action[:, 2] = np.where(rng.random(n) < 0.7, 1.0, -1.0)  # a ±1 gripper: MAD 0
        return EpisodeValues(eid, {"action": action, "observation/state": rng.normal(size=(n, 2))}, eid + 10)

    episodes = [values(i) for i in range(4)]
    assert check_value_ranges(episodes, "ds") == []
    episodes[1].arrays["action"][[7, 9], 0] = 1e9
    episodes[3].arrays["observation/state"][2, 1] = -5e4
    problems = check_value_ranges(episodes, "ds")
    assert [(p.episode, p.record, p.key) for p in problems] == [
        (1, 11, "action"),
        (3, 13, "observation/state"),
    ]
    assert problems[0].message.startswith(
        "dim 0 is 1e+09 at step 7 (2 steps in all), far outside the dataset's"
    )
    assert "(median ± 1000 MAD)" in problems[0].message
    assert problems[1].message.startswith("dim 1 is -5e+04 at step 2, far outside")

    # Declared bounds: the gripper's ±1 is inside [-1, 1]; 1.5 is outside; the 1e9 names the bounds.
    episodes[0].arrays["action"][4, 1] = 1.5
    bounds = {"action": ((-1.0, 1.0), (-1.0, 1.0), (-1.0, 1.0))}
    problems = check_value_ranges(episodes, "ds", bounds)
    assert [(p.episode, p.key, p.message) for p in problems[:2]] == [
        (0, "action", "dim 1 is 1.5 at step 4, outside the declared bounds [-1, 1]"),
        (1, "action", "dim 0 is 1e+09 at step 7 (2 steps in all), outside the declared bounds [-1, 1]"),
    ]
    assert len(problems) == 3


def _rlds_steps(actions, is_first=None, is_last=None):
    steps = []
    for t, action in enumerate(actions):
        step = {
            "observation": {"state": np.zeros(3, np.float32)},
            "action": np.asarray(action, np.float32),
            "language_instruction": "go",
        }
        if is_first is not None:
            step["is_first"], step["is_last"] = bool(is_first[t]), bool(is_last[t])
        steps.append(step)
    return {"steps": steps}


_FLAG_FEATURES = {
    "observation": {"state": tfds.features.Tensor(shape=(3,), dtype=np.float32)},
    "action": tfds.features.Tensor(shape=(2,), dtype=np.float32),
    "is_first": tfds.features.Scalar(dtype=np.bool_),
    "is_last": tfds.features.Scalar(dtype=np.bool_),
    "language_instruction": tfds.features.Text(),
}


def test_data_check_reports_flags_and_huge_values_and_training_refuses(tmp_path, capsys):
    rng = np.random.default_rng(1)
    good = [True, False, False], [False, False, True]
    episodes = [_rlds_steps(rng.uniform(-1, 1, (3, 2)), *good) for _ in range(6)]
    episodes[2] = _rlds_steps(rng.uniform(-1, 1, (3, 2)), [False, True, False], [False, False, True])
    huge = rng.uniform(-1, 1, (3, 2))
    huge[1, 1] = 1e9
    episodes[4] = _rlds_steps(huge, *good)
    ds = write_rlds(tmp_path / "f", _FLAG_FEATURES, episodes)

    result = check_dataset(str(ds))
    problems = {(p.key, p.message.split(",")[0]) for p in result.problems}
    assert problems == {
        ("is_first", "is False at step 0"),
        ("is_first", "is True at 1 step(s) other than the first"),
        ("action", "dim 1 is 1e+09 at step 1"),
    }
    assert (result.episodes, result.valid_episodes) == (6, 4)
    assert main(["data", "check", str(ds)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and all(line.startswith(f"{ds}: episode ") for line in out[:3])
    # Training reads through load_episodes, which stops at the first problem with its line.
    with pytest.raises(DatasetError, match=rf"^{ds}: episode \d+( \(record \d\))?: key 'is_first' is False"):
        load_episodes(ds)

    del episodes[2]
    ds = write_rlds(tmp_path / "g", _FLAG_FEATURES, episodes)
    with pytest.raises(DatasetError, match=r"key 'action' dim 1 is 1e\+09 at step 1, far outside"):
        load_episodes(ds)
    toml = tmp_path / "bounded.toml"
    toml.write_text("cameras = {}\naction_bounds = [[-1, 1], [-2, 2]]\n")
    [p] = check_dataset(str(ds), str(toml)).problems
    assert (p.key, p.message) == ("action", "dim 1 is 1e+09 at step 1, outside the declared bounds [-2, 2]")
    toml.write_text("cameras = {}\naction_bounds = [[-1, 1]]\n")
    problems = check_dataset(str(ds), str(toml)).problems
    assert len(problems) == 5 and all(
        p.message == "has wrong shape (3, 2), expected float32 [T, 1]" for p in problems
    )
    toml.write_text("cameras = {}\naction_dim = 2\naction_bounds = [[1, -1], [0, 0]]\n")
    assert main(["data", "check", str(ds), "--mapping", str(toml)]) == 2
    assert "action_bounds must be one [low, high] pair per action dimension" in capsys.readouterr().err

    # A dataset without RLDS flags is not checked for them.
    plain = {k: v for k, v in _FLAG_FEATURES.items() if k not in ("is_first", "is_last")}
    ds = write_rlds(tmp_path / "h", plain, [_rlds_steps(rng.uniform(-1, 1, (3, 2))) for _ in range(2)])
    assert check_dataset(str(ds)).problems == []


def test_data_check_names_the_episode_whose_image_shape_differs(tmp_path):
    rng = np.random.default_rng(2)
    features = libero_step_features(size=16)
    features["observation"]["image"] = tfds.features.Image(shape=(None, None, 3), encoding_format="png")
    episodes = [libero_episode(rng, 2, "pick", size=16) for _ in range(3)]
    for step in episodes[1]["steps"]:
        step["observation"]["image"] = np.zeros((24, 24, 3), np.uint8)
    ds = write_rlds(tmp_path / "s", features, episodes)
    result = check_dataset(str(ds), "libero")
    # Storage order is TFDS's: the odd episode is either the reference or the one that differs.
    [p] = result.problems
    assert p.key == "frames/agentview" and "(24, 24, 3)" in p.message
    assert re.fullmatch(r"has per-step shape \(\d+, \d+, 3\), which differs from episode \d's .*", p.message)
    if p.message.endswith("(as do 1 more episode(s))"):  # the first episode read was the odd one
        assert result.valid_episodes == 1
    else:
        assert result.valid_episodes == 2
    with pytest.raises(DatasetError, match=r"key 'frames/agentview' has per-step shape"):
        load_episodes(ds, "libero")
