"""The wire format of a policy server, openpi's: msgpack, with numpy arrays and scalars as maps.

An array travels as the map {b"__ndarray__": True, b"data": its C-order bytes, b"dtype": dtype.str,
b"shape": its shape}; a numpy scalar as {b"__npgeneric__": True, b"data": its value, b"dtype":
dtype.str}. Object, void (structured) and complex dtypes are refused both ways, so a message can only
ever hold plain data: no pickle, nothing that runs code. Decoding checks every array map (a known
dtype, a shape of non-negative integers, exactly shape × itemsize bytes) and raises `WireError` on
anything else, as it does on bytes that are not msgpack.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

_REFUSED_KINDS = ("O", "V", "c")  # object, void/structured, complex
_NDARRAY = b"__ndarray__"
_NPGENERIC = b"__npgeneric__"


class WireError(ValueError):
    """A message that is not a well-formed msgpack message of this format."""


def _encode(obj: Any) -> Any:
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind in _REFUSED_KINDS:
        raise TypeError(f"cannot send numpy dtype {obj.dtype} (object, structured and complex are refused)")
    if isinstance(obj, np.ndarray):
        return {_NDARRAY: True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {_NPGENERIC: True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot send a {type(obj).__name__}")


def _dtype(value: Any) -> np.dtype:
    if not isinstance(value, str):
        raise WireError(f"array dtype must be a string, got {type(value).__name__}")
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise WireError(f"unknown array dtype {value!r}") from None
    if dtype.kind in _REFUSED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise WireError(f"refused array dtype {value!r} (object, structured and complex are refused)")
    return dtype


def _decode(obj: dict[Any, Any]) -> Any:
    if _NDARRAY in obj:
        dtype = _dtype(obj.get(b"dtype"))
        data, shape = obj.get(b"data"), obj.get(b"shape")
        if not isinstance(data, bytes):
            raise WireError("array data must be bytes")
        if not isinstance(shape, (list, tuple)) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
        ):
            raise WireError(f"array shape must be a list of non-negative integers, got {shape!r}")
        if math.prod(shape) * dtype.itemsize != len(data):
            raise WireError(
                f"array of shape {list(shape)} and dtype {dtype.str} needs "
                f"{math.prod(shape) * dtype.itemsize} bytes, got {len(data)}"
            )
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    if _NPGENERIC in obj:
        dtype = _dtype(obj.get(b"dtype"))
        try:
            return dtype.type(obj.get(b"data"))
        except (TypeError, ValueError, OverflowError) as e:
            raise WireError(f"bad numpy scalar of dtype {dtype.str}: {e}") from None
    return obj


def packb(obj: Any) -> bytes:
    """One message: dicts, lists, strings, numbers, bytes, numpy arrays and scalars."""
    return msgpack.packb(obj, default=_encode)


def unpackb(data: bytes) -> Any:
    """The value of one message; `WireError` if it is not one."""
    try:
        return msgpack.unpackb(data, object_hook=_decode)
    except WireError:
        raise
    except Exception as e:  # msgpack raises many types (ExtraData, FormatError, StackError, ValueError, …)
        raise WireError(f"not a msgpack message ({type(e).__name__}: {e})") from None
