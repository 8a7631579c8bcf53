"""Settings: defaults from pyproject and settings.toml; updates keep a person's comments."""

from __future__ import annotations

from pathlib import Path

import pytest

from meta_experiment.errors import InvalidInput
from meta_experiment.settings import SETTINGS_FILE_NAME, load_settings, update_settings

HAND_WRITTEN = """\
# Our team's experiment defaults -- ask Dana before changing.
[defaults]
sample_size_required = 30   # enough for our noisy review times
# we never auto-promote
auto_promote = false

[monitoring]
satisfaction_floor = 0.6
"""


def test_defaults_without_any_file(tmp_path: Path) -> None:
    s = load_settings(tmp_path)
    assert s.defaults.sample_size_required == 10
    assert s.defaults.confidence_threshold == 0.80
    assert s.monitoring.error_rate_ratio == 2.0


def test_update_keeps_comments_order_and_other_keys(tmp_path: Path) -> None:
    (tmp_path / SETTINGS_FILE_NAME).write_text(HAND_WRITTEN)
    s = update_settings(tmp_path, {"defaults": {"sample_size_required": 40, "max_duration_days": 7.0}})
    text = (tmp_path / SETTINGS_FILE_NAME).read_text()
    assert s.defaults.sample_size_required == 40 and s.defaults.max_duration_days == 7.0
    assert "# Our team's experiment defaults -- ask Dana before changing." in text
    assert "sample_size_required = 40   # enough for our noisy review times" in text
    assert "# we never auto-promote" in text
    assert text.index("[defaults]") < text.index("[monitoring]")
    assert (tmp_path / (SETTINGS_FILE_NAME + ".bak")).read_text() == HAND_WRITTEN
    assert load_settings(tmp_path).monitoring.satisfaction_floor == 0.6


def test_update_creates_a_commented_file(tmp_path: Path) -> None:
    update_settings(tmp_path, {"monitoring": {"min_failures": 5}})
    text = (tmp_path / SETTINGS_FILE_NAME).read_text()
    assert text.startswith("# meta-experiment settings")
    assert load_settings(tmp_path).monitoring.min_failures == 5


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"defaults": {"sample_size_required": -3}}, "sample_size_required"),
        ({"defaults": {"confidence_threshold": 1.5}}, "confidence_threshold"),
        ({"defaults": {"nonsense": 1}}, "Unknown setting"),
        ({"elsewhere": {"x": 1}}, "Unknown settings section"),
    ],
)
def test_invalid_updates_are_refused_and_the_file_is_untouched(tmp_path: Path, changes, message) -> None:
    (tmp_path / SETTINGS_FILE_NAME).write_text(HAND_WRITTEN)
    with pytest.raises(InvalidInput, match=message):
        update_settings(tmp_path, changes)
    assert (tmp_path / SETTINGS_FILE_NAME).read_text() == HAND_WRITTEN


def test_pyproject_section_is_read_and_settings_file_wins(tmp_path: Path) -> None:
    project, state = tmp_path / "p", tmp_path / "p" / ".meta-experiment"
    state.mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.meta-experiment.defaults]\nsample_size_required = 50\nmax_duration_days = 3\n'
    )
    assert load_settings(state, project).defaults.sample_size_required == 50
    (state / SETTINGS_FILE_NAME).write_text("[defaults]\nsample_size_required = 12\n")
    merged = load_settings(state, project)
    assert merged.defaults.sample_size_required == 12 and merged.defaults.max_duration_days == 3


def test_broken_toml_says_which_file_and_what_to_do(tmp_path: Path) -> None:
    (tmp_path / SETTINGS_FILE_NAME).write_text("[defaults\nsample_size_required = 1\n")
    with pytest.raises(InvalidInput, match="settings.toml is not valid TOML"):
        load_settings(tmp_path)


def test_bad_value_in_file_names_the_key(tmp_path: Path) -> None:
    (tmp_path / SETTINGS_FILE_NAME).write_text("[defaults]\nsample_size_required = 'ten'\n")
    with pytest.raises(InvalidInput, match="sample_size_required"):
        load_settings(tmp_path)


def test_bad_values_in_every_section_and_file_are_named_at_once(tmp_path: Path) -> None:
    """One round of fixes is enough: the monitoring section's bad value is named beside the defaults' ones,
    and pyproject.toml's beside settings.toml's."""
    (tmp_path / SETTINGS_FILE_NAME).write_text(
        "[defaults]\nsample_size_required = 'ten'\nmax_regression = -1\n[monitoring]\nmin_failures = 0\n"
    )
    (tmp_path / "pyproject.toml").write_text("[tool.meta-experiment.defaults]\nconfidence_threshold = 2\n")
    with pytest.raises(InvalidInput) as err:
        load_settings(tmp_path, tmp_path)
    message = str(err.value)
    for key in (
        "defaults.sample_size_required",
        "defaults.max_regression",
        "monitoring.min_failures",
        "defaults.confidence_threshold",
    ):
        assert key in message, key
    assert "Correct those lines in settings.toml, or delete them" in message
    assert "Correct that line in pyproject.toml [tool.meta-experiment], or delete it" in message


@pytest.mark.parametrize("content", ["defaults = 5\n", "[[defaults]]\nx = 1\n"])
def test_update_over_a_section_that_is_not_a_table_is_refused(tmp_path: Path, content: str) -> None:
    (tmp_path / SETTINGS_FILE_NAME).write_text(content)
    with pytest.raises(InvalidInput, match=r"\[defaults\] is not a table"):
        update_settings(tmp_path, {"defaults": {"sample_size_required": 20}})
    assert (tmp_path / SETTINGS_FILE_NAME).read_text() == content


def test_update_writes_the_parsed_values(tmp_path: Path) -> None:
    """Command-line text such as "yes" or "20" lands in the file as a boolean and a number."""
    update_settings(tmp_path, {"defaults": {"auto_promote": "yes", "sample_size_required": "20"}})
    text = (tmp_path / SETTINGS_FILE_NAME).read_text()
    assert "auto_promote = true" in text and "sample_size_required = 20" in text
    assert load_settings(tmp_path).defaults.auto_promote is True


@pytest.mark.parametrize("content", ['tool = "x"\n', "[tool]\nmeta-experiment = 5\n"])
def test_pyproject_of_another_shape_is_ignored_or_explained(tmp_path: Path, content: str) -> None:
    (tmp_path / "pyproject.toml").write_text(content)
    state = tmp_path / "state"
    if "meta-experiment" in content:
        with pytest.raises(InvalidInput, match=r"\[tool.meta-experiment\] must be a table"):
            load_settings(state, tmp_path)
    else:  # a [tool] that is not a table is someone else's business: defaults apply
        assert load_settings(state, tmp_path).defaults.sample_size_required == 10


def test_an_update_that_changes_nothing_keeps_the_backup_of_the_version_before(tmp_path: Path) -> None:
    """From a user test: the same update twice left settings.toml.bak equal to the file, so the
    version before the change was gone."""
    update_settings(tmp_path, {"defaults": {"sample_size_required": 30}})
    update_settings(tmp_path, {"defaults": {"sample_size_required": 31}})
    before = (tmp_path / "settings.toml.bak").read_text()
    assert "sample_size_required = 30" in before
    update_settings(tmp_path, {"defaults": {"sample_size_required": 31}})  # the same again
    assert (tmp_path / "settings.toml.bak").read_text() == before


def test_a_bad_value_already_in_the_file_is_named_as_such(tmp_path: Path) -> None:
    """From a user test: with confidence_threshold = 2 typed by hand, updating another key said
    'settings update: defaults.confidence_threshold: ...' as if the update were wrong."""
    (tmp_path / "settings.toml").write_text("[defaults]\nconfidence_threshold = 2\n")
    held = r"settings.toml already holds an invalid value \(defaults.confidence_threshold\)"
    with pytest.raises(InvalidInput, match=held):
        update_settings(tmp_path, {"defaults": {"sample_size_required": 31}})
    assert (tmp_path / "settings.toml").read_text() == "[defaults]\nconfidence_threshold = 2\n"
    update_settings(tmp_path, {"defaults": {"confidence_threshold": 0.9}})  # fixing it in the update works


def test_an_underscore_section_in_pyproject_is_named_not_ignored(tmp_path: Path) -> None:
    """From a user test: [tool.meta_experiment.defaults] (an underscore) was silently ignored."""
    (tmp_path / "pyproject.toml").write_text("[tool.meta_experiment.defaults]\nsample_size_required = 30\n")
    with pytest.raises(InvalidInput, match=r"the section is \[tool.meta-experiment\] \(with a hyphen"):
        load_settings(tmp_path / ".meta-experiment", tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.meta-experiment.defaults]\nsample_size_required = 30\n")
    assert load_settings(tmp_path / ".meta-experiment", tmp_path).defaults.sample_size_required == 30


def test_an_update_refused_for_a_bad_line_in_pyproject_writes_nothing(tmp_path: Path) -> None:
    """From a user test: a typo in pyproject.toml's section made the update fail, yet settings.toml
    was written and its value used from then on."""
    (tmp_path / "pyproject.toml").write_text("[tool.meta-experiment.monitoring]\nunknown_key = 1\n")
    with pytest.raises(InvalidInput) as err:
        update_settings(tmp_path / "state", {"defaults": {"sample_size_required": 40}}, tmp_path)
    assert "monitoring.unknown_key" in str(err.value) and "Nothing was written." in str(err.value)
    assert not (tmp_path / "state" / SETTINGS_FILE_NAME).exists()
    (tmp_path / "pyproject.toml").write_text("[tool.meta-experiment.defaults]\nsample_size_required = 30\n")
    settings = update_settings(tmp_path / "state", {"monitoring": {"min_failures": 4}}, tmp_path)
    assert (settings.defaults.sample_size_required, settings.monitoring.min_failures) == (30, 4)
    assert settings == load_settings(tmp_path / "state", tmp_path)


def test_an_update_the_database_refuses_leaves_the_file_as_it_was(project: Path) -> None:
    """From a review: with a read-only database, update_settings failed and had rewritten
    settings.toml anyway. The change is logged first, so the file is not touched."""
    from meta_experiment.errors import StoreError
    from meta_experiment.lifecycle import Lab

    lab = Lab.open(project, create=True)
    try:
        path = lab.state_dir / SETTINGS_FILE_NAME
        lab.store._db.execute("PRAGMA query_only = ON")  # as a database this user may not write
        with pytest.raises(StoreError, match="cannot be written"):
            lab.update_settings({"defaults": {"sample_size_required": 44}}, "refused")
        assert not path.exists()
        lab.store._db.execute("PRAGMA query_only = OFF")
        lab.update_settings({"defaults": {"sample_size_required": 44}}, "first")
        before = path.read_bytes()
        lab.store._db.execute("PRAGMA query_only = ON")
        with pytest.raises(StoreError):
            lab.update_settings({"defaults": {"sample_size_required": 45}}, "refused again")
        assert path.read_bytes() == before and lab.settings().defaults.sample_size_required == 44
        assert not (lab.state_dir / (SETTINGS_FILE_NAME + ".bak")).exists()  # the file was never written
    finally:
        lab.close()


def test_new_files_get_the_mode_the_umask_gives(tmp_path: Path) -> None:
    """From a review: an export and a first settings.toml came out 0600 (mkstemp's temp file)."""
    import os
    import stat

    from meta_experiment.files import NEW_FILE_MODE, atomic_write

    mask = os.umask(0o022)
    os.umask(mask)
    assert 0o666 & ~mask == NEW_FILE_MODE
    atomic_write(tmp_path / "export.json", b"{}")
    assert stat.S_IMODE((tmp_path / "export.json").stat().st_mode) == NEW_FILE_MODE
    update_settings(tmp_path, {"defaults": {"sample_size_required": 20}})
    assert stat.S_IMODE((tmp_path / SETTINGS_FILE_NAME).stat().st_mode) == NEW_FILE_MODE
    os.chmod(tmp_path / "export.json", 0o600)  # a mode someone chose is kept
    atomic_write(tmp_path / "export.json", b"[]")
    assert stat.S_IMODE((tmp_path / "export.json").stat().st_mode) == 0o600


def test_a_commit_that_fails_after_the_file_was_written_puts_the_file_back(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk can fail the COMMIT after settings.toml was written: the file goes back as it was
    (under the settings lock, which another update waits for)."""
    import sqlite3
    from contextlib import contextmanager

    from meta_experiment.errors import StoreError
    from meta_experiment.lifecycle import Lab

    lab = Lab.open(project, create=True)
    try:
        lab.update_settings({"defaults": {"sample_size_required": 30}}, "first")
        path = lab.state_dir / SETTINGS_FILE_NAME
        before = path.read_bytes()
        real = lab.store.transaction

        @contextmanager
        def commit_fails():
            with real() as db:
                yield db
                raise StoreError(str(sqlite3.OperationalError("database or disk is full")))

        monkeypatch.setattr(lab.store, "transaction", commit_fails)
        with pytest.raises(StoreError, match="full"):
            lab.update_settings({"defaults": {"sample_size_required": 31}}, "second")
        assert path.read_bytes() == before
        monkeypatch.setattr(lab.store, "transaction", real)
        assert [e.message for e in lab.events(kinds=["settings_updated"])] == ["first"]
    finally:
        lab.close()


# -- from a review of the settings file (2026-11-27) ------------------------------------------------


@pytest.mark.parametrize("where", ["state", "pyproject"])
def test_a_key_written_twice_is_named_and_a_recording_goes_on(project: Path, where: str) -> None:
    """From a review: tomlkit's KeyAlreadyPresent is no ParseError, so a key written twice reached
    every record (and create, and settings) as a bare error and the trial stayed unrecorded."""
    from conftest import spec
    from meta_experiment.lifecycle import Lab

    lab = Lab.open(project, create=True)
    try:
        e = lab.create(**spec())
        trial = next(a.trial_id for a in iter(lambda: lab.assign(e.id), None) if a.arm == "treatment")
        if where == "state":
            twice = "[defaults]\nsample_size_required = 20\nsample_size_required = 30\n"
            (lab.state_dir / SETTINGS_FILE_NAME).write_text(twice)
            name, key = SETTINGS_FILE_NAME, "sample_size_required"
        else:
            (project / "pyproject.toml").write_text('[project]\nname = "x"\nname = "y"\n')
            name, key = "pyproject.toml", "name"
        with pytest.raises(InvalidInput, match=f'{name} is not valid TOML: Key "{key}" already exists.*Delete one'):
            lab.settings()
        # a failed treatment run: the error-rate check reads the monitoring settings
        assert lab.record(trial, {"time_to_complete": 12.0}, success=False).trials_recorded == 1
        with pytest.raises(InvalidInput, match="already exists"):
            lab.create(**spec(files={}))
        problem = lab.status().release.settings_problem
        assert problem is not None and name in problem
        from meta_experiment.report import render_status

        assert "## SETTINGS" in render_status(lab.status())
    finally:
        lab.close()


def test_a_file_with_a_byte_order_mark_and_windows_line_ends_keeps_them(tmp_path: Path) -> None:
    """From a review: a file saved by a Windows editor (BOM, CRLF) was refused ("Empty key"), and an
    update wrote it back with LF; the .bak was not the file as it was."""
    original = "\ufeff# ours\r\n[defaults]\r\nsample_size_required = 20\r\n".encode()
    (tmp_path / SETTINGS_FILE_NAME).write_bytes(original)
    assert load_settings(tmp_path).defaults.sample_size_required == 20
    update_settings(tmp_path, {"defaults": {"max_regression": 5}, "monitoring": {"min_failures": 4}})
    written = (tmp_path / SETTINGS_FILE_NAME).read_bytes()
    assert written.startswith("\ufeff# ours\r\n".encode())
    assert b"\n" not in written.replace(b"\r\n", b"")  # every line ends as the file's did
    assert (tmp_path / (SETTINGS_FILE_NAME + ".bak")).read_bytes() == original
    s = load_settings(tmp_path)
    assert (s.defaults.sample_size_required, s.defaults.max_regression, s.monitoring.min_failures) == (20, 5, 4)


def test_a_settings_file_that_is_a_link_is_updated_through_it(tmp_path: Path) -> None:
    """From a review: an update replaced a symbolic link (a file shared by projects) with a file."""
    shared = tmp_path / "shared.toml"
    shared.write_text("[defaults]\nsample_size_required = 20\n")
    state = tmp_path / "state"
    state.mkdir()
    (state / SETTINGS_FILE_NAME).symlink_to(shared)
    update_settings(state, {"defaults": {"max_regression": 7}})
    assert (state / SETTINGS_FILE_NAME).is_symlink()
    assert "max_regression = 7" in shared.read_text()


def test_a_link_to_a_missing_folder_is_named_and_nothing_written(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / SETTINGS_FILE_NAME).symlink_to(tmp_path / "shared-missing" / SETTINGS_FILE_NAME)
    with pytest.raises(InvalidInput, match="is a link to .*shared-missing.*whose folder does not exist"):
        update_settings(state, {"defaults": {"max_regression": 7}})
    assert sorted(p.name for p in state.iterdir()) == [SETTINGS_FILE_NAME]


@pytest.mark.parametrize(("section", "key"), [("monitoring", "min_trials_per_arm"), ("defaults", "max_regression")])
def test_true_or_false_is_not_taken_for_a_number(tmp_path: Path, section: str, key: str) -> None:
    """From a review: min_trials_per_arm=true was stored as 1, which removes the small-sample guard."""
    with pytest.raises(InvalidInput, match=f"{section}.{key}: must be a number, not true"):
        update_settings(tmp_path, {section: {key: True}})
    (tmp_path / SETTINGS_FILE_NAME).write_text(f"[{section}]\n{key} = false\n")
    with pytest.raises(InvalidInput, match="must be a number, not false"):
        load_settings(tmp_path)


def test_a_broken_pyproject_is_to_be_fixed_not_moved_aside(tmp_path: Path) -> None:
    """From a review: the advice for a broken pyproject.toml was to move it aside, as for our own
    settings file; the project's pyproject.toml is every tool's."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nname = "y"\n')
    with pytest.raises(InvalidInput) as info:
        load_settings(tmp_path / "state", tmp_path)
    assert str(info.value).endswith("Delete one of the two lines.") and "aside" not in str(info.value)


def test_a_setting_outside_any_section_is_told_where_it_belongs(tmp_path: Path) -> None:
    """From a review: `sample_size_required = 20` at the top of settings.toml (the CLI takes it
    without a section) was called an 'unknown section'."""
    project, state = tmp_path / "p", tmp_path / "p" / ".meta-experiment"
    state.mkdir(parents=True)
    (state / SETTINGS_FILE_NAME).write_text("sample_size_required = 20\nfoo = 1\n[bogus]\nx = 1\n")
    with pytest.raises(InvalidInput) as refused:
        load_settings(state, project)
    message = str(refused.value)
    assert "'sample_size_required = ...' stands outside any section; it is a setting of [defaults]: move " in message
    assert "under a [defaults] line" in message and "no section has 'foo'" in message
    assert "unknown section(s) ['bogus']" in message and "['sample_size_required']" not in message
    (state / SETTINGS_FILE_NAME).unlink()
    (project / "pyproject.toml").write_text("[tool.meta-experiment]\nmin_trials_per_arm = 12\n")
    with pytest.raises(InvalidInput) as refused:
        load_settings(state, project)
    assert "it is a setting of [monitoring]: move the line under a [tool.meta-experiment.monitoring] line" in str(
        refused.value
    )
