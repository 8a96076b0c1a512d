"""Leaderboard statistics on inputs small enough to check by hand: seed averaging, Wilcoxon + Holm, the
median difference, Friedman, rank stability, the significance marks, ties and too few subjects."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from uasbench.report import statistics as st


def _exact_wilcoxon_p(diff: list[float]) -> float:
    """Two-sided exact p-value by enumerating all 2^n sign patterns of the ranks (no ties, no zeros)."""
    ranks = np.argsort(np.argsort(np.abs(diff))) + 1
    w_plus = ranks[np.asarray(diff) > 0].sum()
    observed = min(w_plus, ranks.sum() - w_plus)
    sums = [sum(c) for k in range(len(ranks) + 1) for c in itertools.combinations(ranks, k)]
    return min(1.0, 2 * sum(s <= observed for s in sums) / 2 ** len(ranks))


def test_subject_table_averages_each_subject_over_its_seeds() -> None:
    table = st.subject_table([("a", ["s1", "s2"], [1.0, 3.0]), ("a", ["s2", "s3"], [5.0, 7.0]),
                              ("b", ["s1"], [np.nan]), ("b", ["s1", "s3"], [2.0, 4.0])])
    assert list(table.columns) == ["a", "b"]
    assert table.loc["s2", "a"] == 4.0 and table.loc["s1", "a"] == 1.0 and table.loc["s3", "a"] == 7.0
    assert table.loc["s1", "b"] == 2.0 and np.isnan(table.loc["s2", "b"])  # NaN seeds skipped, absent stays NaN
    assert st.complete(table).index.tolist() == ["s1", "s3"]


def test_pairwise_wilcoxon_holm_and_median_difference_by_hand() -> None:
    base = np.arange(8) / 10
    mixed = np.array([1, -2, 3, -4, 5, -6, 7, -8]) / 100  # C - B: signed ranks 1..8
    table = pd.DataFrame({"A": base + 0.3 + np.arange(8) / 1000, "B": base, "C": base + mixed})
    tests = st.pairwise_tests(table, n_bootstrap=200).set_index(["a", "b"])
    p_bc = _exact_wilcoxon_p(list(-mixed))
    assert tests.loc[("A", "B"), "p"] == pytest.approx(2 / 256)  # all 8 differences positive
    assert tests.loc[("B", "C"), "p"] == pytest.approx(p_bc)
    # Holm over the three pairs: sorted p (2/256, 2/256, p_bc) times (3, 2, 1), then running maximum
    assert tests.loc[("A", "B"), "p_holm"] == pytest.approx(6 / 256)
    assert tests.loc[("A", "C"), "p_holm"] == pytest.approx(6 / 256)
    assert tests.loc[("B", "C"), "p_holm"] == pytest.approx(max(6 / 256, p_bc))
    assert tests.loc[("A", "B"), "significant"] and not tests.loc[("B", "C"), "significant"]
    assert tests.loc[("A", "B"), "median_diff"] == pytest.approx(0.3035)  # median of 0.3 + i/1000
    assert tests.loc[("A", "B"), "diff_ci_low"] <= 0.3035 <= tests.loc[("A", "B"), "diff_ci_high"]
    assert tests.loc[("B", "C"), "median_diff"] == pytest.approx(np.median(-mixed))


def test_constant_difference_has_a_point_ci_and_identical_methods_p_one() -> None:
    x = np.linspace(0, 1, 7)
    table = pd.DataFrame({"a": x + 0.5, "b": x, "c": x})
    tests = st.pairwise_tests(table, n_bootstrap=100).set_index(["a", "b"])
    assert tests.loc[("a", "b"), ["median_diff", "diff_ci_low", "diff_ci_high"]].tolist() == pytest.approx([0.5] * 3)
    assert tests.loc[("b", "c"), "p"] == 1.0 and "identical" in tests.loc[("b", "c"), "note"]
    assert not tests.loc[("b", "c"), "significant"]


def test_ties_and_zero_differences_go_to_scipy() -> None:
    from scipy.stats import wilcoxon

    a = np.array([0.5, 0.5, 0.6, 0.6, 0.4, 0.7, 0.7, 0.7])
    b = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])  # two zeros, tied |differences|
    tests = st.pairwise_tests(pd.DataFrame({"a": a, "b": b}), n_bootstrap=50)
    assert tests["p"].iloc[0] == pytest.approx(wilcoxon(a, b).pvalue)
    assert 0 < tests["p"].iloc[0] < 1 and tests["n"].iloc[0] == 8


def test_too_few_paired_subjects_gives_no_p_value() -> None:
    table = pd.DataFrame({"a": [0.1, 0.2, 0.3, 0.4, 0.5, np.nan], "b": [0.0, 0.1, 0.1, 0.2, 0.1, 0.3]})
    tests = st.pairwise_tests(table, n_bootstrap=50)
    assert tests["n"].iloc[0] == 5 and np.isnan(tests["p"].iloc[0]) and np.isnan(tests["p_holm"].iloc[0])
    assert tests["note"].iloc[0] == "too few paired subjects (5 < 6) for a test"
    marks = st.column_marks(table, higher_is_better=True, tests=tests)
    assert marks.marks == {"a": st.BEST, "b": ""} and "too few" in marks.note and marks.untested == ("b",)
    assert st.rank_stability(table, True) is None
    assert "too few" in st.friedman(table.assign(c=table["b"])).note


def test_friedman_by_hand() -> None:
    n = 6
    table = pd.DataFrame({"a": np.arange(n) + 0.0, "b": np.arange(n) + 0.5, "c": np.arange(n) + 0.7})
    result = st.friedman(table)
    # same ranking on every subject: rank sums 6, 12, 18 -> chi2 = 12/(6*3*4) * 504 - 3*6*4 = 12
    assert result.statistic == pytest.approx(12.0) and result.p == pytest.approx(math.exp(-6.0))
    assert "three or more" in st.friedman(table[["a", "b"]]).note
    same = st.friedman(pd.DataFrame({"a": np.ones(n), "b": np.ones(n), "c": np.ones(n)}))
    assert same.p == 1.0 and "identical" in same.note


def test_rank_stability_counts_ranks_and_shares_ties() -> None:
    x = np.linspace(0, 1, 8)
    table = pd.DataFrame({"low": x, "high": x + 1.0, "twin": x + 1.0})
    shares = st.rank_stability(table, higher_is_better=True, n_bootstrap=100)
    assert shares.loc["high", 1] == 1.0 and shares.loc["twin", 1] == 1.0  # ties share the better rank
    assert shares.loc["low", 3] == 1.0 and shares["rank"].to_dict() == {"low": 3, "high": 1, "twin": 1}
    lower = st.rank_stability(table, higher_is_better=False, n_bootstrap=100)  # e.g. ASSD
    assert lower.loc["low", 1] == 1.0
    noisy = pd.DataFrame({"a": [1, 0, 1, 0, 1, 0, 1, 0.0], "b": [0, 1, 0, 1, 0, 1, 0, 1.0]})
    shares = st.rank_stability(noisy, True, n_bootstrap=400)
    assert 0.2 < shares.loc["a", 1] < 0.8 and shares[[1, 2]].sum(axis=1).tolist() == [1.0, 1.0]


def test_marks_best_not_worse_and_worse() -> None:
    rng = np.random.default_rng(0)
    x = rng.random(10)
    table = pd.DataFrame({"best": x + 0.5, "close": x + 0.5 + rng.normal(0, 0.05, 10) - 0.01, "bad": x})
    marks = st.column_marks(table, higher_is_better=True)
    assert marks.marks == {"best": st.BEST, "close": st.NOT_WORSE, "bad": ""} and marks.note == ""
    flipped = st.column_marks(-table, higher_is_better=False)  # e.g. ASSD: lowest is best
    assert flipped.marks == marks.marks
    twins = st.column_marks(pd.DataFrame({"a": x, "b": x}), higher_is_better=True)
    assert twins.marks == {"a": st.BEST, "b": st.BEST}
    alone = st.column_marks(pd.DataFrame({"a": x}), higher_is_better=True)
    assert alone.marks == {"a": ""}  # nothing to beat


def test_zero_differences_follow_pratts_rule() -> None:
    from scipy.stats import wilcoxon

    b = np.full(10, 0.5)
    a = b + np.array([0, 0, 0.1, 0.2, -0.3, 0.4, 0.5, 0.6, 0.7, 0.8])  # two zero differences
    p = st.pairwise_tests(pd.DataFrame({"a": a, "b": b}), n_bootstrap=50)["p"].iloc[0]
    assert p == pytest.approx(wilcoxon(a, b, zero_method="pratt").pvalue)
    assert p != pytest.approx(wilcoxon(a, b).pvalue)  # the choice matters on this input


@pytest.mark.parametrize(("pairs", "need"), [(1, 6), (3, 7), (6, 8), (10, 9), (45, 11)])
def test_min_subjects_for_a_holm_family(pairs: int, need: int) -> None:
    assert st.min_subjects(pairs) == need
    assert pairs * 2 / 2**need < st.ALPHA <= pairs * 2 / 2 ** (need - 1) or need == st.MIN_SUBJECTS


def test_family_note_when_no_pair_can_be_significant() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(6)
    table = pd.DataFrame({"a": base + 0.5, "b": base + 0.2, "c": base})  # 3 pairs, 6 subjects: 7 needed
    marks = st.column_marks(table, higher_is_better=True)
    assert "with Holm over 3 pairs a test needs at least 7 paired subjects" in marks.family_note
    assert marks.marks == {"a": st.BEST, "b": st.NOT_WORSE, "c": st.NOT_WORSE}
    more = pd.DataFrame({"a": np.r_[base, base] + 0.5, "b": np.r_[base, base] + 0.2, "c": np.r_[base, base]})
    assert st.column_marks(more, higher_is_better=True).family_note == ""


def test_median_summary_is_not_dominated_by_one_penalty() -> None:
    assd = np.r_[np.linspace(2.0, 6.0, 10), 181.0, np.nan]  # one empty prediction: diagonal penalty
    robust = st.median_summary(assd, n_bootstrap=200)
    assert robust.median == np.median(np.r_[np.linspace(2.0, 6.0, 10), 6.5]) and robust.n == 11
    assert robust.ci_low <= robust.median <= robust.ci_high < np.nanmean(assd)
