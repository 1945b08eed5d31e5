"""Word-level vocabulary of a dataset's language instructions.

Instructions are lowercased and split into runs of letters and digits ("Put the red cube on the
plate." → put, the, red, cube, on, the, plate). Id 0 is padding and id 1 an unknown word; known words
get ids from 2 in sorted order, so the vocabulary is a pure function of the set of instructions.
The vocabulary travels with the normalization stats into every checkpoint, so inference encodes an
instruction exactly as training did.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from jaxtyping import Int

PAD_ID = 0
UNKNOWN_ID = 1
_FIRST_WORD_ID = 2
_WORD = re.compile(r"[a-z0-9]+")


def split_words(text: str) -> list[str]:
    """The lowercase words of an instruction."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class InstructionVocab:
    """Known words (ids 2, 3, ... in order) and the fixed encoded length `max_length`."""

    words: tuple[str, ...]
    max_length: int

    def __post_init__(self) -> None:
        if self.max_length < 1:
            raise ValueError(f"InstructionVocab: max_length must be positive, got {self.max_length}")
        if len(set(self.words)) != len(self.words):
            raise ValueError("InstructionVocab: words must be unique")

    @classmethod
    def build(cls, instructions: Iterable[str], max_length: int) -> InstructionVocab:
        return cls(tuple(sorted({w for text in instructions for w in split_words(text)})), max_length)

    @property
    def size(self) -> int:
        """Number of ids, padding and unknown included."""
        return len(self.words) + _FIRST_WORD_ID

    def encode(self, text: str) -> Int[np.ndarray, " l"]:
        """int32 [max_length]: word ids, truncated or padded with 0."""
        ids = {w: i + _FIRST_WORD_ID for i, w in enumerate(self.words)}
        tokens = [ids.get(w, UNKNOWN_ID) for w in split_words(text)][: self.max_length]
        out = np.full(self.max_length, PAD_ID, np.int32)
        out[: len(tokens)] = tokens
        return out

    def to_dict(self) -> dict[str, object]:
        return {"words": list(self.words), "max_length": self.max_length}

    @classmethod
    def from_dict(cls, d: dict) -> InstructionVocab:
        return cls(tuple(d["words"]), int(d["max_length"]))
