"""Monte-Carlo simulation of auto mode: an experiment re-analysed after every recorded trial from
`sample_size_required` up to `horizon` x that many, deciding with our policy (on the primary metric
alone, or with the implicit guardrail success_rate) or with the seed's peeking rule. Vectorised
over simulated experiments (the same formulas as `metric.py`, `sequential.py` and the guardrail
rule of `analysis.py`, checked against `analyze` + `policy.decide` in tests/stats/test_simulate.py
and tests/stats/test_simulate_guardrail.py). Used by bench/validate_decisions.py and by the fast
validation tests; no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special, stats

from ..allocation import block_shape
from . import sequential
from .analysis import CAUTION_P
from .binary import SMALL_EXPECTED
from .numeric import Z_CAP
from .plan import MIN_PER_ARM

SETTINGS = ("normal", "lognormal", "binary")
NORMAL_MEAN, NORMAL_SD = 45.0, 9.0  # minutes: the seed's example (control 45.2 +- 8.3 min)
LOGNORMAL_SIGMA = 0.8  # sd of log duration (heavy-tailed; CV 0.95)
BINARY_RATE = 0.5  # success rate of the control arm


@dataclass(frozen=True)
class Rates:
    promote: float
    rollback: float
    sims: int
    mean_trials_to_decision: float | None = None


def generate(
    setting: str,
    n_required: int,
    sims: int,
    effect: float,
    rng: np.random.Generator,
    horizon: int = 7,
    treatment_percent: int = 50,
) -> tuple[np.ndarray, np.ndarray]:
    """(arm, value) matrices of shape (sims, horizon * n_required), in recording order; arm 1 is the
    treatment, assigned by permuted blocks as allocation.block_arm does (of 2 at 50%, else of
    100 / gcd(percent, 100)). `effect` is the true relative improvement: durations scaled by
    (1 - effect) (lower is better), the success rate by (1 + effect) (higher is better)."""
    n = horizon * n_required
    arm = _blocks(sims, n, treatment_percent, rng)
    if setting == "normal":
        x = rng.normal(NORMAL_MEAN, NORMAL_SD, size=(sims, n))
        x = np.where(arm == 1, x * (1 - effect), x)
    elif setting == "lognormal":
        mu = np.log(NORMAL_MEAN) - LOGNORMAL_SIGMA**2 / 2  # mean NORMAL_MEAN
        x = np.exp(rng.normal(mu, LOGNORMAL_SIGMA, size=(sims, n)))
        x = np.where(arm == 1, x * (1 - effect), x)
    elif setting == "binary":
        u = rng.random((sims, n))
        x = (u < np.where(arm == 1, BINARY_RATE * (1 + effect), BINARY_RATE)).astype(float)
    else:
        raise ValueError(f"unknown setting {setting!r}; known: {', '.join(SETTINGS)}")
    return arm, x


def _blocks(sims: int, n: int, treatment_percent: int, rng: np.random.Generator) -> np.ndarray:
    """Arms (1 = treatment) of `n` trials in permuted blocks, one row per simulated experiment: each
    block of 100 / gcd(percent, 100) trials holds percent / gcd treatment trials in a uniformly
    random order (allocation._permuted_block draws its order from a hash instead)."""
    if treatment_percent == 50:  # blocks of two: one coin per block (the draws of earlier versions)
        blocks = (n + 1) // 2
        first = rng.integers(0, 2, size=(sims, blocks), dtype=np.int8)
        arm = np.empty((sims, 2 * blocks), dtype=np.int8)
        arm[:, 0::2], arm[:, 1::2] = first, 1 - first
        return arm[:, :n]
    size, k = block_shape(treatment_percent)
    blocks = -(-n // size)
    ranks = rng.random((sims, blocks, size)).argsort(axis=2)  # a uniform permutation per block
    return (ranks < k).astype(np.int8).reshape(sims, blocks * size)[:, :n]


def _cumulative(arm: np.ndarray, x: np.ndarray, n_required: int) -> tuple[np.ndarray, ...]:
    """Per look (columns from n_required total on): n, mean, sample variance of each arm."""
    t = arm == 1
    out = []
    for mask in (~t, t):
        n = np.cumsum(mask, axis=1)[:, n_required - 1 :].astype(float)
        s = np.cumsum(np.where(mask, x, 0.0), axis=1)[:, n_required - 1 :]
        q = np.cumsum(np.where(mask, x * x, 0.0), axis=1)[:, n_required - 1 :]
        mean = s / np.maximum(n, 1)
        var = np.maximum(q - n * mean * mean, 0.0) / np.maximum(n - 1, 1)
        out += [n, mean, var]
    return tuple(out)


def _first(promote: np.ndarray, rollback: np.ndarray, first_look_n: int) -> Rates:
    looks = promote.shape[1]
    ip = np.where(promote.any(axis=1), promote.argmax(axis=1), looks)
    ir = np.where(rollback.any(axis=1), rollback.argmax(axis=1), looks)
    stop = np.minimum(ip, ir)
    decided = stop < looks
    mean_n = float(stop[decided].mean() + first_look_n) if decided.any() else None
    promoted = decided & (ip <= ir)  # the policy checks promotion first
    return Rates(float(promoted.mean()), float((ir < ip).mean()), promote.shape[0], mean_n)


def welch_z(nc, mc, vc, nt, mt, vt) -> tuple[np.ndarray, np.ndarray]:
    """Welch t of treatment minus control mapped to z by equal tail (numeric.t_to_z), and the
    t-test p (two-sided); z = 0 and p = 1 where the test is undefined (an arm with fewer than 2 values)."""
    a, b = vt / np.maximum(nt, 1), vc / np.maximum(nc, 1)  # an empty arm has variance 0 (_cumulative)
    se2 = a + b
    ok = (se2 > 0) & (nc > 1) & (nt > 1)
    se2s = np.where(ok, se2, 1.0)
    t = np.where(ok, (mt - mc) / np.sqrt(se2s), 0.0)
    df = np.where(ok, se2s**2 / np.where(ok, a * a / np.maximum(nt - 1, 1) + b * b / np.maximum(nc - 1, 1), 1.0), 1.0)
    log_tail = stats.t.logsf(np.abs(t), df)
    z = np.sign(t) * np.minimum(-special.ndtri_exp(log_tail), Z_CAP)
    return np.where(ok, z, 0.0), np.where(ok, 2 * np.exp(log_tail), 1.0)


def pooled_z(nc, mc, nt, mt) -> np.ndarray:
    """Pooled two-proportion z (binary.pooled_z), 0 when every outcome is the same or an arm is empty."""
    both = (nc > 0) & (nt > 0)
    p = (nc * mc + nt * mt) / np.maximum(nc + nt, 1)
    var = np.where(both, p * (1 - p) * (1 / np.maximum(nc, 1) + 1 / np.maximum(nt, 1)), 0.0)
    return np.where(var > 0, (mt - mc) / np.sqrt(np.where(var > 0, var, 1.0)), 0.0)


def log_e(z: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Vectorised sequential.log_e_value."""
    s = np.sqrt(r / (1 + r))
    return np.log(2) - 0.5 * np.log1p(r) + z * z * r / (2 * (1 + r)) + special.log_ndtr(z * s)


def generate_success(shape: tuple[int, ...], crash_rate: float, rng: np.random.Generator) -> np.ndarray:
    """Success flags (True: recorded with success=true) for `generate`'s trials: Bernoulli(1 -
    crash_rate) in both arms, independent of the primary metric, so the implicit guardrail
    success_rate has no true effect. The uniforms drawn do not depend on crash_rate: a generator in
    the same state gives nested crash sets at every rate (common random numbers)."""
    return rng.random(shape) >= crash_rate


@dataclass(frozen=True)
class _Information:
    """Per look: sequential.fraction (as sqrt t), in_window, mixture_information and mixture_active."""

    sqrt_t: np.ndarray
    window: np.ndarray
    r: np.ndarray
    mixture: np.ndarray

    def reaches(self, z: np.ndarray, level: float) -> np.ndarray:
        """z >= sequential.z_boundary(t, level): boundary A or B at one-sided `level` (the repeated
        p-value is <= level exactly there, so Holm's comparisons become boundaries at level / k)."""
        c = sequential.window_critical(level)
        log_b = sequential.log_threshold((1 - sequential.WINDOW_SHARE) * level)
        with np.errstate(invalid="ignore"):
            return (self.window & (z * self.sqrt_t >= c)) | (self.mixture & (log_e(z, self.r) >= log_b))


def looks(
    arm: np.ndarray,
    x: np.ndarray,
    setting: str,
    n_required: int,
    *,
    success: np.ndarray | None = None,
    log_scale: bool = False,
    alpha: float = 0.05,
    threshold: float = 15.0,
    max_regression: float = 10.0,
    treatment_percent: int = 50,
    min_per_arm: int = MIN_PER_ARM,
) -> tuple[np.ndarray, np.ndarray]:
    """(promote, rollback), each of shape (sims, looks): whether policy.decide would promote, or
    roll back, at each look (columns from n_required total trials on); promote wins a look where
    both hold, as in the policy. `treatment_percent` is the split `generate` assigned with: the
    information fraction is sequential.fraction with control_share = 1 - percent / 100.

    No decision at a look where an arm has fewer than `min_per_arm` values (policy.decide's floor,
    plan.MIN_PER_ARM; another value only to measure what the floor does). The sample-ratio check
    is left out: it never fires on the counts that permuted blocks allow at the offered splits
    (models.TREATMENT_PERCENTS, blocks of at most 10; tests/test_split.py checks every
    arrangement from the first trial on).

    Primary: promote when the sequential test reaches its improvement boundary and the improvement
    exceeds `threshold` % (and, on the log scale, the arithmetic means do not regress beyond
    `max_regression` %); roll back when it reaches its regression boundary and the regression
    exceeds `max_regression` %. The boundary is A inside the planned window or the e-process B, as
    `sequential.z_boundary`; looks past the window (a `horizon` in `generate` above
    sequential.PLAN_MULTIPLE) have only B.

    `success` (from `generate_success`) adds the implicit guardrail success_rate, as
    analysis._guardrails and policy.decide treat it: its tolerance is `max_regression` (the implicit
    spec has no override, so Targets.max_regression applies). Promotion is withheld where its
    regression is beyond the tolerance and the one-sided fixed-horizon p (Fisher's exact test when an
    expected count is below 5, else the pooled z) is <= alpha ("detected"; Holm over one guardrail
    is the p itself) or <= CAUTION_P ("suspected"), or where an arm has no trials. Rollback becomes
    Holm across the primary and success_rate on always-valid p-values at alpha / 2, so success_rate
    can also roll back. Without `success` (the primary alone) there is no Holm: the trials carry no
    success flags."""
    binary = setting == "binary"
    nc, mc, vc, nt, mt, vt = _cumulative(arm, np.log(x) if log_scale else x, n_required)
    if binary:
        z = pooled_z(nc, mc, nt, mt)
        active = (nc > 0) & (nt > 0)  # the pooled z exists (0 when every outcome is the same)
        with np.errstate(divide="ignore", invalid="ignore"):
            # from a zero control rate any increase beats the threshold (policy: change_from_zero)
            from_zero = np.where(mt > 0, np.inf, np.nan)
            imp = np.where(mc > 0, (mt - mc) / np.where(mc > 0, mc, 1.0) * 100, from_zero)
    else:
        z, _ = welch_z(nc, mc, vc, nt, mt, vt)
        z = -z  # lower is better
        active = _welch_defined(nc, vc, nt, vt)
        with np.errstate(divide="ignore", invalid="ignore"):  # an empty control arm (mean 0): no decision there
            imp = -np.expm1(mt - mc) * 100 if log_scale else (mc - mt) / np.abs(mc) * 100
    # sequential.fraction with the product's control_share (models.Experiment.control_share), in its
    # order of operations; sequential.in_window allows for the rounding that puts the window's last
    # look at t = 1 + 2.2e-16 at 10%, 20%, 80% or 90%
    control_share = 1 - treatment_percent / 100
    t = (nc * nt / (nc + nt)) / (sequential.PLAN_MULTIPLE * n_required * control_share * (1 - control_share))
    r = sequential.MIXTURE_R0 * sequential.PLAN_MULTIPLE * t  # sequential.mixture_information, vectorised
    window = t <= 1.0 + sequential.WINDOW_ROUNDING
    info = _Information(np.sqrt(t), window, r, r >= sequential.MIXTURE_R0 * (1 - 1e-9))
    half = alpha / 2
    down = info.reaches(-z, half)
    with np.errstate(invalid="ignore"):
        promote = info.reaches(z, half) & (imp > threshold)
        beyond = -imp > max_regression
    if log_scale:  # policy._original_scale: the arithmetic means must not regress beyond max_regression
        _, raw_mc, _, _, raw_mt, _ = _cumulative(arm, x, n_required)
        with np.errstate(divide="ignore", invalid="ignore"):
            promote &= (raw_mc - raw_mt) / np.abs(raw_mc) * 100 >= -max_regression
    # policy.decide: "Sample size adequate" needs min_per_arm values in each arm (no look before
    # n_required exists here); the sequential test, so promotion and every rollback, waits for it
    floor = np.minimum(nc, nt) >= min_per_arm
    promote &= floor
    if success is None:
        return promote, down & beyond & floor
    xc, xt = _successes(arm, success, n_required)
    blocks, g_beyond, g_z, g_active = _success_rate(xc, nc, xt, nt, max_regression, alpha)
    g_down = info.reaches(-g_z, half) & g_active
    # Holm (1979) over two always-valid p-values at alpha / 2 (policy._rollback_reasons): a
    # hypothesis is rejected when its p <= alpha / 2 and the smaller p <= alpha / 4; with one
    # (success_rate inactive) its own p <= alpha / 2
    smaller = info.reaches(-z, half / 2) | (g_active & info.reaches(-g_z, half / 2)) | ~g_active
    rollback = floor & active & smaller & ((down & beyond) | (g_down & g_beyond))
    return promote & ~blocks, rollback


def _welch_defined(nc: np.ndarray, vc: np.ndarray, nt: np.ndarray, vt: np.ndarray) -> np.ndarray:
    """Where Welch's test exists (continuous.why_undefined is None): 2 values per arm, not both constant."""
    return (vt / np.maximum(nt, 1) + vc / np.maximum(nc, 1) > 0) & (nc > 1) & (nt > 1)


def _successes(arm: np.ndarray, success: np.ndarray, n_required: int) -> tuple[np.ndarray, np.ndarray]:
    """Per look: trials recorded with success=true in control and in treatment."""
    t = arm == 1
    xc, xt = (np.cumsum(success & m, axis=1)[:, n_required - 1 :].astype(float) for m in (~t, t))
    return xc, xt


def _success_rate(
    xc: np.ndarray, nc: np.ndarray, xt: np.ndarray, nt: np.ndarray, limit: float, alpha: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The implicit guardrail success_rate per look (analysis.rate_summary, metric._binary,
    analysis._guardrails): (blocks promotion, regression beyond `limit` %, the pooled z oriented so
    that positive is better, has values in both arms)."""
    checked = (nc >= 1) & (nt >= 1)  # guardrails.has_data for a yes/no metric
    ncs, nts = np.maximum(nc, 1), np.maximum(nt, 1)
    pc, pt = xc / ncs, xt / nts
    with np.errstate(divide="ignore", invalid="ignore"):
        regression = -((pt / pc - 1) * 100) + 0.0  # -improvement_pct, defined when x_c > 0
    # from a zero control rate the success rate cannot get worse: never worse_from_zero
    beyond = checked & (xc > 0) & (regression > limit)
    n, x = nc + nt, xc + xt
    p = x / np.maximum(n, 1)
    var = p * (1 - p) * (1 / ncs + 1 / nts)  # binary.pooled_se
    z = np.where(checked & (var > 0), (pt - pc) / np.sqrt(np.where(var > 0, var, 1.0)), 0.0)
    # one-sided p of a lower treatment rate (metric._binary), needed only where beyond the tolerance:
    # Fisher's exact test when an expected count is below 5 (binary.needs_exact), else the pooled z
    p_one = np.ones_like(z)
    with np.errstate(divide="ignore", invalid="ignore"):
        low = np.minimum(np.minimum(nc * x / n, nc * (n - x) / n), np.minimum(nt * x / n, nt * (n - x) / n))
    exact = beyond & (low < SMALL_EXPECTED)
    if exact.any():
        # scipy.stats.fisher_exact([[x_t, n_t - x_t], [x_c, n_c - x_c]], "less"): P(X <= x_t) with
        # X hypergeometric; 1 when a margin is 0
        k, total, drawn, good = (a[exact].astype(np.int64) for a in (xt, n, nt, x))
        fisher = np.minimum(stats.hypergeom.cdf(k, total, drawn, good), 1.0)
        p_one[exact] = np.where((good == 0) | (good == total), 1.0, fisher)
    approx = beyond & ~exact
    p_one[approx] = stats.norm.cdf(z[approx])  # binary.z_test_p(z, "smaller")
    p_one = np.clip(p_one, 0.0, 1.0)
    # detected (Holm over the one guardrail: p itself, at alpha) or suspected (p <= CAUTION_P)
    blocks = ~checked | (beyond & ((p_one <= alpha) | (p_one <= CAUTION_P)))
    return blocks, beyond, z, checked


def ours(arm: np.ndarray, x: np.ndarray, setting: str, n_required: int, **options: Any) -> Rates:
    """Auto mode with policy.decide: the first decision of each simulated experiment, from `looks`
    with the same keyword options (the primary metric alone, or with the implicit guardrail
    success_rate when `success` is given)."""
    return _first(*looks(arm, x, setting, n_required, **options), n_required)


def seed_rule(
    arm: np.ndarray,
    x: np.ndarray,
    setting: str,
    n_required: int,
    *,
    threshold: float = 15.0,
    max_regression: float = 10.0,
    critical_p: float = 0.05,
) -> Rates:
    """The seed's auto mode: Student t-test (scipy ttest_ind) on the raw values at every look,
    p < critical_p and improvement > threshold -> promote; p < critical_p and regression >
    max_regression -> rollback."""
    nc, mc, vc, nt, mt, vt = _cumulative(arm, x, n_required)
    df = nc + nt - 2
    with np.errstate(divide="ignore", invalid="ignore"):  # an empty arm: se2 is inf or nan, no test
        pooled = ((nc - 1) * vc + (nt - 1) * vt) / df
        se2 = pooled * (1 / nc + 1 / nt)
    ok = np.isfinite(se2) & (se2 > 0)
    t = np.where(ok, (mt - mc) / np.sqrt(np.where(ok, se2, 1.0)), 0.0)
    p = np.where(ok, 2 * stats.t.sf(np.abs(t), df), 1.0)
    sign = 1.0 if setting == "binary" else -1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        imp = np.where(mc != 0, sign * (mt - mc) / np.abs(np.where(mc != 0, mc, 1.0)) * 100, np.nan)
        sig = p < critical_p
        return _first(sig & (imp > threshold), sig & (-imp > max_regression), n_required)
