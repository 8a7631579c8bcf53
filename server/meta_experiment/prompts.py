"""The `design_experiment` prompt: how to frame a good experiment before calling create_experiment
(after the seed's "DO / DON'T experiment", "good hypothesis", sample size and significance notes)."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import Field

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
   - confidence_threshold: how sure the decision must be (0.80 default; 0.95 for risky changes).
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
    ) -> str:
        return GUIDE.format(
            target=f" ({target})" if target else "",
            goal_line=f"The goal, as stated: {goal}\n" if goal else "",
        )
