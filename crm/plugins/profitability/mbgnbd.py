"""The MBG/NBD purchase model (Batislam, Denizel and Filiztekin 2007, "Empirical validation and
comparison of models for customer base analysis"; Wagner and Hoppe 2008, erratum).

As BG/NBD, but the customer may drop out right after every purchase, the first included: a
customer who never bought again may have been gone since the day they bought, and the longer
the silence the likelier that is. BG/NBD takes such a customer to be certainly alive, which for
home buyers (most buy once) keeps a repurchase forecast on every one-time buyer for ever.

While alive a customer buys at a Poisson rate lambda ~ Gamma(r, alpha); right after the first
purchase and after each repeat purchase they drop out for good with probability p ~ Beta(a, b).
A history is (x repeat purchases, t_x the time of the last one, T the time since the first),
in the caller's time unit; everything works on whole numpy arrays. Parameters, the fit's
bounds and its status sentence are those of `bgnbd` (the same four names, the same meaning).
"""

from __future__ import annotations

import numpy as np
from scipy.special import betaln, digamma, expit, gammaln

from crm.plugins.profitability import bgnbd
from crm.plugins.profitability.bgnbd import NAMES, SCALE_BOUNDS, SHAPE_BOUNDS, BgNbd, maximise

Array = np.ndarray
_arrays = bgnbd._arrays


def _log_odds_dropped(model: BgNbd, x: Array, t_x: Array, T: Array) -> Array:
    """log of a/(b+x) * ((alpha+T)/(alpha+t_x))^(r+x): the odds of "dropped out right after
    the last purchase" against "still alive", for every history (non-repeaters included)."""
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    return np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))


def log_likelihood(model: BgNbd, x, t_x, T) -> Array:
    """Log-likelihood of each history:
    Gamma(r+x) alpha^r / Gamma(r) * B(a, b+x+1)/B(a, b) * (alpha+T)^-(r+x) * (1 + odds)."""
    x, t_x, T = _arrays(x, t_x, T)
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    return (
        gammaln(r + x)
        - gammaln(r)
        + r * np.log(alpha)
        + betaln(a, b + x + 1)
        - betaln(a, b)
        - (r + x) * np.log(alpha + T)
        + np.logaddexp(0.0, _log_odds_dropped(model, x, t_x, T))
    )


class _Objective:
    """Mean negative log-likelihood and its gradient over log-parameters, on distinct
    (x, t_x, T) rows with counts (as bgnbd._Objective)."""

    def __init__(self, x: Array, t_x: Array, T: Array):
        rows, counts = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)
        self.weight = counts / counts.sum()
        self.x_values, self.x_index = np.unique(rows[:, 0], return_inverse=True)
        self.x, self.t_x, self.T = rows[:, 0], rows[:, 1], rows[:, 2]

    def __call__(self, theta: Array) -> tuple[float, Array]:
        r, alpha, a, b = np.exp(theta)
        xv, idx, x, w = self.x_values, self.x_index, self.x, self.weight
        log_T, log_tx = np.log(alpha + self.T), np.log(alpha + self.t_x)
        rx = r + x
        stays = -rx * log_T
        left = np.log(a) - np.log(b + x) - rx * log_tx
        mix = np.logaddexp(stays, left)
        share = np.exp(left - mix)  # posterior weight of "dropped out right after t_x"
        by_x = gammaln(r + xv) + gammaln(b + xv + 1) - gammaln(a + b + xv + 1)
        ll = by_x[idx] - gammaln(r) + r * np.log(alpha) + gammaln(a + b) - gammaln(b) + mix
        psi_a_b_x = digamma(a + b + xv + 1)[idx]
        grad_r = digamma(r + xv)[idx] - digamma(r) + np.log(alpha) - (1 - share) * log_T
        grad_r -= share * log_tx
        grad_alpha = r / alpha - rx * ((1 - share) / (alpha + self.T) + share / (alpha + self.t_x))
        psi_a_b = digamma(a + b)
        grad_a = psi_a_b - psi_a_b_x + share / a
        grad_b = digamma(b + xv + 1)[idx] - psi_a_b_x - digamma(b) + psi_a_b - share / (b + x)
        gradient = np.array([grad_r @ w, grad_alpha @ w, grad_a @ w, grad_b @ w])
        return -float(ll @ w), -gradient * np.exp(theta)


def fit(x, t_x, T) -> BgNbd:
    """Maximum-likelihood MBG/NBD parameters for the histories (x, t_x, T), within the bounds
    of bgnbd; the result says which ended on a bound and whether the optimiser converged."""
    x, t_x, T = _arrays(x, t_x, T)
    if x.size == 0:
        raise ValueError("no histories to fit")
    rate = max(float(np.mean(x / np.maximum(T, np.finfo(float).tiny))), 1e-6)
    best, bounded, converged = maximise(
        _Objective(x, t_x, T),
        np.log([1.0, 1.0 / rate, 1.0, 1.0]),
        [SHAPE_BOUNDS, SCALE_BOUNDS, SHAPE_BOUNDS, SHAPE_BOUNDS],
    )
    r, alpha, a, b = (float(v) for v in best)
    total = float(log_likelihood(BgNbd(r, alpha, a, b), x, t_x, T).sum())
    names = tuple(name for name, hit in zip(NAMES, bounded, strict=True) if hit)
    return BgNbd(r, alpha, a, b, total, int(x.size), names, converged, "购买（含首次）")


def p_alive(model: BgNbd, x, t_x, T) -> Array:
    """Probability that each customer is still alive at T: below 1 even without a repeat."""
    x, t_x, T = _arrays(x, t_x, T)
    return expit(-_log_odds_dropped(model, x, t_x, T))


def _survivor(model: BgNbd) -> BgNbd:
    """Given alive after x repeats, a customer survived x + 1 dropout chances, so p is
    Beta(a, b + x + 1): BG/NBD's conditional forecast (p ~ Beta(a, b + x)) with b one higher.
    Reusing it keeps its handling of a <= 1 and of overflowing series (Gauss-Jacobi)."""
    return BgNbd(model.r, model.alpha, model.a, model.b + 1)


def expected_purchases(model: BgNbd, t, x, t_x, T) -> Array:
    """Expected purchases in (T, T + t] given each history:
    (a+b+x)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x+1; a+b+x; t/(alpha+T+t))]
    times P(alive); the bracket is computed by bgnbd for any a > 0."""
    t, x, t_x, T = _arrays(t, x, t_x, T)
    if_alive = bgnbd._purchases_if_alive(_survivor(model), t, x, T)
    return if_alive * expit(-_log_odds_dropped(model, x, t_x, T))


def expected_purchases_new(model: BgNbd, t) -> Array:
    """E[X(t)]: expected repeat purchases of a new customer in the t periods after the first
    (b/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b+1; a+b; t/(alpha+t))] when a > 1)."""
    t = np.asarray(t, dtype=float)
    zero = np.zeros_like(t)
    stays = model.b / (model.a + model.b)  # survives the chance right after the first purchase
    return stays * bgnbd._purchases_if_alive(_survivor(model), t, zero, zero)


def simulate(model: BgNbd, T, rng: np.random.Generator) -> tuple[Array, Array, Array]:
    """Draw one history per entry of T from the MBG/NBD process: (x, t_x, alive at T).

    Dropout chances come right after the first purchase and after each repeat one; the first
    that succeeds is the G-th, G ~ Geometric(p), leaving G - 1 repeat purchases before it.
    With N(T) the purchases of a customer who never drops out, x = min(N, G - 1), and the
    customer is alive at T when all N + 1 chances failed.
    """
    T = np.asarray(T, dtype=float)
    rate = rng.gamma(model.r, 1.0 / model.alpha, T.shape)
    dropout = rng.beta(model.a, model.b, T.shape)
    would_buy = rng.poisson(rate * T)
    repeats_before_dropout = rng.geometric(dropout) - 1
    x = np.minimum(would_buy, repeats_before_dropout)
    buyers = x > 0
    t_x = np.zeros_like(T)
    t_x[buyers] = T[buyers] * rng.beta(x[buyers], would_buy[buyers] - x[buyers] + 1)
    return x.astype(float), t_x, repeats_before_dropout > would_buy
