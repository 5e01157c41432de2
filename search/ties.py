"""Which configurations the seeds cannot tell from the best: multiple comparisons with the best (Hsu's MCB).

One rule for the search's summary, the confirmation and `search.replay`. Configuration i is kept when its mean
is within d_i·se_ij of every other mean j, where se_ij is the standard error of the difference and d_i the
one-sided many-to-one (Dunnett) t quantile for its k−1 comparisons at the pooled degrees of freedom. The set then
holds the true best with probability at least 1−α (exactly 1−α when every configuration is equally good),
whatever the others' means. The same constant gives Hsu's simultaneous intervals for μ_i − max_{j≠i} μ_j, which
say "worse than the best", "the best" or "within ±δ of the best".

Where every configuration ran the same seeds (a paired design: the confirmation, a grid with `--grid-seeds`), the
noise is the residual of configuration + seed effects, (k−1)(n−1) degrees of freedom, and the seed-to-seed luck
shared by all configurations cancels; otherwise the pooled within-configuration sd, Σ(nᵢ−1) degrees of freedom.
The noise is pooled over configurations that behaved: a configuration whose teacher collapsed stays compared but
out of the pool, and one whose seeds disagree far more than the others' (an F test, 1% over all of them) is left
out of the pool and of the comparison, named as unstable, since no single mean describes it.

The quantile is computed by quadrature of Dunnett's integral (the comparisons against one mean are correlated as
λ_j·λ_l, so the multivariate t reduces to a two-dimensional integral), not by `scipy.stats.multivariate_t.cdf`:
that one is randomised quasi-Monte Carlo, and a root-finder on a noisy function returns a noisy constant.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import optimize, special
from scipy import stats as scipy_stats

ALPHA = 0.05  # the set misses the true best at most this often
SCREEN_ALPHA = 0.01  # an equally noisy configuration is wrongly called unstable at most this often, over all of them
MIN_DEGREES = 2  # fewer degrees of freedom than this measure no noise a comparison could use
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(48)  # ∫ f(w) φ(w) dw ≈ Σ weights·f(nodes) / √(2π)


_S_NODES, _S_WEIGHTS = np.polynomial.legendre.leggauss(96)  # over S's range, which holds all but 2e-12 of it


def _all_below(c: float, lambdas: tuple[float, ...], scales: np.ndarray) -> np.ndarray:
    """P(max_j Z_j ≤ c·s) at each s of `scales`, for standard normals Z_j = λ_j·W + √(1−λ_j²)·E_j (W, E_j
    independent): the integral over W, by Gauss–Hermite."""
    lam = np.asarray(lambdas)
    spread = np.sqrt(1 - lam ** 2)
    below = special.ndtr((c * scales[:, None, None] - lam[None, None, :] * _NODES[None, :, None]) / spread)
    return below.prod(axis=2) @ _WEIGHTS / math.sqrt(2 * math.pi)


def max_cdf(c: float, lambdas: Sequence[float], df: float) -> float:
    """P(max_j T_j ≤ c) for t variables T_j = Z_j / S sharing S = √(χ²_df / df) (df = inf: S = 1); the integral over
    S by Gauss–Legendre between its 1e-12 quantiles (agrees with adaptive quadrature to 1e-11)."""
    lambdas = tuple(float(x) for x in lambdas)
    if math.isinf(df):
        return float(_all_below(c, lambdas, np.ones(1))[0])
    chi = scipy_stats.chi(df, scale=1 / math.sqrt(df))
    low, high = chi.ppf(1e-12), chi.isf(1e-12)
    scales = (high - low) / 2 * _S_NODES + (high + low) / 2
    return float(_all_below(c, lambdas, scales) @ (_S_WEIGHTS * (high - low) / 2 * chi.pdf(scales)))


@lru_cache(maxsize=4096)
def _quantile(lambdas: tuple[float, ...], df: float, alpha: float) -> float:
    if len(lambdas) == 1:
        return float(scipy_stats.t.ppf(1 - alpha, df))
    return float(optimize.brentq(lambda c: max_cdf(c, lambdas, df) - (1 - alpha), 0.0, 60.0, xtol=1e-7))


def many_to_one_quantile(lambdas: Sequence[float], df: float, alpha: float = ALPHA) -> float:
    """Dunnett's one-sided constant d: P(max_j T_j ≤ d) = 1−α for the comparisons of one mean with the others,
    correlated as λ_j·λ_l (λ_j² = the compared mean's share of the variance of difference j; √½ with equal seeds)."""
    key = tuple(sorted(round(float(x), 10) for x in lambdas))
    return _quantile(key, float(df), float(alpha))


@dataclass(frozen=True)
class Noise:
    """The seed noise the comparisons use: sd of one value (a fraction), its degrees of freedom, how it was measured."""

    sd: float
    degrees: int
    paired: bool
    pooled: tuple[str, ...]  # the configurations it was pooled over

    def describe(self, names: Mapping[str, str] | None = None) -> str:
        how = "configuration + seed residual, paired seeds" if self.paired else "within-configuration spread"
        return (f"seed sd {100 * self.sd:.2f} points ({how}, {self.degrees} degrees of freedom, "
                f"{len(self.pooled)} configurations)")


@dataclass(frozen=True)
class Comparison:
    """One configuration against the best of the others: its mean, seeds, and MCB interval for μ_i − max_{j≠i} μ_j."""

    key: str
    mean: float
    n: int
    low: float
    high: float
    constant: float  # d_i
    kept: bool = True  # in the tie set; otherwise worse than the best


@dataclass(frozen=True)
class Ties:
    """The rule's answer: each judged configuration's comparison (best mean first), the configurations kept (those
    the seeds cannot tell from the best), the noise, and the configurations left out of it with why."""

    comparisons: list[Comparison]
    noise: Noise | None
    alpha: float = ALPHA
    left_out: dict[str, str] = field(default_factory=dict)  # key -> why it was not pooled or not judged
    unstable: tuple[str, ...] = ()  # left out of the comparison too: ranked after every judged configuration

    @property
    def kept(self) -> list[str]:
        """The configurations the seeds cannot separate from the best, best mean first; the best alone without noise."""
        if self.noise is None:
            return [self.comparisons[0].key] if self.comparisons else []
        return [c.key for c in self.comparisons if c.kept]

    @property
    def best(self) -> str | None:
        return self.comparisons[0].key if self.comparisons else None

    def of(self, key: str) -> Comparison | None:
        return next((c for c in self.comparisons if c.key == key), None)


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _variance(values: Sequence[float]) -> float:
    mean = _mean(values)
    return math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)


def unstable(groups: Mapping[str, Sequence[float]], pooled: Sequence[str],
             alpha: float = SCREEN_ALPHA) -> dict[str, float]:
    """Configurations (any of `groups` with two values or more) whose seeds spread far more than the `pooled` ones'
    (one-sided F test of each against the pooled variance of the others, Bonferroni over those tested): key -> its
    seed sd. A configuration kept out of the pool (a collapsed teacher) is tested too, against the whole pool."""
    tested = [k for k in groups if len(groups[k]) > 1]
    variance = {k: _variance(groups[k]) for k in tested}
    healthy = [k for k in tested if k in set(pooled)]
    squares = math.fsum(variance[k] * (len(groups[k]) - 1) for k in healthy)
    total = sum(len(groups[k]) - 1 for k in healthy)
    found = {}
    for key in tested:
        own = len(groups[key]) - 1
        inside = key in healthy
        degrees = total - own * inside
        rest = (squares - variance[key] * own * inside) / degrees if degrees >= 1 else 0.0
        if rest <= 1e-15:  # the others agree exactly (accuracy on a small test set is coarse): nothing to compare with
            continue
        if special.fdtrc(own, degrees, variance[key] / rest) < alpha / len(tested):  # the F test's p-value
            found[key] = math.sqrt(variance[key])
    return found


def _paired_seeds(runs: Mapping[str, Mapping[object, float]], keys: Sequence[str]) -> list | None:
    """The seeds every configuration ran, when they all ran the same ones (at least two) and each has a name."""
    sets = [frozenset(runs[k]) for k in keys]
    if not sets or any(s != sets[0] for s in sets) or len(sets[0]) < 2 or None in sets[0]:
        return None
    return sorted(sets[0], key=str)


def _noise(runs: Mapping[str, Mapping[object, float]], pooled: Sequence[str], seeds: list | None) -> Noise | None:
    if seeds is not None and len(pooled) >= 2:
        table = np.array([[runs[k][s] for s in seeds] for k in pooled], dtype=float)
        residual = table - table.mean(axis=1, keepdims=True) - table.mean(axis=0, keepdims=True) + table.mean()
        degrees = (len(pooled) - 1) * (len(seeds) - 1)
        if degrees >= MIN_DEGREES:
            return Noise(math.sqrt(float((residual ** 2).sum()) / degrees), degrees, True, tuple(pooled))
        return None
    groups = [list(runs[k].values()) for k in pooled]
    degrees = sum(len(g) - 1 for g in groups)
    if degrees < MIN_DEGREES:
        return None
    variance = math.fsum(_variance(g) * (len(g) - 1) for g in groups if len(g) > 1) / degrees
    return Noise(math.sqrt(variance), degrees, False, tuple(k for k, g in zip(pooled, groups) if len(g) > 1))


@dataclass(frozen=True)
class Measured:
    """What both rules compare: the judged configurations (best mean first) with their means and seed counts, the
    pooled noise, and the configurations left out of the pool (key -> why) or of the comparison (`unstable`)."""

    order: list[str]
    means: dict[str, float]
    counts: dict[str, int]
    noise: Noise | None
    left_out: dict[str, str]
    unstable: tuple[str, ...]

    def se(self, i: str, j: str) -> float:
        """The standard error of mean i − mean j."""
        return self.noise.sd * math.sqrt(1 / self.counts[i] + 1 / self.counts[j])


def measure(runs: Mapping[str, Mapping[object, float]], collapsed: Mapping[str, str] | None = None) -> Measured:
    """Configurations given as key -> {seed: final value} (a seed may be None when unknown: then nothing is paired),
    and `collapsed`: key -> why its values are kept out of the pooled noise."""
    collapsed = dict(collapsed or {})
    runs = {k: dict(v) for k, v in runs.items() if v}
    groups = {k: list(v.values()) for k, v in runs.items()}
    healthy = [k for k in runs if k not in collapsed]
    spread = unstable(groups, healthy)
    left_out = {k: why for k, why in collapsed.items() if k in runs}
    left_out.update({k: f"unstable: its seeds spread {100 * sd:.2f} points, far more than the others'; not compared"
                     for k, sd in spread.items()})
    judged = sorted((k for k in runs if k not in spread), key=lambda k: -_mean(groups[k]))
    noise = _noise(runs, [k for k in judged if k not in collapsed], _paired_seeds(runs, judged))
    return Measured(judged, {k: _mean(groups[k]) for k in judged}, {k: len(groups[k]) for k in judged}, noise,
                    left_out, tuple(spread))


def mcb(runs: Mapping[str, Mapping[object, float]], alpha: float = ALPHA,
        collapsed: Mapping[str, str] | None = None) -> Ties:
    """The MCB tie set and intervals (see `measure` for the arguments)."""
    m = measure(runs, collapsed)
    judged, means = m.order, m.means
    if m.noise is None or len(judged) < 2:
        comparisons = [Comparison(k, means[k], m.counts[k], math.nan, math.nan, math.nan) for k in judged]
        return Ties(comparisons, m.noise, alpha, m.left_out, m.unstable)
    constant = {}
    for i in judged:
        lambdas = [math.sqrt((1 / m.counts[i]) / (1 / m.counts[i] + 1 / m.counts[j])) for j in judged if j != i]
        constant[i] = many_to_one_quantile(lambdas, m.noise.degrees, alpha)
    upper = {i: min(means[i] - means[j] + constant[i] * m.se(i, j) for j in judged if j != i) for i in judged}
    kept = {i for i in judged if upper[i] >= 0}
    comparisons = []
    for i in judged:
        rivals = [j for j in kept if j != i]
        low = min((means[i] - means[j] - constant[j] * m.se(i, j) for j in rivals), default=0.0)
        comparisons.append(Comparison(i, means[i], m.counts[i], min(low, 0.0), max(upper[i], 0.0), constant[i],
                                      i in kept))
    return Ties(comparisons, m.noise, alpha, m.left_out, m.unstable)


@lru_cache(maxsize=1024)
def range_constant(configurations: int, df: float, alpha: float) -> float:
    """Tukey's constant q(1−α; k, df)/√2: intervals of every pairwise difference, mean ± it · se, hold together with
    probability 1−α (Tukey–Kramer with unequal seeds: at least 1−α, Hayter 1984)."""
    if configurations < 2:
        return math.nan
    if configurations == 2:  # q(1−α; 2, df)/√2 is Student's t(1−α/2, df), and far faster to compute
        return float(scipy_stats.t.ppf(1 - alpha / 2, df))
    return float(scipy_stats.studentized_range.ppf(1 - alpha, configurations, df)) / math.sqrt(2)


def pairwise(m: Measured, i: str, j: str, alpha: float) -> tuple[float, float, float]:
    """(mean i − mean j, low, high): the simultaneous interval of every pair of `m`'s judged configurations."""
    difference = m.means[i] - m.means[j]
    if m.noise is None:
        return difference, math.nan, math.nan
    half = range_constant(len(m.order), float(m.noise.degrees), alpha) * m.se(i, j)
    return difference, difference - half, difference + half


@lru_cache(maxsize=256)
def seeds_to_decide(sd_difference: float, margin: float, alpha: float = ALPHA, configurations: int = 2,
                    limit: int = 10_000) -> int | None:
    """The fewest paired seeds n whose interval of a difference (sd of one paired difference `sd_difference`) is at
    most `margin` wide, as the race builds it among `configurations` (Tukey's constant at (k−1)(n−1) degrees of
    freedom; Student's t for two): whatever the mean then, the interval either excludes 0 or lies within ±margin.
    None when more than `limit` would be needed or the sd is unknown."""
    if not math.isfinite(sd_difference):
        return None
    k = max(configurations, 2)

    def decides(n: int) -> bool:
        return range_constant(k, float((k - 1) * (n - 1)), alpha) * sd_difference / math.sqrt(n) <= margin / 2

    if not decides(limit):
        return None
    low, high = 2, limit  # the interval narrows as n grows: the first n that decides, by bisection
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if decides(middle) else (middle + 1, high)
    return low
