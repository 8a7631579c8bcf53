"""Sticky units and the sample-ratio check: trials of one unit share one coin flip, so the SRM
check counts units (and trials without a unit), not trials. On a real SQLite file via Lab."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import spec
from meta_experiment import store as store_module
from meta_experiment.allocation import sticky_arm
from meta_experiment.lifecycle import Lab
from meta_experiment.schema import MIGRATIONS
from meta_experiment.stats.srm import srm_check
from meta_experiment.store import UnitCounts

UNIT_MIGRATION = "0003_unit_counts"


def _units_split(rng: np.random.Generator, experiment_id: str, control: int, treatment: int) -> list[str]:
    """Random unit names (from `rng`) whose sticky arms give `control` and `treatment` units."""
    want = {"control": control, "treatment": treatment}
    units: list[str] = []
    while any(want.values()):
        name = f"session-{rng.integers(1 << 40):x}"
        arm = sticky_arm(experiment_id, name)
        if want[arm] and name not in units:
            want[arm] -= 1
            units.append(name)
    rng.shuffle(units)  # type: ignore[arg-type]
    return units


def _record(lab: Lab, trial_id: int, rng: np.random.Generator, success: bool = True) -> None:
    lab.record(trial_id, {"time_to_complete": float(rng.normal(30, 5)), "issues_caught": int(rng.poisson(3))}, success)


def _brute_force(lab: Lab, experiment_id: str) -> tuple[dict[str, UnitCounts], dict[str, int], dict[str, int]]:
    """From the trials table in Python: the per-arm UnitCounts, and the SRM counts (trials without a
    unit + distinct units) for assigned and recorded."""
    rows = lab.store.trial_rows(experiment_id)
    counts: dict[str, UnitCounts] = {}
    assigned: dict[str, int] = {"control": 0, "treatment": 0}
    recorded: dict[str, int] = {"control": 0, "treatment": 0}
    for arm in ("control", "treatment"):
        mine = [r for r in rows if r["arm"] == arm]
        with_unit = [r for r in mine if r["unit"] is not None]
        rec = [r for r in with_unit if r["status"] == "recorded"]
        per_unit = Counter(r["unit"] for r in rec)
        if with_unit:
            counts[arm] = UnitCounts(
                trials=len(with_unit),
                recorded_trials=len(rec),
                units=len({r["unit"] for r in with_unit}),
                recorded_units=len(per_unit),
                max_recorded_per_unit=max(per_unit.values(), default=0),
            )
        assigned[arm] = sum(r["unit"] is None for r in mine) + len({r["unit"] for r in with_unit})
        recorded[arm] = sum(r["unit"] is None and r["status"] == "recorded" for r in mine) + len(per_unit)
    return counts, assigned, recorded


def test_aa_run_of_30_units_x_10_trials_counts_units_in_the_srm_check(lab: Lab) -> None:
    rng = np.random.default_rng(20240611)
    e = lab.create(**spec())
    # 19 of 30 fair coins on one side: an ordinary draw (P(|X - 15| >= 4) is about 0.2), but with
    # ~10 trials per unit the per-trial counts look like a gross sample-ratio mismatch.
    units = _units_split(rng, e.id, 19, 11)
    plan = [(u, int(n)) for u, n in zip(units, rng.integers(8, 13, size=len(units)), strict=True)]
    order = [u for u, n in plan for _ in range(n)]
    rng.shuffle(order)  # type: ignore[arg-type]
    for unit in order:
        a = lab.assign(e.id, unit=unit)
        assert a.arm == sticky_arm(e.id, unit)
        _record(lab, a.trial_id, rng)

    trials = Counter(r["arm"] for r in lab.store.trial_rows(e.id))
    assert trials["control"] > 150 and trials["treatment"] < 150
    per_trial = srm_check("recorded", trials["control"], trials["treatment"])
    assert per_trial.mismatch  # what the check said before: trials counted as independent

    result = lab.analyze(e.id)
    by_kind = {s.counts: s for s in result.srm}
    for kind in ("assigned", "recorded"):
        check = by_kind[kind]
        assert (check.control, check.treatment) == (19, 11)
        assert not check.mismatch and check.p_value is not None and check.p_value > 0.1
    srm_criterion = next(c for c in result.decision.criteria if "SRM" in c.name)
    assert srm_criterion.met
    rationale = result.decision.rationale.lower()
    assert "sample-ratio" not in rationale and "srm" not in rationale
    # Everything else still counts trials.
    assert result.trials_recorded == len(order)
    success = next(m for m in result.secondary if m.name == "success_rate")
    assert (success.control.n, success.treatment.n) == (trials["control"], trials["treatment"])
    assert success.control.mean == 1.0
    # And the analysis says why the t-tests may be too optimistic.
    note = next(m for m in result.messages if "correlated" in m)
    assert f"{len(order)} recorded trials come from 30 units" in note
    assert "t-tests" in note and "one trial per unit" in note


def test_unit_counts_match_a_brute_force_count_of_the_trials_table(lab: Lab) -> None:
    rng = np.random.default_rng(7)
    e = lab.create(**spec())
    units = _units_split(rng, e.id, 6, 5)
    opened: list[tuple[int, str | None]] = []
    for _ in range(80):
        unit = units[int(rng.integers(len(units)))] if rng.random() < 0.6 else None
        a = lab.assign(e.id, unit=unit)
        opened.append((a.trial_id, unit))
    for arm in ("control", "treatment", "treatment"):  # imported measurements have no unit
        lab.record_measurement(e.id, arm, {"time_to_complete": 20.0, "issues_caught": 1})
    # Most trials recorded, some left assigned, some abandoned; one unit never recorded at all.
    silent = units[0]
    to_abandon = []
    for trial_id, unit in opened:
        r = rng.random()
        if unit == silent or r < 0.1:
            continue
        if r < 0.2:
            to_abandon.append(trial_id)
        else:
            _record(lab, trial_id, rng, success=bool(rng.random() < 0.8))
    lab.store.abandon_trial_ids(to_abandon)

    expected, assigned, recorded = _brute_force(lab, e.id)
    assert lab.store.unit_counts(e.id) == expected
    assert expected["control"].recorded_units + expected["treatment"].recorded_units == len(units) - 1
    result = lab.analyze(e.id)
    by_kind = {s.counts: s for s in result.srm}
    assert (by_kind["assigned"].control, by_kind["assigned"].treatment) == (assigned["control"], assigned["treatment"])
    assert (by_kind["recorded"].control, by_kind["recorded"].treatment) == (recorded["control"], recorded["treatment"])
    assert any("correlated" in m for m in result.messages)


def test_without_units_nothing_changes_and_the_index_is_used(lab: Lab) -> None:
    e = lab.create(**spec())
    rng = np.random.default_rng(3)
    for _ in range(12):
        _record(lab, lab.assign(e.id).trial_id, rng)
    assert lab.store.unit_counts(e.id) == {}
    result = lab.analyze(e.id)
    assert [(s.counts, s.control, s.treatment) for s in result.srm] == [("assigned", 6, 6), ("recorded", 6, 6)]
    assert not any("correlated" in m for m in result.messages)

    # One recorded trial per unit: units and trials agree, and there is nothing to warn about.
    for unit in ("pr-1", "pr-2", "pr-3"):
        _record(lab, lab.assign(e.id, unit=unit).trial_id, rng)
    assert not any("correlated" in m for m in lab.analyze(e.id).messages)

    # Reading the counts is one row per arm, whatever the number of trials: no scan of the trials.
    statements: list[str] = []
    with lab.store.reading() as db:
        db.set_trace_callback(statements.append)
        try:
            lab.store.unit_counts(e.id)
        finally:
            db.set_trace_callback(None)
        (query,) = [s for s in statements if "unit_totals" in s]
        plan = " | ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + query))
    assert "unit_totals" in plan and "trials" not in plan.replace("unit_totals", ""), plan


def test_the_migration_upgrades_a_database_created_before_it(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = [name for name, _ in MIGRATIONS]
    assert names[-1] == UNIT_MIGRATION, "append new migrations after this one, and update this test"
    rng = np.random.default_rng(11)
    with monkeypatch.context() as m:
        m.setattr(store_module, "MIGRATIONS", [x for x in MIGRATIONS if x[0] != UNIT_MIGRATION])
        # the code before the migration kept no unit counts: the upgrade must backfill them
        m.setattr(store_module.Store, "_count_unit_trial", staticmethod(lambda *args: None))
        m.setattr(store_module.Store, "_count_unit_record", staticmethod(lambda *args: None))
        m.setattr(store_module.Store, "unit_counts", lambda self, experiment_id: {})
        old = Lab.open(project)
        assert UNIT_MIGRATION not in old.store.applied_migrations()
        e = old.create(**spec())
        units = _units_split(rng, e.id, 3, 2)
        for unit in units * 4:
            _record(old, old.assign(e.id, unit=unit).trial_id, rng)
        with old.store.reading() as db:
            assert db.execute("SELECT 1 FROM sqlite_master WHERE name = 'unit_totals'").fetchone() is None
        old.close()

    new = Lab.open(project)
    try:
        assert new.store.applied_migrations() == sorted(names)
        expected = _brute_force(new, e.id)[0]
        assert new.store.unit_counts(e.id) == expected
        assert expected["control"] == UnitCounts(12, 12, 3, 3, 4)
        srm = {s.counts: (s.control, s.treatment) for s in new.analyze(e.id).srm}
        assert srm == {"assigned": (3, 2), "recorded": (3, 2)}
        # Trials written after the upgrade are counted on top of the backfilled ones.
        _record(new, new.assign(e.id, unit="pr-new").trial_id, rng)
        assert new.store.unit_counts(e.id) == _brute_force(new, e.id)[0]
    finally:
        new.close()
