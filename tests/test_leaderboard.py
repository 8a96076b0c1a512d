"""Leaderboards from fake run directories: discovery, seeds aggregation, bold best, every format."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from uasbench.errors import UasbenchError, UsageError
from uasbench.report.leaderboard import collect_runs, method_sort_key, render


def _summary(mean: float | None) -> dict:
    """A metrics.json summary; ``None`` is how an undefined threshold's metrics are stored."""
    if mean is None:
        return {"mean": None, "std": None, "ci_low": None, "ci_high": None, "n": 0, "n_excluded": 10}
    return {"mean": mean, "std": 0.1, "ci_low": mean - 0.05, "ci_high": mean + 0.05, "n": 10, "n_excluded": 0}


def _write_run(root: Path, method: str, pair: str, seed: int, dice: float, *, complete: bool = True,
               metrics: bool = True, profile: str = "quick", train: tuple[str, ...] = ("input", "target"),
               data: str = "d0", median: int = 0, overrides: dict | None = None) -> Path:
    run = root / pair / f"{method}_{profile}_{len(overrides or {})}_s{seed}"
    run.mkdir(parents=True)
    manifest = {"method": method, "pair": pair, "profile": profile, "seed": seed, "complete": complete,
                "train_modalities": list(train), "data_fingerprint": data, "split_sha256": f"split-{data}-{seed}",
                "postprocess": {"brain_mask": True, "erode_brain_px": 0, "median_size": median},
                "overrides": overrides or {}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    if metrics:
        at = {"dice": _summary(dice), "jaccard": _summary(dice / 2), "precision": _summary(0.5),
              "recall": _summary(0.5), "assd": _summary(10 * (1 - dice))}
        payload = {"metrics": {"threshold_free": {"auroc": _summary(0.9), "auprc": _summary(dice / 3),
                                                  "auroc_image_official": _summary(0.99)},
                               "val_dice": at, "oracle_test": {k: _summary(v["mean"] + 0.05) for k, v in at.items()},
                               "fpr_1": {k: _summary(None) for k in at}}}
        (run / "metrics.json").write_text(json.dumps(payload))
    return run


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
    text = render(collect_runs(results), table="metrics", fmt="md")
    block = text.split("**Pair t2-fl")[0]
    assert "Pair fl-t2" in block and "validation slices (never on test)" in block
    lines = [line for line in block.splitlines() if line.startswith("| ")]
    assert [line.split("|")[1].strip() for line in lines[1:]] == ["dae (1 seed)", "mmccd (2 seeds)", "zz_plugin (1 seed)"]
    mmccd = lines[2]
    assert "**0.6100 ± 0.0141**" in mmccd  # mean +/- std over two seeds, best Dice in bold
    assert "**3.9000 ± 0.1414**" in mmccd  # lowest ASSD is best
    assert "0.1000" in lines[3] and "**" not in lines[3].split("|")[2]


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
    assert "0.6600" in oracle
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
        assert "0.61" in text
    elif fmt == "latex":
        assert r"\begin{tabular}" in text and r"\textbf{0.6100 $\pm$ 0.0141}" in text and r"zz\_plugin" in text
    else:
        assert "<table" in text and "<b>0.6100 ± 0.0141</b>" in text


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
    with pytest.raises(UasbenchError, match="manifest.json"):
        collect_runs(bad)


def test_single_modality_runs_fill_every_pair_with_the_same_input(tmp_path: Path) -> None:
    _write_run(tmp_path, "dae", "fl-t2", 0, 0.46, train=("input",))
    _write_run(tmp_path, "mmccd", "fl-t2", 0, 0.61)
    _write_run(tmp_path, "mmccd", "fl-t1", 0, 0.60)
    _write_run(tmp_path, "mmccd", "t2-fl", 0, 0.48)
    text = render(collect_runs(tmp_path), table="pairs", fmt="md")
    dae = next(line for line in text.splitlines() if line.startswith("| dae"))
    assert dae.count("0.4600") == 2  # fl-t2 and fl-t1, from the one run
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
    assert "0.6100 ± 0.0141" in rows[1] and "0.6600" in rows[2]
