"""Leaderboards from finished run directories: the paper's Table 1 (methods x metrics) and Table 2
(methods x modality pairs), with per-subject statistics, the threshold protocol named in a note.

A cell is the mean over test subjects (each subject averaged over the seeds that tested it) with its
bootstrap 95% CI, or with the std over seeds; the best mean is bold and every method that a paired,
Holm-corrected Wilcoxon test does not find worse than it is marked (``uasbench.report.statistics``).
The runs come from ``report.runs``, the statistics of each column from ``report.columns``; this module lays
them out as tables (``report.table``) that ``report.render`` writes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from uasbench.choices import FORMATS, SPREADS, TABLES, THRESHOLDS
from uasbench.errors import UasbenchError, UsageError
from uasbench.evaluation.official import KEY as OFFICIAL_KEY
from uasbench.evaluation.official import NOTE as OFFICIAL_NOTE
from uasbench.evaluation.official import PROTOCOL as OFFICIAL
from uasbench.report import render as rd
from uasbench.report import statistics as st
from uasbench.report.columns import (ColumnStats, column_stats, friedman_text, labelled, rank_shares, ranks_display,
                                     row_labels, share_input_only_runs, table_columns, tests_frame)
from uasbench.report.table import Cell, Table

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



def protocol_note(threshold: str, table: str, spread: str) -> str:
    parts = [PROTOCOL_NOTES[threshold], COMMON_NOTE]
    if threshold != OFFICIAL_KEY:
        parts.append(PROJECT_METRICS_NOTE)
    parts += [SPREAD_NOTES[spread], MARKS_NOTE]
    if table == "pairs":
        parts.append(INPUT_ONLY_NOTE)
    return " ".join(parts)



# -- tables ---------------------------------------------------------------------------------------

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
        df = share_input_only_runs(df)
    df = labelled(df)
    labels = row_labels(df)
    layout = "pairs" if table == "pairs" else "metrics"
    blocks = [(title, [column_stats(df, c, labels) for c in columns])
              for title, columns in table_columns(df, layout, threshold)]
    if table == "tests":
        return rd.text(tests_tables(blocks), fmt)
    if table == "ranks":
        return rd.text(ranks_tables(blocks), fmt)
    if fmt == "csv":
        return rd.csv(csv_table(blocks, threshold, labels))
    note = protocol_note(threshold, table, spread) if explain else PROTOCOL_NOTES[threshold]
    return "\n".join(rd.table_text(block_table(title, stats, labels, spread, block_note(stats, df, note)), fmt)
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


def cell(s: ColumnStats, label: str, spread: str) -> Cell:
    """A method's cell of one column: mean with CI (or ± std over seeds), and its mark."""
    mark = s.marks.marks.get(label, "")
    summary = s.summaries.get(label)
    if summary is None or np.isnan(summary.mean):
        return Cell("n/a", mark=mark)
    if spread == "std":
        std = s.seed_std[label]
        return Cell(f"{summary.mean:.4f}" if np.isnan(std) else f"{summary.mean:.4f} ± {std:.4f}", mark=mark)
    if np.isnan(summary.ci_low):
        return Cell(f"{summary.mean:.3f}", mark=mark)
    return Cell(f"{summary.mean:.3f}", f"[{summary.ci_low:.3f}, {summary.ci_high:.3f}]", mark)


def block_table(title: str, stats: list[ColumnStats], labels: list[str], spread: str, note: str) -> Table:
    """One block of a leaderboard: a row per method with a run in it (named with its seed count), a column per
    ``stats``."""
    present = [lab for lab in labels if any(lab in s.summaries for s in stats)]
    rows = tuple((Cell(f"{lab} ({_seed_text(stats, lab)})"), *(cell(s, lab, spread) for s in stats))
                 for lab in present)
    return Table(title, ("Method", *(s.column.title for s in stats)), rows, note, ranked=True)


def _seed_text(stats: list[ColumnStats], label: str) -> str:
    counts = [s.seeds[label] for s in stats if label in s.seeds]
    low, high = min(counts), max(counts)
    return f"{high} seed{'s' if high > 1 else ''}" if low == high else f"{low}-{high} seeds"


def csv_table(blocks: list[tuple[str, list[ColumnStats]]], threshold: str, labels: list[str]) -> Table:
    """Every cell of the blocks as one long table: a row per (pair, method, metric)."""
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
    return Table.from_frame("", pd.DataFrame(rows).drop_duplicates())


def tests_tables(blocks: list[tuple[str, list[ColumnStats]]]) -> list[Table]:
    """Every pairwise test behind the marks, a table per column, with the Friedman test as its note."""
    return [Table.from_frame(f"{title}: {s.column.title}", tests_frame(s), friedman_text(s))
            for title, stats in blocks for s in stats]


def ranks_tables(blocks: list[tuple[str, list[ColumnStats]]]) -> list[Table]:
    """The rank stability of each block's first column (Dice)."""
    return [Table.from_frame(f"{title}: rank stability of {stats[0].column.title}",
                             *ranks_display(stats[0], rank_shares(stats[0])))
            for title, stats in blocks]
