"""Auto mode with sticky units by simulation: the mirror in simulate_units decides as analyze +
policy.decide do at every look, and with cluster-robust variances correlated trials no longer
peek their way into false decisions (the full table is bench/validate_units.py)."""

import numpy as np
import pytest

from meta_experiment.models import MetricSpec, Targets
from meta_experiment.stats import simulate_units as su
from meta_experiment.stats.analysis import AnalysisInputs, analyze
from stats.helpers import look_actions

REQUIRED = 10


def _real_actions(stream: su.Stream, log: bool, clustered: bool, percent: int = 50) -> list[str]:
    """analyze + policy.decide at every look, with the summaries a store of these trials would give."""
    spec = MetricSpec(name="m", direction="lower_is_better", log_scale=log)
    out = []
    for upto in range(REQUIRED, stream.x.size + 1):
        c, t = su.summaries(stream, upto, False, clustered)
        logs = None
        if log:
            cl, tl = su.summaries(stream, upto, True, clustered)
            logs = {("control", "m"): cl, ("treatment", "m"): tl}
        arm, unit = stream.arm[:upto], stream.unit[:upto]
        units = {name: len(set(unit[arm == i].tolist())) for i, name in enumerate(("control", "treatment"))}
        counts = {"control": c.n, "treatment": t.n}
        result = analyze(
            AnalysisInputs(
                primary=spec,
                targets=Targets(),
                summaries={("control", "m"): c, ("treatment", "m"): t},
                log_summaries=logs,
                assigned=counts,
                recorded=counts,
                successes=counts,
                srm_assigned=units,
                srm_recorded=units,
                sample_size_required=REQUIRED,
                now=0.0,
                started_at=0.0,
                max_duration_days=1e3,
                control_share=1 - percent / 100,
            )
        )
        out.append(result.decision.action)
    return out


@pytest.mark.parametrize("percent", [50, 20, 75])
def test_the_mirror_decides_as_analyze_and_policy_at_every_look(percent: int) -> None:
    rng = np.random.default_rng([20261126, percent] if percent != 50 else 20261126)
    seen: set[str] = set()
    for i in range(12):
        setting = ("normal", "lognormal")[i % 2]
        effect = (0.0, 0.3, -0.3)[i % 3]
        stream = su.generate(setting, 5 * REQUIRED, rng, 0.5, 0.3, effect, percent)
        for clustered in (True, False):
            promote, rollback = su.decisions(stream, REQUIRED, setting == "lognormal", clustered, None, percent)
            mirror = look_actions(promote, rollback)
            assert mirror == _real_actions(stream, setting == "lognormal", clustered, percent)
            seen.update(mirror)
    assert seen == {"promote", "rollback", "continue"}  # every branch of the mirror was compared


def test_units_do_not_change_the_analysis_when_none_repeats() -> None:
    """A unit per trial: cluster-robust and independent analyses are the same numbers."""
    rng = np.random.default_rng(4)
    stream = su.generate("normal", 60, rng, icc=0.5, new_unit_share=1.0)
    for upto in (10, 33, 60):
        robust, naive = su.summaries(stream, upto, False, True), su.summaries(stream, upto, False, False)
        assert robust == naive


@pytest.mark.parametrize("setting", ["normal", "lognormal"])
def test_cluster_robust_decisions_keep_aa_errors_near_alpha_where_naive_ones_do_not(setting: str) -> None:
    rng = np.random.default_rng([7, len(setting)])
    sims = 300
    first = {"naive": [], "robust": []}
    for _ in range(sims):
        stream = su.generate(setting, 7 * REQUIRED, rng, icc=0.5, new_unit_share=0.3)
        for mode, clustered in (("naive", False), ("robust", True)):
            first[mode].append(su.first_decision(*su.decisions(stream, REQUIRED, setting == "lognormal", clustered)))
    wrong = {mode: sum(a != "none" for a in actions) / sims for mode, actions in first.items()}
    # treated as independent, correlated trials decide wrongly several times the 5% budget
    assert wrong["naive"] > 0.10
    # cluster-robust: within the 5% budget (2.5% per direction) plus this run's binomial noise
    assert wrong["robust"] <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / sims)
