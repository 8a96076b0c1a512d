"""Type, range and rule checks of every structured input (method configs, the benchmark file), read from
the input's dataclass itself: the one validation path, whose errors are ``UsageError``s (exit code 2).

A field's type hint says what it takes (``int``, ``float``, ``bool``, ``str``, ``X | None``,
``Literal[...]`` (the choices are listed in the message), ``tuple[X, ...]`` or ``tuple[X, Y]``, ``list[X]``,
``dict[str, X]`` (a table)); optional bounds live in the field's metadata:
``dataclasses.field(default=..., metadata={"min": 1, "max": 64})`` with the keys ``min`` and ``max``
(inclusive), ``above`` and ``below`` (exclusive), applied to a number or to every number of a tuple, and
``expected`` (words that replace the type's description in messages), ``option`` (the command-line option that
sets the field, named in messages). The same metadata dict may carry other keys (e.g. ``test_time``). Checking happens when the config is built (``AnomalyMethod.config_for``), before
any data is read, so ``--set iterations=abc`` or ``iterations=0`` is one line naming the field, the value and
what is allowed instead of a crash or an empty run after the data has loaded. Values are converted where that
is lossless: ``1e5`` -> ``100000`` for an int, ``3`` -> ``3.0`` for a float, a JSON list -> a tuple.

Rules that relate several fields are declared on the dataclass as a ``validate(self)`` method that raises
``Invalid(key, message)``; ``check_rules`` runs it and reports the key, its value and the rule in one line.
``MethodConfig.__post_init__`` calls ``check_instance``, so a config built by hand is checked the same way.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from typing import Any, TypeVar

from uasbench.errors import UsageError

T = TypeVar("T")


_BOUNDS = ("min", "max", "above", "below")


class _Invalid(Exception):
    """The value does not fit the hint (caught and reported with the field's name)."""


class Invalid(Exception):
    """Raised by a dataclass's ``validate`` method: the rule on field ``key`` that the values break."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message


class RuleError(UsageError):
    """A broken cross-field rule, as ``check_rules`` reports it (callers may add where the values came from)."""

    def __init__(self, key: str, value: Any, rule: str) -> None:
        super().__init__(f"invalid option {key}={show_value(value)}: {rule}")
        self.key, self.value, self.rule = key, value, rule


@dataclasses.dataclass
class Problem(Exception):
    """The first thing wrong with a set of values: ``kind`` is ``unknown`` (``keys`` not fields; ``expected``
    lists the valid ones), ``value`` (``value`` of field ``keys[0]`` is not ``expected``), or ``missing``
    (a field without a default was not given)."""

    kind: str
    keys: list[str]
    expected: str
    value: Any = None


@functools.lru_cache(maxsize=None)
def type_hints(cls: type) -> dict[str, Any]:
    """The resolved type hints of a dataclass's fields ({} if a hint names a type only imported for type
    checkers: such a plugin config is then checked for unknown names only)."""
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError):
        return {}


def check_fields(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (field name -> value) checked against ``cls``'s fields and converted; raises ``Problem`` for
    the unknown names, else the first value that does not fit its type or bounds, else a missing field."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [name for name in values if name not in fields]
    if unknown:
        raise Problem("unknown", unknown, ", ".join(fields))
    hints = type_hints(cls)
    checked = {}
    for name, value in values.items():
        bounds = {k: v for k, v in fields[name].metadata.items() if k in _BOUNDS}
        try:
            checked[name] = _convert(hints.get(name, Any), value, bounds)
        except _Invalid:
            expected = fields[name].metadata.get("expected") or _describe(hints[name], bounds)
            raise Problem("value", [name], expected, value) from None
    for name, f in fields.items():
        if name not in checked and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise Problem("missing", [name], "")
    return checked


def checked_values(config_cls: type, values: dict[str, Any], method: str, *, owner: str | None = None
                   ) -> dict[str, Any]:
    """A method config's ``values`` checked and converted by ``check_fields``; UsageError naming the unknown
    fields or the first value that does not fit its type or bounds. Messages say "for method METHOD", or
    "for OWNER" when given (settings that are not a method's, e.g. post-processing), and name the
    command-line option that sets the field when its metadata has an ``option`` key."""
    whose = owner or f"method {method!r}"
    try:
        return check_fields(config_cls, values)
    except Problem as problem:
        if problem.kind == "unknown":
            raise UsageError(f"unknown config option(s) {', '.join(sorted(problem.keys))} for {whose} "
                             f"(valid: {', '.join(sorted(problem.expected.split(', ')))})") from None
        name = problem.keys[0]
        option = {f.name: f for f in dataclasses.fields(config_cls)}[name].metadata.get("option")
        raise UsageError(f"invalid option {name}={show_value(problem.value)} for {whose}"
                         f"{f' ({option})' if option else ''}: expected {problem.expected}") from None


def checked_table(cls: type[T], values: Any, *, source: str, key: str = "") -> T:
    """A table of a structured file (``values``, parsed from ``source``) as an instance of the dataclass ``cls``,
    checked by ``check_fields`` and ``check_rules``; UsageError ``source: dotted.key: what is wrong``."""
    def fail(name: str, message: str) -> UsageError:
        return UsageError(f"{source}: {f'{key}.{name}' if key and name else key or name}: {message}")

    if not isinstance(values, dict):
        raise fail("", f"must be a table ([{key}]), got {type(values).__name__}")
    try:
        checked = check_fields(cls, values)
    except Problem as problem:
        if problem.kind == "unknown":
            raise fail(problem.keys[0], f"unknown key (valid: {problem.expected})") from None
        if problem.kind == "missing":
            raise fail(problem.keys[0], "missing") from None
        raise fail(problem.keys[0], f"must be {problem.expected}, got {problem.value!r}") from None
    instance = cls(**checked)
    try:
        check_rules(instance)
    except RuleError as exc:
        raise fail(exc.key, exc.rule) from None
    return instance


def check_rules(instance: Any, prefix: str = "") -> None:
    """Run ``instance.validate()``, the cross-field rules its dataclass declares; a broken rule is a UsageError
    naming the dotted key (``prefix`` + field), its value and the rule."""
    validate = getattr(instance, "validate", None)
    if validate is None:
        return
    try:
        validate()
    except Invalid as exc:
        raise RuleError(prefix + exc.key, getattr(instance, exc.key, None), exc.message) from None


def check_instance(instance: Any) -> None:
    """Check a dataclass instance built by hand (its ``__post_init__`` calls this): every field by its hint and
    bounds, converted in place as ``check_fields`` converts (a list for a tuple field becomes a tuple), then its
    rules (``check_rules``); UsageError naming the field, its value and what is expected."""
    values = {f.name: getattr(instance, f.name) for f in dataclasses.fields(instance)}
    try:
        converted = check_fields(type(instance), values)
    except Problem as problem:
        raise UsageError(f"invalid option {problem.keys[0]}={show_value(problem.value)}: expected "
                         f"{problem.expected}") from None
    for name, value in converted.items():
        if value is not values[name]:
            object.__setattr__(instance, name, value)
    check_rules(instance)


def show_value(value: Any) -> str:
    """A value as messages show it: strings quoted, everything else as printed."""
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
    if origin is dict:
        if not isinstance(value, dict):
            raise _Invalid
        return dict(value)
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
            or ("above" in bounds and number <= bounds["above"]) or ("below" in bounds and number >= bounds["below"]):
        raise _Invalid
    return number


_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}


def _describe(hint: Any, bounds: dict[str, Any]) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(member, bounds) for member in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is dict:
        return "a table"
    if origin in (tuple, list):
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return f"a list of {len(args)} values, each {_describe(args[0], bounds)}"
        return f"a list, each item {_describe(args[0], bounds)}" if args else "a list"
    text = _NAMES.get(hint, getattr(hint, "__name__", str(hint)))
    limits = [f"{op} {bounds[key]}" for key, op in (("min", ">="), ("above", ">"), ("max", "<="), ("below", "<"))
              if key in bounds]
    if hint in (int, float) and limits:
        text += " " + " and ".join(limits)
    return text
