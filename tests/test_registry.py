"""The registry: entry-point discovery of the built-in plugins, the decorator, profiles and errors."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from uasbench import AnomalyMethod, MethodConfig, create_method, list_methods, register_method
from uasbench.data.slices import SliceSet
from uasbench.errors import UasbenchError, UsageError
from uasbench.registry import _registered, get_method, method_infos


def test_builtin_methods_come_through_the_entry_point_group():
    info = method_infos()["intensity"]
    assert info.source == "uasbench"  # the distribution, exactly as for a third-party plugin
    assert "intensity" in list_methods()


@dataclass
class _ToyConfig(MethodConfig):
    gain: float = 1.0


def test_decorator_registers_and_create_method_applies_profiles():
    @register_method
    class Toy(AnomalyMethod):
        name = "toy_for_test"
        Config = _ToyConfig
        profiles = {"paper": {}, "quick": {"gain": 2.0}}

        def _fit(self, train, val, workdir):
            pass

        def _score(self, slices):
            return slices.x * self.config.gain

    try:
        method = create_method("toy_for_test", "quick", overrides={"gain": 3.0})
        assert method.config.gain == 3.0
        assert create_method("toy_for_test", "quick").config.gain == 2.0
        assert create_method("toy_for_test", "paper").config.gain == 1.0
        with pytest.raises(UsageError, match="valid: paper, quick"):
            create_method("toy_for_test", "fast")
        with pytest.raises(UsageError, match="unknown config option.*gian"):
            create_method("toy_for_test", "quick", overrides={"gian": 1})
    finally:
        _registered.pop("toy_for_test")


def test_unknown_method_lists_the_valid_choices():
    with pytest.raises(UsageError, match=r"unknown --method 'nope' \(valid: .*intensity"):
        get_method("nope")


def test_register_rejects_non_methods():
    with pytest.raises(TypeError):
        register_method(object)  # type: ignore[arg-type]


def _slices(n: int = 2, with_y: bool = False) -> SliceSet:
    x = np.random.default_rng(0).normal(size=(n, 8, 8)).astype(np.float32)
    return SliceSet(x=x, brain=np.ones_like(x, bool), subjects=tuple(f"s{i}" for i in range(n)),
                    z=np.arange(n), y=x.copy() if with_y else None)


def test_base_class_guards_fit_and_score():
    method = create_method("intensity", "quick")
    with pytest.raises(UasbenchError, match="must be fitted"):
        method.score(_slices())
    with pytest.raises(UasbenchError, match="training set is empty"):
        method.fit(_slices().subset([]))


def test_paired_methods_refuse_training_without_target():
    @register_method
    class Paired(AnomalyMethod):
        name = "paired_for_test"
        train_modalities = ("input", "target")

        def _fit(self, train, val, workdir):
            pass

        def _score(self, slices):
            return slices.x

    try:
        with pytest.raises(UasbenchError, match="needs the target modality"):
            create_method("paired_for_test").fit(_slices(with_y=False))
        create_method("paired_for_test").fit(_slices(with_y=True))
    finally:
        _registered.pop("paired_for_test")


def test_score_hides_labels_and_target_from_the_method():
    seen = {}

    @register_method
    class Spy(AnomalyMethod):
        name = "spy_for_test"

        def _fit(self, train, val, workdir):
            pass

        def _score(self, slices):
            seen["y"], seen["seg"] = slices.y, slices.seg
            return slices.x

    try:
        s = _slices(with_y=True)
        s = SliceSet(x=s.x, brain=s.brain, subjects=s.subjects, z=s.z, y=s.y, seg=s.brain)
        create_method("spy_for_test").fit(s).score(s)
        assert seen == {"y": None, "seg": None}
    finally:
        _registered.pop("spy_for_test")


def test_intensity_baseline_save_load_round_trip(tmp_path):
    s = _slices(3)
    method = create_method("intensity", "paper").fit(s)
    method.save(tmp_path / "m.pt")
    loaded = get_method("intensity").load(tmp_path / "m.pt")
    np.testing.assert_array_equal(method.score(s), loaded.score(s))


def test_intensity_scores_are_the_equalised_brain_intensity():
    x = np.zeros((1, 4, 4), np.float32)
    x[0, 1:3, 1:3] = [[1, 2], [3, 4]]
    brain = x > 0
    s = SliceSet(x=x, brain=brain, subjects=("a",), z=np.array([0]))
    maps = create_method("intensity", "paper", overrides={"n_bins": 4}).fit(s).score(s)
    # Bin centres 1.375..3.625 hold one value each: CDF 0.25, 0.5, 0.75, 1 (interpolated, clamped at ends).
    assert maps[0, 2, 2] == pytest.approx(1.0)
    assert maps[0, 1, 1] == pytest.approx(0.25)
    assert np.all(np.diff(maps[0][brain[0]]) > 0)  # monotone in intensity
    assert np.all(maps[0][~brain[0]] == 0)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UasbenchError, match="cannot read checkpoint .*bad.pt"):
        get_method("intensity").load(bad)
