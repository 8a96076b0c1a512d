"""A results folder shared by concurrent jobs: unique run names, one trainer per work folder, readable runs,
staging folders never counted, and the smaller reliability fixes (BOM split files, skipped-case summary)."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from test_brats_loader import _break, write_case, write_five_cases
from uasbench.cli import app
from uasbench.data.benchmark_data import load_benchmark_data
from uasbench.data.splits import parse_split_csv
from uasbench.errors import UasbenchError
from uasbench.files import check_output_file, check_output_folder, describe_os_error
from uasbench.modalities import Pair
from uasbench.report.runs import collect_runs
from uasbench.results import (MANIFEST, SCORES, ScoredSplits, atomic_directory, manifest_paths, new_run_name,
                              read_manifest, write_json)

@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    return write_five_cases(tmp_path_factory.mktemp("tiny"))


@pytest.mark.slow
def test_two_identical_jobs_at_once_both_finish_and_train_once(tiny, tmp_path):
    data, split = tiny
    load_benchmark_data(data, Pair.parse("fl-t2"), split_file=split, progress=False)  # the cache, built once
    out = tmp_path / "shared"
    cmd = [sys.executable, "-m", "uasbench", "run", "--method", "ae", "--data", str(data), "--split", str(split),
           "--out", str(out), "--device", "cpu", "--set", "iterations=20", "--set", "checkpoint_every=10"]
    jobs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(job.wait(timeout=600), *job.communicate()) for job in jobs]
    assert [code for code, _, _ in results] == [0, 0], results
    reused = [err for _, _, err in results if "ae: reusing the finished training" in err]
    assert len(reused) == 1, results  # one job trained, the other waited and took its checkpoint
    runs = [m.parent for m in manifest_paths(out)]
    assert len(runs) == 2 and runs[0].name != runs[1].name  # no finished run lost
    assert all(read_manifest(run).complete for run in runs)
    logs = [(run / "loss_ae.csv").read_text() for run in runs]
    assert logs[0] == logs[1] and len(logs[0].splitlines()) == 1 + 20  # one training of 20 steps
    maps = [ScoredSplits.load(run / SCORES).test_maps for run in runs]
    assert np.array_equal(maps[0], maps[1])


def test_run_names_are_unique_within_one_microsecond():
    names = {new_run_name("ae_fl-t2_quick_s0") for _ in range(200)}
    assert len(names) == 200
    assert all(n.startswith("ae_fl-t2_quick_s0_") for n in names)


def test_finished_runs_follow_the_umask_so_a_team_can_read_them(tmp_path):
    previous = os.umask(0o022)
    try:
        with atomic_directory(tmp_path / "run") as staging:
            write_json(staging / MANIFEST, {"complete": True})
    finally:
        os.umask(previous)
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "run" / MANIFEST).stat().st_mode & 0o777 == 0o644


def test_staging_and_work_folders_are_never_counted_as_runs(tmp_path):
    for hidden in (".tmp-ae_fl-t2_quick_s0_x-1234", ".work/key"):
        (tmp_path / hidden).mkdir(parents=True)
        write_json(tmp_path / hidden / MANIFEST, {"complete": True, "method": "ae", "pair": "fl-t2",
                                                   "profile": "quick", "seed": 0})
        write_json(tmp_path / hidden / "metrics.json", {"metrics": {}})
    assert manifest_paths(tmp_path) == []
    assert collect_runs(tmp_path).empty


def test_a_split_file_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "split.csv"
    path.write_bytes("\ufeffsubject,split\nA,train\nB,test\n".encode("utf-8"))
    assert parse_split_csv(path) == {"A": "train", "B": "test"}


@pytest.mark.slow
def test_skipped_bad_cases_are_summarised_on_the_console(tiny, tmp_path):
    data, split = tiny
    bad = tmp_path / "data"
    shutil.copytree(data, bad)
    write_case(bad, "SYN_BAD", seed=9)
    _break(bad / "SYN_BAD", "missing")
    result = CliRunner().invoke(app, ["run", "--method", "intensity", "--data", str(bad), "--split", str(split),
                                      "--out", str(tmp_path / "out"), "--device", "cpu", "--skip-bad-cases"])
    assert result.exit_code == 0, result.output
    assert "skipped: case SYN_BAD" in result.output


def test_output_checks_and_file_system_errors_are_one_line(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "out").mkdir()
    with pytest.raises(UasbenchError, match=r"--output .*/out is a folder, not a file"):
        check_output_file(tmp_path / "out", "--output")
    with pytest.raises(UasbenchError, match=r"--out .*/f/sub lies under the file .*/f$"):
        check_output_folder(tmp_path / "f" / "sub", "--out")
    check_output_folder(tmp_path / "new" / "deeper", "--out")  # creatable: fine, and nothing is created
    assert not (tmp_path / "new").exists()
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.npz"))
    assert describe_os_error(full) == (f"file system error on {tmp_path / 'x.npz'}: the disk is full (no space "
                                       "left on device); free some space or write to another folder")


def test_predict_outputs_on_a_full_disk_name_the_file_and_leave_nothing(tmp_path, monkeypatch):
    """A write that fails without a file name (what a full disk raises from inside a compressor) ends with
    one line naming the map's final path, and no temporary or partial file stays behind."""
    import nibabel as nib

    from uasbench.predict import nifti

    def full_disk(image, path):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(nifti.nib, "save", full_disk)
    image = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    target = tmp_path / "case_anomaly.nii.gz"
    with pytest.raises(UasbenchError, match=f"file system error on {target}: the disk is full"):
        nifti.save_together({target: image, tmp_path / "case_anomaly_seg.nii.gz": image})
    assert list(tmp_path.iterdir()) == []
