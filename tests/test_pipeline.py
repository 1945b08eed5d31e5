"""The grain pipeline: deterministic shuffles, per-host blocks that make up the global batch,
weighted mixing, and an iterator state that resumes exactly (also through an orbax checkpoint)."""

import numpy as np
import pytest

from robopolicy.data.pipeline import HostShard, batch_iterator, window_dataset
from robopolicy.data.window_source import WindowSource, WindowSpec
from robopolicy.errors import UserError
from robopolicy.train import checkpoint


def _source(name: str, num_episodes: int, n: int, marker: float) -> WindowSource:
    episodes = []
    for e in range(num_episodes):
        ids = (np.arange(n) + e * n).astype(np.float32)[:, None]  # a unique id per step
        episodes.append(
            {
                "images/cam": np.zeros((n, 2, 2, 3), np.uint8),
                "state": np.concatenate([ids, np.full_like(ids, marker)], 1),
                "action": np.concatenate([ids, -ids], 1),
            }
        )
    return WindowSource(episodes, WindowSpec(1, 2), name=name)


def _ids(batch) -> list[int]:
    return batch["state"][:, 0, 0].astype(int).tolist()


def _take(it, n: int) -> list[dict]:
    return [next(it) for _ in range(n)]


def test_deterministic_for_a_seed_and_each_epoch_a_permutation():
    src = _source("a", 3, 4, 0.0)  # 12 samples
    single = HostShard(0, 1)
    a = _take(batch_iterator(window_dataset([src], 4, seed=3, shard=single), read_threads=0), 6)
    b = _take(batch_iterator(window_dataset([src], 4, seed=3, shard=single), read_threads=2), 6)
    c = _take(batch_iterator(window_dataset([src], 4, seed=4, shard=single), read_threads=0), 6)
    assert [_ids(x) for x in a] == [_ids(x) for x in b]
    assert [_ids(x) for x in a] != [_ids(x) for x in c]
    epoch0 = [i for x in a[:3] for i in _ids(x)]
    epoch1 = [i for x in a[3:] for i in _ids(x)]
    assert sorted(epoch0) == sorted(epoch1) == list(range(12))
    assert epoch0 != list(range(12)) and epoch0 != epoch1  # shuffled, and reshuffled per epoch
    assert a[0]["images"]["cam"].shape == (4, 1, 2, 2, 3)
    assert a[0]["action"].shape == (4, 2, 2) and a[0]["action_valid"].shape == (4, 2)


def test_host_shards_laid_end_to_end_are_the_global_batch():
    src = _source("a", 5, 7, 0.0)
    whole = _take(batch_iterator(window_dataset([src], 6, seed=0, shard=HostShard(0, 1)), read_threads=0), 4)
    hosts = [
        _take(batch_iterator(window_dataset([src], 6, seed=0, shard=HostShard(p, 3)), read_threads=0), 4)
        for p in range(3)
    ]
    for s in range(4):
        local = [_ids(hosts[p][s]) for p in range(3)]
        assert all(len(x) == 2 for x in local)
        assert local[0] + local[1] + local[2] == _ids(whole[s])


def test_uneven_host_split_is_refused():
    with pytest.raises(UserError, match="does not split evenly over 4 hosts"):
        window_dataset([_source("a", 1, 8, 0.0)], 6, seed=0, shard=HostShard(0, 4))


def test_mixing_follows_the_weights_and_keeps_order_within_a_batch():
    a, b = _source("a", 2, 10, 0.0), _source("b", 1, 5, 1.0)
    it = batch_iterator(window_dataset([a, b], 8, seed=1, weights=[3.0, 1.0], shard=HostShard(0, 1)), 0)
    batches = _take(it, 50)
    markers = np.concatenate([x["state"][:, 0, 1] for x in batches])
    assert abs(markers.mean() - 0.25) < 0.02
    # Rows stay whole: a row's action ids are its state id, whichever source it came from.
    for x in batches:
        np.testing.assert_array_equal(x["action"][:, 0, 0], x["state"][:, 0, 0])
    again = _take(
        batch_iterator(window_dataset([a, b], 8, seed=1, weights=[3.0, 1.0], shard=HostShard(0, 1)), 0), 50
    )
    assert [_ids(x) for x in again] == [_ids(x) for x in batches]


def test_bad_weights_are_refused():
    a, b = _source("a", 1, 4, 0.0), _source("b", 1, 4, 1.0)
    with pytest.raises(UserError, match="one positive weight per dataset"):
        window_dataset([a, b], 2, seed=0, weights=[1.0, 0.0], shard=HostShard(0, 1))


def test_iterator_state_resumes_exactly_through_orbax(tmp_path):
    src = _source("a", 3, 5, 0.0)
    ds = window_dataset([src], 4, seed=7, shard=HostShard(0, 1))
    it = batch_iterator(ds, read_threads=1)
    _take(it, 5)
    manager = checkpoint.checkpoint_manager(tmp_path / "ckpt")
    state = {"ema_params": {"w": np.zeros(2, np.float32)}}
    checkpoint.save(manager, 5, state, {"note": "x"}, it)
    expected = _take(it, 4)  # what the uninterrupted run reads next
    manager.wait_until_finished()
    manager.close()

    fresh = batch_iterator(ds, read_threads=1)
    manager = checkpoint.checkpoint_manager(tmp_path / "ckpt")
    checkpoint.restore(manager, 5, state, fresh)
    manager.close()
    got = _take(fresh, 4)
    assert [_ids(x) for x in got] == [_ids(x) for x in expected]
    assert (tmp_path / "ckpt" / "5" / "data_iter" / "process_0-of-1.json").is_file()
