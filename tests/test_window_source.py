"""Windows gathered by `WindowSource` match the pure index rule; bad episodes get one-line errors."""

import numpy as np
import pytest

from robopolicy.data.normalization import Normalizer
from robopolicy.data.window_source import WindowSource, WindowSpec, check_compatible, nest, with_embeddings
from robopolicy.data.windows import window_indices
from robopolicy.errors import UserError


def _arrays(eid: int, n: int, action_dim: int = 2) -> dict[str, np.ndarray]:
    steps = np.arange(n, dtype=np.float32)[:, None]
    return {
        "images/cam": np.broadcast_to(
            (np.arange(n) + 10 * eid).astype(np.uint8)[:, None, None, None], (n, 2, 2, 3)
        ),
        "embeddings/cam": np.concatenate([steps, steps + eid, steps * 0], 1),
        "state": np.concatenate([steps, steps + 100 * eid], 1),
        "action": np.concatenate([steps, -steps] + [steps] * (action_dim - 2), 1),
    }


@pytest.mark.parametrize("stride", [1, 3])
def test_source_matches_window_indices(stride):
    episodes = [_arrays(0, 7), _arrays(1, 3)]
    spec = WindowSpec(obs_horizon=3, action_horizon=5, frame_stride=stride)
    vocab = np.asarray([[5, 6], [7, 0]], np.int32)
    src = WindowSource(episodes, spec, name="d", episode_values={"instruction": vocab})
    assert len(src) == 10
    batch = src.get_batch(np.arange(10))
    assert set(batch) == {
        "images",
        "embeddings",
        "state",
        "action",
        "obs_valid",
        "action_valid",
        "instruction",
    }
    for i, (ep, t) in enumerate([(0, t) for t in range(7)] + [(1, t) for t in range(3)]):
        obs, act, valid = window_indices(len(episodes[ep]["action"]), t, 3, 5, stride)
        np.testing.assert_array_equal(batch["images"]["cam"][i], episodes[ep]["images/cam"][obs])
        np.testing.assert_array_equal(batch["embeddings"]["cam"][i], episodes[ep]["embeddings/cam"][obs])
        np.testing.assert_array_equal(batch["state"][i], episodes[ep]["state"][obs])
        np.testing.assert_array_equal(batch["action"][i], episodes[ep]["action"][act])
        np.testing.assert_array_equal(batch["action_valid"][i], valid)
        np.testing.assert_array_equal(batch["obs_valid"][i], t + (np.arange(3) - 2) * stride >= 0)
        np.testing.assert_array_equal(batch["instruction"][i], vocab[ep])
    single = src[4]
    np.testing.assert_array_equal(single["action"], batch["action"][4])


def test_source_applies_normalizers():
    norm = Normalizer(np.asarray([1.0, 0.0], np.float32), np.asarray([2.0, 1.0], np.float32))
    src = WindowSource([_arrays(0, 4)], WindowSpec(1, 2), name="d", normalizers={"action": norm})
    np.testing.assert_allclose(src.get_batch(np.asarray([1]))["action"][0], [[0.0, -1.0], [0.5, -2.0]])


def test_nest_splits_on_slash():
    assert nest({"images/a": 1, "images/b": 2, "state": 3}) == {"images": {"a": 1, "b": 2}, "state": 3}


def _with(eid: int, key: str, value: np.ndarray, n: int = 4) -> list[dict[str, np.ndarray]]:
    bad = _arrays(eid, n)
    bad[key] = value
    return [_arrays(0, n), bad] if eid == 1 else [bad]


@pytest.mark.parametrize(
    ("episodes", "message"),
    [
        ([], r"^ds: no episodes$"),
        (
            [_arrays(0, 4), _arrays(1, 1)],
            r"^ds: episode 1: key 'action' has 1 step: one-step episode, needs at least 2 steps$",
        ),
        ([_arrays(0, 4), {**_arrays(1, 0)}], r"^ds: episode 1: key 'action' has 0 steps"),
        (
            _with(1, "state", np.full((4, 2), np.nan, np.float32)),
            r"^ds: episode 1: key 'state' contains NaN or Inf",
        ),
        (
            _with(1, "action", np.asarray([[0, 0], [0, np.inf], [0, 0], [0, 0]], np.float32)),
            r"key 'action' contains NaN or Inf at 1 step\(s\), first at step 1$",
        ),
        (
            _with(1, "state", np.zeros((4, 3), np.float32)),
            r"^ds: episode 1: key 'state' has wrong shape \(4, 3\), expected float32 \[T, 2\]$",
        ),
        (
            _with(1, "images/cam", np.zeros((4, 2, 2, 3), np.float32)),
            r"episode 1: key 'images/cam' has wrong dtype float32, expected uint8$",
        ),
        (
            _with(1, "state", np.zeros((3, 2), np.float32)),
            r"^ds: episode 1: key 'state' has 3 steps but 'action' has 4$",
        ),
        (
            [_arrays(0, 4), {k: v for k, v in _arrays(1, 4).items() if k != "state"}],
            r"^ds: episode 1: key 'state' is missing$",
        ),
    ],
)
def test_bad_episodes_name_dataset_episode_and_key(episodes, message):
    with pytest.raises(UserError, match=message):
        WindowSource(episodes, WindowSpec(1, 2), name="ds")


def test_mixed_sources_with_other_action_dims_are_refused():
    a = WindowSource([_arrays(0, 4)], WindowSpec(1, 2), name="a")
    b = WindowSource([_arrays(0, 4, action_dim=3)], WindowSpec(1, 2), name="b")
    with pytest.raises(
        UserError,
        match=r"^b: episode 0: key 'action' is float32 \(3,\) per step, dataset a has float32 \(2,\)$",
    ):
        check_compatible([a, b])


def test_window_spec_validation():
    with pytest.raises(ValueError, match="frame_stride"):
        WindowSpec(2, 4, 0)
    with pytest.raises(ValueError, match="must cover"):
        WindowSpec(4, 2)


def test_cached_embeddings_replace_images():
    base = [{k: v for k, v in _arrays(e, 6).items() if k != "embeddings/cam"} for e in range(2)]
    cached = [{"cam": np.full((6, 4), e, np.float32) + np.arange(6)[:, None]} for e in range(2)]
    episodes = [with_embeddings(a, c) for a, c in zip(base, cached, strict=True)]
    src = WindowSource(episodes, WindowSpec(obs_horizon=4, action_horizon=8, frame_stride=2), name="emb")
    batch = src.get_batch(np.asarray([11]))  # episode 1, step 5
    assert "images" not in batch and batch["embeddings"]["cam"].shape == (1, 4, 4)
    np.testing.assert_array_equal(batch["embeddings"]["cam"][0, :, 0], [1 + 0, 1 + 1, 1 + 3, 1 + 5])
    np.testing.assert_array_equal(batch["obs_valid"][0], [False, True, True, True])
    bad = [episodes[0], with_embeddings(base[1], {"cam": np.zeros((5, 4))})]
    with pytest.raises(
        UserError, match=r"^emb: episode 1: key 'embeddings/cam' has 5 steps but 'action' has 6$"
    ):
        WindowSource(bad, WindowSpec(1, 2), name="emb")
