import numpy as np
import pytest

from robopolicy.data.episode import Episode
from robopolicy.data.normalization import NormalizationStats, Normalizer
from robopolicy.data.windows import EpochSampler, WindowDataset, window_indices


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


def _episode(eid: int, n: int) -> Episode:
    steps = np.arange(n, dtype=np.float32)[:, None]
    return Episode(
        frames={
            "cam": np.repeat(np.arange(n, dtype=np.uint8)[:, None, None, None], 2, 1)
            .repeat(2, 2)
            .repeat(3, 3)
        },
        state=np.concatenate([steps, steps + 100 * eid], 1),
        action=np.concatenate([steps, -steps], 1),
        reward=np.zeros(n, np.float32),
        task="t",
        instruction="i",
        episode_id=eid,
    )


def test_window_dataset_matches_window_indices():
    episodes = [_episode(0, 5), _episode(1, 3)]
    identity = NormalizationStats(
        action=Normalizer(np.zeros(2, np.float32), np.ones(2, np.float32)),
        state=Normalizer(np.zeros(2, np.float32), np.ones(2, np.float32)),
    )
    ds = WindowDataset(episodes, obs_horizon=2, action_horizon=4, stats=identity)
    assert len(ds) == 8
    batch = ds.get_batch(np.arange(8))
    for i, (ep, t) in enumerate([(0, t) for t in range(5)] + [(1, t) for t in range(3)]):
        obs, act, valid = window_indices(len(episodes[ep]), t, 2, 4)
        np.testing.assert_array_equal(batch.state[i], episodes[ep].state[obs])
        np.testing.assert_array_equal(batch.action[i], episodes[ep].action[act])
        np.testing.assert_array_equal(batch.action_valid[i], valid)
        np.testing.assert_array_equal(batch.images["cam"][i], episodes[ep].frames["cam"][obs])


def test_epoch_sampler_is_a_pure_function_of_step():
    a, b = EpochSampler(10, 3, seed=7), EpochSampler(10, 3, seed=7)
    seq = [a.indices(s).tolist() for s in range(7)]
    assert [b.indices(s).tolist() for s in (6, 0, 3)] == [seq[6], seq[0], seq[3]]
    first_epoch = np.concatenate(seq[:3])
    assert len(set(first_epoch.tolist())) == 9  # one permutation per epoch, last partial batch dropped


def test_episode_validate_names_episode_and_key():
    ep = _episode(3, 4)
    ep.action[2, 0] = np.inf
    with pytest.raises(ValueError, match=r"data.rlds: episode 3: key 'action' contains NaN or Inf"):
        ep.validate("data.rlds")
