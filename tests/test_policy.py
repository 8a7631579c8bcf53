"""The decision policy: actions, criteria and what confidence_threshold means."""

import numpy as np
import pytest

from meta_experiment import policy
from meta_experiment.models import Targets
from meta_experiment.stats.analysis import analyze
from stats.helpers import DAY, T0, inputs

rng = np.random.default_rng(11)
BETTER = (list(rng.normal(45, 8, 12)), list(rng.normal(27, 5, 12)))
WORSE = (list(rng.normal(30, 4, 15)), list(rng.normal(45, 4, 15)))
SAME = (list(rng.normal(45, 8, 8)), list(rng.normal(45, 8, 8)))


@pytest.mark.parametrize("c,alpha", [(0.80, 0.05), (0.95, 0.05), (0.99, 0.01), (0.9999, 0.0001)])
def test_confidence_threshold_meaning(c, alpha):
    assert policy.decision_alpha(Targets(confidence_threshold=c)) == pytest.approx(alpha)


def test_promote_and_checklist():
    d = analyze(inputs(*BETTER)).decision
    assert d.action == "promote" and all(c.met for c in d.criteria)


def test_rollback():
    d = analyze(inputs(*WORSE)).decision
    assert d.action == "rollback" and "worse" in d.rationale


def test_continue_before_sample_size():
    d = analyze(inputs(*BETTER, required=40)).decision
    assert d.action == "continue" and d.driven_by == "sample size not reached"
    assert next(c for c in d.criteria if c.name == "Sample size adequate").met is False


def test_expire_after_max_duration():
    d = analyze(inputs(*SAME, days=15)).decision
    assert d.action == "expire"


def test_stricter_confidence_can_only_block():
    a = analyze(inputs([45, 52, 38, 58, 32, 47, 44] * 2, [27, 30, 21, 35, 25, 28, 26] * 2))
    strict = policy.decide(a, Targets(confidence_threshold=0.9999), a.analyzed_at)
    assert a.decision.action == "promote" and strict.action == "continue"


def test_improvement_below_threshold_does_not_promote():
    a = analyze(inputs(*BETTER, targets=Targets(improvement_threshold=60)))
    assert a.decision.action == "continue"
    assert next(c for c in a.decision.criteria if c.name == "Improvement > threshold").met is False


def test_decide_uses_now_for_expiry():
    a = analyze(inputs(*SAME))
    assert policy.decide(a, Targets(), T0 + 20 * DAY).action == "expire"


def test_after_the_planned_window_the_rationale_says_so():
    """Required 4: the window ends at 28 trials; at 40 without a decision the user is told."""
    rng = np.random.default_rng(2)
    c, t = list(rng.normal(45, 9, 20)), list(rng.normal(45, 9, 20))
    a = analyze(inputs(c, t, required=4))
    assert a.primary.sequential.phase == "after_window" and a.decision.action == "continue"
    assert "planned window (28 trials) ended without a decision" in a.decision.rationale
    early = analyze(inputs(c[:10], t[:10], required=4))
    assert early.primary.sequential.phase == "window" and "planned window" not in early.decision.rationale
