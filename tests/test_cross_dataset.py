"""The cross-dataset protocol end to end, slice selection, and the within-dataset protocol left bit-identical.

Phantom layouts: healthy training scans written in the IXI layout, test data in the MSLUB layout stored RAS
(and BraTS2021), through the real CLI; the stored per-volume, lesion-wise and healthy-scan results are read
back and recomputed from the stored maps; the leaderboard prints a block per test dataset and level.
"""
from __future__ import annotations

import dataclasses

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from uasbench.benchmark.run import RunSpec, run_cross_dataset, run_one
from uasbench.cli import app
from uasbench.data.benchmark_data import Source, load_cross_dataset
from uasbench.data.phantom import write_phantom_dataset
from uasbench.data.phantom_layouts import write_phantom_in_layout
from uasbench.data.preprocess import Preparation
from uasbench.evaluation.postprocess import PostProcess
from uasbench.evaluation.evaluate_volumes import VolumeEvaluationResult, evaluate_volumes
from uasbench.evaluation.volumes import stack_volumes
from uasbench.modalities import Pair
from uasbench.results import MANIFEST, ScoredSplits

pytestmark = pytest.mark.slow
cli = CliRunner()
# patient01..06 of the phantom's indices 0..5: healthy, low-grade, GBM, GBM, healthy, GBM (subject_kind)
MS_SPLIT = "subject,split\npatient01,val\npatient02,val\npatient03,test\npatient04,test\npatient05,test\npatient06,test\n"


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cross")
    write_phantom_in_layout(root / "ixi", 2, layout="ixi", progress=False)
    write_phantom_in_layout(root / "ms", 6, seed=1, layout="mslub", orientation="RAS", progress=False)
    (root / "ms_split.csv").write_text(MS_SPLIT)
    return {"root": root, "ixi": root / "ixi", "ms": root / "ms", "split": root / "ms_split.csv"}


def _only_run(out: Path) -> Path:
    (run,) = [p for p in out.iterdir() if not p.name.startswith(".")]
    return run


def test_cross_dataset_run_through_the_cli_writes_every_level_and_reads_back(folders, tmp_path):
    out = tmp_path / "results"
    result = cli.invoke(app, ["run", "--method", "intensity", "--pair", "t2-t1", "--train-data", str(folders["ixi"]),
                              "--train-layout", "ixi", "--data", str(folders["ms"]), "--split", str(folders["split"]),
                              "--min-component", "3", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    run = _only_run(out)
    assert not (run / "metrics.json").exists()  # the within-dataset file is not faked
    manifest = json.loads((run / MANIFEST).read_text())
    datasets = manifest["datasets"]
    assert datasets["protocol"] == "cross-dataset"
    (train,) = datasets["train"]
    assert train["layout"] == "ixi" and train["healthy_only"] and train["subjects"] == {"train": 2}
    test = datasets["test"]["ms"]
    assert test["layout"] == "mslub" and test["split_file"] == str(folders["split"])
    assert test["split_sha256"] == hashlib.sha256(MS_SPLIT.encode()).hexdigest()
    assert test["subjects"] == {"val": 2, "test": 4} and test["fingerprint"]
    assert datasets["preparation"]["postprocess"]["min_component_voxels"] == 3
    assert datasets["identity"] and datasets["split_identity"]

    stored = json.loads((run / "volumes" / "ms.json").read_text())
    volume = VolumeEvaluationResult.from_dict(stored)
    assert volume.to_dict() == stored  # read back losslessly
    # recomputed from the stored maps: the same numbers
    scored = ScoredSplits.load(run / "scores" / "ms.npz")
    kinds = {"patient03": "glioblastoma", "patient04": "glioblastoma", "patient05": "healthy",
             "patient06": "glioblastoma"}
    again = evaluate_volumes(val_maps=scored.val_maps, val=scored.val, healthy_maps=scored.healthy_maps,
                             val_healthy=scored.val_healthy, test_maps=scored.test_maps, test=scored.test,
                             kinds=kinds, post=PostProcess(min_component_voxels=3))
    assert again.to_dict() == stored
    # patient05 is a healthy test scan: false positives measured at every threshold, 1 % and 5 % ordered
    assert volume.healthy_subjects == ["patient05"]
    fp = {t: volume.healthy_per_subject[t]["fp_voxel_fraction"][0] for t in ("fpr_1", "fpr_5")}
    assert 0 <= fp["fpr_1"] <= fp["fpr_5"] <= 1
    assert volume.thresholds["fpr_5"].defined and volume.thresholds["val_dice"].defined
    assert set(volume.subjects) == {"patient03", "patient04", "patient06"}
    assert volume.strata["kind"]["groups"].keys() == {"glioblastoma"}  # lesion_kinds.csv was read
    assert len(volume.strata["size"]["cutoffs"]) == 2
    slices = json.loads((run / "metrics" / "ms.json").read_text())
    assert sorted(slices["subjects"]) == ["patient03", "patient04", "patient06"]  # one lesion slice each

    board = cli.invoke(app, ["leaderboard", str(out)])
    assert board.exit_code == 0, board.output
    for level in ("slice", "volume", "lesion", "healthy"):
        assert f"ms (t2-t1) — {level} level" in board.output
    assert "cut-offs seed 0: small <=" in board.output and "26-connectivity" in board.output


def test_trained_method_on_two_test_datasets_and_the_leaderboard_refuses_other_data(folders, tmp_path):
    brats = folders["root"] / "br"
    if not brats.is_dir():
        write_phantom_in_layout(brats, 4, seed=2, layout="brats2021", progress=False)
    spec = RunSpec(method="ae", pair=Pair.parse("t2-t1"), profile="tiny", device="cpu", out=tmp_path / "a",
                   overrides={"iterations": 2}, n_bootstrap=20,
                   train_data=(Source(folders["ixi"]),),
                   test_data=(Source(folders["ms"], split_file=folders["split"]), Source(brats)))
    run, results = run_cross_dataset(spec, log=lambda _: None)
    assert [r.name for r in results] == ["ms", "br"]
    for name in ("ms", "br"):
        assert (run / "volumes" / f"{name}.json").is_file() and (run / "scores" / f"{name}.npz").is_file()
    maps = ScoredSplits.load(run / "scores" / "br.npz")
    assert np.isfinite(maps.test_maps).all() and maps.test_maps.shape == maps.test.x.shape
    # a run on other test data lands in the same folder: the leaderboard refuses to rank them together
    other = RunSpec(method="intensity", pair=Pair.parse("t2-t1"), device="cpu", out=tmp_path / "a", n_bootstrap=20,
                    train_data=(Source(folders["ixi"]),), test_data=(Source(folders["ms"], split_file=folders["split"]),))
    run_cross_dataset(other, log=lambda _: None)
    board = cli.invoke(app, ["leaderboard", str(tmp_path / "a")])
    assert board.exit_code == 1 and "come from different data" in board.output


def test_predict_applies_a_cross_dataset_run_with_the_volume_thresholds_of_a_test_dataset(folders, tmp_path):
    """Trained on IXI, tested on MSLUB and BraTS layouts: predict on the MSLUB folder reproduces the maps the run
    stored for it, with a threshold tuned on the validation volumes of the test dataset it names; without a
    name (two test datasets) or with a wrong one it stops in one line, and 3-D post-processing is refused."""
    from uasbench.data.layouts import open_dataset
    from uasbench.predict import TrainedRun, predict_scan
    from uasbench.predict.cases import open_scan

    brats = folders["root"] / "br"
    if not brats.is_dir():
        write_phantom_in_layout(brats, 4, seed=2, layout="brats2021", progress=False)
    spec = RunSpec(method="intensity", pair=Pair.parse("t2-t1"), device="cpu", out=tmp_path / "r", n_bootstrap=20,
                   train_data=(Source(folders["ixi"]),),
                   test_data=(Source(folders["ms"], split_file=folders["split"]), Source(brats)))
    run_dir, _ = run_cross_dataset(spec, log=lambda _: None)

    def predict(*extra: str):
        return cli.invoke(app, ["predict", str(run_dir), "--data", str(folders["ms"]), "--out", str(tmp_path / "m"),
                                "--cases", "patient03", *extra])

    several = predict()
    assert several.exit_code == 2 and "was tested on ms, br, each with its own thresholds" in several.output
    wrong = predict("--tuned-on", "atlas")
    assert wrong.exit_code == 2 and "--tuned-on atlas: run" in wrong.output
    done = predict("--tuned-on", "ms")
    assert done.exit_code == 0, done.output
    volume_thresholds = json.loads((run_dir / "volumes" / "ms.json").read_text())["thresholds"]
    assert f"threshold val_dice = {volume_thresholds['val_dice']['value']:.6g} (volume level, tuned on ms)" \
        in " ".join(done.output.split())
    assert (tmp_path / "m" / "patient03_anomaly_seg.nii.gz").is_file()
    # the maps are those the run stored for the test case
    run = TrainedRun.read(run_dir, "ms")
    data = open_dataset(folders["ms"])
    case = next(c for c in data.cases if c.id == "patient03")
    result = predict_scan(run.load_method("cpu"), run, open_scan(data, case, "t2"), run.protocol.z_values, 0.5)
    stored = ScoredSplits.load(run_dir / "scores" / "ms.npz")
    mine = [i for i, s in enumerate(stored.test.subjects) if s == "patient03"]
    assert mine
    for i in mine:
        np.testing.assert_array_equal(result.maps[int(stored.test.z[i]) - 70], stored.test_maps[i])
    # a run whose post-processing acts on whole volumes is refused
    spec3d = dataclasses.replace(spec, out=tmp_path / "r3", post=PostProcess(min_component_voxels=3),
                                 test_data=spec.test_data[:1])
    run3d, _ = run_cross_dataset(spec3d, log=lambda _: None)
    refused = cli.invoke(app, ["predict", str(run3d), "--data", str(folders["ms"]), "--out", str(tmp_path / "m3")])
    assert refused.exit_code == 1 and "which predict does not apply" in refused.output
    assert not (tmp_path / "m3").exists()


def test_every_brain_slice_is_scored_and_stacks_back_into_volumes(folders):
    data = load_cross_dataset([Source(folders["ixi"])], [Source(folders["ms"], split_file=folders["split"])],
                              Pair.parse("t2-t1"), protocol=Preparation(slices="brain"), progress=False)
    test = data.tests[0].test
    assert all(test.brain[i].any() for i in range(len(test)))  # only slices with brain
    volumes = stack_volumes(np.zeros(test.brain.shape), test.brain, test.subjects, test.z, test.seg)
    assert [v.subject for v in volumes] == ["patient03", "patient04", "patient05", "patient06"]
    for v in volumes:
        assert v.scored.all()  # the brain slices of a volume are contiguous: no gap
        assert len(v.z) > 20  # more than the paper's slab
    slab = load_cross_dataset([Source(folders["ixi"])], [Source(folders["ms"], split_file=folders["split"])],
                              Pair.parse("t2-t1"), progress=False)
    assert sorted(set(slab.tests[0].test.z)) == list(range(70, 90))
    assert "slices" not in Preparation().to_dict() and Preparation(slices="brain").fingerprint() != Preparation().fingerprint()


def test_real_ixi_subject_trains_and_the_real_mslub_case_is_tested(real_ixi_root, real_mslub_root, tmp_path):
    """One real case each: it runs and the numbers are written (no accuracy claim on one case)."""
    split = tmp_path / "split.csv"
    split.write_text("subject,split\npatient07,test\n")
    out = tmp_path / "results"
    result = cli.invoke(app, ["run", "--method", "intensity", "--pair", "t2-t1", "--train-data", str(real_ixi_root),
                              "--data", str(real_mslub_root), "--split", str(split), "--out", str(out)])
    assert result.exit_code == 0, result.output
    run = _only_run(out)
    stored = json.loads((run / "volumes" / f"{real_mslub_root.name}.json").read_text())
    assert stored["subjects"] == ["patient07"] and stored["lesion_voxels"][0] > 0
    assert 0.0 <= stored["metrics"]["threshold_free"]["auroc"]["mean"] <= 1.0
    assert stored["thresholds"]["oracle_test"]["upper_bound"] is True


# Checksums of a within-dataset run computed by the code before the cross-dataset protocol existed (main at
# c91185c): metrics.json's bytes and every array of scores.npz, for a deterministic method and a trained one.
BEFORE = {
    "intensity": ("16636d64c5164d33cc7e07b1cbf40ec982047d8b4dd40d65440c0fa7633fe2ae",
                  "baa22578af9f4ec5c24c9ea326a45e1cc05b94751013da8fef9b2569f933d9e7"),
    "ae": ("355ee310d99fb696029e68b15a28036afed2b81a8ce65a556ee3e6681fff5a8f",
           "8ca0cbb81f976aef94c1c19728f3f01bcdbfb08652c1356b2b38a0b781387c86"),
}


@pytest.mark.parametrize("method, overrides", [("intensity", {}), ("ae", {"iterations": 4})])
def test_within_dataset_numbers_are_bit_identical_to_before(tmp_path_factory, method, overrides):
    root = tmp_path_factory.getbasetemp() / "bit-identical"
    if not root.is_dir():
        write_phantom_dataset(root / "data", n_subjects=8, seed=3, progress=False)
        rows = [f"UASPH_{i:05d},{name}" for name, ids in {"train": [0, 1, 2, 3, 4], "val": [5, 6], "test": [7]}.items()
                for i in ids]
        (root / "split.csv").write_text("subject,split\n" + "\n".join(rows) + "\n")
    spec = RunSpec(method=method, pair=Pair.parse("fl-t2"), profile="quick", device="cpu", data_root=root / "data",
                   split_file=root / "split.csv", out=root / f"out-{method}", overrides=overrides, n_bootstrap=50)
    run, _ = run_one(spec, log=lambda _: None)
    arrays = hashlib.sha256()
    with np.load(run / "scores.npz") as stored:
        for key in sorted(stored.files):
            arrays.update(key.encode())
            arrays.update(np.ascontiguousarray(stored[key]).tobytes())
    assert (hashlib.sha256((run / "metrics.json").read_bytes()).hexdigest(), arrays.hexdigest()) == BEFORE[method]


def test_cross_dataset_benchmark_file_prices_without_data_and_its_jobs_travel(tmp_path, monkeypatch):
    repo = Path(__file__).resolve().parents[1]
    for name in ("IXI", "BRATS", "MSLUB", "ATLAS", "WMH"):
        monkeypatch.delenv(name, raising=False)
    dry = cli.invoke(app, ["benchmark", str(repo / "benchmarks" / "cross-dataset.toml"), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    text = " ".join(dry.output.split())
    for assumed in ("ASSUMED brats2021 (1251 subjects", "ASSUMED mslub (30 subjects", "ASSUMED atlas2 (655",
                    "ASSUMED wmh (60", "ASSUMED 140 brain slices per volume"):
        assert assumed in text
    # a test dataset of 1251 subjects: 417 validate, 834 test, 140 slices each (the first of four datasets)
    assert f"{(417 + 10 + 218 + 20) * 140} validation" in text

    from uasbench.benchmark.config import load_config
    from uasbench.benchmark.jobs import Job, specs

    config = load_config(repo / "benchmarks" / "cross-dataset.toml", need_data=False)
    spec = specs(config, tmp_path)[0]
    assert spec.cross_dataset and len(spec.test_data) == 4 and spec.protocol.slices == "brain"
    assert spec.post.min_component_voxels == 10
    job = Job(spec, {}, tmp_path / "log")
    assert Job.from_json(job.to_json()).spec == spec  # what a worker process receives
