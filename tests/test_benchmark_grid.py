"""`uasbench benchmark`: the benchmark file's validation, the three executors on a tiny grid, resuming a
killed grid, the dry-run cost model and the report. Grids here are tiny (a few phantom subjects, the
intensity baseline and an AE trained for a couple of steps) so the whole file runs in about a minute."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from uasbench.benchmark import grid
from uasbench.report.grid_report import write_grid_report
from uasbench.benchmark.config import SlurmSettings, load_config
from uasbench.benchmark.cost import SliceCounts, cost_table, forward_flops, grid_costs, job_cost
from uasbench.benchmark.executors import LocalExecutor, SlurmExecutor
from uasbench.benchmark.progress import Board
from uasbench.cli import app
from uasbench.data.phantom import write_phantom_dataset
from uasbench.method import AnomalyMethod, MethodConfig
from uasbench.registry import get_method

cli = CliRunner()
REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
TINY = """
[benchmark]
data = "data"
split = "split.csv"
seeds = [0, 1]
device = "cpu"
[[grid]]
methods = ["intensity", "ae"]
pairs = ["fl-t2"]
[overrides.ae]
iterations = 2
checkpoint_every = 1
image_size = 32
bottleneck_res = 4
"""
ONLY_INTENSITY = TINY.split("[overrides.ae]")[0].replace('"intensity", "ae"', '"intensity"')


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory) -> Path:
    """A folder with a 4-subject phantom (``data``) and its split (2 train, 1 val, 1 test)."""
    root = tmp_path_factory.mktemp("bench")
    write_phantom_dataset(root / "data", n_subjects=4, seed=3, progress=False)
    roles = ["train"] * 2 + ["val", "test"]  # subject 0 is healthy, the others carry tumours
    (root / "split.csv").write_text("subject,split\n" + "".join(f"UASPH_{i:05d},{r}\n" for i, r in enumerate(roles)))
    return root


def _config(folder: Path, text: str = TINY, name: str = "tiny.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def _runs(out: Path) -> dict[str, Path]:
    runs = {}
    for manifest in out.glob("*/manifest.json"):
        m = json.loads(manifest.read_text())
        runs[f"{m['method']}_{m['pair']}_{m['profile']}_s{m['seed']}"] = manifest.parent
    return runs


# -- validation ---------------------------------------------------------------------------------------

BAD = [
    ("[benchmrk]\n", ["unknown key", "benchmark, grid, overrides, slurm"]),
    ("[benchmark]\nsedes = [0]\n[[grid]]\nmethods=['ae']\npairs=['fl-t2']\n", ["benchmark.sedes", "seeds"]),
    ("[benchmark]\n[[grid]]\nmethods=['nope']\npairs=['fl-t2']\n", ["grid[0].methods", "'nope'", "intensity"]),
    ("[benchmark]\n[[grid]]\nmethods=['ae']\npairs=['fl-xx']\n", ["grid[0].pairs", "fl-xx", "fl-t2"]),
    ("[benchmark]\n[[grid]]\nmethods=['ae']\npairs=['fl-t2']\n[[grid]]\nmethod=['ae']\n", ["grid[1].method", "methods, pairs, seeds"]),
    ("[benchmark]\n[[grid]]\npairs=['fl-t2']\n", ["grid[0].methods", "missing"]),
    ("[benchmark]\n", ["grid", "missing"]),
    ("[benchmark]\nprofile = 'fast'\n[[grid]]\nmethods=['ae']\npairs=['fl-t2']\n", ["benchmark.profile", "'fast'", "paper, quick"]),
    ("[benchmark]\nseeds = 3\n[[grid]]\nmethods=['ae']\npairs=['fl-t2']\n", ["benchmark.seeds", "list"]),
    ("[benchmark]\ndevice = 'tpu'\n[[grid]]\nmethods=['ae']\npairs=['fl-t2']\n", ["benchmark.device", "auto, cpu, cuda"]),
    ("[benchmark]\nnormalisation = 'z'\n[[grid]]\nmethods=['ae']\npairs=['fl-t2']\n", ["benchmark.normalisation", "paper, official"]),
    ("[benchmark]\nthresholds = ['best']\n[[grid]]\nmethods=['ae']\npairs=['fl-t2']\n", ["benchmark.thresholds", "val_dice, fpr_1"]),
    ("[benchmark]\nmedian = -1\n[[grid]]\nmethods=['ae']\npairs=['fl-t2']\n", ["benchmark.median", ">= 0"]),
    ("[benchmark]\n[[grid]]\nmethods=['ae']\npairs=['fl-t2']\n[overrides.ae]\nbogus = 1\n", ["overrides.ae", "bogus", "iterations"]),
    ("[benchmark]\n[[grid]]\nmethods=['ae']\npairs=['fl-t2']\n[overrides.mmccd]\nstride = 1\n", ["overrides.mmccd", "unknown key", "valid: ae"]),
    ("[benchmark]\n[[grid]]\nmethods=['ddpm']\npairs=['fl-t2']\n[overrides.ddpm]\nnoise_levels = [5000]\n", ["overrides.ddpm", "noise_levels"]),
    ("[benchmark]\n[[grid]]\nmethods=['ae']\npairs=['fl-t2']\n[slurm]\ngpus = 2\n", ["slurm.gpus", "gpus_per_job"]),
    ("[benchmark]\n[[grid]]\nmethods=['ae']\npairs=['fl-t2']\n[slurm]\ntimeout_min = 0\n", ["slurm.timeout_min", ">= 1"]),
    ("[benchmark\n", ["not valid TOML"]),
]


@pytest.mark.parametrize("text, needles", BAD)
def test_every_bad_key_ends_in_one_line_naming_file_key_and_choices(tmp_path, text, needles):
    path = _config(tmp_path, text, "bad.toml")
    result = cli.invoke(app, ["benchmark", str(path), "--dry-run", "--out", str(tmp_path / "out")])
    assert result.exit_code in (1, 2), result.output
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in result.output, message
    for needle in [str(path), *needles]:
        assert needle in message, (needle, message)
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was written


@pytest.mark.parametrize("text, args, needles", [
    ("[benchmark]\ndata = 'nowhere'\n[[grid]]\nmethods=['ae']\npairs=['fl-t2']\n", [], ["benchmark.data", "nowhere"]),
    ("[benchmark]\ndata = '${UASBENCH_TEST_UNSET}'\n[[grid]]\nmethods=['ae']\npairs=['fl-t2']\n", [],
     ["environment variable UASBENCH_TEST_UNSET is not set"]),
    ("[benchmark]\nsplit = 'none.csv'\n[[grid]]\nmethods=['ae']\npairs=['fl-t2']\n", [], ["benchmark.split", "none.csv"]),
    ("[benchmark]\n[[grid]]\nmethods=['ae']\npairs=['fl-t2']\n", ["--jobs", "2"], ["--jobs 2 needs --executor local"]),
    ("[benchmark]\n[[grid]]\nmethods=['ae']\npairs=['fl-t2']\n", ["--dry-run", "--report-only"], ["not both"]),
])
def test_bad_data_and_options_are_named_before_anything_runs(tmp_path, text, args, needles):
    path = _config(tmp_path, text, "bad.toml")
    result = cli.invoke(app, ["benchmark", str(path), "--out", str(tmp_path / "out"), *args])
    assert result.exit_code in (1, 2), result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_benchmark_file(tmp_path):
    result = cli.invoke(app, ["benchmark", str(tmp_path / "none.toml")])
    assert result.exit_code == 1 and "none.toml does not exist" in result.stderr


@pytest.mark.slow
def test_shipped_paper_files_validate_and_price_without_the_data(monkeypatch):
    monkeypatch.delenv("BRATS", raising=False)
    one = cli.invoke(app, ["benchmark", str(BENCHMARKS / "paper-table1.toml"), "--dry-run"])
    assert one.exit_code == 0, one.output
    assert "ASSUMED BraTS2021 (1251 subjects)" in one.output and "125 test" in one.output
    assert "total" in one.output and "GPU-h" in one.output
    screen = Console(record=True, width=200)
    for name, n_jobs, example in (("paper-table1", 21, "mmccd_fl-t2_paper_s2"),
                                  ("paper-table2", 54, "mmccd_t1-fl_paper_s0")):
        costs, counts = grid_costs(load_config(BENCHMARKS / f"{name}.toml", need_data=False), Path("out"))
        assert len(costs) == n_jobs and all(c.known for c in costs) and counts.test == 125
        screen.print(cost_table(costs, 989.0))
        text = screen.export_text()
        assert f"total ({n_jobs} jobs)" in text and example in text
    assert "dae_fl-t1" not in text  # single-modality methods run once per input modality


@pytest.mark.slow
def test_phantom_quick_file_is_valid_apart_from_methods_merged_later(monkeypatch):
    """Its method list names itermask2, anoddpm and pddpm, which arrive in another branch: stand-ins with
    their names let everything else in the file be validated here."""
    from uasbench import registry

    class StandIn(AnomalyMethod):
        def _fit(self, train, val, workdir): ...
        def _score(self, slices): ...

    for name in ("itermask2", "anoddpm", "pddpm"):
        if name not in registry.method_infos():
            cls = type(name, (StandIn,), {"name": name})
            monkeypatch.setitem(registry._registered, name, registry.MethodInfo(name, cls, "test"))
    config = load_config(BENCHMARKS / "phantom-quick.toml")
    assert config.data is None and config.profile == "quick" and config.device == "cpu"
    fl = [e for e in config.grid if e.pairs == ("fl-t2",)][0]
    assert len(fl.methods) == 10 and len(fl.seeds) >= 3
    assert set(config.pairs()) == {"fl-t2", "fl-t1", "t2-fl", "t2-t1", "t1-t2", "t1-fl"}


# -- running ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_serial_grid_end_to_end_then_a_rerun_skips_everything(bench_dir, tmp_path):
    config = _config(bench_dir)
    out = tmp_path / "out"
    first = cli.invoke(app, ["benchmark", str(config), "--out", str(out)])
    assert first.exit_code == 0, first.output
    runs = _runs(out)
    assert sorted(runs) == ["ae_fl-t2_quick_s0", "ae_fl-t2_quick_s1", "intensity_fl-t2_quick_s0",
                            "intensity_fl-t2_quick_s1"]
    manifest = json.loads((runs["ae_fl-t2_quick_s1"] / "manifest.json").read_text())
    assert manifest["overrides"]["iterations"] == 2 and manifest["config"]["image_size"] == 32
    assert (out / "logs" / "ae_fl-t2_quick_s0.log").read_text().count("attempt started") == 1
    report = out / grid.REPORT
    for ext in ("md", "csv", "tex", "html"):
        assert "intensity" in (report / f"leaderboard_metrics_val_dice.{ext}").read_text()
        assert (report / f"leaderboard_metrics_oracle_test.{ext}").is_file()
    assert not list(report.glob("leaderboard_pairs_*"))  # one pair: no Table 2
    assert (report / "comparison_fl-t2.png").read_bytes()[:4] == b"\x89PNG"

    again = cli.invoke(app, ["benchmark", str(config), "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "4 jobs, 4 already finished" in again.output
    assert _runs(out) == runs  # nothing redone


@pytest.mark.slow
def test_a_failing_job_does_not_stop_the_others(bench_dir, tmp_path):
    text = TINY.replace("image_size = 32", "image_size = 48")  # 48 / 4 is no power of two: fails in fit
    out = tmp_path / "out"
    result = cli.invoke(app, ["benchmark", str(_config(tmp_path, text.replace('"data"', f'"{bench_dir / "data"}"')
                                                       .replace('"split.csv"', f'"{bench_dir / "split.csv"}"'))),
                              "--out", str(out)])
    assert result.exit_code == 1, result.output
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert "2 of 4 jobs failed" in message and "ae_fl-t2_quick_s0 (log: " in message
    assert sorted(_runs(out)) == ["intensity_fl-t2_quick_s0", "intensity_fl-t2_quick_s1"]
    assert "image_size=48" in (out / "logs" / "ae_fl-t2_quick_s1.log").read_text()
    assert not (out / grid.REPORT).exists()  # an incomplete grid publishes nothing unless asked
    partial = cli.invoke(app, ["benchmark", str(tmp_path / "tiny.toml"), "--out", str(out), "--report-only"])
    assert partial.exit_code == 0, partial.output
    assert "2 of 4 jobs have no finished run yet" in partial.output
    table = pd.read_csv(out / grid.REPORT / "leaderboard_metrics_val_dice.csv")
    assert set(table["method"]) == {"intensity"}


@pytest.mark.slow
def test_a_killed_grid_completes_on_rerun_without_redoing_finished_runs(bench_dir, tmp_path):
    text = TINY.replace("iterations = 2", "iterations = 100").replace("checkpoint_every = 1", "checkpoint_every = 10")
    config = _config(bench_dir, text, "killed.toml")
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "uasbench", "benchmark", str(config), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while not list(out.glob(".work/**/ckpt_ae.pt")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _runs(out)
    assert sorted(before) == ["intensity_fl-t2_quick_s0", "intensity_fl-t2_quick_s1"], before  # killed midway

    again = cli.invoke(app, ["benchmark", str(config.with_name("killed.toml")), "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "4 jobs, 2 already finished" in again.output
    after = _runs(out)
    assert len(after) == 4 and all(after[name] == path for name, path in before.items())
    log = (out / "logs" / "ae_fl-t2_quick_s0.log").read_text()
    assert log.count("attempt started") == 2  # the killed job ran again, from its checkpoint


@pytest.mark.slow
def test_local_executor_runs_two_jobs_at_once_in_worker_processes(bench_dir, tmp_path):
    out = tmp_path / "out"
    config = _config(bench_dir, ONLY_INTENSITY, "intensity.toml")
    result = cli.invoke(app, ["benchmark", str(config), "--out", str(out), "--executor", "local", "--jobs", "2"])
    assert result.exit_code == 0, result.output
    runs = _runs(out)
    assert len(runs) == 2
    for name, run in runs.items():
        log = (out / "logs" / f"{name}.log").read_text()
        assert f"run directory: {run}" in log  # written by the worker process
        assert json.loads((run / "manifest.json").read_text())["device"]["torch_threads"] == max(1, os.cpu_count() // 2)


def test_local_workers_are_pinned_to_one_gpu_each_and_share_the_cores(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    executor = LocalExecutor(2)
    envs = [executor.worker_env(slot) for slot in range(3)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["3", "5", "3"]
    assert {e["OMP_NUM_THREADS"] for e in envs} == {"4"}


@pytest.mark.slow
def test_slurm_executor_through_submitits_local_executor(bench_dir, tmp_path):
    config = load_config(_config(bench_dir, ONLY_INTENSITY, "intensity.toml"))
    out = tmp_path / "out"
    executor = SlurmExecutor(SlurmSettings(gpus_per_job=0), out / ".submitit", cluster="local", poll_s=0.2)
    written = grid.run_grid(config, out, executor, Console(file=open(os.devnull, "w")), write_grid_report)
    assert sorted(_runs(out)) == ["intensity_fl-t2_quick_s0", "intensity_fl-t2_quick_s1"]
    assert (out / grid.REPORT / "leaderboard_metrics_val_dice.md") in written


@pytest.mark.slow
def test_slurm_array_script_carries_the_settings(bench_dir, tmp_path, monkeypatch):
    """The same submission against a stand-in sbatch: the array script asks SLURM for what the file says."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("sbatch", "srun"):
        (fake / tool).write_text('#!/bin/sh\nfor last; do :; done\ncp "$last" "$RECORD"\necho "Submitted batch job 77"\n')
        (fake / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    monkeypatch.setenv("RECORD", str(tmp_path / "array.sh"))
    config = load_config(_config(bench_dir))
    out = tmp_path / "out"
    settings = SlurmSettings(partition="gpu", timeout_min=90, gpus_per_job=1, array_parallelism=3,
                             setup=("source venv/bin/activate",))
    jobs, _ = grid.plan(config, out)
    handles = SlurmExecutor(settings, out / ".submitit", name="uasbench-tiny").submit(jobs)
    assert [h.job_id for h in handles] == [f"77_{i}" for i in range(4)]
    script = (tmp_path / "array.sh").read_text()
    for line in ("--array=0-3%3", "--partition=gpu", "--time=90", "--gpus-per-node=1", "--signal=USR2@90",
                 "--job-name=uasbench-tiny", "source venv/bin/activate"):
        assert line in script, line


@pytest.mark.slow
def test_slurm_without_a_cluster_is_one_line(bench_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun here
    result = cli.invoke(app, ["benchmark", str(_config(bench_dir)), "--out", str(tmp_path / "out"),
                              "--executor", "slurm"])
    assert result.exit_code == 1 and "--executor slurm" in result.stderr and "srun" in result.stderr


# -- cost model and progress --------------------------------------------------------------------------

@pytest.mark.slow
def test_flop_counts_match_the_networks_and_unknown_methods_say_so():
    mmccd = get_method("mmccd")
    f, g = mmccd.network_costs(mmccd.config_for("paper"))
    assert round(forward_flops(g) / 1e9, 1) == 10.9  # the official UNet at 128x128 (README)
    counts = SliceCounts(val=2, val_healthy=8, test=2, source="test")
    cost = job_cost("m", "mmccd", mmccd.config_for("paper"), counts)
    assert cost.score_passes == 12 * (128 * 100 + 128) and cost.train_samples == 2 * 100_000 * 32
    assert job_cost("i", "intensity", get_method("intensity").config_for("quick"), counts).flops == 0

    class Opaque(AnomalyMethod):
        name = "opaque_for_cost_test"

        def _fit(self, train, val, workdir): ...
        def _score(self, slices): ...

    from uasbench import registry

    registry.register_method(Opaque)
    try:
        unknown = job_cost("o", "opaque_for_cost_test", MethodConfig(), counts)
    finally:
        del registry._registered["opaque_for_cost_test"]
    assert not unknown.known
    console = Console(record=True, width=200)
    console.print(cost_table([cost, unknown], 989.0))
    text = console.export_text()
    assert "unknown" in text and "total (2 jobs, 1 unknown and not counted)" in text


@pytest.mark.slow
def test_every_built_in_method_prices_both_profiles():
    counts = SliceCounts(val=1, val_healthy=4, test=1, source="test")
    for name in ("intensity", "ae", "vae", "dae", "ddpm", "cyclic_unet", "mmccd"):
        cls = get_method(name)
        for profile in ("paper", "quick"):
            cost = job_cost(name, name, cls.config_for(profile), counts)
            assert cost.known and (name == "intensity") == (cost.flops == 0), (name, profile)


@pytest.mark.slow
def test_the_estimate_of_time_left_uses_each_methods_own_durations(bench_dir, tmp_path):
    config = load_config(_config(bench_dir))
    jobs, _ = grid.plan(config, tmp_path)
    board = Board(jobs, {}, parallel=2, console=Console(file=open(os.devnull, "w")))
    assert board.eta(0.0) is None  # nothing to go by yet
    for job, seconds in ((jobs[0], 10.0), (jobs[2], 30.0)):  # intensity s0 took 10 s, ae s0 30 s
        status = board.status[job.name]
        status.state, status.started, status.ended = "done", 0.0, seconds
    assert board.eta(100.0) == (10.0 + 30.0) / 2  # intensity s1 and ae s1 left, two at a time
    running = board.status[jobs[3].name]
    running.state, running.started = "running", 90.0
    assert board.eta(100.0) == (10.0 + 20.0) / 2  # ae s1 has run 10 of its expected 30 s
    screen = Console(record=True, width=80)
    screen.print(board.render())
    text = screen.export_text()
    assert "4 jobs: 1 running, 0 failed, 1 pending, 2 done, 0 skipped" in text
    assert all(job.name in text for job in jobs)  # names are never cut, even on 80 columns
