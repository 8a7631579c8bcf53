"""The `meta-experiment` command: real subprocesses, clear errors, never a traceback."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import package_env, spec
from meta_experiment.lifecycle import Lab


def run(project: Path, *args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "meta_experiment", "--project", str(project), *args],
        capture_output=True,
        text=True,
        env=package_env(),
        timeout=120,
        cwd=cwd,
    )
    if check:
        assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


@pytest.fixture
def experiment_id(project: Path) -> str:
    lab = Lab.open(project)
    try:
        e = lab.create(**spec(sample_size_required=4))
        for value in (40.0, 30.0, 41.0, 29.0):
            a = lab.assign(e.id)
            lab.record(a.trial_id, {"time_to_complete": value})
        return e.id
    finally:
        lab.close()


def test_void_corrects_a_yes_no_metric_with_true_or_false(project: Path) -> None:
    lab = Lab.open(project)
    try:
        binary = {"name": "tests_passed", "direction": "higher_is_better", "kind": "binary"}
        e = lab.create(**spec(secondary_metrics=[binary]))
        a = lab.assign(e.id)
        lab.record(a.trial_id, {"time_to_complete": 3.0, "tests_passed": 0})
    finally:
        lab.close()
    out = run(project, "void", str(a.trial_id), "--reason", "rerun passed", "--metric", "tests_passed=true").stdout
    assert "tests_passed=1" in out
    lab = Lab.open(project)
    try:
        assert lab.trial(a.trial_id + 1).metrics == {"time_to_complete": 3.0, "tests_passed": 1.0}
    finally:
        lab.close()


def test_status_and_analyze(project: Path, experiment_id: str) -> None:
    assert "ACTIVE EXPERIMENTS" in run(project, "status").stdout
    active = run(project, "status", "--active", "--json").stdout
    assert [i["id"] for i in json.loads(active)["experiments"]] == [experiment_id]  # still running
    data = json.loads(run(project, "status", "--json").stdout)
    assert data["experiments"][0]["progress"]["trials_recorded"] == 4
    assert f"STATISTICAL ANALYSIS - {experiment_id}" in run(project, "analyze", experiment_id).stdout


def test_void_a_trial_and_correct_it(project: Path, experiment_id: str) -> None:
    lab = Lab.open(project)
    try:
        first = lab.trial(1)
    finally:
        lab.close()
    assert first.experiment_id == experiment_id and first.metrics["time_to_complete"] == 40.0
    out = run(project, "void", "1", "--reason", "typo: 4.0 typed as 40", "--metric", "time_to_complete=4").stdout
    assert f"Voided trial 1 ({first.arm}) of {experiment_id}: typo: 4.0 typed as 40." in out
    assert "Corrected values recorded as trial 5: time_to_complete=4." in out
    assert "Progress 4/4." in out
    again = run(project, "void", "1", "--reason", "again", check=False)
    assert again.returncode == 2 and "was voided (typo: 4.0 typed as 40); trial 5 holds" in again.stderr
    bad = run(project, "void", "2", "--reason", "x", "--metric", "time_to_complete", check=False)
    assert bad.returncode == 2 and "--metric takes NAME=VALUE" in bad.stderr
    table = run(project, "trials", experiment_id).stdout.splitlines()
    assert table[0].split() == ["trial", "arm", "status", "recorded", "(UTC)", "ok", "values"]
    assert (
        table[1].split()[0] == "1" and table[1].split()[2] == "voided" and table[1].endswith("yes  time_to_complete=40")
    )
    assert table[5].split()[0] == "5" and table[5].endswith("time_to_complete=4")
    listed = json.loads(run(project, "trials", experiment_id, "--json").stdout)
    assert [t["trial_id"] for t in listed] == [1, 2, 3, 4, 5] and listed[0]["status"] == "voided"
    newest = json.loads(run(project, "trials", experiment_id, "--json", "--last", "2").stdout)
    assert newest == listed[3:]
    assert json.loads(run(project, "trials", experiment_id, "--json", "--last", "9").stdout) == listed
    zero = run(project, "trials", experiment_id, "--last", "0", check=False)
    assert zero.returncode == 2 and "--last: 0 is not a number of trials; give 1 or more" in zero.stderr
    unknown = run(project, "trials", "exp-nope", check=False)
    assert unknown.returncode == 2 and "No experiment with id 'exp-nope'" in unknown.stderr
    yes_no = run(project, "void", "2", "--reason", "x", "--metric", "time_to_complete=TRUE", check=False)
    assert yes_no.returncode == 2 and "continuous number, not yes/no" in yes_no.stderr  # read as true, refused
    flag_only = run(project, "void", "2", "--reason", "x", "--succeeded", check=False)
    assert flag_only.returncode == 2 and "--succeeded describes the corrected run" in flag_only.stderr
    lab = Lab.open(project)
    try:
        assert lab.trial(1).status == "voided" and lab.trial(5).metrics == {"time_to_complete": 4.0}
        assert lab.trial(2).status == "recorded"  # the refused call changed nothing
    finally:
        lab.close()


def test_export_import_and_settings(project: Path, experiment_id: str, tmp_path: Path) -> None:
    run(project, "export", "--out", "exported.json", cwd=project)
    document = json.loads((project / "exported.json").read_text())
    assert document["experiments"][0]["id"] == experiment_id
    refused = run(project, "import", str(project / "exported.json"), check=False)
    assert refused.returncode == 2 and "already exists" in refused.stderr
    assert "skipped 1" in run(project, "import", str(project / "exported.json"), "--skip-existing").stdout
    out = json.loads(run(project, "settings", "defaults.sample_size_required=25", "min_failures=4").stdout)
    assert out["defaults"]["sample_size_required"] == 25 and out["monitoring"]["min_failures"] == 4


def test_start_a_draft(project: Path, experiment_id: str) -> None:
    run(project, "export", "--out", "exported.json", cwd=project)
    document = json.loads((project / "exported.json").read_text())
    run(project, "rollback", experiment_id, "--reason", "make room", "--yes")
    item = document["experiments"][0]
    item.update(id="exp-draft-2", status="draft")
    item.pop("meta_experiment")
    (project / "draft.json").write_text(json.dumps(document))
    run(project, "import", str(project / "draft.json"))
    assert "Started exp-draft-2" in run(project, "start", "exp-draft-2").stdout
    again = run(project, "start", "exp-draft-2", check=False)
    assert again.returncode == 2 and "only a draft can be started" in again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("analyze", "exp-missing"), "No experiment with id"),
        (("settings", "defaults.sample_size_required=-2"), "sample_size_required"),
        (("settings", "nonsense"), "key=value"),
        (("import", "no-such-file.json"), "The import file 'no-such-file.json' does not exist"),
        (("settings", "improvement_threshold=nan"), "improvement_threshold must be a finite number, not 'nan'"),
        (("settings", "defaults.max_regression=Infinity"), "max_regression must be a finite number"),
        (("settings", "confidence_threshold=-inf"), "confidence_threshold must be a finite number"),
    ],
)
def test_errors_are_one_line_with_exit_status_2(project: Path, args, message) -> None:
    result = run(project, *args, check=False)
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.startswith("meta-experiment: ")


def test_a_file_that_is_not_json_gets_the_import_tools_message(project: Path) -> None:
    from meta_experiment.errors import InvalidInput
    from meta_experiment.interchange import read_document

    (project / "b.md").write_text("# notes, not JSON\n")
    result = run(project, "import", "b.md", check=False, cwd=project)
    lab = Lab.open(project)
    try:
        with pytest.raises(InvalidInput) as tool:
            read_document(lab, "b.md")  # what import_experiments(path=...) answers
    finally:
        lab.close()
    assert result.returncode == 2 and result.stderr == f"meta-experiment: {tool.value}\n"
    assert "'b.md' is not valid JSON (expecting value at line 1, column 1)" in result.stderr
    assert "char 0" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("export", "--out", "/etc/x.json"),
        ("analyze", "exp-missing"),
        ("promote", "{id}"),
        ("rollback", "{id}", "--reason", "r"),
    ],
)
def test_wrong_arguments_are_refused_before_the_statistics_load(project: Path, experiment_id: str, args) -> None:
    """scipy takes most of a second and more to import: a refusal that does not need it comes first."""
    code = (
        "import sys; from meta_experiment.cli import main; rc = main(sys.argv[1:]); print('scipy' in sys.modules, rc)"
    )
    argv = [a.format(id=experiment_id) for a in args]
    result = subprocess.run(
        [sys.executable, "-c", code, "--project", str(project), *argv],
        capture_output=True,
        text=True,
        env=package_env(),
        timeout=120,
        stdin=subprocess.DEVNULL,  # no terminal to confirm at, and no --yes
    )
    assert result.stdout.split() == ["False", "2"], result.stderr
    assert result.stderr.startswith("meta-experiment: ") and "Traceback" not in result.stderr


def test_demo_runs_end_to_end_over_stdio() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "meta_experiment", "demo", "--trials", "12"],
        capture_output=True,
        text=True,
        env=package_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "ACTIVE EXPERIMENTS" in result.stdout and "STATISTICAL ANALYSIS" in result.stdout
    assert "(12/12 trials)" in result.stdout


@pytest.mark.parametrize("content", [b"\x8b" * 5000, b"SQLite format 3\x00garbage", None])
def test_a_damaged_database_is_a_clear_error_and_is_left_alone(project: Path, content: bytes | None) -> None:
    state = project / ".meta-experiment"
    state.mkdir(exist_ok=True)
    db = state / "experiments.db"
    if content is None:  # a SQLite file of someone else's: a table of ours with another shape
        import sqlite3

        other = sqlite3.connect(db)
        other.execute("CREATE TABLE experiments (x)")
        other.commit()
        other.close()
    else:
        db.write_bytes(content)
    before = db.read_bytes()
    result = run(project, "status", check=False)
    assert result.returncode == 2
    assert "cannot be used" in result.stderr and "Move it aside" in result.stderr
    assert repr(str(db)) in result.stderr  # which file: with META_EXPERIMENT_HOME, or from a subfolder
    assert db.read_bytes() == before


def test_reading_a_folder_without_state_creates_nothing(tmp_path: Path) -> None:
    """`status` (or any command that only reads) run in the wrong folder leaves no state folder
    behind, and says where it looked; a command that stores something creates it."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    out = run(folder, "status")
    assert "(none)" in out.stdout and f"no experiments in {folder.resolve()} yet" in out.stderr
    assert json.loads(run(folder, "status", "--json").stdout)["experiments"] == []
    assert json.loads(run(folder, "export").stdout)["experiments"] == []
    run(folder, "auto")
    assert json.loads(run(folder, "settings").stdout)["defaults"]["sample_size_required"] == 10
    assert "There are no experiments yet" in run(folder, "analyze", "x1", check=False).stderr
    # refused before anything is made: a setting out of range, a document that is not one
    refused = run(folder, "settings", "defaults.sample_size_required=-5", check=False)
    assert refused.returncode != 0 and "sample_size_required" in refused.stderr
    outside = tmp_path / "bad.json"
    outside.write_text(json.dumps({"experiments": [{"id": "../x"}]}))
    refused = run(folder, "import", str(outside), check=False)
    assert refused.returncode != 0 and "not a usable experiment id" in refused.stderr
    assert list(folder.iterdir()) == []
    assert (
        json.loads(run(folder, "settings", "defaults.sample_size_required=20").stdout)["defaults"][
            "sample_size_required"
        ]
        == 20
    )
    assert (folder / ".meta-experiment" / "settings.toml").is_file()
    assert json.loads(run(folder, "settings").stdout)["defaults"]["sample_size_required"] == 20
    assert "no experiments in" not in run(folder, "status").stderr


def test_a_project_folder_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-project"
    result = run(missing, "status", check=False)
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert not missing.exists()


def test_export_and_import_read_a_relative_path_from_the_same_folder(
    project: Path, experiment_id: str, tmp_path: Path
) -> None:
    """From a user test: in a subfolder, `export --out x.json` wrote the project's top-level x.json
    and `import x.json` then looked in the subfolder. Both now start at the current folder; a path
    outside the project is refused with the way to save there."""
    folder = project / "notes"
    folder.mkdir()
    run(project, "export", "--out", "x.json", cwd=folder)
    assert json.loads((folder / "x.json").read_text())["experiments"][0]["id"] == experiment_id
    assert not (project / "x.json").exists()
    assert "skipped 1" in run(project, "import", "x.json", "--skip-existing", cwd=folder).stdout
    outside = run(project, "export", "--out", str(tmp_path / "backup.json"), check=False, cwd=folder)
    assert outside.returncode == 2 and "outside the project" in outside.stderr
    # the command to redirect keeps --project and the ids (without them it exported the current folder)
    assert f"meta-experiment --project {project} export > {tmp_path / 'backup.json'}" in outside.stderr
    assert not (tmp_path / "backup.json").exists()
    some = run(project, "export", experiment_id, "--out", str(tmp_path / "one.json"), check=False, cwd=folder)
    assert f"meta-experiment --project {project} export {experiment_id} > {tmp_path / 'one.json'}" in some.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = run(empty, "export")
    assert json.loads(nothing.stdout)["experiments"] == []
    assert f"no experiments in {empty} yet" in nothing.stderr and "--project" in nothing.stderr
    refused = run(empty, "export", "--out", "x.json", check=False, cwd=empty)
    assert refused.returncode == 2 and "nothing was created" in refused.stderr
    assert not (empty / "x.json").exists() and not (empty / ".meta-experiment").exists()
    # from another folder, a project-relative path is outside: the message says where it landed
    elsewhere = run(project, "export", "--out", "exp.json", check=False, cwd=tmp_path)
    assert f"'exp.json' is '{tmp_path / 'exp.json'}', outside the project '{project}'" in elsewhere.stderr
    assert "a relative path starts at the current folder" in elsewhere.stderr
    assert f"(e.g. '{project / 'exp.json'}')" in elsewhere.stderr


def test_import_with_skip_existing_into_a_project_without_state(tmp_path: Path, project: Path) -> None:
    """Two exports joined list an experiment twice: --skip-existing imports it once, in a project
    without state as in one with (the check made before the state folder is made skips alike)."""
    lab = Lab.open(project)
    try:
        lab.create(**spec())
    finally:
        lab.close()
    document = json.loads(run(project, "export").stdout)
    document["experiments"] = document["experiments"] * 2
    joined = tmp_path / "joined.json"
    joined.write_text(json.dumps(document))
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    refused = run(fresh, "import", str(joined), check=False)
    assert refused.returncode != 0 and "--skip-existing" in refused.stderr
    assert list(fresh.iterdir()) == []
    assert run(fresh, "import", str(joined), "--skip-existing").stdout.strip() == "Imported 1, skipped 1."


def test_settings_changed_at_once_by_several_processes_all_land(project: Path) -> None:
    """From a review: 8 `settings` commands at once each exited 0, and 2-4 of the 8 keys were kept
    (each read the file, changed its key and wrote it over the others). The change of the file is
    now made under the database's write lock."""
    Lab.open(project, create=True).close()
    wanted = {
        "defaults.improvement_threshold": 21.0,
        "defaults.max_regression": 7.0,
        "defaults.confidence_threshold": 0.9,
        "defaults.sample_size_required": 33,
        "defaults.max_duration_days": 9.0,
        "defaults.auto_promote": True,
        "monitoring.error_rate_ratio": 3.0,
        "monitoring.min_failures": 5,
    }
    command = [sys.executable, "-m", "meta_experiment", "--project", str(project), "settings"]
    running = [
        subprocess.Popen([*command, f"{key}={json.dumps(value)}"], env=package_env(), stderr=subprocess.PIPE, text=True)
        for key, value in wanted.items()
    ]
    for p in running:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0 and "Traceback" not in err, err
    lab = Lab.open(project)
    try:
        settings = lab.settings()
        events = lab.events(kinds=["settings_updated"])
    finally:
        lab.close()
    for key, value in wanted.items():
        section, name = key.split(".")
        assert getattr(getattr(settings, section), name) == value, key
    assert len(events) == len(wanted)


def test_output_piped_into_a_reader_that_stops_early_ends_quietly(project: Path) -> None:
    """From a review: `meta-experiment trials ID | head -1` printed a BrokenPipeError traceback."""
    lab = Lab.open(project, create=True)
    try:
        e = lab.create(**spec(secondary_metrics=[]))
        for i in range(2500):  # `trials` prints ~150 KB: over a pipe's 64 KB buffer (600 printed 36 KB: a race)
            lab.record_measurement(e.id, "control" if i % 2 else "treatment", {"time_to_complete": 60.0 + i})
    finally:
        lab.close()
    for args in (["trials", e.id], ["export"]):
        p = subprocess.Popen(
            [sys.executable, "-m", "meta_experiment", "--project", str(project), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=package_env(),
        )
        assert p.stdout is not None and p.stderr is not None
        p.stdout.readline()
        p.stdout.close()  # as `head -1` does
        err = p.stderr.read().decode()
        p.stderr.close()
        p.wait(timeout=60)
        assert "Traceback" not in err and "BrokenPipe" not in err, err
        assert p.returncode == 141, (args, p.returncode, err)


def test_a_refused_dispatch_makes_no_state_folder(project: Path, tmp_path: Path) -> None:
    """From a review: `dispatch exp-typo` in a project with no experiment yet left .meta-experiment/
    behind (0755, holding deploy.lock, with no .gitignore), and the database later made in it was
    readable by all; with META_EXPERIMENT_HOME naming a file, dispatch answered with a traceback."""
    import stat

    from meta_experiment import deploy

    refused = run(project, "dispatch", "exp-typo", check=False)
    assert refused.returncode == 2 and "No experiment with id 'exp-typo'" in refused.stderr
    assert not (project / ".meta-experiment").exists()
    state = tmp_path / "fresh" / "state"  # a lock's first use makes the folder as every maker does
    with deploy.deploy_lock(state, wait=1.0):
        pass
    assert stat.S_IMODE(state.stat().st_mode) == 0o700 and (state / ".gitignore").is_file()
    (tmp_path / "a-file").write_text("not a folder\n")
    for args in (["dispatch", "x"], ["dispatch", "x", "--off"], ["settings", "defaults.sample_size_required=20"]):
        done = subprocess.run(
            [sys.executable, "-m", "meta_experiment", "--project", str(project), *args],
            capture_output=True,
            text=True,
            env={**package_env(), "META_EXPERIMENT_HOME": str(tmp_path / "a-file")},
            timeout=120,
        )
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    from meta_experiment.errors import StoreError
    from meta_experiment.paths import ensure_state_dir

    with pytest.raises(StoreError, match="is a file, not a folder \\(META_EXPERIMENT_HOME names it\\)"):
        ensure_state_dir(tmp_path / "a-file", {"META_EXPERIMENT_HOME": "a-file"})


def test_serve_at_a_terminal_stops_on_ctrl_c(project: Path) -> None:
    """From a review: `meta-experiment serve` typed at a terminal says 'Ctrl-C to stop', yet Ctrl-C
    did nothing (the SDK reads stdin in a thread) until Ctrl-D."""
    import os
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI on the pty, as a person starts it
        os.environ.update(package_env())
        os.execv(sys.executable, [sys.executable, "-m", "meta_experiment", "--project", str(project), "serve"])
    try:
        seen, deadline = b"", time.monotonic() + 60
        while b"Ctrl-C to stop" not in seen and time.monotonic() < deadline:
            if select.select([fd], [], [], 1)[0]:
                seen += os.read(fd, 4096)
        assert b"Ctrl-C to stop" in seen, seen
        hello = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        os.write(fd, json.dumps(hello).encode() + b"\n")
        while b'"serverInfo"' not in seen and time.monotonic() < deadline:  # it answers: it reads stdin now
            if select.select([fd], [], [], 1)[0]:
                seen += os.read(fd, 65536)
        assert b'"serverInfo"' in seen, seen[-2000:]
        os.write(fd, b"\x03")
        deadline = time.monotonic() + 10
        status = None
        while status is None and time.monotonic() < deadline:
            done, code = os.waitpid(pid, os.WNOHANG)
            status = code if done else None
            time.sleep(0.05)
        assert status is not None, "still running 10 s after Ctrl-C"
        assert os.waitstatus_to_exitcode(status) == 130
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)


def test_the_demo_refuses_a_project_it_would_ignore(tmp_path: Path) -> None:
    """From a review: `demo --project DIR` (a mistyped path too) ran in a temporary folder, DIR untouched,
    and `demo --help` described --project as the project root."""
    target = tmp_path / "dp"
    target.mkdir()
    for args in (["demo", "--project", str(target)], ["--project", str(target), "demo"]):
        done = subprocess.run(
            [sys.executable, "-m", "meta_experiment", *args, "--trials", "4"],
            capture_output=True,
            text=True,
            env=package_env(),
            timeout=120,
        )
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "--project" in done.stderr and done.stdout == ""
    assert list(target.iterdir()) == []
    helped = subprocess.run(
        [sys.executable, "-m", "meta_experiment", "demo", "--help"], capture_output=True, text=True, env=package_env()
    )
    assert "--trials" in helped.stdout and "--project" not in helped.stdout
