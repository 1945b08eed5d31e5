import numpy as np
import pytest

from robopolicy.data.episode import Episode
from robopolicy.data.normalization import KeyStats, NormalizationConfig, NormalizationStats, Normalizer
from robopolicy.data.validate import DatasetError, check_episode, raise_if_problems
from robopolicy.data.windows import (
    frame_stride_for,
    history_length,
    observed_frames,
    window_indices,
    window_offsets,
)


def test_minmax_maps_range_to_unit_interval_and_keeps_constant_dims():
    x = np.asarray([[0.0, 5.0, 2.0], [4.0, 5.0, -2.0], [2.0, 5.0, 0.0]])
    n = Normalizer.fit(x, "minmax")
    np.testing.assert_allclose(
        n.normalize(x), [[-1, 5, 1], [1, 5, -1], [0, 5, 0]]
    )  # constant dim passes through
    np.testing.assert_allclose(n.unnormalize(n.normalize(x)), x, atol=1e-6)


def test_meanstd_and_serialisation():
    x = np.asarray([[1.0], [3.0]])
    n = Normalizer.fit(x, "meanstd")
    np.testing.assert_allclose(n.normalize(x), [[-1.0], [1.0]])
    back = Normalizer.from_dict(n.to_dict())
    np.testing.assert_array_equal(back.offset, n.offset)
    np.testing.assert_array_equal(back.scale, n.scale)


def test_q01q99_maps_percentiles_to_unit_interval():
    x = np.arange(101, dtype=np.float64)[:, None]  # percentiles of 0..100 are the values themselves
    n = Normalizer.fit(x, "q01q99")
    np.testing.assert_allclose(n.offset, [50.0])
    np.testing.assert_allclose(n.scale, [49.0])
    np.testing.assert_allclose(n.normalize(np.asarray([[1.0], [99.0], [100.0]])), [[-1.0], [1.0], [50 / 49]])


def test_key_stats_hand_computed_and_modes_from_stats():
    x = np.asarray([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
    s = KeyStats.compute(x)
    np.testing.assert_allclose(s.mean, [2.0, 1.0])
    np.testing.assert_allclose(s.std, [np.sqrt(8 / 3), 0.0], rtol=1e-6)
    np.testing.assert_allclose([s.min, s.max], [[0.0, 1.0], [4.0, 1.0]])
    np.testing.assert_allclose([s.q01, s.q99], [[0.04, 1.0], [3.96, 1.0]], rtol=1e-6)
    assert s.count == 3
    back = KeyStats.from_dict(s.to_dict())
    np.testing.assert_array_equal(back.q99, s.q99)
    stats = NormalizationStats.from_key_stats(
        {"action": s, "state": s}, NormalizationConfig(action="q01q99", state="meanstd")
    )
    np.testing.assert_allclose(stats.action.offset, [2.0, 0.0])  # constant dim passes through
    np.testing.assert_allclose(stats.action.scale, [1.96, 1.0], rtol=1e-6)
    np.testing.assert_allclose(stats.state.scale, [np.sqrt(8 / 3), 1.0], rtol=1e-6)


def test_normalization_config_rejects_unknown_mode():
    with pytest.raises(ValueError, match="action must be one of"):
        NormalizationConfig(action="zscore")


def test_fit_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        Normalizer.fit(np.asarray([[np.nan]]), "minmax")


def test_window_indices_alignment_at_episode_edges():
    obs, act, valid = window_indices(num_steps=5, t=0, obs_horizon=2, action_horizon=4)
    np.testing.assert_array_equal(obs, [0, 0])
    np.testing.assert_array_equal(act, [0, 0, 1, 2])  # chunk starts at the first observation step (t − 1)
    np.testing.assert_array_equal(valid, [False, True, True, True])
    obs, act, valid = window_indices(num_steps=5, t=4, obs_horizon=2, action_horizon=4)
    np.testing.assert_array_equal(obs, [3, 4])
    np.testing.assert_array_equal(act, [3, 4, 4, 4])
    np.testing.assert_array_equal(valid, [True, True, False, False])


def test_subsampled_window_offsets():
    # To=3, H=5, stride 4: frames t-8, t-4, t; past actions subsampled alike, future ones dense.
    obs, act = window_offsets(3, 5, 4)
    np.testing.assert_array_equal(obs, [-8, -4, 0])
    np.testing.assert_array_equal(act, [-8, -4, 0, 1, 2])
    np.testing.assert_array_equal(window_offsets(2, 4, 1)[1], [-1, 0, 1, 2])
    obs, act, valid = window_indices(num_steps=10, t=5, obs_horizon=3, action_horizon=5, frame_stride=4)
    np.testing.assert_array_equal(obs, [0, 1, 5])
    np.testing.assert_array_equal(act, [0, 1, 5, 6, 7])
    np.testing.assert_array_equal(valid, [False, True, True, True, True])


def _episode(eid: int, n: int) -> Episode:
    steps = np.arange(n, dtype=np.float32)[:, None]
    return Episode(
        frames={"cam": np.zeros((n, 2, 2, 3), np.uint8)},
        state=np.concatenate([steps, steps + 100 * eid], 1),
        action=np.concatenate([steps, -steps], 1),
        reward=np.zeros(n, np.float32),
        task="t",
        instruction="i",
        episode_id=eid,
    )


def test_episode_validate_names_episode_and_key():
    ep = _episode(3, 4)
    ep.action[2, 0] = np.inf
    with pytest.raises(DatasetError, match=r"data.rlds: episode 3: key 'action' contains NaN or Inf"):
        raise_if_problems(check_episode(ep, "data.rlds"))


def test_inference_history_is_subsampled_like_training():
    assert history_length(3, 4) == 9 and history_length(2) == 2
    steps = list(range(10, 19))  # the newest 9 steps, oldest first
    assert observed_frames(steps, 3, 4) == [10, 14, 18]  # = window_offsets(3, ., 4) from the newest step
    assert observed_frames([5, 6], 2) == [5, 6]
    with pytest.raises(ValueError, match="need 9 steps"):
        observed_frames(steps[1:], 3, 4)


def test_frame_stride_from_episode_lengths_spans_half_an_episode():
    # Memory-suite episodes of 17–29 steps with To = 16: median 23 / (2·15) = 0.77 → 1 (consecutive).
    assert frame_stride_for(list(range(17, 30)), 16) == 1
    # Long tasks: median 600 / 30 = 20, the paper's stride.
    assert frame_stride_for([500, 600, 900], 16) == 20
    # To = 4, median of [10, 20] = 15: 15 / 6 = 2.5, halves round up → 3; To = 2: 15 / 2 = 7.5 → 8.
    assert frame_stride_for([10, 20], 4) == 3
    assert frame_stride_for([10, 20], 2) == 8
    assert frame_stride_for([10], 6) == 1  # 10 / 10 = 1
    assert frame_stride_for([3, 4], 8) == 1  # never below 1
    assert frame_stride_for([100], 1) == 1  # one frame: nothing to space
    with pytest.raises(ValueError, match="at least one"):
        frame_stride_for([], 4)
