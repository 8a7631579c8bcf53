"""Auto mode with the implicit guardrail success_rate by simulation: the vectorised gate and rollback
are those of analyze + policy.decide, look by look (bench/validate_decisions.py has the table)."""

import numpy as np
import pytest

from meta_experiment.models import Targets
from meta_experiment.stats import simulate as sim
from meta_experiment.stats.analysis import SUCCESS_METRIC
from stats.helpers import look_actions, policy_analyses


def _policy_looks(arm, x, success, setting, n_required, log_scale, treatment_percent=50):
    """analyze + policy.decide after every trial: the action at each look, and the test method of
    success_rate at the looks where it holds promotion back."""
    actions, methods = [], set()
    for res in policy_analyses(arm, x, setting, n_required, log_scale, treatment_percent, success):
        (guard,) = res.guardrails
        assert guard.name == SUCCESS_METRIC and guard.max_regression_pct == Targets().max_regression
        if guard.blocks_promotion:
            (rate,) = [m for m in res.secondary if m.name == SUCCESS_METRIC]
            methods.add(rate.proportions.method)
        actions.append(res.decision.action)
    return actions, methods


# crash rates (control, treatment); `covers`: what the comparison must include to mean something
# (blocked: the primary alone would promote at a look where success_rate holds it back; guard
# rollback: success_rate rolls back; holm: the primary alone would roll back, but not after Holm;
# fisher_exact / z_pooled: the test of success_rate at a look where it holds promotion back; floor
# promote / floor rollback: without the per-arm floor the look would decide, and the policy does not)
CASES = [
    ("normal", False, 0.3, 10, 7, (0.05, 0.4), 0, 4, 50, {"blocked", "guard rollback", "fisher_exact", "z_pooled"}),
    ("binary", False, 0.5, 10, 7, (0.1, 0.1), 2, 3, 50, set()),
    ("normal", False, -0.15, 10, 4, (0.0, 0.0), 1, 3, 50, {"holm"}),
    # log scale, past the planned window (7 x 4 = 28 trials): only the e-process decides there
    ("lognormal", True, 0.3, 4, 20, (0.05, 0.3), 9, 3, 50, {"blocked", "guard rollback"}),
    # uneven splits (control_share 0.8 and 0.1), with looks where an arm has fewer than 5 values
    ("normal", False, 0.3, 10, 7, (0.05, 0.6), 0, 3, 20, {"blocked", "guard rollback", "floor rollback"}),
    ("normal", False, 0.3, 10, 7, (0.6, 0.05), 0, 3, 90, {"floor promote"}),
]


@pytest.mark.parametrize("setting,log_scale,effect,required,horizon,crash,seed,sims,percent,covers", CASES)
def test_vectorised_guardrail_is_the_policy(
    setting, log_scale, effect, required, horizon, crash, seed, sims, percent, covers
):
    rng = np.random.default_rng(seed)
    arm, x = sim.generate(setting, required, sims, effect, rng, horizon=horizon, treatment_percent=percent)
    success = rng.random(x.shape) >= np.where(arm == 1, crash[1], crash[0])
    kw = dict(log_scale=log_scale, treatment_percent=percent)
    promote, rollback = sim.looks(arm, x, setting, required, success=success, **kw)
    alone_promote, alone_rollback = sim.looks(arm, x, setting, required, **kw)
    loose_promote, loose_rollback = sim.looks(arm, x, setting, required, success=success, min_per_arm=0, **kw)
    seen = set()
    for i in range(sims):
        actions, methods = _policy_looks(arm[i], x[i], success[i], setting, required, log_scale, percent)
        assert actions == look_actions(promote[i], rollback[i]), f"experiment {i}"
        seen |= methods
    seen |= {"blocked"} if (alone_promote & ~promote).any() else set()
    seen |= {"guard rollback"} if (rollback & ~alone_rollback).any() else set()
    seen |= {"holm"} if (alone_rollback & ~rollback).any() else set()
    seen |= {"floor promote"} if (loose_promote & ~promote).any() else set()
    seen |= {"floor rollback"} if (loose_rollback & ~rollback).any() else set()
    assert covers <= seen


def test_without_crashes_the_guardrail_never_holds_promotion_back():
    """Every trial a success: the gate never fires, and Holm with success_rate's p = 1 only makes
    rollback rarer (the primary alone needs p <= alpha / 2, with success_rate p <= alpha / 4)."""
    rng = np.random.default_rng(5)
    arm, x = sim.generate("binary", 10, 1000, 0.0, rng)
    promote, rollback = sim.looks(arm, x, "binary", 10, success=np.ones(x.shape, dtype=bool))
    alone_promote, alone_rollback = sim.looks(arm, x, "binary", 10)
    assert (promote == alone_promote).all()
    assert not (rollback & ~alone_rollback).any() and (alone_rollback & ~rollback).any()


@pytest.mark.parametrize("setting,log_scale,required", [("lognormal", True, 10), ("binary", False, 20)])
def test_a_guardrail_without_effect_keeps_errors_and_costs_little_power(setting, log_scale, required):
    """A 2% crash rate in both arms: A/A false decisions stay under 2.5% each way and a true 30%
    improvement loses under 3 points of power (bench/validate_decisions.py has the full table)."""
    rng = np.random.default_rng(13)
    arm0, x0 = sim.generate(setting, required, 1500, 0.0, rng)
    arm1, x1 = sim.generate(setting, required, 1500, 0.3, rng)
    s0, s1 = (sim.generate_success(x.shape, 0.02, rng) for x in (x0, x1))
    aa = sim.ours(arm0, x0, setting, required, success=s0, log_scale=log_scale)
    assert aa.promote <= 0.025 and aa.rollback <= 0.025
    guarded = sim.ours(arm1, x1, setting, required, success=s1, log_scale=log_scale).promote
    alone = sim.ours(arm1, x1, setting, required, log_scale=log_scale).promote
    assert alone - 0.03 <= guarded <= alone
