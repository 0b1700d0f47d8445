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


@dataclass(frozen=True)
class BgNbd:
    """Fitted (or given) BG/NBD parameters; `log_likelihood` and `n` describe the fit."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = float("nan")
    n: int = 0


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


def maximise(objective, start: Array) -> Array:
    """Parameters maximising a log-likelihood given as (mean negative value, gradient) over
    log-parameters; returns the parameters themselves.

    A multithreaded BLAS spends milliseconds waking threads for each tiny quasi-Newton step on
    a handful of parameters (about 25x the optimiser's own work on CDNOW), so it gets one.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        result = minimize(
            objective,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=[(-25.0, 25.0)] * len(start),  # keeps exp() finite on a wild step
            options={"ftol": 1e-13, "gtol": 1e-9, "maxiter": 2000},
        )
    if not result.success:
        raise RuntimeError(f"maximum likelihood did not converge: {result.message}")
    return np.exp(result.x)


def fit(x, t_x, T) -> BgNbd:
    """Maximum-likelihood BG/NBD parameters for the histories (x, t_x, T)."""
    x, t_x, T = _arrays(x, t_x, T)
    if x.size == 0:
        raise ValueError("no histories to fit")
    # Start from a purchase rate near the observed one, so the unit (weeks, months) matters not.
    rate = max(float(np.mean(x / np.maximum(T, np.finfo(float).tiny))), 1e-6)
    best = maximise(_Objective(x, t_x, T), np.log([1.0, 1.0 / rate, 1.0, 1.0]))
    r, alpha, a, b = (float(v) for v in best)
    total = float(log_likelihood(BgNbd(r, alpha, a, b), x, t_x, T).sum())
    return BgNbd(r, alpha, a, b, log_likelihood=total, n=int(x.size))


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
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    # Euler's transformation of eq. 10's 2F1(r+x, b+x; a+b+x-1; z) leaves small parameters
    # and a large c: the series converges fast and nothing overflows when x or t is large.
    shrink = np.exp((a - 1) * (np.log(alpha + T) - np.log(alpha + T + t)))
    future = 1 - shrink * hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, t / (alpha + T + t))
    return (a + b + x - 1) / (a - 1) * future * expit(-_log_odds_dropped(model, x, t_x, T))


def expected_purchases_new(model: BgNbd, t) -> Array:
    """E[X(t)]: expected repeat purchases of a new customer in the t periods after the first."""
    t = np.asarray(t, dtype=float)
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    shrink = np.exp((a - 1) * (np.log(alpha) - np.log(alpha + t)))
    return (
        (a + b - 1)
        / (a - 1)
        * (1 - shrink * hyp2f1(a + b - 1 - r, a - 1, a + b - 1, t / (alpha + t)))
    )


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
