"""End-to-end runs through the CLI and the engine on a tiny phantom and on the real sample cases.

These are the few slow tests: every method runs the whole chain (data -> fit -> score -> evaluate ->
run directory) with a handful of training steps, so that wiring errors cannot hide between unit tests.
"""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from uasbench.cli import app
from uasbench.data.phantom import write_phantom_dataset
from uasbench.modalities import Pair
from uasbench.results import CHECKPOINT, MANIFEST, METRICS_CSV, METRICS_JSON, SCORES, ScoredSplits
from uasbench.benchmark.run import RunSpec, run_one
from uasbench.evaluation.evaluate import evaluate

pytestmark = pytest.mark.slow
cli = CliRunner()
# Subjects 0 and 4 are healthy, the others carry tumours (see phantom.subject_kind).
SPLIT = {"train": [0, 1, 2, 3, 4], "val": [5, 6], "test": [7]}


@pytest.fixture(scope="module")
def tiny_phantom(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("phantom") / "data"
    write_phantom_dataset(root, n_subjects=8, seed=3, progress=False)
    split = root.parent / "split.csv"
    rows = [f"UASPH_{i:05d},{name}" for name, ids in SPLIT.items() for i in ids]
    split.write_text("subject,split\n" + "\n".join(rows) + "\n")
    return root, split


def expected_counts(data: Path) -> dict[str, int]:
    """Slice counts read from the seg files: training = tumour-free slices 70-89 of the training subjects,
    healthy validation = up to 4 tumour-free slices per validation subject, one tumour slice per val/test subject."""
    def healthy_slices(i: int) -> int:
        seg = np.asarray(nib.load(data / f"UASPH_{i:05d}" / f"UASPH_{i:05d}_seg.nii.gz").dataobj)
        return int(sum(not seg[:, :, z].any() for z in range(70, 90)))

    return {"train": sum(healthy_slices(i) for i in SPLIT["train"]),
            "val": len(SPLIT["val"]), "val_healthy": sum(min(4, healthy_slices(i)) for i in SPLIT["val"]),
            "test": len(SPLIT["test"])}


def _only_run(out: Path) -> Path:
    runs = [p for p in out.iterdir() if not p.name.startswith(".")]
    assert len(runs) == 1, runs
    return runs[0]


def test_intensity_through_the_cli_then_evaluate_leaderboard_and_figure(tiny_phantom, tmp_path):
    data, split = tiny_phantom
    out = tmp_path / "results"
    result = cli.invoke(app, ["run", "--method", "intensity", "--pair", "fl-t2", "--data", str(data),
                              "--split", str(split), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    run = _only_run(out)
    for name in (MANIFEST, SCORES, METRICS_JSON, METRICS_CSV, CHECKPOINT):
        assert (run / name).is_file(), name
    manifest = json.loads((run / MANIFEST).read_text())
    assert manifest["complete"] is True
    assert manifest["counts"] == expected_counts(data)
    assert manifest["split_sha256"] and manifest["data_fingerprint"] and manifest["versions"]["torch"]
    assert set(manifest["wall_times_s"]) == {"data_s", "fit_s", "score_s", "evaluate_s"}
    metrics = json.loads((run / METRICS_JSON).read_text())
    assert metrics["thresholds"]["oracle_test"]["upper_bound"] is True
    assert "intensity fl-t2" in result.output  # the summary table

    before = (run / METRICS_JSON).read_text()
    again = cli.invoke(app, ["evaluate", str(run), "--erode-brain", "4"])
    assert again.exit_code == 0, again.output
    assert json.loads((run / MANIFEST).read_text())["postprocess"]["erode_brain_px"] == 4
    assert (run / METRICS_JSON).read_text() != before

    board = cli.invoke(app, ["leaderboard", str(out), "--format", "md"])
    assert board.exit_code == 0, board.output
    assert "intensity" in board.output and "Dice" in board.output

    png = tmp_path / "fig.png"
    fig = cli.invoke(app, ["figure", str(out), "--output", str(png), "--examples", "1"])
    assert fig.exit_code == 0, fig.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("method, pair", [
    ("ae", "fl-t2"), ("vae", "fl-t2"), ("dae", "fl-t2"), ("ddpm", "fl-t2"),
    ("cyclic_unet", "fl-t2"), ("mmccd", "fl-t2"), ("mmccd", "t1-fl"),
])
def test_every_method_runs_end_to_end(tiny_phantom, tmp_path, method, pair):
    data, split = tiny_phantom
    spec = RunSpec(method=method, pair=Pair.parse(pair), profile="quick", device="cpu", data_root=data,
                   split_file=split, out=tmp_path, overrides={"iterations": 4}, n_bootstrap=50)
    run_dir, result = run_one(spec, log=lambda msg: None)
    scored = ScoredSplits.load(run_dir / SCORES)
    assert scored.test_maps.shape == scored.test.x.shape
    assert np.isfinite(scored.test_maps).all() and np.isfinite(scored.val_maps).all()
    # the result returned, metrics.json and a fresh evaluation of the stored maps all agree
    metrics = json.loads((run_dir / METRICS_JSON).read_text())
    again = evaluate(val_maps=scored.val_maps, val=scored.val, healthy_maps=scored.healthy_maps,
                     val_healthy=scored.val_healthy, test_maps=scored.test_maps, test=scored.test, n_bootstrap=50)
    assert again.to_dict() == metrics
    head = result.headline()
    assert head["auroc"] == metrics["metrics"]["threshold_free"]["auroc"]["mean"] and 0 <= head["auroc"] <= 1
    assert head["val_dice_threshold"] == metrics["thresholds"]["val_dice"]["value"] is not None
    assert 0 <= head["dice"] <= 1 and 0 <= head["oracle_dice"] <= 1
    manifest = json.loads((run_dir / MANIFEST).read_text())
    assert manifest["pair"] == pair and manifest["config"]["iterations"] == 4
    assert manifest["overrides"] == {"iterations": 4}
    # Training went through the shared loop's work folder, so a rerun would resume from it.
    assert list(Path(manifest["workdir"]).glob("ckpt_*.pt"))
    logs = sorted(p.name for p in run_dir.glob("loss_*.csv"))
    assert logs, "the loss log is written with the run"
    if method in ("cyclic_unet", "mmccd"):
        assert len(logs) == 2  # f and g are trained separately, each with its own curve


def test_data_commands(tmp_path, real_brats_root):
    out = tmp_path / "ph"
    made = cli.invoke(app, ["data", "phantom", "--out", str(out), "--subjects", "1", "--seed", "5"])
    assert made.exit_code == 0, made.output
    assert sorted(p.name for p in (out / "UASPH_00000").glob("*.nii.gz")) == [
        f"UASPH_00000_{m}.nii.gz" for m in ("flair", "seg", "t1", "t1ce", "t2")]
    again = cli.invoke(app, ["data", "phantom", "--out", str(out), "--subjects", "1"])
    assert again.exit_code == 1 and "error:" in again.stderr  # never overwrites a dataset
    seen = cli.invoke(app, ["data", "inspect", str(real_brats_root)])
    assert seen.exit_code == 0, seen.output
    assert "0, 1, 2, 4" in seen.output and "brats2021" in seen.output and "LPS (8)" in seen.output


def test_data_prepare_builds_the_cache_runs_reuse_and_reports_bad_cases(tmp_path, real_brats_root):
    import shutil

    from uasbench.data.cache import open_cache
    from uasbench.data.layouts import open_dataset
    from uasbench.data.preprocess import Preparation

    data = tmp_path / "data"
    shutil.copytree(real_brats_root, data, ignore=shutil.ignore_patterns("*.md", "SHA256SUMS"))
    made = cli.invoke(app, ["data", "prepare", str(data), "--normalisation", "official"])
    assert made.exit_code == 0, made.output
    assert "2 cases ready" in made.output
    cache = open_cache(open_dataset(data), Preparation(normalisation="official"), progress=False)
    assert str(cache.path) in made.output  # a run finds the cache the command built
    (data / "TCGA-DU-7294" / "TCGA-DU-7294_t1.nii.gz").unlink()
    stopped = cli.invoke(app, ["data", "prepare", str(data)])
    assert stopped.exit_code == 1 and "TCGA-DU-7294_t1.nii.gz" in stopped.stderr
    skipped = cli.invoke(app, ["data", "prepare", str(data), "--skip-bad-cases"])
    assert skipped.exit_code == 0 and "1 cases ready" in skipped.output
    assert "skipped: case TCGA-DU-7294" in skipped.stderr


def test_an_interrupted_run_leaves_no_finished_looking_directory(tiny_phantom, tmp_path, monkeypatch):
    from uasbench_methods.intensity import IntensityBaseline

    def interrupted(self, slices):
        raise KeyboardInterrupt

    monkeypatch.setattr(IntensityBaseline, "_score", interrupted)
    data, split = tiny_phantom
    result = cli.invoke(app, ["run", "--method", "intensity", "--data", str(data), "--split", str(split),
                              "--out", str(tmp_path), "--device", "cpu"])
    assert result.exit_code == 130
    assert [p for p in tmp_path.iterdir() if not p.name.startswith(".")] == []


def test_real_cases_train_on_one_test_on_the_other(real_brats_root, tmp_path):
    """Two real cases cannot fill a validation split: the headline threshold is then undefined and said so."""
    split = tmp_path / "split.csv"
    split.write_text("subject,split\nTCGA-DU-7294,train\nTCGA-FG-6692,test\n")
    result = cli.invoke(app, ["run", "--method", "intensity", "--pair", "fl-t2", "--data", str(real_brats_root),
                              "--split", str(split), "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "headline threshold undefined: no val slices" in result.output
    assert "ORACLE upper bound" in result.output
    run_dir = _only_run(tmp_path / "out")
    scored = ScoredSplits.load(run_dir / SCORES)
    assert scored.test.subjects == ("TCGA-FG-6692",) and int(scored.test.z[0]) == 87
    thresholds = json.loads((run_dir / METRICS_JSON).read_text())["thresholds"]
    assert thresholds["val_dice"]["value"] is None and thresholds["val_dice"]["reason"]
    assert thresholds["oracle_test"]["value"] is not None
    manifest = json.loads((run_dir / MANIFEST).read_text())
    assert manifest["counts"]["train"] == 20 and manifest["data_report"]["warnings"]
