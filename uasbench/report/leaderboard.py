"""Leaderboards from finished run directories: the paper's Table 1 (methods x metrics) and Table 2
(methods x modality pairs), with per-subject statistics, the threshold protocol named in a note.

A cell is the mean over test subjects (each subject averaged over the seeds that tested it) with its
bootstrap 95% CI, or with the std over seeds; the best mean is bold and every method that a paired,
Holm-corrected Wilcoxon test does not find worse than it is marked (``uasbench.report.statistics``).
"""
from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from uasbench.choices import EVALUATION_PROTOCOLS as PROTOCOLS
from uasbench.choices import FORMATS, SPREADS, TABLES, THRESHOLDS
from uasbench.errors import UasbenchError, UsageError
from uasbench.results import manifest_paths, official_metrics
from uasbench.evaluation.metrics import Summary, summarize
from uasbench.evaluation.official import KEY as OFFICIAL_KEY
from uasbench.evaluation.official import NOTE as OFFICIAL_NOTE
from uasbench.evaluation.official import PROTOCOL as OFFICIAL
from uasbench.evaluation.protocol import THRESHOLD_FREE
from uasbench.report import statistics as st
from uasbench.report import validation

log = logging.getLogger(__name__)

METHOD_ORDER = ("intensity", "ae", "vae", "dae", "ddpm", "cyclic_unet", "mmccd")
PAIR_ORDER = ("fl-t2", "fl-t1", "t2-fl", "t2-t1", "t1-t2", "t1-fl")  # Table 2's column order
# (column title, metric, read at the chosen threshold?); AUROC/AUPRC are threshold-free (brain pixels).
TABLE1 = (("Dice", "dice", True), ("AUROC", "auroc", False), ("Jaccard", "jaccard", True),
          ("Precision", "precision", True), ("Recall", "recall", True), ("ASSD", "assd", True),
          ("AUPRC", "auprc", False))
# The official evaluation reports its AUROC at its own (test-tuned) threshold's mask and has no AUPRC.
TABLE1_OFFICIAL = tuple((title, metric, True) for title, metric, _ in TABLE1 if metric != "auprc")
LOWER_IS_BETTER = {"assd"}
PROTOCOL_NOTES = {
    "val_dice": "Threshold: maximises the mean per-slice Dice on the validation slices (never on test).",
    "fpr_1": "Threshold: 1% false-positive rate on brain pixels of healthy validation slices.",
    "fpr_5": "Threshold: 5% false-positive rate on brain pixels of healthy validation slices.",
    "oracle_test": "ORACLE (threshold tuned on test): upper bound, not a fair result; "
                   "shown only because published numbers use it.",
    OFFICIAL_KEY: OFFICIAL_NOTE,
}
INPUT_ONLY_NOTE = ("Single-modality methods (trained and tested on X alone) appear under every pair with "
                   "the same X, from one run, as in the paper's Table 2.")
COMMON_NOTE = ("Metrics per test slice, averaged per subject then over subjects; ASSD in pixels "
               "(128x128, lower is better).")
PROJECT_METRICS_NOTE = "AUROC/AUPRC threshold-free inside the brain mask."
SPREAD_NOTES = {
    "ci": "Mean over test subjects (each averaged over its seeds) [bootstrap 95% CI over subjects].",
    "std": "Mean over test subjects (each averaged over its seeds) ± std over seeds.",
}
MARKS_NOTE = (f"Bold: best mean. †: not significantly worse than the best (paired Wilcoxon signed-rank "
              f"test over subjects, zero differences by Pratt's rule, Holm-corrected over all method pairs of "
              f"the column, alpha = {st.ALPHA}); no mark: significantly worse. With Holm over k pairs a test "
              f"can reach significance only with enough subjects ({st.min_subjects(1)} for one pair, "
              f"{st.min_subjects(3)} for three, {st.min_subjects(6)} for six, {st.min_subjects(10)} for ten).")


_REPORTED: set[tuple[str, str]] = set()  # skipped runs already reported by this process


def collect_runs(results_dir: Path, protocol: str = "project",
                 warn: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One row per (run, threshold, metric) for every complete run found at any depth, with the run's
    per-subject values (``subjects``, ``subject_values``) beside the mean (``value``).

    ``protocol="mmccd-official"`` recomputes the official MMCCD evaluation from each run's maps instead
    of reading ``metrics.json`` (threshold key ``mmccd_official``). Runs whose manifest is not marked
    complete or that lack ``metrics.json`` are unfinished: how many is logged and kept in
    ``df.attrs["ignored"]`` (their folders in ``df.attrs["ignored_runs"]``). Runs that fail
    ``uasbench.report.validation``'s checks (and links to run folders) are skipped: one warning line each,
    and ``df.attrs["skipped"]`` lists (run, reason). ``warn`` receives those lines (default: this module's
    logger), each once per process.
    """
    if protocol not in PROTOCOLS:
        raise UsageError(f"unknown --protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise UasbenchError(f"results folder {results_dir} does not exist")
    rows: list[dict[str, Any]] = []
    ignored: list[str] = []
    skipped = validation.linked_run_folders(results_dir)  # (run, reason): reported, never ranked
    for manifest_path in manifest_paths(results_dir):  # hidden staging folders hold no finished run
        run_dir = manifest_path.parent
        try:
            manifest = read_json(manifest_path)
        except UasbenchError as exc:
            skipped.append((str(run_dir), str(exc)))
            continue
        if isinstance(manifest.get("datasets"), dict):  # a cross-dataset run: report.levels tabulates it
            continue
        if manifest.get("complete") is not True or not (run_dir / "metrics.json").is_file():
            ignored.append(str(run_dir))
            continue
        try:
            metrics = _checked_run(run_dir, manifest, protocol)
        except UasbenchError as exc:
            skipped.append((str(run_dir), str(exc)))
            continue
        base = {k: manifest[k] for k in ("method", "pair", "profile", "seed")} | {"run": str(run_dir)}
        base["variant"] = variant_label(manifest["profile"], manifest.get("overrides") or {})
        base["input_only"] = manifest.get("train_modalities") == ["input"]
        base["benchmark"] = json.dumps([manifest.get("data_fingerprint"), manifest.get("postprocess")],
                                       sort_keys=True)
        base["split"] = manifest.get("split_sha256")
        base["empty_predictions"] = len(metrics.get("empty_predictions", []))
        subjects = tuple(metrics.get("subjects", ()))
        for threshold, per_metric in metrics["metrics"].items():
            chosen = metrics.get("thresholds", {}).get(threshold, {}).get("value")
            for metric, summary in per_metric.items():
                value = summary.get("mean")
                values = metrics.get("per_subject", {}).get(threshold, {}).get(metric, [])
                rows.append(base | {"threshold": threshold, "threshold_value": chosen, "metric": metric,
                                    "value": np.nan if value is None else float(value), "subjects": subjects,
                                    "subject_values": tuple(np.nan if v is None else float(v) for v in values)})
    if ignored:
        log.warning("ignored %d incomplete run(s) under %s", len(ignored), results_dir)
    for run, reason in skipped:
        if (run, reason) not in _REPORTED:  # the page and the grid's figures read the same runs again
            _REPORTED.add((run, reason))
            (warn or log.warning)(f"skipped run {run}: {reason}")
    df = pd.DataFrame(rows, columns=["method", "pair", "profile", "variant", "seed", "run", "input_only", "benchmark",
                                     "split", "empty_predictions", "threshold", "threshold_value", "metric",
                                     "value", "subjects", "subject_values"])
    _check_one_benchmark(df, results_dir)
    df.attrs["ignored"] = len(ignored)
    df.attrs["ignored_runs"] = ignored
    df.attrs["skipped"] = skipped
    df.attrs["protocol"] = protocol
    return df


def _checked_run(run_dir: Path, manifest: dict[str, Any], protocol: str) -> dict[str, Any]:
    """The run's metrics after ``validation``'s checks of its manifest, checkpoint and metrics; UasbenchError
    with the reason to skip it otherwise."""
    problem = validation.manifest_problem(manifest, run_dir) or validation.checkpoint_problem(manifest, run_dir)
    if problem:
        raise UasbenchError(problem)
    if protocol == OFFICIAL:
        metrics = official_metrics(run_dir, manifest)
    else:
        metrics = read_json(run_dir / "metrics.json")
        if "metrics" not in metrics:
            raise UasbenchError(f"{run_dir / 'metrics.json'} lacks metrics")
        if "per_subject" not in metrics or "subjects" not in metrics:
            raise UasbenchError(f"{run_dir / 'metrics.json'} has no per-subject values (older format): "
                                f"run `uasbench evaluate {run_dir}` to rewrite it")
    problem = validation.metrics_problem(metrics)
    if problem:
        raise UasbenchError(problem)
    subjects = metrics.get("subjects", ())
    for threshold, per_metric in metrics["metrics"].items():
        for metric in per_metric:
            values = metrics.get("per_subject", {}).get(threshold, {}).get(metric, [])
            if len(values) != len(subjects):
                raise UasbenchError(f"{len(values)} per-subject values of {threshold}/{metric} for "
                                    f"{len(subjects)} subjects")
    return metrics


def variant_label(profile: str, overrides: dict[str, Any]) -> str:
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


def read_json(path: Path) -> dict[str, Any]:
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


def pair_sort_key(pair: str) -> tuple[int, str]:
    return (PAIR_ORDER.index(pair), "") if pair in PAIR_ORDER else (len(PAIR_ORDER), pair)


# -- the statistics behind one table column --------------------------------------------------------

@dataclass(frozen=True)
class Column:
    """One column of a table: its title, the pair and the (threshold key, metric) it reads."""

    title: str
    pair: str
    key: str
    metric: str

    @property
    def higher_is_better(self) -> bool:
        return self.metric not in LOWER_IS_BETTER


@dataclass(frozen=True)
class ColumnStats:
    """Per method (row label): subject-level summary, seed-level spread and mark; the tests behind them."""

    column: Column
    table: pd.DataFrame  # subjects x labels
    summaries: dict[str, Summary]  # over subjects
    seed_std: dict[str, float]
    seeds: dict[str, int]
    marks: st.Marks
    tests: pd.DataFrame

    @property
    def with_values(self) -> pd.DataFrame:
        """``table`` without the methods that have no value in this column."""
        return self.table[[c for c in self.table.columns if self.summaries[c].n > 0]]


def labelled(df: pd.DataFrame) -> pd.DataFrame:
    """Add the row label (method, plus profile and overrides when runs mix settings) and its sort key."""
    out = df.copy()
    several_variants = df["variant"].nunique() > 1
    out["label"] = [f"{m} ({v})" if several_variants else m for m, v in zip(out["method"], out["variant"])]
    out["sort"] = [method_sort_key(m) + (v,) for m, v in zip(out["method"], out["variant"])]
    return out


def row_labels(df: pd.DataFrame) -> list[str]:
    return sorted(df["label"].unique(), key=lambda lab: df.loc[df["label"] == lab, "sort"].iloc[0])


def column_stats(df: pd.DataFrame, column: Column, labels: list[str], n_bootstrap: int = st.N_BOOTSTRAP,
                 seed: int = 0) -> ColumnStats:
    """Subjects x methods for one column, each method's CI, seed spread, the pairwise tests and marks."""
    sel = df[(df["pair"] == column.pair) & (df["threshold"] == column.key) & (df["metric"] == column.metric)]
    present = [lab for lab in labels if lab in set(sel["label"])]
    table = st.subject_table((r.label, r.subjects, r.subject_values)
                             for r in sel.itertuples() if r.label in present)
    summaries, seed_std, seeds = {}, {}, {}
    for lab in present:
        rows = sel[sel["label"] == lab]
        summaries[lab] = summarize(table[lab].to_numpy(dtype=float), n_bootstrap, seed)
        seed_std[lab] = float(rows["value"].std()) if len(rows) > 1 else float("nan")
        seeds[lab] = int(rows["seed"].nunique())
    defined = table[[lab for lab in present if summaries[lab].n > 0]] if present else table
    tests = st.pairwise_tests(defined, n_bootstrap=n_bootstrap, seed=seed)
    marks = st.column_marks(defined, column.higher_is_better, tests)
    return ColumnStats(column, table, summaries, seed_std, seeds, marks, tests)


def table_columns(df: pd.DataFrame, table: str, threshold: str) -> list[tuple[str, list[Column]]]:
    """The blocks of a table layout: (title, columns)."""
    official = df.attrs.get("protocol") == OFFICIAL
    spec = TABLE1_OFFICIAL if official else TABLE1
    pairs = sorted(df["pair"].unique(), key=pair_sort_key)
    shown = _threshold_title(threshold)
    if table == "pairs":
        return [(f"Dice per modality pair — {shown}", [Column(p, p, threshold, "dice") for p in pairs])]
    return [(f"Pair {pair} — {shown}",
             [Column(t, pair, threshold if at else THRESHOLD_FREE, m) for t, m, at in spec]) for pair in pairs]


def _threshold_title(threshold: str) -> str:
    if threshold == OFFICIAL_KEY:
        return "official MMCCD evaluation (ORACLE: threshold tuned on test)"
    if threshold == "oracle_test":
        return "threshold oracle (threshold tuned on test): upper bound"
    return f"threshold {threshold}"


def protocol_note(threshold: str, table: str, spread: str) -> str:
    parts = [PROTOCOL_NOTES[threshold], COMMON_NOTE]
    if threshold != OFFICIAL_KEY:
        parts.append(PROJECT_METRICS_NOTE)
    parts += [SPREAD_NOTES[spread], MARKS_NOTE]
    if table == "pairs":
        parts.append(INPUT_ONLY_NOTE)
    return " ".join(parts)


# -- rendering -------------------------------------------------------------------------------------

def _validate(df: pd.DataFrame, table: str, fmt: str, threshold: str, spread: str) -> None:
    if table not in TABLES:
        raise UsageError(f"unknown --table {table!r}: choose one of {', '.join(TABLES)}")
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if spread not in SPREADS:
        raise UsageError(f"unknown --spread {spread!r}: choose one of {', '.join(SPREADS)}")
    if df.attrs.get("protocol") == OFFICIAL:
        if threshold != OFFICIAL_KEY:
            raise UsageError(f"--threshold does not apply to --protocol {OFFICIAL} (its threshold is tuned on test)")
    elif threshold not in THRESHOLDS:
        raise UsageError(f"unknown --threshold {threshold!r}: choose one of {', '.join(THRESHOLDS)}")
    if df.empty:
        skipped = len(df.attrs.get("skipped", ()))
        raise UasbenchError("no complete runs to tabulate" + (f" ({skipped} skipped, reasons above)" if skipped else ""))


def default_threshold(df: pd.DataFrame) -> str:
    """The headline threshold of the table's protocol."""
    return OFFICIAL_KEY if df.attrs.get("protocol") == OFFICIAL else "val_dice"


def render(df: pd.DataFrame, table: str = "metrics", fmt: str = "md", threshold: str | None = None,
           spread: str = "ci", explain: bool = True) -> str:
    """The leaderboard as Markdown, CSV or LaTeX (``html``: the table alone; ``page.write_page`` writes the
    full report page).

    ``metrics``: Table 1 (methods x metrics), one block per modality pair; ``pairs``: Table 2
    (methods x pairs, Dice); ``tests``: every pairwise test behind Table 1's marks, with the Friedman
    test; ``ranks``: rank stability of the Dice ranking. Rows are methods (with profile and overrides
    when runs mix settings). ``explain=False`` keeps only each block's own notes (the report page
    explains the rest once).
    """
    threshold = default_threshold(df) if threshold is None else threshold
    _validate(df, table, fmt, threshold, spread)
    if table == "pairs":
        df = _share_input_only_runs(df)
    df = labelled(df)
    labels = row_labels(df)
    layout = "pairs" if table == "pairs" else "metrics"
    blocks = [(title, [column_stats(df, c, labels) for c in columns])
              for title, columns in table_columns(df, layout, threshold)]
    if table == "tests":
        return tests_text(blocks, fmt)
    if table == "ranks":
        return ranks_text(blocks, fmt)
    if fmt == "csv":
        return _csv(blocks, threshold, labels)
    note = protocol_note(threshold, table, spread) if explain else PROTOCOL_NOTES[threshold]
    writer = {"md": _markdown, "latex": _latex, "html": html_table}[fmt]
    return "\n".join(writer(*grid(title, stats, labels, spread), note=block_note(stats, df, note))
                     for title, stats in blocks)


def block_note(stats: list[ColumnStats], df: pd.DataFrame, note: str) -> str:
    """The table note plus why some columns have no marks, and (official protocol) empty predictions."""
    untested: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for s in stats:
        if s.marks.note:
            untested.setdefault((s.marks.note, s.marks.untested), []).append(s.column.title)
    extra = [f"Not tested against the best ({why}), so never marked: {', '.join(methods)} in {', '.join(cols)}."
             for (why, methods), cols in untested.items()]
    family: dict[str, list[str]] = {}
    for s in stats:
        if s.marks.family_note:
            family.setdefault(s.marks.family_note, []).append(s.column.title)
    extra += [f"No mark can be significant in {', '.join(cols)}: {why}." for why, cols in family.items()]
    pairs = {s.column.pair for s in stats}
    empty = df[df["pair"].isin(pairs)].drop_duplicates("run").groupby("label")["empty_predictions"].sum()
    if (empty > 0).any():
        extra.append("Empty predictions (left out of ASSD, counted 0 elsewhere): "
                     + ", ".join(f"{lab} {int(n)}" for lab, n in empty.items() if n > 0) + ".")
    return " ".join([note, *extra])


def cell_text(s: ColumnStats, label: str, spread: str) -> str:
    summary = s.summaries.get(label)
    if summary is None or np.isnan(summary.mean):
        return "n/a"
    if spread == "std":
        std = s.seed_std[label]
        return f"{summary.mean:.4f}" if np.isnan(std) else f"{summary.mean:.4f} ± {std:.4f}"
    if np.isnan(summary.ci_low):
        return f"{summary.mean:.3f}"
    return f"{summary.mean:.3f} [{summary.ci_low:.3f}, {summary.ci_high:.3f}]"


def grid(title: str, stats: list[ColumnStats], labels: list[str], spread: str
         ) -> tuple[str, list[str], list[str], list[list[str]], list[list[str]]]:
    """(title, header, row labels, cell texts, marks) of one block; rows without any run are left out."""
    present = [lab for lab in labels if any(lab in s.summaries for s in stats)]
    texts = [[cell_text(s, lab, spread) for s in stats] for lab in present]
    marks = [[s.marks.marks.get(lab, "") for s in stats] for lab in present]
    row_names = [f"{lab} ({_seed_text(stats, lab)})" for lab in present]
    return title, [s.column.title for s in stats], row_names, texts, marks


def _seed_text(stats: list[ColumnStats], label: str) -> str:
    counts = [s.seeds[label] for s in stats if label in s.seeds]
    low, high = min(counts), max(counts)
    return f"{high} seed{'s' if high > 1 else ''}" if low == high else f"{low}-{high} seeds"


def _csv(blocks: list[tuple[str, list[ColumnStats]]], threshold: str, labels: list[str]) -> str:
    rows = []
    for _, stats in blocks:
        for s in stats:
            for lab in labels:
                if lab not in s.summaries:
                    continue
                summary = s.summaries[lab]
                rows.append({"threshold": threshold, "pair": s.column.pair, "method": lab,
                             "metric": s.column.metric, "mean": summary.mean, "ci_low": summary.ci_low,
                             "ci_high": summary.ci_high, "subjects": summary.n, "seeds": s.seeds[lab],
                             "std_over_seeds": s.seed_std[lab], "mark": s.marks.marks.get(lab, ""),
                             "upper_bound": threshold in ("oracle_test", OFFICIAL_KEY)})
    return pd.DataFrame(rows).drop_duplicates().to_csv(index=False)


def _marked(text: str, mark: str, bold: str, dagger: str) -> str:
    if mark == st.BEST:
        return bold.format(text)
    return text + dagger if mark == st.NOT_WORSE else text


def _markdown(title: str, header: list[str], labels: list[str], texts: list[list[str]],
              marks: list[list[str]], *, note: str) -> str:
    lines = [f"**{title}**", "", "| Method | " + " | ".join(header) + " |",
             "|---|" + "---:|" * len(header)]
    for label, row, flags in zip(labels, texts, marks):
        cells = [_marked(t, m, "**{}**", " †") for t, m in zip(row, flags)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", f"_{note}_", ""])


def _tex(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                 ("±", r"$\pm$"), ("—", "---"), ("†", r"$^{\dagger}$")):
        text = text.replace(a, b)
    return text


def _latex(title: str, header: list[str], labels: list[str], texts: list[list[str]],
           marks: list[list[str]], *, note: str) -> str:
    """A booktabs table (``\\usepackage{booktabs}``), CI in small type, ready to paste."""
    def cell(text: str, mark: str) -> str:
        mean, _, ci = text.partition(" [")
        body = _tex(mean) + (rf" {{\scriptsize [{_tex(ci)}}}" if ci else "")
        return _marked(body, mark, r"\textbf{{{}}}", r"$^{\dagger}$")

    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex(title)}}}",
             r"\begin{tabular}{l" + "r" * len(header) + "}", r"\toprule",
             "Method & " + " & ".join(_tex(h) for h in header) + r" \\", r"\midrule"]
    for label, row, flags in zip(labels, texts, marks):
        lines.append(_tex(label) + " & " + " & ".join(cell(t, m) for t, m in zip(row, flags)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\par\footnotesize {_tex(note)}", r"\end{table}", ""]
    return "\n".join(lines)


def html_table(title: str, header: list[str], labels: list[str], texts: list[list[str]],
               marks: list[list[str]], *, note: str) -> str:
    """One block as plain HTML (no script); cells carry ``data-mark`` for styling and for tests."""
    def cell(text: str, mark: str) -> str:
        mean, _, ci = text.partition(" [")
        body = _marked(html.escape(mean), mark, "<b>{}</b>", "<sup>†</sup>")
        return f'<td data-mark="{mark}">{body}' + (f'<br><span class="ci">[{html.escape(ci)}</span>' if ci else "") + "</td>"

    out = [f"<h3>{html.escape(title)}</h3>", "<table>", "<thead><tr><th>Method</th>"
           + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead>", "<tbody>"]
    for label, row, flags in zip(labels, texts, marks):
        out.append(f"<tr><th>{html.escape(label)}</th>" + "".join(cell(t, m) for t, m in zip(row, flags)) + "</tr>")
    out += ["</tbody>", "</table>", f'<p class="note">{html.escape(note)}</p>', ""]
    return "\n".join(out)


# -- the tests and the rank stability as tables ----------------------------------------------------

def _fmt(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or np.isnan(value) else f"{value:.{digits}f}"


def _p(value: float) -> str:
    if np.isnan(value):
        return "—"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def tests_frame(stats: ColumnStats) -> pd.DataFrame:
    """The pairwise tests of one column, ready to print."""
    t = stats.tests
    return pd.DataFrame({
        "A": t["a"], "B": t["b"], "paired subjects": t["n"],
        "median A-B [95% CI]": [f"{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}]"
                                for m, lo, hi in zip(t["median_diff"], t["diff_ci_low"], t["diff_ci_high"])],
        "Wilcoxon p": [_p(p) for p in t["p"]], "Holm p": [_p(p) for p in t["p_holm"]],
        "significant": ["—" if np.isnan(p) else ("yes" if s else "no") for p, s in zip(t["p_holm"], t["significant"])],
        "note": t["note"],
    })


def friedman_text(stats: ColumnStats) -> str:
    f = st.friedman(stats.with_values)
    if f.note and np.isnan(f.p):
        return f"Friedman test ({f.k} methods): not run, {f.note}."
    return (f"Friedman test ({f.k} methods, {f.n} subjects with every method): chi2 = {f.statistic:.3f}, "
            f"p = {_p(f.p)}" + (f" ({f.note})" if f.note else "") + ".")


def tests_text(blocks: list[tuple[str, list[ColumnStats]]], fmt: str) -> str:
    tables = [(f"{title}: {s.column.title}", tests_frame(s), friedman_text(s)) for title, stats in blocks for s in stats]
    return frames_text(tables, fmt)


def rank_shares(stats: ColumnStats) -> pd.DataFrame | None:
    """``statistics.rank_stability`` of one column (methods with a value only); None if too few subjects."""
    return st.rank_stability(stats.with_values, stats.column.higher_is_better)


def ranks_display(stats: ColumnStats, shares: pd.DataFrame | None) -> tuple[pd.DataFrame | None, str]:
    """``rank_shares(stats)`` ready to print (shares with two decimals) and its note."""
    if shares is None:
        n = len(st.complete(stats.table))
        return None, f"Rank stability not computed: {st.TOO_FEW.format(n=n, k=st.MIN_SUBJECTS)}."
    out = shares.sort_values("rank")
    out.columns = ["rank on all subjects", *(f"rank {r}" for r in out.columns[1:])]
    shown = out.apply(lambda col: col.map(lambda v: f"{v:.2f}" if isinstance(v, float) else str(v)))
    note = (f"Share of {st.N_BOOTSTRAP} bootstrap resamples of the {len(st.complete(stats.table))} subjects "
            f"with every method in which a method took each rank ({stats.column.title}, rank 1 = best).")
    return shown.reset_index(names="Method"), note


def ranks_text(blocks: list[tuple[str, list[ColumnStats]]], fmt: str) -> str:
    tables = [(f"{title}: rank stability of {stats[0].column.title}",  # Dice
               *ranks_display(stats[0], rank_shares(stats[0])))
              for title, stats in blocks]
    return frames_text(tables, fmt)


def frames_text(tables: list[tuple[str, pd.DataFrame | None, str]], fmt: str) -> str:
    """Several titled tables in one output; CSV gets one table with a ``table`` column (notes dropped)."""
    if fmt == "csv":
        frames = [frame.assign(table=title) for title, frame, _ in tables if frame is not None]
        return pd.concat(frames, ignore_index=True).to_csv(index=False) if frames else ""
    return "\n".join(frame_text(title, frame, fmt, note) for title, frame, note in tables)


def frame_text(title: str, frame: pd.DataFrame | None, fmt: str, note: str) -> str:
    """One titled table with its note as Markdown, LaTeX (booktabs) or HTML."""
    if frame is None:
        body = ""
    elif fmt == "latex":
        header = " & ".join(_tex(str(c)) for c in frame.columns)
        rows = [" & ".join(_tex(str(v)) for v in r) + r" \\" for r in frame.itertuples(index=False)]
        body = "\n".join([r"\begin{tabular}{" + "l" * len(frame.columns) + "}", r"\toprule", header + r" \\",
                          r"\midrule", *rows, r"\bottomrule", r"\end{tabular}"])
    elif fmt == "html":
        body = frame.to_html(index=False, escape=True, na_rep="")
    else:
        body = "\n".join(["| " + " | ".join(map(str, frame.columns)) + " |",
                          "|" + "---|" * len(frame.columns),
                          *("| " + " | ".join(map(str, r)) + " |" for r in frame.itertuples(index=False))])
    if fmt == "latex":
        return "\n".join([rf"\paragraph{{{_tex(title)}}}", body, rf"\par\footnotesize {_tex(note)}", ""])
    if fmt == "html":
        return f"<h4>{html.escape(title)}</h4>\n{body}\n<p class=\"note\">{html.escape(note)}</p>\n"
    return "\n".join([f"**{title}**", "", body, "", f"_{note}_", ""])
