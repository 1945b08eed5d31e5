"""The grain pipeline that training reads: shuffled, mixed, per-host sharded batches of windows.

Order of operations, and why:

1. each source is a range of sample ids, shuffled with its own seed and repeated forever; grain
   reshuffles every epoch, deterministically, so a dataset's epochs never blend halfway;
2. several sources are interleaved by `grain.MapDataset.mix` in proportion to their weights (shuffling
   before mixing keeps the proportions exact);
3. the one global stream of (source, sample) ids is cut into global batches of ids, and host p of n
   keeps rows [p·B/n, (p+1)·B/n) of each: the n local batches of step s, laid end to end in process
   order, are global batch s row for row, whatever n is, so a run on n hosts sees the batches (and
   draws the per-row noise) of a run on one host;
4. each host gathers the windows of its rows only, one vectorized gather per key.

Everything is a pure function of (seed, position), so the iterator state is one integer per host
(`{"next_index": ...}`) that goes into the orbax checkpoint with the train state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grain
import jax
import numpy as np

from robopolicy.data.window_source import Batch, WindowSource, check_compatible
from robopolicy.errors import UserError


@dataclass(frozen=True)
class HostShard:
    """This host's position among the hosts reading one global stream."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"HostShard: need 0 <= index < count, got {self.index} of {self.count}")

    @classmethod
    def current(cls) -> HostShard:
        return cls(jax.process_index(), jax.process_count())

    def rows(self, global_batch_size: int) -> slice:
        """This host's rows of a global batch: a contiguous block, hosts in process order."""
        per_host = global_batch_size // self.count
        return slice(self.index * per_host, (self.index + 1) * per_host)


def _source_seed(seed: int, source_index: int) -> int:
    """Distinct 32-bit shuffle seeds per source, fixed by the pipeline seed."""
    return int(np.random.SeedSequence([seed, source_index]).generate_state(1)[0])


def window_dataset(
    sources: Sequence[WindowSource],
    global_batch_size: int,
    seed: int,
    weights: Sequence[float] | None = None,
    shard: HostShard | None = None,
) -> grain.MapDataset:
    """Infinite `MapDataset` of this host's batches; element s is the host's part of global batch s.

    Each batch has `global_batch_size / shard.count` windows, in the nested layout of
    `WindowSource.get_batch`.
    """
    if not sources:
        raise ValueError("window_dataset needs at least one source")
    shard = shard or HostShard.current()
    check_compatible(sources)
    if global_batch_size % shard.count:
        raise UserError(f"batch_size {global_batch_size} does not split evenly over {shard.count} hosts")
    if weights is None:
        weights = [1.0] * len(sources)
    if len(weights) != len(sources) or not all(w > 0 for w in weights):
        raise UserError(
            f"need one positive weight per dataset, got {list(weights)} for {len(sources)} datasets"
        )
    streams = []
    for k, source in enumerate(sources):
        ids = grain.MapDataset.range(len(source)).shuffle(seed=_source_seed(seed, k)).repeat()
        streams.append(ids.map(_Tag(k)))
    mixed = streams[0] if len(streams) == 1 else grain.MapDataset.mix(streams, weights=list(weights))
    global_ids = mixed.batch(global_batch_size, drop_remainder=True)
    return global_ids.map(_HostRows(shard, global_batch_size)).map(_Gather(sources))


def batch_iterator(
    dataset: grain.MapDataset, read_threads: int = 1, prefetch: int = 4
) -> grain.DatasetIterator:
    """A checkpointable iterator over `dataset`, gathering ahead in `read_threads` threads."""
    options = grain.ReadOptions(
        num_threads=read_threads, prefetch_buffer_size=prefetch if read_threads else 0
    )
    return iter(dataset.to_iter_dataset(options))


class _Tag:
    """sample id → (source index, sample id); a class, not a lambda, so it has a readable repr."""

    def __init__(self, source_index: int) -> None:
        self.source_index = source_index

    def __call__(self, sample: int) -> tuple[int, int]:
        return self.source_index, int(sample)

    def __repr__(self) -> str:
        return f"_Tag({self.source_index})"


class _HostRows:
    """The ids of a global batch → this host's contiguous block of them."""

    def __init__(self, shard: HostShard, global_batch_size: int) -> None:
        self.rows = shard.rows(global_batch_size)

    def __call__(self, ids: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return ids[0][self.rows], ids[1][self.rows]

    def __repr__(self) -> str:
        return f"_HostRows({self.rows.start}:{self.rows.stop})"


class _Gather:
    """(source ids [B], sample ids [B]) → one batch, gathered per source and put back in order."""

    def __init__(self, sources: Sequence[WindowSource]) -> None:
        self.sources = list(sources)

    def __call__(self, ids: tuple[np.ndarray, np.ndarray]) -> Batch:
        which, samples = np.asarray(ids[0]), np.asarray(ids[1])
        if len(self.sources) == 1:
            return self.sources[0].get_batch(samples)
        order = np.argsort(which, kind="stable")
        parts = [self.sources[k].get_batch(samples[which == k]) for k in np.unique(which)]
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return _concat_and_reorder(parts, inverse)

    def __repr__(self) -> str:
        return f"_Gather({[s.name for s in self.sources]})"


def _concat_and_reorder(parts: list[Batch], inverse: np.ndarray) -> Batch:
    first = parts[0]
    out: Batch = {}
    for key, value in first.items():
        if isinstance(value, dict):
            out[key] = _concat_and_reorder([p[key] for p in parts], inverse)  # type: ignore[misc]
        else:
            out[key] = np.concatenate([p[key] for p in parts])[inverse]  # type: ignore[index]
    return out
