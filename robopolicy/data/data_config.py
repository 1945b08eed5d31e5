"""Configuration of the training data pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field

from robopolicy.data.normalization import NormalizationConfig


@dataclass(frozen=True)
class DataConfig:
    """How training windows are normalized, encoded and read (their shape is the policy's: horizons and
    frame stride are `PolicyConfig` fields).

    Attributes:
        normalization: normalization mode per key.
        instruction_length: words per encoded instruction (longer ones are truncated, shorter padded).
        read_threads: grain threads that gather windows ahead of the train step (0 = in the loop).
        prefetch: batches gathered ahead when `read_threads` > 0.
        frame_cache_gb: when all the frames the policy reads, decoded at its image size, take at most
            this many GiB, they are decoded once into memory (a batch is then one gather, which leaves
            the cores to the train step); larger datasets stream frames from disk per batch, so host
            memory stays bounded by this figure whatever the dataset's size. 0 always streams.
    """

    normalization: NormalizationConfig = field(default_factory=NormalizationConfig)
    instruction_length: int = 16
    read_threads: int = 1
    prefetch: int = 4
    frame_cache_gb: float = 1.0

    def __post_init__(self) -> None:
        for name in ("instruction_length", "prefetch"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"DataConfig: {name} must be a positive integer, got {value!r}")
        if not isinstance(self.frame_cache_gb, int | float) or self.frame_cache_gb < 0:
            raise ValueError(f"DataConfig: frame_cache_gb must be >= 0, got {self.frame_cache_gb!r}")
        if not isinstance(self.read_threads, int) or self.read_threads < 0:
            raise ValueError(
                f"DataConfig: read_threads must be a non-negative integer, got {self.read_threads!r}"
            )
