"""The one decision rule for every comparison in the book, and its forest plot.

A comparison asks whether a quantity (Average Drop, an area, a correlation, a time) differs
between A and B. It is decided from per-image values, **paired** by image where both were
measured on the same images (the images' own spread cancels), else from two samples.

**The interval.** For N paired differences d_i = a_i - b_i with mean d, standard deviation s
and standard error e = s / sqrt(N), each comparison of a family of m gets an interval at level
1 - 0.05 / m, so that by Bonferroni's inequality all m intervals of the family hold together
with probability at least 95 % (the family-wise error rate is at most 5 %), whatever their
dependence. The family is stated before looking: chapter 11's metrics, chapter 9's layers, ...

The interval is the union of two intervals at that level, with q = t(1 - 0.05 / (2m), N - 1):

* Student's t interval, d +- q e: exact for normal differences, conservative for symmetric
  heavy-tailed ones, but too narrow on one side when the differences are skewed;
* Hall's (1992) skewness-corrected interval, [d - g^-1(q) e, d - g^-1(-q) e], where
  g(t) = t + a t^2 + a^2 t^3 / 3 + b, a = G / (3 sqrt(N)), b = G / (6 sqrt(N)), G the sample
  skewness of the differences, and g^-1(x) = ((1 + 3a (x - b))^(1/3) - 1) / a: right for
  skewed differences (per-image drops, 0/1 indicators), a little too narrow for symmetric ones.

The union covers at least as often as either. ``tests/test_stats.py`` measures it by
simulation (coverage with a known effect; the family-wise error over 1,000 families of 20
comparisons under the null). Why Bonferroni intervals rather than Holm's step-down on p-values:
the verdict is read off the interval the reader sees (a bar in the forest plot), and all the
intervals of a family hold together; Holm rejects a little more often but gives no interval to
draw. Why not a bootstrap: at the levels a family needs (99.86 % for m = 36) the percentile
bootstrap under-covers on 30 to 300 images, and the studentised one needs tens of thousands of
resamples per comparison for what Hall's correction gives in closed form. Two samples (not
paired) use Welch's interval with the two-sample form of the same correction. ``ratio=True``
compares positive values (times) on the log scale and reports the ratio A / B (paired: the
geometric mean of the per-image ratios).

**The verdicts**, one meaning each (``VERDICTS``):

* ``"A higher"`` / ``"B higher"``: the interval lies wholly above / below 0 (ratio: 1);
* ``"equivalent within ±delta"``: only with a margin delta fixed before looking: the interval
  lies wholly inside (-delta, +delta) (two one-sided tests at the interval's level); it takes
  precedence over "higher", since it bounds the difference from both sides;
* ``"no difference detected"``: the interval contains 0. This is *not* "the same": the data
  cannot tell;
* ``"too few images to decide"``: N below ``min_n`` (default ``MIN_N = 30``): the interval is
  shown as a description, and no verdict is drawn from it.

``sentence(decision)`` writes the sentence for a verdict, so that a chapter never types "holds",
"beats" or "indistinguishable" itself; ``forest_plot(decisions)`` draws a family.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as _scipy_stats

MIN_N = 30  # no verdict below this many images (or pairs)
LEVEL = 0.95  # family-wise: all intervals of a family hold together with this probability

A_HIGHER, B_HIGHER = "A higher", "B higher"
NO_DIFFERENCE, EQUIVALENT, TOO_FEW = ("no difference detected", "equivalent within ±delta",
                                      "too few images to decide")
VERDICTS = (A_HIGHER, B_HIGHER, EQUIVALENT, NO_DIFFERENCE, TOO_FEW)


@dataclass(frozen=True)
class Decision:
    """One comparison of A with B, decided by the book's rule (see the module's docstring).

    ``estimate``, ``low``, ``high``: the mean difference A - B (``ratio``: the ratio A / B) and
    its family-adjusted interval; ``raw_low``, ``raw_high``: the unadjusted 95 % interval, for
    reporting what the correction changed (never used for a verdict). ``n``: images (pairs) of
    A; ``n_b``: of B (two samples), else None. ``verdict``: one of ``VERDICTS``. ``better``:
    "higher", "lower" or None, which direction of the quantity is better (for ``winner``).
    """

    quantity: str
    a: str
    b: str
    estimate: float
    low: float
    high: float
    raw_low: float
    raw_high: float
    n: int
    n_b: int | None
    family: str
    family_size: int
    verdict: str
    margin: float | None = None
    better: str | None = None
    ratio: bool = False
    level: float = LEVEL
    min_n: int = MIN_N

    @property
    def interval_level(self) -> float:
        """The level of each interval of the family: 1 - (1 - level) / m."""
        return 1 - (1 - self.level) / self.family_size

    @property
    def label(self) -> str:
        """The verdict with the names filled in: "Grad-CAM++ higher", "equivalent within ±0.05"."""
        if self.verdict == A_HIGHER:
            return f"{self.a} higher"
        if self.verdict == B_HIGHER:
            return f"{self.b} higher"
        if self.verdict == EQUIVALENT:
            return f"equivalent within {_margin_text(self)}"
        return self.verdict

    @property
    def winner(self) -> str | None:
        """The better of A and B when the verdict says one is higher and ``better`` is set."""
        if self.better is None or self.verdict not in (A_HIGHER, B_HIGHER):
            return None
        a_higher = self.verdict == A_HIGHER
        return self.a if a_higher == (self.better == "higher") else self.b


def _finite_1d(values, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 0:
        x = x[None]
    if x.ndim != 1:
        raise ValueError(f"{name} must be one value per image (1-D); got shape {x.shape}")
    if len(x) == 0:
        raise ValueError(f"{name} are empty: a comparison needs at least one value per side")
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise ValueError(f"{name} hold NaN or infinite values (at {bad[:5].tolist()}): drop "
                         "the images whose measure is undefined, and say so, before comparing")
    return x


def _interval(mean, se, df, level, skew=0.0):
    """The union of Student's t interval and Hall's skewness-corrected one (module docstring).

    ``skew`` is G / sqrt(N), the skewness of the mean (two samples: its two-sample form).
    Unbounded when df < 1 (a single value); a point when se = 0 (all differences equal).
    """
    if df < 1 or not np.isfinite(df) or not np.isfinite(se):
        return -math.inf, math.inf
    q = _t_quantile(1 - (1 - level) / 2, df)
    low, high = mean - q * se, mean + q * se
    a, b = skew / 3, skew / 6
    if abs(a) > 1e-12 and se > 0:
        inverse = lambda x: (np.cbrt(1 + 3 * a * (x - b)) - 1) / a  # noqa: E731
        low, high = min(low, mean - inverse(q) * se), max(high, mean - inverse(-q) * se)
    return float(low), float(high)


@functools.lru_cache(maxsize=4096)
def _t_quantile(p: float, df: float) -> float:
    return float(_scipy_stats.t.ppf(p, df))


def _third_moment(x: np.ndarray) -> float:
    return float(np.mean((x - x.mean()) ** 3))


def decide(a, b=0.0, *, family: str, family_size: int, a_name: str = "A", b_name: str = "B",
           quantity: str = "", paired: bool = True, margin: float | None = None,
           min_n: int = MIN_N, level: float = LEVEL, better: str | None = None,
           ratio: bool = False) -> Decision:
    """Decide one comparison of A with B, as a member of a family of ``family_size``.

    Parameters
    ----------
    a, b : per-image values of A and B. ``b`` may be one number (A against a fixed value). With
        ``paired=True`` (the default) ``a[i]`` and ``b[i]`` belong to the same image; with
        ``paired=False`` they are two samples (Welch).
    family, family_size : the family's name and its number of comparisons m, stated in advance.
    a_name, b_name, quantity : names used by ``label``, ``sentence`` and ``forest_plot``.
    margin : the equivalence margin delta (in the quantity's unit; with ``ratio=True`` a factor
        > 1, e.g. 1.1 for ±10 %), fixed before looking; None: no equivalence verdict.
    min_n : the least number of images (pairs; per side for two samples) for a verdict.
    level : the family-wise level (0.95).
    better : "higher" or "lower" if one direction of the quantity is better, else None.
    ratio : compare log(a) with log(b) and report the ratio A / B (positive values only).

    Returns
    -------
    Decision

    Example
    -------
    >>> d = decide([3.1, 2.9, 3.4] * 20, [2.0, 2.2, 2.1] * 20, family="demo", family_size=3,
    ...            a_name="Score-CAM", b_name="Grad-CAM", quantity="time (s)")
    >>> d.label
    'Score-CAM higher'
    """
    if isinstance(family_size, bool) or not isinstance(family_size, (int, np.integer)) \
            or family_size < 1:
        raise ValueError(f"family_size must be the number of comparisons in the family (an "
                         f"integer >= 1); got {family_size!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    if better not in (None, "higher", "lower"):
        raise ValueError(f"better must be 'higher', 'lower' or None; got {better!r}")
    if margin is not None and (not np.isfinite(margin) or margin <= (1 if ratio else 0)):
        raise ValueError(f"margin must be a positive number{' > 1 (a factor)' if ratio else ''}"
                         f" fixed before looking; got {margin!r}")
    x = _finite_1d(a, f"{a_name}'s values")
    y = _finite_1d(b, f"{b_name}'s values")
    if ratio:
        if (x <= 0).any() or (y <= 0).any():
            raise ValueError("ratio=True compares positive values (times, sizes) on the log "
                             "scale; some values are <= 0")
        x, y = np.log(x), np.log(y)
    scalar_b = np.ndim(b) == 0
    adjusted = 1 - (1 - level) / family_size
    if scalar_b or paired:
        if not scalar_b and len(x) != len(y):
            raise ValueError(f"paired values need one value of each per image: {a_name} has "
                             f"{len(x)}, {b_name} has {len(y)}. If they were measured on "
                             "different images, pass paired=False.")
        d = x - y
        n, n_b = len(d), None
        mean = float(d.mean())
        se = float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else math.inf
        spread = float(np.mean((d - mean) ** 2))
        skew = _third_moment(d) / spread ** 1.5 / np.sqrt(n) if n > 1 and spread > 0 else 0.0
        df = n - 1
        enough = n >= min_n
    else:
        n, n_b = len(x), len(y)
        mean = float(x.mean() - y.mean())
        va = x.var(ddof=1) / n if n > 1 else math.inf
        vb = y.var(ddof=1) / n_b if n_b > 1 else math.inf
        se = float(np.sqrt(va + vb))
        if np.isfinite(se) and se > 0:  # Welch-Satterthwaite degrees of freedom
            df = (va + vb) ** 2 / (va ** 2 / (n - 1) + vb ** 2 / (n_b - 1))
        else:
            df = min(n, n_b) - 1 if np.isfinite(se) else 0
        skew = ((_third_moment(x) / n ** 2 - _third_moment(y) / n_b ** 2) / se ** 3
                if np.isfinite(se) and se > 0 else 0.0)
        enough = min(n, n_b) >= min_n
    low, high = _interval(mean, se, df, adjusted, skew)
    raw_low, raw_high = _interval(mean, se, df, level, skew)
    delta = None if margin is None else (math.log(margin) if ratio else margin)
    if not enough:
        verdict = TOO_FEW
    elif delta is not None and -delta < low and high < delta:
        verdict = EQUIVALENT
    elif low > 0:
        verdict = A_HIGHER
    elif high < 0:
        verdict = B_HIGHER
    else:
        verdict = NO_DIFFERENCE
    if ratio:
        mean, low, high, raw_low, raw_high = (math.exp(v) for v in
                                              (mean, low, high, raw_low, raw_high))
    return Decision(quantity, a_name, b_name, mean, low, high, raw_low, raw_high, n, n_b,
                    family, int(family_size), verdict, margin, better, ratio, level, min_n)


@dataclass
class Family:
    """A family of comparisons, named and sized before looking: ``family.decide(...)`` decides
    each member with the family's correction, and refuses more members than declared.

    >>> fam = Family("chapter 11: faithfulness metrics", size=2)
    >>> d = fam.decide([1.0, 2.0] * 20, [0.5, 1.5] * 20, a_name="A", b_name="B", quantity="q")
    """

    name: str
    size: int
    level: float = LEVEL
    min_n: int = MIN_N
    decisions: list = field(default_factory=list)

    def decide(self, a, b=0.0, **options) -> Decision:
        """``decide(a, b, ...)`` as a member of this family (see :func:`decide`)."""
        if len(self.decisions) >= self.size:
            raise ValueError(f"the family {self.name!r} was declared with {self.size} "
                             "comparisons and all are decided: declare its true size before "
                             "looking (a larger family widens every interval)")
        options.setdefault("min_n", self.min_n)
        decision = decide(a, b, family=self.name, family_size=self.size, level=self.level,
                          **options)
        self.decisions.append(decision)
        return decision

    def table(self, spec: str = ".3g") -> str:
        """The family as a Markdown table: comparison, estimate, interval, N, verdict."""
        return table(self.decisions, spec)

    def plot(self, **options):
        """The family as a forest plot (see :func:`forest_plot`)."""
        return forest_plot(self.decisions, **options)


def _fmt(value: float, spec: str, ratio: bool) -> str:
    if math.isinf(value):
        return "unbounded" if not ratio else ("×0" if value < 0 else "×∞")
    if ratio:
        return f"×{value:{spec}}"
    return f"{value:+{spec}}"


def _margin_text(d: Decision) -> str:
    return f"×/÷{d.margin:g}" if d.ratio else f"±{d.margin:g}"


def interval_text(d: Decision, spec: str = ".3g") -> str:
    """``"+0.012 [+0.004, +0.020]"``: the estimate and its family-adjusted interval."""
    return (f"{_fmt(d.estimate, spec, d.ratio)} [{_fmt(d.low, spec, d.ratio)}, "
            f"{_fmt(d.high, spec, d.ratio)}]")


def _basis(d: Decision) -> str:
    n = f"N = {d.n}" if d.n_b is None else f"N = {d.n} and {d.n_b}"
    if d.family_size == 1:
        return f"{n}, a {d.interval_level:.0%} interval"
    return (f"{n}; a {d.interval_level:.2%} interval, {d.level:.0%} for the "
            f"{d.family_size} comparisons of the family \"{d.family}\" together")


def sentence(d: Decision, spec: str = ".3g") -> str:
    """One sentence for a decision, in the book's vocabulary: its verdict, the difference (or
    ratio) with its family-adjusted interval, N and the family. Plain Markdown."""
    on = f" on {d.quantity}" if d.quantity else ""
    diff = "ratio" if d.ratio else "difference"
    numbers = f"{diff} {d.a} {'/' if d.ratio else '−'} {d.b} {interval_text(d, spec)} ({_basis(d)})"
    if d.verdict == TOO_FEW:
        return (f"**Too few images to decide** between {d.a} and {d.b}{on} "
                f"({min(d.n, d.n_b or d.n)} < {d.min_n}); as a description only: {numbers}.")
    if d.verdict == NO_DIFFERENCE:
        null = "1" if d.ratio else "0"
        return (f"**No difference detected** between {d.a} and {d.b}{on}: the interval contains "
                f"{null} (which does not show that they are the same): {numbers}.")
    if d.verdict == EQUIVALENT:
        return (f"**{d.a} and {d.b} are equivalent**{on} within {_margin_text(d)}, a margin "
                f"fixed in advance: {numbers}.")
    higher, lower = (d.a, d.b) if d.verdict == A_HIGHER else (d.b, d.a)
    better = ""
    if d.winner is not None:
        better = f"; {d.better} is better, so {d.winner} is better here"
    return f"**{higher} is higher** than {lower}{on}: {numbers}{better}."


def table(decisions, spec: str = ".3g") -> str:
    """Decisions as a Markdown table (for a folded ``<details>`` block under a forest plot)."""
    rows = ["| comparison | estimate [interval] | N | verdict |", "| --- | --- | --- | --- |"]
    for d in decisions:
        name = f"{d.quantity}: {d.a} vs {d.b}" if d.quantity else f"{d.a} vs {d.b}"
        n = str(d.n) if d.n_b is None else f"{d.n} / {d.n_b}"
        rows.append(f"| {name} | {interval_text(d, spec)} | {n} | {d.label} |")
    if decisions:
        d = decisions[0]
        rows.append("")
        rows.append(f"Intervals at {d.interval_level:.2%} each: {d.level:.0%} together for the "
                    f"{d.family_size} comparisons of \"{d.family}\" (Bonferroni); no verdict "
                    f"below N = {d.min_n}.")
    return "\n".join(rows)


_COLOURS = {A_HIGHER: "#1f77b4", B_HIGHER: "#d62728", EQUIVALENT: "#2ca02c",
            NO_DIFFERENCE: "#555555", TOO_FEW: "#aaaaaa"}
_MARKERS = {A_HIGHER: ">", B_HIGHER: "<", EQUIVALENT: "D", NO_DIFFERENCE: "o", TOO_FEW: "o"}


def forest_plot(decisions, labels=None, title: str | None = None, ax=None, xlabel=None):
    """Draw decisions as a forest plot: per row, the estimate (marker) and its family-adjusted
    interval (bar), a line at no difference (0, or 1 for ratios), the margin as a band, the
    verdict by colour and marker (legend), N at the right. Returns the matplotlib Figure.

    ``labels``: one per decision (default "A vs B", prefixed by the quantity when a plot mixes
    quantities). Infinite interval ends are drawn to the axis edge with an arrow.
    """
    import matplotlib.pyplot as plt

    decisions = list(decisions)
    if not decisions:
        raise ValueError("forest_plot needs at least one decision")
    if labels is None:
        mixed = len({d.quantity for d in decisions}) > 1
        labels = [(f"{d.quantity}: " if mixed and d.quantity else "") + f"{d.a} vs {d.b}"
                  for d in decisions]
    if len(labels) != len(decisions):
        raise ValueError(f"{len(labels)} labels for {len(decisions)} decisions")
    ratio = decisions[0].ratio
    if any(d.ratio != ratio for d in decisions):
        raise ValueError("forest_plot draws differences or ratios, not both in one plot")
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.32 * len(decisions)))
    else:
        fig = ax.figure
    null = 1.0 if ratio else 0.0
    finite = [v for d in decisions for v in (d.low, d.high, d.estimate) if math.isfinite(v)]
    lo, hi = (min(finite + [null]), max(finite + [null])) if finite else (null - 1, null + 1)
    pad = 0.08 * (hi - lo if hi > lo else 1.0)
    left, right = lo - pad, hi + pad
    if ratio:
        left, right = max(lo / 1.15, 1e-9), hi * 1.15
        ax.set_xscale("log")
    margins = {d.margin for d in decisions if d.margin is not None}
    for m in margins:
        band = (1 / m, m) if ratio else (-m, m)
        ax.axvspan(*band, color="#2ca02c", alpha=0.08, lw=0)
    ax.axvline(null, color="black", lw=0.8)
    seen = set()
    for row, d in enumerate(decisions):
        y = len(decisions) - 1 - row
        colour = _COLOURS[d.verdict]
        a, b = max(d.low, left), min(d.high, right)
        ax.plot([a, b], [y, y], color=colour, lw=2.2, solid_capstyle="butt")
        for end, edge, marker in ((d.low, left, "<"), (d.high, right, ">")):
            if not math.isfinite(end):
                ax.plot([edge], [y], marker=marker, color=colour, ms=6)
        name = d.verdict if d.verdict != EQUIVALENT else "equivalent within the margin"
        ax.plot([d.estimate], [y], marker=_MARKERS[d.verdict], ms=7, color=colour,
                mfc="white" if d.verdict == TOO_FEW else colour,
                label=None if name in seen else name, ls="none")
        seen.add(name)
        ax.annotate(f"N={d.n}" if d.n_b is None else f"N={d.n}/{d.n_b}", (1.01, y),
                    xycoords=("axes fraction", "data"), va="center", fontsize=8)
    ax.set_xlim(left, right)
    ax.set_yticks(range(len(decisions)), labels[::-1])
    ax.set_ylim(-0.7, len(decisions) - 0.3)
    quantities = {d.quantity for d in decisions}
    default = "ratio A / B" if ratio else "difference A − B"
    if len(quantities) == 1 and decisions[0].quantity:
        default = f"{decisions[0].quantity}: {default}"
    ax.set_xlabel(xlabel or default)
    d = decisions[0]
    ax.set_title(title or d.family, fontsize=10, loc="left")
    ax.text(0, -0.2 - 0.35 / max(len(decisions), 1) ** 0.5,
            f"bars: {d.interval_level:.2%} intervals, {d.level:.0%} for all {d.family_size} "
            f"comparisons of the family together (Bonferroni); no verdict below N = {d.min_n}",
            transform=ax.transAxes, fontsize=7.5, color="#444444", va="top")
    ax.legend(loc="upper left", bbox_to_anchor=(1.08, 1.0), fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def mean_interval(values, level: float = LEVEL) -> tuple[float, float, float]:
    """``(mean, low, high)``: one sample's mean with the book's interval, a *description* (no
    comparison, no verdict; for "Grad-CAM's Average Drop is 10.1 % [8.0, 12.3]")."""
    x = _finite_1d(values, "values")
    mean = float(x.mean())
    se = float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else math.inf
    spread = float(np.mean((x - mean) ** 2))
    skew = _third_moment(x) / spread ** 1.5 / np.sqrt(len(x)) if spread > 0 else 0.0
    return (mean, *_interval(mean, se, len(x) - 1, level, skew))
