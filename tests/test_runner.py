"""The runner's wiring (uasbench.benchmark.run): what a method is given, where the thresholds come from, and
what an interrupted run leaves behind, on a tiny BraTS-layout dataset written here.

Spy methods record what the runner hands them; every expectation is computed here from the NIfTI volumes or
from the stored score maps, not by the code under test.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import nibabel as nib
import numpy as np
import pytest

from uasbench.benchmark.run import RunSpec, run_one
from uasbench.data.preprocess import Preparation
from uasbench.data.slices import SliceSet
from uasbench.evaluation.postprocess import PostProcess, apply_postprocess
from uasbench.evaluation.evaluate import EvaluationResult
from uasbench.evaluation.thresholds import validation_thresholds
from uasbench.method import AnomalyMethod, MethodConfig
from uasbench.data.spatial import SpatialStandard
from uasbench.modalities import Pair
from uasbench.registry import _registered, register_method
from uasbench.results import METRICS_JSON, SCORES, ScoredSplits, read_manifest

SIDE, DEPTH = 24, 6
# 2x2 area blocks: resizing is a block mean here. The volumes are stored RAS (identity affine) on a 24 mm field
# of view, and this spatial standard says that is the standard: the slices are the arrays as written.
PROTOCOL = Preparation(z_start=1, z_stop=5, size=SIDE // 2,
                    spatial=SpatialStandard(orientation="RAS", fov_mm=(float(SIDE), float(SIDE))))
SPLIT = {"train": ["A", "B", "C"], "val": ["D", "E"], "test": ["F", "G"]}
BRAIN_RADIUS = {"flair": 9.0, "t1": 8.0, "t1ce": 9.5, "t2": 10.5}  # each modality its own brain mask


def _volumes(subject: str) -> dict[str, np.ndarray]:
    """int16 volumes like BraTS: a disk of random tissue per modality (0 outside), and a tumour on slices 2-3
    of every subject outside the training split (slice 3's is the larger)."""
    rng = np.random.default_rng(ord(subject))
    yy, xx = np.mgrid[:SIDE, :SIDE] - (SIDE - 1) / 2
    out = {}
    for m in BRAIN_RADIUS:  # the four BraTS modalities
        disk = (yy**2 + xx**2 < BRAIN_RADIUS[m] ** 2)[..., None]
        out[m] = np.where(disk, rng.integers(50, 1000, (SIDE, SIDE, DEPTH)), 0).astype(np.int16)
    seg = np.zeros((SIDE, SIDE, DEPTH), dtype=np.uint8)
    if subject not in SPLIT["train"]:
        seg[8:12, 8:12, 2] = 2
        seg[8:14, 9:15, 3] = 4
    out["seg"] = seg
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tiny_brats") / "data"
    for subject in sum(SPLIT.values(), []):
        folder = root / subject
        folder.mkdir(parents=True)
        for name, vol in _volumes(subject).items():
            nib.save(nib.Nifti1Image(vol, np.eye(4)), folder / f"{subject}_{name}.nii.gz")
    split = root.parent / "split.csv"
    split.write_text("subject,split\n" + "".join(f"{s},{k}\n" for k, subs in SPLIT.items() for s in subs))
    return root, split


def _expected_slice(subject: str, modality: str, z: int) -> tuple[np.ndarray, np.ndarray]:
    """The paper protocol by hand: z-score of the whole volume by its brain voxels between the 2nd and 98th
    percentiles (90th for FLAIR), background 0, then 2x2 block means; the brain mask is this modality's
    ``vol > 0``, a block counting as brain if any of its pixels is."""
    vol = _volumes(subject)[modality].astype(np.float64)
    brain = vol > 0
    lo, hi = np.percentile(vol[brain], [2, 90 if modality == "flair" else 98])
    inner = vol[brain & (vol >= lo) & (vol <= hi)]
    norm = np.where(brain, (vol - inner.mean()) / inner.std(), 0.0)[:, :, z]
    blocks = lambda a: a.reshape(SIDE // 2, 2, SIDE // 2, 2)  # noqa: E731
    return blocks(norm).mean(axis=(1, 3)), blocks(brain[:, :, z]).any(axis=(1, 3))


@dataclasses.dataclass
class SpyConfig(MethodConfig):
    scramble: tuple[str, ...] = ()  # subjects whose maps are replaced by large random numbers


class SpySingle(AnomalyMethod):
    """Records every SliceSet the runner passes; its map is the input itself (scrambled for chosen subjects)."""

    name = "spy_single_for_test"
    Config = SpyConfig
    profiles = {"paper": {}, "quick": {}}
    seen: ClassVar[list[tuple[str, SliceSet]]] = []

    def _fit(self, train: SliceSet, val: SliceSet | None, workdir: Path | None, *extra: Any, **more: Any) -> None:
        self.seen.append(("fit", train))
        for other in (val, *extra, *more.values()):
            if isinstance(other, SliceSet):
                self.seen.append(("fit-other", other))

    def _score(self, slices: SliceSet) -> np.ndarray:
        self.seen.append(("score", slices))
        maps = slices.x.copy()
        for i, subject in enumerate(slices.subjects):
            if subject in self.config.scramble:
                maps[i] = np.random.default_rng(i).normal(scale=100, size=maps[i].shape)
        return maps


class SpyPaired(SpySingle):
    name = "spy_paired_for_test"
    train_modalities = ("input", "target")


@pytest.fixture()
def spies():
    for cls in (SpySingle, SpyPaired):
        register_method(cls)
        cls.seen = []
    yield SpySingle, SpyPaired
    for cls in (SpySingle, SpyPaired):
        _registered.pop(cls.name)


def _run(dataset: tuple[Path, Path], out: Path, method: str, pair: str = "fl-t2", **overrides: Any):
    root, split = dataset
    spec = RunSpec(method=method, pair=Pair.parse(pair), device="cpu", data_root=root, split_file=split, out=out,
                   protocol=PROTOCOL, overrides=overrides, n_bootstrap=20)
    return run_one(spec, log=lambda msg: None)


@pytest.mark.parametrize("pair", ["fl-t2", "t2-t1"])
def test_methods_get_the_normalised_input_modality_with_its_own_brain_mask(dataset, tmp_path, spies, pair):
    single, paired = spies
    _run(dataset, tmp_path / "single", single.name, pair)
    _run(dataset, tmp_path / "paired", paired.name, pair)
    p = Pair.parse(pair)
    for cls in spies:
        kinds = [kind for kind, _ in cls.seen]
        assert kinds.count("fit") == 1 and kinds.count("score") >= 3  # validation, healthy validation, test
        for kind, slices in cls.seen:
            assert len(slices) > 0
            for i, (subject, z) in enumerate(zip(slices.subjects, slices.z)):
                x, brain = _expected_slice(subject, p.input, int(z))
                np.testing.assert_allclose(slices.x[i], x, rtol=1e-5, atol=1e-5)
                np.testing.assert_array_equal(slices.brain[i], brain)
                if kind == "fit" and cls is paired:  # only paired training sees the target, normalised alike
                    np.testing.assert_allclose(slices.y[i], _expected_slice(subject, p.target, int(z))[0],
                                               rtol=1e-5, atol=1e-5)
            if kind == "score":
                assert slices.seg is None and slices.y is None  # no labels, no target at test time
    training = {s for kind, sl in single.seen if kind == "fit" for s in sl.subjects}
    assert training == set(SPLIT["train"])


def test_single_modality_methods_never_receive_the_target(dataset, tmp_path, spies):
    single, _ = spies
    _run(dataset, tmp_path, single.name)
    assert single.seen
    for kind, slices in single.seen:
        assert slices.y is None, f"{kind}: a single-modality method was given the target modality"


def _stored_validation_thresholds(run_dir: Path, post: PostProcess = PostProcess()) -> dict[str, Any]:
    """The reportable thresholds recomputed from the run's stored validation maps alone."""
    scored = ScoredSplits.load(run_dir / SCORES)
    val_maps, val_mask = apply_postprocess(scored.val_maps, scored.val.brain, post)
    healthy_maps, healthy_mask = apply_postprocess(scored.healthy_maps, scored.val_healthy.brain, post)
    return {name: t.value for name, t in
            validation_thresholds(val_maps, scored.val.seg, val_mask, healthy_maps, healthy_mask).items()}


def test_reportable_thresholds_come_from_the_validation_maps_alone(dataset, tmp_path, spies):
    single, _ = spies
    run_dir, result = _run(dataset, tmp_path / "plain", single.name)
    stored = json.loads((run_dir / METRICS_JSON).read_text())["thresholds"]
    expected = _stored_validation_thresholds(run_dir)
    assert all(v is not None for v in expected.values())
    for name, value in expected.items():
        assert stored[name]["value"] == value and result.thresholds[name].value == value
        assert stored[name]["source"] in ("val", "val_healthy")
    # Scramble the test maps: the validation thresholds stay bit-identical, only the oracle moves.
    scrambled_dir, scrambled = _run(dataset, tmp_path / "scrambled", single.name, scramble=tuple(SPLIT["test"]))
    assert not np.array_equal(ScoredSplits.load(scrambled_dir / SCORES).test_maps,
                              ScoredSplits.load(run_dir / SCORES).test_maps)
    for name in expected:
        assert scrambled.thresholds[name] == result.thresholds[name]
    assert scrambled.thresholds["oracle_test"] != result.thresholds["oracle_test"]


def _looks_finished(out: Path) -> list[Path]:
    """Entries of ``out`` a reader would take for runs: visible folders, or any folder with a readable manifest."""
    found = []
    for p in out.rglob("*"):
        if p.is_dir() and (not p.name.startswith(".") and p.parent == out):
            found.append(p)
        elif p.is_dir():
            try:
                read_manifest(p)
                found.append(p)
            except Exception:
                pass
    return found


@pytest.mark.parametrize("where", ["saving the checkpoint", "writing the metrics"])
def test_a_crash_while_writing_the_run_leaves_nothing_that_looks_finished(dataset, tmp_path, spies, monkeypatch,
                                                                          where):
    """Staging has begun (the run folder's files are being written) when the crash comes."""
    single, _ = spies

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    if where == "saving the checkpoint":
        monkeypatch.setattr(single, "save", crash)
    else:
        monkeypatch.setattr(EvaluationResult, "to_dict", crash)
    with pytest.raises(KeyboardInterrupt):
        _run(dataset, tmp_path, single.name)
    assert _looks_finished(tmp_path) == []
    monkeypatch.undo()
    run_dir, _ = _run(dataset, tmp_path, single.name)  # the next run is unaffected and is the only one
    assert _looks_finished(tmp_path) == [run_dir]
