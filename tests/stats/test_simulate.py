"""Auto mode by simulation: the vectorised rule is our policy, and it does not peek its way into
false decisions where the seed's rule does (the full table is bench/validate_decisions.py)."""

import numpy as np
import pytest

from meta_experiment.stats import simulate as sim
from meta_experiment.stats.binary import wilson
from meta_experiment.stats.plan import MIN_PER_ARM
from stats.helpers import look_actions, policy_analyses


def _policy_looks(arm, x, setting, n_required, log_scale, treatment_percent=50):
    """Re-analyse after every trial with analyze + policy.decide: the action at each look."""
    for res in policy_analyses(arm, x, setting, n_required, log_scale, treatment_percent):
        yield res.decision.action


def _policy_run(arm, x, setting, n_required, log_scale):
    """The first decision of analyze + policy.decide re-analysing after every trial."""
    for action in _policy_looks(arm, x, setting, n_required, log_scale):
        if action in ("promote", "rollback"):
            return action
    return "continue"


@pytest.mark.parametrize(
    "setting,log_scale,effect,required,horizon",
    [
        ("lognormal", True, 0.5, 10, 7),
        ("binary", False, 0.5, 10, 7),
        ("normal", False, 0.0, 10, 4),
        # past the planned window (7 x 4 = 28 trials): only the e-process decides there
        ("lognormal", True, 0.3, 4, 20),
    ],
)
def test_vectorised_rule_is_the_policy(setting, log_scale, effect, required, horizon):
    rng = np.random.default_rng(7)
    arm, x = sim.generate(setting, required, 12, effect, rng, horizon=horizon)
    actions = []
    for i in range(arm.shape[0]):
        r = sim.ours(arm[i : i + 1], x[i : i + 1], setting, required, log_scale=log_scale)
        expected = "promote" if r.promote else "rollback" if r.rollback else "continue"
        actions.append(expected)
        assert _policy_run(arm[i], x[i], setting, required, log_scale) == expected
    if effect:
        assert "promote" in actions  # the comparison covers decisions, not only "continue"


# uneven splits; `covers`: what the comparison must include to mean something (floor promote / floor
# rollback: without the per-arm floor `looks` would decide at a look where an arm has fewer than
# MIN_PER_ARM values, and the policy does not)
UNEVEN = [
    ("normal", False, 0.5, 20, 10, 7, 3, {"promote", "floor promote"}),
    ("normal", False, -0.3, 90, 10, 7, 6, {"rollback", "floor rollback"}),
    # the window's last look (70 trials, 63/7) comes out at t = 1 + 2.2e-16 with control_share 0.9;
    # sequential.in_window and the mirror both count it in the window
    ("lognormal", True, 0.6, 10, 10, 7, 3, {"promote"}),
    ("binary", False, 0.5, 80, 10, 7, 3, {"promote"}),
    # past the planned window (7 x 4 = 28 trials), blocks of 5 (20%): only the e-process decides there
    ("lognormal", True, 0.5, 20, 4, 20, 3, {"promote"}),
]


@pytest.mark.parametrize("setting,log_scale,effect,percent,required,horizon,sims,covers", UNEVEN)
def test_vectorised_rule_is_the_policy_at_an_uneven_split(
    setting, log_scale, effect, percent, required, horizon, sims, covers
):
    """Look by look, with control_share = 1 - percent / 100, including the looks where an arm has
    fewer than MIN_PER_ARM values (the first looks at 10% or 20% treatment and required 10)."""
    rng = np.random.default_rng(percent)
    arm, x = sim.generate(setting, required, sims, effect, rng, horizon=horizon, treatment_percent=percent)
    kw = dict(log_scale=log_scale, treatment_percent=percent)
    promote, rollback = sim.looks(arm, x, setting, required, **kw)
    loose_promote, loose_rollback = sim.looks(arm, x, setting, required, min_per_arm=0, **kw)
    nc = np.cumsum(arm == 0, axis=1)[:, required - 1 :]
    short = np.minimum(nc, np.arange(required, x.shape[1] + 1) - nc) < MIN_PER_ARM
    assert short.any()  # the comparison covers looks below the floor
    seen = set()
    for i in range(sims):
        actions = look_actions(promote[i], rollback[i])
        assert list(_policy_looks(arm[i], x[i], setting, required, log_scale, percent)) == actions, f"experiment {i}"
        seen |= set(actions)
    seen |= {"floor promote"} if (loose_promote & ~promote).any() else set()
    seen |= {"floor rollback"} if (loose_rollback & ~rollback).any() else set()
    assert not ((promote | rollback) & short).any()
    assert covers <= seen


@pytest.mark.parametrize(
    "setting,log_scale", [("normal", False), ("lognormal", False), ("lognormal", True), ("binary", False)]
)
def test_no_false_decisions_from_peeking(setting, log_scale):
    """A/A, required 10, looks after every trial up to 70: ours stays under 2.5% each way while the
    seed's peeking rule exceeds 5% (1,500 experiments: a 2.5% rate has a Wilson upper bound ~3.4%)."""
    rng = np.random.default_rng(2025)
    arm, x = sim.generate(setting, 10, 1500, 0.0, rng)
    ours = sim.ours(arm, x, setting, 10, log_scale=log_scale)
    seed = sim.seed_rule(arm, x, setting, 10)
    assert ours.promote <= 0.025 and ours.rollback <= 0.025
    assert max(seed.promote, seed.rollback) > 0.05


@pytest.mark.parametrize("setting,log_scale,required", [("lognormal", True, 10), ("binary", False, 20)])
def test_more_power_than_the_seed_at_equal_error(setting, log_scale, required):
    """A true 30% improvement, looks after every trial to 7x required: ours promotes more often than
    the seed's rule with its per-look cut-off lowered to the same 2.5% A/A false-promote rate
    (bench/validate_decisions.py has the full table)."""
    rng = np.random.default_rng(11)
    arm0, x0 = sim.generate(setting, required, 2000, 0.0, rng)
    arm1, x1 = sim.generate(setting, required, 2000, 0.3, rng)
    lo, hi = 1e-6, 0.05
    for _ in range(25):  # the seed's per-look cut-off that promotes 2.5% of A/A experiments
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if sim.seed_rule(arm0, x0, setting, required, critical_p=mid).promote <= 0.025 else (lo, mid)
    seed = sim.seed_rule(arm1, x1, setting, required, critical_p=lo).promote
    ours = sim.ours(arm1, x1, setting, required, log_scale=log_scale).promote
    assert sim.ours(arm0, x0, setting, required, log_scale=log_scale).promote <= 0.025
    assert ours > seed + 0.03


def test_power_where_the_seed_is_saturated():
    rng = np.random.default_rng(3)
    arm, x = sim.generate("normal", 20, 500, 0.3, rng)
    assert sim.ours(arm, x, "normal", 20).promote >= sim.seed_rule(arm, x, "normal", 20).promote - 0.005


def _within_bound(rate: float, sims: int, bound: float = 0.025) -> bool:
    """The bound lies at or above the lower end of the rate's Wilson 95% interval."""
    return wilson(round(rate * sims), sims)[0] <= bound


@pytest.mark.parametrize(
    "setting,log_scale,percent", [("lognormal", True, 20), ("binary", False, 10), ("normal", False, 90)]
)
def test_uneven_split_keeps_false_decisions_within_the_bound(setting, log_scale, percent):
    """A/A at an uneven split, required 10, looks after every trial to 70: false promotions and
    rollbacks each within 2.5% up to this run's binomial noise (2,000 experiments; the full table,
    10,000 per cell, is bench/validate_decisions.py)."""
    rng = np.random.default_rng(percent)
    arm, x = sim.generate(setting, 10, 2000, 0.0, rng, treatment_percent=percent)
    aa = sim.ours(arm, x, setting, 10, log_scale=log_scale, treatment_percent=percent)
    assert _within_bound(aa.promote, aa.sims) and _within_bound(aa.rollback, aa.sims)


@pytest.mark.parametrize("setting,log_scale", [("lognormal", True), ("binary", False)])
def test_an_uneven_split_costs_power(setting, log_scale):
    """A true 30% improvement, required 20: 20% treatment promotes less often than the even split
    (n_eff = n p (1 - p): 0.16 n against 0.25 n)."""
    rng = np.random.default_rng(17)
    even = sim.ours(*sim.generate(setting, 20, 1500, 0.3, rng), setting, 20, log_scale=log_scale)
    arm, x = sim.generate(setting, 20, 1500, 0.3, rng, treatment_percent=20)
    uneven = sim.ours(arm, x, setting, 20, log_scale=log_scale, treatment_percent=20)
    assert uneven.promote < even.promote - 0.05
