"""Commit named paths, and only them, to the project's git repository.

`git commit --only -- <paths>` commits the working-tree content of exactly those paths on top of
HEAD and leaves the rest of the index alone: a person's unrelated staged changes stay staged and
unstaged ones stay unstaged (never `git add .`). A path git does not track yet is added first.
Hooks run (a failing pre-commit hook is reported, not bypassed). Every outcome is a value, not an
exception: the files are already consistent when this runs, so git can only fail to record them.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path

from .deploy import checkpoint
from .outcomes import GitOutcome

GIT_TIMEOUT_SECONDS = 120.0
FALLBACK_IDENTITY = ("-c", "user.name=meta-experiment", "-c", "user.email=meta-experiment@localhost")


def _git(
    project_root: Path, *args: str, timeout: float = 30.0, literal: bool = True
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    # --literal-pathspecs: a file named ':(glob)*' is that file, not a pattern (check-ignore, which
    # takes paths and not patterns, refuses the flag: literal=False)
    command = ["git", *(["--literal-pathspecs"] if literal else []), *args]
    with subprocess.Popen(
        command,
        cwd=project_root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env,
    ) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()  # (as subprocess.run does; a hook's child may hold the pipes: not read to their end)
            process.wait()
            raise
        except KeyboardInterrupt:
            _interrupt(process)
            raise
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def _interrupt(process: subprocess.Popen[str]) -> None:
    """A Ctrl-C (SIGINT to this process alone: `kill -INT`, an IDE's stop button) while git runs:
    pass it on and let git stop as it does on a Ctrl-C, removing its index.lock. subprocess.run
    sends SIGKILL instead, which left the lock behind, and the advised commit line then failed on
    it (from a review). A git that does not stop within INTERRUPT_WAIT_SECONDS is killed."""
    with suppress(OSError):
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=INTERRUPT_WAIT_SECONDS)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        process.kill()


INTERRUPT_WAIT_SECONDS = 5.0


def _prefix(project_root: Path) -> str:
    """The project's folder inside its repository ('' at the top, 'proj/' in a monorepo): git
    names paths from the repository's top in status and show."""
    result = _git(project_root, "rev-parse", "--show-prefix")
    return result.stdout.strip() if result.returncode == 0 else ""


def inside_repository(project_root: Path) -> bool:
    """Whether `project_root` is inside a git work tree (git installed and answering)."""
    if shutil.which("git") is None:
        return False
    try:
        result = _git(project_root, "rev-parse", "--is-inside-work-tree")
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0 and result.stdout.strip() == "true"


def uncommitted(project_root: Path, rel_paths: Sequence[str]) -> list[str]:
    """The paths among `rel_paths` with changes git has not committed (modified, staged or
    untracked); [] outside a git repository or when git cannot tell."""
    try:
        result = _git(project_root, "status", "--porcelain", "-z", "--untracked-files=all", "--", *rel_paths)
        prefix = _prefix(project_root) if result.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return []
    if result.returncode != 0:
        return []
    changed: set[str] = set()
    entries = iter(result.stdout.split("\0"))
    for entry in entries:  # -z: "XY path", names unquoted; a rename or copy is followed by its old name
        if len(entry) > 3:
            changed.add(entry[3:].removeprefix(prefix))
            if entry[0] in "RC":
                next(entries, None)
    return [p for p in rel_paths if p in changed]


def _first_lines(text: str, count: int = 8) -> str:
    """git's message on one line: the first lines (its advice comes last, e.g. for a stale
    index.lock), at most ~600 characters."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    # git's warnings on the way (line ends it will normalise, say) are not why it failed
    reasons = [line for line in lines if not line.lower().startswith("warning:")] or lines
    joined = " / ".join(reasons[:count]) or "no message from git"
    return joined if len(joined) <= 600 else joined[:599] + "…"


def manual_commit(project_root: Path, rel_paths: Sequence[str], message: str) -> str:
    """The commands that commit `rel_paths` by hand (an untracked path needs its `git add`), on one
    line that works from any folder: `git -C` the project's root, since the paths are relative to
    it and the person may be in a subfolder, or the project a folder of a larger repository."""
    root = shlex.quote(str(project_root.resolve()))
    paths = " ".join(shlex.quote(p) for p in rel_paths)
    subject = message.splitlines()[0] if message.strip() else "experiment"
    return f"git -C {root} add -- {paths} && git -C {root} commit -m {shlex.quote(subject)} -- {paths}"


# What a commit hook prints when it rewrote files as it refused the commit: pre-commit's "files were
# modified by this hook" (any fixer under it), its fixers' "Fixing <path>", black's "reformatted
# <path>" and "N files reformatted", ruff's "(N fixed, ...)"; the per-file forms flush left, as the
# tools print them. A check that only reports ("would reformat", "1 file would be reformatted"), a
# test named test_fixed_point, or an indented line of a traceback or a --diff is no rewrite.
REWROTE = re.compile(
    r"files were modified by this hook|^fixing\s+\S+\s*$|^reformatted\s+\S+\s*$"
    r"|(?<!would be )\b[1-9]\d* files? reformatted\b|\([1-9]\d* fixed\b",
    re.IGNORECASE | re.MULTILINE,
)


def says_it_rewrote(output: str) -> bool:
    """Whether a refused commit's output says a hook rewrote files (REWROTE)."""
    return REWROTE.search(output) is not None


def not_committed(reason: str, rel_paths: Sequence[str], message: str, project_root: Path) -> GitOutcome:
    """A commit that did not happen, with what to run once the reason is dealt with; the paths git
    ignores are left out of it (their `git add` would fail)."""
    rel_paths = [p for p in rel_paths if not ignored(project_root, p)] or list(rel_paths)
    return GitOutcome(
        status="failed",
        detail=f"commit failed: {reason.rstrip('.')}. The files are changed on disk but not committed; once that "
        f"is fixed, run: `{manual_commit(project_root, rel_paths, message)}`",  # quoted: a full stop may follow
    )


def executable_in_git(project_root: Path, rel: str) -> bool:
    """Whether git's index records `rel` as an executable file (mode 100755): what a deleted
    script is recreated with. False outside a repository or when git cannot say."""
    try:
        result = _git(project_root, "ls-files", "-s", "-z", "--", rel)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0 and result.stdout.startswith("100755 ")


def ignored(project_root: Path, rel: str) -> bool:
    """Whether git ignores `rel` and does not track it (a file kept out of git on purpose)."""
    try:
        tracked = _git(project_root, "ls-files", "--error-unmatch", "--", rel).returncode == 0
        return not tracked and _git(project_root, "check-ignore", "-q", "--", rel, literal=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def identity_args(project_root: Path) -> tuple[str, ...]:
    """The person's git identity when one is configured (config or GIT_AUTHOR_* variables);
    otherwise a meta-experiment identity for this one commit only."""
    for var in ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT"):
        if _git(project_root, "var", var).returncode != 0:
            return FALLBACK_IDENTITY
    return ()


IN_PROGRESS = {
    "rebase-merge": "a rebase",
    "rebase-apply": "a rebase or git am",
    "MERGE_HEAD": "a merge",
    "CHERRY_PICK_HEAD": "a cherry-pick",
    "REVERT_HEAD": "a revert",
}


def blockers(
    project_root: Path, rel_paths: Sequence[str], new_contents: Mapping[str, bytes] | None = None
) -> str | None:
    """Why committing `rel_paths` now would lose or hide work, or None. Checked before any file is
    written: a detached HEAD or a rebase, merge, cherry-pick or revert in progress (the commit would
    end up on no branch, or be dropped by --abort), staged changes of these paths (the commit
    would silently replace them in the index; not when what is staged is exactly the path's
    `new_contents`, what the commit records anyway), or a skip-worktree mark on them (git would
    commit nothing). Outside a repository, or without git, nothing blocks."""
    if shutil.which("git") is None:
        return None
    try:
        inside = _git(project_root, "rev-parse", "--is-inside-work-tree")
        if inside.returncode != 0 or inside.stdout.strip() != "true":
            return None
        blocked = _repository_blocker(project_root)
        if blocked:
            return blocked
        has_head = _git(project_root, "rev-parse", "--verify", "-q", "HEAD").returncode == 0
        if rel_paths:
            # `git ls-files -v` tags: S = skip-worktree, a lowercase letter = assume-unchanged (s = both);
            # either way `git add` ignores the change and nothing would be committed
            listed = _git(project_root, "ls-files", "-v", "-z", "--", *rel_paths)  # -z: names unquoted
            hidden = [
                (item[0], item[2:]) for item in listed.stdout.split("\0") if item[:1] == "S" or item[:1].islower()
            ]
            if hidden:
                marked = " ".join(shlex.quote(name) for _, name in hidden)
                flags = sorted(
                    {"--no-skip-worktree" for tag, _ in hidden if tag in "Ss"}
                    | {"--no-assume-unchanged" for tag, _ in hidden if tag.islower()}
                )
                return (
                    f"{', '.join(name for _, name in hidden)} {'is' if len(hidden) == 1 else 'are'} marked "
                    "skip-worktree or assume-unchanged in git's "
                    "index, so git would not see the change and nothing would be committed; clear the mark first "
                    f"(git update-index {' '.join(flags)} -- {marked})"
                )
        if has_head and rel_paths:
            staged = _git(project_root, "diff", "--cached", "--name-only", "HEAD", "--", *rel_paths)
            names = [n for n in staged.stdout.splitlines() if n]
            if names and new_contents is not None:  # a staged copy of what the commit records loses nothing
                names = [
                    rel
                    for rel in rel_paths
                    if _git(project_root, "diff", "--cached", "--quiet", "HEAD", "--", rel).returncode != 0
                    and _staged(project_root, rel) != new_contents.get(rel)
                ]
            if names:
                return (
                    f"{', '.join(names)} has staged changes (git add) that are not committed; they would be "
                    f"replaced in the index. Commit them, or unstage them (git restore --staged -- {' '.join(names)})"
                )
    except (OSError, subprocess.TimeoutExpired):
        return None  # git cannot answer: the commit step reports it
    return None


def last_commit(project_root: Path, rel_paths: Sequence[str], message: str) -> str | None:
    """HEAD's sha when HEAD is the commit of `rel_paths` with `message` (one that went through just
    before an interruption), else None."""
    try:
        head = _git(project_root, "log", "-1", "--format=%H%x00%B", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0 or "\0" not in head.stdout:
        return None
    sha, body = head.stdout.split("\0", 1)
    if body.strip() != message.strip():
        return None
    listed = _git(project_root, "show", "--name-only", "--format=", "-z", sha).stdout.split("\0")
    prefix = _prefix(project_root)
    return sha if {prefix + p for p in rel_paths} <= {p for p in listed if p} else None


def index_lock(project_root: Path) -> Path | None:
    """git's index.lock of the repository when it exists (a git process at work, or one that
    crashed and left it), else None."""
    if shutil.which("git") is None:
        return None
    try:
        lock = _git(project_root, "rev-parse", "--git-path", "index.lock").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    path = project_root / lock if lock else None
    return path if path is not None and path.exists() else None


def wait_for_other_git(project_root: Path, timeout: float = GIT_TIMEOUT_SECONDS, poll: float = 0.2) -> bool:
    """Wait while git's index.lock exists and is younger than `timeout` seconds (another git at
    work: the commit of a killed promote, its hooks still running), saying so on stderr. Returns
    whether the lock is gone (or never was). A lock older than that is not waited for (a crashed
    git's, or a hook that runs longer than a commit is given here): one wait per lock, not per
    operation, and none for a stale lock."""
    import sys
    import time

    path = index_lock(project_root)
    said = False
    while path is not None:
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return True
        if age >= timeout:
            return False
        if not said:
            print(
                f"meta-experiment: waiting for another git process to finish ({path.name} exists, made "
                f"{age:.0f} s ago; at most {timeout - age:.0f} s more)...",
                file=sys.stderr,
                flush=True,
            )
            said = True
        time.sleep(poll)
        path = path if path.exists() else None
    return True


LOCKED = (
    "not committed yet: git's index.lock exists (a git process at work, such as the commit of the process that "
    "was stopped with its hooks still running, or one that crashed left it). `meta-experiment recover` makes the "
    "commit, or takes the one that git made, once the lock is gone; remove the lock only if no git process runs"
)


def _repository_blocker(project_root: Path) -> str | None:
    """Why no commit should be made in this repository now (inside one, git installed): a rebase,
    merge, cherry-pick or revert in progress, or a detached HEAD; else None."""
    for marker, what in IN_PROGRESS.items():
        path = _git(project_root, "rev-parse", "--git-path", marker).stdout.strip()
        if path and (project_root / path).exists():
            return f"{what} is in progress in this repository; finish or abort it first"
    has_head = _git(project_root, "rev-parse", "--verify", "-q", "HEAD").returncode == 0
    if has_head and _git(project_root, "symbolic-ref", "-q", "HEAD").returncode != 0:
        return (
            "HEAD is detached (no branch is checked out), so the commit would belong to no branch; "
            "check out a branch first"
        )
    return None


def _blob_id(project_root: Path, rel_path: str, content: bytes) -> str | None:
    """The blob id git would store `content` as at `rel_path` (--path: its clean filters and
    line-end normalisation applied), or None when git cannot say."""
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    try:
        blob = subprocess.run(
            ["git", "hash-object", "--stdin", "--path", rel_path], cwd=project_root, input=content,
            capture_output=True, timeout=30, env=env, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return blob.stdout.decode().strip() if blob.returncode == 0 else None


def committed_since(project_root: Path, rel_path: str, content: bytes, since: float) -> bool:
    """Whether a commit made since `since` (a time) gave `rel_path` exactly `content`: a commit the
    person made by hand after ours failed, even when later commits changed the file again."""
    wanted = _blob_id(project_root, rel_path, content)
    if wanted is None:
        return False
    try:
        log = _git(  # showRoot: a first commit's files are listed too, whatever the person's config
            project_root, "-c", "log.showRoot=true", "log", f"--since=@{int(since) - 1}", "--no-abbrev", "--raw",
            "--format=", "--", rel_path,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False
    # --raw: ":100644 100644 <old blob> <new blob> M<TAB>path" for each commit that changed the file
    return any(
        len(f := line.split()) > 3 and f[3] == wanted for line in log.stdout.splitlines() if line.startswith(":")
    )


def committed_as(project_root: Path, commit: str, rel_path: str, content: bytes) -> bool:
    """Whether `commit` holds `rel_path` with `content` (hashed as git stores it, as in
    `committed_since`): a promotion whose commit hook rewrote the file (a formatter) committed
    the hook's version, which is then what the promotion put in production."""
    wanted = _blob_id(project_root, rel_path, content)
    try:
        held = _git(project_root, "rev-parse", "-q", "--verify", f"{commit}:./{rel_path}", literal=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return wanted is not None and held.returncode == 0 and wanted == held.stdout.strip()


def _staged(project_root: Path, rel_path: str) -> bytes | None:
    """The bytes git's index holds for `rel_path` (relative to `project_root`), None if none."""
    out = subprocess.run(
        ["git", "show", f":./{rel_path}"],
        cwd=project_root,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
        env=dict(os.environ, GIT_TERMINAL_PROMPT="0"),
        check=False,
    )
    return out.stdout if out.returncode == 0 else None


def head_bytes(project_root: Path, rel_path: str) -> bytes | None:
    """The bytes HEAD holds for `rel_path` (relative to `project_root`); None when it holds none, or
    outside a repository (or without git)."""
    if shutil.which("git") is None:
        return None
    try:
        out = subprocess.run(
            ["git", "show", f"HEAD:./{rel_path}"],
            cwd=project_root,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=30,
            env=dict(os.environ, GIT_TERMINAL_PROMPT="0"),
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def commit_paths(
    project_root: Path, rel_paths: Sequence[str], message: str, written: Mapping[str, bytes] | None = None
) -> GitOutcome:
    """Commit exactly `rel_paths` (the person's other staged changes stay staged). `written`: the
    content the caller wrote to them, which the commit is checked to hold (GitOutcome.not_as_written)."""
    if shutil.which("git") is None:
        return GitOutcome(status="git_not_installed", detail="git not installed: the change was not committed")
    try:
        return _commit(project_root, list(rel_paths), message, written or {})
    except subprocess.TimeoutExpired as exc:  # a hook that hangs, say (_commit_tracked unstages what it added)
        reason = f"git did not finish within {exc.timeout:.0f} s"
        lock = _git(project_root, "rev-parse", "--git-path", "index.lock").stdout.strip()
        if lock and (project_root / lock).exists():  # git was stopped: nobody else will remove it
            reason += f"; it left {lock} behind, which has to be removed once its hook has stopped"
        return not_committed(reason, rel_paths, message, project_root)
    except OSError as exc:
        return GitOutcome(status="failed", detail=f"commit failed: cannot run git ({exc})")


def _commit(project_root: Path, rel_paths: list[str], message: str, written: Mapping[str, bytes]) -> GitOutcome:
    inside = _git(project_root, "rev-parse", "--is-inside-work-tree")
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return GitOutcome(status="not_a_repository", detail="not a git repository: the change was not committed")
    # a file kept out of git on purpose (CLAUDE.local.md) is not committed, nor named in a command to run
    ignored_paths = [p for p in rel_paths if ignored(project_root, p)]
    untracked = [
        p
        for p in rel_paths
        if p not in ignored_paths and _git(project_root, "ls-files", "--error-unmatch", "--", p).returncode != 0
    ]
    note = (
        f"{', '.join(ignored_paths)} {'is' if len(ignored_paths) == 1 else 'are'} ignored by git (.gitignore): "
        "not committed"
        if ignored_paths
        else ""
    )
    if ignored_paths and len(ignored_paths) == len(rel_paths):
        return GitOutcome(status="not_needed", detail=note)
    paths = [p for p in rel_paths if p not in ignored_paths]
    outcome = _commit_kept(project_root, paths, untracked, message, written)
    return outcome if not note else outcome.model_copy(update={"detail": f"{outcome.detail}; {note}"})


def _commit_kept(
    project_root: Path, rel_paths: list[str], untracked: list[str], message: str, written: Mapping[str, bytes]
) -> GitOutcome:
    """Commit `rel_paths` (none ignored), adding the `untracked` among them first."""
    blocked = _repository_blocker(project_root)  # checked before the files were written; checked again
    if blocked:  # for a recovery, which comes later (after a checkout, say)
        return not_committed(blocked, rel_paths, message, project_root)
    has_head = _git(project_root, "rev-parse", "--verify", "-q", "HEAD").returncode == 0
    added: list[str] = []
    for rel in untracked:
        result = _retried(project_root, "add", "--", rel)
        if result.returncode != 0:
            _unstage(project_root, added, has_head)
            return not_committed(f"git add {rel}: {_first_lines(result.stderr)}", rel_paths, message, project_root)
        added.append(rel)
    if added:
        checkpoint("git_added")
    return _commit_tracked(project_root, rel_paths, message, added, has_head, written)


def _commit_tracked(
    project_root: Path,
    rel_paths: list[str],
    message: str,
    added: list[str],
    has_head: bool,
    written: Mapping[str, bytes] | None = None,
) -> GitOutcome:
    """Commit `rel_paths`, which git tracks now (`added`: those this call just added)."""
    if has_head and not added and _git(project_root, "diff", "--quiet", "HEAD", "--", *rel_paths).returncode == 0:
        return GitOutcome(status="nothing_to_commit", detail="nothing to commit: git already has this content")
    try:
        result = _retried(
            project_root,
            *identity_args(project_root),
            "commit",
            "-q",
            "--only",
            "-m",
            message,
            "--",
            *rel_paths,
            timeout=GIT_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        _unstage(project_root, added, has_head)  # (refused while git's index.lock is left: it is named)
        raise
    if result.returncode != 0:
        _unstage(project_root, added, has_head)
        said = (result.stderr + result.stdout).strip()
        why = (
            _first_lines(said)
            if said
            else f"git commit exited with status {result.returncode} and printed nothing (a commit hook that refused "
            "it without a word? Run the commit below to see)"
        )
        refused = not_committed(why, rel_paths, message, project_root)
        refused._hook_output = result.stderr + result.stdout
        return refused
    sha = _git(project_root, "rev-parse", "HEAD").stdout.strip()
    detail = f"committed {sha[:12]}"
    listed = _git(project_root, "show", "--name-only", "--format=", "-z", sha).stdout.split("\0")
    prefix = _prefix(project_root)  # git lists paths from the repository's top
    extra = sorted({p for p in listed if p} - {prefix + p for p in rel_paths})
    if extra:  # a commit hook staged more than the experiment's files
        detail += f"; note: a commit hook added {', '.join(extra[:5])} to this commit as well"
    # A commit hook that rewrites a file (a formatter under lint-staged: its `git add` goes into the
    # commit) leaves git's own index holding the content from before the hook, staged against the
    # commit: the person's next commit would undo the hook's change. Nothing of these paths was
    # staged before (blockers), so their index entries go back to the commit's.
    rewritten = [p for p in rel_paths if _git(project_root, "diff", "--cached", "--quiet", "--", p).returncode == 1]
    if rewritten:
        _git(project_root, "reset", "-q", "--", *rewritten)
        detail += (
            f"; note: a commit hook changed {', '.join(rewritten[:5])} as it committed: the commit holds the hook's "
            "version, not byte for byte the one tested"
        )
    # `git commit --only` takes the files as they are on disk when it runs: a save between the write
    # and the commit (an editor) went into the commit, and a rollback took it for a hook's version
    # and replaced it (from a review). The commit is checked against what was written.
    drifted = [
        p
        for p, content in (written or {}).items()
        if p in rel_paths and p not in rewritten and _holds(project_root, sha, p, content) is False
    ]
    if drifted:
        detail += (
            f"; note: {', '.join(drifted[:5])} changed on disk between the write and the commit (an editor saving "
            "it?): the commit holds that version, not the one written; look at it (git show HEAD)"
        )
    return GitOutcome(status="committed", commit=sha, detail=detail, not_as_written=drifted)


def _holds(project_root: Path, commit: str, rel_path: str, content: bytes) -> bool | None:
    """Whether `commit` holds `rel_path` as `content` (as git stores it); None when git cannot say."""
    wanted = _blob_id(project_root, rel_path, content)
    if wanted is None:
        return None
    held = _git(project_root, "rev-parse", "-q", "--verify", f"{commit}:./{rel_path}", literal=False)
    return held.returncode == 0 and held.stdout.strip() == wanted


BRIEF_LOCK_SECONDS = 5.0  # how long a live commit waits for another git's fresh index.lock


def _retried(project_root: Path, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """`_git`, tried again while another git's index.lock refuses it and that lock is fresh (an
    editor's `git status` holds it for milliseconds): a promote had failed on it, with git's advice
    to remove a lock that a running git holds (from a review). An older lock is not waited for."""
    for _ in range(3):
        result = _git(project_root, *args, timeout=timeout)
        refused = result.returncode != 0 and "index.lock" in result.stderr and "exists" in result.stderr
        if not refused or not wait_for_other_git(project_root, timeout=BRIEF_LOCK_SECONDS):
            break
    return result


def _unstage(project_root: Path, added: list[str], has_head: bool) -> None:
    """Undo our own `git add` of untracked paths after a failed commit (the index is the person's)."""
    if not added:
        return
    if has_head:
        _git(project_root, "reset", "-q", "--", *added)
    else:
        _git(project_root, "rm", "-q", "--cached", "--", *added)
