"""The `design_experiment` prompt: how to frame a good experiment before calling create_experiment
(after the seed's "DO / DON'T experiment", "good hypothesis", sample size and significance notes)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from .errors import PathError
from .lifecycle import Lab
from .mcp_common import state_of
from .paths import confine

MAX_LISTED_FILES = 20_000  # a walk of a project without git stops there (completion offers 100 at a time)
SKIPPED_DIRS = frozenset({".git", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".mypy_cache"})

GUIDE = """\
You are designing a controlled experiment on a change to a file in this project{target}.
{goal_line}
Work through these steps, then call `create_experiment`.

1. Decide whether to experiment at all.
   DO experiment when: the change is reversible and confined to a few files (a command's prompt, an
   agent file, a config); its effect is uncertain and measurable per run; the file runs often
   enough to collect trials within the duration (a few a day at least).
   DON'T experiment when: the change is a bug fix or a security fix (just ship it); it is a one-off
   or runs too rarely to ever reach the sample size; its outcome is not measurable per run; or it
   changes several things at once (split it, or you will not know which part mattered).

2. Write a falsifiable hypothesis with a number in it.
   Good: "Running security-analyst and code-cleanup in parallel cuts /review_pr time by 15 minutes
   (about 30%) without catching fewer issues."
   Poor: "The new prompt is better." (better how? by how much? at what cost?)

3. Choose one primary metric that decides, and guardrails that must not get worse.
   - Primary: what the change is meant to improve. Give its direction (lower_is_better for time,
     cost, errors; higher_is_better for issues caught, satisfaction) and kind (continuous, or binary
     for pass/fail). A duration with a unit ("s", "min") is measured from assign automatically.
     Durations of agent runs are heavy-tailed: set log_scale=true for them.
   - Secondary (guardrails): what could regress (false positives, tokens, failures), each with its
     own direction and, if it differs from the experiment's, its own max_regression.

4. Set the thresholds honestly, before seeing data.
   - improvement_threshold: the smallest gain worth shipping (e.g. 15%).
   - max_regression: the largest loss you would tolerate on any metric (e.g. 10%).
   - confidence_threshold: how sure a decision must be. Decisions never use less than 95% confidence
     (alpha = min(0.05, 1 - confidence_threshold)), so the default 0.80 and 0.95 decide alike; only a
     higher value is stricter: 0.99 for risky changes (it takes more trials to decide).
   - sample_size_required: recorded trials across both arms before any decision. It also sets the
     plan: the test expects to decide between this many and 7x this many trials, and spends most
     of its error budget there. Small effects need many trials: detecting a 15% change in a metric
     whose runs vary by ±50% takes roughly 100+ trials per arm; a 40% change, about 20 per arm.
     10 is a floor, not a target; when the window is too short for the target effect, analyze's
     power section names the sample_size_required that fits it.
   - treatment_percent: the share of runs that try the change (50 by default). Lower it (20, 10)
     when a bad variant would be costly: fewer runs are exposed, but the same evidence takes more
     runs (about 1.6x at 20%, 2.8x at 10%), and no decision comes before each arm has 5 results.

5. Avoid false positives.
   - Do not stop as soon as the numbers look good ("peeking"): the analysis uses an always-valid
     test so that looking after every trial is safe; do not override it by promoting by hand.
   - Keep everything else equal between arms: same kind of tasks, interleaved in time (assign does
     this for you), no hand-picking which runs to record. Record failures too (success=false).
   - A result recorded wrongly (a typo, a unit mix-up, recorded before the run finished) is
     corrected with `void_trial` and a reason. Never void a run because its numbers look bad:
     that is hand-picking, and the analysis and the promote commit say how many were voided.
   - One change per experiment; one experiment per file at a time.

6. Create the experiment: put the changed text in its own variant file (e.g. `review_pr.md.experiment`)
   and pass {{production path: variant path}} as `files`. Then, for each run: `assign`, run with the
   returned text, `record` the metrics. Check `status` and `analyze` as data comes in.
"""


def register_prompts(server: MCPServer) -> None:
    @server.prompt(
        name="design_experiment",
        title="Design an experiment",
        description="Guidance for a good hypothesis, metric choice, thresholds, and when not to experiment.",
    )
    def design_experiment(
        target: Annotated[
            str, Field(description="The file you want to change, e.g. .claude/commands/review_pr.md.")
        ] = "",
        goal: Annotated[str, Field(description="What the change should improve, in your words.")] = "",
        ctx: Context | None = None,
    ) -> str:
        warning = ""
        opened = None if ctx is None else state_of(ctx).opened  # a damaged store: no check, no false note
        if target and isinstance(opened, Lab):
            try:  # the production file must exist for create_experiment: say so now, not at the end
                confine(opened.project_root, target, what="target")
            except PathError as exc:
                warning = f"Note: {exc} create_experiment needs the production file to exist.\n"
        return GUIDE.format(
            target=f" ({target})" if target else "",
            goal_line=warning + (f"The goal, as stated: {goal}\n" if goal else ""),
        )


def project_files(project_root: Path, state_dir: Path) -> list[str]:
    """The project's files, relative to its root, for completing the prompt's `target`: git's
    tracked and untracked-but-not-ignored files (a variant is often not committed yet), else a walk
    that skips .git, the state folder and tool caches."""
    try:
        out = subprocess.run(
            ["git", "-C", str(project_root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        out = None
    if out is not None and out.returncode == 0:
        names = sorted({name for name in out.stdout.decode("utf-8", "replace").split("\0") if name})
        return [name for name in names if not _inside(project_root / name, state_dir)]
    files: list[str] = []
    for folder, dirs, names in os.walk(project_root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not _inside(here / d, state_dir))
        files += ((here / name).relative_to(project_root).as_posix() for name in names)
        if len(files) >= MAX_LISTED_FILES:
            break
    return sorted(files[:MAX_LISTED_FILES])


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents
