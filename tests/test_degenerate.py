"""Degenerate and extreme values end to end (from a review, 2026-11-28): each case once broke a
report, a decision or the whole project's status, auto mode or export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import spec
from meta_experiment import monitoring
from meta_experiment.auto import run_auto
from meta_experiment.errors import InvalidInput
from meta_experiment.interchange import export_experiments, import_experiments, write_document
from meta_experiment.lifecycle import Lab
from meta_experiment.report import render_status
from test_cli import run


def failing_analysis(monkeypatch: pytest.MonkeyPatch, experiment_id: str, error: Exception):  # type: ignore[no-untyped-def]
    """Fault injection: the analysis of `experiment_id` raises `error` (a defect, as the 1e-160 one
    was); the others run as they do. Returns the real analyze."""
    from meta_experiment import analysis

    real = analysis.analyze

    def analyze(lab_: Lab, wanted: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if wanted == experiment_id:
            raise error
        return real(lab_, wanted, *args, **kwargs)

    monkeypatch.setattr(analysis, "analyze", analyze)
    return real


def test_a_control_near_zero_breaks_nothing(lab: Lab) -> None:
    """Control costs of 1e-160: the power computation overflowed ((c + z) / effect) ** 2), and with it
    record's answer (the trial stored), analyze, status, auto and export, for every experiment."""
    e = lab.create(**spec(secondary_metrics=[], primary_metric={"name": "cost", "direction": "lower_is_better"}))
    for arm, value in (("control", 1e-160), ("control", 2e-160), ("treatment", 1.0), ("treatment", 2.0)):
        result = lab.record_measurement(e.id, arm, {"cost": value})
        assert not any("failed" in a for a in result.alerts), result.alerts
    analysis = lab.analyze(e.id)
    assert analysis.power is not None and analysis.power.trials_needed_total is None
    assert e.id in render_status(lab.status())
    assert run_auto(lab, dry_run=True).items[0].experiment_id == e.id
    assert export_experiments(lab, [e.id])["experiments"][0]["id"] == e.id


def test_one_experiment_whose_analysis_fails_does_not_stop_the_others(
    lab: Lab, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: an analysis that raises (a defect) is reported for its experiment, and status
    and auto mode go on with the others."""

    (project / "b.md").write_text("b\n")
    (project / "b.md.experiment").write_text("b2\n")
    broken = lab.create(**spec(secondary_metrics=[]))
    fine = lab.create(**spec(secondary_metrics=[], files={"b.md": "b.md.experiment"}))
    failing_analysis(monkeypatch, broken.id, OverflowError("numerical result out of range"))
    text = render_status(lab.status())
    assert f"the analysis of {broken.id} failed (OverflowError: numerical result out of range)" in text
    assert fine.id in text
    items = {i.experiment_id: i for i in run_auto(lab, dry_run=True).items}
    assert items[broken.id].action == "skipped" and "failed (OverflowError" in items[broken.id].rationale
    assert items[fine.id].action != "skipped"


def test_an_alert_of_certainty_exports_as_json_that_imports(lab: Lab, tmp_path: Path) -> None:
    """Constant ratings below the floor: the alert's z was inf, stored and exported as Infinity,
    which this tool's own import refused and JSON.parse rejects."""
    e = lab.create(
        **spec(
            secondary_metrics=[{"name": "satisfaction", "direction": "higher_is_better"}],
            auto_rollback=False,
            sample_size_required=4,
        )
    )
    for i in range(10):
        lab.record_measurement(e.id, "control", {"time_to_complete": 5.0 + i % 3, "satisfaction": 0.9})
        lab.record_measurement(e.id, "treatment", {"time_to_complete": 5.0 + i % 3, "satisfaction": 0.1})
    [alert] = monitoring.alerts(lab, e.id, active_only=True)
    assert alert.data["z"] is None  # certainty: no finite z
    written, _ = write_document(lab, "exp.json", export_experiments(lab, [e.id]))
    text = (lab.project_root / written).read_text()
    assert "Infinity" not in text and "NaN" not in text
    json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the export"))
    (tmp_path / "other").mkdir()
    other = Lab.open(tmp_path / "other")
    try:
        assert import_experiments(other, json.loads(text))["imported"] == [e.id]
    finally:
        other.close()


def test_a_guardrail_that_collapses_from_near_zero_is_a_regression(lab: Lab) -> None:
    """A guardrail from 1e-300 to about -1e15: its % change overflowed to 'n/a', counted as no
    regression, and auto mode promoted (p = 3.6e-10)."""
    e = lab.create(
        **spec(
            secondary_metrics=[{"name": "q", "direction": "higher_is_better"}],
            auto_promote=True,
            auto_rollback=False,
            sample_size_required=10,
        )
    )
    for i in range(10):
        lab.record_measurement(e.id, "control", {"time_to_complete": 10.0 + i % 3, "q": 1e-300 * (1 + i % 2)})
        lab.record_measurement(e.id, "treatment", {"time_to_complete": 5.0 + i % 3, "q": -1e15 + i})
    [guard] = [g for g in lab.analyze(e.id).guardrails if g.name == "q"]
    assert guard.regression_pct == 1e300 and guard.blocks_promotion
    assert run_auto(lab).items[0].action != "promoted"


def test_a_run_corrected_to_failed_drops_its_time(lab: Lab) -> None:
    """A run recorded as a success in 0.2 s that crashed: void --failed was refused without --metric,
    and metrics={} kept 0.2 s, a failed run's time in the mean."""
    e = lab.create(**spec())
    a = lab.assign(e.id)
    lab.record(a.trial_id, {"time_to_complete": 0.2, "issues_caught": 3})
    fixed = lab.void_trial(a.trial_id, "it crashed", success=False)
    replacement = lab.trial(fixed.replacement_trial_id)
    assert replacement.success is False and replacement.metrics == {"issues_caught": 3.0}
    with pytest.raises(InvalidInput, match="success describes the corrected run"):
        lab.void_trial(fixed.replacement_trial_id, "it worked after all", success=True)


def test_a_time_since_assign_is_checked_as_a_given_one(lab: Lab) -> None:
    """The clock stepped back 2 s between assign and record: -2.0 was stored as a duration, and a
    log-scale metric raised 'math domain error'."""
    clock = [1_800_000_000.0]
    lab.clock = lambda: clock[0]
    e = lab.create(**spec(secondary_metrics=[]))
    a = lab.assign(e.id)
    clock[0] -= 2
    assert lab.record(a.trial_id, {}).metrics == {"time_to_complete": 0.0}
    from meta_experiment import release

    release.rollback(lab, e.id, reason="next case")
    logged = lab.create(
        **spec(
            secondary_metrics=[],
            primary_metric={"name": "t", "direction": "lower_is_better", "unit": "s", "log_scale": True},
        )
    )
    b = lab.assign(logged.id)
    with pytest.raises(InvalidInput, match=r"must be > 0 \(got 0.0\).* measured as the time since assign"):
        lab.record(b.trial_id, {})


def test_success_is_a_yes_or_no_and_numbers_may_be_numpy_ones(lab: Lab) -> None:
    """Lab.record(success='false') stored a success; numpy numbers were refused as 'int64'."""
    e = lab.create(**spec())
    a, b, c = (lab.assign(e.id) for _ in range(3))
    assert lab.record(a.trial_id, {}, success="false").success is False  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="success must be true or false, not str 'maybe'"):
        lab.record(b.trial_id, {"time_to_complete": 1.0}, success="maybe")  # type: ignore[arg-type]
    done = lab.record(c.trial_id, {"time_to_complete": np.float32(1.5), "issues_caught": np.int64(5)})
    assert done.metrics == {"time_to_complete": 1.5, "issues_caught": 5.0}


def test_a_status_change_past_a_million_percent_reads_as_such(lab: Lab) -> None:
    """A control score of 1e-100: status printed a 100-digit percentage."""
    e = lab.create(**spec(secondary_metrics=[], primary_metric={"name": "score", "direction": "higher_is_better"}))
    for i in range(6):
        lab.record_measurement(e.id, "control", {"score": 1e-100 * (1 + i % 2)})
        lab.record_measurement(e.id, "treatment", {"score": 1.0 + i % 2})
    text = render_status(lab.status())
    assert "(beyond 1,000,000% improvement)" in text and "999,999" not in text


def test_a_rate_already_at_its_best_says_no_improvement_is_possible(lab: Lab) -> None:
    """Every control run a success: 'control rate 1: a relative change of 15% is not measurable'."""
    e = lab.create(
        **spec(
            secondary_metrics=[],
            primary_metric={"name": "passed", "direction": "higher_is_better", "kind": "binary"},
            auto_rollback=False,
        )
    )
    for _ in range(10):
        lab.record_measurement(e.id, "control", {"passed": 1})
        lab.record_measurement(e.id, "treatment", {"passed": 1})
    power = lab.analyze(e.id).power
    assert power is not None and power.message.startswith("the observed control rate is already 100%")


def test_identical_arms_export_no_minus_zero(lab: Lab) -> None:
    e = lab.create(**spec(secondary_metrics=[]))
    for i in range(6):
        for arm in ("control", "treatment"):
            lab.record_measurement(e.id, arm, {"time_to_complete": 10.0 + i % 3})
    text = json.dumps(export_experiments(lab, [e.id])) + lab.analyze(e.id).model_dump_json()
    assert "-0.0" not in text


# -- from a review of the fixes above (2026-11-28) ---------------------------------------------------


def test_the_exported_document_on_stdout_is_json_too(project: Path) -> None:
    """`export` to stdout printed "improvement_pct": Infinity (a control mean of 1e-320), which
    JSON.parse rejects; --out wrote null; status said beyond 1,000,000%."""

    lab = Lab.open(project)
    try:
        e = lab.create(**spec(secondary_metrics=[], primary_metric={"name": "score", "direction": "higher_is_better"}))
        for i in range(6):
            lab.record_measurement(e.id, "control", {"score": 1e-320})
            lab.record_measurement(e.id, "treatment", {"score": 1.0 + i % 2})
    finally:
        lab.close()
    done = run(project, "export")  # (the CLI as a user runs it; no traceback)
    document = json.loads(done.stdout, parse_constant=lambda c: pytest.fail(f"{c} in the export"))
    assert document["experiments"][0]["results"]["improvement_pct"] == 1e300  # clamped, as the analysis does
    lab = Lab.open(project)
    try:
        assert lab.analyze(e.id).primary.improvement_pct == 1e300
    finally:
        lab.close()


def test_a_failing_analysis_lets_a_void_and_an_export_through(
    lab: Lab, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: with the analysis raising, the void that would remove the value was undone
    with it (its regression check ran in its transaction), and export, which the error message
    recommends, crashed; an ended experiment's failure was shown nowhere."""
    from meta_experiment import analysis, release

    e = lab.create(**spec(secondary_metrics=[], sample_size_required=4, auto_rollback=False))
    ids = [
        lab.record_measurement(e.id, arm, {"time_to_complete": 10.0 + i}).trial_id
        for i in range(4)
        for arm in ("control", "treatment")
    ]
    real = failing_analysis(monkeypatch, e.id, OverflowError("math range error"))
    voided = lab.void_trial(ids[0], "typo")
    assert lab.trial(ids[0]).status == "voided"
    assert [a for a in voided.alerts if "analysis" in a] == [
        f"Note: the void is stored, but the analysis of {e.id} failed (OverflowError: math range error); "
        "the other experiments are unaffected. This is a defect of meta-experiment: please report it with the "
        f"experiment's export (`meta-experiment export {e.id}`)."
    ]
    document = export_experiments(lab, [e.id])
    assert document["experiments"][0]["results"]["always_valid_confidence"] is None
    monkeypatch.setattr(analysis, "analyze", real)
    release.promote(lab, e.id, force=True, reason="shipped")
    failing_analysis(monkeypatch, e.id, OverflowError("math range error"))
    assert f"**Analysis**: ⚠️ the analysis of {e.id} failed (OverflowError: math range error)" in render_status(
        lab.status()
    )


def test_a_failed_correction_says_so_and_imports_strip_units(lab: Lab, tmp_path: Path) -> None:
    """A correction to failed did not say it was one; an import kept ' pr-1 ' (assign strips it) and
    took '   ' (assign refuses it); numpy's booleans and Decimal were refused as numbers."""
    from decimal import Decimal

    e = lab.create(**spec(secondary_metrics=[{"name": "ok", "direction": "higher_is_better", "kind": "binary"}]))
    a, b = lab.assign(e.id, unit=" pr-1 "), lab.assign(e.id)
    lab.record(a.trial_id, {"time_to_complete": 5.0, "ok": np.bool_(True)}, success=np.bool_(True))
    lab.record(b.trial_id, {"time_to_complete": Decimal("12.5"), "ok": 0})
    fixed = lab.void_trial(a.trial_id, "it broke", metrics={"time_to_complete": 7.0}, success=False)
    assert fixed.replacement_metrics == {"time_to_complete": 7.0, "ok": 1.0}  # given values are kept
    assert "(a failed run)" in lab.events(e.id, kinds=["trial_voided"])[-1].message
    document = export_experiments(lab, [e.id])
    trials = document["experiments"][0]["meta_experiment"]["trials"]
    trials[1]["unit"] = " pr-2 "
    (tmp_path / "other").mkdir()
    other = Lab.open(tmp_path / "other")
    try:
        import_experiments(other, document)
        assert [t.unit for t in other.trials(e.id)][:2] == ["pr-1", "pr-2"]
    finally:
        other.close()
    trials[1]["unit"] = "   "
    (tmp_path / "third").mkdir()
    third = Lab.open(tmp_path / "third")
    try:
        with pytest.raises(InvalidInput, match=r"trials\[1\].unit must be an id of 1 to 200 characters"):
            import_experiments(third, document)
    finally:
        third.close()


def test_an_alert_still_rolls_back_when_the_analysis_fails(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: auto skipped an experiment whose analysis raised, so an auto_rollback
    experiment with an error-rate alert was never rolled back (the alert needs no analysis)."""
    e = lab.create(**spec(secondary_metrics=[], sample_size_required=1000))
    lab.update_settings({"monitoring": {"min_trials_per_arm": 1000}}, "no alert while recording")
    for _ in range(30):
        lab.record_measurement(e.id, "control", {"time_to_complete": 10.0})
        lab.record_measurement(e.id, "treatment", {}, success=False)
    lab.update_settings({"monitoring": {"min_trials_per_arm": 10}}, "alerts again")
    failing_analysis(monkeypatch, e.id, ZeroDivisionError("injected"))
    assert run_auto(lab, dry_run=True).items[0].action == "skipped"  # no alert stored yet: nothing to act on
    item = run_auto(lab).items[0]
    assert item.action == "rolled_back" and item.rationale.startswith("monitoring alert: Error rate spike")
    assert "the analysis of" in item.rationale and lab.get(e.id).status == "rolled_back"


def test_values_that_are_not_what_they_look_like(lab: Lab) -> None:
    """numpy's True on a continuous metric was stored as 1.0 (Python's True is refused);
    Decimal('sNaN') raised a bare ValueError; a failed run corrected to failed kept its time; an
    arm sent as '0' was told to send it as a number."""
    from decimal import Decimal

    from meta_experiment.errors import validation_message
    from meta_experiment.models import ExperimentSpec

    e = lab.create(**spec())
    a, b = lab.assign(e.id), lab.assign(e.id)
    with pytest.raises(InvalidInput, match="is a continuous number, not yes/no"):
        lab.record(a.trial_id, {"time_to_complete": 5.0, "issues_caught": np.True_})
    with pytest.raises(InvalidInput, match="only finite numbers can be recorded"):
        lab.record(a.trial_id, {"time_to_complete": Decimal("sNaN")})
    lab.record(b.trial_id, {"time_to_complete": 5.0, "issues_caught": 2}, success=False)
    fixed = lab.void_trial(b.trial_id, "failed, and its time is no completion time", success=False)
    assert fixed.replacement_metrics == {"issues_caught": 2.0}
    from pydantic import ValidationError

    try:
        ExperimentSpec.model_validate({**spec(), "primary_metric": {"name": "t", "direction": "1"}})
    except ValidationError as exc:
        assert "as a number" not in validation_message(exc, "arguments")
    else:
        pytest.fail("a direction of '1' was taken")
    from typing import Literal

    from pydantic import TypeAdapter

    for given, hinted in (("0", False), ("20", True), ("15", False)):  # '0' is in '10, 20', not among them
        with pytest.raises(ValidationError) as refused:
            TypeAdapter(Literal[10, 20, 25]).validate_python(given)
        assert ("as a number" in validation_message(refused.value, "x")) == hinted, given
