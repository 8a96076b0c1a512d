"""Type and range checks of method config values, read from the config dataclass itself.

A config field's type hint says what it takes (``int``, ``float``, ``bool``, ``str``, ``X | None``,
``Literal[...]``, ``tuple[X, ...]`` or ``tuple[X, Y]``, ``list[X]``); optional bounds live in the field's
metadata: ``dataclasses.field(default=..., metadata={"min": 1})`` with the keys ``min`` and ``max``
(inclusive) and ``above`` (exclusive lower bound), applied to a number or to every number of a tuple; an
``option`` key names the command-line option that sets the field, for the message. The same metadata dict
may carry other keys (e.g. ``test_time``). Checking happens when the config is built
(``AnomalyMethod.config_for``), before any data is read, so ``--set iterations=abc`` or ``iterations=0``
is one line naming the field, the value and what is allowed instead of a crash or an empty run after the
data has loaded. Values are converted where that is lossless: ``1e5`` -> ``100000`` for an int, ``3`` ->
``3.0`` for a float, a JSON list -> a tuple. Rules that relate several fields stay in ``__post_init__``.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from uasbench.errors import UsageError


class _Invalid(Exception):
    """The value does not fit the hint (caught and reported with the field's name)."""


def checked_values(config_cls: type, values: dict[str, Any], method: str, *, owner: str | None = None
                   ) -> dict[str, Any]:
    """``values`` (field name -> value) checked against ``config_cls``'s fields and converted; UsageError
    naming the first unknown field or the first value that does not fit its type or bounds. Messages say
    "for method METHOD", or "for OWNER" when given (settings that are not a method's, e.g. post-processing)."""
    whose = owner or f"method {method!r}"
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UsageError(f"unknown config option(s) {', '.join(unknown)} for {whose} "
                         f"(valid: {', '.join(sorted(fields))})")
    try:
        hints = typing.get_type_hints(config_cls)
    except (NameError, TypeError):  # a plugin's hint names a type only imported for type checkers
        hints = {}
    checked = {}
    for name, value in values.items():
        bounds = {k: v for k, v in fields[name].metadata.items() if k in ("min", "max", "above")}
        try:
            checked[name] = _convert(hints.get(name, Any), value, bounds)
        except _Invalid:
            option = fields[name].metadata.get("option")  # the command-line option that sets it, if any
            raise UsageError(f"invalid option {name}={_show(value)} for {whose}"
                             f"{f' ({option})' if option else ''}: expected "
                             f"{_describe(hints[name], bounds)}") from None
    return checked


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _convert(hint: Any, value: Any, bounds: dict[str, Any]) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for member in args:
            try:
                return _convert(member, value, bounds)
            except _Invalid:
                continue
        raise _Invalid
    if origin is typing.Literal:
        if value in args and type(value) in {type(a) for a in args}:
            return value
        raise _Invalid
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _Invalid
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise _Invalid
            return tuple(_convert(a, v, bounds) for a, v in zip(args, value))
        items = [_convert(args[0], v, bounds) for v in value] if args else list(value)
        return tuple(items) if origin is tuple else items
    if hint is type(None):
        if value is None:
            return None
        raise _Invalid
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Invalid
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Invalid
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise _Invalid
        return _in_bounds(int(value), bounds)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _Invalid
        return _in_bounds(float(value), bounds)
    if hint is str:
        if isinstance(value, str):
            return value
        raise _Invalid
    return value  # a type this checker does not know: the config's own __post_init__ decides


def _in_bounds(number: float, bounds: dict[str, Any]) -> Any:
    if ("min" in bounds and number < bounds["min"]) or ("max" in bounds and number > bounds["max"]) \
            or ("above" in bounds and number <= bounds["above"]):
        raise _Invalid
    return number


_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}


def _describe(hint: Any, bounds: dict[str, Any]) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(member, bounds) for member in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(_show(a) for a in args)
    if origin in (tuple, list):
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return f"a list of {len(args)} values, each {_describe(args[0], bounds)}"
        return f"a list, each item {_describe(args[0], bounds)}" if args else "a list"
    text = _NAMES.get(hint, getattr(hint, "__name__", str(hint)))
    limits = [f"{op} {bounds[key]}" for key, op in (("min", ">="), ("above", ">"), ("max", "<=")) if key in bounds]
    if hint in (int, float) and limits:
        text += " " + " and ".join(limits)
    return text
