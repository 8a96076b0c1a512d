"""CLI error paths: one clear line naming the option or file, a non-zero exit, no traceback."""
from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from uasbench.cli import app

runner = CliRunner()


def _fails(args: list[str], code: int, *needles: str) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == code, (result.exit_code, result.output)
    message = result.stderr.strip()
    assert "Traceback" not in result.output
    assert len(message.splitlines()) == 1, message
    for needle in needles:
        assert needle in message
    return message


@pytest.mark.parametrize("args, needles", [
    (["--method", "nope"], ["--method 'nope'", "intensity"]),
    (["--method", "intensity", "--pair", "fl-xx"], ["--pair 'fl-xx'", "fl-t2"]),
    (["--method", "intensity", "--pair", "t2-t2"], ["input and target must differ"]),
    (["--method", "intensity", "--profile", "fast"], ["--profile 'fast'", "paper, quick"]),
    (["--method", "intensity", "--device", "tpu"], ["--device 'tpu'", "auto, cpu, cuda"]),
    (["--method", "intensity", "--set", "bins"], ["--set 'bins'"]),
    (["--method", "intensity", "--set", "bogus=1"], ["bogus", "n_bins"]),
])
def test_unknown_choices_exit_2_with_the_valid_choices(args, needles, tmp_path):
    _fails(["run", *args, "--out", str(tmp_path)], 2, *needles)
    assert not any(tmp_path.iterdir())  # nothing written


def test_cuda_without_gpu_is_a_usage_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    _fails(["run", "--method", "intensity", "--device", "cuda", "--out", str(tmp_path)], 2, "no CUDA device")


def test_missing_data_folder_is_named(tmp_path):
    _fails(["run", "--method", "intensity", "--data", str(tmp_path / "nowhere")], 1, "nowhere")


def test_evaluate_refuses_a_folder_that_is_not_a_run(tmp_path):
    _fails(["evaluate", str(tmp_path)], 1, "not a run directory")


def test_leaderboard_refuses_a_missing_folder(tmp_path):
    _fails(["leaderboard", str(tmp_path / "nothing")], 1, "does not exist")


def test_inspect_empty_folder(tmp_path):
    _fails(["data", "inspect", str(tmp_path)], 1, str(tmp_path.name))


@pytest.mark.slow
def test_real_process_prints_no_traceback():
    """The installed entry point, not just the test runner, turns errors into one line."""
    proc = subprocess.run([sys.executable, "-m", "uasbench", "run", "--method", "nope"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: unknown --method 'nope'")
