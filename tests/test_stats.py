"""camcore.stats: the decision rule, tested as statistics are tested.

Known answers (Student's t interval, Hall's transformation, the geometric mean of ratios), the
verdict logic case by case, and simulations: the intervals' coverage with a known effect, and the
family-wise error rate under the null over 1,000 families of 20 comparisons.
"""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import stats as ss  # noqa: E402

from camcore import stats  # noqa: E402

FAMILY = dict(family="test", family_size=1)


def test_symmetric_differences_give_students_t_interval_at_the_bonferroni_level():
    d = np.array([-3.0, -1.0, 0.5, 2.0, -0.5, 1.0, 3.0, -2.0] * 6) + 0.4  # skewness exactly 0
    m = 7
    got = stats.decide(d, family="f", family_size=m)
    low, high = ss.t.interval(1 - 0.05 / m, len(d) - 1, loc=d.mean(), scale=ss.sem(d))
    assert got.estimate == pytest.approx(d.mean())
    assert (got.low, got.high) == pytest.approx((low, high), rel=1e-10)
    raw = ss.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=ss.sem(d))
    assert (got.raw_low, got.raw_high) == pytest.approx(raw, rel=1e-10)
    assert got.interval_level == pytest.approx(1 - 0.05 / 7)


def test_paired_is_the_one_sample_interval_of_the_differences():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1, 1, 40), rng.normal(0, 1, 40)
    paired = stats.decide(a, b, **FAMILY)
    one = stats.decide(a - b, 0.0, **FAMILY)
    assert (paired.estimate, paired.low, paired.high) == (one.estimate, one.low, one.high)


def hall_interval(d, level):
    """Hall (1992) by hand: invert g(t) = t + a t^2 + a^2 t^3 / 3 + b numerically."""
    n = len(d)
    g1 = np.mean((d - d.mean()) ** 3) / np.mean((d - d.mean()) ** 2) ** 1.5
    a, b = g1 / (3 * np.sqrt(n)), g1 / (6 * np.sqrt(n))
    q = ss.t.ppf(1 - (1 - level) / 2, n - 1)
    g = lambda t: t + a * t ** 2 + a ** 2 * t ** 3 / 3 + b  # noqa: E731
    from scipy.optimize import brentq

    upper, lower = brentq(lambda t: g(t) - q, -50, 50), brentq(lambda t: g(t) + q, -50, 50)
    se = d.std(ddof=1) / np.sqrt(n)
    return d.mean() - upper * se, d.mean() - lower * se


@pytest.mark.parametrize("sign", [1, -1])
def test_skewed_differences_get_the_union_with_halls_interval(sign):
    d = sign * np.random.default_rng(1).exponential(1.0, 60)
    got = stats.decide(d, family="f", family_size=10)
    t_low, t_high = ss.t.interval(1 - 0.005, 59, loc=d.mean(), scale=ss.sem(d))
    h_low, h_high = hall_interval(d, 1 - 0.005)
    assert got.low == pytest.approx(min(t_low, h_low), rel=1e-9)
    assert got.high == pytest.approx(max(t_high, h_high), rel=1e-9)
    # right-skewed data: the correction widens the upper side, left-skewed the lower side
    assert (got.high > t_high) if sign > 0 else (got.low < t_low)


def test_ratio_is_the_geometric_mean_of_per_image_ratios():
    a, b = np.array([2.0, 4.0, 8.0] * 12), np.array([1.0, 1.0, 2.0] * 12)
    got = stats.decide(a, b, ratio=True, **FAMILY)
    assert got.estimate == pytest.approx(np.exp(np.mean(np.log(a / b))))
    assert got.low < got.estimate < got.high
    assert got.verdict == stats.A_HIGHER  # every ratio > 1


def test_two_samples_use_welch():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 50), rng.normal(0.2, 3, 80)
    a, b = a - (a - a.mean()) * 0, b
    got = stats.decide(a, b, paired=False, **FAMILY)
    assert (got.n, got.n_b) == (50, 80)
    assert got.estimate == pytest.approx(a.mean() - b.mean())
    welch = ss.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    # the union is at least as wide as Welch's interval
    assert got.low <= welch.low + 1e-12 and got.high >= welch.high - 1e-12


CASES = [  # values of A - B, margin, min_n -> verdict
    (np.full(40, 1.0) + np.linspace(-0.1, 0.1, 40), None, 30, stats.A_HIGHER),
    (np.full(40, -1.0) + np.linspace(-0.1, 0.1, 40), None, 30, stats.B_HIGHER),
    (np.linspace(-1, 1, 40), None, 30, stats.NO_DIFFERENCE),
    (np.linspace(-0.01, 0.01, 40), 0.05, 30, stats.EQUIVALENT),
    (np.linspace(-1, 1, 40), 0.05, 30, stats.NO_DIFFERENCE),  # too wide to be equivalent
    (np.full(40, 0.01) + np.linspace(-1e-3, 1e-3, 40), 0.05, 30, stats.EQUIVALENT),  # both
    (np.full(20, 1.0) + np.linspace(-0.1, 0.1, 20), None, 30, stats.TOO_FEW),
    (np.zeros(40), None, 30, stats.NO_DIFFERENCE),  # identical maps: the interval is {0}
    (np.full(40, 0.5), None, 30, stats.A_HIGHER),  # a constant shift: a point interval
]


@pytest.mark.parametrize("d, margin, min_n, verdict", CASES)
def test_verdicts(d, margin, min_n, verdict):
    got = stats.decide(d, margin=margin, min_n=min_n, a_name="X", b_name="Y", **FAMILY)
    assert got.verdict == verdict
    text = stats.sentence(got)
    assert {stats.A_HIGHER: "**X is higher**", stats.B_HIGHER: "**Y is higher**",
            stats.NO_DIFFERENCE: "**No difference detected**",
            stats.EQUIVALENT: "**X and Y are equivalent**",
            stats.TOO_FEW: "**Too few images to decide**"}[verdict] in text
    for word in ("holds", "beats", "indistinguishable", "significant"):
        assert word not in text


def test_one_image_has_an_unbounded_interval_not_nan():
    got = stats.decide([0.3], **FAMILY)
    assert (got.low, got.high) == (-math.inf, math.inf) and got.verdict == stats.TOO_FEW
    assert "unbounded" in stats.sentence(got)


def test_winner_follows_the_better_direction():
    d = np.full(40, 2.0) + np.linspace(-0.1, 0.1, 40)
    assert stats.decide(d, better="lower", a_name="X", b_name="Y", **FAMILY).winner == "Y"
    assert stats.decide(d, better="higher", a_name="X", b_name="Y", **FAMILY).winner == "X"
    assert stats.decide(d, a_name="X", b_name="Y", **FAMILY).winner is None


@pytest.mark.parametrize("kwargs, message", [
    (dict(a=[1.0, np.nan] * 20), "NaN"),
    (dict(a=[1.0] * 40, b=[1.0] * 39), "paired=False"),
    (dict(a=[[1.0, 2.0]] * 40), "1-D"),
    (dict(a=[]), "empty"),
    (dict(a=[1.0] * 40, family_size=0), "family_size"),
    (dict(a=[1.0] * 40, margin=-1), "margin"),
    (dict(a=[1.0] * 40, better="smaller"), "better"),
    (dict(a=[1.0, -1.0] * 20, ratio=True), "positive"),
])
def test_bad_input_is_named(kwargs, message):
    options = dict(family="f", family_size=1) | kwargs
    a = options.pop("a")
    with pytest.raises(ValueError, match=message):
        stats.decide(a, **options)


def test_a_family_refuses_more_comparisons_than_declared():
    family = stats.Family("declared", size=2)
    for _ in range(2):
        family.decide(np.linspace(0, 1, 40))
    with pytest.raises(ValueError, match="declared with 2"):
        family.decide(np.linspace(0, 1, 40))
    assert all(d.family_size == 2 for d in family.decisions)
    assert "| comparison |" in family.table() and "Bonferroni" in family.table()


# --- simulations -------------------------------------------------------------------------------
def simulate(draw, n, m, families, effect, seed):
    """Per-interval and simultaneous coverage of ``effect`` over ``families`` of ``m``."""
    rng = np.random.default_rng(seed)
    covered = np.zeros((families, m), bool)
    for f in range(families):
        for j in range(m):
            d = stats.decide(draw(rng, n) + effect, family="sim", family_size=m)
            covered[f, j] = d.low <= effect <= d.high
    return covered.mean(), covered.all(axis=1).mean()


NORMAL = lambda rng, n: rng.normal(0, 1, n)  # noqa: E731
SKEWED = lambda rng, n: rng.exponential(1, n) - 1  # noqa: E731  (mean 0, skewness 2)
BINARY = lambda rng, n: (rng.random(n) < 0.2) - 0.2  # noqa: E731  (a 0/1 indicator, centred)


@pytest.mark.parametrize("draw, n", [(NORMAL, 30), (NORMAL, 100), (SKEWED, 100), (BINARY, 30)])
def test_coverage_with_a_known_effect(draw, n):
    """Each interval covers the true effect with probability 1 - 0.05/20 = 99.75 % (within
    0.3 points, 4,000 intervals), and all 20 of a family together at least 95 % - 2 points."""
    per, together = simulate(draw, n, m=20, families=200, effect=0.7, seed=n)
    assert per >= 0.9975 - 0.003
    assert together >= 0.95 - 0.02


@pytest.mark.parametrize("draw, n", [(NORMAL, 30), (SKEWED, 100), (BINARY, 30)])
def test_family_wise_error_under_the_null_is_at_most_five_percent(draw, n):
    """1,000 families of 20 comparisons where nothing differs: at most 5 % of the families
    have any verdict other than "no difference detected"."""
    _, together = simulate(draw, n, m=20, families=1000, effect=0.0, seed=7)
    assert 1 - together <= 0.05


def test_without_correction_the_family_wise_error_is_large():
    """The same null families, each comparison at 95 % alone: most families err somewhere."""
    rng = np.random.default_rng(3)
    errs = [any(stats.decide(NORMAL(rng, 30), family="x", family_size=1).verdict
                != stats.NO_DIFFERENCE for _ in range(20)) for _ in range(200)]
    assert np.mean(errs) > 0.5  # 1 - 0.95^20 = 0.64


# --- pictures ---------------------------------------------------------------------------------
def test_forest_plot_draws_one_row_per_decision_with_its_verdict():
    family = stats.Family("demo family", size=4)
    family.decide(np.full(40, 1.0) + np.linspace(-0.1, 0.1, 40), a_name="X", b_name="Y")
    family.decide(np.linspace(-1, 1, 40), a_name="X", b_name="Z")
    family.decide(np.linspace(-1, 1, 10), a_name="X", b_name="W")
    family.decide([0.2], a_name="X", b_name="V")  # unbounded: drawn to the edges
    fig = family.plot()
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "X vs V", "X vs W", "X vs Z", "X vs Y"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [stats.A_HIGHER, stats.NO_DIFFERENCE, stats.TOO_FEW]
    assert ax.get_title(loc="left") == "demo family"
    assert any("Bonferroni" in t.get_text() for t in ax.texts)
    plt.close(fig)
    with pytest.raises(ValueError, match="at least one"):
        stats.forest_plot([])


def test_mean_interval_describes_one_sample():
    d = np.array([-3.0, -1.0, 0.5, 2.0, -0.5, 1.0, 3.0, -2.0] * 6)
    mean, low, high = stats.mean_interval(d)
    assert (low, high) == pytest.approx(ss.t.interval(0.95, len(d) - 1, loc=mean,
                                                      scale=ss.sem(d)))
