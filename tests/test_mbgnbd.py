"""MBG/NBD: the likelihood against Batislam, Denizel and Filiztekin's formula written out, the
published CDNOW fit, parameter recovery on simulated customers, P(alive) below 1 for one-time
buyers, and the forecasts against the closed form and against simulation."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import approx_fprime
from scipy.special import hyp2f1

from crm.plugins.profitability import bgnbd, mbgnbd
from crm.plugins.profitability.bgnbd import BgNbd

TRUE = BgNbd(r=0.6, alpha=9.0, a=1.6, b=3.0)
HISTORIES = [(0, 0.0, 10.0), (0, 0.0, 0.5), (1, 2.5, 10.0), (4, 9.9, 10.0), (7, 3.0, 40.0)]
CDNOW = Path(__file__).resolve().parent / "data" / "cdnow"


def beta_function(a: float, b: float) -> float:
    return math.exp(math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))


def paper_likelihood(m: BgNbd, x: int, t_x: float, T: float) -> float:
    """L = Gamma(r+x) alpha^r / Gamma(r) * B(a, b+x+1)/B(a, b) * (alpha+T)^-(r+x)
    * [1 + a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x)]."""
    r, alpha, a, b = m.r, m.alpha, m.a, m.b
    poisson = math.exp(math.lgamma(r + x) - math.lgamma(r)) * alpha**r
    odds = a / (b + x) * ((alpha + T) / (alpha + t_x)) ** (r + x)
    return (
        poisson
        * beta_function(a, b + x + 1)
        / beta_function(a, b)
        / (alpha + T) ** (r + x)
        * (1 + odds)
    )


def closed_form(m: BgNbd, t: float, x: int, t_x: float, T: float) -> float:
    """The conditional expectation as printed (needs a > 1 to be read as a series sum)."""
    r, alpha, a, b = m.r, m.alpha, m.a, m.b
    z = t / (alpha + T + t)
    bracket = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(
        r + x, b + x + 1, a + b + x, z
    )
    odds = a / (b + x) * ((alpha + T) / (alpha + t_x)) ** (r + x)
    return (a + b + x) / (a - 1) * bracket / (1 + odds)


@pytest.fixture(scope="module")
def population():
    """100,000 simulated customers observed for 1 to 60 periods (fixed seed)."""
    rng = np.random.default_rng(20070301)
    T = rng.integers(1, 61, 100_000).astype(float)
    x, t_x, alive = mbgnbd.simulate(TRUE, T, rng)
    return x, t_x, T, alive


@pytest.mark.parametrize("model", [TRUE, BgNbd(0.525, 6.183, 0.891, 1.614), BgNbd(2, 1, 3, 0.5)])
def test_log_likelihood_matches_the_papers_formula(model):
    x, t_x, T = np.array(HISTORIES).T
    direct = [math.log(paper_likelihood(model, *history)) for history in HISTORIES]
    np.testing.assert_allclose(mbgnbd.log_likelihood(model, x, t_x, T), direct, rtol=1e-12)


def test_the_fitted_gradient_is_the_derivative_of_the_likelihood(population):
    x, t_x, T, _ = (column[:2000] for column in population)
    objective = mbgnbd._Objective(x, t_x, T)
    theta = np.log([0.4, 6.0, 1.2, 2.0])
    value, gradient = objective(theta)
    assert value == pytest.approx(-mbgnbd.log_likelihood(BgNbd(*np.exp(theta)), x, t_x, T).mean())
    numeric = approx_fprime(theta, lambda th: objective(th)[0], 1e-7)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-4, atol=1e-7)


def test_cdnow_fit_is_the_published_one():
    """lifetimes' documentation reports r 0.525, alpha 6.183, a 0.891, b 1.614 (weeks)."""
    with (CDNOW / "cdnow_customers_summary_with_transactions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    x, t_x, T = (np.array([float(row[k]) for row in rows]) for k in ("x", "t_x", "T"))
    model = mbgnbd.fit(x, t_x, T)
    assert model.n == 2357 and model.converged and not model.bounded
    got = [round(v, 3) for v in (model.r, model.alpha, model.a, model.b)]
    assert got == [0.525, 6.183, 0.891, 1.614]
    # It fits CDNOW about as well as BG/NBD (-9582.4), with a < 1: the forecasts below work.
    assert model.log_likelihood == pytest.approx(-9582.1, abs=0.1)
    assert model.a < 1
    forecast = mbgnbd.expected_purchases(model, 39, [2, 0], [30.43, 0], [38.86, 38])
    np.testing.assert_allclose(forecast, [1.2627, 0.15756], rtol=1e-4)


def test_fit_recovers_the_simulated_parameters(population):
    x, t_x, T, _ = population
    model = mbgnbd.fit(x, t_x, T)
    assert model.converged and not model.at_bound
    for name, tolerance in (("r", 0.05), ("alpha", 0.05), ("a", 0.2), ("b", 0.2)):
        assert getattr(model, name) == pytest.approx(getattr(TRUE, name), rel=tolerance), name
    assert model.a / (model.a + model.b) == pytest.approx(TRUE.a / (TRUE.a + TRUE.b), rel=0.05)
    at_truth = mbgnbd.log_likelihood(TRUE, x, t_x, T).sum()
    assert at_truth <= model.log_likelihood < at_truth + 20
    # BG/NBD fits the same customers worse: it cannot explain early silent dropouts.
    assert bgnbd.fit(x, t_x, T).log_likelihood < model.log_likelihood - 50


def test_p_alive_is_below_one_without_repeats_and_falls_with_silence(population):
    silent = mbgnbd.p_alive(TRUE, 0, 0, [0.0, 1.0, 12.0, 60.0, 240.0])
    assert silent[0] == pytest.approx(TRUE.b / (TRUE.a + TRUE.b))
    assert np.all(silent < 1) and np.all(np.diff(silent) < 0)
    gaps = mbgnbd.p_alive(TRUE, 3, [30, 20, 10, 1], 30)
    assert np.all(np.diff(gaps) < 0)
    x, t_x, T, alive = population
    assert mbgnbd.p_alive(TRUE, x, t_x, T).mean() == pytest.approx(alive.mean(), abs=0.006)
    one_time = x == 0
    assert mbgnbd.p_alive(TRUE, 0, 0, T[one_time]).mean() == pytest.approx(
        alive[one_time].mean(), abs=0.01
    )


def test_expected_purchases_match_the_closed_form_and_the_simulation(population):
    for history in [(12.0, 0, 0.0, 30.0), (12.0, 3, 20.0, 30.0), (52.0, 7, 3.0, 40.0)]:
        assert mbgnbd.expected_purchases(TRUE, *history) == pytest.approx(
            closed_form(TRUE, *history), rel=1e-9
        )
    for t in (1.0, 12.0, 100.0):
        assert mbgnbd.expected_purchases(TRUE, t, 0, 0, 0) == pytest.approx(
            mbgnbd.expected_purchases_new(TRUE, t), rel=1e-10
        )
    x, t_x, T, _ = population
    for horizon in (12.0, 48.0):
        observed = x[T == horizon]
        assert mbgnbd.expected_purchases_new(TRUE, horizon) == pytest.approx(
            observed.mean(), abs=4 * observed.std() / math.sqrt(observed.size)
        )
    at = T == 24.0
    forecast = mbgnbd.expected_purchases(TRUE, 12, x[at], t_x[at], T[at]).mean()
    growth = mbgnbd.expected_purchases_new(TRUE, 36.0) - mbgnbd.expected_purchases_new(TRUE, 24.0)
    assert forecast == pytest.approx(growth, rel=0.05)


@pytest.mark.parametrize("a", [0.4, 1.0])
def test_forecasts_work_without_the_closed_form(a):
    """For a <= 1 the printed form has no finite series sum; the forecast is then E[f(p)]
    by quadrature, which must agree with a brute-force integral over p."""
    from scipy.integrate import quad
    from scipy.stats import beta as beta_law

    model = BgNbd(0.6, 9.0, a, 3.0)
    t, x, t_x, T = 24.0, 2, 10.0, 30.0
    s, u = model.r + x, t / (model.alpha + T)
    density = beta_law(model.a, model.b + x + 1).pdf
    if_alive = quad(lambda p: -math.expm1(-s * math.log1p(p * u)) / p * density(p), 0, 1)[0]
    expected = if_alive * mbgnbd.p_alive(model, x, t_x, T)
    value = mbgnbd.expected_purchases(model, t, x, t_x, T)
    assert np.isfinite(value) and value == pytest.approx(float(expected), rel=1e-5)
