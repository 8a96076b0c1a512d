"""`uasbench predict`: a finished run applied to scans, maps written as NIfTI on the scan's own grid.

The runs are trained on the real sample cases (train TCGA-DU-7294, test TCGA-FG-6692, no validation
subject), so the run's stored test map is the slice z = 87 of a case that predict can score again.
"""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from uasbench.cli import app
from uasbench.data.layouts import open_dataset
from uasbench.predict import TrainedRun, predict_scan
from uasbench.predict.apply import to_scan_grid
from uasbench.predict.cases import open_scan
from uasbench.results import CHECKPOINT, METRICS_JSON, SCORES, ScoredSplits

pytestmark = pytest.mark.slow
cli = CliRunner()
CASE = "TCGA-FG-6692"
TEST_Z = 87  # the run's one test slice: FG-6692's largest tumour slice in 70..89
THRESHOLD = "0.5"  # the runs have no validation subject, hence no tuned threshold


@pytest.fixture(scope="module")
def runs(tmp_path_factory, real_brats_root) -> dict[str, Path]:
    """An intensity run and a 3-iteration AE run, both fl-t2 on the real cases."""
    root = tmp_path_factory.mktemp("runs")
    split = root / "split.csv"
    split.write_text(f"subject,split\nTCGA-DU-7294,train\n{CASE},test\n")
    made = {}
    for method, extra in (("intensity", []), ("ae", ["--set", "iterations=3", "--set", "checkpoint_every=3"])):
        out = root / method
        result = cli.invoke(app, ["run", "--method", method, "--pair", "fl-t2", "--data", str(real_brats_root),
                                  "--split", str(split), "--out", str(out), "--device", "cpu", *extra])
        assert result.exit_code == 0, result.output
        made[method] = next(p for p in out.iterdir() if not p.name.startswith("."))
    return made


def _predict(run: Path, data: Path, out: Path, *extra: str) -> str:
    result = cli.invoke(app, ["predict", str(run), "--data", str(data), "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return result.output


def _volume(path: Path) -> tuple[np.ndarray, nib.Nifti1Image]:
    img = nib.load(path)
    return np.asanyarray(img.dataobj), img


@pytest.mark.parametrize("method", ["intensity", "ae"])
def test_protocol_slices_reproduce_the_maps_the_run_stored(runs, real_brats_root, method):
    run = TrainedRun.read(runs[method])
    data = open_dataset(real_brats_root)
    case = next(c for c in data.cases if c.id == CASE)
    result = predict_scan(run.load_method("cpu"), run, open_scan(data, case, "flair"), run.protocol.z_values, 0.5)
    stored = ScoredSplits.load(runs[method] / SCORES)
    assert stored.test.subjects == (CASE,) and stored.test.z.tolist() == [TEST_Z]
    assert result.maps.shape == (20, 128, 128)
    np.testing.assert_array_equal(result.maps[TEST_Z - 70], stored.test_maps[0])


@pytest.fixture(scope="module")
def predicted(runs, real_brats_root, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("predicted")
    return out, _predict(runs["intensity"], real_brats_root, out, "--threshold", THRESHOLD)


def test_maps_are_written_on_the_scan_grid_with_its_affine(predicted, runs, real_brats_root):
    out, output = predicted
    for case in ("TCGA-DU-7294", CASE):
        scan = nib.load(real_brats_root / case / f"{case}_flair.nii.gz")
        brain = np.asanyarray(scan.dataobj) > 0
        anomaly, img = _volume(out / f"{case}_anomaly.nii.gz")
        seg, seg_img = _volume(out / f"{case}_anomaly_seg.nii.gz")
        for volume, image, dtype in ((anomaly, img, np.float32), (seg, seg_img, np.uint8)):
            assert volume.shape == scan.shape and volume.dtype == dtype
            np.testing.assert_allclose(image.affine, scan.affine)
            assert image.header.get_sform(coded=True)[1] == scan.header.get_sform(coded=True)[1]
        scored = np.zeros(scan.shape, dtype=bool)
        scored[:, :, 70:90] = True
        assert not anomaly[~(scored & brain)].any() and anomaly[scored & brain].any()
        np.testing.assert_array_equal(seg, (anomaly > float(THRESHOLD)).astype(np.uint8))
    assert "Dice" in output and "TCGA-DU-7294" in output and "flagged voxels" in output


def test_the_round_trip_matches_the_stored_map(predicted, runs, real_brats_root):
    """The written slice z = 87 is the run's stored test map put on the scan's grid."""
    out, _ = predicted
    run = TrainedRun.read(runs["intensity"])
    stored = ScoredSplits.load(runs["intensity"] / SCORES)
    scan_brain = np.asanyarray(nib.load(real_brats_root / CASE / f"{CASE}_flair.nii.gz").dataobj)[None, :, :, TEST_Z] > 0
    expected, _ = to_scan_grid(stored.test_maps, stored.test.brain, scan_brain, run.post)
    anomaly, _ = _volume(out / f"{CASE}_anomaly.nii.gz")
    np.testing.assert_array_equal(anomaly[:, :, TEST_Z], expected[0])


def test_a_case_with_only_the_input_modality_and_a_folder_of_single_files(predicted, runs, real_brats_root,
                                                                         tmp_path):
    out, _ = predicted
    flair = real_brats_root / CASE / f"{CASE}_flair.nii.gz"
    (tmp_path / "brats" / CASE).mkdir(parents=True)
    shutil.copy(flair, tmp_path / "brats" / CASE / flair.name)
    (tmp_path / "flat").mkdir()
    shutil.copy(flair, tmp_path / "flat" / "scan1.nii.gz")
    reference, _ = _volume(out / f"{CASE}_anomaly.nii.gz")
    for data, case in ((tmp_path / "brats", CASE), (tmp_path / "flat", "scan1")):
        output = _predict(runs["intensity"], data, tmp_path / "out", "--threshold", THRESHOLD)
        assert "no label" in output
        anomaly, _ = _volume(tmp_path / "out" / f"{case}_anomaly.nii.gz")
        np.testing.assert_array_equal(anomaly, reference)


def test_all_slices_keep_the_protocol_slices_unchanged(predicted, runs, real_brats_root, tmp_path):
    out, _ = predicted
    _predict(runs["intensity"], real_brats_root, tmp_path, "--threshold", THRESHOLD, "--slices", "all",
             "--cases", CASE)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{CASE}_anomaly.nii.gz", f"{CASE}_anomaly_seg.nii.gz"]
    everything, _ = _volume(tmp_path / f"{CASE}_anomaly.nii.gz")
    slab, _ = _volume(out / f"{CASE}_anomaly.nii.gz")
    np.testing.assert_array_equal(everything[:, :, 70:90], slab[:, :, 70:90])
    assert everything[:, :, 100].any()  # the tumour continues above the slab (z 61..112)


def test_the_default_threshold_is_the_runs_validation_tuned_one(runs, real_brats_root, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs["intensity"], run)
    metrics = json.loads((run / METRICS_JSON).read_text())
    metrics["thresholds"]["val_dice"].update(value=0.75, reason="")
    (run / METRICS_JSON).write_text(json.dumps(metrics))
    output = _predict(run, real_brats_root, tmp_path / "out", "--cases", CASE)
    assert "val_dice = 0.75" in output
    anomaly, _ = _volume(tmp_path / "out" / f"{CASE}_anomaly.nii.gz")
    seg, _ = _volume(tmp_path / "out" / f"{CASE}_anomaly_seg.nii.gz")
    np.testing.assert_array_equal(seg, (anomaly > 0.75).astype(np.uint8))


# -- bad input: one line, the right exit code, nothing written ------------------------------------------

def _fails(args: list[str], code: int, *needles: str) -> None:
    result = cli.invoke(app, ["predict", *args])
    assert result.exit_code == code, (result.exit_code, result.output)
    message = result.stderr.strip()
    assert "Traceback" not in result.output and len(message.splitlines()) == 1, message
    for needle in needles:
        assert needle in message, message


def _write(path: Path, shape: tuple[int, int, int], affine: np.ndarray = np.diag([-1.0, -1.0, 1.0, 1.0])) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.zeros(shape, dtype=np.int16)
    data[2:-2, 2:-2] = 100
    nib.save(nib.Nifti1Image(data, affine), path)


def test_bad_inputs(runs, real_brats_root, tmp_path):
    run = runs["intensity"]
    out = tmp_path / "out"
    ok = ["--data", str(real_brats_root), "--out", str(out)]
    no_ckpt = tmp_path / "no_ckpt"
    shutil.copytree(run, no_ckpt)
    (no_ckpt / CHECKPOINT).unlink()
    _fails([str(no_ckpt), *ok, "--threshold", THRESHOLD], 1, "no checkpoint.pt")
    _fails([str(tmp_path), *ok], 1, "not a run directory")
    _fails([str(run), *ok], 1, "--threshold val_dice", "no val slices")
    for bad in ("abc", "nan", "oracle_test"):
        _fails([str(run), *ok, "--threshold", bad], 2, f"--threshold {bad!r}")
    _fails([str(run), *ok, "--slices", "some"], 2, "--slices 'some'")
    _fails([str(run), *ok, "--threshold", THRESHOLD, "--cases", "NOPE,TCGA-DU-7294"], 2, "no case NOPE",
           "TCGA-FG-6692")
    _fails([str(run), "--data", str(tmp_path / "nowhere"), "--out", str(out), "--threshold", THRESHOLD], 1,
           "nowhere")

    t2_only = tmp_path / "t2_only" / CASE
    t2_only.mkdir(parents=True)
    shutil.copy(real_brats_root / CASE / f"{CASE}_t2.nii.gz", t2_only)
    _fails([str(run), "--data", str(t2_only.parent), "--out", str(out), "--threshold", THRESHOLD], 1,
           f"case {CASE}", f"{CASE}_flair.nii.gz")

    _write(tmp_path / "short" / "thin.nii.gz", (16, 16, 60))
    _fails([str(run), "--data", str(tmp_path / "short"), "--out", str(out), "--threshold", THRESHOLD], 1,
           "thin.nii.gz has 60 axial slices", "--slices all")
    # stored sagittally, its axial axis is the first array axis: 16 axial slices once reoriented
    sagittal = np.array([[0, 0, 1, 0], [0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)
    _write(tmp_path / "sagittal" / "sag.nii.gz", (16, 16, 155), sagittal)
    _fails([str(run), "--data", str(tmp_path / "sagittal"), "--out", str(out), "--threshold", THRESHOLD], 1,
           "sag.nii.gz has 16 axial slices once on the standard grid", "--slices all")
    assert not out.exists()  # every check above came before the output folder was touched

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    _fails([str(run), *ok[:2], "--out", str(blocker / "out"), "--threshold", THRESHOLD], 1,
           f"--out {blocker / 'out'}", "cannot write there")


def test_a_thin_scan_works_with_all_slices(runs, tmp_path):
    _write(tmp_path / "short" / "thin.nii.gz", (16, 16, 60))
    _predict(runs["intensity"], tmp_path / "short", tmp_path / "out", "--threshold", THRESHOLD, "--slices", "all")
    anomaly, img = _volume(tmp_path / "out" / "thin_anomaly.nii.gz")
    assert anomaly.shape == (16, 16, 60) and img.header.get_data_dtype() == np.float32


def test_a_case_that_fails_midway_leaves_only_complete_files(runs, real_brats_root, tmp_path):
    flair = real_brats_root / CASE / f"{CASE}_flair.nii.gz"
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(flair, data / "a_good.nii.gz")
    raw = gzip.decompress(flair.read_bytes())
    (data / "b_truncated.nii.gz").write_bytes(gzip.compress(raw[: len(raw) // 3]))  # header intact, data cut
    _fails([str(runs["intensity"]), "--data", str(data), "--out", str(tmp_path / "out"), "--threshold", THRESHOLD],
           1, "case b_truncated", "b_truncated.nii.gz")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_good_anomaly.nii.gz", "a_good_anomaly_seg.nii.gz"]
    nib.load(tmp_path / "out" / "a_good_anomaly.nii.gz").get_fdata()


@pytest.mark.parametrize("method", ["intensity", "ae"])
def test_a_scan_stored_in_another_orientation_gives_the_same_maps(runs, real_brats_root, tmp_path, method):
    """The same case stored RAS, LAS or LPI instead of LPS (same image in world space): identical maps on the
    standard grid, outputs that overlay each copy (identical once brought back to LPS), the same Dice, and an
    output line that says which slab of which grid was scored."""
    from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

    reference_out = tmp_path / "lps"
    reference = _predict(runs[method], real_brats_root, reference_out, "--cases", CASE, "--threshold", THRESHOLD)
    dice_line = next(line for line in reference.splitlines() if line.startswith(CASE))
    assert "Dice" in dice_line and "on z 70..89, " in dice_line, dice_line  # LPS: the line reads as before
    expected = {kind: _volume(reference_out / f"{CASE}_{kind}.nii.gz")[0] for kind in ("anomaly", "anomaly_seg")}
    for codes in ("RAS", "LAS", "LPI"):
        folder = tmp_path / codes / CASE
        folder.mkdir(parents=True)
        for name in ("flair", "seg"):
            img = nib.load(real_brats_root / CASE / f"{CASE}_{name}.nii.gz")
            twin = img.as_reoriented(ornt_transform(io_orientation(img.affine), axcodes2ornt(tuple(codes))))
            nib.save(twin, folder / f"{CASE}_{name}.nii.gz")
        out = tmp_path / f"out_{codes}"
        output = _predict(runs[method], folder.parent, out, "--threshold", THRESHOLD)
        line = next(line for line in output.splitlines() if line.startswith(CASE))
        assert f"z 70..89 of the standard grid after: reorient flair {codes} -> LPS" in line, line
        assert line.split("Dice ")[1][:6] == dice_line.split("Dice ")[1][:6]  # same Dice to 4 decimals
        for kind, lps in expected.items():
            data, img = _volume(out / f"{CASE}_{kind}.nii.gz")
            assert nib.aff2axcodes(img.affine) == tuple(codes) and data.shape == twin.shape  # overlays its input
            back = img.as_reoriented(ornt_transform(io_orientation(img.affine), axcodes2ornt(("L", "P", "S"))))
            np.testing.assert_array_equal(np.asanyarray(back.dataobj), lps)


def test_a_resampled_dataset_read_through_its_layout_reproduces_the_maps_the_run_stored(tmp_path):
    """A non-BraTS layout whose scans need every step of the spatial standard (reoriented RAS -> LPS, 1.2 mm
    in-plane voxels resampled to 1 mm, field of view cropped around the brain): a run on it, then ``predict --layout``,
    which reads the scans as the run's slice cache did and so gives the very maps the run stored."""
    from uasbench.data.phantom import subject_kind
    from uasbench.data.phantom_layouts import write_phantom_in_layout

    root, _ = write_phantom_in_layout(tmp_path / "ms", 4, 3, layout="mslub", orientation="RAS", progress=False,
                                      workers=1)
    for path in root.rglob("*.nii.gz"):  # the same volumes, stored with 1.2 mm voxels in-plane
        img = nib.load(path)
        nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine @ np.diag([1.2, 1.2, 1.0, 1.0]),
                                 img.header), path)
    data = open_dataset(root)
    test = next(i for i in range(4) if subject_kind(i) != "healthy")
    others = iter(("train", "train", "val"))
    roles = ["test" if i == test else next(others) for i in range(4)]
    split = tmp_path / "split.csv"
    split.write_text("subject,split\n" + "".join(f"{c.id},{r}\n" for c, r in zip(data.cases, roles)))
    out = tmp_path / "results"
    result = cli.invoke(app, ["run", "--method", "intensity", "--pair", "fl-t2", "--data", str(root), "--layout",
                              "mslub", "--split", str(split), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    run_dir = next(p for p in out.iterdir() if not p.name.startswith("."))
    run = TrainedRun.read(run_dir)
    stored = ScoredSplits.load(run_dir / SCORES)
    case = data.cases[test]
    scan = open_scan(data, case, "flair")
    predicted = predict_scan(run.load_method("cpu"), run, scan, run.protocol.z_values, 0.5)
    assert {"flair", "label"} <= set(predicted.spatial.resampled) and predicted.spatial.fov_shift != ((0, 0), (0, 0))
    assert set(stored.test.subjects) == {case.id} and len(stored.test.z)
    for z, stored_map in zip(stored.test.z, stored.test_maps):
        np.testing.assert_array_equal(predicted.maps[z - run.protocol.z_start], stored_map)
    # through the command line: maps on each scan's own (1.2 mm, RAS) grid
    maps = tmp_path / "maps"
    output = _predict(run_dir, root, maps, "--layout", "mslub", "--cases", case.id)
    assert "of the standard grid after: reorient flair RAS -> LPS" in output
    anomaly, img = _volume(maps / f"{case.id}_anomaly.nii.gz")
    np.testing.assert_allclose(img.affine, nib.load(case.files["flair"]).affine)
    assert anomaly.shape == nib.load(case.files["flair"]).shape and anomaly.max() > 0
