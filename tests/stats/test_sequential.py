"""The sequential test: closed forms against numerical integration (scipy.integrate) and against
Brownian motion simulated on a fine grid; the reported p-value is exactly the decision rule."""

import itertools
import math

import numpy as np
import pytest
from scipy import integrate, special, stats

from meta_experiment.stats import sequential as s


@pytest.mark.parametrize("z,r", [(0.0, 1.0), (2.5, 3.0), (-1.0, 10.0), (4.0, 0.5)])
def test_e_value_is_the_one_sided_normal_mixture(z, r):
    """E+ = int_0^inf 2 phi(theta; 0, tau^2) exp(theta z - theta^2 / 2) dtheta (information 1, tau^2 = r)."""
    tau = math.sqrt(r)
    val, _ = integrate.quad(lambda th: 2 * stats.norm.pdf(th, 0, tau) * math.exp(th * z - th * th / 2), 0, np.inf)
    assert s.log_e_value(z, r) == pytest.approx(math.log(val), abs=1e-8)


@pytest.mark.parametrize("log_b,r0", [(3.0, 3.0), (2.0, 1.0), (4.0, 10.0)])
def test_crossing_probability_matches_numerical_integral(log_b, r0):
    """P(Z >= z*) + E[E+(Z, r0); Z < z*] / B, the expectation integrated numerically."""
    z_star = s._z_at(log_b, r0)
    below, _ = integrate.quad(lambda z: math.exp(s.log_e_value(z, r0)) * stats.norm.pdf(z), -np.inf, z_star)
    expected = stats.norm.sf(z_star) + below / math.exp(log_b)
    assert s.crossing_probability(log_b, r0) == pytest.approx(expected, abs=1e-9)


def test_mixture_threshold_is_tighter_than_ville_and_exact():
    for alpha in (0.005, 0.001):
        log_b = s.log_threshold(alpha)
        assert log_b < math.log(1 / alpha)
        assert s.crossing_probability(log_b) == pytest.approx(alpha, abs=1e-9)


def test_window_boundary_is_the_obrien_fleming_spending_function():
    """c solves 2 (1 - Phi(c)) = 0.8 alpha (reflection principle); spent(t) is Lan & DeMets'
    alpha*(t) = 2 - 2 Phi(z_{alpha_A/2} / sqrt(t)), which reaches alpha_A at t = 1."""
    for alpha in (0.025, 0.005):
        c = s.window_critical(alpha)
        assert 2 * stats.norm.sf(c) == pytest.approx(s.WINDOW_SHARE * alpha, rel=1e-12)
        assert s.spent(1.0, alpha) == pytest.approx(s.WINDOW_SHARE * alpha, rel=1e-12)
        assert s.spent(0.25, alpha) == pytest.approx(2 - 2 * stats.norm.cdf(stats.norm.isf(0.4 * alpha) / 0.5))
        assert s.spent(0.0, alpha) == 0.0 and s.spent(0.5, alpha) < s.spent(1.0, alpha)


def test_boundary_shape():
    """Early the e-process (about z = 3.7) is lower than boundary A; at the window's end A is
    c = 2.33; after the window only the e-process is left, so the boundary jumps up."""
    alpha = 0.025
    t0 = 1 / s.PLAN_MULTIPLE
    early, end, after = s.z_boundary(t0, alpha), s.z_boundary(1.0, alpha), s.z_boundary(1.0001, alpha)
    mixture_early = s._z_at(s.log_threshold(0.2 * alpha), s.mixture_information(t0))
    assert early == pytest.approx(mixture_early) and 3.5 < early < 3.9
    assert end == pytest.approx(stats.norm.isf(0.01)) and after > 3.5
    inside = [s.z_boundary(t0 * m, alpha) for m in (1, 2, 3, 4, 5, 6, 7)]
    assert all(a >= b for a, b in itertools.pairwise(inside))


@pytest.mark.parametrize("alpha", [0.025, 0.005])
@pytest.mark.parametrize("t", [0.05, 1 / 7, 0.4, 1.0, 1.5, 6.0])
def test_p_value_is_the_decision_rule(alpha, t):
    zb = s.z_boundary(t, alpha)
    assert s.p_value(zb + 1e-7, t) <= alpha < s.p_value(zb - 1e-4, t)


def test_p_value_is_monotone_and_bounded():
    for t in (0.2, 1.0, 3.0):
        ps = [s.p_value(z, t) for z in (-40.0, -2.0, 0.0, 1.0, 2.5, 4.0, 8.0, 60.0)]
        assert ps[0] == ps[1] == ps[2] == 1.0 and ps[-1] == 0.0
        assert all(a >= b for a, b in itertools.pairwise(ps))
    assert s.p_value(3.0, 0.0) == 1.0


def test_error_rate_simulated_on_brownian_motion():
    """Monte-Carlo check of the whole rule: Brownian motion in information time watched on a fine
    grid from the required size (t = 1/7) to 4x the window's end. The chance of ever crossing is at
    most alpha (both boundaries, union bound) and most of it is spent inside the window."""
    rng = np.random.default_rng(0)
    alpha, sims = 0.025, 4000
    grid = np.concatenate([np.linspace(1 / 7, 1, 600), np.geomspace(1.002, 4, 200)])
    steps = np.diff(np.concatenate([[0.0], grid]))
    w = np.cumsum(rng.normal(size=(sims, grid.size)) * np.sqrt(steps), axis=1)
    z = w / np.sqrt(grid)
    r = s.mixture_information(grid)
    sq = np.sqrt(r / (1 + r))
    log_e = np.log(2) - 0.5 * np.log1p(r) + z * z * r / (2 * (1 + r)) + special.log_ndtr(z * sq)
    a = (grid <= 1) & (w >= s.window_critical(alpha))
    b = log_e >= s.log_threshold(0.2 * alpha)
    ever = (a | b).any(axis=1).mean()
    inside = (a | b)[:, grid <= 1].any(axis=1).mean()
    se = math.sqrt(alpha * (1 - alpha) / sims)
    assert ever < alpha + 3 * se
    assert inside > 0.012  # nearly the whole budget is available where decisions happen


@pytest.mark.parametrize("looks", [7, 15])
def test_window_error_at_discrete_looks_by_multivariate_normal(looks):
    """Boundary A at equally spaced looks t_k = k / looks: P(some W(t_k) >= c) from scipy's
    multivariate normal CDF (Genz), covariance min(t_i, t_j). Discrete looks spend less than the
    continuous-monitoring budget 0.8 alpha, and not much less."""
    alpha = 0.025
    t = np.arange(1, looks + 1) / looks
    cov = np.minimum.outer(t, t)
    c = s.window_critical(alpha)
    mvn = stats.multivariate_normal(mean=np.zeros(looks), cov=cov, abseps=1e-7, releps=1e-7, maxpts=2_000_000)
    crossing = 1 - mvn.cdf(np.full(looks, c))
    assert crossing <= s.WINDOW_SHARE * alpha
    assert crossing > 0.55 * s.WINDOW_SHARE * alpha  # 7 looks: 1.24%, 15: 1.41%, 30: 1.54% of 2%


def test_mixture_waits_for_the_information_it_is_calibrated_from():
    """With unbalanced arms the required trial count can come before r0: only boundary A counts."""
    t = 0.9 / s.PLAN_MULTIPLE
    assert not s.mixture_active(t) and s.mixture_active(1 / s.PLAN_MULTIPLE)
    assert s.p_value(3.5, t) == pytest.approx(2 * stats.norm.sf(3.5 * math.sqrt(t)) / s.WINDOW_SHARE)
    assert s.z_boundary(t, 0.025) == pytest.approx(s.window_critical(0.025) / math.sqrt(t))
