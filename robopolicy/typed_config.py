"""Frozen dataclasses from parsed TOML or JSON tables, every value checked against its annotation.

`from_table(SweepConfig, tomllib.load(f), where="sweep.toml")` builds the dataclass, field by field
and recursively, and raises `UserError` with one line naming the file and the field path of the
first problem, e.g.

    sweep.toml: field 'settings[1].max_steps' must be an integer, got 2.7

What is checked, by annotation: `str`; `int` (a bool is not an integer); `float` (an integer is
accepted and converted); `bool`; `Literal[...]` (one of the values); `tuple[T, ...]` and
`tuple[T1, T2]` from a list (never from a string); `tuple[tuple[str, T], ...]` also from a table
(its key-value pairs, in order); `dict[str, T]` and `Mapping[str, T]` from a table; nested dataclasses from a table;
`X | None`. Keys the dataclass does not have are an error; missing keys take the
field's default. Values are then checked by the dataclass's own `__post_init__`, whose
`ValueError`/`TypeError` becomes a `UserError` naming the file and the table it came from.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from robopolicy.errors import UserError

T = TypeVar("T")


def read_toml(
    path: str | Path, what: str, where: str | None = None, error: type[UserError] = UserError
) -> dict[str, Any]:
    """The table of a TOML file. A missing, unreadable or malformed file is one `error` (a UserError)
    naming `where` (default: the path) and `what` the file was meant to be, e.g. "sweep config"."""
    where = str(path) if where is None else where
    try:
        with Path(path).open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise error(f"{where}: no such {what} file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise error(f"{where}: unreadable {what} file ({e})") from None


def from_table(cls: type[T], table: Any, where: str, path: str = "") -> T:
    """An instance of the dataclass `cls` from `table`; errors name `where` (a file) and the field path."""
    return _dataclass(cls, table, where, path)


def _dataclass(cls: type[T], table: Any, where: str, path: str) -> T:
    if not isinstance(table, Mapping):
        raise _error(where, path, "must be a table", table)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(table) - set(fields))
    if unknown:
        inside = f" in '{path}'" if path else ""
        raise UserError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}{inside}; known: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    values = {
        name: _value(hints[name], value, where, f"{path}.{name}" if path else name)
        for name, value in table.items()
    }
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        inside = f"'{path}': " if path else ""
        raise UserError(f"{where}: {inside}{e}") from None


def _value(annotation: Any, value: Any, where: str, path: str) -> Any:
    """`value` checked (and converted, e.g. list → tuple) against `annotation`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _value(options[0], value, where, path)
        for option in options[:-1]:
            try:
                return _value(option, value, where, path)
            except UserError:
                continue
        return _value(options[-1], value, where, path)
    if origin is Literal:
        if isinstance(value, bool) or value not in args:
            raise _error(where, path, f"must be one of {', '.join(map(repr, args))}", value)
        return value
    if origin is tuple:
        if isinstance(value, Mapping) and _is_pairs(args):  # {a = 1, b = 2} for (("a", 1), ("b", 2))
            value = [list(item) for item in value.items()]
        if not isinstance(value, (list, tuple)):
            raise _error(where, path, "must be a list", value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], v, where, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise _error(where, path, f"must be a list of {len(args)} values", value)
        return tuple(
            _value(a, v, where, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _error(where, path, "must be a table", value)
        return {
            _value(args[0], k, where, path): _value(args[1], v, where, f"{path}.{k}")
            for k, v in value.items()
        }
    if dataclasses.is_dataclass(annotation):
        return _dataclass(annotation, value, where, path)
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise _error(where, path, "must be true or false", value)
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _error(where, path, "must be an integer", value)
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _error(where, path, "must be a number", value)
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise _error(where, path, "must be a string", value)
        return value
    raise TypeError(f"from_table: field '{path}' has an unsupported annotation {annotation!r}")


def _is_pairs(args: tuple[Any, ...]) -> bool:
    """Whether tuple[args] is `tuple[tuple[str, T], ...]`, which a table fills with its items."""
    if len(args) != 2 or args[1] is not Ellipsis or typing.get_origin(args[0]) is not tuple:
        return False
    pair = typing.get_args(args[0])
    return len(pair) == 2 and pair[0] is str and pair[1] is not Ellipsis


def _error(where: str, path: str, must: str, value: Any) -> UserError:
    what = f"field '{path}'" if path else "the file"
    return UserError(f"{where}: {what} {must}, got {value!r}")
