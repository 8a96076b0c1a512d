"""The official MMCCD evaluation against a hand-computed example, its empty-prediction rule, the
skimage-style erosion, and `uasbench evaluate/leaderboard --protocol mmccd-official` on run folders."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fake_runs import write_run
from uasbench.cli import app
from uasbench.errors import UasbenchError
from uasbench.evaluation.official import GRID, evaluate_official
from uasbench.evaluation.postprocess import erode
from uasbench.results import ScoredSplits

runner = CliRunner()
N = 16


def _example(slice_b_found: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two 16x16 slices, T2 brain = rows/cols 2..13, so its disk(4) erosion is rows/cols 6..9.

    Slice a: tumour = the 2x4 block [6:8, 6:10] (inside the eroded brain, map 10) + pixel (3, 3) in the
    eroded rim; one healthy pixel (9, 6) scores 0.5. Slice b: tumour [8:10, 8:10], its top row scores 0.3
    (or 0 when not ``slice_b_found``); a background pixel outside the brain scores 10. Min 0, max 10."""
    brain = np.zeros((2, N, N), bool)
    brain[:, 2:14, 2:14] = True
    seg = np.zeros_like(brain)
    seg[0, 6:8, 6:10] = True
    seg[0, 3, 3] = True
    seg[1, 8:10, 8:10] = True
    maps = np.zeros((2, N, N))
    maps[0, 6:8, 6:10] = 10.0
    maps[0, 9, 6] = 0.5
    maps[1, 8, 8:10] = 0.3 if slice_b_found else 0.0
    maps[1, 0, 0] = 10.0
    return maps, seg, brain


def test_disk4_erosion_is_skimage_style() -> None:
    brain = np.zeros((1, N, N), bool)
    brain[0, 2:14, 2:14] = True
    expected = np.zeros_like(brain)
    expected[0, 6:10, 6:10] = True  # a pixel survives when the whole radius-4 disk around it is brain
    assert np.array_equal(erode(brain, 4), expected)
    full = np.ones((1, N, N), bool)
    assert erode(full, 4).all()  # skimage reflects the border: brain touching the edge is not eaten


def test_official_protocol_by_hand() -> None:
    maps, seg, brain = _example()
    result = evaluate_official(maps * 7.0 + 3.0, seg, brain, ("a", "b"), np.array([80, 81]))  # min-max undoes it
    # Mean Dice: t < 0.03 -> (16/18 + 4/6)/2; 0.03 <= t < 0.05 -> (16/18 + 0)/2; t >= 0.05 -> (16/17 + 0)/2.
    assert result.dice_curve[:30] == pytest.approx(np.full(30, (16 / 18 + 4 / 6) / 2))
    assert result.dice_curve[30:50] == pytest.approx(np.full(20, 16 / 18 / 2))
    assert result.dice_curve[50:] == pytest.approx(np.full(50, 16 / 17 / 2))
    assert result.threshold == 0.0  # the first of the thirty tied maxima
    means = result.means()
    # a: 8 TP, 1 FP (9,6), 1 FN (the rim pixel, never predictable); b: 2 TP, 2 FN
    assert means["dice"] == pytest.approx((8 / 9 + 2 / 3) / 2)
    assert means["jaccard"] == pytest.approx((8 / 10 + 2 / 4) / 2)
    assert means["precision"] == pytest.approx((8 / 9 + 1.0) / 2)
    assert means["recall"] == pytest.approx((8 / 9 + 2 / 4) / 2)
    # ASSD a: prediction->truth: (9,6) is 2 from the block, others 0 -> 2/9; truth->prediction: (3,3) is
    # 3*sqrt(2) from (6,6) -> 3*sqrt(2)/9. ASSD b: truth row 9 is 1 from the predicted row 8 -> (0 + 2/4)/2.
    assd_a = (2 / 9 + 3 * math.sqrt(2) / 9) / 2
    assert means["assd"] == pytest.approx((assd_a + 0.25) / 2)
    # AUROC over all 256 pixels of map x eroded mask: a: 8 positives at 1 beat 247 negatives, the rim
    # positive (0) ties 246 of them; b: 2 positives at 0.03 beat 252, two at 0 tie 252.
    assert means["auroc"] == pytest.approx(((8 * 247 + 0.5 * 246) / (9 * 247) + (2 * 252 + 0.5 * 2 * 252) / (4 * 252)) / 2)
    assert result.empty_predictions == []
    assert GRID[0] == 0.0 and GRID[-1] == pytest.approx(0.099) and len(GRID) == 100


def test_empty_prediction_is_named_and_left_out_of_assd() -> None:
    maps, seg, brain = _example(slice_b_found=False)
    result = evaluate_official(maps, seg, brain, ("a", "b"), np.array([80, 81]))
    assert result.threshold == pytest.approx(0.05)  # from 0.05 on the false positive (9, 6) is gone
    assert result.empty_predictions == ["b z=81"]
    means = result.means()
    assert means["dice"] == pytest.approx(16 / 17 / 2) and means["recall"] == pytest.approx((8 / 9) / 2)
    assert means["assd"] == pytest.approx((0 + 3 * math.sqrt(2) / 9) / 2)  # slice a only
    assert np.isnan(result.per_slice["assd"][1]) and result.per_slice["precision"][1] == 0.0
    summary = result.to_dict(n_bootstrap=20)
    assert summary["metrics"]["mmccd_official"]["assd"]["n_excluded"] == 1
    assert summary["counts"]["mmccd_official"]["empty_prediction"] == 1 and summary["upper_bound"] is True


def test_bad_inputs_are_one_line_errors() -> None:
    maps, seg, brain = _example()
    with pytest.raises(UasbenchError, match="non-constant"):
        evaluate_official(np.ones_like(maps), seg, brain, ("a", "b"), np.array([1, 2]))
    with pytest.raises(UasbenchError, match="tumour on every test slice"):
        evaluate_official(maps, seg & False, brain, ("a", "b"), np.array([1, 2]))
    with pytest.raises(UasbenchError, match="equal"):
        evaluate_official(maps[:, :-1], seg, brain, ("a", "b"), np.array([1, 2]))


def test_evaluate_cli_writes_the_official_metrics(tmp_path: Path) -> None:
    run = write_run(tmp_path, "mmccd", 0, 0.6)
    result = runner.invoke(app, ["evaluate", str(run), "--protocol", "mmccd-official"])
    assert result.exit_code == 0, result.output
    assert "ORACLE" in result.output and "metrics_mmccd_official.json" in result.output
    stored = json.loads((run / "metrics_mmccd_official.json").read_text())
    scored = ScoredSplits.load(run / "scores.npz")
    direct = evaluate_official(scored.test_maps, scored.test.seg, scored.test.brain_t2, scored.test.subjects,
                               scored.test.z)
    assert stored["metrics"]["mmccd_official"]["dice"]["mean"] == pytest.approx(direct.means()["dice"])
    assert f"{direct.means()['dice']:.4f}" in result.output
    # the T2 mask, not the input's, restricts the prediction
    other = evaluate_official(scored.test_maps, scored.test.seg, scored.test.brain, scored.test.subjects,
                              scored.test.z)
    assert not np.array_equal(other.per_slice["auroc"], direct.per_slice["auroc"])


def test_leaderboard_with_the_official_protocol(tmp_path: Path) -> None:
    for seed in (0, 1):
        write_run(tmp_path, "dae", seed, 0.7)
        write_run(tmp_path, "mmccd", seed, 0.5)
    result = runner.invoke(app, ["leaderboard", str(tmp_path), "--protocol", "mmccd-official"])
    assert result.exit_code == 0, result.output
    assert "official MMCCD evaluation (ORACLE" in result.output and "AUPRC" not in result.output
    dae = next(line for line in result.output.splitlines() if line.startswith("| dae"))
    values = [evaluate_official(s.test_maps, s.test.seg, s.test.brain_t2, s.test.subjects, s.test.z).means()["dice"]
              for s in (ScoredSplits.load(r / "scores.npz") for r in sorted(tmp_path.glob("dae_*")))]
    assert dae.split("|")[2].strip().strip("*").startswith(f"{np.mean(values):.3f}")  # same test set both seeds


@pytest.mark.parametrize("args, code, needle", [
    (["--protocol", "mmccd-official", "--erode-brain", "4"], 2, "do not apply to --protocol mmccd-official"),
    (["--protocol", "oracle"], 2, "oracle"),
])
def test_evaluate_bad_protocol_options(tmp_path: Path, args: list[str], code: int, needle: str) -> None:
    run = write_run(tmp_path, "mmccd", 0, 0.6)
    result = runner.invoke(app, ["evaluate", str(run), *args])
    assert result.exit_code == code and needle in result.output and "Traceback" not in result.output


def test_runs_without_a_stored_t2_mask(tmp_path: Path) -> None:
    old = write_run(tmp_path / "fl", "mmccd", 0, 0.6, with_t2=False)
    result = runner.invoke(app, ["evaluate", str(old), "--protocol", "mmccd-official"])
    assert result.exit_code == 1 and "holds no T2 brain mask" in result.stderr and "rerun it" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    t2 = write_run(tmp_path / "t2", "mmccd", 0, 0.6, with_t2=False, pair="t2-fl")  # its own mask is T2's
    assert runner.invoke(app, ["evaluate", str(t2), "--protocol", "mmccd-official"]).exit_code == 0
