"""The one interface every anomaly segmentation method implements.

Kept as small as scikit-learn's estimator API: build from a typed config (or a named profile),
``fit`` on healthy training slices, ``score`` slices into per-pixel anomaly maps, ``save``/``load``.
"""
from __future__ import annotations

import dataclasses
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from uasbench.checkpoints import load_checkpoint, save_checkpoint
from uasbench.choices import DEVICES
from uasbench.config_check import RuleError, check_instance, checked_values, show_value
from uasbench.data.slices import SliceSet
from uasbench.errors import UasbenchError, UsageError

M = TypeVar("M", bound="AnomalyMethod")


@dataclasses.dataclass
class MethodConfig:
    """Base of every method's config. Subclasses add typed fields whose defaults are the paper's settings.

    A field that acts only at test time (sampling steps, mask stride, batch size of inference, ...) is declared
    with ``dataclasses.field(default=..., metadata={"test_time": True})``; every other field is a training
    field. Changing test-time fields reuses a trained network (``uasbench rescore``, the run's resume key).

    Types and bounds are checked from the hints and field metadata (``uasbench.config_check``); rules that relate
    several fields go in ``validate``, which raises ``config_check.Invalid(field, message)``. A subclass that
    needs its own ``__post_init__`` calls ``super().__post_init__()`` so the rules still run."""

    def __post_init__(self) -> None:
        check_instance(self)  # types, bounds and rules, also of a config built by hand

    def validate(self) -> None:
        """Rules that relate several fields (a subclass calls ``super().validate()`` first); none here."""


def redefault(base: type, name: str, default: Any) -> Any:
    """The field ``name`` of the config class ``base`` with another default, for a subclass: its bounds and its
    test-time flag stay the base's (a plain ``name: int = 128`` in the subclass would drop them, and with them
    the checks of ``--set name=...``). Usage: ``channels: int = redefault(NetOptions, "channels", 128)``."""
    original = next((f for f in dataclasses.fields(base) if f.name == name), None)
    if original is None:
        raise TypeError(f"{base.__name__} has no field {name!r} to give another default")
    return dataclasses.field(default=default, metadata=original.metadata)


def inherited_metadata_lost(config_cls: type) -> list[str]:
    """Fields of ``config_cls`` that redeclare a field of a base config without its metadata (bounds,
    test-time flag): what ``redefault`` prevents; the contract kit checks it."""
    lost = []
    for f in dataclasses.fields(config_cls):
        for base in config_cls.__mro__[1:]:
            inherited = {g.name: g for g in dataclasses.fields(base)} if dataclasses.is_dataclass(base) else {}
            if f.name in inherited:
                if any(key not in f.metadata for key in inherited[f.name].metadata):  # dropped, not changed
                    lost.append(f"{f.name} (from {base.__name__})")
                break
    return lost


def test_time_fields(config_cls: type[MethodConfig]) -> frozenset[str]:
    """Names of the config fields marked ``metadata={"test_time": True}``: those that never change training."""
    return frozenset(f.name for f in dataclasses.fields(config_cls) if f.metadata.get("test_time", False))


test_time_fields.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test for pytest to collect


def training_fields(config: MethodConfig) -> dict[str, Any]:
    """The config as a dict without its test-time fields: what determines the trained networks."""
    test_time = test_time_fields(type(config))
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in test_time}


@dataclasses.dataclass(frozen=True)
class NetworkCost:
    """One network of a method and how often a run uses it: the input of ``uasbench benchmark --dry-run``'s
    cost estimate. The FLOPs of one forward pass are counted by building the network and running one
    ``(1, *input_shape)`` sample through it under torch's FLOP counter, on the meta device (no memory, no
    time, even for the paper's networks); a training sample counts as 3 forward passes (forward + backward)."""

    name: str
    build: Callable[[], torch.nn.Module]
    input_shape: tuple[int, ...]  # (channels, height, width) of one sample
    timestep: bool = False  # called as net(x, t) rather than net(x)
    train_samples: int = 0  # samples through forward and backward while fitting (iterations x batch size)
    passes_per_slice: float = 0.0  # forward passes per scored slice (validation, healthy validation, test)
    passes_per_val_slice_in_fit: float = 0.0  # forward passes per labelled validation slice while fitting


def forward_flops(cost: NetworkCost) -> int:
    """FLOPs of one forward pass of one sample (2 per multiply-add), counted on the meta device."""
    with torch.device("meta"):
        net = cost.build()
        x = torch.zeros((1, *cost.input_shape))
        args = (x, torch.zeros(1, dtype=torch.long)) if cost.timestep else (x,)
    net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(*args)
    return counter.get_total_flops()


def resolve_device(name: str) -> torch.device:
    """Map ``auto|cpu|cuda`` to a torch device; ``cuda`` without a GPU is a usage error, not a crash."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: no CUDA device is available here (valid: {', '.join(DEVICES)})")
        return torch.device(name)
    raise UsageError(f"invalid --device {name!r} (valid: {', '.join(DEVICES)})")


class AnomalyMethod(ABC):
    """Fit on healthy slices, score slices into anomaly maps (higher = more anomalous).

    Class attributes a plugin sets:
      name: the registry name (``uasbench run --method NAME``).
      Config: its ``MethodConfig`` dataclass; field defaults reproduce the ``paper`` profile.
      profiles: named overrides of Config; must contain ``paper``, ``quick`` and ``tiny`` (settings that keep
        fit + score to seconds on one CPU thread: what the contract checks of ``uasbench.testing`` use).
      presets: named test-time overrides per profile (``--preset NAME``): ``{name: {profile: {field: value}}}``.
      train_modalities: roles needed by ``fit``: ``("input",)`` or ``("input", "target")``.
      test_modalities: roles needed by ``score``; always ``("input",)`` for the built-in methods.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    profiles: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "quick": {}, "tiny": {}}
    presets: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {}
    train_modalities: ClassVar[tuple[str, ...]] = ("input",)
    test_modalities: ClassVar[tuple[str, ...]] = ("input",)

    def __init__(self, config: MethodConfig | None = None, *, device: str | torch.device = "cpu",
                 seed: int = 0) -> None:
        self.config = config if config is not None else self.Config()
        if not isinstance(self.config, self.Config):
            raise TypeError(f"{type(self).__name__} needs a {self.Config.__name__}, got {type(self.config).__name__}")
        checked_values(type(self.config), dataclasses.asdict(self.config), self.name)  # a config built by hand too
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.seed = seed
        self.is_fitted = False
        self.run_identity: dict[str, Any] | None = None  # what run the fitted state was made for (the engine sets it)

    @classmethod
    def config_for(cls, profile: str = "paper", overrides: dict[str, Any] | None = None) -> MethodConfig:
        """The config of a named profile, with optional field overrides; an unknown name, or a value of the
        wrong type or out of range (see ``uasbench.config_check``), is a usage error naming it."""
        if profile not in cls.profiles:
            raise UsageError(f"invalid --profile {profile!r} for method {cls.name!r} "
                             f"(valid: {', '.join(sorted(cls.profiles))})")
        values = {**cls.profiles[profile], **(overrides or {})}
        return cls.checked_config(values)

    @classmethod
    def checked_config(cls, values: dict[str, Any]) -> MethodConfig:
        """``Config(**values)`` after ``config_check``'s type, bound and rule checks; a UsageError names the
        field, its value, the method and what is expected."""
        checked = checked_values(cls.Config, values, cls.name)
        try:
            return cls.Config(**checked)
        except RuleError as exc:
            raise UsageError(f"invalid option {exc.key}={show_value(exc.value)} for method {cls.name!r}: "
                             f"{exc.rule}") from None

    @classmethod
    def preset_overrides(cls, name: str, profile: str) -> dict[str, Any]:
        """The test-time fields a named preset sets for ``profile`` (unknown names are usage errors)."""
        valid = sorted(p for p, by_profile in cls.presets.items() if profile in by_profile)
        if name not in valid:
            raise UsageError(f"invalid --preset {name!r} for method {cls.name!r} with profile {profile!r} "
                             f"(valid: {', '.join(valid) or 'none'})")
        return dict(cls.presets[name][profile])

    @classmethod
    def from_profile(cls: type[M], profile: str = "paper", overrides: dict[str, Any] | None = None,
                     **kwargs: Any) -> M:
        return cls(cls.config_for(profile, overrides), **kwargs)

    @classmethod
    def network_costs(cls, config: MethodConfig) -> list[NetworkCost] | None:
        """The networks a run with ``config`` trains and runs, and how often (see ``NetworkCost``); used only
        for cost estimates. ``None`` (the default) means "unknown" and is reported as such; ``[]`` means the
        method uses no network. Override it in a plugin so a dry run can price its jobs."""
        del config
        return None

    # -- the estimator API -------------------------------------------------------------------------
    def fit(self: M, train: SliceSet, val: SliceSet | None = None, *, val_healthy: SliceSet | None = None,
            workdir: Path | None = None) -> M:
        """Learn from healthy ``train`` slices. ``val`` (labelled validation slices) may be used to tune
        hyper-parameters the paper tunes on validation; ``val_healthy`` (tumour-free slices of the validation
        subjects, never test data) reaches only a method whose ``_fit`` declares a ``val_healthy`` keyword
        (e.g. to calibrate a threshold on healthy tissue); ``workdir`` holds checkpoints and loss logs so an
        interrupted fit resumes."""
        if len(train) == 0:
            raise UasbenchError(f"method {self.name!r}: the training set is empty (no healthy slices)")
        if "target" in self.train_modalities and train.y is None:
            raise UasbenchError(f"method {self.name!r} trains on paired slices and needs the target "
                                "modality Y, but the training set has none")
        if self.wants_val_healthy():
            self._fit(train, val, workdir, val_healthy=val_healthy)  # type: ignore[call-arg]
        else:
            self._fit(train, val, workdir)
        self.is_fitted = True
        return self

    @classmethod
    def wants_val_healthy(cls) -> bool:
        """Whether ``_fit`` takes the healthy validation slices: it declares a ``val_healthy`` parameter.
        Methods written before that parameter existed keep their three-argument ``_fit``."""
        return "val_healthy" in inspect.signature(cls._fit).parameters

    def score(self, slices: SliceSet) -> np.ndarray:
        """Anomaly maps, float32 (N, H, W), same grid as ``slices.x``. Sees only X and the brain mask."""
        if not self.is_fitted:
            raise UasbenchError(f"method {self.name!r} must be fitted or loaded before scoring")
        if len(slices) == 0:  # e.g. a split with no validation subjects: nothing to ask the method
            return np.zeros(slices.x.shape, dtype=np.float32)
        maps = np.asarray(self._score(slices.unlabelled()), dtype=np.float32)
        if maps.shape != slices.x.shape:
            raise RuntimeError(f"{self.name}: score maps {maps.shape} do not match slices {slices.x.shape}")
        return maps

    def retune(self, val: SliceSet | None) -> None:
        """Redo what a fitted method chooses on validation slices from its test-time fields (DDPM: the noise
        level among ``noise_levels``), after those fields changed on a loaded checkpoint. Default: nothing."""
        del val

    @abstractmethod
    def _fit(self, train: SliceSet, val: SliceSet | None, workdir: Path | None) -> None: ...

    @abstractmethod
    def _score(self, slices: SliceSet) -> np.ndarray: ...

    # -- persistence ------------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """Learned state as plain data (tensors, numbers, strings, lists, dicts; no numpy arrays or objects),
        enough to score again after ``set_state``. ``save`` refuses anything else, since only plain data
        can be loaded without running code."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        del state

    def save(self, path: Path) -> None:
        """Write config, seed, run identity and ``get_state()`` as plain data (see ``uasbench.checkpoints``)."""
        payload = {"method": self.name, "config": dataclasses.asdict(self.config), "seed": self.seed,
                   "identity": self.run_identity, "state": self.get_state()}
        save_checkpoint(payload, Path(path))

    @classmethod
    def load(cls: type[M], path: Path, *, device: str | torch.device = "cpu") -> M:
        """A fitted method from ``save``'s file; read with torch's ``weights_only`` loader, so it runs no code."""
        payload = load_checkpoint(Path(path))
        if payload.get("method") != cls.name:
            raise UasbenchError(f"checkpoint {path} holds method {payload.get('method')!r}, not {cls.name!r}")
        if not isinstance(payload.get("config"), dict) or not isinstance(payload.get("seed"), int):
            raise UasbenchError(f"checkpoint {path} lacks the config or the seed of the method")
        config = cls.checked_config(payload["config"])
        method = cls(config, device=device, seed=payload["seed"])
        method.set_state(payload["state"])
        method.run_identity = payload.get("identity")  # None in checkpoints written before it was stored
        method.is_fitted = True
        return method
