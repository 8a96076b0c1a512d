"""Every registered method, built-in or installed later, passes the plugin contract kit (``uasbench.testing``):
shapes and dtype, one seed one result, plain-data checkpoints that load to the same maps, no target or labels
where they must not be, a pattern lesion found better than by the intensity baseline, and dry-run pricing."""
from __future__ import annotations

from collections.abc import Callable

import pytest

from uasbench.method import AnomalyMethod
from uasbench.registry import get_method, list_methods
from uasbench.testing import check_method, parametrize_with_checks, pattern_lesion_slices

METHODS = [get_method(name) for name in list_methods()]


@parametrize_with_checks(METHODS)
def test_method_passes_the_contract(method: type[AnomalyMethod], check: Callable[[type[AnomalyMethod]], None]) -> None:
    check(method)


def test_the_kit_covers_every_built_in_method() -> None:
    assert {m.name for m in METHODS} >= {"intensity", "ae", "vae", "dae", "ddpm", "cyclic_unet", "mmccd",
                                         "itermask2", "anoddpm", "pddpm"}


class PeeksAtTheTarget(AnomalyMethod):
    """Breaks the contract: a single-modality method that overrides ``fit`` and keeps the target it was given."""

    name = "peeks"

    def fit(self, train, val=None, *, val_healthy=None, workdir=None):  # type: ignore[no-untyped-def]
        self.is_fitted = True
        return self

    def _fit(self, train, val, workdir):  # type: ignore[no-untyped-def]
        pass

    def _score(self, slices):  # type: ignore[no-untyped-def]
        return slices.x


class WrongShape(AnomalyMethod):
    name = "wrong_shape"

    def _fit(self, train, val, workdir):  # type: ignore[no-untyped-def]
        pass

    def _score(self, slices):  # type: ignore[no-untyped-def]
        return slices.x[:, :-1]  # one column short


def test_the_kit_names_the_check_a_broken_method_fails() -> None:
    with pytest.raises(AssertionError, match="check_sees_no_target_or_labels_it_must_not.*overrides fit or score"):
        check_method(PeeksAtTheTarget, slow=False)
    with pytest.raises(AssertionError, match="check_fit_and_score_shapes.*do not match"):
        check_method(WrongShape, slow=False)


def test_a_method_without_a_tiny_profile_is_told_to_declare_one() -> None:
    cls = type("NoTiny", (WrongShape,), {"name": "no_tiny", "profiles": {"paper": {}, "quick": {}}})
    with pytest.raises(AssertionError, match="declares no tiny profile"):
        check_method(cls, slow=False)


def test_the_checkerboard_lesion_hides_from_brightness() -> None:
    slices = pattern_lesion_slices(6, 2, lesion=True)
    assert slices.seg is not None and slices.seg.sum() == 6 * 64
    inside, outside = slices.x[slices.seg], slices.x[slices.brain & ~slices.seg]
    assert abs(float(inside.mean()) - float(outside.mean())) < 0.15  # same mean brightness, a pattern only


def test_a_config_that_drops_a_base_fields_bounds_is_told_to_use_redefault() -> None:
    """``channels: int = 128`` in a subclass of NetOptions loses ``min: 1``; ``redefault`` keeps it."""
    import dataclasses

    from uasbench.errors import UsageError
    from uasbench.method import redefault
    from uasbench.nn.unet import NetOptions

    loose = dataclasses.make_dataclass("LooseConfig", [("channels", int, 128)], bases=(NetOptions,))
    cls = type("Loose", (WrongShape,), {"name": "loose", "Config": loose,
                                        "profiles": {"paper": {}, "quick": {}, "tiny": {}}})
    with pytest.raises(AssertionError, match=r"check_config_keeps_inherited_bounds.*channels \(from NetOptions\).*"
                                             r"redefault"):
        check_method(cls, slow=False)
    kept = dataclasses.make_dataclass("KeptConfig", [("channels", int, redefault(NetOptions, "channels", 128))],
                                      bases=(NetOptions,))
    assert kept().channels == 128
    with pytest.raises(UsageError, match="channels=0.*expected an integer >= 1"):
        kept(channels=0)  # checked on construction, like every config
