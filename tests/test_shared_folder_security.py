"""A shared results folder cannot be turned against its users (issue 24), through the real command line:
planted symbolic and hard links are refused with one line and nothing outside the results folder is written;
the leaderboard ranks only runs that pass its checks and lists the others; a full disk is one line naming the
file; a SIGTERM while a run folder is written leaves no staging folder; two grids never share a folder; and
the smaller fixes (a rescore of a rescore, literal brackets, unwrapped `run directory:` lines, huge dry runs).
"""
from __future__ import annotations

import dataclasses
import errno
import functools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_brats_loader import write_five_cases
from uasbench.errors import UasbenchError
from uasbench.results import MANIFEST, METRICS_JSON, STAGING_PREFIX, manifest_paths

VICTIM_TEXT = "someone else's file\n"


def cli(*argv: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uasbench", *argv], capture_output=True, text=True, timeout=900,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def one_error_line(proc: subprocess.CompletedProcess, code: int = 1) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Five synthetic cases, a split, a finished AE run (2 steps) and its work folder's name."""
    root = tmp_path_factory.mktemp("shared")
    write_five_cases(root)
    base = root / "base"
    proc = cli(*ae_args(root, base))
    assert proc.returncode == 0, proc.stderr
    (work,) = (base / ".work").iterdir()
    return {"root": root, "data": root / "data", "split": root / "split.csv", "base": base, "key": Path(work.name)}


def ae_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--method", "ae", "--set", "iterations=2", "--data", str(root / "data"), "--split",
            str(root / "split.csv"), "--out", str(out), "--device", "cpu", *extra]


def victim(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "victim.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(VICTIM_TEXT)
    return path


def planted_work(tiny: dict[str, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A fresh results folder whose work folder for the AE job exists with its genuine identity (as a job
    that was interrupted before its first checkpoint leaves it); returns (results, work)."""
    out = tmp_path / "results"
    work = out / ".work" / tiny["key"]
    work.mkdir(parents=True)
    shutil.copy(tiny["base"] / ".work" / tiny["key"] / "run_identity.json", work)
    return out, work


# -- 1. planted links ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_symlinked_work_folder_is_refused_and_its_target_untouched(tiny, tmp_path):
    target = victim(tmp_path).parent
    out = tmp_path / "results"
    (out / ".work").mkdir(parents=True)
    (out / ".work" / tiny["key"]).symlink_to(target)
    line = one_error_line(cli(*ae_args(tiny["root"], out)))
    assert f"{out / '.work' / tiny['key']} is a symbolic link: refused to write through it" in line
    assert sorted(p.name for p in target.iterdir()) == ["victim.txt"]
    assert not manifest_paths(out)


@pytest.mark.slow
def test_a_symlinked_work_root_is_refused(tiny, tmp_path):
    target = victim(tmp_path).parent
    out = tmp_path / "results"
    out.mkdir()
    (out / ".work").symlink_to(target)
    assert f"{out / '.work'} is a symbolic link" in one_error_line(cli(*ae_args(tiny["root"], out)))
    assert sorted(p.name for p in target.iterdir()) == ["victim.txt"]


@pytest.mark.slow
@pytest.mark.parametrize("name, kind", [("loss_ae.csv", "symlink"), ("loss_ae.csv", "hardlink"),
                                        ("train.lock", "symlink"), ("train.lock", "hardlink"),
                                        ("ckpt_ae.pt", "symlink")])
def test_a_planted_link_in_the_work_folder_is_refused(tiny, tmp_path, name, kind):
    target = victim(tmp_path)
    out, work = planted_work(tiny, tmp_path)
    if kind == "symlink":
        (work / name).symlink_to(target)
    else:
        os.link(target, work / name)
    line = one_error_line(cli(*ae_args(tiny["root"], out)))
    assert str(work / name) in line
    assert ("is a symbolic link" if kind == "symlink" else "is a hard link") in line
    assert target.read_text() == VICTIM_TEXT  # neither truncated nor written
    assert not manifest_paths(out)


@pytest.mark.slow
def test_a_planted_job_log_link_is_refused_and_the_grid_says_so(tiny, tmp_path):
    target = victim(tmp_path)
    out = tmp_path / "grid"
    (out / "logs").mkdir(parents=True)
    (out / "logs" / "intensity_fl-t2_quick_s0.log").symlink_to(target)
    bench = tmp_path / "bench.toml"
    bench.write_text(f'[benchmark]\ndata = "{tiny["data"]}"\nsplit = "{tiny["split"]}"\n'
                     '[[grid]]\nmethods = ["intensity"]\npairs = ["fl-t2"]\n')
    proc = cli("benchmark", str(bench), "--out", str(out))
    assert proc.returncode == 1 and "1 of 1 jobs failed" in proc.stderr, proc.stderr
    assert "intensity_fl-t2_quick_s0.log is a symbolic link: refused" in proc.stdout
    assert target.read_text() == VICTIM_TEXT and not manifest_paths(out)


# -- 2. run identity ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_rescore_refuses_the_checkpoint_of_another_seed_and_keeps_one_suffix(tiny, tmp_path):
    common = ["--method", "ddpm", "--set", "iterations=2", "--set", "noise_levels=[100]", "--data",
              str(tiny["data"]), "--split", str(tiny["split"]), "--out", str(tmp_path), "--device", "cpu"]
    runs = {}
    for seed in (0, 1):
        proc = cli("run", *common, "--seed", str(seed))
        assert proc.returncode == 0, proc.stderr
        runs[seed] = Path(proc.stdout.strip().splitlines()[-1].removeprefix("run directory: "))
    forged = tmp_path / "copies" / runs[0].name
    shutil.copytree(runs[0], forged)
    shutil.copy(runs[1] / "checkpoint.pt", forged / "checkpoint.pt")
    line = one_error_line(cli("rescore", str(forged), "--set", "noise_levels=[200]"))
    assert "was made for another run" in line and "seed 1, not 0" in line
    assert len(manifest_paths(tmp_path / "copies")) == 1  # nothing written

    first = cli("rescore", str(runs[0]), "--set", "noise_levels=[200]")
    child = Path(first.stdout.strip().splitlines()[-1].removeprefix("run directory: "))
    second = cli("rescore", str(child), "--set", "noise_levels=[300]")
    grandchild = Path(second.stdout.strip().splitlines()[-1].removeprefix("run directory: "))
    assert grandchild.is_dir() and grandchild.name.count("_rescored_") == 1
    assert len(grandchild.name) == len(child.name) and grandchild.name.startswith(runs[0].name)


# -- 3. the leaderboard trusts nothing it reads ---------------------------------------------------------

def _intensity_run(tiny: dict[str, Path], out: Path, seed: int) -> Path:
    proc = cli("run", "--method", "intensity", "--data", str(tiny["data"]), "--split", str(tiny["split"]),
               "--out", str(out), "--seed", str(seed), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip().splitlines()[-1].removeprefix("run directory: "))


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.slow
def test_the_leaderboard_skips_runs_that_fail_its_checks_with_one_line_each(tiny, tmp_path):
    good = _intensity_run(tiny, tmp_path / "board", 0)
    made = tmp_path / "made"
    infinite = shutil.copytree(_intensity_run(tiny, made, 0), tmp_path / "board" / "infinite" / good.name)
    _edit(infinite / METRICS_JSON, lambda m: m["metrics"]["val_dice"]["dice"].update(mean=math.inf))
    claims_ae = shutil.copytree(good, tmp_path / "board" / "claims" / good.name.replace("intensity_", "ae_"))
    _edit(claims_ae / MANIFEST, lambda m: m.update(method="ae"))
    string_seed = shutil.copytree(good, tmp_path / "board" / "string-seed" / good.name)
    _edit(string_seed / MANIFEST, lambda m: m.update(seed="0"))
    (tmp_path / "board" / "linked").symlink_to(made)

    proc = cli("leaderboard", str(tmp_path / "board"))
    assert proc.returncode == 0, proc.stderr
    reasons = {line.split(": ", 1)[0].removeprefix("skipped run "): line.split(": ", 1)[1]
               for line in proc.stderr.strip().splitlines()}
    assert len(reasons) == 4, proc.stderr
    assert "value inf is not a finite number" in reasons[str(infinite)]
    assert "its checkpoint holds method 'intensity', its manifest says 'ae'" in reasons[str(claims_ae)]
    assert "seed is '0', not an integer" in reasons[str(string_seed)]
    assert "a symbolic link to" in reasons[str(tmp_path / "board" / "linked")]
    assert "intensity (1 seed)" in proc.stdout and "| ae" not in proc.stdout  # one ranked run, none merged

    page = tmp_path / "page.html"
    proc = cli("leaderboard", str(tmp_path / "board"), "--format", "html", "--output", str(page))
    assert proc.returncode == 0 and len(proc.stderr.strip().splitlines()) == 4, proc.stderr
    text = page.read_text()
    assert "4 run folder(s) were skipped" in text and "not an integer" in text


# -- 4. a full disk --------------------------------------------------------------------------------------

@pytest.fixture()
def small_disk(tmp_path):
    """A 1 MiB tmpfs (root only); skipped where mounting is not allowed."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.slow
def test_a_full_disk_while_saving_a_training_checkpoint_is_one_line(tiny, small_disk):
    line = one_error_line(cli(*ae_args(tiny["root"], small_disk)))
    assert f"{small_disk / '.work' / tiny['key'] / 'ckpt_ae.pt'}: the disk is full" in line
    assert not manifest_paths(small_disk)
    assert not [p for p in small_disk.rglob("*") if p.name.startswith(".ckpt_ae.pt")]  # no temp file left


@pytest.mark.slow
def test_a_full_disk_for_the_slice_cache_names_it_and_the_remedy(tiny, small_disk, tmp_path):
    line = one_error_line(cli("run", "--method", "intensity", "--data", str(tiny["data"]), "--split",
                              str(tiny["split"]), "--out", str(tmp_path / "results"), "--device", "cpu",
                              env={"UASBENCH_CACHE_DIR": str(small_disk)}))
    assert str(small_disk) in line and "the disk is full" in line and "set UASBENCH_CACHE_DIR" in line


@pytest.mark.slow
def test_a_full_disk_for_a_run_folder_and_the_page_is_one_line(tiny, small_disk, tmp_path):
    board = tmp_path / "board"
    _intensity_run(tiny, board, 0)
    with (small_disk / "filler").open("wb") as filler:  # fill what the tmpfs holds
        with pytest.raises(OSError):
            for _ in range(64):
                filler.write(b"\0" * (1 << 16))
                filler.flush()
    line = one_error_line(cli("leaderboard", str(board), "--format", "html", "--output",
                              str(small_disk / "page.html")))
    assert f"{small_disk / 'page.html'}: the disk is full" in line
    line = one_error_line(cli("run", "--method", "intensity", "--data", str(tiny["data"]), "--split",
                              str(tiny["split"]), "--out", str(small_disk), "--device", "cpu"))
    assert str(small_disk) in line and "the disk is full" in line
    assert not manifest_paths(small_disk) and not list(small_disk.glob(f"{STAGING_PREFIX}*"))


def test_a_full_disk_without_a_mount_is_one_line_naming_the_file(tmp_path, monkeypatch):
    """ENOSPC raised by a write (no file name in it) and torch's RuntimeError around it both name the file."""
    import torch

    from uasbench.checkpoints import save_checkpoint
    from uasbench.files import write_text_atomic

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def torch_full(_payload, handle):
        try:
            full()
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(torch, "save", torch_full)
    with pytest.raises(UasbenchError, match=rf"^file system error on {tmp_path / 'c.pt'}: the disk is full"):
        save_checkpoint({"x": 1}, tmp_path / "c.pt")
    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(UasbenchError, match=r"summary.md: the disk is full .*; free some space"):
        write_text_atomic(tmp_path / "summary.md", "text")
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


# -- 7. the smaller points ------------------------------------------------------------------------------

def test_sigterm_while_a_run_folder_is_written_leaves_no_staging_folder(tmp_path):
    ready = tmp_path / "ready"
    script = ("import sys, time; from pathlib import Path; from uasbench.results import atomic_directory\n"
              f"with atomic_directory(Path({str(tmp_path / 'run')!r})) as staging:\n"
              "    (staging / 'half.json').write_text('{}')\n"
              f"    Path({str(ready)!r}).write_text('1')\n"
              "    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists() and any(p.name.startswith(STAGING_PREFIX) for p in tmp_path.iterdir())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ready"]  # no staging folder, no run


def test_a_second_grid_into_the_same_folder_is_refused(tmp_path):
    from uasbench.files import locked

    bench = tmp_path / "bench.toml"
    bench.write_text('[benchmark]\ndata = "phantom"\n[[grid]]\nmethods = ["intensity"]\npairs = ["fl-t2"]\n')
    out = tmp_path / "grid"
    out.mkdir()
    with locked(out / ".grid.lock", lambda: pytest.fail("the test's own lock is busy")):  # a first grid
        line = one_error_line(cli("benchmark", str(bench), "--out", str(out)))
    assert f"another `uasbench benchmark` is writing into {out}" in line
    assert sorted(p.name for p in out.iterdir()) == [".grid.lock"]  # no log, no job, no run


@pytest.mark.slow
def test_brackets_stay_literal_and_the_run_directory_line_is_never_wrapped(tiny, tmp_path):
    out = tmp_path / ("[red]shared-[link=https://example.org]results-" + "x" * 80)
    proc = cli("run", "--method", "intensity", "--data", str(tiny["data"]), "--split", str(tiny["split"]),
               "--out", str(out), "--device", "cpu", env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith(f"run directory: {out}/intensity_fl-t2_")  # one line, brackets as typed
    assert Path(last.removeprefix("run directory: ")).is_dir()


def test_a_dry_run_of_a_huge_grid_prices_each_network_once(tmp_path, monkeypatch):
    """40,320 jobs: the FLOPs of each distinct network are counted once and each method's config built once,
    and the table has one row per method (laying out 40,000 rows took minutes)."""
    from typer.testing import CliRunner

    from uasbench.benchmark import cost, jobs
    from uasbench.cli import app

    calls = {"flops": 0, "configs": 0}
    count_flops, build_config = cost.forward_flops, jobs._method_config.__wrapped__

    def counting_flops(network):
        calls["flops"] += 1
        return count_flops(network)

    def counting_config(*args):
        calls["configs"] += 1
        return build_config(*args)

    monkeypatch.setattr(cost, "forward_flops", counting_flops)
    monkeypatch.setattr(jobs, "_method_config", functools.lru_cache(maxsize=None)(counting_config))
    cost._method_costs.cache_clear()
    methods = ["intensity", "ae", "vae", "dae", "ddpm", "cyclic_unet", "mmccd"]
    bench = tmp_path / "huge.toml"
    bench.write_text(f'[benchmark]\ndata = "phantom"\nprofile = "quick"\nseeds = {list(range(960))}\n'
                     f'[[grid]]\nmethods = {json.dumps(methods)}\n'
                     'pairs = ["fl-t2", "fl-t1", "t2-fl", "t2-t1", "t1-t2", "t1-fl"]\n')
    result = CliRunner().invoke(app, ["benchmark", str(bench), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "40320 jobs" in result.output and "mmccd (5760" in result.output
    assert len(result.output.splitlines()) < 60  # one row per method, not per job
    assert calls["configs"] == len(methods)
    networks = sum(len(cost._method_costs(m, json.dumps(dataclasses.asdict(jobs._method_config(m, "quick", "{}")),
                                                        sort_keys=True)) or ()) for m in methods)
    assert calls["flops"] == networks  # once per distinct network, not per job


def test_subjects_with_tumour_are_spread_over_validation_and_test_first():
    from uasbench.data.splits import make_assignment

    subjects = [f"S{i:02d}" for i in range(30)]
    for seed in range(5):
        tumour = set(subjects[seed::10])  # 3 subjects
        assignment = make_assignment(subjects, seed, tumour=tumour)
        roles = sorted(assignment[s] for s in tumour)
        assert roles == ["test", "test", "val"]  # test, val, test: every split that scores gets tumour
        assert sorted(assignment.values()) == sorted(make_assignment(subjects, seed).values())  # same sizes


@pytest.mark.slow
def test_a_small_phantom_gets_a_defined_validation_threshold(tmp_path):
    data = tmp_path / "phantom8"
    assert cli("data", "phantom", "--out", str(data), "--subjects", "8").returncode == 0
    env = {"UASBENCH_CACHE_DIR": str(tmp_path / "cache")}
    split = cli("data", "split", "--data", str(data), "--out", str(tmp_path / "split.csv"), env=env)
    assert split.returncode == 0 and "1 val, 1 test" in split.stdout, split.stderr
    proc = cli("run", "--method", "intensity", "--data", str(data), "--out", str(tmp_path / "results"),
               "--device", "cpu", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "headline threshold undefined" not in proc.stdout
    (manifest,) = manifest_paths(tmp_path / "results")
    run = json.loads(manifest.read_text())
    assert run["counts"]["val"] >= 1
    assert f"sha256 {run['split_sha256'][:12]}" in split.stdout  # `data split` writes the split `run` uses
    metrics = json.loads((manifest.parent / METRICS_JSON).read_text())
    assert metrics["thresholds"]["val_dice"]["value"] is not None
