"""What the plugin's prompt, stop and session-start hooks cost a person, against the bare start of the same Python
(`python3 -I -c pass`), measured in the same run with the runs alternating.

- any prompt that is not a dispatched command (plain text, or another slash command): the
  launcher's quick look with the standard library (`launch.py hook prompt`), which every prompt of
  every session pays;
- a dispatched command: the package's prompt hook (assign a trial, fill in the arm's text), what
  the launcher runs after its quick look, and the Stop hook that records the reply's time (and,
  once the experiment has its sample, analyses it and decides).

No target is set by an issue; the README quotes these figures.

    python bench/bench_hooks.py [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time

from _common import HERE, env_with_package, make_project, python, summary

LAUNCHER = HERE.parent / "plugin" / "scripts" / "launch.py"


def timed(command: list[str], stdin: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, input=stdin, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{command} failed: {done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    sys.path.insert(0, str(HERE.parent / "server"))
    from meta_experiment.dispatch_ops import set_dispatch
    from meta_experiment.lifecycle import Lab

    project = make_project()
    commands = project / ".claude" / "commands"
    commands.mkdir(parents=True)
    (commands / "other.md").write_text("Another command $ARGUMENTS.\n")
    lab = Lab.open(project, create=True)
    lab.clock = lambda: time.time() - 3600  # dispatched an hour ago: runs in the first seconds are not trials

    def dispatched(name: str, sample: int) -> str:
        (commands / f"{name}.md").write_text(f"{name} $ARGUMENTS carefully.\n")
        (commands / f"{name}.md.experiment").write_text(f"{name} $ARGUMENTS briefly.\n")
        experiment = lab.create(
            name=name,
            hypothesis="h",
            files={f".claude/commands/{name}.md": f".claude/commands/{name}.md.experiment"},
            primary_metric={"name": "t", "direction": "lower_is_better", "unit": "s"},
            sample_size_required=sample,
            max_duration_days=365,
        )
        set_dispatch(lab, experiment.id, True)
        return experiment.id

    dispatched("review", 10_000)  # far from its sample: a Stop records only
    decided = dispatched("fix", 10)  # with its sample (below): each Stop also analyses and decides
    for i in range(20):  # no difference: the policy keeps saying continue
        trial = lab.assign(decided)
        lab.record(trial.trial_id, {"t": 60.0 + (i * 7) % 11})
    lab.close()

    env = env_with_package(CLAUDE_PROJECT_DIR=str(project))
    hook = [python(), "-m", "meta_experiment", "hook"]
    cases = {
        "bare python3 -I -c pass (baseline)": ([python(), "-I", "-c", "pass"], ""),
        "launcher, plain prompt": ([python(), str(LAUNCHER), "hook", "prompt"], json.dumps({"prompt": "hello"})),
        "launcher, other command": (
            [python(), str(LAUNCHER), "hook", "prompt"],
            json.dumps({"prompt": "/other x", "session_id": "s"}),
        ),
        "launcher, session start, not an agent": (
            [python(), str(LAUNCHER), "hook", "session-start"],
            json.dumps({"session_id": "s", "source": "startup"}),
        ),
        "launcher, stop, no dispatched run": (
            [python(), str(LAUNCHER), "hook", "stop"],
            json.dumps({"session_id": "s"}),
        ),
        "package, dispatched prompt (assign)": (
            [*hook, "prompt"],
            json.dumps({"prompt": "/review 1", "session_id": "b"}),
        ),
        "package, stop (record)": ([*hook, "stop"], json.dumps({"session_id": "b"})),
        "package, prompt of a decided command": (
            [*hook, "prompt"],
            json.dumps({"prompt": "/fix 1", "session_id": "c"}),
        ),
        "package, stop (record, analyse, decide)": ([*hook, "stop"], json.dumps({"session_id": "c"})),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for _ in range(args.runs):
            for name, (command, stdin) in cases.items():  # in turns: a dispatched prompt, then its stop
                samples[name].append(timed(command, stdin, env))
    finally:
        shutil.rmtree(project, ignore_errors=True)

    base = statistics.median(samples["bare python3 -I -c pass (baseline)"])
    for name, values in samples.items():
        print(f"{name:<40} {summary(values)}  {statistics.median(values) / base:5.2f}x baseline")


if __name__ == "__main__":
    main()
