"""Which differences between methods are real: per-subject statistics for the leaderboards.

Subjects are the unit of every statistic. A method's value for a subject is that subject's metric
averaged over the seeds whose test set held it, so seeds never count as extra subjects. Then:

* per method: mean over subjects and a percentile-bootstrap 95% CI (``metrics.summarize``);
* per pair of methods: a paired Wilcoxon signed-rank test (scipy) over the subjects both have, Holm-
  corrected over all pairs of the comparison (statsmodels), and the median paired difference with its
  bootstrap 95% CI as the effect size. Zero differences (a subject on which both methods score the same,
  e.g. two empty predictions with Dice 0) follow Pratt's rule: they are ranked with the others and
  then left out of the signed-rank sum. The alternative (scipy's default, ``wilcox``) drops them before
  ranking, which treats the subjects where the methods agree as if they had not been tested and so
  overstates the evidence of the remaining ones;
* three or more methods: a Friedman test (scipy) over the subjects all of them have;
* rank stability: re-rank the methods on bootstrap resamples of the subjects and count how often each
  takes each rank (the idea behind challengeR's blob plots).

With fewer than ``MIN_SUBJECTS`` paired subjects a test (and the rank bootstrap) is not run; the result
says so instead of giving a p-value that cannot mean anything (six pairs are the fewest for which an
exact two-sided Wilcoxon test can reach p < 0.05). The family matters too: the smallest exact two-sided
Wilcoxon p-value with n subjects is 2 / 2^n, and Holm multiplies the smallest p of k pairs by k, so no
pair can be significant unless k * 2 / 2^n < alpha (``min_subjects``: 6 subjects for one pair, 7 for
three, 8 for six, 9 for ten). ``column_marks`` says so in ``Marks.family_note`` when every pair has fewer.

ASSD's mean over subjects can be dominated by one subject whose prediction is empty (the penalty is the
image diagonal); ``median_summary`` gives the median over subjects with its bootstrap CI beside it, which
one such subject cannot move far.
"""
from __future__ import annotations

import functools
import gc
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import friedmanchisquare, rankdata, wilcoxon
from statsmodels.stats.multitest import multipletests

MIN_SUBJECTS = 6
ALPHA = 0.05
N_BOOTSTRAP = 2000
BEST = "best"
NOT_WORSE = "not_worse"  # not significantly worse than the best
TOO_FEW = "too few paired subjects ({n} < {k}) for a test"
FAMILY_TOO_SMALL = ("with Holm over {k} pairs a test needs at least {need} paired subjects to reach significance "
                    "and no pair here has more than {n}")


def subject_table(records: Iterable[tuple[str, Sequence[str], Sequence[float]]]) -> pd.DataFrame:
    """Subjects x methods: ``records`` are (method, subjects, values), one per seed; a subject tested
    under several seeds gets the mean of its values (NaN values skipped)."""
    frames = [pd.DataFrame({"method": label, "subject": list(subjects), "value": np.asarray(values, float)})
              for label, subjects, values in records]
    if not frames:
        return pd.DataFrame()
    long = pd.concat(frames, ignore_index=True)
    table = long.groupby(["subject", "method"], sort=True)["value"].mean().unstack("method")
    return table[list(dict.fromkeys(long["method"]))]  # methods in the order given


def complete(table: pd.DataFrame, methods: Sequence[str] | None = None) -> pd.DataFrame:
    """The subjects with a value for every one of ``methods`` (default: all columns)."""
    cols = list(table.columns if methods is None else methods)
    return table[cols].dropna()


def _oriented(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    return values if higher_is_better else -values


def median_difference_ci(diff: np.ndarray, n_bootstrap: int = N_BOOTSTRAP, seed: int = 0) -> tuple[float, float, float]:
    """Median of paired differences and its percentile-bootstrap 95% CI (resampling subjects)."""
    if len(diff) == 0:
        return (float("nan"),) * 3
    idx = np.random.default_rng(seed).integers(0, len(diff), size=(n_bootstrap, len(diff)))
    low, high = np.percentile(np.median(diff[idx], axis=1), [2.5, 97.5])
    return float(np.median(diff)), float(low), float(high)


@functools.lru_cache(maxsize=1024)
def wilcoxon_p(x: tuple[float, ...], y: tuple[float, ...]) -> float:
    """Two-sided paired Wilcoxon signed-rank p-value (scipy chooses exact, permutation or normal).

    Cached: with ties and at most 13 pairs scipy enumerates every sign flip, about 0.2 s a test, and a
    report page asks for the same comparison several times (threshold-free columns in every table)."""
    return float(wilcoxon(x, y, zero_method="pratt").pvalue)


def min_subjects(pairs: int, alpha: float = ALPHA) -> int:
    """Fewest paired subjects with which a Holm family of ``pairs`` exact Wilcoxon tests can reach
    significance: the smallest n with ``pairs * 2 / 2**n < alpha`` (never below ``MIN_SUBJECTS``)."""
    n = MIN_SUBJECTS
    while pairs * 2.0 / 2**n >= alpha:
        n += 1
    return n


@dataclass(frozen=True)
class MedianSummary:
    """Median over subjects and its percentile-bootstrap 95% CI (resampling subjects)."""

    median: float
    ci_low: float
    ci_high: float
    n: int


def median_summary(per_subject: np.ndarray, n_bootstrap: int = N_BOOTSTRAP, seed: int = 0) -> MedianSummary:
    """Robust centre of a per-subject metric (NaN subjects left out): the variant of ASSD beside its mean."""
    vals = np.asarray(per_subject, dtype=float)
    vals = vals[~np.isnan(vals)]
    median, low, high = median_difference_ci(vals, n_bootstrap, seed)
    return MedianSummary(median, low, high, len(vals))


def pairwise_tests(table: pd.DataFrame, *, n_bootstrap: int = N_BOOTSTRAP, seed: int = 0) -> pd.DataFrame:
    """Every pair (a, b) of columns: paired subjects, median difference a - b with CI, Wilcoxon p, Holm p.

    ``p`` is NaN and ``note`` says why when there are too few paired subjects; identical values give
    p = 1 (scipy cannot rank all-zero differences). Holm runs over the pairs that have a p-value.
    """
    rows = []
    for a, b in itertools.combinations(table.columns, 2):
        pairs = complete(table, [a, b])
        diff = (pairs[a] - pairs[b]).to_numpy()
        median, low, high = median_difference_ci(diff, n_bootstrap, seed)
        row = {"a": a, "b": b, "n": len(diff), "median_diff": median, "diff_ci_low": low, "diff_ci_high": high,
               "p": float("nan"), "note": ""}
        if len(diff) < MIN_SUBJECTS:
            row["note"] = TOO_FEW.format(n=len(diff), k=MIN_SUBJECTS)
        elif not np.any(diff):
            row["p"], row["note"] = 1.0, "identical values on every subject"
        else:
            row["p"] = wilcoxon_p(tuple(pairs[a]), tuple(pairs[b]))
        rows.append(row)
    out = pd.DataFrame(rows, columns=["a", "b", "n", "median_diff", "diff_ci_low", "diff_ci_high", "p", "note"])
    out["p_holm"] = np.nan
    tested = out["p"].notna()
    if tested.any():
        out.loc[tested, "p_holm"] = holm(out.loc[tested, "p"].to_numpy())
    out["significant"] = out["p_holm"] < ALPHA
    return out


def holm(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values (statsmodels). Its Holm branch calls ``gc.collect()``, about 0.5 s in a process
    holding pandas and scipy, once per table column; freezing the existing objects for the call makes
    that collection trivial and changes nothing else."""
    gc.freeze()
    try:
        return multipletests(p, method="holm")[1]
    finally:
        gc.unfreeze()


@dataclass(frozen=True)
class Friedman:
    """Friedman test over the subjects every method has; ``p`` NaN with ``note`` when not run."""

    statistic: float
    p: float
    n: int
    k: int
    note: str = ""


def friedman(table: pd.DataFrame) -> Friedman:
    full = complete(table)
    k, n = table.shape[1], len(full)
    nan = float("nan")
    if k < 3:
        return Friedman(nan, nan, n, k, "needs three or more methods")
    if n < MIN_SUBJECTS:
        return Friedman(nan, nan, n, k, TOO_FEW.format(n=n, k=MIN_SUBJECTS))
    if np.all(full.to_numpy() == full.to_numpy()[:, :1]):
        return Friedman(0.0, 1.0, n, k, "identical values on every subject")
    result = friedmanchisquare(*(full[c].to_numpy() for c in full.columns))
    return Friedman(float(result.statistic), float(result.pvalue), n, k)


def ranks(means: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Rank 1 = best along the last axis; tied methods share the better rank."""
    values = _oriented(np.asarray(means, dtype=float), higher_is_better)
    return rankdata(-values, method="min", axis=-1).astype(int)


def rank_stability(table: pd.DataFrame, higher_is_better: bool, *, n_bootstrap: int = N_BOOTSTRAP,
                   seed: int = 0) -> pd.DataFrame | None:
    """Methods x ranks: the share of bootstrap resamples of the subjects in which a method took that rank,
    plus its rank on all subjects (column ``rank``). None when there are too few complete subjects."""
    full = complete(table)
    if len(full) < MIN_SUBJECTS or full.shape[1] < 2:
        return None
    values = full.to_numpy()
    k = values.shape[1]
    idx = np.random.default_rng(seed).integers(0, len(values), size=(n_bootstrap, len(values)))
    resampled = ranks(values[idx].mean(axis=1), higher_is_better)  # (n_bootstrap, k)
    shares = np.stack([(resampled == r).mean(axis=0) for r in range(1, k + 1)], axis=1)
    out = pd.DataFrame(shares, index=full.columns, columns=range(1, k + 1))
    out.insert(0, "rank", ranks(values.mean(axis=0), higher_is_better))
    return out


@dataclass(frozen=True)
class Marks:
    """Per method: ``BEST``, ``NOT_WORSE`` or ""; ``untested`` methods could not be tested against the
    best, ``note`` says why."""

    marks: dict[str, str]
    note: str = ""
    untested: tuple[str, ...] = ()
    family_note: str = ""  # set when no pair of the column has enough subjects for its Holm family


def column_marks(table: pd.DataFrame, higher_is_better: bool, tests: pd.DataFrame | None = None) -> Marks:
    """Bold the best mean; mark every method the Holm-corrected Wilcoxon test does not find worse than it."""
    means = table.mean(skipna=True)
    defined = means.dropna()
    marks = {m: "" for m in table.columns}
    if len(defined) < 2:
        return Marks(marks)
    oriented = _oriented(defined.to_numpy(), higher_is_better)
    best = [m for m, v in zip(defined.index, oriented) if v == oriented.max()]
    for m in best:
        marks[m] = BEST
    tests = pairwise_tests(table) if tests is None else tests
    tested = tests[tests["p"].notna()]
    family_note = ""
    if len(tested) and tested["n"].max() < min_subjects(len(tested)):
        family_note = FAMILY_TOO_SMALL.format(k=len(tested), need=min_subjects(len(tested)), n=tested["n"].max())
    notes, untested_methods = [], []
    for m in defined.index:
        if m in best:
            continue
        row = tests[((tests["a"] == m) & tests["b"].isin(best)) | ((tests["b"] == m) & tests["a"].isin(best))]
        untested = row["p_holm"].isna()
        if untested.any():
            notes.append(row.loc[untested, "note"].iloc[0])
            untested_methods.append(m)
            continue
        worse = row["significant"] & (_oriented(
            np.where(row["a"] == m, row["median_diff"], -row["median_diff"]), higher_is_better) <= 0)
        if not worse.any():
            marks[m] = NOT_WORSE
    return Marks(marks, notes[0] if notes else "", tuple(untested_methods), family_note)
