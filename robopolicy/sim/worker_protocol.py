"""Messages between a vector env and its worker processes: a JSON header plus raw array bytes.

No pickle crosses the process boundary. A frame is `!II` (header length, payload length), the UTF-8
JSON header, then the payload. Arrays travel as raw bytes whose dtype and shape both sides know
(actions: float64 (7,); initial states: float64 (D,); observations: `ObsLayout`).
"""

from __future__ import annotations

import json
import socket
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

_FRAME = struct.Struct("!II")


class WorkerGone(ConnectionError):
    """The peer closed the connection (the worker died, or the parent went away)."""


def _to_json(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot send a {type(value).__name__} to or from a worker")


def send_message(sock: socket.socket, header: dict[str, Any], payload: bytes = b"") -> None:
    """Send one frame; raises WorkerGone if the peer is gone."""
    body = json.dumps(header, default=_to_json).encode("utf-8")
    try:
        sock.sendall(_FRAME.pack(len(body), len(payload)) + body + payload)
    except (BrokenPipeError, ConnectionResetError) as err:
        raise WorkerGone(str(err)) from None


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        try:
            chunk = sock.recv(size - len(chunks))
        except ConnectionResetError as err:
            raise WorkerGone(str(err)) from None
        if not chunk:
            raise WorkerGone("connection closed")
        chunks += chunk
    return bytes(chunks)


def recv_message(sock: socket.socket) -> tuple[dict[str, Any], bytes]:
    """Receive one frame (blocking): (header, payload). Raises WorkerGone on EOF."""
    header_len, payload_len = _FRAME.unpack(_recv_exactly(sock, _FRAME.size))
    header = json.loads(_recv_exactly(sock, header_len).decode("utf-8"))
    payload = _recv_exactly(sock, payload_len) if payload_len else b""
    return header, payload


@dataclass(frozen=True)
class ObsField:
    """One observation entry in a flat byte buffer of `num_slots` consecutive copies (one per env)."""

    key: str
    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int  # bytes from the buffer start to slot 0

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize


@dataclass(frozen=True)
class ObsLayout:
    """Where each observation entry of each env lives in one flat buffer.

    Entry `key` of env i occupies bytes [offset + i * nbytes, offset + (i + 1) * nbytes), so the
    buffer viewed per key is directly the batched array (num_slots, *shape).
    """

    fields: tuple[ObsField, ...]
    num_slots: int

    @staticmethod
    def from_space(space: spaces.Dict, num_slots: int) -> ObsLayout:
        fields, offset = [], 0
        for key, sub in space.spaces.items():
            if not isinstance(sub, spaces.Box):
                raise TypeError(f"observation '{key}' must be a Box space, got {type(sub).__name__}")
            field = ObsField(key, tuple(sub.shape), np.dtype(sub.dtype), offset)
            fields.append(field)
            # 64-byte alignment keeps every batched array aligned for vectorised copies.
            offset += -(-field.nbytes * num_slots // 64) * 64
        return ObsLayout(tuple(fields), num_slots)

    @property
    def nbytes(self) -> int:
        last = self.fields[-1]
        return last.offset + last.nbytes * self.num_slots

    @property
    def slot_nbytes(self) -> int:
        return sum(f.nbytes for f in self.fields)

    def describe(self) -> list[list[Any]]:
        """JSON-able [key, shape, dtype] list, to check that a worker agrees with its parent."""
        return [[f.key, list(f.shape), f.dtype.str] for f in self.fields]

    def batched_views(self, buffer: memoryview | bytearray) -> dict[str, np.ndarray]:
        """{key: (num_slots, *shape) array} views into `buffer` (no copy)."""
        return {
            f.key: np.frombuffer(buffer, f.dtype, self.num_slots * int(np.prod(f.shape)), f.offset).reshape(
                self.num_slots, *f.shape
            )
            for f in self.fields
        }

    def write_slot(self, views: dict[str, np.ndarray], slot: int, obs: dict[str, np.ndarray]) -> None:
        """Copy one env's observation into its slot of the batched views."""
        for f in self.fields:
            views[f.key][slot] = obs[f.key]

    def pack(self, obs: dict[str, np.ndarray]) -> bytes:
        """One env's observation as bytes, in field order (for sending through the socket)."""
        return b"".join(np.ascontiguousarray(obs[f.key], dtype=f.dtype).tobytes() for f in self.fields)

    def unpack_into_slot(self, views: dict[str, np.ndarray], slot: int, data: bytes) -> None:
        """Inverse of `pack`, writing straight into the batched views."""
        if len(data) != self.slot_nbytes:
            raise ValueError(f"observation payload has {len(data)} bytes, expected {self.slot_nbytes}")
        start = 0
        for f in self.fields:
            views[f.key][slot] = np.frombuffer(data, f.dtype, int(np.prod(f.shape)), start).reshape(f.shape)
            start += f.nbytes
