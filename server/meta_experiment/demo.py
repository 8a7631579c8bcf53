"""`meta-experiment demo`: a whole experiment, end to end, through a real MCP client talking to
this server as a stdio subprocess (the way Claude Code runs it), in a throwaway git repository.

The runs are simulated: control durations are lognormal around 45 minutes, the variant's around
27 (a real 40% improvement), so the analysis has something true to find."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

COMMAND = """\
---
description: Review a pull request
---
Review the pull request $ARGUMENTS. Run the security analyst, then the code-cleanup agent, then
summarise their findings.
"""

VARIANT = """\
---
description: Review a pull request
---
Review the pull request $ARGUMENTS. Run the security analyst and the code-cleanup agent in
parallel, then summarise their findings.
"""


# The throwaway repository must not depend on the person's own git settings: a global
# commit.gpgsign (a signing key that is missing or asks for a passphrase) or core.hooksPath (a
# lint hook) would fail or stop the demo's first commit. Command-line settings override them all;
# a hooks path that is not a folder (the null device) holds no hooks.
ISOLATED = [
    *("-c", "user.name=demo", "-c", "user.email=demo@example.invalid"),
    *("-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", "-c", f"core.hooksPath={os.devnull}"),
]


class RepositoryError(Exception):
    """git could not make the demo's repository: its message, on one line."""


def _git(repo: Path, *args: str) -> None:
    result = subprocess.run(
        ["git", *ISOLATED, *args],
        cwd=repo,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=dict(os.environ, GIT_TERMINAL_PROMPT="0"),
        check=False,
    )
    if result.returncode != 0:
        said = " / ".join(line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip())
        raise RepositoryError(f"git {args[0]} failed: {said or f'exit status {result.returncode}'}")


def make_repo(root: Path) -> Path:
    repo = root / "project"
    commands = repo / ".claude" / "commands"
    commands.mkdir(parents=True)
    (commands / "review_pr.md").write_text(COMMAND, encoding="utf-8")
    (commands / "review_pr.md.experiment").write_text(VARIANT, encoding="utf-8")
    if shutil.which("git"):
        _git(repo, "init", "-q")
        _git(repo, "add", "--", ".claude/commands/review_pr.md")
        _git(repo, "commit", "-q", "-m", "Add /review_pr")
    return repo


def server_parameters(repo: Path) -> Any:
    from mcp import StdioServerParameters

    env = {"CLAUDE_PROJECT_DIR": str(repo)}
    if os.environ.get("PYTHONPATH"):  # absolute: the server runs in the demo repository
        env["PYTHONPATH"] = os.pathsep.join(
            str(Path(p).resolve()) for p in os.environ["PYTHONPATH"].split(os.pathsep) if p
        )
    return StdioServerParameters(
        command=sys.executable, args=["-m", "meta_experiment", "serve"], env=env, cwd=str(repo)
    )


def _text(result: Any) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "type", "") == "text")


def _check(result: Any, what: str) -> dict[str, Any]:
    if result.is_error:
        raise RuntimeError(f"{what} failed: {result.content[0].text}")
    return result.structured_content


async def drive(repo: Path, trials: int, seed: int) -> tuple[str, str, dict[str, Any]]:
    from mcp import Client

    rng = random.Random(seed)
    async with Client(server_parameters(repo), mode="legacy") as client:
        created = _check(
            await client.call_tool(
                "create_experiment",
                {
                    "name": "Parallel PR review",
                    "hypothesis": "Running security-analyst and code-cleanup in parallel saves 15 min per PR",
                    "description": "Modified /review_pr to invoke both agents in parallel",
                    "files": {".claude/commands/review_pr.md": ".claude/commands/review_pr.md.experiment"},
                    "primary_metric": {
                        "name": "time_to_complete_review",
                        "direction": "lower_is_better",
                        "unit": "min",
                        "log_scale": True,
                    },
                    "secondary_metrics": [{"name": "issues_caught", "direction": "higher_is_better"}],
                    "sample_size_required": trials,
                },
            ),
            "create_experiment",
        )
        experiment_id = created["id"]
        print(f"Created {experiment_id}; running {trials} simulated reviews over MCP...", file=sys.stderr)
        for _ in range(trials):
            assignment = _check(await client.call_tool("assign", {"experiment_id": experiment_id}), "assign")
            median = 45.0 if assignment["arm"] == "control" else 27.0
            minutes = median * rng.lognormvariate(0.0, 0.25)
            issues = float(rng.choice([2, 3, 3, 4, 4, 5]))
            _check(
                await client.call_tool(
                    "record",
                    {
                        "trial_id": assignment["trial_id"],
                        "metrics": {"time_to_complete_review": round(minutes, 2), "issues_caught": issues},
                    },
                ),
                "record",
            )
        status = await client.call_tool("status", {})
        analysis = await client.call_tool("analyze", {"experiment_id": experiment_id})
        _check(analysis, "analyze")
        return _text(status), _text(analysis), analysis.structured_content


def _plain(exc: BaseException) -> str:
    """The innermost message of an exception group (task groups wrap the real error)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


def run_demo(trials: int = 40, seed: int = 7, keep: bool = False) -> int:
    import anyio

    if trials < 4:
        print("meta-experiment: the demo needs at least 4 trials (--trials 4 or more).", file=sys.stderr)
        return 2
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="meta-experiment-demo-"))
    try:
        try:
            repo = make_repo(tmp)
        except (RepositoryError, OSError) as exc:  # a git setting of the person's, a full disk: one line
            print(f"meta-experiment: the demo could not make its throwaway git repository: {exc}", file=sys.stderr)
            return 1
        try:
            status, analysis, _ = anyio.run(drive, repo, trials, seed)
        except Exception as exc:  # a server that would not start or answer: say so, no traceback
            print(f"meta-experiment: the demo failed: {_plain(exc)}", file=sys.stderr)
            print("The server's own messages, if any, are above.", file=sys.stderr)
            return 1
        print(status)
        print(analysis)
        print(f"Demo finished in {time.perf_counter() - started:.1f} s.", file=sys.stderr)
        if keep:
            print(f"Kept the demo repository at {repo}", file=sys.stderr)
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0
