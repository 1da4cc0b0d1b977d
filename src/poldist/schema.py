"""Checks of JSON-decoded values (checkpoint metadata, configs): one clear error line each.

Metadata is read from files that people copy, edit and send around, so every field a loader
uses is checked for its type and allowed values before anything is built from it. A failure
names the file, the field and what was expected, e.g. ``checkpoint runs/x: envs[0].domain must
be one of ['atari', 'minatar'], got 'minatr'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from poldist.errors import PoldistError

_MISSING = object()
_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "dict": (dict,),
    "list": (list, tuple),
}


def _kind_of(default: Any) -> str:
    """The schema kind a default value stands for (``True`` is a bool, not an int)."""
    for kind in ("bool", "int", "float", "str", "dict", "list"):
        if isinstance(default, _TYPES[kind]) and not (kind in ("int", "float") and isinstance(default, bool)):
            return kind
    raise TypeError(f"no schema kind for {default!r}")


def is_kind(value: Any, kind: str) -> bool:
    """Whether ``value`` is of schema ``kind`` (str, int, float, bool, dict, list); bools are
    neither ints nor floats, ints are floats."""
    if kind in ("int", "float") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[kind])


def require(
    d: Any,
    key: str,
    where: str,
    kind: str,
    *,
    choices: Sequence[Any] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    default: Any = _MISSING,
) -> Any:
    """``d[key]`` checked to be of ``kind`` (within ``choices`` / ``[minimum, maximum]``).

    Args:
        d: the JSON object the field belongs to.
        key: the field's name.
        where: what ``d`` is, for the message (``"checkpoint runs/x: envs[0]"``).
        kind: ``str``, ``int``, ``float``, ``bool``, ``dict`` or ``list``.
        default: returned when the field is absent; without one, absence is an error.

    Raises:
        PoldistError: ``d`` is not an object, the field is missing, of another type or out of range.
    """
    if not isinstance(d, dict):
        raise PoldistError(f"{where} must be a JSON object, got {type(d).__name__}")
    if key not in d:
        if default is not _MISSING:
            return default
        raise PoldistError(f"{where}: missing field {key!r}")
    value = d[key]
    if not is_kind(value, kind):
        raise PoldistError(f"{where}: {key} must be a{'n' if kind == 'int' else ''} {kind}, got {value!r}")
    if choices is not None and value not in choices:
        raise PoldistError(f"{where}: {key} must be one of {sorted(choices)}, got {value!r}")
    if minimum is not None and value < minimum:
        raise PoldistError(f"{where}: {key} must be at least {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise PoldistError(f"{where}: {key} must be at most {maximum}, got {value!r}")
    return value


def require_ints(
    d: Any,
    key: str,
    where: str,
    *,
    length: int | None = None,
    minimum: int | None = None,
    default: Any = _MISSING,
) -> list[int]:
    """``d[key]`` checked to be a list of ints (of ``length``, each at least ``minimum``)."""
    values = require(d, key, where, "list", default=default)
    ok = all(is_kind(v, "int") and (minimum is None or v >= minimum) for v in values)
    if not ok or (length is not None and len(values) != length):
        size = f"{length} " if length is not None else ""
        bound = f" >= {minimum}" if minimum is not None else ""
        raise PoldistError(f"{where}: {key} must be a list of {size}ints{bound}, got {values!r}")
    return list(values)


def require_like(d: Any, defaults: dict[str, Any], where: str) -> None:
    """Every field of ``d`` is a known key of ``defaults`` and of the same kind as its default.

    Probabilities (keys ending in ``_prob`` or ``_probability``) must lie in ``[0, 1]``, and
    integer fields must not be negative.
    """
    if not isinstance(d, dict):
        raise PoldistError(f"{where} must be a JSON object, got {type(d).__name__}")
    unknown = sorted(set(d) - set(defaults))
    if unknown:
        raise PoldistError(f"{where}: unknown fields {unknown}; known: {sorted(defaults)}")
    for key, default in defaults.items():
        if key in d:
            kind = _kind_of(default)
            prob = key.endswith(("_prob", "_probability"))
            require(
                d,
                key,
                where,
                kind,
                minimum=0 if kind == "int" or prob else None,
                maximum=1 if prob else None,
            )
