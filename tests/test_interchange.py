"""Import and export in the seed's experiments.json format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import PROD, VAR, derived_rows, git, lab_elsewhere, spec
from meta_experiment.errors import Conflict, InvalidInput, InvalidState
from meta_experiment.interchange import export_experiments, import_experiments, write_document
from meta_experiment.lifecycle import Lab

SEED_DOCUMENT = {
    "experiments": [
        {
            "id": "exp-2025-10-20-001",
            "name": "Enhanced PR review with parallel agents",
            "created": "2025-10-20T10:30:00Z",
            "status": "promoted",
            "hypothesis": "Running security-analyst + code-cleanup in parallel saves 15min per PR",
            "changes": {
                "type": "command_modification",
                "files": {
                    "plugins/psd-claude-workflow/commands/review_pr.md": {
                        "backup": "plugins/psd-claude-workflow/commands/review_pr.md.backup",
                        "variant": "plugins/psd-claude-workflow/commands/review_pr.md.experiment",
                    }
                },
                "description": "Modified /review_pr to invoke security and cleanup agents in parallel",
            },
            "metrics": {
                "primary": "time_to_complete_review",
                "secondary": ["issues_caught", "false_positives", "user_satisfaction"],
            },
            "targets": {"improvement_threshold": 15, "max_regression": 10, "confidence_threshold": 0.80},
            "sample_size_required": 10,
            "max_duration_days": 14,
            "auto_rollback": True,
            "auto_promote": True,
            "results": {
                "trials_completed": 6,
                "control_group": [45, 50, 41],
                "treatment_group": [27, 30, 25],
                "control_avg": 45.33,
                "treatment_avg": 27.33,
                "improvement_pct": 39.7,
                "p_value": None,
                "statistical_confidence": None,
                "status": "promoted",
            },
        }
    ]
}


def populated(lab: Lab) -> str:
    primary = {"name": "time_to_complete", "direction": "lower_is_better", "unit": "min", "log_scale": True}
    e = lab.create(**spec(sample_size_required=6, primary_metric=primary))
    for i in range(7):
        a = lab.assign(e.id, unit="u1" if i == 3 else None)
        if i == 6:
            continue  # stays assigned
        lab.record(a.trial_id, {"time_to_complete": 30.0 + i * 1.37, "issues_caught": float(i % 3)}, success=i != 2)
    lab.record_measurement(e.id, "control", {"time_to_complete": 44.0})
    assert lab.store.abandon_trials(e.id) == 1  # the open trial is abandoned ...
    lab.assign(e.id)  # ... and a new one stays open
    return e.id


def test_round_trip_is_lossless(lab: Lab, project: Path, tmp_path: Path) -> None:
    experiment_id = populated(lab)
    document = export_experiments(lab)
    item = document["experiments"][0]
    # the seed's template fields, with their meaning
    for key in (
        "id",
        "name",
        "created",
        "status",
        "hypothesis",
        "changes",
        "metrics",
        "targets",
        "sample_size_required",
        "max_duration_days",
        "auto_rollback",
        "auto_promote",
        "results",
    ):
        assert key in item
    assert item["changes"]["files"] == {PROD: {"backup": None, "variant": VAR}}
    assert item["results"]["trials_completed"] == 7
    statuses = [t["status"] for t in item["meta_experiment"]["trials"]]
    assert statuses.count("abandoned") == 1 and statuses.count("assigned") == 1
    assert len(item["results"]["control_group"]) + len(item["results"]["treatment_group"]) == 7
    assert item["results"]["status"] == "collecting_data"
    json.dumps(document, allow_nan=False)  # valid strict JSON: no NaN anywhere

    other = Lab.open(project, tmp_path / "elsewhere")
    try:
        assert import_experiments(other, document)["imported"] == [experiment_id]
        again = export_experiments(other)
        added = again["experiments"][0]["meta_experiment"]["events"].pop()  # the import's own event
        assert (added["kind"], added["data"]["status"], added["data"]["trials"]) == ("imported", "running", 9)
        assert again == document
        assert other.store.running_stats(experiment_id) == lab.store.running_stats(experiment_id)
        assert other.get(experiment_id).model_dump() == lab.get(experiment_id).model_dump()
        # an imported running experiment keeps assigning where it left off
        assert other.assign(experiment_id).arm == lab.assign(experiment_id).arm
    finally:
        other.close()


def test_seed_format_without_extension_imports(lab: Lab) -> None:
    result = import_experiments(lab, SEED_DOCUMENT)
    assert result["imported"] == ["exp-2025-10-20-001"]
    assert any("assumed lower_is_better" in w for w in result["warnings"])  # time_to_complete_review
    assert any("'user_satisfaction' has no definition; assumed higher_is_better" in w for w in result["warnings"])
    e = lab.get("exp-2025-10-20-001")
    assert e.status == "promoted" and e.auto_promote
    assert (e.control.recorded, e.treatment.recorded) == (3, 3)
    running = lab.store.running_stats(e.id)
    assert running[("control", "time_to_complete_review")].mean == pytest.approx(136 / 3)
    exported = export_experiments(lab)["experiments"][0]
    assert exported["results"]["control_group"] == [45.0, 50.0, 41.0]
    assert exported["created"].startswith("2025-10-20T10:30:00")


def test_import_is_all_or_nothing(lab: Lab) -> None:
    bad = json.loads(json.dumps(SEED_DOCUMENT))
    bad["experiments"].append(dict(bad["experiments"][0], id="exp-second", sample_size_required=-1))
    with pytest.raises(InvalidInput, match="exp-second.*sample_size_required.*Nothing was imported"):
        import_experiments(lab, bad)
    assert lab.experiments() == []


def test_imported_values_are_checked_as_record_checks_them(lab: Lab) -> None:
    """A number written as text reads as the number (the record tool reads "7" so too); a binary value
    other than 0/1, or a negative duration, is refused as record refuses it."""
    e = lab.create(
        **spec(
            sample_size_required=4,
            secondary_metrics=[{"name": "tests_pass", "direction": "higher_is_better", "kind": "binary"}],
        )
    )
    for value in (30.0, 32.0):
        lab.record(lab.assign(e.id).trial_id, {"time_to_complete": value, "tests_pass": 1})
    document = export_experiments(lab)
    trial = document["experiments"][0]["meta_experiment"]["trials"][0]
    other = Lab.open(lab.project_root, lab.state_dir / "other")
    try:
        for metrics, message in (
            ({"time_to_complete": "-3", "tests_pass": 1}, "duration; it cannot be negative"),
            ({"time_to_complete": 30.0, "tests_pass": 0.5}, "binary; record 0 or 1"),
        ):
            trial["metrics"] = metrics
            with pytest.raises(InvalidInput, match=message):
                import_experiments(other, document)
        assert other.experiments() == []
        trial["metrics"] = {"time_to_complete": " 30.0", "tests_pass": "1"}
        assert import_experiments(other, document)["imported"] == [e.id]
        assert other.store.running_stats(e.id) == lab.store.running_stats(e.id)  # read as 30.0 and 1
    finally:
        other.close()


def test_existing_ids_conflict_or_skip(lab: Lab) -> None:
    import_experiments(lab, SEED_DOCUMENT)
    with pytest.raises(Conflict, match="already exists"):
        import_experiments(lab, SEED_DOCUMENT)
    assert import_experiments(lab, SEED_DOCUMENT, on_conflict="skip")["skipped"] == ["exp-2025-10-20-001"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "experiments"),
        ({"experiments": [{"name": "no id"}]}, "string id"),
        ({"experiments": [dict(SEED_DOCUMENT["experiments"][0], status="exploded")]}, "one of: draft"),
        ({"experiments": [dict(SEED_DOCUMENT["experiments"][0], results={"control_group": [1, "x"]})]}, "a number"),
        ({"experiments": [dict(SEED_DOCUMENT["experiments"][0], results={"control_group": [10**400]})]}, "401 digits"),
        ({"experiments": [dict(SEED_DOCUMENT["experiments"][0], results={"control_group": [3e15]})]}, "larger unit"),
        ({"experiments": [dict(SEED_DOCUMENT["experiments"][0], results={"control_group": ["45s"]})]}, "number alone"),
        (
            {"experiments": [dict(SEED_DOCUMENT["experiments"][0], metrics={"primary": "t", "secondary": [{"n": 1}]})]},
            "hold metric names, not dict .* go in meta_experiment.metric_definitions",
        ),
        (
            {
                "experiments": [
                    dict(
                        SEED_DOCUMENT["experiments"][0],
                        status="draft",
                        metrics={"primary": "t", "secondary": ["success_rate"]},
                    )
                ]
            },
            "named 'success_rate'.*rename it",
        ),
    ],
)
def test_malformed_documents_are_refused(lab: Lab, document, message) -> None:
    with pytest.raises(InvalidInput, match=message):
        import_experiments(lab, document)
    assert lab.experiments() == []


def test_running_import_needs_its_files(lab: Lab) -> None:
    running = json.loads(json.dumps(SEED_DOCUMENT))
    running["experiments"][0]["status"] = "running"
    with pytest.raises(InvalidInput, match="does not exist in this project"):
        import_experiments(lab, running)


def test_writing_an_export_over_a_previous_export_backs_it_up(lab: Lab, project: Path) -> None:
    populated(lab)
    target = project / "experiments.json"
    target.write_text("my own notes\n")  # not an export: refused, kept as it is
    with pytest.raises(Conflict, match="not an export"):
        write_document(lab, "experiments.json", export_experiments(lab))
    assert target.read_text() == "my own notes\n"
    seed = '{"experiments": [{"id": "my-own", "note": "hand-written"}]}\n'  # the seed's file: imported, not replaced
    target.write_text(seed)
    with pytest.raises(Conflict, match="not an export of this tool.*meta-experiment-export.json"):
        write_document(lab, "experiments.json", export_experiments(lab))
    assert target.read_text() == seed
    previous = '{"format": "meta-experiment/1", "experiments": []}\n'
    target.write_text(previous)
    assert write_document(lab, "experiments.json", export_experiments(lab))[0] == "experiments.json"
    backups = list((lab.state_dir / "backups").iterdir())
    assert [b.read_text() for b in backups] == [previous]
    assert json.loads(target.read_text())["experiments"]
    with pytest.raises(InvalidInput, match="outside"):
        write_document(lab, "../escape.json", {})


@pytest.mark.parametrize(
    ("path", "message"), [(".git/HEAD", "git's own folder"), (".meta-experiment/experiments.db", "state folder")]
)
def test_export_never_writes_git_or_state_files(lab: Lab, project: Path, path: str, message: str) -> None:
    populated(lab)
    before = (project / ".git" / "HEAD").read_bytes()
    with pytest.raises(InvalidInput, match=message):
        write_document(lab, path, export_experiments(lab))
    assert (project / ".git" / "HEAD").read_bytes() == before
    assert lab.experiments()  # the store still opens


def test_export_never_overwrites_a_file_under_test(lab: Lab, project: Path) -> None:
    experiment_id = populated(lab)
    production = lab.get(experiment_id).files[0].production
    before = (project / production).read_bytes()
    with pytest.raises(InvalidInput, match="file under test"):
        write_document(lab, production, export_experiments(lab))
    assert (project / production).read_bytes() == before


SEED_PRODUCTION = "plugins/psd-claude-workflow/commands/review_pr.md"


def _broken(change) -> dict:
    """The seed document with its experiment changed by `change(item)`."""
    document = json.loads(json.dumps(SEED_DOCUMENT))
    change(document["experiments"][0])
    return document


def _ext(**fields):
    return lambda item: item.__setitem__("meta_experiment", fields)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda i: i.__setitem__("meta_experiment", "x"), "meta_experiment must be an object"),
        (lambda i: i.__setitem__("changes", [1]), "changes must be an object"),
        (
            lambda i: i["changes"].__setitem__("files", {"prod.md": 5}),
            r"changes.files.'prod.md'. must name",
        ),
        (lambda i: i.__setitem__("results", "x"), "results must be an object"),
        (lambda i: i.__setitem__("created", 12345), "ISO 8601"),
        (lambda i: i.__setitem__("id", "x" * 300), "1 to 100 letters, digits"),
        (_ext(next_slot=1e30), "next_slot must be a whole number"),
        (_ext(next_slot="abc"), "next_slot must be a whole number"),
        (
            _ext(events=[{"kind": "k", "message": "m", "at": "2025-10-20T10:30:00Z", "data": "x"}]),
            r"meta_experiment.events\[0\].data must be an object",
        ),
        (_ext(events=[{"kind": "k", "message": "m"}]), r"meta_experiment.events\[0\].at None must be an ISO 8601"),
        (_ext(events=[{"kind": 5, "message": "m", "at": "x"}]), r"events\[0\] needs string kind, message and actor"),
        (_ext(events=[{"kind": "k", "message": "m", "at": "yesterday"}]), r"events\[0\].at 'yesterday' must be"),
        (_ext(events={"kind": "k"}), "meta_experiment.events must be a list"),
        (_ext(files=[{"production": SEED_PRODUCTION}]), r"meta_experiment.files\[0\].control_content must be text"),
        (_ext(files="prod.md"), "meta_experiment.files must be a list"),
        (_ext(files=["prod.md"]), r"meta_experiment.files\[0\] must be an object"),
        (_ext(trials=[{"arm": "control", "status": "recorded", "metrics": {}}]), "without a value for the primary"),
    ],
)
def test_malformed_documents_say_what_is_wrong(lab: Lab, change, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        import_experiments(lab, _broken(change))
    assert "Nothing was imported" in str(info.value)
    assert lab.experiments() == []


def test_a_running_import_may_not_share_a_file_with_a_running_experiment(lab: Lab) -> None:
    populated(lab)
    document = export_experiments(lab)
    document["experiments"][0]["id"] = "exp-copy"
    with pytest.raises(InvalidInput, match="already under test"):
        import_experiments(lab, document)
    assert [e.id for e in lab.experiments()] != [] and not lab.store.experiment_exists("exp-copy")


def _seed_on_project_files(status: str, experiment_id: str) -> dict:
    """The seed's document with one experiment of this status on the project's command file, without
    results or snapshots."""
    import copy

    doc = copy.deepcopy(SEED_DOCUMENT)
    item = doc["experiments"][0]
    item.update(status=status, id=experiment_id)
    item.pop("results")
    item["changes"]["files"] = {PROD: {"variant": VAR}}
    return doc


def test_an_imported_draft_reads_as_a_draft_in_status(lab: Lab) -> None:
    from meta_experiment.report import render_status

    import_experiments(lab, _seed_on_project_files("draft", "exp-draft-1"))
    text = render_status(lab.status())
    assert (
        "**Action**: Start it (start_experiment; CLI: `meta-experiment start exp-draft-1`): a draft is not started"
        in text
        and "rolled back" not in text
    )
    analysis = lab.analyze("exp-draft-1")
    assert analysis.experiment_status == "draft"


def test_a_running_experiment_without_snapshots_says_the_files_are_taken_as_they_are(lab: Lab) -> None:
    from meta_experiment.release import rollback

    warnings = import_experiments(lab, _seed_on_project_files("running", "exp-running-1"))["warnings"]
    assert f"exp-running-1: the document has no snapshot of {PROD} and {VAR}, so the files as they are now" in (
        " ".join(warnings)
    )
    rollback(lab, "exp-running-1", reason="frees the files for the draft")
    draft_warnings = import_experiments(lab, _seed_on_project_files("draft", "exp-draft-2"))["warnings"]
    assert not any("no snapshot" in w for w in draft_warnings)  # a draft is snapshotted when started


def _files(project: Path, state_dir: Path) -> dict[str, bytes]:
    """Every file of the project outside the state folder, with its content."""
    return {
        str(p.relative_to(project)): p.read_bytes()
        for p in sorted(project.rglob("*"))
        if p.is_file() and state_dir not in p.parents
    }


def _second(change) -> dict:
    """The seed document and, after its valid experiment, a second one changed by `change(item)`."""
    document = json.loads(json.dumps(SEED_DOCUMENT))
    second = json.loads(json.dumps(SEED_DOCUMENT["experiments"][0]))
    second["id"] = "exp-second"
    change(second)
    document["experiments"].append(second)
    return document


def _rename(block: str | None, old: str, new: str):
    def change(item: dict) -> None:
        target = item if block is None else item[block]
        target[new] = target.pop(old)

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            _rename(None, "sample_size_required", "sample_size_requird"),
            "unknown key 'sample_size_requird' (did you mean 'sample_size_required'?)",
        ),
        (_rename(None, "auto_promote", "autoPromote"), "unknown key 'autoPromote' (did you mean 'auto_promote'?)"),
        (
            _rename("results", "control_group", "control_grup"),
            "unknown key 'control_grup' in results (did you mean 'control_group'?)",
        ),
        (
            _rename("targets", "improvement_threshold", "improvment_threshold"),
            "unknown key 'improvment_threshold' in targets (did you mean 'improvement_threshold'?)",
        ),
        (
            lambda i: i["changes"]["files"][SEED_PRODUCTION].__setitem__("varient", "other.md"),
            f"unknown key 'varient' in changes.files[{SEED_PRODUCTION!r}] (did you mean 'variant'?)",
        ),
        (
            _ext(
                trials=[{"arm": "control", "status": "recorded", "metrics": {}, "recorded_a": "2025-10-21T09:00:00Z"}]
            ),
            "unknown key 'recorded_a' in meta_experiment.trials[0] (did you mean 'recorded_at'?)",
        ),
    ],
    ids=["top-level", "camel-case", "results", "targets", "changes-files", "meta-trials"],
)
def test_a_misspelled_key_is_refused_with_the_key_it_meant(lab: Lab, project: Path, change, message: str) -> None:
    """A misspelled key would leave a default the user never chose (here: 10 trials, auto_promote
    off, an empty control group...): the whole document is refused and nothing is written, not even
    the valid experiment before it."""
    before = _files(project, lab.state_dir)
    with pytest.raises(InvalidInput) as info:
        import_experiments(lab, _second(change))
    assert str(info.value) == f"experiments[1] (exp-second): {message}. Nothing was imported."
    assert lab.experiments() == []
    assert lab.store.event_rows(kinds=["imported"]) == []
    assert _files(project, lab.state_dir) == before


def test_a_misspelled_key_of_the_document_is_refused(lab: Lab) -> None:
    document = {"expriments": SEED_DOCUMENT["experiments"]}
    with pytest.raises(InvalidInput, match=r"unknown key 'expriments' \(did you mean 'experiments'\?\)"):
        import_experiments(lab, document)
    assert lab.experiments() == []


def test_other_unknown_keys_are_imported_and_named_as_ignored(lab: Lab, project: Path, tmp_path: Path) -> None:
    """Keys another tool may add (close to none of the format's own) do not stop the import, and
    the result names each one instead of dropping it silently; the experiment is the same as
    without them."""
    from meta_experiment.mcp_data import ImportResult

    lab.clock = lambda: 1_800_000_000.0
    document = json.loads(json.dumps(SEED_DOCUMENT))
    document["generator"] = "psd-meta-learning"
    item = document["experiments"][0]
    item.update(owner="alice", tags=["review"], created_by="meta_experiment")  # tags ~ targets, created_by ~ created
    item["results"]["control_median"] = 45
    item["changes"]["files"][SEED_PRODUCTION]["checksum"] = "abc"
    result = import_experiments(lab, document)
    assert result["imported"] == ["exp-2025-10-20-001"]
    assert result["ignored_keys"] == [
        "generator",
        "experiments[0].owner",
        "experiments[0].tags",
        "experiments[0].created_by",
        f"experiments[0].changes.files[{SEED_PRODUCTION!r}].checksum",
        "experiments[0].results.control_median",
    ]
    assert result["warnings"][0].startswith("The document: ignored the unknown key(s) 'generator'")
    assert any(
        w.startswith("exp-2025-10-20-001: ignored the unknown key(s) 'owner', 'tags', 'created_by'")
        and "'results.control_median'" in w
        for w in result["warnings"]
    )
    assert ImportResult(**result).ignored_keys == result["ignored_keys"]  # the tool's structured result keeps them

    plain = Lab.open(project, tmp_path / "plain")
    plain.clock = lab.clock  # the same time on both imports' events
    try:
        assert import_experiments(plain, SEED_DOCUMENT)["ignored_keys"] == []
        assert export_experiments(plain) == export_experiments(lab)
    finally:
        plain.close()


def test_an_export_has_no_unknown_keys(lab: Lab, project: Path, tmp_path: Path) -> None:
    """Every key export_experiments writes is one the import reads."""
    populated(lab)
    other = Lab.open(project, tmp_path / "elsewhere")
    try:
        result = import_experiments(other, export_experiments(lab))
        assert result["ignored_keys"] == [] and result["warnings"] == []
    finally:
        other.close()


def _draft(lab: Lab, experiment_id: str = "exp-draft-1") -> None:
    import copy

    doc = copy.deepcopy(SEED_DOCUMENT)
    item = doc["experiments"][0]
    item.update(status="draft", id=experiment_id)
    item.pop("results")
    item["changes"]["files"] = {PROD: {"variant": VAR}}
    import_experiments(lab, doc)


def test_a_draft_starts_with_the_files_as_they_are_then(lab: Lab, project: Path) -> None:
    from meta_experiment.errors import InvalidState

    _draft(lab)
    with pytest.raises(InvalidState, match=r"Start it first \(start_experiment\)"):
        lab.assign("exp-draft-1")
    (project / VAR).write_text("the variant, edited after the import\n")
    started = lab.start("exp-draft-1")
    assert started.status == "running" and started.started_at is not None
    a = lab.assign("exp-draft-1")
    while a.arm != "treatment":
        lab.record(a.trial_id, {"time_to_complete": 5.0})
        a = lab.assign("exp-draft-1")
    assert a.files[0].content == "the variant, edited after the import\n"  # snapshotted at the start
    assert "started" in [ev.kind for ev in lab.events("exp-draft-1")]
    with pytest.raises(InvalidState, match="only a draft can be started"):
        lab.start("exp-draft-1")


def test_a_draft_can_be_discarded_and_frees_its_files(lab: Lab) -> None:
    from conftest import spec
    from meta_experiment import release
    from meta_experiment.errors import Conflict, InvalidState

    _draft(lab)
    with pytest.raises(Conflict, match="already under test"):
        lab.create(**spec())
    with pytest.raises(InvalidState, match=r"is draft; it cannot be promoted\. Start it first \(start_experiment"):
        release.promote(lab, "exp-draft-1", force=True, reason="try")
    result = release.rollback(lab, "exp-draft-1", reason="imported by mistake")
    assert lab.get("exp-draft-1").status == "rolled_back" and result.outcome == "stopped"
    assert result.summary.startswith("Discarded the draft exp-draft-1")
    assert "after 0 trials: imported by mistake" in lab.events("exp-draft-1")[-1].message
    assert lab.create(**spec()).status == "running"


def test_an_empty_list_of_ids_is_refused_not_taken_for_all(lab: Lab) -> None:
    populated(lab)
    with pytest.raises(InvalidInput, match="list of experiment ids is empty.*leave the ids out to export all"):
        export_experiments(lab, [])
    assert len(export_experiments(lab)["experiments"]) == 1


@pytest.mark.parametrize("status", ["draft", "running", "promoted", "rolled_back"])
@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd"])
def test_a_file_outside_the_project_is_refused_whatever_the_status(lab: Lab, status: str, path: str) -> None:
    document = _broken(lambda i: i.update(status=status, changes={"files": {path: {"variant": VAR}}}))
    with pytest.raises(InvalidInput) as info:
        import_experiments(lab, document)
    message = str(info.value)
    assert f"The file {path!r} is outside the project root" in message
    assert "may only name files of the project" in message and message.endswith("Nothing was imported.")
    assert lab.experiments() == [] and lab.store.event_rows() == []


def test_a_variant_outside_the_project_is_refused(lab: Lab) -> None:
    document = _broken(lambda i: i["changes"].update(files={PROD: {"variant": "../elsewhere/variant.md"}}))
    with pytest.raises(InvalidInput, match="The variant '../elsewhere/variant.md' is outside the project root"):
        import_experiments(lab, document)
    assert lab.experiments() == []


@pytest.mark.parametrize("bad", ["../../evil", "a/b", "a\\b", ".hidden", "-x", "", "exp one", "exp-é", "x" * 101])
def test_an_id_that_is_not_a_plain_name_is_refused(lab: Lab, bad: str) -> None:
    with pytest.raises(InvalidInput, match="is not a usable experiment id.*rename it in the document"):
        import_experiments(lab, _broken(lambda i: i.__setitem__("id", bad)))
    assert lab.experiments() == []


@pytest.mark.parametrize("good", ["exp-20261125-101500", "exp-20261125-101500-2", "Review_v2.1", "x" * 100])
def test_ids_like_the_projects_own_and_plain_names_import(lab: Lab, good: str) -> None:
    assert import_experiments(lab, _broken(lambda i: i.__setitem__("id", good)))["imported"] == [good]


def test_each_import_is_in_the_experiments_log_and_keeps_its_creation_time(lab: Lab) -> None:
    from meta_experiment.models import iso

    lab.clock = lambda: 1_800_000_000.0
    document = _second(lambda i: (i.pop("created"), i.update(created_at="2024-01-02T03:04:05Z")))
    third = json.loads(json.dumps(SEED_DOCUMENT["experiments"][0]))
    third.update(id="exp-third")
    third.pop("created")
    document["experiments"].append(third)
    import_experiments(lab, document)
    created = {i: lab.get(i).created_at for i in ("exp-2025-10-20-001", "exp-second", "exp-third")}
    assert created == {
        "exp-2025-10-20-001": "2025-10-20T10:30:00.000000Z",
        "exp-second": "2024-01-02T03:04:05.000000Z",
        "exp-third": iso(1_800_000_000.0),  # none in the document: the time of the import
    }
    for experiment_id, at in created.items():
        [event] = lab.events(experiment_id, kinds=["imported"])
        assert event.data == {"status": "promoted", "trials": 6, "created": at}
        assert event.at == iso(1_800_000_000.0) and event.actor == lab.actor


@pytest.mark.parametrize("key", ["created", "created_at"])
def test_a_creation_time_that_is_not_a_time_is_refused(lab: Lab, key: str) -> None:
    document = _broken(lambda i: (i.pop("created"), i.__setitem__(key, "yesterday")))
    with pytest.raises(InvalidInput, match=f"{key} 'yesterday' is not an ISO 8601 time.*Nothing was imported"):
        import_experiments(lab, document)
    assert lab.experiments() == []


def test_the_export_carries_the_always_valid_confidence_that_status_shows(lab: Lab) -> None:
    experiment_id = populated(lab)
    for i in range(5):  # each arm needs 5 values before the always-valid test speaks
        for arm in ("control", "treatment"):
            lab.record_measurement(experiment_id, arm, {"time_to_complete": 31.0 + i, "issues_caught": 1.0})
    results = export_experiments(lab)["experiments"][0]["results"]
    [shown] = [item.confidence for item in lab.status().experiments if item.id == experiment_id]
    assert shown is not None and results["always_valid_confidence"] == shown
    assert results["statistical_confidence"] == pytest.approx(1 - results["p_value"])  # the seed's meaning
    assert results["always_valid_confidence"] < results["statistical_confidence"]


def test_the_exported_p_value_of_a_log_scale_metric_is_the_one_analyze_reports(lab: Lab) -> None:
    """The treatment is faster for a typical run but slower on average: the export's p is the
    log-scale Welch p that analyze shows (scipy on the logs), its averages and improvement_pct the
    arithmetic ones, as in the seed."""
    import math

    from scipy import stats

    primary = {"name": "time_to_complete", "direction": "lower_is_better", "unit": "s", "log_scale": True}
    e = lab.create(**spec(primary_metric=primary, secondary_metrics=[], sample_size_required=100))
    control = [30.0 + i % 5 for i in range(30)]
    treatment = [200.0 if i % 10 == 0 else 20.0 + i % 5 for i in range(30)]
    for c, t in zip(control, treatment, strict=True):
        lab.record_measurement(e.id, "control", {"time_to_complete": c})
        lab.record_measurement(e.id, "treatment", {"time_to_complete": t})
    results = export_experiments(lab)["experiments"][0]["results"]
    analysis = lab.analyze(e.id).primary
    reference = stats.ttest_ind([math.log(v) for v in treatment], [math.log(v) for v in control], equal_var=False)
    assert results["p_value"] == pytest.approx(reference.pvalue, rel=1e-9)
    assert results["p_value"] == pytest.approx(analysis.p_value, rel=1e-9)
    mean_c, mean_t = sum(control) / 30, sum(treatment) / 30
    assert results["improvement_pct"] == pytest.approx(-(mean_t - mean_c) / mean_c * 100, rel=1e-12)
    assert results["improvement_pct"] < 0 < analysis.improvement_pct  # slower on average, faster typically


def test_export_refuses_to_replace_a_file_that_is_not_an_export(lab: Lab, project: Path) -> None:
    """From a user test: `export --out pyproject.toml` replaced the project's settings with JSON
    (backed up in the state folder, yet every later command failed on the broken TOML). A file that
    is not a previous export is now refused; a previous export is replaced after a backup."""
    populated(lab)
    settings = project / "pyproject.toml"
    settings.write_text("[tool.meta-experiment.defaults]\nsample_size_required = 30\n")
    before = settings.read_bytes()
    with pytest.raises(Conflict, match="pyproject.toml already exists and is not an export"):
        write_document(lab, "pyproject.toml", export_experiments(lab))
    assert settings.read_bytes() == before
    first, backup = write_document(lab, "experiments.json", export_experiments(lab))
    assert backup is None
    backups = lab.state_dir / "backups"
    kept_before = sorted(backups.iterdir()) if backups.is_dir() else []
    # the export this tool wrote, unchanged: no one's work, replaced without a copy (a review: a weekly
    # refreshed export left a whole copy in backups/ each time)
    again, backup = write_document(lab, "experiments.json", export_experiments(lab))
    assert again == first and backup is None
    assert (sorted(backups.iterdir()) if backups.is_dir() else []) == kept_before
    # edited by someone since: kept first
    edited = (project / first).read_bytes().replace(b'"experiments"', b'"note": "mine", "experiments"', 1)
    (project / first).write_bytes(edited)
    again, backup = write_document(lab, "experiments.json", export_experiments(lab))  # an export: replaced
    [event] = [ev for ev in lab.events() if ev.kind == "export_backup"]
    assert (lab.state_dir / "backups" / event.data["backup"]).read_bytes() == edited
    assert backup == f".meta-experiment/backups/{event.data['backup']}"  # the result says where it is kept


def test_editing_results_of_a_full_export_is_not_silently_ignored(lab: Lab) -> None:
    """From a user test: changing results.control_group in an export imported the trials of its
    meta_experiment block with no word. The import now warns that results was not what it read."""
    populated(lab)
    document = export_experiments(lab)
    untouched = json.loads(json.dumps(document))
    untouched["experiments"][0].update(id="exp-same", status="rolled_back")  # the original still runs
    assert import_experiments(lab, untouched)["warnings"] == []  # a round trip: no warning
    item = document["experiments"][0]
    item.update(id="exp-edited", status="rolled_back")
    item["results"]["control_group"] = [1, 1, 1, 1]
    result = import_experiments(lab, document)
    assert result["imported"] == ["exp-edited"]
    assert any("results.control_group differs from the trials" in w for w in result["warnings"])


def test_an_ended_experiment_keeps_a_metric_named_success_rate(lab: Lab) -> None:
    """Its record stays importable (made before the name was reserved); a running one is refused."""
    item = dict(SEED_DOCUMENT["experiments"][0], metrics={"primary": "t", "secondary": ["success_rate"]})
    assert import_experiments(lab, {"experiments": [item]})["imported"] == [item["id"]]
    assert [m.name for m in lab.get(item["id"]).secondary_metrics] == ["success_rate"]


def import_elsewhere(tmp_path: Path, document: dict, experiment_id: str) -> tuple[list[str], str]:
    """The document imported into another, empty project: (the import's warnings, the status of
    `experiment_id` there)."""
    with lab_elsewhere(tmp_path) as other:
        return import_experiments(other, document)["warnings"], other.get(experiment_id).status


def test_a_running_experiment_imported_where_its_files_are_missing_is_warned_of(lab: Lab, tmp_path: Path) -> None:
    """From a review: an export of a running experiment imported into a project without its files
    said only "Imported 1"; assign and promote refused later. The import now says so at once."""
    experiment_id = populated(lab)
    document = export_experiments(lab)
    warnings, status = import_elsewhere(tmp_path, document, experiment_id)
    assert status == "running"
    [missing] = [w for w in warnings if "not in this project" in w]
    assert missing.startswith(f"{experiment_id} is running, and {PROD}, {VAR} are not in this project")
    assert not any(
        "not in this project" in w for w in import_experiments(lab, document, on_conflict="skip")["warnings"]
    )


def test_a_file_name_too_long_for_the_disk_is_warned_of_not_raised(lab: Lab, tmp_path: Path) -> None:
    """From a review: the check of an imported experiment's files raised ENAMETOOLONG after the
    import had committed, so the caller saw an error for an import that was done."""
    populated(lab)
    document = json.loads(
        json.dumps(export_experiments(lab)).replace(PROD + '"', ".claude/commands/" + "x" * 300 + '.md"')
    )
    warnings, _ = import_elsewhere(tmp_path, document, document["experiments"][0]["id"])
    assert any("x" * 300 + ".md" in w and "not in this project" in w for w in warnings)


# -- from a review of import and export (2026-11-27) ----------------------------------------------


def _one(lab: Lab, item: dict) -> dict:
    return import_experiments(lab, {"experiments": [item]})


def _full(lab: Lab, **changes) -> dict:
    """A full export of the populated experiment as an ended copy with `changes` to its item."""
    item = export_experiments(lab)["experiments"][0]
    item.update({"id": "exp-copy", "status": "rolled_back", **changes})
    return item


def test_files_under_test_that_are_not_text_are_refused_as_create_refuses_them(lab: Lab, project: Path) -> None:
    """From a review: import took a Latin-1 file (create refuses it); every later export of the
    project then failed on it, and each assign stored a trial before failing."""
    (project / "conf.txt").write_bytes(b"caf\xe9\n")
    (project / "conf_v2.txt").write_bytes(b"caf\xe9 2\n")
    item = {"id": "old", "status": "promoted", "changes": {"files": {"conf.txt": {"variant": "conf_v2.txt"}}}}
    with pytest.raises(InvalidInput, match="'conf.txt' is not UTF-8 text.*Nothing was imported"):
        _one(lab, item)
    assert lab.experiments() == []


def test_a_snapshot_that_is_not_text_fails_assign_before_a_trial_is_stored(lab: Lab) -> None:
    """A database an older version filled: assign refuses whole, and export still works."""
    experiment_id = populated(lab)
    before = len(lab.trials(experiment_id))
    bad = lab.store.put_blob(b"caf\xe9\n")
    with lab.store.transaction() as db:
        db.execute("UPDATE experiment_files SET control_sha256 = ?, treatment_sha256 = ?", (bad, bad))
    with pytest.raises(InvalidState, match="not UTF-8 text.*Roll the experiment back"):
        lab.assign(experiment_id)
    assert len(lab.trials(experiment_id)) == before
    [snapshot] = export_experiments(lab)["experiments"][0]["meta_experiment"]["files"]
    assert snapshot["control_content"] == "caf\ufffd\n"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({PROD: {"variant": VAR}, "./" + PROD: {"variant": VAR}}, "appears twice in files"),
        ({PROD: {"variant": PROD}}, "is the same file"),
        ({PROD: {"variant": VAR}, VAR: {"variant": PROD}}, "appears twice in files"),  # crossed roles
    ],
)
def test_file_roles_are_checked_as_create_checks_them(lab: Lab, files: dict, message: str) -> None:
    item = {"id": "e1", "status": "promoted", "changes": {"files": files}}
    with pytest.raises(InvalidInput, match=message):
        _one(lab, item)
    assert lab.experiments() == []


def test_files_may_be_given_as_create_takes_them(lab: Lab) -> None:
    """{production: variant}, the form create_experiment's files take, imports like the seed's form."""
    _one(lab, {"id": "e1", "status": "promoted", "changes": {"files": {PROD: VAR}}})
    [f] = lab.get("e1").files
    assert (f.production, f.variant) == (PROD, VAR)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("unit", {"a": 1}, r"trials\[0\].unit must be text or null"),
        ("unit", "u" * 201, r"trials\[0\].unit must be an id of 1 to 200 characters \(as assign takes it\), or null"),
        ("unit", "", r"trials\[0\].unit must be an id of 1 to 200 characters"),
        ("source", 5, r"trials\[0\].source 5 is not assign or import"),
        ("source", "manual", r"trials\[0\].source 'manual' is not assign or import"),
        ("status", "Recorded", r"trials\[0\].status 'Recorded' is not one of assigned, recorded"),
        ("success", "maybe", r"trials\[0\].success must be true or false"),
        ("success", None, r"trials\[0\].success must be true or false"),
        ("recorded_at", "yesterday", r"trials\[0\].recorded_at 'yesterday' is not an ISO 8601 time"),
        ("arm", "both", r"trials\[0\].arm 'both' is not control or treatment"),
        ("metrics", [40.0], r"trials\[0\].metrics must be an object"),
    ],
)
def test_a_malformed_trial_is_named_with_its_field(lab: Lab, field: str, value, message: str) -> None:
    populated(lab)
    item = _full(lab)
    item["meta_experiment"]["trials"][0][field] = value
    with pytest.raises(InvalidInput, match=message):
        _one(lab, item)
    assert not lab.store.experiment_exists("exp-copy")


@pytest.mark.parametrize(("given", "expected"), [("false", False), ("No", False), ("yes", True), (0, False)])
def test_a_success_flag_spelled_as_text_is_read_as_record_reads_it(lab: Lab, given, expected: bool) -> None:
    """From a review: "success": "false" was imported as a success (bool of a non-empty string)."""
    populated(lab)
    item = _full(lab)
    first = item["meta_experiment"]["trials"][0]
    assert first["status"] == "recorded"
    first["success"] = given
    _one(lab, item)
    assert lab.trials("exp-copy")[0].success is expected


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ({"control_group": "125"}, "results.control_group must be a list"),
        ({"treatment_group": {"7": 1}}, "results.treatment_group must be a list"),
    ],
)
def test_a_group_that_is_not_a_list_is_refused_not_split(lab: Lab, results: dict, message: str) -> None:
    """From a review: "125" imported three trials with values 1, 2 and 5."""
    with pytest.raises(InvalidInput, match=message):
        _one(lab, dict(SEED_DOCUMENT["experiments"][0], results=results))


def test_secondary_metrics_given_as_one_name_are_refused_not_split(lab: Lab) -> None:
    """From a review: "secondary": "score" made five one-letter guardrails."""
    item = dict(SEED_DOCUMENT["experiments"][0], metrics={"primary": "t", "secondary": "score"})
    with pytest.raises(InvalidInput, match="metrics.secondary must be a list of metric names"):
        _one(lab, item)


def test_an_edited_primary_metric_takes_effect(lab: Lab) -> None:
    """From a review: with metric definitions present, metrics.primary was not read, so an edit of
    it was dropped without a word. It now picks the definition; names that disagree are refused."""
    populated(lab)
    item = _full(lab, metrics={"primary": "issues_caught", "secondary": ["time_to_complete"]})
    trials = item["meta_experiment"]["trials"]  # a successful trial needs a value of the new primary
    trials[:] = [t for t in trials if t["status"] != "recorded" or not t["success"] or "issues_caught" in t["metrics"]]
    assert _one(lab, item)["warnings"] == []  # results holds the old primary's values: not compared
    copy = lab.get("exp-copy")
    assert (copy.primary_metric.name, [m.name for m in copy.secondary_metrics]) == (
        "issues_caught",
        ["time_to_complete"],
    )
    item = _full(lab, id="exp-other", metrics={"primary": "nope", "secondary": ["time_to_complete"]})
    with pytest.raises(InvalidInput, match="metric_definitions defines"):
        _one(lab, item)


def test_an_id_twice_in_one_document_is_refused_and_an_export_names_each_once(lab: Lab) -> None:
    """From a review: the second of two experiments with one id was refused as "already exists here"
    (it did not), and --skip-existing then dropped it without a word; `export ID ID` wrote one
    experiment twice, which its own import refused."""
    first = dict(SEED_DOCUMENT["experiments"][0], id="e7")
    second = dict(first, name="second")
    with pytest.raises(InvalidInput, match=r"experiments\[0\] and experiments\[1\] are two versions of experiment e7"):
        import_experiments(lab, {"experiments": [first, second]}, on_conflict="skip")  # two exports, joined
    other = dict(first, changes={"files": {"other.md": {"variant": "other.md.x"}}})
    with pytest.raises(InvalidInput, match=r"experiments\[1\] has the id 'e7' of experiments\[0\], and they are"):
        import_experiments(lab, {"experiments": [first, other]}, on_conflict="skip")
    with pytest.raises(Conflict, match=r"experiments\[1\] repeats experiments\[0\] \(e7\).*skip"):
        import_experiments(lab, {"experiments": [first, dict(first)]})  # the same one twice: two exports joined
    assert lab.experiments() == []
    result = import_experiments(lab, {"experiments": [first, dict(first)]}, on_conflict="skip")
    assert (result["imported"], result["skipped"]) == (["e7"], ["e7"])
    experiment_id = populated(lab)
    assert [e["id"] for e in export_experiments(lab, [experiment_id, experiment_id])["experiments"]] == [experiment_id]


def test_event_data_with_nan_is_refused_and_a_later_format_is_warned_of(lab: Lab) -> None:
    populated(lab)
    item = _full(lab)
    item["meta_experiment"]["events"].append(
        {"kind": "k", "message": "m", "actor": "a", "at": "2025-10-20T10:30:00Z", "data": {"x": float("nan")}}
    )
    with pytest.raises(InvalidInput, match="holds NaN or Infinity"):
        _one(lab, item)
    result = import_experiments(lab, {"format": "meta-experiment/2", "experiments": []})
    assert any("format is 'meta-experiment/2'" in w for w in result["warnings"])


def test_an_import_in_bulk_derives_every_count_and_sum_as_recording_did(
    lab: Lab, project: Path, tmp_path: Path
) -> None:
    """The import writes the trials at once and folds them once (it held the write lock ~3x as long
    trial by trial): units that repeat, failures, a voided trial and its replacement and an open
    trial give the same rows as the original store's, to the bit. (auto_rollback off: with some
    experiment ids the arms' guardrail values regress enough to stop it midway.)"""
    e = lab.create(**spec(sample_size_required=6, auto_rollback=False))
    for i in range(40):
        a = lab.assign(e.id, unit=f"u{i % 7}" if i % 3 else None)
        if i == 39:
            continue  # stays assigned
        values = {"time_to_complete": 30.0 + (i * 7.3) % 11, "issues_caught": float(i % 4)}
        lab.record(a.trial_id, values, success=i % 9 != 4)
    voided = lab.trials(e.id)[5]
    lab.void_trial(voided.trial_id, "typo", {"time_to_complete": 31.5})
    document = export_experiments(lab)
    other = Lab.open(project, tmp_path / "elsewhere")
    try:
        import_experiments(other, document)
        assert derived_rows(other, e.id) == derived_rows(lab, e.id)
    finally:
        other.close()


def test_a_running_experiment_past_its_duration_is_warned_of_at_import(lab: Lab) -> None:
    """From a review: the seed's running template (created 2025-10-20, 14 days) imported without a
    word, and the next auto run expired it after the agent had recorded into it."""
    item = dict(SEED_DOCUMENT["experiments"][0], id="exp-old", status="rolled_back")
    assert not any("past its max_duration_days" in w for w in _one(lab, item)["warnings"])  # ended: nothing to say
    running = dict(item, id="exp-old-running", status="running", changes={"files": {PROD: {"variant": VAR}}})
    [warning] = [w for w in _one(lab, running)["warnings"] if "past its max_duration_days" in w]
    assert (
        warning.startswith("exp-old-running is running but started ")
        and "(14): the next auto run expires it" in warning
    )


def test_an_imported_running_experiment_gets_the_alerts_its_trials_raise(lab: Lab, tmp_path: Path) -> None:
    """From a review: an export carries no alerts, so a running experiment whose treatment failed
    every run came in without its error-rate alert (recording those trials here raises it)."""
    e = lab.create(**spec(sample_size_required=200, auto_rollback=False))
    for i in range(12):
        for arm, success in (("control", True), ("treatment", False)):
            lab.record_measurement(e.id, arm, {"time_to_complete": 30.0 + i}, success)
    from meta_experiment.monitoring import alerts

    assert alerts(lab, e.id, active_only=True)
    document = export_experiments(lab, [e.id])
    document["experiments"][0]["meta_experiment"].pop("alerts")  # as an older version exported it
    (tmp_path / "other").mkdir()
    other = Lab.open(tmp_path / "other")
    try:
        result = import_experiments(other, document)
        [alert] = [w for w in result["warnings"] if w.startswith("ALERT")]
        assert alert.startswith(f"ALERT ({e.id}, from its imported trials): Error rate spike")
        assert [a.kind for a in alerts(other, e.id, active_only=True)] == ["error_rate"]
        assert other.get(e.id).status == "running"  # auto_rollback off: a person decides
    finally:
        other.close()
    # from a review: with auto_rollback on, the alert raised at import was active, so no later trial
    # raised it anew, and nothing stopped the failing treatment: the import does, as a trial would
    document["experiments"][0]["id"] = "exp-auto"
    document["experiments"][0]["auto_rollback"] = True
    (tmp_path / "third").mkdir()
    third = Lab.open(tmp_path / "third")
    try:
        said = import_experiments(third, document)["warnings"]
        assert any(w.startswith("exp-auto, on import: Auto-rollback: Stopped exp-auto") for w in said)
        assert third.get("exp-auto").status == "rolled_back"
    finally:
        third.close()


def test_an_export_of_an_earlier_version_with_a_timed_binary_metric_imports(lab: Lab, tmp_path: Path) -> None:
    """From a review: versions before 2026-11-26 let a binary metric have a time unit or log_scale
    (unused by its analysis); their experiments load, but their exports were refused at import."""
    e = lab.create(**spec(secondary_metrics=[{"name": "passed", "direction": "higher_is_better", "kind": "binary"}]))
    document = export_experiments(lab, [e.id])
    for m in document["experiments"][0]["meta_experiment"]["metric_definitions"]:
        if m["name"] == "passed":
            m.update(unit="s", log_scale=True)
    (tmp_path / "other").mkdir()
    other = Lab.open(tmp_path / "other")
    try:
        result = import_experiments(other, document)
        assert result["imported"] == [e.id]
        assert any(
            f"{e.id}: the binary (0/1) metric passed's unit and log_scale were left out" in w
            for w in result["warnings"]
        )
        passed = next(m for m in other.get(e.id).secondary_metrics if m.name == "passed")
        assert passed.unit is None and not passed.log_scale
    finally:
        other.close()


def test_an_exported_unit_with_terminal_escapes_is_refused(lab: Lab, tmp_path: Path) -> None:
    """From a review: reading an export's definitions as stored ones (to let an earlier version's
    binary metric keep its import) let a unit with terminal escapes in, which create refuses."""
    e = lab.create(**spec())
    document = export_experiments(lab, [e.id])
    document["experiments"][0]["meta_experiment"]["metric_definitions"][0]["unit"] = "min\x1b[2J"
    (tmp_path / "other").mkdir()
    other = Lab.open(tmp_path / "other")
    try:
        with pytest.raises(InvalidInput, match="the unit must be plain text"):
            import_experiments(other, document)
    finally:
        other.close()


def test_a_round_trip_keeps_the_release_facts_and_the_alerts(lab: Lab, project: Path, tmp_path: Path) -> None:
    """From a review: an imported copy of a project lost every promoted experiment's Deployed, Time
    saved, Git and closed-alerts lines and the total ROI (read from the promote journal, which is
    not exported), and the alerts (not exported either): a running experiment's was raised again
    by the import, with a new time and a second pair of events."""
    from meta_experiment import release
    from meta_experiment.report import render_status

    def failing(name: str, files: dict[str, str]) -> str:
        e = lab.create(**spec(name=name, files=files, sample_size_required=10, auto_rollback=False))
        for n in range(24):  # the treatment fails 10 times in 12: an error-rate alert
            arm = "control" if n % 2 else "treatment"
            lab.record_measurement(e.id, arm, {"time_to_complete": 10.0 + n % 3}, success=arm == "control" or n < 4)
        return e.id

    (project / "other.md").write_text("a\n")
    (project / "other.v.md").write_text("b\n")
    shipped = failing("shipped anyway", {PROD: VAR})
    assert monitoring_kinds(lab, shipped)
    release.promote(lab, shipped, force=True, reason="ship it")
    running = failing("still running", {"other.md": "other.v.md"})
    document = export_experiments(lab)
    source_status = lab.status()
    other = Lab.open(project, tmp_path / "elsewhere")
    try:
        warnings = import_experiments(other, document)["warnings"]
        assert any(w.startswith(f"ALERT ({running}, active where it was exported): ") for w in warnings), warnings
        copied = other.status()
        assert [(a.experiment_id, a.kind, a.raised_at, a.cleared_at) for a in copied.release.alerts] == [
            (a.experiment_id, a.kind, a.raised_at, a.cleared_at) for a in source_status.release.alerts
        ]
        raised = [ev for ev in other.events(running) if ev.kind == "alert"]
        assert len(raised) == len([ev for ev in lab.events(running) if ev.kind == "alert"]) == 1
        [mine] = [i for i in source_status.release.experiments if i.experiment_id == shipped]
        [theirs] = [i for i in copied.release.experiments if i.experiment_id == shipped]
        assert theirs.deployed_at == mine.deployed_at and theirs.ended_by == mine.ended_by == "manual"
        assert theirs.time_saved_hours_per_month == mine.time_saved_hours_per_month
        assert mine.git is not None and theirs.git is not None and theirs.git.startswith(mine.git.split(" ")[0])
        assert "imported" in theirs.git
        text = render_status(copied)
        assert "**Deployed**" in text and "**Alerts** (closed" in text
    finally:
        other.close()


def monitoring_kinds(lab: Lab, experiment_id: str) -> list[str]:
    from meta_experiment import monitoring

    return [a.kind for a in monitoring.alerts(lab, experiment_id)]


def test_exports_to_one_file_at_once_back_nothing_up(lab: Lab, project: Path) -> None:
    """From a review: four `export --out` at once to one file took each other's freshly written file
    for someone's change (its event not logged yet) and kept a copy of it in backups/ each time."""
    import threading

    populated(lab)
    document = export_experiments(lab)
    write_document(lab, "exp.json", document)
    failures: list[BaseException] = []

    def exports(who: int) -> None:
        mine = Lab.open(project)
        try:
            for i in range(6):  # each its own (an export taken at another moment differs)
                write_document(mine, "exp.json", {**document, "exported_by": f"{who}-{i}"})
        except BaseException as exc:  # (reported by the assertion below)
            failures.append(exc)
        finally:
            mine.close()

    threads = [threading.Thread(target=exports, args=(who,)) for who in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert [ev for ev in lab.events() if ev.kind == "export_backup"] == []
    assert (
        json.loads((project / "exp.json").read_text())["experiments"] == json.loads(json.dumps(document))["experiments"]
    )


# -- from a review of import and export (2026-11-28) ----------------------------------------------


def _seed_promoted(project: Path, *, backup: bool) -> dict:
    """The seed's promoted experiment on the project's command file, as the seed leaves a project:
    the variant copied over production, the original in the backup the document names (if kept)."""
    original, promoted = (project / PROD).read_bytes(), (project / VAR).read_bytes()
    doc = _seed_on_project_files("promoted", "exp-seed-promoted")
    doc["experiments"][0]["changes"]["files"] = {PROD: {"backup": PROD + ".backup", "variant": VAR}}
    if backup:
        (project / (PROD + ".backup")).write_bytes(original)
    (project / PROD).write_bytes(promoted)
    return doc


def test_a_seed_promotion_is_rolled_back_to_its_backup(lab: Lab, project: Path) -> None:
    """From an export/import review: the seed's own promoted experiment was imported with the
    promoted production file as its original, so a rollback said it restored the original and
    left the variant in place. The seed's backup holds the original."""
    from meta_experiment.release import rollback

    original = (project / PROD).read_bytes()
    warnings = import_experiments(lab, _seed_promoted(project, backup=True))["warnings"]
    assert any(f"{PROD}.backup" in w and "original" in w for w in warnings), warnings
    rollback(lab, "exp-seed-promoted", reason="the review found it slower")
    assert (project / PROD).read_bytes() == original
    assert lab.get("exp-seed-promoted").status == "rolled_back"


def test_a_seed_promotion_without_its_backup_is_not_rolled_back_to_itself(lab: Lab, project: Path) -> None:
    """Without the backup the original is not known: the import says so, and a rollback is refused
    with what to do instead, not reported as done over an unchanged file."""
    from meta_experiment.errors import InvalidState
    from meta_experiment.release import rollback

    promoted = (project / VAR).read_bytes()
    warnings = import_experiments(lab, _seed_promoted(project, backup=False))["warnings"]
    [said] = [w for w in warnings if "original" in w]
    assert "not known" in said and f"{PROD}.backup" in said and "rollback" in said
    with pytest.raises(InvalidState, match=rf"original of {PROD} is not known.*git"):
        rollback(lab, "exp-seed-promoted", reason="the review found it slower")
    assert (project / PROD).read_bytes() == promoted and lab.get("exp-seed-promoted").status == "promoted"
    document = export_experiments(lab)  # a round trip keeps it unknown
    elsewhere = project.parent / "elsewhere"
    (elsewhere / PROD).parent.mkdir(parents=True)
    (elsewhere / PROD).write_bytes(promoted)
    git(elsewhere, "init", "-q")
    other = Lab.open(elsewhere, create=True)
    try:
        import_experiments(other, document)
        with pytest.raises(InvalidState, match=rf"original of {PROD} is not known"):
            rollback(other, "exp-seed-promoted", reason="the review found it slower")
    finally:
        other.close()


def test_a_hand_written_trial_with_values_and_no_status_is_recorded(lab: Lab) -> None:
    """From an export/import review: trials written by hand with metrics but no status imported as
    assigned, their values dropped without a word."""
    populated(lab)
    item = _full(lab)
    item["meta_experiment"]["trials"] = [
        {"arm": "control", "metrics": {"time_to_complete": 40.0}},
        {"arm": "treatment", "metrics": {"time_to_complete": 30.0}, "success": True},
        {"arm": "treatment", "success": False},
        {"arm": "control"},
    ]
    _one(lab, item)
    trials = {(t.arm, t.status, t.success): t.metrics for t in lab.trials("exp-copy")}
    assert trials == {
        ("control", "recorded", True): {"time_to_complete": 40.0},
        ("treatment", "recorded", True): {"time_to_complete": 30.0},
        ("treatment", "recorded", False): {},
        ("control", "assigned", None): {},
    }


@pytest.mark.parametrize("status", ["assigned", "abandoned"])
def test_values_on_a_trial_that_is_not_recorded_are_refused_not_dropped(lab: Lab, status: str) -> None:
    populated(lab)
    item = _full(lab)
    item["meta_experiment"]["trials"][1].update(status=status, metrics={"time_to_complete": 40.0})
    with pytest.raises(InvalidInput, match=rf"trials\[1\] has status {status} and metrics: .* Set its status"):
        _one(lab, item)
    assert not lab.store.experiment_exists("exp-copy")


def test_what_a_document_leaves_out_is_the_projects_default(lab: Lab) -> None:
    """From an export/import review: an import without sample_size_required, targets or the auto
    flags took the seed's values (10, 15%, ...) whatever the project's settings [defaults] said, where
    create takes the project's."""
    lab.update_settings(
        {
            "defaults": {
                "sample_size_required": 24,
                "improvement_threshold": 5.0,
                "max_duration_days": 30.0,
                "auto_promote": True,
                "auto_rollback": False,
                "treatment_percent": 20,
            }
        },
        "the project's own defaults",
    )
    doc = _seed_on_project_files("draft", "exp-bare")
    item = doc["experiments"][0]
    for key in ("sample_size_required", "max_duration_days", "auto_promote", "auto_rollback"):
        item.pop(key)
    item["targets"] = {"max_regression": 3}  # given: kept
    import_experiments(lab, doc)
    e = lab.get("exp-bare")
    assert (e.sample_size_required, e.max_duration_days, e.auto_promote, e.auto_rollback, e.treatment_percent) == (
        24,
        30.0,
        True,
        False,
        20,
    )
    assert (e.targets.improvement_threshold, e.targets.max_regression, e.targets.confidence_threshold) == (5.0, 3, 0.8)


def _voided_pair(lab: Lab) -> dict:
    """A full export of an experiment with a voided trial (position 0) and its replacement."""
    e = lab.create(**spec())
    for i in range(3):
        a = lab.assign(e.id)
        lab.record(a.trial_id, {"time_to_complete": 30.0 + i}, True)
    first = lab.trials(e.id)[0]
    lab.void_trial(first.trial_id, reason="timed a coffee break", metrics={"time_to_complete": 31.0}, success=True)
    item = export_experiments(lab)["experiments"][0]
    item.update(id="exp-copy", status="rolled_back")
    trials = item["meta_experiment"]["trials"]
    assert trials[0]["voided"]["replaced_by"] == 3 and trials[3]["replaces"] == 0
    return item


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t[0]["voided"].update(replaced_by=0), r"trials\[0\].voided.replaced_by 0 must be the position of "),
        (lambda t: t[0]["voided"].update(replaced_by=True), r"trials\[0\].voided.replaced_by True must be"),
        (lambda t: t[0]["voided"].update(replaced_by=1), r"trials\[0\].voided.replaced_by 1 must be"),
        (
            lambda t: t[0].update(status="recorded", voided=None),
            r"trials\[3\].replaces 0 must be the position of a voided",
        ),
        (lambda t: t[3].update(replaces=3), r"trials\[0\].voided.replaced_by 3 must be"),
    ],
)
def test_a_voided_trial_and_its_replacement_must_name_each_other(lab: Lab, change, message: str) -> None:
    """From an export/import review: a voided trial replaced by itself, or a replacement of a trial
    that is not voided, imported (a replacement is not counted as an assignment: the split's counts
    came out wrong)."""
    item = _voided_pair(lab)
    change(item["meta_experiment"]["trials"])
    with pytest.raises(InvalidInput, match=message):
        _one(lab, item)
    assert not lab.store.experiment_exists("exp-copy")


def test_the_name_suggested_for_an_export_is_one_it_may_be_written_to(lab: Lab, project: Path) -> None:
    """From a first-hour review: `export --out mine.json` over a file of the user's suggested
    experiments.json, which existed and was refused too."""
    populated(lab)
    for name in ("mine.json", "experiments.json"):
        (project / name).write_text("my own notes\n")
    with pytest.raises(Conflict, match=r"e\.g\. meta-experiment-export\.json\)"):
        write_document(lab, "mine.json", export_experiments(lab))
    (project / "meta-experiment-export.json").write_text("mine too\n")
    with pytest.raises(Conflict, match=r"e\.g\. meta-experiment-export-1\.json\)"):
        write_document(lab, "mine.json", export_experiments(lab))
    (project / "sub").mkdir()
    (project / "sub" / "mine.json").write_text("x\n")
    with pytest.raises(Conflict, match=r"e\.g\. sub/experiments\.json\)"):
        write_document(lab, "sub/mine.json", export_experiments(lab))
    write_document(lab, "meta-experiment-export-1.json", export_experiments(lab))  # the suggestion works
    (project / "meta-experiment-export-1.json").rename(project / "experiments.json")  # an export: replaceable
    with pytest.raises(Conflict, match=r"e\.g\. experiments\.json\)"):
        write_document(lab, "mine.json", export_experiments(lab))


def _promoted_with_snapshot(project: Path, key: str, snapshot_path: str) -> dict:
    (project / PROD).write_text("PROMOTED TEXT\n")
    files = [{"production": snapshot_path, "variant": VAR, "control_content": "THE ORIGINAL\n"}]
    files[0]["treatment_content"] = "PROMOTED TEXT\n"
    return {
        "experiments": [
            {
                "id": "exp-snap",
                "status": "promoted",
                "changes": {"files": {key: {"variant": VAR}}},
                "metrics": {"primary": "time_to_complete"},
                "meta_experiment": {"files": files},
            }
        ]
    }


@pytest.mark.parametrize(("key", "snapshot_path"), [("./" + PROD, PROD), (PROD, "./" + PROD)])
def test_a_snapshot_is_found_however_its_path_is_written(lab: Lab, project: Path, key: str, snapshot_path: str) -> None:
    """From an import review: changes.files keyed './x.md' and its snapshot 'x.md' (one file, as the
    import treats them) did not meet: the original was called unknown and the rollback refused."""
    from meta_experiment.release import rollback

    warnings = import_experiments(lab, _promoted_with_snapshot(project, key, snapshot_path))["warnings"]
    assert not any("not known" in w for w in warnings)
    rollback(lab, "exp-snap", reason="back to the original")
    assert (project / PROD).read_text() == "THE ORIGINAL\n"


def test_a_snapshot_of_a_file_the_experiment_does_not_name_is_refused(lab: Lab, project: Path) -> None:
    document = _promoted_with_snapshot(project, PROD, PROD)
    document["experiments"][0]["meta_experiment"]["files"][0]["production"] = "other.md"
    with pytest.raises(InvalidInput, match="has a snapshot of other.md, which changes.files does not name"):
        import_experiments(lab, document)
    document["experiments"][0]["meta_experiment"]["files"][0].update(production=PROD, backup=["x"])
    with pytest.raises(InvalidInput, match=r"meta_experiment.files\[0\].backup must be text or null, not list"):
        import_experiments(lab, document)
    assert lab.experiments() == []


def test_a_binary_backup_is_named_as_the_backup(lab: Lab, project: Path) -> None:
    doc = _seed_promoted(project, backup=True)
    (project / (PROD + ".backup")).write_bytes(b"\x89PNG\x00\xff binary")
    with pytest.raises(InvalidInput, match=rf"the backup of {PROD}: '{PROD}.backup' is a binary file"):
        import_experiments(lab, doc)


@pytest.mark.parametrize("status", ["assigned", "abandoned"])
def test_a_success_flag_on_a_trial_that_is_not_recorded_is_refused(lab: Lab, status: str) -> None:
    populated(lab)
    item = _full(lab)
    item["meta_experiment"]["trials"][1].update(status=status, metrics={}, success=False)
    with pytest.raises(InvalidInput, match=rf"trials\[1\] has status {status} and a success flag: "):
        _one(lab, item)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t[3].update(arm="treatment" if t[0]["arm"] == "control" else "control"), "another arm or unit"),
        (lambda t: t[3].update(unit="someone-else"), "another arm or unit"),
        (lambda t: t[3].update(status="assigned", metrics={}, success=None), r"but has status assigned"),
    ],
)
def test_a_replacement_is_the_same_runs_correction(lab: Lab, change, message: str) -> None:
    """From an import review: a replacement in the other arm (more trials recorded than assigned
    there), or one still open, was imported."""
    item = _voided_pair(lab)
    change(item["meta_experiment"]["trials"])
    with pytest.raises(InvalidInput, match=message):
        _one(lab, item)


def test_replacements_that_lead_round_in_a_circle_are_refused(lab: Lab) -> None:
    item = _voided_pair(lab)
    trials = item["meta_experiment"]["trials"]
    trials[3].update(status="voided", voided={"reason": "again", "replaced_by": 0})
    trials[0]["replaces"] = 3
    with pytest.raises(InvalidInput, match="lead round in a circle"):
        _one(lab, item)


def test_a_chain_of_replacements_with_a_bad_link_is_named_not_raised(lab: Lab) -> None:
    item = _voided_pair(lab)
    trials = item["meta_experiment"]["trials"]
    first, replacement = trials[0], trials[3]
    # the replacement listed first, its voided trial after it with a replaces that is no position
    replacement["replaces"] = 1
    first.update(voided={**first["voided"], "replaced_by": 0}, replaces="abc")
    item["meta_experiment"]["trials"] = [replacement, first, trials[1], trials[2]]
    with pytest.raises(InvalidInput, match=r"trials\[1\].replaces 'abc' must be the position of a voided trial"):
        _one(lab, item)
