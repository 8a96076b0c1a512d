"""Leaderboard blocks of cross-dataset runs: one block per test dataset and evaluation level.

A cross-dataset run (``uasbench run --train-data ...``) stores per test dataset ``metrics/<name>.json`` (the
slice protocol: one largest-lesion slice per subject, as Table 1) and ``volumes/<name>.json`` (the volume,
lesion and healthy-scan levels and the size and kind strata of ``evaluation.evaluate_volumes``). The blocks
are built with the text leaderboards' own statistics (``columns.column_stats``: per-subject means,
bootstrap CIs, paired Holm-corrected Wilcoxon marks) and writers, so they read like Table 1:

* ``slice``: Table 1's columns at the val-Dice threshold;
* ``volume``: Dice, Jaccard, precision and recall of each test volume in 3-D at the volume-level val-Dice
  threshold, AUROC/AUPRC over its brain voxels;
* ``lesion``: lesion-wise Dice, detection precision, recall and F1, false-positive lesions per volume;
* ``healthy``: on the healthy test scans, the share of brain voxels marked and the false-positive lesions,
  at the val-Dice threshold and at 1 % and 5 % false positives on the healthy validation scans;
* ``size`` (and ``kind`` when the data names lesion kinds): volume Dice by lesion-size tercile, with the
  cut-offs printed.

Runs are ranked together only when their data and preparation are the same (the manifest's
``datasets.identity``) and, per seed, their splits (``datasets.split_identity``), as Table 1 requires.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from uasbench.choices import EVALUATION_LEVELS
from uasbench.errors import UasbenchError
from uasbench.evaluation.lesions import LESION_METRICS
from uasbench.evaluation.evaluate import THRESHOLD_FREE
from uasbench.evaluation.strata import SIZE_GROUPS
from uasbench.evaluation.evaluate_volumes import HEALTHY_METRICS
from uasbench.report import columns as cols
from uasbench.report import leaderboard as lb
from uasbench.report import render as rd
from uasbench.report import runs as runs_
from uasbench.results import CROSS_METRICS, CROSS_VOLUMES, manifest_paths

CROSS_PROTOCOL = "cross-dataset"
LOWER = {"assd", "fp_lesions", "fp_voxel_fraction"}
_TITLES = {"dice": "Dice", "jaccard": "Jaccard", "precision": "Precision", "recall": "Recall", "auroc": "AUROC",
           "auprc": "AUPRC", "assd": "ASSD", "lesion_dice": "Lesion Dice", "lesion_precision": "Det. precision",
           "lesion_recall": "Det. recall", "lesion_f1": "Det. F1", "fp_lesions": "FP lesions",
           "fp_voxel_fraction": "FP voxels"}
LEVEL_NOTES = {
    "slice": "Slice protocol: per test subject its largest-lesion scored slice (Table 1's rule); threshold "
             "maximises the mean per-slice Dice on the validation subjects' slices.",
    "volume": "Per test volume (all its scored slices at once, 3-D); threshold maximises the mean per-volume "
              "Dice on the validation volumes (never on test). AUROC/AUPRC over each volume's brain voxels.",
    "lesion": "Lesions: 3-D connected components ({connectivity}-connectivity), matched as the BraTS 2023 "
              "lesion-wise evaluation does (truth lesions dilated {dilation} steps; a lesion's Dice is that of "
              "every predicted component touching it; unmatched predictions are false positives; truth lesions "
              "under {min_truth} voxels left out). At the volume-level val-Dice threshold.",
    "healthy": "Healthy test scans (no lesion voxel): share of brain voxels marked anomalous and false-positive "
               "lesions per scan, at the volume-level val-Dice threshold and at the thresholds that mark 1 % and "
               "5 % of the healthy validation scans' brain voxels. Lower is better.",
    "size": "Volume Dice by lesion size: terciles of the test volumes' lesion voxels; cut-offs {cutoffs}. "
            "At the volume-level val-Dice threshold.",
    "kind": "Volume Dice by lesion kind, as the data names it (lesion_kinds.csv). At the volume-level val-Dice "
            "threshold.",
}
COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {  # level -> (threshold key, metric)
    "slice": tuple((THRESHOLD_FREE if not at else "val_dice", m) for _, m, at in cols.TABLE1),
    "volume": (("val_dice", "dice"), ("val_dice", "jaccard"), ("val_dice", "precision"), ("val_dice", "recall"),
               (THRESHOLD_FREE, "auroc"), (THRESHOLD_FREE, "auprc")),
    "lesion": tuple(("val_dice", m) for m in LESION_METRICS),
    "healthy": tuple((t, m) for m in HEALTHY_METRICS for t in ("val_dice", "fpr_1", "fpr_5")),
}


@dataclass(frozen=True)
class LevelColumn(cols.Column):
    """A column whose metric may be lower-is-better beyond Table 1's (false positives)."""

    lower: bool = False

    @property
    def higher_is_better(self) -> bool:
        return not self.lower


def cross_dataset_runs(results_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(run folder, manifest) of every complete cross-dataset run under ``results_dir``."""
    found = []
    for path in manifest_paths(Path(results_dir)):
        manifest = runs_.read_json(path)
        if is_cross_dataset(manifest) and manifest.get("complete") is True:
            found.append((path.parent, manifest))
    return found


def is_cross_dataset(manifest: dict[str, Any]) -> bool:
    return isinstance(manifest.get("datasets"), dict) and manifest["datasets"].get("protocol") == CROSS_PROTOCOL


def collect_levels(results_dir: Path) -> pd.DataFrame:
    """One row per (run, test dataset, level, threshold, metric) with per-subject values, as
    ``runs.collect_runs`` gives for Table 1; ``attrs["notes"]`` holds each block's facts."""
    runs = cross_dataset_runs(results_dir)
    _check_identity(runs, Path(results_dir))
    rows: list[dict[str, Any]] = []
    facts: dict[tuple[str, str], dict[str, Any]] = {}
    for run_dir, manifest in runs:
        base = {k: manifest[k] for k in ("method", "pair", "profile", "seed")} | {"run": str(run_dir)}
        base["variant"] = runs_.variant_label(manifest["profile"], manifest.get("overrides") or {})
        base["empty_predictions"] = 0
        for name in manifest["datasets"]["test"]:
            block = {**base, "dataset": name}
            slices = run_dir / CROSS_METRICS / f"{name}.json"
            if slices.is_file():
                rows += _rows(block, "slice", runs_.read_json(slices), "subjects")
            volumes = runs_.read_json(run_dir / CROSS_VOLUMES / f"{name}.json")
            rows += _rows(block, "volume", volumes, "subjects")
            rows += _rows(block, "healthy", {"metrics": volumes["healthy"], "per_subject": volumes["healthy_per_subject"],
                                             "subjects": volumes["healthy_subjects"]}, "subjects")
            rows += _strata_rows(block, volumes)
            fact = facts.setdefault((manifest["pair"], name), {"rule": volumes["rule"], "cutoffs": {}})
            if "size" in volumes["strata"]:
                fact["cutoffs"][manifest["seed"]] = volumes["strata"]["size"]["cutoffs"]
    df = pd.DataFrame(rows, columns=["method", "pair", "profile", "variant", "seed", "run", "empty_predictions",
                                     "dataset", "level", "threshold", "metric", "value", "subjects",
                                     "subject_values"])
    df.attrs["facts"] = facts
    return df


def _rows(base: dict[str, Any], level: str, result: dict[str, Any], key: str) -> list[dict[str, Any]]:
    subjects = tuple(result[key])
    out = []
    for threshold, per_metric in result["metrics"].items():
        for metric, values in result["per_subject"].get(threshold, {}).items():
            mean = per_metric.get(metric, {}).get("mean")
            out.append(base | {"level": "lesion" if metric in LESION_METRICS and level == "volume" else level,
                               "threshold": threshold, "metric": metric,
                               "value": np.nan if mean is None else float(mean), "subjects": subjects,
                               "subject_values": tuple(np.nan if v is None else float(v) for v in values)})
    return out


def _strata_rows(base: dict[str, Any], volumes: dict[str, Any]) -> list[dict[str, Any]]:
    """Volume Dice at val-Dice of each stratum's subjects (the statistics then run on those subjects only)."""
    dice = dict(zip(volumes["subjects"], volumes["per_subject"].get("val_dice", {}).get("dice", [])))
    out = []
    for stratum, content in volumes["strata"].items():
        for group, members in content["groups"].items():
            subjects = tuple(s for s in members["subjects"] if s in dice)
            values = tuple(np.nan if dice[s] is None else float(dice[s]) for s in subjects)
            out.append(base | {"level": stratum, "threshold": "val_dice", "metric": f"dice|{group}",
                               "value": float(np.nanmean(values)) if values and not np.isnan(values).all() else np.nan,
                               "subjects": subjects, "subject_values": values})
    return out


def _check_identity(runs: list[tuple[Path, dict[str, Any]]], results_dir: Path) -> None:
    """Refuse to rank cross-dataset runs made on different data or preparation, or (per seed) splits."""
    if len({m["datasets"]["identity"] for _, m in runs}) > 1:
        a, b = [str(r) for r, _ in runs[:1]] + [str(r) for r, m in runs
                                                if m["datasets"]["identity"] != runs[0][1]["datasets"]["identity"]][:1]
        raise UasbenchError(f"cross-dataset runs under {results_dir} come from different data, preprocessing or "
                            f"post-processing ({a} vs {b}): tabulate each benchmark's folder on its own")
    by_seed: dict[int, set[str]] = {}
    for _, m in runs:
        by_seed.setdefault(m["seed"], set()).add(m["datasets"]["split_identity"])
    for seed, splits in by_seed.items():
        if len(splits) > 1:
            raise UasbenchError(f"cross-dataset runs under {results_dir} with seed {seed} used different test "
                                "splits: tabulate each benchmark's folder on its own")


def _block_columns(df: pd.DataFrame, level: str, key: str) -> list[LevelColumn]:
    if level in ("size", "kind"):
        groups = SIZE_GROUPS if level == "size" else sorted({m.split("|", 1)[1] for m in df["metric"]})
        return [LevelColumn(g, key, "val_dice", f"dice|{g}") for g in groups
                if (df["metric"] == f"dice|{g}").any()]
    columns = []
    for threshold, metric in COLUMNS[level]:
        title = _TITLES[metric] + (f" @{threshold}" if level == "healthy" else "")
        columns.append(LevelColumn(title, key, threshold, metric, lower=metric in LOWER))
    return columns


def _has_subjects(sel: pd.DataFrame, column: LevelColumn) -> bool:
    """Whether any run has a subject in this column (a stratum or the healthy scans may be empty)."""
    rows = sel[(sel["threshold"] == column.key) & (sel["metric"] == column.metric)]
    return bool(rows["subjects"].map(len).sum())


def _note(level: str, facts: dict[str, Any]) -> str:
    rule = facts["rule"]
    cutoffs = "; ".join(f"seed {s}: {_cut(c)}" for s, c in sorted(facts["cutoffs"].items())) or "none"
    return LEVEL_NOTES[level].format(connectivity=rule["connectivity"], dilation=rule["dilation"],
                                     min_truth=rule["min_truth_voxels"], cutoffs=cutoffs)


def _cut(c: list[float | None]) -> str:
    if any(v is None for v in c):
        return "undefined (no test volume with a lesion)"
    return f"small <= {c[0]:.0f} < medium <= {c[1]:.0f} < large voxels"


def render_levels(df: pd.DataFrame, fmt: str = "md", spread: str = "ci") -> str:
    """Every block (test dataset x level) in ``fmt`` (md, latex, html; csv: one table of every cell)."""
    if df.empty:
        return ""
    facts = df.attrs["facts"]
    df = cols.labelled(df.assign(input_only=False))
    labels = cols.row_labels(df)
    out, csv_rows = [], []
    for (pair, name), fact in facts.items():
        for level in (*EVALUATION_LEVELS, "size", "kind"):
            sel = df[(df["pair"] == pair) & (df["dataset"] == name) & (df["level"] == level)]
            if sel.empty:
                continue
            key = f"{pair}|{name}|{level}"
            sel = sel.assign(pair=key)
            stats = [cols.column_stats(sel, c, labels) for c in _block_columns(sel, level, key) if _has_subjects(sel, c)]
            if not stats:
                continue
            title = f"{name} ({pair}) — {level} level" if level in EVALUATION_LEVELS else f"{name} ({pair}) — by lesion {level}"
            note = " ".join([_note(level, fact), lb.SPREAD_NOTES[spread], lb.MARKS_NOTE])
            if fmt == "csv":
                csv_rows += [{"dataset": name, "pair": pair, "level": level, "column": s.column.title,
                              "method": lab, "mean": s.summaries[lab].mean, "ci_low": s.summaries[lab].ci_low,
                              "ci_high": s.summaries[lab].ci_high, "subjects": s.summaries[lab].n,
                              "seeds": s.seeds[lab], "mark": s.marks.marks.get(lab, "")}
                             for s in stats for lab in labels if lab in s.summaries]
                continue
            block = lb.block_table(title, stats, labels, spread, lb.block_note(stats, sel, note))
            out.append(rd.table_text(block, fmt))
    if fmt == "csv":
        return pd.DataFrame(csv_rows).to_csv(index=False)
    return "\n".join(out)


def levels_text(results_dir: Path, fmt: str, spread: str = "ci") -> str:
    """The cross-dataset blocks of ``results_dir`` ("" when it holds no cross-dataset run)."""
    return render_levels(collect_levels(results_dir), fmt, spread)

