"""Report statistics against values computed by hand."""

from __future__ import annotations

import itertools
import math

import pytest

from promptlab.lab import stats


def test_mean_interval_is_the_student_t_interval() -> None:
    values = [0.2, 0.4, 0.9, 0.5]
    mean = 0.5
    sd = math.sqrt(((0.3**2) + (0.1**2) + (0.4**2) + 0) / 3)
    half = 3.182446305284263 * sd / 2  # t(0.975, 3)
    got = stats.mean_interval(values)
    assert got is not None
    assert got.mean == pytest.approx(mean)
    assert (got.low, got.high) == pytest.approx((mean - half, mean + half))


def test_one_value_has_a_mean_and_no_interval_none_has_neither() -> None:
    one = stats.mean_interval([0.7])
    assert one is not None and one.mean == 0.7 and one.low is None
    assert stats.mean_interval([]) is None


def test_percentile_interpolates_linearly() -> None:
    assert stats.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert stats.percentile([10.0, 20.0], 95) == pytest.approx(19.5)
    assert stats.percentile([], 50) is None


def test_holm_multiplies_by_rank_and_keeps_order() -> None:
    # sorted: 0.01 (x3 = 0.03), 0.02 (x2 = 0.04), 0.04 (x1 = 0.04); input order kept.
    assert stats.holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    # monotone: 0.03*2 = 0.06 would fall below an earlier 0.09.
    assert stats.holm([0.03, 0.03, 0.9]) == pytest.approx([0.09, 0.09, 0.9])
    assert stats.holm([None, 0.5]) == [None, 0.5]


def test_paired_tests_pair_on_common_cases_only() -> None:
    a = {"x": 0.9, "y": 0.8, "z": 0.7, "only_a": 0.0}
    b = {"x": 0.5, "y": 0.6, "z": 0.6, "only_b": 1.0}
    result = stats.paired(a, b)
    d = [0.4, 0.2, 0.1]
    mean = sum(d) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 2)
    t = mean / (sd / math.sqrt(3))
    assert result.n == 3
    assert result.mean_diff == pytest.approx(mean)
    from scipy.stats import t as t_dist

    assert result.t_p == pytest.approx(2 * t_dist.sf(t, 2))
    # Exact Wilcoxon with 3 positive differences: W+ = 6 is the most extreme of 8.
    assert result.wilcoxon_p == pytest.approx(2 / 8)


def test_identical_or_constant_differences_do_not_divide_by_zero() -> None:
    same = stats.paired({"a": 0.5, "b": 0.7}, {"a": 0.5, "b": 0.7})
    assert same.t_p == 1.0 and same.wilcoxon_p == 1.0
    shifted = stats.paired({"a": 0.6, "b": 0.8, "c": 0.9}, {"a": 0.5, "b": 0.7, "c": 0.8})
    assert shifted.t_p == 0.0
    assert stats.paired({"a": 1.0}, {"a": 0.0}).t_p is None


def test_exact_wilcoxon_matches_enumeration() -> None:
    a = {str(i): v for i, v in enumerate([0.9, 0.3, 0.75, 0.6, 0.95, 0.2])}
    b = {str(i): v for i, v in enumerate([0.5, 0.35, 0.5, 0.65, 0.4, 0.3])}
    d = [a[k] - b[k] for k in a]
    ranks = {i: r + 1 for r, i in enumerate(sorted(range(6), key=lambda i: abs(d[i])))}
    w = sum(ranks[i] for i in range(6) if d[i] > 0)
    sums = [
        sum(r * s for r, s in zip(range(1, 7), signs, strict=True))
        for signs in itertools.product((0, 1), repeat=6)
    ]
    p = 2 * min(sum(s <= w for s in sums), sum(s >= w for s in sums)) / 64
    assert stats.paired(a, b).wilcoxon_p == pytest.approx(min(1.0, p))
