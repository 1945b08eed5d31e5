"""Frozen config dataclasses to and from JSON-able dicts, so that configs reach worker processes
without pickle. Nested dataclasses are rebuilt from their field types; lists come back as tuples.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def config_to_json(config: object) -> dict[str, Any]:
    """A dict of JSON types (tuples become lists) of a dataclass instance."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"expected a dataclass instance, got {type(config).__name__}")
    return dataclasses.asdict(config)


def _from_json(value: Any) -> Any:
    return tuple(_from_json(v) for v in value) if isinstance(value, list) else value


def config_from_json(cls: type[T], data: dict[str, Any]) -> T:
    """Inverse of `config_to_json` for dataclass `cls`; unknown keys raise TypeError."""
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        hint = hints.get(name)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, dict):
            kwargs[name] = config_from_json(hint, value)
        else:
            kwargs[name] = _from_json(value)
    return cls(**kwargs)
