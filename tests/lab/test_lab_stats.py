"""Report statistics against scipy's functions (and hand computations) on the same data.

Small samples are the common case: n = 1, 2, 3, 5, constant and all-zero differences,
0/1 metrics and continuous scores in [0, 1].
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sp

from promptlab.lab import stats
from promptlab.lab.stats import intervals
from promptlab.lab.stats.paired import MONTE_CARLO_RESAMPLES


def as_cases(values: list[float]) -> dict[str, float]:
    return {f"c{i:02d}": v for i, v in enumerate(values)}


def scipy_sign_flip(d: list[float]) -> float:
    n = len(d)
    return float(
        sp.permutation_test(
            (np.asarray(d),),
            np.mean,
            permutation_type="samples",
            n_resamples=2**n,
            alternative="two-sided",
        ).pvalue
    )


# ---- paired tests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b",
    [
        ([1.0, 1.0], [0.0, 0.0]),  # n = 2, one variant always wins
        ([1.0, 1.0, 1.0], [0.0, 0.0, 0.0]),  # n = 3
        ([0.9, 0.8, 0.7], [0.5, 0.6, 0.6]),  # n = 3, continuous
        ([0.9, 0.3, 0.75, 0.6, 0.95], [0.5, 0.35, 0.5, 0.65, 0.4]),  # n = 5
        ([1, 0, 1, 1, 0, 1, 1, 1], [0, 0, 0, 1, 1, 0, 0, 0]),  # a 0/1 metric, ties and zeros
        ([0.6, 0.8, 0.9, 0.7, 0.5], [0.5, 0.7, 0.8, 0.6, 0.4]),  # every difference 0.1
    ],
)
def test_small_samples_use_the_exact_sign_flip_test_as_scipy_computes_it(
    a: list[float], b: list[float]
) -> None:
    d = [x - y for x, y in zip(a, b, strict=True)]
    result = stats.paired(as_cases(a), as_cases(b))
    assert result.test == "sign-flip (exact)"
    assert result.p == pytest.approx(scipy_sign_flip(d))
    assert result.permutation_p == result.p
    assert result.p_min == pytest.approx(2 / 2 ** len(d))
    assert result.p >= result.p_min > 0
    w = sp.wilcoxon(d, zero_method="wilcox").pvalue if any(d) else 1.0  # exact: n <= 10
    assert result.wilcoxon_p == pytest.approx(w)
    if np.ptp(d) > 1e-12:
        assert result.t_p == pytest.approx(sp.ttest_rel(a, b).pvalue)
    else:
        assert result.t_p is None  # undefined for constant differences, never 0


def test_two_cases_where_one_variant_always_wins_are_not_significant() -> None:
    result = stats.paired({"x": 1.0, "y": 1.0}, {"x": 0.0, "y": 0.0})
    assert result.p == pytest.approx(0.5)  # 2 of the 4 flips are as extreme
    assert not result.p < 0.05
    three = stats.paired(as_cases([1.0] * 3), as_cases([0.0] * 3))
    assert three.p == pytest.approx(0.25)
    # Even asking for the t-test cannot make constant differences certain.
    forced = stats.paired({"x": 1.0, "y": 1.0}, {"x": 0.0, "y": 0.0}, test="t")
    assert forced.test == "sign-flip (exact)" and forced.p == pytest.approx(0.5)


def test_all_zero_differences_give_p_one_and_one_case_p_one() -> None:
    same = stats.paired(as_cases([0.5, 0.7, 0.2]), as_cases([0.5, 0.7, 0.2]))
    assert same.p == 1.0 and same.wilcoxon_p == 1.0 and same.t_p is None
    assert same.mean_diff == 0.0 and same.sd_diff == 0.0
    one = stats.paired({"a": 1.0}, {"a": 0.0})
    assert one.n == 1 and one.p == 1.0 and one.t_p is None and one.wilcoxon_p is None
    assert stats.paired({"a": 1.0}, {"b": 0.0}).test is None  # nothing in common


def test_pairs_on_common_cases_only() -> None:
    a = {"x": 0.9, "y": 0.8, "z": 0.7, "only_a": 0.0}
    b = {"x": 0.5, "y": 0.6, "z": 0.6, "only_b": 1.0}
    result = stats.paired(a, b)
    assert result.n == 3 and result.mean_diff == pytest.approx((0.4 + 0.2 + 0.1) / 3)
    assert result.p == pytest.approx(scipy_sign_flip([0.4, 0.2, 0.1])) == pytest.approx(0.25)


def test_large_samples_use_the_t_test_and_monte_carlo_beyond_twenty() -> None:
    rng = np.random.default_rng(3)
    a = rng.uniform(0.3, 1.0, 40)
    b = np.clip(a - rng.normal(0.05, 0.1, 40), 0, 1)
    result = stats.paired(as_cases(list(a)), as_cases(list(b)))
    assert result.test == "paired t" and result.p_min is None
    assert result.p == pytest.approx(sp.ttest_rel(a, b).pvalue)

    forced = stats.paired(as_cases(list(a)), as_cases(list(b)), test="permutation", seed=5)
    assert forced.test == "sign-flip (Monte Carlo)"
    expected = sp.permutation_test(
        (a - b,),
        np.mean,
        permutation_type="samples",
        n_resamples=MONTE_CARLO_RESAMPLES,
        rng=np.random.default_rng(5),
    ).pvalue
    assert forced.p == pytest.approx(expected)
    assert forced.p_min == pytest.approx(2 / 10_000)
    again = stats.paired(as_cases(list(a)), as_cases(list(b)), test="permutation", seed=5)
    assert again.p == forced.p  # seeded: a report is a function of its trials

    # Constant differences at any n: the exact floor is what the test can say.
    constant = stats.paired(as_cases([0.6] * 12), as_cases([0.5] * 12))
    assert constant.test == "sign-flip (exact)" and constant.p == pytest.approx(2 / 2**12)


def test_wilcoxon_when_asked_for() -> None:
    a, b = [0.9, 0.3, 0.75, 0.6, 0.95, 0.2], [0.5, 0.35, 0.5, 0.65, 0.4, 0.3]
    result = stats.paired(as_cases(a), as_cases(b), test="wilcoxon")
    assert result.test == "wilcoxon"
    d = [x - y for x, y in zip(a, b, strict=True)]
    ranks = {i: r + 1 for r, i in enumerate(sorted(range(6), key=lambda i: abs(d[i])))}
    w = sum(ranks[i] for i in range(6) if d[i] > 0)
    sums = [
        sum(r * s for r, s in zip(range(1, 7), signs, strict=True))
        for signs in itertools.product((0, 1), repeat=6)
    ]
    p = 2 * min(sum(s <= w for s in sums), sum(s >= w for s in sums)) / 64
    assert result.p == pytest.approx(min(1.0, p))
    # Ties beyond 10 cases: scipy's exact (permutation) version would take seconds, so
    # the normal approximation is reported beside the test, and below 30 cases the exact
    # sign-flip test answers for a Wilcoxon that is not exact.
    a12, b12 = [1.0] * 9 + [0.0] * 3, [0.0] * 12
    tied = stats.paired(as_cases(a12), as_cases(b12), test="wilcoxon")
    d12 = [x - y for x, y in zip(a12, b12, strict=True)]
    assert tied.wilcoxon_p == pytest.approx(
        sp.wilcoxon(d12, zero_method="wilcox", method="approx").pvalue
    )
    assert tied.test == "sign-flip (exact)" and tied.p == pytest.approx(scipy_sign_flip(d12))
    three = stats.paired(as_cases([1.0] * 3), as_cases([0.0] * 3), test="wilcoxon")
    assert three.test == "wilcoxon" and three.p == pytest.approx(0.25)  # exact at n = 3


def test_holm_multiplies_by_rank_and_keeps_order() -> None:
    # sorted: 0.01 (x3 = 0.03), 0.02 (x2 = 0.04), 0.04 (x1 = 0.04); input order kept.
    assert stats.holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    # monotone: 0.03*2 = 0.06 would fall below an earlier 0.09.
    assert stats.holm([0.03, 0.03, 0.9]) == pytest.approx([0.09, 0.09, 0.9])
    assert stats.holm([None, 0.5]) == [None, 0.5]


# ---- intervals ------------------------------------------------------------------------


@pytest.mark.parametrize("k, n", [(3, 3), (0, 2), (1, 2), (4, 5), (0, 1), (7, 20)])
def test_a_0_1_metric_gets_scipys_wilson_interval(k: int, n: int) -> None:
    got = stats.mean_interval([1.0] * k + [0.0] * (n - k))
    ci = sp.binomtest(k, n).proportion_ci(0.95, method="wilson")
    assert got is not None and got.method == "wilson"
    assert got.mean == pytest.approx(k / n)
    assert got.bounds == pytest.approx((ci.low, ci.high))
    assert 0.0 <= got.low < got.high <= 1.0  # three out of three is not [1, 1]


def test_fractional_wilson_matches_scipy_at_whole_counts_and_moves_smoothly() -> None:
    for k, n in [(2, 5), (9, 10)]:
        z = sp.norm.ppf(0.975)
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        ci = sp.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert (centre - half, centre + half) == pytest.approx((ci.low, ci.high))
        assert stats.wilson(k + 1e-9, n) == pytest.approx((ci.low, ci.high), abs=1e-6)


@pytest.mark.parametrize(
    "values",
    [
        [0.9, 0.2],
        [0.2, 0.4, 0.9],
        [0.2, 0.4, 0.9, 0.5, 0.65],
        [0.8, 0.8, 0.8],
        [0.3, 0.5, 0.55, 0.6, 0.62, 0.7, 0.71, 0.75, 0.8, 0.85, 0.9, 0.95],
    ],
)
def test_small_or_constant_score_samples_get_a_wilson_interval_of_honest_width(
    values: list[float],
) -> None:
    got = stats.mean_interval(values)
    assert got is not None and got.method == "wilson (scores)"
    n, mean = len(values), sum(values) / len(values)
    z = sp.norm.ppf(0.975)
    centre = (mean + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(mean * (1 - mean) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert got.bounds == pytest.approx((centre - half, centre + half))
    assert 0.0 <= got.low < mean < got.high <= 1.0
    assert got.high - got.low > 0.2 * math.sqrt(5 / n)  # honest, even with no spread at all


def test_mean_interval_of_two_values_stays_in_bounds() -> None:
    got = stats.mean_interval([0.9, 0.2])  # Student t said [-3.90, 5.00]
    assert got is not None and 0.0 <= got.low and got.high <= 1.0


def test_larger_score_samples_get_scipys_seeded_bca_bootstrap_at_an_expanded_level() -> None:
    values = list(np.random.default_rng(1).beta(5, 2, 24))
    got = stats.mean_interval(values)
    n = len(values)
    level = 2 * sp.norm.cdf(math.sqrt(n / (n - 1)) * sp.t.ppf(0.975, n - 1)) - 1
    assert intervals.expanded_confidence(n) == pytest.approx(level) and 0.95 < level < 0.97
    ci = sp.bootstrap(
        (np.asarray(values),),
        np.mean,
        confidence_level=level,
        n_resamples=intervals.BOOTSTRAP_RESAMPLES,
        method="BCa",
        rng=np.random.default_rng(0),
    ).confidence_interval
    assert got is not None and got.method == "bootstrap BCa (expanded)"
    assert got.bounds == pytest.approx((ci.low, ci.high))
    assert min(values) <= got.low < got.high <= max(values)
    assert stats.mean_interval(values) == got  # seeded


def test_constant_larger_sample_and_other_bounds() -> None:
    flat = stats.mean_interval([0.8] * 25)
    assert flat is not None and flat.method == "wilson (scores)" and flat.high - flat.low > 0.1
    scaled = stats.mean_interval([2.0, 4.0, 6.0], bounds=(0.0, 10.0))
    unit = stats.mean_interval([0.2, 0.4, 0.6])
    assert scaled is not None and unit is not None
    assert scaled.bounds == pytest.approx((unit.low * 10, unit.high * 10))
    with pytest.raises(ValueError, match="within"):
        stats.mean_interval([1.2, 0.5])
    assert stats.mean_interval([]) is None


# ---- power ----------------------------------------------------------------------------


def test_power_is_the_noncentral_t_power_and_detectable_difference_inverts_it() -> None:
    sd, n, alpha = 0.2, 12, 0.05
    d = stats.detectable_difference(sd, n, alpha)
    assert d is not None
    crit = sp.t.ppf(1 - alpha / 2, n - 1)
    nc = d * math.sqrt(n) / sd
    assert sp.nct.sf(crit, n - 1, nc) + sp.nct.cdf(-crit, n - 1, nc) == pytest.approx(0.8)
    # the textbook normal approximation is close
    assert d == pytest.approx((sp.norm.ppf(0.975) + sp.norm.ppf(0.8)) * sd / math.sqrt(n), rel=0.15)


def test_small_n_power_is_the_exact_sign_flip_tests() -> None:
    # With 6 cases at alpha 0.05 the exact test rejects only when all six differences
    # share a sign (p = 2/64; the next possible p is 4/64): power = P(all > 0) + P(all < 0).
    for difference, sd in ((0.3, 0.2), (0.1, 0.2)):
        q = sp.norm.cdf(difference / sd)
        assert stats.power(difference, sd, 6, 0.05) == pytest.approx(q**6 + (1 - q) ** 6, abs=0.03)
    # The t-test's power for the same data is well above it: the coarse p-values cost power.
    t_power = sp.nct.sf(sp.t.ppf(0.975, 5), 5, 0.3 * math.sqrt(6) / 0.2)
    assert stats.power(0.3, 0.2, 6, 0.05) < t_power - 0.1
    assert stats.cases_needed(0.3, 0.2, 0.05) == 7  # not the 6 the t-test would plan


def test_no_difference_is_detectable_below_the_exact_tests_floor() -> None:
    assert stats.min_cases(0.05) == 6  # 2 / 2**5 = 0.0625 >= 0.05; 2 / 2**6 < 0.05
    assert stats.detectable_difference(0.2, 5, 0.05) is None
    assert stats.detectable_difference(0.0, 20, 0.05) is None  # no spread to scale by


def test_cases_needed_is_the_first_n_reaching_the_power() -> None:
    n = stats.cases_needed(0.05, 0.2, 0.05)
    assert stats.power(0.05, 0.2, n, 0.05) >= 0.8 > stats.power(0.05, 0.2, n - 1, 0.05)
    assert stats.cases_needed(5.0, 0.01, 0.05) == 6  # a huge effect still needs the floor
    with pytest.raises(ValueError):
        stats.cases_needed(0.0, 0.2, 0.05)


def test_percentile_and_std() -> None:
    assert stats.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert stats.percentile([10.0, 20.0], 95) == pytest.approx(19.5)
    assert stats.percentile([], 50) is None
    assert stats.sample_std([1.0]) is None


def test_power_stays_a_probability_where_the_noncentral_t_gives_nan() -> None:
    from promptlab.lab.stats.power import detectable_difference, power

    # A spread this small sends scipy's noncentral t far into its tail (NaN there).
    assert power(0.0786, 1e-9, 40, 0.05) == 1.0
    found = detectable_difference(1e-6, 40, 0.05)
    assert found is not None and 0 < found < 1e-5
