"""The lifecycle rules on a real project folder and SQLite file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import COMMAND, PROD, VAR, VARIANT, spec
from meta_experiment.allocation import block_arm, sticky_arm
from meta_experiment.errors import Conflict, InvalidInput, InvalidState, NotFound, PathError
from meta_experiment.lifecycle import Lab
from meta_experiment.settings import update_settings


def snapshot(lab: Lab) -> tuple:
    """Everything a refused call must leave unchanged."""
    with lab.store.reading() as db:
        return tuple(
            tuple(tuple(r) for r in db.execute(f"SELECT * FROM {table}"))
            for table in (
                "experiments",
                "experiment_files",
                "trials",
                "metric_values",
                "arm_stats",
                "arm_counts",
                "events",
                "blobs",
            )
        )


# -- create --------------------------------------------------------------------------------------


def test_create_starts_running_with_seed_defaults_and_snapshots(lab: Lab) -> None:
    e = lab.create(**spec())
    assert re.fullmatch(r"exp-\d{8}-\d{6}", e.id)
    assert e.status == "running" and e.started_at
    assert (e.targets.improvement_threshold, e.targets.max_regression, e.targets.confidence_threshold) == (15, 10, 0.8)
    assert (e.sample_size_required, e.max_duration_days) == (10, 14)
    assert lab.store.blob(e.files[0].control_sha256) == COMMAND.encode()
    assert lab.store.blob(e.files[0].treatment_sha256) == VARIANT.encode()
    assert [ev.kind for ev in lab.events(e.id)] == ["created"]


def test_ids_stay_unique_within_one_second(lab: Lab, project: Path) -> None:
    lab.clock = lambda: 1_790_000_000.0
    first = lab.create(**spec())
    (project / "b.md").write_text("b")
    (project / "b2.md").write_text("b2")
    second = lab.create(**spec(files={"b.md": "b2.md"}))
    assert second.id == first.id + "-2"


def test_a_mistyped_id_gets_the_closest_ids(lab: Lab, project: Path) -> None:
    """From a review: with more than five experiments, the id the person meant was not among the
    'Known ids (latest)' of a mistyped one, and nothing said which was close."""
    ids = []
    for k in range(7):
        lab.clock = lambda k=k: 1_790_000_000.0 + 3600 * k
        (project / f"f{k}.md").write_text("a")
        (project / f"f{k}.v.md").write_text("b")
        ids.append(lab.create(**spec(files={f"f{k}.md": f"f{k}.v.md"})).id)
    typo = ids[0][:-1]  # the first, one digit short
    with pytest.raises(NotFound, match=f"Did you mean {ids[0]}") as caught:
        lab.get(typo)
    assert f"Known ids (latest): {', '.join(ids[-5:])}." in str(caught.value)
    with pytest.raises(NotFound, match=f"Did you mean {ids[1]}"):
        lab.get(ids[1].upper())
    for unlike in ("something-else", "exp-20261120-091500"):  # another day's id is no typo of these
        with pytest.raises(NotFound) as refused:
            lab.get(unlike)
        assert "Did you mean" not in str(refused.value)
    # a part of an id: without its exp- prefix, or its date and hour (a review: no hint for either)
    with pytest.raises(NotFound, match=f"Did you mean {ids[2]}\\?"):
        lab.get(ids[2].removeprefix("exp-"))
    with pytest.raises(NotFound, match=f"Did you mean {ids[3]}\\?"):
        lab.get(ids[3][: len("exp-20260922-05")])
    (project / "n.md").write_text("a")
    (project / "n.v.md").write_text("b")
    named = lab.create(**spec(name="Parallel reviewers", files={"n.md": "n.v.md"}))
    with pytest.raises(NotFound, match=f"Did you mean {named.id}\\?"):
        lab.get("parallel reviewers")  # its name


def test_defaults_come_from_the_settings_file(lab: Lab) -> None:
    update_settings(lab.state_dir, {"defaults": {"sample_size_required": 24, "improvement_threshold": 5.0}})
    e = lab.create(**spec(max_regression=3.0))
    assert e.sample_size_required == 24
    assert e.targets.improvement_threshold == 5.0 and e.targets.max_regression == 3.0


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"files": {"missing.md": VAR}}, PathError, "does not exist"),
        ({"files": {"../outside.md": VAR}}, PathError, "outside the project root"),
        ({"files": {"/etc/hostname": VAR}}, PathError, "outside the project root"),
        ({"files": {PROD: PROD}}, InvalidInput, "same file"),
        ({"files": {}}, InvalidInput, "at least one"),
        ({"sample_size_required": -4}, InvalidInput, "sample_size_required"),
        ({"confidence_threshold": 1.2}, InvalidInput, "confidence_threshold"),
        ({"primary_metric": {"name": "t", "direction": "sideways"}}, InvalidInput, "direction"),
        ({"primary_metric": {"name": "bad name!", "direction": "lower_is_better"}}, InvalidInput, "name"),
        (
            {"secondary_metrics": [{"name": "time_to_complete", "direction": "lower_is_better"}]},
            InvalidInput,
            "distinct",
        ),
        ({"name": ""}, InvalidInput, "name"),
        ({"name": "   "}, InvalidInput, "name is blank"),
        ({"hypothesis": " \n "}, InvalidInput, "hypothesis is blank"),
    ],
)
def test_bad_create_input_is_refused_and_nothing_is_written(lab: Lab, overrides, error, message) -> None:
    before = snapshot(lab)
    with pytest.raises(error, match=message):
        lab.create(**spec(**overrides))
    assert snapshot(lab) == before


def test_symlink_variant_pointing_outside_is_refused(lab: Lab, project: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere.md").write_text("x")
    os.symlink(tmp_path / "elsewhere.md", project / "link.md")
    with pytest.raises(PathError, match="symlink"):
        lab.create(**spec(files={PROD: "link.md"}))


def test_binary_files_are_refused(lab: Lab, project: Path) -> None:
    (project / "conf.ini").write_bytes(b"[a]\nname = caf\xe9\n")
    (project / "conf.v2.ini").write_text("[a]\nname = cafe\n")
    with pytest.raises(
        InvalidInput, match=r"'conf.ini' is not UTF-8 text: byte 15 \(line 2\) is 0xe9.*Save it as UTF-8"
    ):
        lab.create(**spec(files={"conf.ini": "conf.v2.ini"}))
    (project / "blob.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff")
    with pytest.raises(InvalidInput, match="is a binary file"):
        lab.create(**spec(files={PROD: "blob.bin"}))
    (project / "wide.md").write_bytes("Review.\n".encode("utf-16"))
    with pytest.raises(InvalidInput, match="'wide.md' is UTF-16 text.*Save it as UTF-8"):
        lab.create(**spec(files={PROD: "wide.md"}))
    # From a review: without a byte-order mark, UTF-16 of ASCII text is valid UTF-8 (NULs and all),
    # and it was taken, handed to the treatment's runs as 'R\x00e\x00v...' and promotable.
    for text, encoding in [
        (t, e) for t in ("Review the PR in parallel.\n", "Café.\n") for e in ("utf-16-le", "utf-16-be")
    ]:
        (project / "wide.md").write_bytes(text.encode(encoding))
        with pytest.raises(InvalidInput, match="'wide.md' is UTF-16 text \\(without a byte-order mark"):
            lab.create(**spec(files={PROD: "wide.md"}))
    for encoding in ("utf-32-le", "utf-32-be", "utf-32"):  # (the last with its byte-order mark)
        (project / "wide.md").write_bytes("Review the PR in parallel.\n".encode(encoding))
        with pytest.raises(InvalidInput, match="'wide.md' is UTF-32 text .*iconv -f UTF-32"):
            lab.create(**spec(files={PROD: "wide.md"}))
    # valid UTF-8 with a stray NUL, or NULs alone, is text as it always was (an export holding one imports)
    from meta_experiment.lifecycle import check_text

    for text in (b"Review.\n\x00 a stray NUL\n", b"\x00" * 64):
        assert check_text("nul.md", text) == text


def test_a_file_under_test_cannot_join_a_second_running_experiment(lab: Lab, project: Path) -> None:
    first = lab.create(**spec())
    (project / "other.md").write_text("x")
    with pytest.raises(Conflict, match=first.id):
        lab.create(**spec(files={PROD: "other.md"}))


# -- assign --------------------------------------------------------------------------------------


def test_ten_assignments_give_five_and_five(lab: Lab) -> None:
    e = lab.create(**spec())
    arms = [lab.assign(e.id).arm for _ in range(10)]
    assert arms.count("control") == 5
    for k in range(2, 11, 2):  # balanced after every complete block
        assert arms[:k].count("control") == k // 2


def test_assignment_returns_the_snapshot_text_of_its_arm(lab: Lab, project: Path) -> None:
    e = lab.create(**spec())
    (project / VAR).write_text("edited after start")
    seen = {}
    for _ in range(4):
        a = lab.assign(e.id)
        seen[a.arm] = a
    assert seen["control"].files[0].content == COMMAND and seen["control"].files[0].path == PROD
    assert seen["treatment"].files[0].content == VARIANT and seen["treatment"].files[0].path == VAR
    assert any("changed on disk" in w for w in seen["treatment"].warnings)
    assert not seen["control"].warnings


def test_sticky_units_get_the_same_arm_every_time(lab: Lab) -> None:
    e = lab.create(**spec())
    for unit in ("pr-1", "pr-2", "session-abc", "ü-unicode"):
        arms = {lab.assign(e.id, unit=unit).arm for _ in range(3)}
        assert arms == {sticky_arm(e.id, unit)}
    split = [sticky_arm(e.id, f"user-{i}") for i in range(2000)]
    assert 900 < split.count("control") < 1100


def test_sticky_arm_is_the_same_in_another_process(lab: Lab) -> None:
    e = lab.create(**spec())
    code = f"from meta_experiment.allocation import sticky_arm; print(sticky_arm({e.id!r}, 'pr-77'))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    )
    assert out.stdout.strip() == lab.assign(e.id, unit="pr-77").arm


def test_block_order_is_deterministic() -> None:
    assert [block_arm("exp-x", i) for i in range(8)] == [block_arm("exp-x", i) for i in range(8)]


def test_assign_refuses_unknown_and_ended_experiments(lab: Lab) -> None:
    with pytest.raises(NotFound, match="No experiment with id 'exp-nope'"):
        lab.assign("exp-nope")
    e = lab.create(**spec())
    lab.store.update_experiment(e.id, status="rolled_back", status_reason="regression")
    before = snapshot(lab)
    with pytest.raises(InvalidState, match="rolled_back.*regression.*new experiment"):
        lab.assign(e.id)
    assert snapshot(lab) == before


# -- record --------------------------------------------------------------------------------------


def test_record_and_identical_retry(lab: Lab) -> None:
    e = lab.create(**spec())
    a = lab.assign(e.id)
    first = lab.record(a.trial_id, {"time_to_complete": 12.5, "issues_caught": 3})
    assert not first.duplicate and first.trials_recorded == 1 and first.trials_needed == 9
    before = snapshot(lab)
    again = lab.record(a.trial_id, {"time_to_complete": 12.5, "issues_caught": 3})
    assert again.duplicate and snapshot(lab) == before


def test_recording_different_values_twice_is_a_conflict(lab: Lab) -> None:
    e = lab.create(**spec())
    a = lab.assign(e.id)
    lab.record(a.trial_id, {"time_to_complete": 12.5})
    before = snapshot(lab)
    with pytest.raises(Conflict, match="recorded 12.5, now 13.0"):
        lab.record(a.trial_id, {"time_to_complete": 13.0})
    with pytest.raises(Conflict, match="success"):
        lab.record(a.trial_id, {"time_to_complete": 12.5}, success=False)
    with pytest.raises(Conflict, match="issues_caught: not recorded, now 2.0"):  # not "recorded None"
        lab.record(a.trial_id, {"time_to_complete": 12.5, "issues_caught": 2})
    assert snapshot(lab) == before


def test_a_validators_sentence_reads_as_written(lab: Lab) -> None:
    duplicate = {"secondary_metrics": [{"name": "time_to_complete", "direction": "lower_is_better"}]}
    with pytest.raises(InvalidInput) as refused:
        lab.create(**spec(**duplicate))
    message = str(refused.value)
    assert "metric names must be distinct; repeated: time_to_complete" in message
    assert "Value error" not in message and "experiment: experiment" not in message


def test_assign_says_a_deleted_file_is_missing(lab: Lab, project: Path) -> None:
    e = lab.create(**spec())
    (project / VAR).unlink()
    warnings = [w for _ in range(2) for w in lab.assign(e.id).warnings]
    assert any(w.startswith(f"{VAR} is missing; use the content returned here") for w in warnings), warnings


def test_duration_primary_defaults_to_time_since_assign(lab: Lab) -> None:
    now = [1_790_000_000.0]
    lab.clock = lambda: now[0]
    e = lab.create(**spec())
    a = lab.assign(e.id)
    now[0] += 90.0  # 1.5 minutes later
    r = lab.record(a.trial_id, {"issues_caught": 2})
    assert r.metrics["time_to_complete"] == pytest.approx(1.5)
    now[0] += 60.0  # a retry later still matches (the duration is not re-measured)
    assert lab.record(a.trial_id, {"issues_caught": 2}).duplicate


@pytest.mark.parametrize(
    ("unit", "read_as", "value"),
    [
        ("MS", "ms", 90_000.0),
        ("Seconds", "seconds", 90.0),
        ("hrs", "h", 0.025),
        ("Minute", "minutes", 1.5),
        ("µs", "us", 90e6),
        ("days", "days", 90 / 86400),
    ],
)
def test_a_duration_unit_in_another_spelling_is_known_at_create(
    lab: Lab, unit: str, read_as: str, value: float
) -> None:
    """From a user test: "MS" or "Seconds" made a plain unit, and every record without the value was
    refused from the first run on, with no way to change the unit of a running experiment."""
    now = [1_790_000_000.0]
    lab.clock = lambda: now[0]
    e = lab.create(**spec(primary_metric={"name": "t", "direction": "lower_is_better", "unit": unit}))
    assert e.primary_metric.unit == read_as
    a = lab.assign(e.id)
    now[0] += 90.0
    assert lab.record(a.trial_id, {"issues_caught": 1}).metrics["t"] == pytest.approx(value)


def test_success_rate_is_a_reserved_metric_name(lab: Lab) -> None:
    """A metric of that name replaced the guardrail computed from each trial's success flag."""
    with pytest.raises(InvalidInput, match="'success_rate' is reserved.*success=false"):
        lab.create(**spec(secondary_metrics=[{"name": "success_rate", "direction": "lower_is_better"}]))
    assert lab.experiments() == []


def test_non_duration_primary_must_be_given(lab: Lab) -> None:
    e = lab.create(**spec(primary_metric={"name": "score", "direction": "higher_is_better"}, secondary_metrics=[]))
    a = lab.assign(e.id)
    with pytest.raises(InvalidInput, match="primary metric 'score' is missing"):
        lab.record(a.trial_id, {})


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"time_to_complete": float("nan")}, "finite"),
        ({"time_to_complete": float("inf")}, "finite"),
        ({"time_to_complete": 10**400}, "401 digits"),
        ({"time_to_complete": 2e15}, "larger unit"),
        ({"time_to_complete": -1.0}, "negative"),
        ({"time_to_complete": "fast"}, "must be a number"),
        ({"time_to_complete": True}, "not yes/no"),
        ({"time_to_complete": "TRUE"}, "not yes/no"),
        ({"time_to_complete": "1_000"}, "not '12.5s' or '1_000'"),
        ({"time_to_complete": 3, "speed": 1}, "Unknown metric"),
    ],
)
def test_bad_metric_values_are_refused_and_nothing_changes(lab: Lab, metrics, message) -> None:
    e = lab.create(**spec())
    a = lab.assign(e.id)
    before = snapshot(lab)
    with pytest.raises(InvalidInput, match=message):
        lab.record(a.trial_id, metrics)
    assert snapshot(lab) == before


def test_binary_metric_takes_zero_or_one(lab: Lab) -> None:
    e = lab.create(**spec(secondary_metrics=[{"name": "passed", "direction": "higher_is_better", "kind": "binary"}]))
    a = lab.assign(e.id)
    with pytest.raises(InvalidInput, match="binary"):
        lab.record(a.trial_id, {"time_to_complete": 1, "passed": 0.5})
    assert lab.record(a.trial_id, {"time_to_complete": 1, "passed": True}).metrics["passed"] == 1.0
    b = lab.assign(e.id)  # true/false written as text, as a tool's JSON or an import may carry them
    assert lab.record(b.trial_id, {"time_to_complete": " 2 ", "passed": "False"}).metrics == {
        "time_to_complete": 2.0,
        "passed": 0.0,
    }


def test_unknown_trial_and_abandoned_trial(lab: Lab) -> None:
    with pytest.raises(NotFound, match="No trial with id 424242"):
        lab.record(424242, {"time_to_complete": 1})
    e = lab.create(**spec())
    a = lab.assign(e.id)
    lab.store.abandon_trials(e.id)
    with pytest.raises(InvalidState, match="abandoned"):
        lab.record(a.trial_id, {"time_to_complete": 1})


def test_record_measurement_without_assign(lab: Lab) -> None:
    e = lab.create(**spec())
    r = lab.record_measurement(e.id, "treatment", {"time_to_complete": 20.0}, success=False)
    t = lab.trial(r.trial_id)
    assert (t.source, t.status, t.arm, t.success) == ("import", "recorded", "treatment", False)
    assert lab.get(e.id).treatment.recorded == 1 and lab.get(e.id).treatment.successes == 0
    with pytest.raises(InvalidInput, match="arm must be"):
        lab.record_measurement(e.id, "placebo", {"time_to_complete": 1.0})
    with pytest.raises(InvalidInput, match="primary metric"):
        lab.record_measurement(e.id, "control", {"issues_caught": 1.0})


def test_record_refused_after_the_experiment_ended(lab: Lab) -> None:
    e = lab.create(**spec())
    a = lab.assign(e.id)
    lab.store.update_experiment(e.id, status="expired")
    with pytest.raises(InvalidState, match="expired"):
        lab.record(a.trial_id, {"time_to_complete": 3})


# -- analysis and status -------------------------------------------------------------------------


def test_status_lists_progress_toward_sample_size(lab: Lab) -> None:
    e = lab.create(**spec(sample_size_required=12))
    for value in (40.0, 30.0, 44.0):
        a = lab.assign(e.id)
        lab.record(a.trial_id, {"time_to_complete": value})
    (item,) = lab.status().experiments
    assert item.progress.trials_recorded == 3 and item.progress.percent == 25.0 and item.progress.trials_needed == 9
    assert item.progress.per_arm_floor is None


def test_progress_counts_the_per_arm_minimum_below_ten_trials(lab: Lab) -> None:
    """With the even split no decision comes before 10 trials (5 per arm), whatever the required size."""
    e = lab.create(**spec(sample_size_required=4))
    for value in (40.0, 30.0, 44.0, 41.0):
        a = lab.assign(e.id)
        lab.record(a.trial_id, {"time_to_complete": value})
    progress = lab.progress(lab.get(e.id))
    assert (progress.trials_recorded, progress.trials_needed, progress.percent) == (4, 6, 40.0)
    assert progress.per_arm_floor is not None and "each arm needs 5" in progress.per_arm_floor


def test_analyze_reads_running_stats_not_raw_rows(lab: Lab) -> None:
    e = lab.create(**spec())
    for i in range(6):
        a = lab.assign(e.id)
        lab.record(a.trial_id, {"time_to_complete": 40.0 + i if a.arm == "control" else 25.0 + i})
    with lab.store.transaction() as db:  # poison the raw rows: analysis must not read them
        db.execute("UPDATE metric_values SET value = -1e9")
    result = lab.analyze(e.id)
    assert result.primary.control.mean > 0 and result.primary.treatment.mean > 0


def test_log_scale_metric_keeps_log_statistics_and_refuses_non_positive(lab: Lab) -> None:
    import math

    import numpy as np

    primary = {"name": "time_to_complete", "direction": "lower_is_better", "unit": "min", "log_scale": True}
    e = lab.create(**spec(primary_metric=primary, sample_size_required=6))
    values = {"control": [40.0, 55.0, 47.0, 61.0], "treatment": [22.0, 30.0, 26.0, 35.0]}
    for _ in range(8):
        a = lab.assign(e.id)
        lab.record(a.trial_id, {"time_to_complete": values[a.arm].pop()})
    a = lab.assign(e.id)
    with pytest.raises(InvalidInput, match="log scale"):
        lab.record(a.trial_id, {"time_to_complete": 0.0})
    result = lab.analyze(e.id)  # no raw values read: the log statistics come from the store
    assert result.primary.scale == "log"
    assert not any("log" in m for m in result.primary.messages)
    logs = lab.store.running_stats(e.id)[("control", "log:time_to_complete")]
    expected = np.log([40.0, 55.0, 47.0, 61.0])
    assert logs.mean == pytest.approx(expected.mean()) and logs.variance == pytest.approx(expected.var(ddof=1))
    assert result.primary.improvement_pct == pytest.approx(
        -math.expm1(np.log([22.0, 30.0, 26.0, 35.0]).mean() - expected.mean()) * 100
    )


def test_rank_tests_only_when_asked(lab: Lab) -> None:
    e = lab.create(**spec())
    for i in range(12):
        a = lab.assign(e.id)
        lab.record(a.trial_id, {"time_to_complete": (40.0 if a.arm == "control" else 25.0) + i})
    assert lab.analyze(e.id).primary.mann_whitney is None
    ranked = lab.analyze(e.id, rank_tests=True).primary.mann_whitney
    assert ranked is not None and ranked.p_value < 0.05 and ranked.hodges_lehmann < 0


def test_chart_is_a_png_once_both_arms_have_data(lab: Lab) -> None:
    e = lab.create(**spec())
    assert lab.chart(e.id) is None
    for i in range(6):
        a = lab.assign(e.id)
        lab.record(a.trial_id, {"time_to_complete": 30.0 + i})
    png = lab.chart(e.id)
    assert png is not None and png.startswith(b"\x89PNG") and len(png) > 10_000


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "review\x00pr"}, "plain text"),
        ({"hypothesis": "saves\x00time"}, "plain text"),
        (
            {"primary_metric": {"name": "ok", "direction": "higher_is_better", "kind": "binary", "log_scale": True}},
            "0/1",
        ),
        (
            {"primary_metric": {"name": "ok", "direction": "higher_is_better", "kind": "binary", "unit": "min"}},
            "time unit",
        ),
        ({"primary_metric": {"name": "t", "direction": "lower_is_better", "unit": "m\x00in"}}, "plain text"),
    ],
)
def test_text_and_metric_shapes_that_cannot_work_are_refused(lab: Lab, change: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        lab.create(**spec(**change))
    assert lab.experiments() == []


def test_a_reason_with_control_characters_is_refused() -> None:
    from meta_experiment import release

    with pytest.raises(InvalidInput, match="control characters"):
        release._reason("bad\x00idea")
    assert release._reason("  two\nlines\t ok ") == "two\nlines\t ok"


def test_record_names_the_guardrails_a_trial_left_out(lab: Lab) -> None:
    e = lab.create(**spec())
    a = lab.assign(e.id)
    assert lab.record(a.trial_id, {"time_to_complete": 12.0}).missing_guardrails == ["issues_caught"]
    b = lab.assign(e.id)
    assert lab.record(b.trial_id, {"time_to_complete": 12.0, "issues_caught": 2}).missing_guardrails == []


def test_a_misspelled_nested_key_is_named_with_what_it_meant(lab: Lab) -> None:
    bad = spec(primary_metric={"name": "time_to_complete", "directon": "lower_is_better"})
    with pytest.raises(InvalidInput) as err:
        lab.create(**bad)
    assert "primary_metric.directon: unknown key (did you mean 'direction'?)" in str(err.value)
    assert "Field required" not in str(err.value)
    with pytest.raises(InvalidInput, match="primary_metric: must be an object of named fields") as err:
        lab.create(**spec(primary_metric="time_to_complete"))
    assert "MetricSpec" not in str(err.value)


def test_a_failed_run_may_leave_the_primary_out_and_counts_for_the_success_rate_only(lab: Lab) -> None:
    """From a user test: a crashed run has no bug count, so `record(success=false)` was refused and
    the failure went unseen by the success rate and the error-rate alert; with a duration primary,
    the time until the crash was recorded as the run's duration, so a change that fails fast looked
    fast. A failed run now counts for the success rate only, unless its values are given."""
    now = [1_790_000_000.0]
    lab.clock = lambda: now[0]
    counted = lab.create(
        **spec(
            primary_metric={"name": "bugs", "direction": "higher_is_better"},
            secondary_metrics=[],
            auto_rollback=False,
            sample_size_required=20,
        )
    )
    for name in ("other.md", "other.variant.md"):
        (lab.project_root / name).write_text(name)
    timed = lab.create(**spec(files={"other.md": "other.variant.md"}, auto_rollback=False, sample_size_required=20))
    for e, good in ((counted, {"bugs": 3.0}), (timed, {"time_to_complete": 30.0, "issues_caught": 1})):
        treated = 0
        for _ in range(16):
            a = lab.assign(e.id)
            treated += a.arm == "treatment"
            failed = a.arm == "treatment" and treated % 2 == 1  # half the treatment's runs, quickly
            now[0] += 5.0 if failed else 1800.0
            r = lab.record(a.trial_id, {} if failed else good, success=not failed)
            assert r.missing_guardrails == [] or not failed
            if failed:
                assert r.metrics == {} and not r.success
                assert lab.record(a.trial_id, {}, success=False).duplicate  # a retry, as any other
        analysis = lab.analyze(e.id)
        primary = analysis.primary
        assert (primary.control.n, primary.treatment.n) == (8, 4)  # the failed runs hold no value
        assert primary.treatment.mean == primary.control.mean  # no time until a crash in the mean
        rate = next(m for m in analysis.secondary if m.name == "success_rate")
        assert (rate.treatment.n, rate.treatment.mean) == (8, 0.5)
        assert lab.get(e.id).treatment.recorded == 8
    with pytest.raises(InvalidInput, match="Every successful run needs it .*success=false"):
        lab.record(lab.assign(counted.id).trial_id, {})


def test_assign_warns_when_the_experiment_is_past_its_time(lab: Lab) -> None:
    """From a user test: past max_duration_days, assign handed out trials without a word until
    someone ran auto."""
    now = [1_790_000_000.0]
    lab.clock = lambda: now[0]
    e = lab.create(**spec(max_duration_days=2))
    assert not any("limit" in w for w in lab.assign(e.id).warnings)
    now[0] += 2 * 86400
    [warning] = [w for w in lab.assign(e.id).warnings if "limit" in w]
    assert warning.startswith(f"{e.id} is past its 2-day limit: the next auto run expires it")


def test_progress_waits_for_values_of_the_primary_not_failed_runs_without_one(lab: Lab) -> None:
    """From a user test: 4 successful runs and 8 failed ones without values read "10/10; ready to
    analyze" with 2 values of the primary per arm (the decision itself waited for 5)."""
    e = lab.create(**spec(sample_size_required=10, auto_rollback=False))
    for i in range(12):
        a = lab.assign(e.id)
        ok = i < 4
        r = lab.record(a.trial_id, {"time_to_complete": 30.0, "issues_caught": 1} if ok else {}, success=ok)
    assert (r.trials_recorded, r.trials_needed) == (12, 6)  # 3 more values in each arm, at the even split
    assert r.per_arm_floor == (
        "each arm needs 5 values of time_to_complete (failed runs without one count for the success rate only) "
        "before a decision (2 control, 2 treatment so far)"
    )


def test_us_in_capitals_is_not_read_as_microseconds(lab: Lab) -> None:
    e = lab.create(**spec(primary_metric={"name": "cost", "direction": "lower_is_better", "unit": "US"}))
    assert e.primary_metric.unit == "US" and not e.primary_metric.is_duration


def test_a_stored_experiment_keeps_the_unit_it_was_created_with(lab: Lab) -> None:
    """Spellings are read as duration units when an experiment is created, not when one made before
    (with "Seconds" as a plain unit) is read back: it would become a duration mid-run."""
    import json

    e = lab.create(**spec(primary_metric={"name": "t", "direction": "lower_is_better", "unit": "points"}))
    with lab.store.transaction() as db:
        (text,) = db.execute("SELECT spec_json FROM experiments WHERE id = ?", (e.id,)).fetchone()
        stored = json.loads(text)
        stored["primary_metric"]["unit"] = "Seconds"
        db.execute("UPDATE experiments SET spec_json = ? WHERE id = ?", (json.dumps(stored), e.id))
    assert lab.get(e.id).primary_metric.unit == "Seconds"
    assert not lab.definition(e.id).primary_metric.is_duration


def test_no_chart_for_an_arm_of_failed_runs_without_values(lab: Lab) -> None:
    """From a review: an arm whose runs all failed without a value got a chart with an empty arm."""
    from meta_experiment.mcp_resources import no_chart_reason

    e = lab.create(**spec(auto_rollback=False))
    for _ in range(6):
        a = lab.assign(e.id)
        ok = a.arm == "control"
        lab.record(a.trial_id, {"time_to_complete": 30.0 + a.trial_id, "issues_caught": 1} if ok else {}, success=ok)
    assert lab.chart(e.id) is None
    assert "(control 3, treatment 0 so far)" in no_chart_reason(lab, lab.get(e.id))


def test_an_arm_without_runs_yet_is_waited_for_and_one_without_values_is_questioned(lab: Lab) -> None:
    """One recorded run: the other arm has none yet, which is no reason to check anything; an arm
    whose runs left the primary out is."""
    e = lab.create(**spec())
    a = lab.assign(e.id)
    lab.record(a.trial_id, {"time_to_complete": 3.0})
    other = "treatment" if a.arm == "control" else "control"
    rationale = lab.analyze(e.id).decision.rationale
    assert f"the {other} arm has no recorded runs yet, so nothing can be compared; keep running trials" in rationale
    b = lab.assign(e.id)
    assert b.arm == other  # permuted blocks of two
    lab.record(b.trial_id, {}, success=False)  # a failed run without a value
    rationale = lab.analyze(e.id).decision.rationale
    assert f"the {other} arm has no time_to_complete values yet" in rationale and "record the metric" in rationale


def test_new_values_for_a_trial_of_an_ended_experiment_are_refused_as_its_record(lab: Lab) -> None:
    """From a review: the refusal advised void_trial, which refuses an ended experiment in turn."""
    from meta_experiment.release import rollback

    e = lab.create(**spec())
    a = lab.assign(e.id)
    lab.record(a.trial_id, {"time_to_complete": 12.0})
    rollback(lab, e.id, reason="wrong file")
    assert lab.record(a.trial_id, {"time_to_complete": 12.0}).ended == "rolled_back"  # a retry: fine
    with pytest.raises(InvalidState, match="has ended \\(rolled_back\\): its recorded results are its record") as info:
        lab.record(a.trial_id, {"time_to_complete": 99.0})
    assert "void_trial" not in str(info.value)
