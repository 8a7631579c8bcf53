"""Voiding a recorded trial: the statistics are rebuilt without it (checked against numpy and
against the units' sums computed from the raw values), the corrected values take its place in the
same arm and unit, the event log keeps what was withdrawn, and everything else is refused clearly."""

from __future__ import annotations

import math
from pathlib import Path

import anyio
import numpy as np
import pytest
from mcp import Client

from conftest import derived_rows, spec
from meta_experiment.analysis import summary_of
from meta_experiment.errors import InvalidInput, InvalidState, NotFound
from meta_experiment.lifecycle import Lab
from meta_experiment.mcp_server import build_server
from meta_experiment.release import rollback
from meta_experiment.stats.summary import Summary

LOG_SPEC = {"name": "time_to_complete", "direction": "lower_is_better", "unit": "min", "log_scale": True}


def _expected(values: list[float]) -> tuple[int, float, float, float, float]:
    x = np.array(values)
    return len(x), float(x.mean()), float(x.var(ddof=1)), float(x.min()), float(x.max())


def _stats(lab: Lab, experiment_id: str, arm: str, metric: str) -> tuple[int, float, float, float, float]:
    s = lab.store.running_stats(experiment_id)[(arm, metric)]
    return s.n, s.mean, s.variance, s.min, s.max


def test_a_typo_voided_and_corrected_leaves_the_statistics_of_the_right_values(lab: Lab) -> None:
    e = lab.create(**spec(primary_metric=LOG_SPEC, auto_rollback=False, sample_size_required=40))
    rng = np.random.default_rng(1)
    kept: dict[str, dict[str, list[float]]] = {"control": {"t": [], "i": []}, "treatment": {"t": [], "i": []}}
    typo = None
    for k in range(16):
        a = lab.assign(e.id)
        value = float(rng.lognormal(3, 0.5))
        caught = float(k % 3)
        if k == 5:  # 25.3 minutes typed as 253000
            typo, typo_arm, right = a.trial_id, a.arm, value
            lab.record(a.trial_id, {"time_to_complete": value * 10_000, "issues_caught": caught})
            continue
        lab.record(a.trial_id, {"time_to_complete": value, "issues_caught": caught})
        kept[a.arm]["t"].append(value)
        kept[a.arm]["i"].append(caught)
    assert typo is not None
    before = lab.store.arm_counts(e.id)
    result = lab.void_trial(typo, "  typo: 25.3 typed   as 253000 ", {"time_to_complete": right, "issues_caught": 1})
    assert result.reason == "typo: 25.3 typed as 253000"  # spaces collapsed
    assert result.voided_metrics["time_to_complete"] == pytest.approx(right * 10_000)
    assert result.replacement_trial_id is not None and result.replacement_metrics == {
        "time_to_complete": right,
        "issues_caught": 1.0,
    }
    kept[typo_arm]["t"].append(right)  # recorded last: the replacement's time
    kept[typo_arm]["i"].append(1.0)
    for arm in ("control", "treatment"):
        assert _stats(lab, e.id, arm, "time_to_complete") == pytest.approx(_expected(kept[arm]["t"]), rel=1e-12)
        assert _stats(lab, e.id, arm, "issues_caught") == pytest.approx(_expected(kept[arm]["i"]), rel=1e-12)
        logs = [math.log(v) for v in kept[arm]["t"]]
        assert _stats(lab, e.id, arm, "log:time_to_complete") == pytest.approx(_expected(logs), rel=1e-12)
    after = lab.store.arm_counts(e.id)
    assert after == before  # one result withdrawn, one recorded in its place; no new assignment
    # the voided trial is kept and marked; its replacement is in the same arm
    voided, replacement = lab.trial(typo), lab.trial(result.replacement_trial_id)
    assert voided.status == "voided" and voided.metrics["time_to_complete"] == pytest.approx(right * 10_000)
    assert replacement.status == "recorded" and replacement.arm == typo_arm
    event = next(ev for ev in lab.events(e.id) if ev.kind == "trial_voided")
    assert event.data["voided_metrics"]["time_to_complete"] == pytest.approx(right * 10_000)
    assert event.data["replacement_trial_id"] == result.replacement_trial_id
    # the analysis sees the corrected data: no outlier note about 253000
    analysis = lab.analyze(e.id)
    assert analysis.primary.control.n + analysis.primary.treatment.n == 16
    assert max(analysis.primary.control.max, analysis.primary.treatment.max) < 1000
    # the voided trial takes no result and cannot be voided twice
    with pytest.raises(InvalidState, match=rf"voided \(typo.*trial {result.replacement_trial_id} holds"):
        lab.record(typo, {"time_to_complete": right})
    with pytest.raises(InvalidState, match="voided"):
        lab.void_trial(typo, "again")


def test_voiding_a_trial_of_a_repeated_unit_rebuilds_the_unit_sums(lab: Lab) -> None:
    # A fixed clock, so a fixed experiment id: a unit's arm is a hash of the id and the unit, and at
    # some creation times no unit with three trials landed in one of the arms (the test then failed).
    lab.clock = lambda: 1_800_000_000.0
    e = lab.create(**spec(auto_rollback=False, sample_size_required=40))
    rng = np.random.default_rng(2)
    units = [f"pr-{i}" for i in range(8)]
    level = {u: rng.normal(0, 5) for u in units}
    rows = []  # (trial id, arm, unit, value, success)
    for k in range(60):
        unit = units[int(rng.integers(len(units)))]
        a = lab.assign(e.id, unit=unit)
        value = 40 + level[unit] + float(rng.normal(0, 2))
        ok = k % 7 != 3
        lab.record(a.trial_id, {"time_to_complete": value, "issues_caught": 1}, success=ok)
        rows.append((a.trial_id, a.arm, unit, value, ok))
    # void a trial whose unit has several trials, and one more in the other arm
    counts: dict[str, int] = {}
    for _, _, unit, _, _ in rows:
        counts[unit] = counts.get(unit, 0) + 1
    gone = {next(r for r in rows if counts[r[2]] >= 3 and r[1] == arm)[0] for arm in ("control", "treatment")}
    recorded_before = {arm: lab.store.arm_counts(e.id)[arm]["recorded"] for arm in ("control", "treatment")}
    for trial_id in gone:
        result = lab.void_trial(trial_id, "the run crashed halfway")
        assert result.replacement_trial_id is None
    left = [r for r in rows if r[0] not in gone]
    sums = lab.store.cluster_sums(e.id)
    running = lab.store.running_stats(e.id)
    success_counts = lab.store.arm_counts(e.id)
    for arm in ("control", "treatment"):
        mine = [r for r in left if r[1] == arm]
        expected = Summary.of_units([r[3] for r in mine], [r[2] for r in mine])
        got = summary_of(running[(arm, "time_to_complete")], sums.get((arm, "time_to_complete")))
        assert (got.n, got.clusters) == (expected.n, expected.clusters)
        assert (got.mean, got.variance, got.design_effect, got.unit_ss) == pytest.approx(
            (expected.mean, expected.variance, expected.design_effect, expected.unit_ss), rel=1e-9
        )
        assert success_counts[arm]["recorded"] == recorded_before[arm] - 1
        assert success_counts[arm]["successes"] == sum(r[4] for r in mine)
        unit_counts = lab.store.unit_counts(e.id)[arm]
        assert unit_counts.recorded_trials == len(mine)
        assert unit_counts.max_recorded_per_unit == max(sum(1 for r in mine if r[2] == u) for u in units)
        assert unit_counts.trials == sum(1 for r in rows if r[1] == arm)  # assignments are not undone


def test_what_cannot_be_voided_is_refused_and_changes_nothing(lab: Lab) -> None:
    e = lab.create(**spec(auto_rollback=False))
    a = lab.assign(e.id)
    with pytest.raises(InvalidState, match="no result yet"):
        lab.void_trial(a.trial_id, "oops")
    lab.record(a.trial_id, {"time_to_complete": 12.0, "issues_caught": 1})
    with pytest.raises(InvalidInput, match="reason"):
        lab.void_trial(a.trial_id, "   ")
    with pytest.raises(NotFound, match="No trial with id 999"):
        lab.void_trial(999, "oops")
    with pytest.raises(InvalidInput, match="time_to_complete"):  # corrected values are checked like a record
        lab.void_trial(a.trial_id, "typo", {"time_to_complete": float("nan")})
    assert lab.trial(a.trial_id).status == "recorded"  # the refused correction voided nothing
    rollback(lab, e.id, reason="stopped")
    with pytest.raises(InvalidState, match="rolled_back"):
        lab.void_trial(a.trial_id, "typo")
    assert lab.trial(a.trial_id).status == "recorded"
    assert lab.store.arm_counts(e.id)[a.arm]["recorded"] == 1


def test_the_void_trial_tool(project: Path) -> None:
    async def go() -> None:
        async with Client(build_server(project, project / ".meta-experiment"), mode="legacy") as client:
            created = await client.call_tool(
                "create_experiment",
                {
                    "name": "void",
                    "hypothesis": "h",
                    "files": {".claude/commands/review_pr.md": ".claude/commands/review_pr.md.experiment"},
                    "primary_metric": {"name": "time_to_complete", "direction": "lower_is_better", "unit": "s"},
                },
            )
            experiment_id = created.structured_content["id"]
            trial = (await client.call_tool("assign", {"experiment_id": experiment_id})).structured_content
            await client.call_tool("record", {"trial_id": trial["trial_id"], "metrics": {}})  # 0.0x s: too early
            voided = await client.call_tool(
                "void_trial",
                {
                    "trial_id": trial["trial_id"],
                    "reason": "recorded before the run",
                    "metrics": {"time_to_complete": 95},
                },
            )
            assert not voided.is_error, voided.content[0].text
            data = voided.structured_content
            assert data["replacement_metrics"] == {"time_to_complete": 95.0} and data["arm"] == trial["arm"]
            assert f"Corrected values recorded as trial {data['replacement_trial_id']}" in voided.content[0].text
            again = await client.call_tool("void_trial", {"trial_id": trial["trial_id"], "reason": "again"})
            assert again.is_error and "was voided (recorded before the run)" in again.content[0].text
            missing = await client.call_tool("void_trial", {"trial_id": trial["trial_id"]})
            assert missing.is_error and "reason" in missing.content[0].text
            padded = await client.call_tool("get_experiment", {"experiment_id": f" {experiment_id} "})
            assert not padded.is_error, padded.content[0].text  # an id pasted with spaces around it
            kinds = [event["kind"] for event in padded.structured_content["events"]]
            assert "trial_voided" in kinds

    anyio.run(go)


def test_voided_trials_survive_an_export_and_import(lab: Lab, project: Path, tmp_path: Path) -> None:
    from meta_experiment.interchange import export_experiments, import_experiments

    e = lab.create(**spec(auto_rollback=False, sample_size_required=30))
    trials = []
    for k in range(10):
        a = lab.assign(e.id, unit=f"pr-{k % 4}")
        lab.record(a.trial_id, {"time_to_complete": 30.0 + k, "issues_caught": k % 2})
        trials.append(a.trial_id)
    fixed = lab.void_trial(trials[2], "typo", {"time_to_complete": 3.2, "issues_caught": 1})
    lab.void_trial(trials[7], "the run crashed")
    document = export_experiments(lab, [e.id])
    exported = document["experiments"][0]["meta_experiment"]["trials"]
    assert [t["status"] for t in exported].count("voided") == 2
    assert exported[2]["voided"]["reason"] == "typo" and exported[exported[2]["voided"]["replaced_by"]]["replaces"] == 2
    other = Lab.open(project, tmp_path / "other-state")
    try:
        result = import_experiments(other, document)
        assert result["imported"] == [e.id] and result["ignored_keys"] == []
        assert other.store.running_stats(e.id) == pytest.approx(lab.store.running_stats(e.id))
        assert other.store.cluster_sums(e.id) == lab.store.cluster_sums(e.id)
        assert other.store.arm_counts(e.id) == lab.store.arm_counts(e.id)  # the replacement is no assignment
        assert other.store.unit_counts(e.id) == lab.store.unit_counts(e.id)
        again = export_experiments(other, [e.id])["experiments"][0]["meta_experiment"]["trials"]
        assert again == exported
        voided = sorted((v["reason"], v["replaced_by"] is not None) for v in other.store.voided_ids(e.id).values())
        assert voided == [("the run crashed", False), ("typo", True)]
        assert fixed.replacement_trial_id is not None
    finally:
        other.close()


def _tables(lab: Lab, experiment_id: str) -> dict[str, list[tuple]]:
    queries = {
        "arm_stats": "SELECT * FROM arm_stats WHERE experiment_id = ? ORDER BY arm, metric",
        "unit_sums": "SELECT * FROM unit_sums WHERE experiment_id = ? ORDER BY unit, arm, metric",
        "unit_trials": "SELECT * FROM unit_trials WHERE experiment_id = ? ORDER BY unit, arm",
        "unit_totals": "SELECT * FROM unit_totals WHERE experiment_id = ? ORDER BY arm",
        "arm_counts": "SELECT * FROM arm_counts WHERE experiment_id = ? ORDER BY arm",
    }
    with lab.store.reading() as db:
        return {name: [tuple(r) for r in db.execute(sql, (experiment_id,))] for name, sql in queries.items()}


def test_rebuilding_gives_what_recording_built_trial_by_trial(lab: Lab) -> None:
    """The rebuild a void runs, on an experiment with nothing voided, reproduces every sum that
    record_trial kept up one trial at a time: running statistics (with a log-scale metric and a
    binary one), the units' sums and cross terms, success sums and counts."""
    from meta_experiment.measurements import derived_values

    metrics = [{"name": "liked", "direction": "higher_is_better", "kind": "binary"}]
    e = lab.create(**spec(primary_metric=LOG_SPEC, secondary_metrics=metrics, auto_rollback=False))
    rng = np.random.default_rng(9)
    for k in range(80):
        unit = None if k % 9 == 0 else f"pr-{int(rng.integers(12))}"
        a = lab.assign(e.id, unit=unit)
        values = {"time_to_complete": float(rng.lognormal(3, 0.6))}
        if k % 4:
            values["liked"] = float(rng.random() < 0.6)
        lab.record(a.trial_id, values, success=bool(rng.random() < 0.85))
    built = _tables(lab, e.id)
    assert any(row[9] > 0 for row in built["arm_stats"])  # units repeat: cross terms in play
    definition = lab.definition(e.id)
    with lab.store.transaction() as db:
        lab.store._refold(db, e.id, lambda v: derived_values(definition.metrics, v))
    rebuilt = _tables(lab, e.id)
    assert {k: len(v) for k, v in rebuilt.items()} == {k: len(v) for k, v in built.items()}
    for name in built:
        for old, new in zip(built[name], rebuilt[name], strict=True):
            assert [v for v in new if isinstance(v, str)] == [v for v in old if isinstance(v, str)], name
            numbers = [v for v in old if not isinstance(v, str)]
            assert [v for v in new if not isinstance(v, str)] == pytest.approx(numbers, rel=1e-12, abs=1e-9), name


def test_a_void_clears_the_alerts_its_values_raised(lab: Lab) -> None:
    from types import SimpleNamespace

    from meta_experiment import monitoring

    # error rate: the treatment's failures were recorded by mistake; the control never fails
    e = lab.create(**spec(auto_rollback=False, sample_size_required=100))
    failed = []
    for _ in range(24):
        a = lab.assign(e.id)
        ok = a.arm == "control"
        lab.record(a.trial_id, {"time_to_complete": 30.0, "issues_caught": 1}, success=ok)
        if not ok:
            failed.append(a.trial_id)
    assert [x.kind for x in monitoring.alerts(lab, e.id, active_only=True)] == ["error_rate"]
    for trial_id in failed:
        lab.void_trial(trial_id, "the harness marked it failed", {"time_to_complete": 30.0, "issues_caught": 1}, True)
    assert monitoring.alerts(lab, e.id, active_only=True) == []
    # regression: wrong values withdrawn, leaving fewer trials than the sample size
    rollback(lab, e.id, reason="done")  # frees the file under test
    r = lab.create(**spec(auto_rollback=False, sample_size_required=20))
    treatment = []
    while not monitoring.alerts(lab, r.id, active_only=True):
        a = lab.assign(r.id)
        worse = 60 if a.arm == "treatment" else 0
        lab.record(a.trial_id, {"time_to_complete": 45.0 + (a.trial_id % 5) * 0.3 + worse})
        if a.arm == "treatment":
            treatment.append(a.trial_id)
    assert [x.kind for x in monitoring.alerts(lab, r.id, active_only=True)] == ["performance_regression"]
    for trial_id in treatment[:5]:
        lab.void_trial(trial_id, "measured in seconds, not minutes")
    assert monitoring.alerts(lab, r.id, active_only=True) == []
    # an experiment that ended meanwhile gets no new alert (its alerts were closed when it ended)
    rollback(lab, r.id, reason="stopped")
    definition = lab.definition(r.id)
    verdict = SimpleNamespace(action="rollback", rationale="worse", driven_by="sequential")
    assert monitoring.check(lab, r.id, metrics=definition.metrics, decision=verdict) == []
    assert monitoring.alerts(lab, r.id, active_only=True) == []


def test_void_messages_and_where_a_void_shows(lab: Lab) -> None:
    from meta_experiment.release_text import promote_message

    e = lab.create(**spec(auto_rollback=False))
    a = lab.assign(e.id)
    lab.record(a.trial_id, {"time_to_complete": 12.0, "issues_caught": 1})
    with pytest.raises(InvalidInput, match="success describes the corrected run"):
        lab.void_trial(a.trial_id, "only the flag was wrong", success=True)  # (false alone: test_degenerate)
    assert lab.trial(a.trial_id).status == "recorded"
    fixed = lab.void_trial(a.trial_id, "only the flag was wrong", {"time_to_complete": 12.0, "issues_caught": 1}, False)
    with pytest.raises(InvalidState, match=f"To change the corrected values, void trial {fixed.replacement_trial_id}"):
        lab.void_trial(a.trial_id, "again")
    analysis = lab.analyze(e.id)
    assert analysis.voided_trials == 1
    assert any(m.startswith("1 recorded result(s) voided and left out") for m in analysis.messages)
    assert "Voided: 1 recorded result(s) withdrawn" in promote_message(lab.get(e.id), analysis, "manual", None)


def test_a_correction_keeps_the_metrics_it_does_not_give(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    """From a user test: correcting only the primary's typo dropped the run's guardrail values (the
    guardrail then had one value fewer). Metrics left out keep the voided trial's values; a metric
    given twice on the command line is refused."""
    from meta_experiment.cli import main

    e = lab.create(**spec(auto_rollback=False, sample_size_required=40))
    a = lab.assign(e.id)
    lab.record(a.trial_id, {"time_to_complete": 7500.0, "issues_caught": 3.0}, success=True)
    result = lab.void_trial(a.trial_id, "typo: 75 typed as 7500", {"time_to_complete": 75.0})
    assert result.replacement_metrics == {"time_to_complete": 75.0, "issues_caught": 3.0}
    assert lab.store.trial_values(result.replacement_trial_id) == {"time_to_complete": 75.0, "issues_caught": 3.0}
    arm = result.arm
    assert summary_of(lab.store.running_stats(e.id)[(arm, "issues_caught")]).n == 1  # still counted
    code = main(
        ["--project", str(lab.project_root), "void", str(result.replacement_trial_id), "--reason", "x",
         "--metric", "time_to_complete=76", "--metric", "time_to_complete=77"]
    )  # fmt: skip
    assert code == 2 and lab.store.voided(result.replacement_trial_id) is None  # refused, nothing voided
    assert "--metric time_to_complete is given twice" in capsys.readouterr().err


def test_recording_a_trial_again_with_other_values_points_to_void(lab: Lab) -> None:
    from meta_experiment.errors import Conflict

    e = lab.create(**spec(auto_rollback=False))
    a = lab.assign(e.id)
    lab.record(a.trial_id, {"time_to_complete": 7500.0})
    with pytest.raises(Conflict, match=rf"void it with the right values: void_trial with trial_id={a.trial_id}"):
        lab.record(a.trial_id, {"time_to_complete": 75.0})


def test_a_first_void_imports_nothing_while_it_holds_the_write_lock(project: Path) -> None:
    """From a user test: a CLI void held the database's write lock ~1.2 s, even on 6 trials, while
    its regression check imported the statistics engine; every session's record waited. Run in a
    fresh interpreter (this one has scipy loaded): no module may be imported inside a transaction."""
    import subprocess
    import sys

    from conftest import package_env

    code = f"""
import sys
from contextlib import contextmanager
from pathlib import Path
from meta_experiment.lifecycle import Lab
sys.path.insert(0, {str(Path(__file__).parent)!r})
from conftest import spec

lab = Lab.open(Path({str(project)!r}))
e = lab.create(**spec(auto_rollback=False, sample_size_required=20))  # no regression check at record
for value in (30.0, 31.0, 29.0, 35.0, 33.0, 28.0):
    lab.record(lab.assign(e.id).trial_id, {{"time_to_complete": value, "issues_caught": 1}})
assert "scipy" not in sys.modules, "scipy loaded before the void"
inner = lab.store.transaction
imported = []

@contextmanager
def watched():
    before = set(sys.modules)
    with inner() as db:
        yield db
    imported.extend(sorted(set(sys.modules) - before))

lab.store.transaction = watched
lab.void_trial(2, "typo")
assert "scipy" in sys.modules, "the void ran the regression check"
print(imported)
"""
    out = subprocess.run([sys.executable, "-c", code], env=package_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- the rebuild is read before the write lock (from a review, 2026-11-27) ---------------------------


def _populated(lab: Lab) -> tuple[str, list[int]]:
    e = lab.create(**spec(sample_size_required=50))
    ids = []
    for i in range(60):
        a = lab.assign(e.id, unit=f"u{i % 9}" if i % 2 else None)
        lab.record(a.trial_id, {"time_to_complete": 20.0 + (i * 3.7) % 13, "issues_caught": float(i % 3)}, i % 7 != 3)
        ids.append(a.trial_id)
    return e.id, ids


def _rebuilt(lab: Lab, experiment_id: str) -> dict[str, list[tuple]]:
    """The derived rows after a full rebuild under the lock, as void_trial once always made it."""
    from meta_experiment.measurements import derived_values

    metrics = lab.definition(experiment_id).metrics
    with lab.store.transaction() as db:
        lab.store._refold(db, experiment_id, lambda values: derived_values(metrics, values))
    return derived_rows(lab, experiment_id)


def test_the_rebuild_is_read_without_the_write_lock_and_written_as_a_full_rebuild(lab: Lab, project: Path) -> None:
    """From a review: a void read every trial again while holding the write lock (1.7 s at 105,000
    trials), and every other session's record waited. It is now read before, in a snapshot."""
    import sqlite3

    experiment_id, ids = _populated(lab)
    real = lab.store._compute_refold
    seen = []

    def outside_the_lock(db, *args, **kwargs):
        probe = sqlite3.connect(lab.store.path, timeout=0)
        try:
            probe.execute("BEGIN IMMEDIATE")  # another session can write meanwhile
            probe.execute("ROLLBACK")
        finally:
            probe.close()
        seen.append(args)
        return real(db, *args, **kwargs)

    lab.store._compute_refold = outside_the_lock  # type: ignore[method-assign]
    try:
        lab.void_trial(ids[7], "typo", {"time_to_complete": 25.0})
    finally:
        lab.store._compute_refold = real  # type: ignore[method-assign]
    assert len(seen) == 1  # read once, before the lock; not again under it
    rows = derived_rows(lab, experiment_id)
    assert _rebuilt(lab, experiment_id) == rows


def test_a_trial_recorded_meanwhile_makes_the_void_read_them_again(lab: Lab, project: Path) -> None:
    experiment_id, ids = _populated(lab)
    late = lab.assign(experiment_id)
    real = lab.store.refold_without

    def then_a_record(*args, **kwargs):
        answer = real(*args, **kwargs)
        lab.record(late.trial_id, {"time_to_complete": 99.0, "issues_caught": 1.0})  # another session's
        return answer

    lab.store.refold_without = then_a_record  # type: ignore[method-assign]
    try:
        lab.void_trial(ids[3], "broken run")
    finally:
        lab.store.refold_without = real  # type: ignore[method-assign]
    rows = derived_rows(lab, experiment_id)
    assert _rebuilt(lab, experiment_id) == rows  # the late trial is in: the rebuild was read again
    e = lab.get(experiment_id)
    assert e.control.recorded + e.treatment.recorded == 60  # 59 left of the 60, and the late one


def test_a_set_of_recorded_trials_with_the_same_count_sum_and_largest_id_is_seen_to_change(
    lab: Lab, project: Path
) -> None:
    """From a review: the check was the count, sum and largest id of the recorded trials; another
    session voiding trials 1 and 4 and recording 2 and 3 (assigned earlier) kept all three, and the
    void wrote the statistics of the withdrawn trials."""
    e = lab.create(**spec(auto_rollback=False))
    other = Lab.open(project)
    try:
        t1, t2, t3, t4, t5 = (lab.assign(e.id).trial_id for _ in range(5))
        for t, v in ((t1, 10.0), (t4, 20.0), (t5, 30.0)):
            lab.record(t, {"time_to_complete": v})
        real = lab.store.refold_without

        def meanwhile(*args, **kwargs):
            answer = real(*args, **kwargs)
            other.void_trial(t1, "duplicate")
            other.void_trial(t4, "duplicate")
            other.record(t2, {"time_to_complete": 1000.0})
            other.record(t3, {"time_to_complete": 2000.0})
            return answer

        lab.store.refold_without = meanwhile  # type: ignore[method-assign]
        try:
            lab.void_trial(t5, "broken run")
        finally:
            lab.store.refold_without = real  # type: ignore[method-assign]
        rows = derived_rows(lab, e.id)
        assert _rebuilt(lab, e.id) == rows
        now = lab.get(e.id)
        assert now.control.recorded + now.treatment.recorded == 2  # trials 2 and 3, recorded meanwhile
    finally:
        other.close()


def test_the_cli_says_when_a_void_ended_the_experiment(lab: Lab, project: Path, capsys) -> None:
    """From a review: `meta-experiment void` printed "Progress 80/100." after its own alert had
    rolled the experiment back."""
    from meta_experiment import cli

    e = lab.create(**spec(sample_size_required=100, auto_rollback=True))
    treatment = []
    for _ in range(80):
        a = lab.assign(e.id)
        lab.record(a.trial_id, {"time_to_complete": 45.0})
        if a.arm == "treatment":
            treatment.append(a.trial_id)
    out = ""
    for trial in treatment:
        args = ["--project", str(project), "void", str(trial), "--reason", "it failed", "--failed"]
        assert cli.main([*args, "--metric", "time_to_complete=45"]) == 0
        out = capsys.readouterr().out
        if lab.get(e.id).status != "running":
            break
    assert lab.get(e.id).status == "rolled_back"
    assert f"{e.id} has ended (rolled_back): it takes no more trials." in out and "Progress" not in out


def test_the_newest_trials_are_read_alone_and_match_the_whole_list(lab: Lab) -> None:
    """The trials resource's default page and `trials --last` read only the newest trials (the
    whole list cost 3.1 s at 100,000): the same trials, values and voided marks as the tail of the
    whole list, with a void before the window left out and one inside it kept."""
    e = lab.create(**spec(auto_rollback=False, sample_size_required=40))
    (lab.project_root / "other.md").write_text("a\n")
    (lab.project_root / "other_v.md").write_text("b\n")
    other = lab.create(**spec(name="other", files={"other.md": "other_v.md"}, auto_rollback=False))
    for k in range(12):
        a = lab.assign(e.id)
        lab.record(a.trial_id, {"time_to_complete": float(k + 1), "issues_caught": float(k % 2)})
        lab.record(lab.assign(other.id).trial_id, {"time_to_complete": 99.0})  # interleaved ids
    lab.assign(e.id)  # pending, the newest
    lab.void_trial(lab.trials(e.id)[1].trial_id, "early typo")
    lab.void_trial(lab.trials(e.id)[-3].trial_id, "late typo")
    everything = lab.trials(e.id)
    for n in (1, 4, len(everything), len(everything) + 5):
        assert lab.trials(e.id, n) == everything[-n:]
    window = lab.trials(e.id, 5)
    assert [t.status for t in window].count("voided") == 1 and window[-1].status == "assigned"
    assert all(t.experiment_id == e.id for t in window)
