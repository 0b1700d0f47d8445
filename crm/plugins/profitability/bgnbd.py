"""The BG/NBD purchase model (Fader, Hardie and Lee 2005, "Counting your customers the easy way").

While alive a customer buys at a Poisson rate lambda ~ Gamma(r, alpha); after each repeat
purchase they drop out for good with probability p ~ Beta(a, b). A history is summarised by
x (repeat purchases), t_x (time of the last one) and T (time since the first purchase), all
in the caller's time unit. Everything here works on whole numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

Array = np.ndarray


# Shape parameters (r, a, b) are kept within these bounds. Beyond 1e4 a gamma or beta mixing
# is a point mass to within about 1% (its coefficient of variation is 1/sqrt(shape) or less),
# so the model's forecasts no longer change, but the likelihood may keep creeping up: when
# hardly anybody drops out, a and b run off together with a/(a+b) finite. The fit stops at the
# bound and says so (`bounded`). The scale alpha depends on the time unit; its bounds only keep
# exp() finite.
SHAPE_BOUNDS = (1e-4, 1e4)
SCALE_BOUNDS = (float(np.exp(-25.0)), float(np.exp(25.0)))
NAMES = ("r", "alpha", "a", "b")
# Largest gradient over log-parameters, relative to the mean log-likelihood per customer
# (at least 1), still taken as a maximum when the optimiser gives up on noise.
GRADIENT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class BgNbd:
    """Fitted (or given) BG/NBD parameters; the other fields describe the fit: `bounded`
    names the parameters that stopped at a bound, `converged` is the optimiser's verdict."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = float("nan")
    n: int = 0
    bounded: tuple[str, ...] = ()
    converged: bool = True
    # When a customer may drop out, for the status sentence: after a repeat purchase here,
    # after any purchase in MBG/NBD (mbgnbd.py).
    dropout_after: str = "再购"

    @property
    def at_bound(self) -> bool:
        return bool(self.bounded)

    @property
    def status(self) -> str:
        """One sentence (Chinese) on how the fit ended, for the CLI."""
        if not self.converged:
            return "优化未正常结束：参数可能不是最优，请检查成交数据或换校准日期后重新拟合。"
        if not self.bounded:
            return "已收敛，参数均在边界以内。"
        names = "、".join(self.bounded)
        if max(self.a, self.b) >= SHAPE_BOUNDS[1] * (1 - 1e-6):
            return (
                f"参数 {names} 停在边界（形状参数上限 {SHAPE_BOUNDS[1]:g}）：数据里几乎看不出"
                f"客户间流失倾向的差异，模型按每次{self.dropout_after}后流失概率均为 "
                f"{self.a / (self.a + self.b):.3f} 处理，预测仍可用；成交数据更多后再拟合。"
            )
        return (
            f"参数 {names} 停在边界（形状参数范围 {SHAPE_BOUNDS[0]:g}～{SHAPE_BOUNDS[1]:g}）："
            "数据不足以确定它，预测按边界值计算；成交数据更多后再拟合。"
        )


def _arrays(*columns) -> list[Array]:
    return [np.asarray(c, dtype=float) for c in np.broadcast_arrays(*columns)]


def log_likelihood(model: BgNbd, x, t_x, T) -> Array:
    """Log-likelihood of each history (eq. 6 of the paper, as a log-sum-exp of its two terms)."""
    x, t_x, T = _arrays(x, t_x, T)
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    rx = r + x
    stays = -rx * np.log(alpha + T)
    # The second term exists only for repeat buyers: they may have dropped out after t_x.
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(x > 0, np.log(a) - np.log(b + x - 1) - rx * np.log(alpha + t_x), -np.inf)
    return (
        gammaln(rx)
        - gammaln(r)
        + r * np.log(alpha)
        + betaln(a, b + x)
        - betaln(a, b)
        + np.logaddexp(stays, left)
    )


class _Objective:
    """Mean negative log-likelihood and its gradient over log-parameters.

    Histories are collapsed to distinct (x, t_x, T) rows with counts, and the special
    functions, which depend on x alone, are evaluated once per distinct x.
    """

    def __init__(self, x: Array, t_x: Array, T: Array):
        rows, counts = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)
        self.weight = counts / counts.sum()
        self.x_values, self.x_index = np.unique(rows[:, 0], return_inverse=True)
        self.t_x, self.T = rows[:, 1], rows[:, 2]
        self.buys = rows[:, 0] > 0
        self.x = rows[:, 0]
        # b + offset is b + x - 1 for buyers; for the others b + 1 only keeps the logs finite.
        self.offset = np.where(self.buys, self.x - 1, 1.0)

    def __call__(self, theta: Array) -> tuple[float, Array]:
        r, alpha, a, b = np.exp(theta)
        xv, idx, x, w = self.x_values, self.x_index, self.x, self.weight
        log_T, log_tx = np.log(alpha + self.T), np.log(alpha + self.t_x)
        rx = r + x
        stays = -rx * log_T
        bx1 = b + self.offset
        left = np.where(self.buys, np.log(a) - np.log(bx1) - rx * log_tx, -np.inf)
        mix = np.logaddexp(stays, left)
        share = np.exp(left - mix)  # posterior weight of "dropped out after t_x"
        by_x = gammaln(r + xv) + gammaln(b + xv) - gammaln(a + b + xv)
        ll = by_x[idx] - gammaln(r) + r * np.log(alpha) + gammaln(a + b) - gammaln(b) + mix
        psi_a_b_x = digamma(a + b + xv)[idx]
        grad_r = digamma(r + xv)[idx] - digamma(r) + np.log(alpha) - (1 - share) * log_T
        grad_r -= share * log_tx
        grad_alpha = r / alpha - rx * ((1 - share) / (alpha + self.T) + share / (alpha + self.t_x))
        psi_a_b = digamma(a + b)
        grad_a = psi_a_b - psi_a_b_x + share / a
        grad_b = digamma(b + xv)[idx] - psi_a_b_x - digamma(b) + psi_a_b - share / bx1
        gradient = np.array([grad_r @ w, grad_alpha @ w, grad_a @ w, grad_b @ w])
        return -float(ll @ w), -gradient * np.exp(theta)


def maximise(
    objective, start: Array, bounds: list[tuple[float, float]]
) -> tuple[Array, Array, bool]:
    """Parameters maximising a log-likelihood given as (mean negative value, gradient) over
    log-parameters, within `bounds` on the parameters themselves. Returns the parameters, a
    mask of those that ended on a bound, and whether the point is a maximum (the optimiser
    converged, or no free direction climbs; see below).

    A multithreaded BLAS spends milliseconds waking threads for each tiny quasi-Newton step on
    a handful of parameters (about 25x the optimiser's own work on CDNOW), so it gets one.
    """
    from threadpoolctl import threadpool_limits

    log_bounds = np.log(np.asarray(bounds, dtype=float))
    low, high = log_bounds[:, 0], log_bounds[:, 1]
    with threadpool_limits(limits=1, user_api="blas"):
        result = minimize(
            objective,
            np.clip(start, low, high),
            jac=True,
            method="L-BFGS-B",
            bounds=log_bounds,
            options={"ftol": 1e-13, "gtol": 1e-9, "maxiter": 2000},
        )
    theta = result.x
    if not np.all(np.isfinite(theta)):
        raise RuntimeError(f"maximum likelihood failed: {result.message}")
    bounded = (theta <= low + 1e-6) | (theta >= high - 1e-6)
    # Near a bound the log-gamma differences of large shapes leave the objective noisy at
    # about 1e-11, and the line search can give up ("ABNORMAL") short of gtol. The point is
    # still a maximum when no free direction climbs: the gradient, less the parts pushing
    # against a bound, is negligible against the mean log-likelihood of one customer.
    value, gradient = objective(theta)
    free = np.where(
        ((theta <= low + 1e-6) & (gradient > 0)) | ((theta >= high - 1e-6) & (gradient < 0)),
        0.0,
        gradient,
    )
    scale = max(1.0, abs(value))
    converged = bool(result.success) or float(np.abs(free).max()) < GRADIENT_TOLERANCE * scale
    return np.exp(theta), bounded, converged


def fit(x, t_x, T) -> BgNbd:
    """Maximum-likelihood BG/NBD parameters for the histories (x, t_x, T), within
    SHAPE_BOUNDS (r, a, b) and SCALE_BOUNDS (alpha); the result says which ended on a bound."""
    x, t_x, T = _arrays(x, t_x, T)
    if x.size == 0:
        raise ValueError("no histories to fit")
    # Start from a purchase rate near the observed one, so the unit (weeks, months) matters not.
    rate = max(float(np.mean(x / np.maximum(T, np.finfo(float).tiny))), 1e-6)
    best, bounded, converged = maximise(
        _Objective(x, t_x, T),
        np.log([1.0, 1.0 / rate, 1.0, 1.0]),
        [SHAPE_BOUNDS, SCALE_BOUNDS, SHAPE_BOUNDS, SHAPE_BOUNDS],
    )
    r, alpha, a, b = (float(v) for v in best)
    total = float(log_likelihood(BgNbd(r, alpha, a, b), x, t_x, T).sum())
    names = tuple(name for name, hit in zip(NAMES, bounded, strict=True) if hit)
    return BgNbd(r, alpha, a, b, total, int(x.size), names, converged)


def _log_odds_dropped(model: BgNbd, x: Array, t_x: Array, T: Array) -> Array:
    """log of a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x), -inf for non-repeaters."""
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(
            x > 0,
            np.log(a) - np.log(b + x - 1) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x)),
            -np.inf,
        )


def p_alive(model: BgNbd, x, t_x, T) -> Array:
    """Probability that each customer is still alive at T (1 for those with no repeat)."""
    x, t_x, T = _arrays(x, t_x, T)
    return expit(-_log_odds_dropped(model, x, t_x, T))


def expected_purchases(model: BgNbd, t, x, t_x, T) -> Array:
    """Expected purchases in the next t periods given each history (eq. 10 of the paper)."""
    t, x, t_x, T = _arrays(t, x, t_x, T)
    return _purchases_if_alive(model, t, x, T) * expit(-_log_odds_dropped(model, x, t_x, T))


def expected_purchases_new(model: BgNbd, t) -> Array:
    """E[X(t)]: expected repeat purchases of a new customer in the t periods after the first."""
    t = np.asarray(t, dtype=float)
    return _purchases_if_alive(model, t, np.zeros_like(t), np.zeros_like(t))


def _purchases_if_alive(model: BgNbd, t: Array, x: Array, T: Array) -> Array:
    """Expected purchases in (T, T + t] of a customer alive at T after x repeat purchases.

    Given alive, the dropout probability is p ~ Beta(a, b + x), the rate lambda ~ Gamma(r + x,
    alpha + T), and a customer with both known buys (1 - exp(-lambda p t)) / p on average; so
    this is E[f(p)] with f(p) = (1 - (1 + p u)^-(r+x)) / p, u = t / (alpha + T), which lies
    between f(1) and f(0) = (r + x) u since f decreases.

    Eq. 10 gives it through 2F1(r+x, b+x; a+b+x-1; z); Euler's transformation of it leaves small
    parameters and a large c, so the series converges fast when x or t is large. For large a
    (a flat beta mixing, as when nobody seems to drop out) that form overflows; so do scipy's
    other routes in some corners (integer parameter differences). Results outside the bounds
    are then computed as E[f(p)] by Gauss-Jacobi quadrature, which is exact to about 1e-5 or
    better there (the tests compare both with high-precision integrals).
    """
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    with np.errstate(all="ignore"):
        shrink = np.exp((a - 1) * (np.log(alpha + T) - np.log(alpha + T + t)))
        series = hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, t / (alpha + T + t))
        value = (a + b + x - 1) / (a - 1) * (1 - shrink * series)
    s, u = r + x, t / (alpha + T)
    lowest, highest = -np.expm1(-s * np.log1p(u)), s * u
    wrong = ~((value >= lowest * (1 - 1e-9)) & (value <= highest * (1 + 1e-9)))
    if wrong.any():
        value = np.array(value, dtype=float, copy=True)
        value[wrong] = _beta_expectation(a, b + x[wrong], s[wrong], u[wrong])
    return value


QUADRATURE_NODES = 64


def _beta_expectation(a: float, b: Array, s: Array, u: Array) -> Array:
    """E[(1 - (1 + p u)^-s) / p] for p ~ Beta(a, b), by Gauss-Jacobi quadrature."""
    result = np.empty(b.shape)
    for value in np.unique(b):
        rows = b == value
        nodes, weights = _gauss_jacobi(a, float(value), QUADRATURE_NODES)
        p = nodes[np.newaxis, :]
        f = -np.expm1(-s[rows, np.newaxis] * np.log1p(p * u[rows, np.newaxis])) / p
        result[rows] = f @ weights
    return result


def _gauss_jacobi(a: float, b: float, n: int) -> tuple[Array, Array]:
    """Nodes and weights (summing to 1) of the n-point rule for the Beta(a, b) density on (0, 1).

    Golub-Welsch from the Jacobi recurrence, with normalised weights: scipy's roots_jacobi
    computes the weight total 2^(a+b-1) B(a, b) first, which overflows for large a and b.
    """
    from scipy.linalg import eigh_tridiagonal

    al, be = b - 1.0, a - 1.0  # Jacobi weight (1 - y)^al (1 + y)^be on (-1, 1), y = 2p - 1
    k = np.arange(n, dtype=float)
    total = 2 * k + al + be
    with np.errstate(divide="ignore", invalid="ignore"):
        diagonal = np.where(
            k == 0, (be - al) / (al + be + 2), (be**2 - al**2) / (total * (total + 2))
        )
        k = k[1:]
        total = 2 * k + al + be
        # The first term written with (k + al + be) cancelled, as al + be + 1 may be 0.
        squared = np.where(
            k == 1,
            4 * (1 + al) * (1 + be) / ((2 + al + be) ** 2 * (3 + al + be)),
            4 * k * (k + al) * (k + be) * (k + al + be) / (total**2 * (total + 1) * (total - 1)),
        )
    y, vectors = eigh_tridiagonal(diagonal, np.sqrt(squared))
    weights = vectors[0] ** 2
    return (1 + y) / 2, weights / weights.sum()


def simulate(model: BgNbd, T, rng: np.random.Generator) -> tuple[Array, Array, Array]:
    """Draw one history per entry of T from the BG/NBD process: (x, t_x, alive at T).

    N(T) counts the purchases a customer would make if they never dropped out; the dropout
    comes right after the J-th repeat purchase, J ~ Geometric(p), so x = min(N, J). Given N,
    purchase times are uniform order statistics on (0, T], hence t_x = T * Beta(x, N - x + 1).
    """
    T = np.asarray(T, dtype=float)
    rate = rng.gamma(model.r, 1.0 / model.alpha, T.shape)
    dropout = rng.beta(model.a, model.b, T.shape)
    would_buy = rng.poisson(rate * T)
    before_dropout = rng.geometric(dropout)
    x = np.minimum(would_buy, before_dropout)
    buyers = x > 0
    t_x = np.zeros_like(T)
    t_x[buyers] = T[buyers] * rng.beta(x[buyers], would_buy[buyers] - x[buyers] + 1)
    return x.astype(float), t_x, before_dropout > would_buy
