"""Leaderboards from finished run directories: the paper's Table 1 (methods x metrics) and Table 2
(methods x modality pairs), with mean +/- std over seeds and the threshold protocol named in a footnote.
"""
from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from uasbench.errors import UasbenchError, UsageError
from uasbench.results import manifest_paths

log = logging.getLogger(__name__)

METHOD_ORDER = ("intensity", "ae", "vae", "dae", "ddpm", "cyclic_unet", "mmccd")
PAIR_ORDER = ("fl-t2", "fl-t1", "t2-fl", "t2-t1", "t1-t2", "t1-fl")  # Table 2's column order
THRESHOLDS = ("val_dice", "fpr_1", "fpr_5", "oracle_test")
# (column title, metric, read at the chosen threshold?); AUROC/AUPRC are threshold-free (brain pixels).
TABLE1 = (("Dice", "dice", True), ("AUROC", "auroc", False), ("Jaccard", "jaccard", True),
          ("Precision", "precision", True), ("Recall", "recall", True), ("ASSD", "assd", True),
          ("AUPRC", "auprc", False))
LOWER_IS_BETTER = {"assd"}
FORMATS = ("md", "csv", "latex", "html")
TABLES = ("metrics", "pairs")
PROTOCOL_NOTES = {
    "val_dice": "Threshold: maximises the mean per-slice Dice on the validation slices (never on test).",
    "fpr_1": "Threshold: 1% false-positive rate on brain pixels of healthy validation slices.",
    "fpr_5": "Threshold: 5% false-positive rate on brain pixels of healthy validation slices.",
    "oracle_test": "ORACLE (threshold tuned on test): upper bound, not a fair result; "
                   "shown only because published numbers use it.",
}
INPUT_ONLY_NOTE = ("Single-modality methods (trained and tested on X alone) appear under every pair with "
                   "the same X, from one run, as in the paper's Table 2.")
COMMON_NOTE = ("Metrics per test slice, averaged per subject then over subjects; AUROC/AUPRC threshold-free "
               "inside the brain mask; ASSD in pixels (128x128, lower is better). "
               "Mean +/- std over seeds; best per column in bold.")


def collect_runs(results_dir: Path) -> pd.DataFrame:
    """One row per (run, threshold, metric) for every complete run found at any depth.

    Runs whose manifest is not marked complete or that lack ``metrics.json`` are skipped; how many is
    logged and kept in ``df.attrs["ignored"]`` (their folders in ``df.attrs["ignored_runs"]``).
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise UasbenchError(f"results folder {results_dir} does not exist")
    rows: list[dict[str, Any]] = []
    ignored: list[str] = []
    for manifest_path in manifest_paths(results_dir):  # hidden staging folders hold no finished run
        run_dir = manifest_path.parent
        manifest = _read_json(manifest_path)
        if manifest.get("complete") is not True or not (run_dir / "metrics.json").is_file():
            ignored.append(str(run_dir))
            continue
        metrics = _read_json(run_dir / "metrics.json")
        missing = [k for k in ("method", "pair", "profile", "seed") if k not in manifest]
        if missing or "metrics" not in metrics:
            raise UasbenchError(f"{manifest_path} lacks {missing or 'metrics in metrics.json'}")
        base = {k: manifest[k] for k in ("method", "pair", "profile", "seed")} | {"run": str(run_dir)}
        base["variant"] = _variant(manifest["profile"], manifest.get("overrides") or {})
        base["input_only"] = manifest.get("train_modalities") == ["input"]
        base["benchmark"] = json.dumps([manifest.get("data_fingerprint"), manifest.get("postprocess")],
                                       sort_keys=True)
        base["split"] = manifest.get("split_sha256")
        for threshold, per_metric in metrics["metrics"].items():
            for metric, summary in per_metric.items():
                value = summary.get("mean")
                rows.append(base | {"threshold": threshold, "metric": metric,
                                    "value": np.nan if value is None else float(value)})
    if ignored:
        log.warning("ignored %d incomplete run(s) under %s", len(ignored), results_dir)
    df = pd.DataFrame(rows, columns=["method", "pair", "profile", "variant", "seed", "run", "input_only", "benchmark",
                                     "split", "threshold", "metric", "value"])
    _check_one_benchmark(df, results_dir)
    df.attrs["ignored"] = len(ignored)
    df.attrs["ignored_runs"] = ignored
    return df


def _variant(profile: str, overrides: dict[str, Any]) -> str:
    """The profile plus any ``--set`` overrides: runs of one method with different settings are separate rows."""
    return "; ".join([profile, *(f"{k}={v}" for k, v in sorted(overrides.items()))])


def _check_one_benchmark(df: pd.DataFrame, results_dir: Path) -> None:
    """Refuse to rank runs that were not made under the same conditions: one data folder and
    preprocessing protocol (the data fingerprint), one post-processing, and per seed one split file.
    A table mixing them would compare methods on different test slices without saying so."""
    runs = df.drop_duplicates("run")
    if runs["benchmark"].nunique() > 1:
        a, b = runs.drop_duplicates("benchmark")["run"].iloc[:2]
        raise UasbenchError(f"runs under {results_dir} come from different data, preprocessing or "
                            f"post-processing ({a} vs {b}): tabulate each benchmark's folder on its own")
    for seed, group in runs.groupby("seed"):
        if group["split"].nunique(dropna=False) > 1:
            a, b = group.drop_duplicates("split")["run"].iloc[:2]
            raise UasbenchError(f"runs under {results_dir} with seed {seed} used different split files "
                                f"({a} vs {b}): tabulate each benchmark's folder on its own")


def _share_input_only_runs(df: pd.DataFrame) -> pd.DataFrame:
    """A method trained and tested on X alone gives the same result for every pair X-*: show its run
    under each such pair in the table (as the paper's Table 2 does), unless it has a run of its own there."""
    if "input_only" not in df or not df["input_only"].any():
        return df
    pairs = df["pair"].unique()
    have = set(zip(df["method"], df["pair"]))
    extra = []
    for (method, pair), rows in df[df["input_only"].astype(bool)].groupby(["method", "pair"]):
        for other in pairs:
            if other.split("-")[0] == pair.split("-")[0] and (method, other) not in have:
                extra.append(rows.assign(pair=other))
                have.add((method, other))
    return pd.concat([df, *extra], ignore_index=True) if extra else df


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UasbenchError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise UasbenchError(f"{path} holds a JSON {type(data).__name__}, not an object")
    return data


def method_sort_key(method: str) -> tuple[int, str]:
    """Built-in methods in the paper's order, then any other method alphabetically."""
    return (METHOD_ORDER.index(method), "") if method in METHOD_ORDER else (len(METHOD_ORDER), method)


def _pair_key(pair: str) -> tuple[int, str]:
    return (PAIR_ORDER.index(pair), "") if pair in PAIR_ORDER else (len(PAIR_ORDER), pair)


def _aggregate(df: pd.DataFrame, threshold: str) -> pd.DataFrame:
    """Mean, std and seed count per (pair, row label, metric) for the selected threshold."""
    wanted = [(threshold if at else "threshold_free", metric) for _, metric, at in TABLE1]
    keep = pd.Series(list(zip(df["threshold"], df["metric"])), index=df.index).isin(wanted)
    sel = df[keep].copy()
    several_variants = df["variant"].nunique() > 1
    sel["label"] = [f"{m} ({v})" if several_variants else m for m, v in zip(sel["method"], sel["variant"])]
    sel["sort"] = [method_sort_key(m) + (v,) for m, v in zip(sel["method"], sel["variant"])]
    agg = sel.groupby(["pair", "label", "metric"]).agg(
        mean=("value", "mean"), std=("value", "std"), seeds=("seed", "nunique"), sort=("sort", "first"))
    return agg.reset_index()


def _cell(mean: float, std: float, seeds: int) -> str:
    if np.isnan(mean):
        return "n/a"
    return f"{mean:.4f} ± {std:.4f}" if seeds > 1 and not np.isnan(std) else f"{mean:.4f}"


def _grid(agg: pd.DataFrame, rows: list[str], columns: list[tuple[str, str, str]]) -> tuple[list[list[str]], list[list[bool]]]:
    """Cell texts and bold flags; ``columns`` are (title, pair, metric)."""
    index = agg.set_index(["pair", "label", "metric"])
    texts, means = [], []
    for label in rows:
        row_text, row_mean = [], []
        for _, pair, metric in columns:
            if (pair, label, metric) in index.index:
                rec = index.loc[(pair, label, metric)]
                row_text.append(_cell(rec["mean"], rec["std"], int(rec["seeds"])))
                row_mean.append(rec["mean"])
            else:
                row_text.append("n/a")
                row_mean.append(np.nan)
        texts.append(row_text)
        means.append(row_mean)
    values = np.array(means, dtype=float).reshape(len(rows), len(columns))
    bold = np.zeros_like(values, dtype=bool)
    for j, (_, _, metric) in enumerate(columns):
        col = values[:, j]
        if np.sum(~np.isnan(col)) > 1:  # "best" needs something to beat
            best = np.nanmin(col) if metric in LOWER_IS_BETTER else np.nanmax(col)
            bold[:, j] = col == best
    return texts, bold.tolist()


def render(df: pd.DataFrame, table: str = "metrics", fmt: str = "md", threshold: str = "val_dice") -> str:
    """The leaderboard as Markdown, CSV, LaTeX or HTML.

    ``metrics``: Table 1 (methods x metrics), one block per modality pair; ``pairs``: Table 2
    (methods x pairs, Dice). Rows are methods (with profile and overrides when runs mix settings).
    """
    if table not in TABLES:
        raise UsageError(f"unknown --table {table!r}: choose one of {', '.join(TABLES)}")
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if threshold not in THRESHOLDS:
        raise UsageError(f"unknown --threshold {threshold!r}: choose one of {', '.join(THRESHOLDS)}")
    if df.empty:
        raise UasbenchError("no complete runs to tabulate")
    if table == "pairs":
        df = _share_input_only_runs(df)
    agg = _aggregate(df, threshold)
    rows = sorted(agg["label"].unique(), key=lambda lab: agg.loc[agg["label"] == lab, "sort"].iloc[0])
    pairs = sorted(agg["pair"].unique(), key=_pair_key)
    oracle = "oracle (threshold tuned on test): upper bound" if threshold == "oracle_test" else threshold
    if table == "metrics":
        blocks = [(f"Pair {pair} — threshold {oracle}", [(t, pair, m) for t, m, _ in TABLE1]) for pair in pairs]
    else:
        blocks = [(f"Dice per modality pair — threshold {oracle}", [(p, p, "dice") for p in pairs])]
    if fmt == "csv":
        return _csv(agg, threshold)
    note = f"{PROTOCOL_NOTES[threshold]} {COMMON_NOTE}"
    if table == "pairs":
        note += " " + INPUT_ONLY_NOTE
    writer = {"md": _markdown, "latex": _latex, "html": _html}[fmt]
    parts = []
    for title, columns in blocks:
        block = agg[agg["pair"].isin({pair for _, pair, _ in columns})]
        present = [lab for lab in rows if lab in set(block["label"])]
        texts, bold = _grid(block, present, columns)
        labels = [f"{lab} ({_seed_text(block.loc[block['label'] == lab, 'seeds'])})" for lab in present]
        parts.append(writer(title, [c[0] for c in columns], labels, texts, bold, note))
    return "\n".join(parts)


def _seed_text(counts: pd.Series) -> str:
    low, high = int(counts.min()), int(counts.max())
    return f"{high} seed{'s' if high > 1 else ''}" if low == high else f"{low}-{high} seeds"


def _csv(agg: pd.DataFrame, threshold: str) -> str:
    out = agg.drop(columns="sort").rename(columns={"label": "method"})
    out.insert(0, "threshold", threshold)
    out["upper_bound"] = threshold == "oracle_test"
    return out.to_csv(index=False)


def _markdown(title: str, header: list[str], labels: list[str], texts: list[list[str]],
              bold: list[list[bool]], note: str) -> str:
    lines = [f"**{title}**", "", "| Method | " + " | ".join(header) + " |",
             "|---|" + "---:|" * len(header)]
    for label, row, flags in zip(labels, texts, bold):
        cells = [f"**{t}**" if b else t for t, b in zip(row, flags)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", f"_{note}_", ""])


def _tex(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                 ("±", r"$\pm$"), ("—", "---")):
        text = text.replace(a, b)
    return text


def _latex(title: str, header: list[str], labels: list[str], texts: list[list[str]],
           bold: list[list[bool]], note: str) -> str:
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex(title)}}}",
             r"\begin{tabular}{l" + "r" * len(header) + "}", r"\hline",
             "Method & " + " & ".join(_tex(h) for h in header) + r" \\", r"\hline"]
    for label, row, flags in zip(labels, texts, bold):
        cells = [rf"\textbf{{{_tex(t)}}}" if b else _tex(t) for t, b in zip(row, flags)]
        lines.append(_tex(label) + " & " + " & ".join(cells) + r" \\")
    lines += [r"\hline", r"\end{tabular}", rf"\par\footnotesize {_tex(note)}", r"\end{table}", ""]
    return "\n".join(lines)


def _html(title: str, header: list[str], labels: list[str], texts: list[list[str]],
          bold: list[list[bool]], note: str) -> str:
    cells = [[f"<b>{html.escape(t)}</b>" if b else html.escape(t) for t, b in zip(row, flags)]
             for row, flags in zip(texts, bold)]
    frame = pd.DataFrame(cells, columns=header, index=pd.Index([html.escape(lab) for lab in labels], name="Method"))
    return (f"<h3>{html.escape(title)}</h3>\n" + frame.to_html(escape=False)
            + f"\n<p><small>{html.escape(note)}</small></p>\n")
