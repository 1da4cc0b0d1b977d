"""Config dataclasses: one documented field each, checked once, at the edge.

A config field is declared with :func:`option`, which keeps its help text (shown by
``--help``), its allowed values and its lower bound next to its default::

    lr: float = option(1e-4, "Adam learning rate", minimum=0.0)
    loss: str = option("kl", "distillation loss", choices=("kl", "nll", "mse"))

:func:`check_config` checks a built config against its fields (type, choices, bound), so a
command refuses a bad value in one line before it creates anything on disk;
:func:`config_values` does the same for the raw JSON of a ``--config`` file.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from typing import Any

from poldist.errors import PoldistError
from poldist.schema import is_kind

_KINDS = {int: "int", float: "float", bool: "bool", str: "str"}


def option(
    default: Any,
    help: str,
    *,
    choices: Sequence[Any] | None = None,
    minimum: float | None = None,
) -> Any:
    """A config field: its default, its help (say the unit), allowed values, lower bound."""
    meta: dict[str, Any] = {"help": help}
    if choices is not None:
        meta["choices"] = tuple(choices)
    if minimum is not None:
        meta["minimum"] = minimum
    return dataclasses.field(default=default, metadata=meta)


def _kind(cls: type, name: str) -> str:
    hint = typing.get_type_hints(cls)[name]
    if hint not in _KINDS:
        raise TypeError(f"{cls.__name__}.{name}: config fields must be int, float, bool or str, not {hint}")
    return _KINDS[hint]


def check_value(cls: type, name: str, value: Any, where: str) -> None:
    """Raise a one-line :class:`PoldistError` if ``value`` does not fit field ``name`` of ``cls``."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    kind = _kind(cls, name)
    flag = "--" + name.replace("_", "-")
    if not is_kind(value, kind):
        raise PoldistError(
            f"{where}: {name} ({flag}) must be a{'n' if kind == 'int' else ''} {kind}, got {value!r}"
        )
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
        raise PoldistError(f"{where}: {name} ({flag}) must be one of {list(choices)}, got {value!r}")
    minimum = f.metadata.get("minimum")
    if minimum is not None and value < minimum:
        raise PoldistError(f"{where}: {name} ({flag}) must be at least {minimum}, got {value!r}")


def check_config(cfg: Any, where: str = "config") -> None:
    """Check every field of a config dataclass instance (type, choices, lower bound)."""
    for f in dataclasses.fields(cfg):
        check_value(type(cfg), f.name, getattr(cfg, f.name), where)


def config_values(cls: type, raw: Any, where: str) -> dict[str, Any]:
    """The fields of a decoded ``--config`` JSON for ``cls``, each checked.

    Raises:
        PoldistError: ``raw`` is not a JSON object, names unknown fields, or holds a value of
            the wrong type or out of range (one line, naming the field and its flag).
    """
    if not isinstance(raw, dict):
        raise PoldistError(
            f"{where} must hold a JSON object of {cls.__name__} fields, got {type(raw).__name__}"
        )
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise PoldistError(f"{where} has unknown keys {unknown}; {cls.__name__} has {names}")
    for name, value in raw.items():
        check_value(cls, name, value, where)
    return dict(raw)
