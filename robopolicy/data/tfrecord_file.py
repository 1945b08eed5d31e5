"""Reading TFRecord files without TensorFlow: the framing only, each record's bytes in file order.

A TFRecord file is a sequence of records, each framed as

    uint64 length (little-endian) | uint32 masked CRC-32C of those 8 bytes | data | uint32 masked CRC-32C of data

where masked(crc) = ((crc >> 15) | (crc << 17)) + 0xA282EAD8 (mod 2**32). Both checksums are verified,
so a truncated file and a flipped bit are reported where they are, not decoded into wrong values.
What the records hold (serialized `tf.train.Example`s for TFDS) is the caller's business.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import google_crc32c

from robopolicy.data.validate import DatasetError

_HEADER = struct.Struct("<QI")  # length, masked CRC of the length
_FOOTER = struct.Struct("<I")  # masked CRC of the data
_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C of `data` (the mask keeps a CRC of CRC-bearing data from being trivial)."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def read_records(path: str | Path) -> Iterator[bytes]:
    """Every record of the TFRecord file at `path`, in order, each checked against its checksums.

    Raises `DatasetError` naming the file, the record's position in it and its byte offset at the
    first truncated or corrupt record; the records before it have been yielded. A missing or
    unreadable file raises `OSError`.
    """
    with Path(path).open("rb") as f:
        position = 0
        while True:
            where = f"{path}: record {position} (byte {f.tell()})"
            header = f.read(_HEADER.size)
            if not header:
                return
            if len(header) < _HEADER.size:
                raise DatasetError(
                    f"{where} is truncated: {len(header)} of {_HEADER.size} header bytes present"
                )
            length, length_crc = _HEADER.unpack(header)
            if masked_crc32c(header[:8]) != length_crc:
                raise DatasetError(f"{where} is corrupt: the checksum of its length does not match")
            data = f.read(length)
            footer = f.read(_FOOTER.size)
            if len(data) < length or len(footer) < _FOOTER.size:
                raise DatasetError(f"{where} is truncated: {len(data)} of its {length} bytes present")
            if masked_crc32c(data) != _FOOTER.unpack(footer)[0]:
                raise DatasetError(f"{where} is corrupt: the checksum of its data does not match")
            yield data
            position += 1
