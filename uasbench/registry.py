"""Method registry, after timm's: ``register_method``, ``create_method``, ``list_methods``.

Methods arrive two ways: the ``@register_method`` decorator (handy in a script or a test) and the
``uasbench.methods`` entry-point group, through which the built-in plugins in ``uasbench_methods/`` are
registered exactly as a third-party package registers its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, TypeVar

from uasbench.errors import UasbenchError, UsageError
from uasbench.method import AnomalyMethod

ENTRY_POINT_GROUP = "uasbench.methods"
T = TypeVar("T", bound=type[AnomalyMethod])


@dataclass(frozen=True)
class MethodInfo:
    name: str
    cls: type[AnomalyMethod]
    source: str  # the distribution that provides it, or the module for decorator registrations


_registered: dict[str, MethodInfo] = {}
_broken: dict[str, str] = {}  # entry-point name -> why it could not be loaded


def register_method(cls: T) -> T:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, AnomalyMethod)) or not cls.name:
        raise TypeError("register_method takes an AnomalyMethod subclass with a non-empty `name`")
    _registered[cls.name] = MethodInfo(cls.name, cls, cls.__module__)
    return cls


def _from_entry_points() -> dict[str, MethodInfo]:
    """Load every plugin of the group; a broken one is remembered (and reported when asked for by name)
    instead of taking the whole toolkit down."""
    found: dict[str, MethodInfo] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:
            _broken[ep.name] = f"method plugin {ep.name!r} ({ep.value}) failed to load: {exc}"
            continue
        if not (isinstance(cls, type) and issubclass(cls, AnomalyMethod)):
            _broken[ep.name] = f"method plugin {ep.name!r} ({ep.value}) is not an AnomalyMethod subclass"
            continue
        source = ep.dist.name if ep.dist is not None else ep.module
        found[ep.name] = MethodInfo(ep.name, cls, source)
    return found


def method_infos() -> dict[str, MethodInfo]:
    """All methods by name; decorator registrations win over entry points of the same name."""
    return {**_from_entry_points(), **_registered}


def list_methods() -> list[str]:
    return sorted(method_infos())


def broken_plugins() -> dict[str, str]:
    """Plugins of the entry-point group that failed to load, with the reason (for ``uasbench methods``)."""
    method_infos()
    return dict(_broken)


def get_method(name: str) -> type[AnomalyMethod]:
    infos = method_infos()
    if name not in infos and name in _broken:
        raise UasbenchError(_broken[name])
    if name not in infos:
        raise UsageError(f"unknown --method {name!r} (valid: {', '.join(sorted(infos)) or 'none installed'})")
    return infos[name].cls


def create_method(name: str, profile: str = "paper", overrides: dict[str, Any] | None = None,
                  **kwargs: Any) -> AnomalyMethod:
    """Instantiate a registered method from a named profile (``paper`` or ``quick``) and overrides."""
    return get_method(name).from_profile(profile, overrides, **kwargs)
