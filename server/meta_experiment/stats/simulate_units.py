"""Monte-Carlo check of auto mode when trials come from sticky units: each unit (a PR, a task, a
session) has its own level, so the trials of one unit are correlated, and all of them land in the
unit's arm. Auto mode re-analyses after every trial from `sample_size_required` to `horizon` x
that many; the primary metric decides, tested with the cluster-robust variances the engine uses
(`Summary.clustered`) or, for comparison, as if every trial were independent.

The decision at a look mirrors `analyze` + `policy.decide` for this data (the implicit
success_rate guardrail constant at 1, no other guardrail): promote when the always-valid z reaches
the boundary at alpha/2, the improvement beats `improvement_threshold` and, on the log scale, the
arithmetic mean is not worse beyond `max_regression`, with no sample-ratio mismatch (units
counted); roll back when the regression z reaches the boundary at alpha/4 (Holm over the primary
and success_rate, whose p is 1) and the regression exceeds `max_regression`. Neither before each
arm has plan.MIN_PER_ARM values (sticky arms can be uneven for a while).
tests/stats/test_simulate_units.py checks the mirror against `analyze` look by look. Used by
bench/validate_units.py; no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import special, stats

from ..models import Targets
from . import sequential
from .numeric import Z_CAP
from .plan import MIN_PER_ARM
from .simulate import LOGNORMAL_SIGMA, NORMAL_MEAN, NORMAL_SD
from .srm import srm_check
from .summary import Summary

SETTINGS = ("normal", "lognormal")


@dataclass(frozen=True)
class Stream:
    """One simulated experiment in recording order: arm (1 = treatment), unit id and value of each trial."""

    arm: np.ndarray
    unit: np.ndarray
    x: np.ndarray


def generate(
    setting: str,
    trials: int,
    rng: np.random.Generator,
    icc: float,
    new_unit_share: float,
    effect: float = 0.0,
    treatment_percent: int = 50,
) -> Stream:
    """Trial 0 comes from a new unit; each later trial from a new unit with probability
    `new_unit_share`, else from a uniformly chosen earlier unit. A unit's arm is a coin that lands
    on the treatment with probability treatment_percent / 100 (sticky assignment). The value is the
    unit's level plus the trial's own noise, `icc` of the variance between units (on the log scale
    for lognormal); the total spread is that of simulate.py's settings, and the treatment scales
    durations by (1 - effect)."""
    new = rng.random(trials) < new_unit_share
    new[0] = True
    unit = np.cumsum(new) - 1
    for i in np.flatnonzero(~new):
        unit[i] = rng.integers(unit[i] + 1)  # one of the units seen so far
    units = int(unit.max()) + 1
    if treatment_percent == 50:  # a fair coin: the draws of earlier versions
        unit_arm = rng.integers(0, 2, size=units, dtype=np.int8)
    else:
        unit_arm = (rng.random(units) < treatment_percent / 100).astype(np.int8)
    arm = unit_arm[unit]
    if setting == "normal":
        level = rng.normal(0, NORMAL_SD * math.sqrt(icc), size=units)
        x = NORMAL_MEAN + level[unit] + rng.normal(0, NORMAL_SD * math.sqrt(1 - icc), size=trials)
    elif setting == "lognormal":
        mu = math.log(NORMAL_MEAN) - LOGNORMAL_SIGMA**2 / 2
        level = rng.normal(0, LOGNORMAL_SIGMA * math.sqrt(icc), size=units)
        x = np.exp(mu + level[unit] + rng.normal(0, LOGNORMAL_SIGMA * math.sqrt(1 - icc), size=trials))
    else:
        raise ValueError(f"unknown setting {setting!r}; known: {', '.join(SETTINGS)}")
    x = np.where(arm == 1, x * (1 - effect), x)
    return Stream(arm, unit, x)


def _arm_looks(values: np.ndarray, units: np.ndarray) -> dict[str, np.ndarray]:
    """After each of an arm's values: n, mean, M2, the number of units and sum_c (s_c - mean n_c)^2,
    kept with the increments of store.ClusterSums (values shifted by the first)."""
    n = values.size
    out = {k: np.zeros(n) for k in ("n", "mean", "m2", "clusters", "unit_ss")}
    if n == 0:
        return out
    shift = values[0]
    sums: dict[int, list[float]] = {}
    total = m2 = mean = a = b = d = 0.0
    repeats = 0
    for i in range(n):
        y = float(values[i] - shift)
        prior = sums.setdefault(int(units[i]), [0, 0.0])
        pn, ps = prior
        repeats += pn > 0
        a, b, d = a + 2 * ps * y, b + ps + y * pn, d + 2 * pn
        prior[0], prior[1] = pn + 1, ps + y
        k = i + 1
        delta = y - mean  # Welford on the shifted values, as RunningStats
        mean += delta / k
        m2 = max(0.0, m2 + delta * (y - mean))
        total += y
        out["n"][i], out["mean"][i], out["m2"][i] = k, shift + mean, m2
        out["clusters"][i] = k - repeats
        out["unit_ss"][i] = max(0.0, m2 + a - 2 * mean * b + mean * mean * d)
    return out


def summaries(stream: Stream, upto: int, log: bool, clustered: bool) -> tuple[Summary, Summary]:
    """The two arms' Summary after the first `upto` trials (from scratch; for tests)."""
    out = []
    for a in (0, 1):
        mask = stream.arm[:upto] == a
        x = stream.x[:upto][mask]
        if log:
            x = np.log(x)
        s = _arm_looks(x, stream.unit[:upto][mask])
        if x.size == 0:
            out.append(Summary(0, 0.0, 0.0))
            continue
        n = x.size
        summary = Summary(n, float(s["mean"][-1]), float(s["m2"][-1] / (n - 1)) if n > 1 else 0.0, x.min(), x.max())
        out.append(summary.clustered(int(s["clusters"][-1]), float(s["unit_ss"][-1])) if clustered else summary)
    return out[0], out[1]


def _cumulative(stream: Stream, log: bool, clustered: bool, first: int) -> dict[str, np.ndarray]:
    """Per look (after trial first-1, first, ..., last): each arm's n, mean, variance of the mean and
    groups (clusters when clustered, else n), and the raw means for the original-scale check."""
    cols: dict[str, np.ndarray] = {}
    for a, tag in ((0, "c"), (1, "t")):
        mask = stream.arm == a
        pos = np.flatnonzero(mask)
        x = stream.x[mask]
        y = np.log(x) if log else x
        s = _arm_looks(y, stream.unit[mask])
        if x.size == 0:  # an arm no unit landed in (possible at an uneven split): nothing to index
            s = {k: np.zeros(1) for k in s}
        # index of the arm's last value at or before each trial (-1 before its first)
        upto = np.searchsorted(pos, np.arange(stream.x.size), side="right") - 1
        have = upto >= 0
        take = np.where(have, upto, 0)
        n = np.where(have, s["n"][take], 0)
        var = np.where(n > 1, s["m2"][take] / np.maximum(n - 1, 1), 0.0)
        var_mean = np.where(n > 0, var / np.maximum(n, 1), np.inf)
        groups = n.copy()
        if clustered:
            k = np.where(have, s["clusters"][take], 0)
            cr = np.where(k >= 2, k / np.maximum(k - 1, 1) * s["unit_ss"][take] / np.maximum(n, 1) ** 2, 0.0)
            repeated = (k < n) & (n >= 2)
            # Summary.clustered: the design effect is at least 1, and only where it is defined
            var_mean = np.where(repeated & (k >= 2) & (var > 0), np.maximum(var_mean, cr), var_mean)
            groups = np.where(repeated, k, n)
        raw_mean = np.cumsum(np.where(mask, stream.x, 0.0)) / np.maximum(n, 1)
        cols |= {
            f"n{tag}": n[first - 1 :],
            f"m{tag}": np.where(have, s["mean"][take], 0.0)[first - 1 :],
            f"vm{tag}": var_mean[first - 1 :],
            f"g{tag}": groups[first - 1 :],
            f"var{tag}": var[first - 1 :],
            f"raw{tag}": raw_mean[first - 1 :],
        }
    return cols


@lru_cache(maxsize=65536)
def _boundary(t: float, alpha: float) -> float:
    return sequential.z_boundary(t, alpha)


@lru_cache(maxsize=4096)
def _srm_ok(control: int, treatment: int, control_share: float) -> bool:
    return not srm_check("recorded", control, treatment, control_share).mismatch


def decisions(
    stream: Stream,
    n_required: int,
    log: bool,
    clustered: bool,
    targets: Targets | None = None,
    treatment_percent: int = 50,
) -> tuple[np.ndarray, np.ndarray]:
    """(promote, rollback) at each look from n_required trials to the end of the stream, with the
    split `generate` assigned units at."""
    control_share = 1 - treatment_percent / 100
    targets = targets or Targets()
    from ..policy import decision_alpha

    half = decision_alpha(targets) / 2
    c = _cumulative(stream, log, clustered, n_required)
    nc, nt, mc, mt = c["nc"], c["nt"], c["mc"], c["mt"]
    se2 = c["vmc"] + c["vmt"]
    ok = (nc >= 2) & (nt >= 2) & (c["gc"] >= 2) & (c["gt"] >= 2) & ((c["varc"] > 0) | (c["vart"] > 0))
    ok &= np.isfinite(se2) & (se2 > 0)
    se2 = np.where(ok, se2, 1.0)
    sa, sb = c["vmt"] / se2, c["vmc"] / se2  # continuous.welch_se_df
    df = 1 / (sa**2 / np.maximum(c["gt"] - 1, 1) + sb**2 / np.maximum(c["gc"] - 1, 1))
    t = (mt - mc) / np.sqrt(se2)
    # numeric.t_to_z, vectorised
    z = -special.ndtri_exp(stats.t.logsf(np.abs(t), df))
    z = np.copysign(np.minimum(z, Z_CAP), t)
    z = np.where(df > 1e7, np.clip(t, -Z_CAP, Z_CAP), z)
    better = -z  # durations: lower is better
    frac = np.array(
        [sequential.fraction(int(a), int(b), n_required, control_share) for a, b in zip(nc, nt, strict=True)]
    )
    up = np.array([_boundary(float(f), half) if f > 0 else math.inf for f in frac])
    down = np.array([_boundary(float(f), half / 2) if f > 0 else math.inf for f in frac])
    if log:
        improvement = -np.expm1(np.minimum(mt - mc, 700.0)) * 100
    else:
        improvement = np.where(mc != 0, -(mt - mc) / np.where(mc != 0, np.abs(mc), 1.0) * 100, np.nan)
    raw_c = np.where(c["rawc"] != 0, np.abs(c["rawc"]), 1.0)  # durations: 0 only before the arm's first value
    raw_change = -(c["rawt"] - c["rawc"]) / raw_c * 100
    original_ok = raw_change >= -targets.max_regression if log else np.ones_like(ok)
    # the sample-ratio check counts units: each unit once, from its first trial on
    first_seen = np.zeros(stream.x.size, dtype=bool)
    first_seen[np.unique(stream.unit, return_index=True)[1]] = True
    units_c = np.cumsum(first_seen & (stream.arm == 0))[n_required - 1 :]
    units_t = np.cumsum(first_seen & (stream.arm == 1))[n_required - 1 :]
    srm = np.array([_srm_ok(int(a), int(b), control_share) for a, b in zip(units_c, units_t, strict=True)])
    ok &= np.minimum(nc, nt) >= MIN_PER_ARM  # policy.decide's per-arm floor ("Sample size adequate")
    promote = ok & (better >= up) & (improvement > targets.improvement_threshold) & original_ok & srm
    rollback = ok & (-better >= down) & (-improvement > targets.max_regression)
    return promote, rollback


def first_decision(promote: np.ndarray, rollback: np.ndarray) -> str:
    """What auto mode does first: promotion is checked before rollback at each look."""
    for p, r in zip(promote, rollback, strict=True):
        if p:
            return "promote"
        if r:
            return "rollback"
    return "none"
