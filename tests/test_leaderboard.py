"""Leaderboards from fake run directories: discovery, seeds aggregation, bold best, every format."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from uasbench.errors import UasbenchError, UsageError
from uasbench.evaluation.metrics import summarize
from uasbench.report.columns import method_sort_key
from uasbench.report.leaderboard import render
from uasbench.report.runs import collect_runs


def _summary(mean: float | None) -> dict:
    """A metrics.json summary; ``None`` is how an undefined threshold's metrics are stored."""
    if mean is None:
        return {"mean": None, "std": None, "ci_low": None, "ci_high": None, "n": 0, "n_excluded": 10}
    return {"mean": mean, "std": 0.1, "ci_low": mean - 0.05, "ci_high": mean + 0.05, "n": 10, "n_excluded": 0}


def _write_run(root: Path, method: str, pair: str, seed: int, dice: float, *, complete: bool = True,
               metrics: bool = True, profile: str = "quick", train: tuple[str, ...] = ("input", "target"),
               data: str = "d0", median: int = 0, overrides: dict | None = None, n_subjects: int = 8,
               noise: list[float] | None = None) -> Path:
    run = root / pair / f"{method}_{profile}_{len(overrides or {})}_s{seed}"
    run.mkdir(parents=True)
    manifest = {"method": method, "pair": pair, "profile": profile, "seed": seed, "complete": complete,
                "train_modalities": list(train), "data_fingerprint": data, "split_sha256": f"split-{data}-{seed}",
                "postprocess": {"brain_mask": True, "erode_brain_px": 0, "median_size": median},
                "overrides": overrides or {}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    if metrics:
        at = {"dice": dice, "jaccard": dice / 2, "precision": 0.5, "recall": 0.5, "assd": 10 * (1 - dice)}
        means = {"threshold_free": {"auroc": 0.8, "auprc": dice / 3, "auroc_image_official": 0.8},
                 "val_dice": at, "oracle_test": {k: v + 0.05 for k, v in at.items()},
                 "fpr_1": {k: None for k in at}}
        payload = {"metrics": {key: {m: _summary(v) for m, v in d.items()} for key, d in means.items()},
                   "per_subject": {key: {m: _subject_values(v, n_subjects, noise) for m, v in d.items()}
                                   for key, d in means.items()},
                   "subjects": SUBJECTS[:n_subjects]}
        (run / "metrics.json").write_text(json.dumps(payload))
    return run


SUBJECTS = [f"S{i}" for i in range(8)]
OFFSETS = np.linspace(-0.07, 0.07, len(SUBJECTS))  # mean zero: the subject mean is the stored mean


def _subject_values(mean: float | None, n: int, noise: list[float] | None) -> list:
    """Mean ``mean`` over subjects; spread scaled by the mean, so two methods' differences are never tied."""
    offsets = OFFSETS[:n] if noise is None else noise
    return [None] * n if mean is None else [float(mean + o * (1 + mean)) for o in offsets]


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    _write_run(tmp_path, "mmccd", "fl-t2", 0, 0.60)
    _write_run(tmp_path, "mmccd", "fl-t2", 1, 0.62)
    _write_run(tmp_path, "dae", "fl-t2", 0, 0.46)
    _write_run(tmp_path, "zz_plugin", "fl-t2", 0, 0.30)
    _write_run(tmp_path, "dae", "t2-fl", 0, 0.28)
    _write_run(tmp_path, "mmccd", "t2-fl", 0, 0.49)
    _write_run(tmp_path, "ae", "fl-t2", 0, 0.99, complete=False)
    _write_run(tmp_path, "vae", "fl-t2", 0, 0.99, metrics=False)
    return tmp_path


def test_collect_ignores_incomplete_runs(results: Path) -> None:
    df = collect_runs(results)
    assert df.attrs["ignored"] == 2
    assert set(df["method"]) == {"mmccd", "dae", "zz_plugin"}
    assert df["run"].nunique() == 6


def test_method_order() -> None:
    names = ["zz_plugin", "mmccd", "a_plugin", "intensity", "cyclic_unet", "ae"]
    assert sorted(names, key=method_sort_key) == ["intensity", "ae", "cyclic_unet", "mmccd", "a_plugin", "zz_plugin"]


def test_markdown_metrics_table(results: Path) -> None:
    df = collect_runs(results)
    text = render(df, table="metrics", fmt="md")
    block = text.split("**Pair t2-fl")[0]
    assert "Pair fl-t2" in block and "validation slices (never on test)" in block
    lines = [line for line in block.splitlines() if line.startswith("| ")]
    assert [line.split("|")[1].strip() for line in lines[1:]] == ["dae (1 seed)", "mmccd (2 seeds)", "zz_plugin (1 seed)"]
    dae, mmccd, plugin = lines[1:]
    s = summarize(0.61 + 1.61 * OFFSETS, 2000, 0)  # subjects averaged over the two seeds, then bootstrapped
    assert f"**{s.mean:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}]**" in mmccd  # best Dice in bold
    assert "**3.900 [" in mmccd  # lowest ASSD is best
    # dae is 0.15 below mmccd on all 8 subjects: significantly worse, so neither bold nor marked
    assert dae.split("|")[2].strip().startswith("0.460 [") and "†" not in dae.split("|")[2]
    assert "**0.800" in dae and "**0.800" in plugin  # equal AUROC: every method is best
    assert "0.100 [" in plugin and "**" not in plugin.split("|")[2]
    assert "not significantly worse than the best" in block and "Holm" in block
    std = render(df, table="metrics", fmt="md", spread="std").split("**Pair t2-fl")[0]
    assert "**0.6100 ± 0.0141**" in std and "**3.9000 ± 0.1414**" in std  # std over the two seeds


def test_significance_marks_and_too_few_subjects(tmp_path: Path) -> None:
    _write_run(tmp_path, "dae", "fl-t2", 0, 0.60, noise=[0.1, -0.1, 0.05, -0.05, 0.02, -0.02, 0.01, -0.01])
    _write_run(tmp_path, "mmccd", "fl-t2", 0, 0.61)
    _write_run(tmp_path, "ddpm", "fl-t2", 0, 0.40)
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip()
            for line in render(collect_runs(tmp_path), fmt="md").splitlines() if line.startswith("| ") and "seed" in line}
    assert rows["mmccd (1 seed)"].startswith("**0.610")
    assert rows["dae (1 seed)"].endswith(" †")  # 0.01 lower on average, half the subjects better: not worse
    assert "†" not in rows["ddpm (1 seed)"] and "**" not in rows["ddpm (1 seed)"]

    few = tmp_path / "few"
    _write_run(few, "dae", "fl-t2", 0, 0.40, n_subjects=5)
    _write_run(few, "mmccd", "fl-t2", 0, 0.61, n_subjects=5)
    text = render(collect_runs(few), fmt="md")
    assert "Not tested against the best (too few paired subjects (5 < 6) for a test), so never marked: dae in " \
           "Dice, Jaccard, ASSD, AUPRC" in text
    assert "†" not in text.split("_")[0]
    tests = render(collect_runs(few), table="tests", fmt="md")
    assert "too few paired subjects (5 < 6) for a test" in tests and "Friedman test (2 methods): not run" in tests
    assert "Rank stability not computed" in render(collect_runs(few), table="ranks", fmt="md")


def test_tests_and_ranks_tables(results: Path) -> None:
    df = collect_runs(results)
    tests = render(df, table="tests", fmt="md")
    block = tests.split("**Pair fl-t2 — threshold val_dice: AUROC**")[0]
    dae_vs_mmccd = next(line for line in block.splitlines() if line.startswith("| dae | mmccd |"))
    cells = [c.strip() for c in dae_vs_mmccd.split("|")[1:-1]]
    assert cells[2] == "8" and cells[3].startswith("-0.1500 [")  # differences -0.15 * (1 + offset)
    assert cells[4] == "0.0078" and cells[5] == "0.0234" and cells[6] == "yes"  # exact 2/256, Holm x3
    assert "Friedman test (3 methods, 8 subjects with every method)" in block
    ranks = render(df, table="ranks", fmt="md")
    mmccd = next(line for line in ranks.splitlines() if line.startswith("| mmccd |"))
    assert [c.strip() for c in mmccd.split("|")[2:5]] == ["1", "1.00", "0.00"]  # always first: constant gaps
    ranks_csv = pd.read_csv(io.StringIO(render(df, table="ranks", fmt="csv")))  # one table, a column says which
    fl = ranks_csv[ranks_csv["table"].str.startswith("Pair fl-t2")].set_index("Method")
    assert fl["rank on all subjects"].to_dict() == {"mmccd": 1, "dae": 2, "zz_plugin": 3}
    tests_csv = pd.read_csv(io.StringIO(render(df, table="tests", fmt="csv")))
    assert len(tests_csv) == 7 * 3 + 7 * 1 and tests_csv["table"].nunique() == 14  # 3 pairs x 7 columns, 1 x 7


def test_pairs_table_and_oracle_label(results: Path) -> None:
    df = collect_runs(results)
    text = render(df, table="pairs", fmt="md")
    header = [line for line in text.splitlines() if line.startswith("| Method")][0]
    assert header.split("|")[2:4] == [" fl-t2 ", " t2-fl "]
    assert "n/a" in text  # zz_plugin has no t2-fl run
    assert "mmccd (1-2 seeds)" in text
    metrics = render(df, table="metrics", fmt="md").split("**Pair t2-fl")[1]
    assert "zz_plugin" not in metrics and "mmccd (1 seed)" in metrics  # rows without runs are left out
    oracle = render(df, table="pairs", fmt="md", threshold="oracle_test")
    assert "oracle (threshold tuned on test): upper bound" in oracle and "ORACLE" in oracle
    assert "0.660 [" in oracle
    undefined = render(df, table="metrics", fmt="md", threshold="fpr_1")
    assert "n/a" in undefined
    alone = render(df[df["method"] == "dae"], table="pairs", fmt="md")
    assert "**" not in alone.split("|---|")[1]  # a single method is not "best"


@pytest.mark.parametrize("fmt", ["csv", "latex", "html"])
def test_other_formats(results: Path, fmt: str) -> None:
    text = render(collect_runs(results), table="metrics", fmt=fmt)
    if fmt == "csv":
        header = text.splitlines()[0].split(",")
        assert header[:4] == ["threshold", "pair", "method", "metric"] and "upper_bound" in header
        table = pd.read_csv(io.StringIO(text)).set_index(["pair", "method", "metric"])
        best = table.loc[("fl-t2", "mmccd", "dice")]
        assert best["mean"] == pytest.approx(0.61) and best["mark"] == "best" and best["seeds"] == 2
        assert best["ci_low"] < best["mean"] < best["ci_high"] and best["subjects"] == 8
    elif fmt == "latex":
        assert r"\begin{tabular}" in text and r"zz\_plugin" in text
        assert text.count(r"\toprule") == text.count(r"\midrule") == text.count(r"\bottomrule") == 2
        assert r"\hline" not in text
        assert r"\textbf{0.610 {\scriptsize [" in text  # best in bold, CI in small type
        std = render(collect_runs(results), table="metrics", fmt=fmt, spread="std")
        assert r"\textbf{0.6100 $\pm$ 0.0141}" in std
    else:
        assert "<table" in text and '<td data-mark="best"><b>0.610</b><br><span class="ci">[' in text


def test_bad_choices(results: Path, tmp_path: Path) -> None:
    df = collect_runs(results)
    with pytest.raises(UsageError, match="--format"):
        render(df, fmt="docx")
    with pytest.raises(UsageError, match="--threshold"):
        render(df, threshold="test_dice")
    with pytest.raises(UsageError, match="--table"):
        render(df, table="fig")
    with pytest.raises(UasbenchError, match="does not exist"):
        collect_runs(tmp_path / "missing")
    with pytest.raises(UasbenchError, match="no complete runs"):
        render(collect_runs(results / "fl-t2" / "ae_quick_0_s0"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    skipped = collect_runs(bad).attrs["skipped"]  # an unreadable manifest is reported, not ranked
    assert len(skipped) == 1 and "manifest.json" in skipped[0][1]


def test_single_modality_runs_fill_every_pair_with_the_same_input(tmp_path: Path) -> None:
    _write_run(tmp_path, "dae", "fl-t2", 0, 0.46, train=("input",))
    _write_run(tmp_path, "mmccd", "fl-t2", 0, 0.61)
    _write_run(tmp_path, "mmccd", "fl-t1", 0, 0.60)
    _write_run(tmp_path, "mmccd", "t2-fl", 0, 0.48)
    text = render(collect_runs(tmp_path), table="pairs", fmt="md")
    dae = next(line for line in text.splitlines() if line.startswith("| dae"))
    assert dae.count("0.460 [") == 2  # fl-t2 and fl-t1, from the one run
    assert dae.rstrip(" |").endswith("n/a")  # t2-fl needs a run with input T2
    assert "same X" in text
    paired = render(collect_runs(tmp_path), table="metrics", fmt="md")
    assert paired.count("| dae") == 1  # Table 1 blocks show only real runs


@pytest.mark.parametrize("change", [{"data": "d1"}, {"median": 3}])
def test_runs_from_different_benchmarks_are_not_ranked_together(tmp_path: Path, change: dict) -> None:
    _write_run(tmp_path, "dae", "fl-t2", 0, 0.46)
    _write_run(tmp_path, "mmccd", "fl-t2", 0, 0.61, **change)
    with pytest.raises(UasbenchError, match="different data, preprocessing or post-processing"):
        collect_runs(tmp_path)


def test_runs_of_one_seed_must_share_the_split_file(tmp_path: Path) -> None:
    _write_run(tmp_path, "dae", "fl-t2", 0, 0.46)
    run = _write_run(tmp_path, "mmccd", "fl-t2", 0, 0.61)
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps(manifest | {"split_sha256": "other"}))
    with pytest.raises(UasbenchError, match="seed 0 used different split files"):
        collect_runs(tmp_path)


def test_runs_with_other_profiles_or_overrides_are_separate_rows(tmp_path: Path) -> None:
    _write_run(tmp_path, "mmccd", "fl-t2", 0, 0.60)
    _write_run(tmp_path, "mmccd", "fl-t2", 1, 0.62)
    _write_run(tmp_path, "mmccd", "fl-t2", 0, 0.70, profile="paper")
    _write_run(tmp_path, "mmccd", "fl-t2", 0, 0.66, overrides={"iterations": 900})
    text = render(collect_runs(tmp_path), table="metrics", fmt="md")
    rows = [line for line in text.splitlines() if line.startswith("| mmccd")]
    assert [r.split(" | ")[0] for r in rows] == ["| mmccd (paper) (1 seed)", "| mmccd (quick) (2 seeds)",
                                                 "| mmccd (quick; iterations=900) (1 seed)"]
    assert "0.610 [" in rows[1] and "0.660 [" in rows[2]


def test_note_says_when_the_holm_family_needs_more_subjects(tmp_path: Path) -> None:
    for method, base in (("dae", 0.40), ("mmccd", 0.61), ("ddpm", 0.30)):
        _write_run(tmp_path, method, "fl-t2", 0, base, n_subjects=6)  # 3 pairs need 7 subjects
    text = render(collect_runs(tmp_path), fmt="md")
    assert "No mark can be significant in Dice" in text
    assert "with Holm over 3 pairs a test needs at least 7 paired subjects to reach significance and no pair " \
           "here has more than 6" in text
    assert "Pratt's rule" in text and "7 for three" in text


def test_a_metric_at_the_end_of_its_range_up_to_float_rounding_is_ranked():
    from uasbench.report.validation import _value_problem

    assert _value_problem("auprc", 1.0000000000000002) is None  # a mean of per-subject 1.0 values
    assert _value_problem("dice", -1e-17) is None
    assert "outside [0, 1]" in _value_problem("auprc", 1.001)
    assert "outside [0, inf]" in _value_problem("assd", -0.5)
