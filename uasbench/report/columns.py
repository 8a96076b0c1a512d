"""The statistics behind each column of a table: which runs a column reads, each row's summary over subjects,
spread over seeds and mark (``report.statistics``), the pairwise tests and the rank stability behind them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from uasbench.evaluation.evaluate import THRESHOLD_FREE
from uasbench.evaluation.metrics import Summary, summarize
from uasbench.evaluation.official import KEY as OFFICIAL_KEY
from uasbench.evaluation.official import PROTOCOL as OFFICIAL
from uasbench.report import statistics as st

METHOD_ORDER = ("intensity", "ae", "vae", "dae", "ddpm", "cyclic_unet", "mmccd")
PAIR_ORDER = ("fl-t2", "fl-t1", "t2-fl", "t2-t1", "t1-t2", "t1-fl")  # Table 2's column order
# (column title, metric, read at the chosen threshold?); AUROC/AUPRC are threshold-free (brain pixels).
TABLE1 = (("Dice", "dice", True), ("AUROC", "auroc", False), ("Jaccard", "jaccard", True),
          ("Precision", "precision", True), ("Recall", "recall", True), ("ASSD", "assd", True),
          ("AUPRC", "auprc", False))
# The official evaluation reports its AUROC at its own (test-tuned) threshold's mask and has no AUPRC.
TABLE1_OFFICIAL = tuple((title, metric, True) for title, metric, _ in TABLE1 if metric != "auprc")
LOWER_IS_BETTER = {"assd"}


def share_input_only_runs(df: pd.DataFrame) -> pd.DataFrame:
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


def method_sort_key(method: str) -> tuple[int, str]:
    """Built-in methods in the paper's order, then any other method alphabetically."""
    return (METHOD_ORDER.index(method), "") if method in METHOD_ORDER else (len(METHOD_ORDER), method)


def pair_sort_key(pair: str) -> tuple[int, str]:
    return (PAIR_ORDER.index(pair), "") if pair in PAIR_ORDER else (len(PAIR_ORDER), pair)


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


# -- the tests and the rank stability of one column ------------------------------------------------

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
