"""Kill a real process with SIGKILL at named points inside promote and rollback, restart, and check
that nothing was lost (used by tests/test_crash.py and bench/crash_bench.py).

A zygote subprocess imports meta_experiment (and scipy) once, then forks one child per run, so a
run costs a fork instead of a two-second interpreter start. The child installs a checkpoint hook
(`deploy.set_checkpoint_hook`) that SIGKILLs itself at the n-th pass of the chosen point, and runs
promote or rollback on its own copy of a prepared git repository. A second forked child then plays
"the next start of the server or CLI" (`Lab.open`, which recovers), optionally killed itself at a
point of the recovery. The checks run in the calling process afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import meta_experiment

PROD_A = ".claude/commands/review_pr.md"
VAR_A = ".claude/commands/review_pr.md.experiment"
PROD_B = "agents/reviewer.md"  # untracked in git: promote must `git add` it first
VAR_B = "agents/reviewer.v2.md"
OLD = {PROD_A: b"Review the PR: security, then cleanup.\n", PROD_B: b"reviewer v1\n" * 50}
NEW = {PROD_A: b"Review the PR: security and cleanup in parallel.\n", PROD_B: b"reviewer v2\n" * 80}
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Crash Test",
    "GIT_AUTHOR_EMAIL": "crash@example.invalid",
    "GIT_COMMITTER_NAME": "Crash Test",
    "GIT_COMMITTER_EMAIL": "crash@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}

ZYGOTE = r"""
import json, os, signal, sys, time, traceback
from pathlib import Path
import scipy.stats  # warm: the analysis needs it
from meta_experiment import deploy, release
from meta_experiment.lifecycle import Lab

def child(job):
    counts = {}
    def hook(name):
        counts[name] = counts.get(name, 0) + 1
        if name == job["point"] and counts[name] == job["occurrence"]:
            os.kill(os.getpid(), signal.SIGKILL)
    deploy.set_checkpoint_hook(hook if job["point"] else None)
    lab = Lab.open(Path(job["project"]), actor="crash-test")  # recovers first, like every start
    if job["op"] == "promote":
        release.promote(lab, job["experiment_id"])
    elif job["op"] == "rollback":
        release.rollback(lab, job["experiment_id"], reason="crash test")
    lab.close()

for line in sys.stdin:
    job = json.loads(line)
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            child(job)
        except BaseException:
            Path(job["project"], "child-error.txt").write_text(traceback.format_exc())
            code = 3
        os._exit(code)
    if job.get("delay") is not None:  # kill from outside after a random delay (between checkpoints)
        time.sleep(job["delay"])
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"killed": os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL,
                      "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None}), flush=True)
"""


def git(repo: Path, *args: str) -> str:
    env = dict(os.environ, **GIT_IDENTITY)
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=env).stdout


class Zygote:
    def __init__(self, env: dict[str, str]) -> None:
        source = str(Path(meta_experiment.__file__).resolve().parent.parent)
        env = dict(env, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **GIT_IDENTITY)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH", "")) if p)
        env.pop("CLAUDE_PROJECT_DIR", None)
        env.pop("META_EXPERIMENT_HOME", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def run(
        self,
        project: Path,
        op: str,
        experiment_id: str,
        point: str | None = None,
        occurrence: int = 1,
        delay: float | None = None,
    ) -> dict:
        job = {
            "project": str(project),
            "op": op,
            "experiment_id": experiment_id,
            "point": point,
            "occurrence": occurrence,
            "delay": delay,
        }
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the crash zygote died")
        result = json.loads(line)
        error = project / "child-error.txt"
        if error.exists():
            raise AssertionError(f"{op} at {point}:{occurrence} raised in the child:\n{error.read_text()}")
        return result

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.proc.stdout.close()


@dataclass(frozen=True)
class Template:
    path: Path
    experiment_id: str
    paths: tuple[str, ...]
    status: str  # running (for promote runs) or promoted (for rollback runs)


def build_templates(root: Path, record: Callable) -> dict[str, Template]:
    """Four prepared repositories: {single,multi}-{running,promoted}. `record(lab, experiment_id)`
    records trials with an unmistakable improvement."""
    from meta_experiment import release
    from meta_experiment.lifecycle import Lab

    out = {}
    for files in ("single", "multi"):
        repo = root / f"{files}-running"
        (repo / ".claude" / "commands").mkdir(parents=True)
        (repo / "agents").mkdir()
        for prod, var in ((PROD_A, VAR_A), (PROD_B, VAR_B)):
            (repo / prod).write_bytes(OLD[prod])
            (repo / var).write_bytes(NEW[prod])
        (repo / "notes.md").write_text("staged, unrelated\n")
        (repo / "other.md").write_text("tracked\n")
        git(repo, "init", "-q")
        git(repo, "add", "--", PROD_A, "other.md")
        git(repo, "commit", "-q", "-m", "initial")
        (repo / "other.md").write_text("tracked, modified, unstaged\n")
        git(repo, "add", "--", "notes.md")
        paths = (PROD_A,) if files == "single" else (PROD_A, PROD_B)
        lab = Lab.open(repo)
        try:
            e = lab.create(
                name=f"crash {files}",
                hypothesis="parallel is faster",
                files={p: {PROD_A: VAR_A, PROD_B: VAR_B}[p] for p in paths},
                primary_metric={"name": "time_to_complete", "direction": "lower_is_better", "unit": "min"},
                sample_size_required=20,
            )
            record(lab, e.id)
        finally:
            lab.close()
        out[f"{files}-running"] = Template(repo, e.id, paths, "running")
        promoted = root / f"{files}-promoted"
        shutil.copytree(repo, promoted, symlinks=True)
        lab = Lab.open(promoted)
        try:
            release.promote(lab, e.id)
        finally:
            lab.close()
        out[f"{files}-promoted"] = Template(promoted, e.id, paths, "promoted")
    return out


def contents(project: Path, paths: tuple[str, ...]) -> dict[str, bytes | None]:
    return {p: (project / p).read_bytes() if (project / p).exists() else None for p in paths}


def check_after_restart(
    project: Path, template: Template, *, edited: str | None = None, git_strict: bool = True
) -> str:
    """The invariants after a crash and a restart. Returns the experiment's final status.
    `git_strict`: also require the commit (off for kills from outside, which can kill the process
    while its git child keeps the index locked; the files and state must agree regardless)."""
    from meta_experiment import journal
    from meta_experiment.lifecycle import Lab

    lab = Lab.open(project, recover=False)  # the restart already happened in a child process
    try:
        assert journal.unfinished_ids(lab.store) == [], "an operation is still unfinished after restart"
        status = lab.get(template.experiment_id).status
    finally:
        lab.close()
    promote = template.status == "running"
    before, after = (OLD, NEW) if promote else (NEW, OLD)
    done = status == ("promoted" if promote else "rolled_back")
    assert status in (("running", "promoted") if promote else ("promoted", "rolled_back")), status
    for path, data in contents(project, template.paths).items():
        if path == edited:
            assert data == b"a person's edit\n", "a person's edit was overwritten"
            continue
        expected = after[path] if done else before[path]
        assert data == expected, f"{path} does not agree with status {status}"
    leftovers = [p.name for p in project.rglob(".*.tmp") if not {".git", ".meta-experiment"} & set(p.parts)]
    assert not leftovers, leftovers
    porcelain = set(git(project, "status", "--porcelain").splitlines())
    assert {"A  notes.md", " M other.md"} <= porcelain, porcelain
    if done and git_strict:
        assert not any(line[3:] in template.paths for line in porcelain), porcelain  # committed
        log = git(project, "log", "-1", "--format=%s")
        assert log.startswith("experiment: Promote" if promote else "experiment: Rollback"), log
        assert set(git(project, "show", "--name-only", "--format=", "HEAD").split()) <= set(template.paths)
    return status


def points_for(files: int, op: str) -> list[tuple[str, int]]:
    """Every checkpoint the operation passes, with its occurrence number."""
    out = [("backup_written", 1), ("journal_written", 1)]
    for i in range(1, files + 1):
        out += [("temp_partial", i), ("temp_synced", i), ("file_replaced", i)]
    out += [("files_applied", 1), ("state_marked", 1)]
    if op == "promote" and files > 1:
        out.append(("git_added", 1))  # PROD_B is untracked until the promote commits it
    out.append(("committed", 1))
    return out


def at_crash(project: Path, template: Template) -> None:
    """Right after the kill, before any restart: every file is whole - old or new bytes."""
    for path, data in contents(project, template.paths).items():
        assert data in (OLD[path], NEW[path]), f"{path} is partly written: {data!r}"


@dataclass(frozen=True)
class Case:
    template: str
    point: str
    occurrence: int
    edit: str | None = None  # a person edits this file between the crash and the restart
    recovery_point: tuple[str, int] | None = None  # the restart is killed here too

    @property
    def op(self) -> str:
        return "promote" if self.template.endswith("running") else "rollback"

    @property
    def id(self) -> str:
        text = f"{self.template}:{self.point}:{self.occurrence}"
        if self.edit:
            text += "+edit"
        if self.recovery_point:
            text += f"+restart-killed-at-{self.recovery_point[0]}:{self.recovery_point[1]}"
        return text


DOUBLE = [
    (("journal_written", 1), ("temp_synced", 1)),
    (("journal_written", 1), ("file_replaced", 2)),
    (("file_replaced", 1), ("file_replaced", 1)),
    (("temp_partial", 2), ("files_applied", 1)),
    (("files_applied", 1), ("state_marked", 1)),
    (("state_marked", 1), ("committed", 1)),
]


def cases() -> list[Case]:
    """Every checkpoint of promote and rollback, single- and two-file; a person's edit between
    crash and restart; and restarts that are killed too."""
    out = []
    for name in ("single-running", "multi-running", "single-promoted", "multi-promoted"):
        files = 1 if name.startswith("single") else 2
        op = "promote" if name.endswith("running") else "rollback"
        out += [Case(name, point, n) for point, n in points_for(files, op)]
    for name in ("multi-running", "multi-promoted"):
        out.append(Case(name, "file_replaced", 1, edit=PROD_B))
        out += [Case(name, first[0], first[1], recovery_point=second) for first, second in DOUBLE]
    return out


def run_case(zygote: Zygote, templates: dict[str, Template], case: Case, workdir: Path) -> str:
    """One crash run; returns the final status. Raises AssertionError when an invariant breaks."""
    template = templates[case.template]
    project = workdir / "project"
    shutil.copytree(template.path, project, symlinks=True)
    crashed = zygote.run(project, case.op, template.experiment_id, case.point, case.occurrence)
    assert crashed["killed"], f"{case.id}: the checkpoint was never reached ({crashed})"
    at_crash(project, template)
    if case.edit:
        (project / case.edit).write_bytes(b"a person's edit\n")
    if case.recovery_point:
        zygote.run(project, "recover", template.experiment_id, *case.recovery_point)
        at_crash(project, template)
    zygote.run(project, "recover", template.experiment_id)
    status = check_after_restart(project, template, edited=case.edit)
    if case.point != "backup_written":  # journaled: the restart must say what it did
        kinds = {"recovered", "deploy_undone"}
        assert events_of(project, template.experiment_id, kinds), f"{case.id}: no recovery event"
    return status


def events_of(project: Path, experiment_id: str, kinds: set[str]) -> list:
    from meta_experiment.lifecycle import Lab

    lab = Lab.open(project, recover=False)
    try:
        return [e for e in lab.events(experiment_id) if e.kind in kinds]
    finally:
        lab.close()
