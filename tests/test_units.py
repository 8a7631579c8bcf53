"""Sticky units and the sample-ratio check: trials of one unit share one coin flip, so the SRM
check counts units (and trials without a unit), not trials. On a real SQLite file via Lab."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
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
from stats.helpers import anova_icc, cr2_dense

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
    e = lab.create(**spec(auto_rollback=False))  # an A/A false rollback (rare) would stop the recording
    # 19 of 30 fair coins on one side: an ordinary draw (P(|X - 15| >= 4) is about 0.2), but with
    # ~10 trials per unit the per-trial counts look like a gross sample-ratio mismatch.
    units = _units_split(rng, e.id, 19, 11)
    # 8 to 12 trials per unit, the same sizes in each arm's units whatever the split drew (the
    # experiment id, and so the draws, change with the date): 188 control and 108 treatment trials.
    seen: Counter[str] = Counter()
    plan = []
    for u in units:
        arm = sticky_arm(e.id, u)
        plan.append((u, 8 + seen[arm] % 5))
        seen[arm] += 1
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
    # And the analysis says that the tests account for the units.
    note = next(m for m in result.messages if "correlated" in m)
    assert f"{len(order)} recorded trials come from 30 units" in note
    assert "cluster-robust" in note and "Student's t-test" in note
    assert (result.primary.control.units, result.primary.treatment.units) == (19, 11)
    assert success.control.units == 19 and success.control.design_effect == 1.0  # constant: nothing to correct


def test_unit_counts_match_a_brute_force_count_of_the_trials_table(lab: Lab) -> None:
    rng = np.random.default_rng(7)
    e = lab.create(**spec(auto_rollback=False))  # an A/A false rollback (rare) would stop the recording
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
    recorded_units = set()
    for trial_id, unit in opened:
        r = rng.random()
        if unit == silent or r < 0.1:
            continue
        if r < 0.2:
            to_abandon.append(trial_id)
        else:
            _record(lab, trial_id, rng, success=bool(rng.random() < 0.8))
            recorded_units.add(unit)
    lab.store.abandon_trial_ids(to_abandon)

    expected, assigned, recorded = _brute_force(lab, e.id)
    assert lab.store.unit_counts(e.id) == expected
    recorded_units.discard(None)
    assert silent not in recorded_units and len(recorded_units) >= 5  # which units is up to the draws
    assert expected["control"].recorded_units + expected["treatment"].recorded_units == len(recorded_units)
    result = lab.analyze(e.id)
    by_kind = {s.counts: s for s in result.srm}
    assert (by_kind["assigned"].control, by_kind["assigned"].treatment) == (assigned["control"], assigned["treatment"])
    assert (by_kind["recorded"].control, by_kind["recorded"].treatment) == (recorded["control"], recorded["treatment"])
    assert any("correlated" in m for m in result.messages)


def test_without_units_nothing_changes_and_the_index_is_used(lab: Lab) -> None:
    e = lab.create(**spec(auto_rollback=False))  # an A/A false rollback (rare) would stop the recording
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
    assert names.index(UNIT_MIGRATION) == 2
    rng = np.random.default_rng(11)
    with monkeypatch.context() as m:
        m.setattr(store_module, "MIGRATIONS", MIGRATIONS[:2])
        # the code before the migration kept no unit counts: the upgrade must backfill them
        m.setattr(store_module.Store, "_count_unit_trial", staticmethod(lambda *args: None))
        m.setattr(store_module.Store, "_count_unit_record", staticmethod(lambda *args: None))
        m.setattr(store_module.Store, "_fold_unit", staticmethod(lambda *args: None))
        m.setattr(store_module.Store, "unit_counts", lambda self, experiment_id: {})
        m.setattr(store_module.Store, "success_cluster_sums", lambda self, experiment_id: {})
        m.setattr(store_module.Store, "voided_counts", lambda self, experiment_id: {})  # no voids table yet
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


# --- cluster-robust analysis ------------------------------------------------------------------------

CLUSTER_MIGRATION = "0004_unit_clusters"


def _brute_unit_ss(lab: Lab, experiment_id: str) -> dict[tuple[str, str], tuple[int, int, float]]:
    """From the trials and their values: {(arm, metric): (n, clusters, sum_c (s_c - mean n_c)^2)},
    where trials without a unit are clusters of one; metric "" is the success flag and "log:x" the
    log of a log-scale metric x."""
    groups: dict[tuple[str, str], dict[object, list[float]]] = {}
    log_scale = {m.name for m in lab.get(experiment_id).metrics if m.log_scale}
    for row in lab.store.trial_rows(experiment_id):
        if row["status"] != "recorded":
            continue
        cluster = row["unit"] if row["unit"] is not None else ("trial", row["id"])
        values = {**lab.store.trial_values(row["id"]), "": float(row["success"])}
        for name in list(values):
            if name in log_scale:
                values["log:" + name] = float(np.log(values[name]))
        for name, value in values.items():
            groups.setdefault((row["arm"], name), {}).setdefault(cluster, []).append(value)
    out = {}
    for key, clusters in groups.items():  # in exact rational arithmetic: values near 1.7e9 cancel
        sums = [sum(map(Fraction, v)) for v in clusters.values()]
        counts = [len(v) for v in clusters.values()]
        mean = sum(sums) / sum(counts)
        ss = sum((s - mean * n) ** 2 for s, n in zip(sums, counts, strict=True))
        out[key] = (sum(counts), len(clusters), float(ss))
    return out


def _stored_unit_ss(lab: Lab, experiment_id: str) -> dict[tuple[str, str], tuple[int, int, float]]:
    running = lab.store.running_stats(experiment_id)
    sums = lab.store.cluster_sums(experiment_id)
    e = lab.get(experiment_id)
    out = {}
    for (arm, metric), s in running.items():
        c = sums.get((arm, metric), store_module.NO_REPEATS)
        out[(arm, metric)] = (s.n, s.n - c.repeats, c.unit_ss(s.m2, s.shifted_mean))
    for arm, counts in (("control", e.control), ("treatment", e.treatment)):
        c = sums.get((arm, store_module.SUCCESS), store_module.NO_REPEATS)
        p = counts.successes / counts.recorded
        out[(arm, "")] = (counts.recorded, counts.recorded - c.repeats, c.unit_ss(counts.recorded * p * (1 - p), p))
    return out


def _assert_same_unit_ss(lab: Lab, experiment_id: str) -> None:
    expected, stored = _brute_unit_ss(lab, experiment_id), _stored_unit_ss(lab, experiment_id)
    assert stored.keys() == expected.keys()
    for key, (n, k, ss) in expected.items():
        assert stored[key][:2] == (n, k), key
        assert stored[key][2] == pytest.approx(ss, rel=1e-9, abs=1e-9), key


def _clustered_run(lab: Lab, experiment_id: str, rng: np.random.Generator, trials: int = 120) -> None:
    """Units with their own level (intra-unit correlation), some trials without a unit, a guardrail
    sometimes left out, some trials failed; values near 1.7e9 test the shifted sums. The experiment
    must have auto_rollback off (the units' failure rates differ a lot)."""
    units = [f"pr-{i}" for i in range(14)]
    level = {u: rng.normal(0, 6) for u in units}
    for _ in range(trials):
        unit = units[int(rng.integers(len(units)))] if rng.random() < 0.8 else None
        a = lab.assign(experiment_id, unit=unit)
        values: dict[str, float] = {"time_to_complete": 1.7e9 + float(rng.normal(30, 3) + (level[unit] if unit else 0))}
        if rng.random() < 0.8:
            values["issues_caught"] = int(rng.poisson(3))
        lab.record(a.trial_id, values, success=bool(rng.random() < (0.5 if unit and level[unit] > 0 else 0.9)))


def test_cluster_sums_kept_by_record_match_a_brute_force_computation(lab: Lab) -> None:
    rng = np.random.default_rng(5)
    e = lab.create(
        **spec(
            primary_metric={"name": "time_to_complete", "direction": "lower_is_better", "log_scale": True},
            auto_rollback=False,
        )
    )
    _clustered_run(lab, e.id, rng)
    _assert_same_unit_ss(lab, e.id)
    assert lab.store.cluster_sums(e.id)  # units did repeat


def _unit_level_run(
    lab: Lab,
    experiment_id: str,
    rng: np.random.Generator,
    split: tuple[int, int],
    trials: int,
    noise_sd: float = 2.0,
    unitless_every: int = 0,
) -> None:
    """Units (split: control, treatment) each with its own level of time_to_complete (sd 8) plus
    per-trial noise: strongly clustered trials; every `unitless_every`-th trial has no unit."""
    units = _units_split(rng, experiment_id, *split)
    level = {u: rng.normal(0, 8) for u in units}
    for i in range(trials):
        unit = None if unitless_every and i % unitless_every == 0 else units[int(rng.integers(len(units)))]
        value = 40 + (level[unit] if unit else 0) + rng.normal(0, noise_sd)
        lab.record(
            lab.assign(experiment_id, unit=unit).trial_id, {"time_to_complete": float(value), "issues_caught": 1}
        )


def test_analysis_uses_cluster_robust_variances_as_statsmodels_computes_them(lab: Lab) -> None:
    """Each arm's design effect is the sandwich estimate of an intercept-only regression clustered
    by unit (statsmodels OLS, cov_type='cluster', CR1 correction), and the always-valid test's z
    comes from that variance with clusters - 1 df per arm. The fixed-horizon Welch test and its
    interval use CR2 with the Bell-McCaffrey df at the ANOVA intra-unit correlation, checked
    against the dense-matrix definitions (tests/stats/helpers.cr2_dense)."""
    sm = pytest.importorskip("statsmodels.api")
    from scipy import stats

    from meta_experiment.stats.numeric import t_to_z

    rng = np.random.default_rng(8)
    e = lab.create(**spec(sample_size_required=20, auto_rollback=False))
    _unit_level_run(lab, e.id, rng, (9, 8), 160, noise_sd=3.0)
    result = lab.analyze(e.id)

    rows = [r for r in lab.store.trial_rows(e.id) if r["status"] == "recorded"]
    var_mean, groups, raw = {}, {}, {}
    for arm in ("control", "treatment"):
        mine = [r for r in rows if r["arm"] == arm]
        y = np.array([lab.store.trial_values(r["id"])["time_to_complete"] for r in mine])
        raw[arm] = (list(y), [r["unit"] for r in mine])
        codes = np.unique([r["unit"] for r in mine], return_inverse=True)[1]
        fit = sm.OLS(y, np.ones_like(y)).fit(cov_type="cluster", cov_kwds={"groups": codes})
        var_mean[arm] = float(fit.bse[0] ** 2)
        groups[arm] = int(codes.max() + 1)
        summary = getattr(result.primary, arm)
        assert summary.units == groups[arm]
        assert summary.design_effect == pytest.approx(max(1.0, var_mean[arm] * len(y) / np.var(y, ddof=1)), rel=1e-9)
    diff = result.primary.treatment.mean - result.primary.control.mean
    # the always-valid test: CR1 (statsmodels) with clusters - 1 df per arm, mapped to z
    se2 = var_mean["control"] + var_mean["treatment"]
    df = se2**2 / (
        var_mean["control"] ** 2 / (groups["control"] - 1) + var_mean["treatment"] ** 2 / (groups["treatment"] - 1)
    )
    # lower is better: the decision's z is positive when the treatment is faster
    assert result.primary.sequential.z == pytest.approx(-t_to_z(diff / np.sqrt(se2), df), rel=1e-9)
    # the fixed-horizon test: CR2 and Bell-McCaffrey df
    rho = anova_icc([raw["control"], raw["treatment"]])
    se, df = cr2_dense(*raw["control"], *raw["treatment"], rho)
    t = diff / se
    assert result.primary.welch.t == pytest.approx(t, rel=1e-9)
    assert result.primary.welch.df == pytest.approx(df, rel=1e-8)
    assert result.primary.welch.p_value == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-6)
    h = stats.t.isf(0.025, df) * se
    ci = result.primary.difference_ci
    assert (ci.lower, ci.upper) == (pytest.approx(diff - h, rel=1e-8), pytest.approx(diff + h, rel=1e-8))
    # strongly clustered: 160 trials carry the information of far fewer
    assert min(result.primary.control.design_effect, result.primary.treatment.design_effect) > 3
    assert "design effect" in result.power.message


def test_many_units_fall_back_to_cr1_without_reading_each_unit(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above UNIT_DETAIL_LIMIT units per arm the store's per-unit rows are not read: the Welch test
    is then CR1 with clusters - 1 df per arm, the same variance the always-valid test uses, and the
    export (which computes from the trials) and the chart follow the same rule."""
    from meta_experiment.interchange import export_experiments
    from meta_experiment.stats import cluster
    from meta_experiment.stats.numeric import t_to_z

    rng = np.random.default_rng(8)
    e = lab.create(**spec(sample_size_required=20, auto_rollback=False))
    _unit_level_run(lab, e.id, rng, (9, 8), 160, noise_sd=3.0)
    detailed = lab.analyze(e.id).primary
    assert export_experiments(lab)["experiments"][0]["results"]["p_value"] == pytest.approx(
        detailed.welch.p_value, rel=1e-9
    )
    monkeypatch.setattr(cluster, "UNIT_DETAIL_LIMIT", 8)  # treatment has 8 units, control 9
    read = []
    monkeypatch.setattr(lab.store, "unit_sums", lambda *a: read.append(a) or {})
    result = lab.analyze(e.id).primary
    assert read == []
    assert result.sequential.z == pytest.approx(detailed.sequential.z, rel=1e-12)  # unchanged
    assert 7 <= result.welch.df <= 15  # Welch-Satterthwaite on 8 and 7 df: the units, not 160 trials
    assert result.welch.df != pytest.approx(detailed.welch.df, rel=1e-3)
    assert -t_to_z(result.welch.t, result.welch.df) == pytest.approx(result.sequential.z, rel=1e-9)
    exported = export_experiments(lab)["experiments"][0]["results"]["p_value"]
    assert exported == pytest.approx(result.welch.p_value, rel=1e-9)


def test_clustered_success_rate_is_rao_scott_adjusted(lab: Lab) -> None:
    """The success guardrail's z takes each arm's variance as p (1 - p) deff / n at the pooled rate
    p, deff the cluster-robust variance of the arm's rate over p (1 - p) / n, about the arm's own
    rate or about the pooled rate, whichever is larger."""
    rng = np.random.default_rng(13)
    e = lab.create(**spec(auto_rollback=False))
    units = _units_split(rng, e.id, 10, 10)
    rate = {u: float(rng.choice([0.1, 0.9])) for u in units}
    for _ in range(200):
        unit = units[int(rng.integers(len(units)))]
        a = lab.assign(e.id, unit=unit)
        ok = bool(rng.random() < rate[unit])
        lab.record(a.trial_id, {"time_to_complete": 30.0 + rng.normal(), "issues_caught": 1}, success=ok)
    success = next(m for m in lab.analyze(e.id).secondary if m.name == "success_rate")
    assert success.proportions.method == "z_pooled_clustered"
    rows = lab.store.trial_rows(e.id)
    pooled = np.mean([float(r["success"]) for r in rows])
    deff, counts = {}, {}
    for arm in ("control", "treatment"):
        mine = [r for r in rows if r["arm"] == arm]
        y = np.array([float(r["success"]) for r in mine])
        codes = np.unique([r["unit"] for r in mine], return_inverse=True)[1]
        k, n = codes.max() + 1, len(y)
        s, nc = np.bincount(codes, weights=y), np.bincount(codes)
        own = max(1.0, k / (k - 1) * np.sum((s - y.mean() * nc) ** 2) / n**2 / (np.var(y, ddof=1) / n))
        null = k / (k - 1) * np.sum((s - pooled * nc) ** 2) / n**2 / (pooled * (1 - pooled) / n)
        deff[arm] = max(own, null)
        counts[arm] = (y.mean(), n)
        assert getattr(success, arm).design_effect == pytest.approx(own, rel=1e-9)
    # the z: each arm's variance about the pooled rate, p (1 - p) deff / n
    (rate_c, n_c), (rate_t, n_t) = counts["control"], counts["treatment"]
    z = (rate_t - rate_c) / np.sqrt(pooled * (1 - pooled) * (deff["control"] / n_c + deff["treatment"] / n_t))
    assert success.proportions.z == pytest.approx(z, rel=1e-9)
    assert max(deff.values()) > 2


def test_broken_units_in_one_arm_are_weak_evidence_about_the_rate(lab: Lab) -> None:
    """Two of eight treatment units fail every time, every other trial succeeds: 25% against 0%
    over 80 trials each looks decisive (z = 4.7 as independent trials), but it is 2 units of 16,
    which a fair coin puts in one arm a quarter of the time. About the pooled rate the control's
    units are clustered too, and the test sees how little there is."""
    e = lab.create(**spec(auto_rollback=False, sample_size_required=1000))
    rng = np.random.default_rng(41)
    units = _units_split(rng, e.id, 8, 8)
    broken = [u for u in units if sticky_arm(e.id, u) == "treatment"][:2]
    for _ in range(10):
        for unit in units:
            a = lab.assign(e.id, unit=unit)
            lab.record(a.trial_id, {"time_to_complete": 30.0, "issues_caught": 1}, success=unit not in broken)
    success = next(m for m in lab.analyze(e.id).secondary if m.name == "success_rate")
    assert success.control.design_effect == 1.0  # no spread about its own rate (all succeeded)
    assert success.proportions.z is not None and abs(success.proportions.z) < 2
    assert monitoring_alerts(lab, e.id) == []


def test_one_unit_per_arm_gives_no_test_and_says_why(lab: Lab) -> None:
    rng = np.random.default_rng(2)
    e = lab.create(**spec(auto_rollback=False))  # an A/A false rollback (rare) would stop the recording
    units = _units_split(rng, e.id, 1, 1)
    for unit in units * 6:
        _record(lab, lab.assign(e.id, unit=unit).trial_id, rng)
    result = lab.analyze(e.id)
    assert result.primary.welch is None and result.primary.p_value is None
    assert any("at least 2 units per arm" in m for m in result.primary.messages)
    assert result.decision.action == "continue"


def test_the_cluster_migration_backfills_the_sums_of_earlier_trials(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [name for name, _ in MIGRATIONS]
    before_clusters = MIGRATIONS[: names.index(CLUSTER_MIGRATION)]  # a database as it was before it
    rng = np.random.default_rng(17)

    def count_unit_record_0003(db, experiment_id, unit, arm, success):  # type: ignore[no-untyped-def]
        # what record_trial did before the migration: unit counts, no success or value sums
        db.execute(
            "UPDATE unit_trials SET recorded = recorded + 1 WHERE experiment_id = ? AND unit = ? AND arm = ?",
            (experiment_id, unit, arm),
        )
        (recorded,) = db.execute(
            "SELECT recorded FROM unit_trials WHERE experiment_id = ? AND unit = ? AND arm = ?",
            (experiment_id, unit, arm),
        ).fetchone()
        db.execute(
            "UPDATE unit_totals SET recorded_trials = recorded_trials + 1, recorded_units = recorded_units + ?,"
            " max_recorded_per_unit = MAX(max_recorded_per_unit, ?) WHERE experiment_id = ? AND arm = ?",
            (int(recorded == 1), recorded, experiment_id, arm),
        )

    with monkeypatch.context() as m:
        m.setattr(store_module, "MIGRATIONS", before_clusters)
        m.setattr(store_module.Store, "_count_unit_record", staticmethod(count_unit_record_0003))
        m.setattr(store_module.Store, "_fold_unit", staticmethod(lambda *args: None))
        m.setattr(store_module.Store, "cluster_sums", lambda self, experiment_id: {})
        m.setattr(store_module.Store, "success_cluster_sums", lambda self, experiment_id: {})
        m.setattr(store_module.Store, "voided_counts", lambda self, experiment_id: {})  # no voids table yet
        old = Lab.open(project)
        e = old.create(
            **spec(
                primary_metric={"name": "time_to_complete", "direction": "lower_is_better", "log_scale": True},
                auto_rollback=False,
            )
        )
        _clustered_run(old, e.id, rng, trials=60)
        old.close()

    new = Lab.open(project)
    try:
        assert new.store.applied_migrations() == sorted(names)
        _assert_same_unit_ss(new, e.id)
        _clustered_run(new, e.id, rng, trials=40)  # and kept up to date on top of the backfill
        _assert_same_unit_ss(new, e.id)
    finally:
        new.close()


def test_the_report_shows_units_and_which_tests_account_for_them(lab: Lab) -> None:
    rng = np.random.default_rng(21)
    e = lab.create(**spec(auto_rollback=False))
    _unit_level_run(lab, e.id, rng, (5, 5), 60)
    result = lab.analyze(e.id, rank_tests=True)
    from meta_experiment.stats.report import render_analysis

    text = render_analysis(result, "units")
    c = result.primary.control
    assert f"- Units: {c.units} (design effect {c.design_effect:.3g}: the {c.n} trials carry" in text
    assert "Welch t-test** (cluster-robust by unit" in text
    assert "Student t-test** (the seed's test; assumes independent trials)" in text
    assert "assumes independent trials); Hodges-Lehmann" in text


def test_the_chart_ends_where_the_cluster_robust_analysis_is(lab: Lab) -> None:
    from meta_experiment.charts import lift_path

    rng = np.random.default_rng(34)
    e = lab.create(**spec(auto_rollback=False))
    _unit_level_run(lab, e.id, rng, (6, 6), 70, unitless_every=7)  # some trials without a unit
    result = lab.analyze(e.id)
    series = lab.store.raw_series(e.id, "time_to_complete")
    args = (
        [v for arm, v, _ in series if arm == "control"],
        [v for arm, v, _ in series if arm == "treatment"],
        [arm for arm, _, _ in series],
        result,
    )
    robust = lift_path(*args, units=[u for _, _, u in series])
    # the chart draws the difference's interval as % of the control mean (lower is better: negated)
    ci, mean = result.primary.difference_ci, result.primary.control.mean
    lo, hi = sorted((-ci.lower / mean * 100, -ci.upper / mean * 100))
    assert (robust["lo"][-1], robust["hi"][-1]) == (pytest.approx(lo, rel=1e-9), pytest.approx(hi, rel=1e-9))
    naive = lift_path(*args)
    assert naive["hi"][-1] - naive["lo"][-1] < 0.7 * (hi - lo)  # what the chart drew before
    assert lab.chart(e.id)[:8] == b"\x89PNG\r\n\x1a\n"


def monitoring_alerts(lab: Lab, experiment_id: str) -> list[str]:
    from meta_experiment import monitoring

    return [a.message for a in monitoring.alerts(lab, experiment_id)]


def test_a_unit_is_the_same_unit_with_spaces_around_it(lab: Lab) -> None:
    e = lab.create(**spec(auto_rollback=False))
    rng = np.random.default_rng(1)
    arms = {lab.assign(e.id, unit=u).arm for u in ("pr-1", " pr-1", "pr-1\n", "\tpr-1 ")}
    assert arms == {sticky_arm(e.id, "pr-1")}
    for row in lab.store.trial_rows(e.id):
        _record(lab, row["id"], rng)
    counts = lab.store.unit_counts(e.id)
    assert sum(c.units for c in counts.values()) == 1 and sum(c.recorded_trials for c in counts.values()) == 4


def _treatment_units(lab: Lab, experiment_id: str, rng: np.random.Generator, control: int, treatment: int):  # type: ignore[no-untyped-def]
    units = _units_split(rng, experiment_id, control, treatment)
    mine = [u for u in units if sticky_arm(experiment_id, u) == "treatment"]
    return [u for u in units if u not in mine], mine


def test_one_unit_in_an_arm_gives_no_rate_test_and_no_alert(lab: Lab) -> None:
    e = lab.create(**spec(auto_rollback=False, sample_size_required=10))
    control, treatment = _treatment_units(lab, e.id, np.random.default_rng(5), 8, 1)
    for i in range(40):
        for unit in (control[i % 8], treatment[0]):
            a = lab.assign(e.id, unit=unit)
            ok = unit in control or i % 10 >= 3  # the treatment's one unit fails 12 of 40
            lab.record(a.trial_id, {"time_to_complete": 30.0 + i % 3, "issues_caught": 1}, success=ok)
    success = next(m for m in lab.analyze(e.id).secondary if m.name == "success_rate")
    assert success.proportions is None and not success.sequential.active
    assert any("at least 2 units per arm" in m for m in success.messages)
    assert monitoring_alerts(lab, e.id) == []


def test_the_clustered_rate_interval_excludes_0_exactly_when_the_test_decides(lab: Lab) -> None:
    e = lab.create(**spec(auto_rollback=False, sample_size_required=10))
    control, treatment = _treatment_units(lab, e.id, np.random.default_rng(6), 10, 10)
    failures = dict(zip(treatment, [3, 3, 2, 2, 2, 2, 1, 1, 0, 0], strict=True))
    checked = 0
    for i in range(10):
        for c_unit, t_unit in zip(control, treatment, strict=True):
            for unit, ok in ((c_unit, True), (t_unit, i >= failures[t_unit])):
                lab.record(lab.assign(e.id, unit=unit).trial_id, {"time_to_complete": 30.0, "issues_caught": 1}, ok)
        seq = next(m for m in lab.analyze(e.id).secondary if m.name == "success_rate").sequential
        if seq.active and seq.confidence_sequence is not None:
            decided = min(seq.p_value_improvement, seq.p_value_regression) <= seq.alpha_per_direction
            cs = seq.confidence_sequence
            assert (cs.upper < 0 or cs.lower > 0) == decided
            checked += 1
    assert checked >= 5


def test_the_floor_alert_counts_units(lab: Lab) -> None:
    """Six treatment units whose satisfaction differs by unit, averaging 0.41 against a floor of
    0.5: as 60 independent trials that is far below the floor; as six units it is not shown."""
    from meta_experiment import floors, monitoring

    e = lab.create(
        **spec(
            auto_rollback=False,
            sample_size_required=1000,
            secondary_metrics=[{"name": "user_satisfaction", "direction": "higher_is_better"}],
        )
    )
    control, treatment = _treatment_units(lab, e.id, np.random.default_rng(7), 6, 6)
    level = dict(zip(treatment, [0.2, 0.3, 0.4, 0.5, 0.6, 0.45], strict=True))
    for i in range(10):
        for c_unit, t_unit in zip(control, treatment, strict=True):
            for unit, value in ((c_unit, 0.8), (t_unit, level[t_unit] + 0.01 * (i % 3))):
                metrics = {"time_to_complete": 30.0, "user_satisfaction": value}
                lab.record(lab.assign(e.id, unit=unit).trial_id, metrics)
    running = lab.store.running_stats(e.id)[("treatment", "user_satisfaction")]
    settings = monitoring.monitoring_settings(lab)
    assert floors.floor_finding("user_satisfaction", False, running, 0.5, settings) is not None
    assert not any("below its floor" in m for m in monitoring_alerts(lab, e.id))


def test_the_export_reports_the_cluster_robust_p_value(lab: Lab) -> None:
    from meta_experiment.interchange import export_experiments

    rng = np.random.default_rng(50)
    e = lab.create(**spec(auto_rollback=False))
    _unit_level_run(lab, e.id, rng, (6, 6), 60, unitless_every=5)
    welch = lab.analyze(e.id).primary.welch
    results = export_experiments(lab, [e.id])["experiments"][0]["results"]
    assert results["p_value"] == pytest.approx(welch.p_value, rel=1e-9)
