"""Collection keeps the first successful expert episodes in seed order, however many workers run them."""

import numpy as np
import pytest

from robopolicy.data.collect import CollectConfig, _object_state_dim, _worker_count, collect
from robopolicy.data.rlds_reader import load_episodes


def test_two_workers_write_the_same_dataset_as_one(tmp_path):
    datasets = []
    for workers in (1, 2):
        config = CollectConfig(
            num_episodes=3,
            image_size=32,
            cameras=("agentview",),
            noise_std=0.1,
            workers=workers,
            out=str(tmp_path / f"w{workers}"),
        )
        result = collect(config, progress=False)
        assert result.episodes == 3
        datasets.append(load_episodes(result.dataset_dir))
    one, two = datasets
    assert [e.seed for e in one] == [e.seed for e in two] == [0, 1, 2]
    for a, b in zip(one, two, strict=True):
        assert (a.episode_id, a.task, a.instruction) == (b.episode_id, b.task, b.instruction)
        np.testing.assert_array_equal(a.action, b.action)
        np.testing.assert_array_equal(a.state, b.state)
        # The objects' poses come with every step, and they move: the expert moves an object.
        np.testing.assert_array_equal(a.object_state, b.object_state)
        assert a.object_state.shape == (len(a), _object_state_dim(a.task))
        assert np.abs(a.object_state[-1] - a.object_state[0]).max() > 1e-3
        np.testing.assert_array_equal(np.asarray(a.frames["agentview"]), np.asarray(b.frames["agentview"]))


def test_worker_count_is_one_per_core_at_most_one_per_demo():
    assert _worker_count(3, 10) == 3
    assert _worker_count(8, 2) == 2
    assert _worker_count(0, 1) == 1
    assert _worker_count(0, 10_000) >= 1


def test_negative_workers_are_refused():
    with pytest.raises(ValueError, match="workers"):
        CollectConfig(workers=-1)
