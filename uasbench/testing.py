"""The plugin contract kit: checks that every method class must pass, in the shape of scikit-learn's
``check_estimator`` / ``parametrize_with_checks``.

A plugin's own test suite needs two lines (pytest)::

    from uasbench.testing import parametrize_with_checks
    from my_package.my_module import MyMethod

    @parametrize_with_checks([MyMethod])
    def test_uasbench_contract(method, check):
        check(method)

or, without pytest, ``check_method(MyMethod)`` runs them all and raises ``AssertionError`` naming the first
check that fails. Each check is a function ``check_x(method_cls)``; the checks fit on small synthetic slices
(``pattern_lesion_slices``) with the method's ``tiny`` profile, which every method declares: settings that keep
fit + score to seconds on one CPU thread. The quick checks cut ``iterations`` to 2 (and write a checkpoint at
every step) where the config has those fields, as scikit-learn lowers ``max_iter``; the lesion check (marked
slow) trains with ``tiny`` as declared.

What is checked: the ``tiny`` profile exists and builds; the config keeps the bounds of the base fields it gives
other defaults (``uasbench.method.redefault``); fit and score give float32 maps of the slices' shape,
also for slices of another size and for no slices; two fits with one seed give identical maps; ``save`` writes
plain data that ``load`` turns into the same maps (and training checkpoints are plain data too); ``fit`` and
``score`` see what the benchmark engine hands them and nothing more (no target modality for a single-modality
method, no tumour masks of training or scored slices, never a test split); the method finds a lesion that is a
pattern, not a brightness, better than the intensity baseline; the dry-run pricing (``network_costs``) returns
``None`` or ``NetworkCost``s whose FLOPs can be counted, for every profile.
"""
from __future__ import annotations

import dataclasses
import functools
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from uasbench.checkpoints import load_checkpoint
from uasbench.data.slices import SliceSet
from uasbench.method import AnomalyMethod, NetworkCost, forward_flops, inherited_metadata_lost

#: The profile every check builds its method from.
PROFILE = "tiny"
#: How much better than the intensity baseline a method must rank checkerboard lesion pixels (pixel AUROC).
LESION_MARGIN = 0.2
#: Checks that train with the full ``tiny`` profile (tens of seconds per method on a busy CPU).
SLOW_CHECKS = frozenset({"check_finds_a_pattern_lesion"})

Check = Callable[[type[AnomalyMethod]], None]


# -- synthetic slices ------------------------------------------------------------------------------------
def pattern_lesion_slices(n: int, seed: int, *, lesion: bool, size: int = 32) -> SliceSet:
    """Slices whose lesion is a pattern, not a brightness: a checkerboard of 2x2-pixel cells, +-0.6 around the
    local tissue, in a 8x8 square at a random place. Healthy tissue is smooth (1 +- about 0.3, from blurred noise)
    with 3% pixel noise, so the lesion's intensities lie inside the healthy range: an intensity or identity map
    ranks lesion pixels barely above chance, and only a method that learned what healthy tissue looks like
    finds it. Y = -(X blurred with sigma 1) inside the brain: a translation that erases fine patterns, as the
    cyclic methods need."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    centre, radius = size / 2 - 0.5, 7 * size / 16
    brain = (yy - centre) ** 2 + (xx - centre) ** 2 < radius**2
    checker = np.where(((yy // 2) + (xx // 2)) % 2 == 0, 0.6, -0.6)
    xs, ys, segs = [], [], []
    for _ in range(n):
        texture = gaussian_filter(rng.normal(size=(size, size)), 3)
        image = 1.0 + 0.3 * texture / texture.std() + 0.03 * rng.normal(size=(size, size))
        seg = np.zeros((size, size), dtype=bool)
        if lesion:
            top, left = rng.integers(size // 2 - 8, size // 2, 2)
            seg[top:top + 8, left:left + 8] = True
            image = np.where(seg, image + checker, image)
        image = np.where(brain, image, 0.0)
        xs.append(image)
        ys.append(np.where(brain, -gaussian_filter(image, 1), 0.0))
        segs.append(seg)
    return SliceSet(x=np.stack(xs).astype(np.float32), brain=np.broadcast_to(brain, (n, size, size)).copy(),
                    subjects=tuple(f"p{seed}-{i}" for i in range(n)), z=np.arange(n),
                    y=np.stack(ys).astype(np.float32), seg=np.stack(segs) if lesion else None)


@dataclasses.dataclass(frozen=True)
class Splits:
    """What a benchmark run holds: healthy training slices (with Y), labelled validation slices, tumour-free
    validation slices and labelled test slices (with the T2 brain mask only the official evaluation reads)."""

    train: SliceSet
    val: SliceSet
    val_healthy: SliceSet
    test: SliceSet


def _splits(n_train: int, n_val: int, n_test: int) -> Splits:
    test = pattern_lesion_slices(n_test, 2, lesion=True)
    healthy = pattern_lesion_slices(2, 3, lesion=False)
    return Splits(train=pattern_lesion_slices(n_train, 0, lesion=False),
                  val=dataclasses.replace(pattern_lesion_slices(n_val, 1, lesion=True), y=None),
                  val_healthy=dataclasses.replace(healthy, y=None, seg=np.zeros_like(healthy.brain)),
                  test=dataclasses.replace(test, brain_t2=test.brain.copy()))


def training_view(method_cls: type[AnomalyMethod], train: SliceSet) -> SliceSet:
    """The training slices as the engine hands them to ``fit``: the target modality Y only to a method that
    trains on paired slices."""
    return train if "target" in method_cls.train_modalities else dataclasses.replace(train, y=None)


# -- building and fitting --------------------------------------------------------------------------------
def tiny_method(method_cls: type[AnomalyMethod], *, quick: bool = False, seed: int = 0) -> AnomalyMethod:
    """The method from its ``tiny`` profile; ``quick`` also cuts ``iterations`` to 2 and checkpoints every
    step, where the config has those fields (the checks of shapes, seeds and files need no learning)."""
    fields = {f.name for f in dataclasses.fields(method_cls.Config)}
    overrides: dict[str, Any] = {}
    if quick and "iterations" in fields:
        tiny = method_cls.config_for(PROFILE)
        overrides["iterations"] = min(2, tiny.iterations)  # type: ignore[attr-defined]
        if "checkpoint_every" in fields:
            overrides["checkpoint_every"] = 1
    return method_cls.from_profile(PROFILE, overrides, seed=seed)


def _fit(method: AnomalyMethod, data: Splits, workdir: Path | None) -> AnomalyMethod:
    """``fit`` as the engine calls it."""
    return method.fit(training_view(type(method), data.train), data.val, val_healthy=data.val_healthy,
                      workdir=workdir)


@functools.lru_cache(maxsize=4)
def _quick_data() -> Splits:
    return _splits(8, 2, 3)


@functools.lru_cache(maxsize=2)
def _lesion_data() -> Splits:
    return _splits(48, 4, 6)


# -- the checks ------------------------------------------------------------------------------------------
def check_declares_a_tiny_profile(method_cls: type[AnomalyMethod]) -> None:
    missing = [p for p in ("paper", "quick", PROFILE) if p not in method_cls.profiles]
    assert not missing, (f"{method_cls.__name__} declares no {', '.join(missing)} profile: add it to its "
                         f"``profiles`` (``{PROFILE}``: settings that keep fit + score to seconds on one CPU thread)")
    for profile in method_cls.profiles:
        assert isinstance(method_cls.config_for(profile), method_cls.Config)


def check_config_keeps_inherited_bounds(method_cls: type[AnomalyMethod]) -> None:
    lost = inherited_metadata_lost(method_cls.Config)
    assert not lost, (f"{method_cls.Config.__name__} redeclares {', '.join(lost)} without the base field's bounds or "
                      "test-time flag: declare it with uasbench.method.redefault(Base, name, default)")


def check_fit_and_score_shapes(method_cls: type[AnomalyMethod]) -> None:
    data = _quick_data()
    with tempfile.TemporaryDirectory() as work:
        method = _fit(tiny_method(method_cls, quick=True), data, Path(work))
    assert method.is_fitted
    smaller = pattern_lesion_slices(2, 4, lesion=True, size=16)
    for slices in (data.test, data.val, data.val_healthy, smaller, data.test.subset([])):
        try:
            maps = method.score(slices)
        except RuntimeError as exc:  # AnomalyMethod.score refuses maps of the wrong shape
            raise AssertionError(str(exc)) from exc
        assert maps.dtype == np.float32, f"{method_cls.name}: maps are {maps.dtype}, not float32"
        assert maps.shape == slices.x.shape, f"{method_cls.name}: maps {maps.shape} for slices {slices.x.shape}"
        assert np.isfinite(maps).all(), f"{method_cls.name}: maps hold NaN or infinite values"


def check_same_seed_same_maps(method_cls: type[AnomalyMethod]) -> None:
    data = _quick_data()
    maps = []
    for _ in range(2):
        with tempfile.TemporaryDirectory() as work:  # a fresh work folder: nothing to resume from
            maps.append(_fit(tiny_method(method_cls, quick=True, seed=5), data, Path(work)).score(data.test))
    assert np.array_equal(maps[0], maps[1]), f"{method_cls.name}: two fits with seed 5 give different maps"


def check_saves_plain_data_that_loads_to_the_same_maps(method_cls: type[AnomalyMethod]) -> None:
    data = _quick_data()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        method = _fit(tiny_method(method_cls, quick=True), data, work)
        method.save(Path(tmp) / "method.pt")  # refuses anything but plain data
        loaded = type(method).load(Path(tmp) / "method.pt")  # torch's weights_only loader: runs no code
        assert loaded.config == method.config and loaded.seed == method.seed
        assert np.array_equal(loaded.score(data.test), method.score(data.test)), (
            f"{method_cls.name}: the loaded method scores differently from the saved one")
        for checkpoint in sorted(work.glob("**/*.pt")):
            load_checkpoint(checkpoint)  # training checkpoints are plain data too


def check_sees_no_target_or_labels_it_must_not(method_cls: type[AnomalyMethod]) -> None:
    """``_fit`` gets Y only for paired training and no tumour masks of training slices; ``_score`` gets neither
    Y, tumour masks nor the T2 brain mask, even when ``score`` is handed labelled test slices."""
    seen: dict[str, list[tuple[str, SliceSet | None]]] = {"fit": [], "score": []}

    def record_fit(self: AnomalyMethod, train: SliceSet, val: SliceSet | None, workdir: Path | None,
                   **kwargs: Any) -> None:
        seen["fit"] += [("train", train), ("val", val), ("val_healthy", kwargs.get("val_healthy"))]
        method_cls._fit(self, train, val, workdir, **kwargs)

    def record_score(self: AnomalyMethod, slices: SliceSet) -> np.ndarray:
        seen["score"].append(("scored", slices))
        return method_cls._score(self, slices)

    if method_cls.wants_val_healthy():
        def _fit_hook(self, train, val, workdir, *, val_healthy=None):  # type: ignore[no-untyped-def]
            record_fit(self, train, val, workdir, val_healthy=val_healthy)
    else:
        def _fit_hook(self, train, val, workdir):  # type: ignore[no-untyped-def]
            record_fit(self, train, val, workdir)
    recording = type(method_cls.__name__, (method_cls,), {"_fit": _fit_hook, "_score": record_score})

    data = _quick_data()
    with tempfile.TemporaryDirectory() as work:
        method = _fit(tiny_method(recording, quick=True), data, Path(work))
        method.score(data.test)
    assert seen["fit"] and seen["score"], f"{method_cls.name} overrides fit or score: override _fit and _score"
    paired = "target" in method_cls.train_modalities
    for role, slices in seen["fit"]:
        if slices is None:
            continue
        assert slices.y is None or (role == "train" and paired), f"{method_cls.name}._fit got Y in {role}"
        assert role != "train" or slices.seg is None, f"{method_cls.name}._fit got tumour masks in train"
        assert slices.brain_t2 is None, f"{method_cls.name}._fit got the T2 brain mask in {role}"
        assert not set(slices.subjects) & set(data.test.subjects), f"{method_cls.name}._fit got test slices"
    for _, slices in seen["score"]:
        assert slices is not None and slices.y is None and slices.seg is None and slices.brain_t2 is None, (
            f"{method_cls.name}._score got labels or the target modality")


def pixel_auroc(maps: np.ndarray, slices: SliceSet) -> float:
    """How well the maps rank lesion pixels above the rest of the brain, all slices pooled."""
    from sklearn.metrics import roc_auc_score

    assert slices.seg is not None
    return float(roc_auc_score(slices.seg[slices.brain], maps[slices.brain]))


def _lesion_auroc(method_cls: type[AnomalyMethod]) -> float:
    data = _lesion_data()
    method = method_cls.from_profile(PROFILE, seed=0)
    method.fit(training_view(method_cls, data.train), data.val)  # no workdir: nothing written
    return pixel_auroc(method.score(data.test), data.test)


def check_finds_a_pattern_lesion(method_cls: type[AnomalyMethod]) -> None:
    """On 48 healthy 32x32 training slices, 4 labelled validation slices and 6 test slices whose lesion is a
    checkerboard with healthy intensities, the maps' pixel AUROC beats the intensity baseline's by
    ``LESION_MARGIN``."""
    from uasbench.registry import get_method

    data = _lesion_data()
    baseline = _lesion_auroc(get_method("intensity"))
    # the data are as designed: neither brightness nor the raw image finds the lesion
    assert baseline < 0.6 and pixel_auroc(data.test.x, data.test) < 0.6
    auroc = _lesion_auroc(method_cls)
    assert auroc >= baseline + LESION_MARGIN, (
        f"{method_cls.name}: lesion pixel AUROC {auroc:.3f}, intensity baseline {baseline:.3f} "
        f"(needs +{LESION_MARGIN}); give its ``{PROFILE}`` profile settings that learn within seconds")


def check_prices_dry_runs(method_cls: type[AnomalyMethod]) -> None:
    for profile in method_cls.profiles:
        networks = method_cls.network_costs(method_cls.config_for(profile))
        if networks is None:  # "unknown": allowed, shown as such by the dry run
            continue
        assert isinstance(networks, list) and all(isinstance(n, NetworkCost) for n in networks), (
            f"{method_cls.name}.network_costs must return None or a list of NetworkCost")
        for network in networks:
            assert forward_flops(network) > 0, f"{method_cls.name}: network {network.name!r} counts no FLOPs"
            assert network.train_samples >= 0 and network.passes_per_slice >= 0


def method_checks(method_cls: type[AnomalyMethod]) -> Iterator[Check]:
    """The checks that apply to ``method_cls`` (the lesion check compares with the intensity baseline, so the
    baseline itself is exempt)."""
    yield check_declares_a_tiny_profile
    yield check_config_keeps_inherited_bounds
    yield check_fit_and_score_shapes
    yield check_same_seed_same_maps
    yield check_saves_plain_data_that_loads_to_the_same_maps
    yield check_sees_no_target_or_labels_it_must_not
    yield check_prices_dry_runs
    if method_cls.name != "intensity":
        yield check_finds_a_pattern_lesion


def check_method(method_cls: type[AnomalyMethod], *, slow: bool = True) -> None:
    """Run every check on ``method_cls`` (``slow=False`` leaves out those in ``SLOW_CHECKS``); the first failing
    check raises ``AssertionError`` naming it."""
    for check in method_checks(method_cls):
        if slow or check.__name__ not in SLOW_CHECKS:
            try:
                check(method_cls)
            except AssertionError as exc:
                raise AssertionError(f"{check.__name__}({method_cls.__name__}): {exc}") from exc


def parametrize_with_checks(methods: Iterable[type[AnomalyMethod]]) -> Any:
    """A ``pytest.mark.parametrize`` over ``(method, check)`` for every method and each of its checks, with
    readable ids (``ae-check_fit_and_score_shapes``); the checks of ``SLOW_CHECKS`` carry ``pytest.mark.slow``."""
    import pytest

    params = [pytest.param(cls, check, id=f"{cls.name}-{check.__name__}",
                           marks=[pytest.mark.slow] if check.__name__ in SLOW_CHECKS else [])
              for cls in methods for check in method_checks(cls)]
    return pytest.mark.parametrize("method, check", params)
