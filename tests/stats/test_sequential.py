"""The always-valid e-process: closed forms against numerical integration (scipy.integrate)."""

import itertools
import math

import numpy as np
import pytest
from scipy import integrate, stats

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


def test_threshold_is_tighter_than_ville_and_exact():
    for alpha in (0.025, 0.005):
        log_b = s.log_threshold(alpha)
        assert log_b < math.log(1 / alpha)
        assert s.crossing_probability(log_b) == pytest.approx(alpha, abs=1e-9)
        assert s.always_valid_p(log_b) == pytest.approx(alpha, abs=1e-9)


def test_always_valid_p_is_monotone_and_bounded():
    ps = [s.always_valid_p(x) for x in (-5.0, 0.0, 0.5, 2.0, 5.0, 20.0, 800.0)]
    assert ps[0] == ps[1] == 1.0 and ps[-1] == 0.0
    assert all(a >= b for a, b in itertools.pairwise(ps))


def test_boundary_is_flat_over_the_window():
    """About z = 3 from 1x to 7x the required size (r = r0 .. 7 r0) at alpha 0.025."""
    zs = [s.z_boundary(s.MIXTURE_R0 * m, 0.025) for m in (1, 2, 3, 5, 7)]
    assert max(zs) - min(zs) < 0.15 and 2.9 < min(zs) < 3.2


def test_crossing_simulated_on_brownian_motion():
    """Monte-Carlo check of the closed form: Brownian motion watched on a fine grid from r0 to 400 r0."""
    rng = np.random.default_rng(0)
    r0, log_b = s.MIXTURE_R0, s.log_threshold(0.025)
    grid = r0 * np.geomspace(1, 400, 800)
    steps = np.diff(np.concatenate([[0.0], grid]))
    w = np.cumsum(rng.normal(size=(4000, grid.size)) * np.sqrt(steps), axis=1)
    z = w / np.sqrt(grid)
    sq = np.sqrt(grid / (1 + grid))
    from scipy import special

    le = np.log(2) - 0.5 * np.log1p(grid) + z * z * grid / (2 * (1 + grid)) + special.log_ndtr(z * sq)
    rate = (le >= log_b).any(axis=1).mean()
    assert rate < 0.025 + 3 * math.sqrt(0.025 * 0.975 / 4000)
    assert rate > 0.01  # not wildly conservative either
