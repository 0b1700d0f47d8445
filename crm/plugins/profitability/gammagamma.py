"""The Gamma-Gamma spend model (Fader, Hardie and Lee 2005, "RFM and CLV: using iso-value
curves for customer base analysis").

Each purchase of a customer is worth z ~ Gamma(p, nu), nu varying across customers as
Gamma(q, gamma). It is fitted on the repeat buyers with x repeat purchases of mean value m,
independently of how often they buy (the model assumes spend and frequency are unrelated).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import digamma, gammaln

from crm.plugins.profitability.bgnbd import SCALE_BOUNDS, SHAPE_BOUNDS, maximise

Array = np.ndarray


NAMES = ("p", "q", "gamma")


@dataclass(frozen=True)
class GammaGamma:
    """Fitted (or given) Gamma-Gamma parameters; the other fields describe the fit: `bounded`
    names the parameters that stopped at a bound, `converged` is the optimiser's verdict."""

    p: float
    q: float
    gamma: float
    log_likelihood: float = float("nan")
    n: int = 0
    bounded: tuple[str, ...] = ()
    converged: bool = True

    @property
    def at_bound(self) -> bool:
        return bool(self.bounded)

    @property
    def status(self) -> str:
        """One sentence (Chinese) on how the fit ended, for the CLI."""
        if not self.converged:
            return "优化未正常结束：参数可能不是最优，请检查成交数据后重新拟合。"
        if self.bounded == ("p",):
            return (
                f"参数 p 停在上限 {SHAPE_BOUNDS[1]:g}：同一客户各次再购金额几乎相同，"
                "模型按每户金额固定处理，预测仍可用。"
            )
        if self.bounded:
            return (
                f"参数 {'、'.join(self.bounded)} 停在边界：数据不足以确定它，"
                "预测按边界值计算；成交数据更多后再拟合。"
            )
        return "已收敛，参数均在边界以内。"


def _arrays(*columns) -> list[Array]:
    return [np.asarray(c, dtype=float) for c in np.broadcast_arrays(*columns)]


def log_likelihood(model: GammaGamma, x, m) -> Array:
    """Log density of each mean spend m over x > 0 purchases (the paper's eq. 3 in logs)."""
    x, m = _arrays(x, m)
    p, q, g = model.p, model.q, model.gamma
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(g)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(g + m * x)
    )


class _Objective:
    """Mean negative log-likelihood and gradient over log-parameters (x, m > 0 only)."""

    def __init__(self, x: Array, m: Array):
        rows, counts = np.unique(np.column_stack([x, m]), axis=0, return_counts=True)
        self.weight = counts / counts.sum()
        self.x, self.m = rows[:, 0], rows[:, 1]
        self.x_values, self.x_index = np.unique(self.x, return_inverse=True)
        self.log_m, self.log_x, self.total = np.log(self.m), np.log(self.x), self.m * self.x

    def __call__(self, theta: Array) -> tuple[float, Array]:
        p, q, g = np.exp(theta)
        x, w, idx, xv = self.x, self.weight, self.x_index, self.x_values
        px = p * x
        log_spent = np.log(g + self.total)
        by_x = (gammaln(p * xv + q) - gammaln(p * xv))[idx]
        ll = by_x - gammaln(q) + q * np.log(g) + (px - 1) * self.log_m + px * self.log_x
        ll -= (px + q) * log_spent
        psi_pxq = digamma(p * xv + q)[idx]
        grad_p = x * (psi_pxq - digamma(p * xv)[idx] + self.log_m + self.log_x - log_spent)
        grad_q = psi_pxq - digamma(q) + np.log(g) - log_spent
        grad_g = q / g - (px + q) / (g + self.total)
        gradient = np.array([grad_p @ w, grad_q @ w, grad_g @ w])
        return -float(ll @ w), -gradient * np.exp(theta)


def fit(x, m) -> GammaGamma:
    """Maximum-likelihood parameters from the repeat buyers: rows with x > 0 and m > 0, p and
    q within SHAPE_BOUNDS; the result says which ended on a bound.

    Customers without a repeat purchase say nothing about repeat spend; a mean of zero (free
    repeat purchases only) has no Gamma density, so it is left out as well.
    """
    x, m = _arrays(x, m)
    keep = (x > 0) & (m > 0)
    x, m = x[keep], m[keep]
    if x.size == 0:
        raise ValueError("no repeat buyers to fit")
    # Moment-style start: individual means vary around E[z] = p * gamma / (q - 1).
    mean = float(np.average(m, weights=x))
    # p runs off when each customer's purchases are all worth about the same; q and p share
    # the shape bounds of BG/NBD for the same reason (a point mass beyond them).
    best, bounded, converged = maximise(
        _Objective(x, m), np.log([1.0, 2.0, mean]), [SHAPE_BOUNDS, SHAPE_BOUNDS, SCALE_BOUNDS]
    )
    p, q, g = (float(v) for v in best)
    total = float(log_likelihood(GammaGamma(p, q, g), x, m).sum())
    names = tuple(name for name, hit in zip(NAMES, bounded, strict=True) if hit)
    return GammaGamma(p, q, g, total, int(x.size), names, converged)


def expected_spend(model: GammaGamma, x, m) -> Array:
    """Expected value of a customer's future purchase given x repeat purchases of mean m: a
    weighted mean of the population mean p*gamma/(q-1) and the customer's own m (eq. 5).
    With x = 0 it is the population mean."""
    x, m = _arrays(x, m)
    p, q, g = model.p, model.q, model.gamma
    return p * (g + m * x) / (p * x + q - 1)


def simulate(model: GammaGamma, x, rng: np.random.Generator) -> Array:
    """Mean value of x purchases per customer from the Gamma-Gamma process (0 where x = 0)."""
    x = np.asarray(x, dtype=float)
    nu = rng.gamma(model.q, 1.0 / model.gamma, x.shape)
    buyers = x > 0
    mean = np.zeros_like(x)
    # The sum of x Gamma(p, nu) purchases is Gamma(p * x, nu).
    mean[buyers] = rng.gamma(model.p * x[buyers], 1.0 / nu[buyers]) / x[buyers]
    return mean
