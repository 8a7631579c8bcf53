"""How soon the error-rate alert stops an always-failing treatment when trials come from sticky
units that repeat: each trial from a new unit with probability `--new` (else from an earlier one,
at random), every control run succeeds and every treatment run fails. Runs the real lifecycle (a
Lab on a throwaway git project: assign with the unit, record, monitoring after each trial) and
prints, over the simulated experiments, the shorter arm's units and trials when the alert fired.

    PYTHONPATH=server python bench/alert_detection_units.py [--runs 100] [--new 0.3] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import time

from _common import make_project
from meta_experiment.lifecycle import Lab

MAX_TRIALS = 1000


def one(rng: random.Random, new: float) -> tuple[int, int] | None:
    """(units, trials) of the shorter arm when the alert fired; None if it never did."""
    root = make_project()
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@bench.invalid"}
    env |= {"GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@bench.invalid"}
    subprocess.run(["git", "add", "cmd.md"], cwd=root, check=True, capture_output=True)
    subprocess.run(["git", "commit", "-qm", "start"], cwd=root, check=True, capture_output=True, env=env)
    lab = Lab.open(root, create=True)
    try:
        e = lab.create(
            name="always failing",
            hypothesis="h",
            files={"cmd.md": "cmd.md.experiment"},
            primary_metric={"name": "t", "direction": "lower_is_better", "unit": "s"},
            secondary_metrics=[],
            sample_size_required=10,
            auto_rollback=False,
        )
        units: list[str] = []
        for _ in range(MAX_TRIALS):
            if not units or rng.random() < new:
                units.append(f"u{len(units)}")
                unit = units[-1]
            else:
                unit = rng.choice(units)
            a = lab.assign(e.id, unit=unit)
            if lab.record(a.trial_id, {"t": 1.0}, success=a.arm == "control").alerts:
                done = [t for t in lab.trials(e.id) if t.status == "recorded"]
                arms = ("control", "treatment")
                seen = [len({t.unit for t in done if t.arm == arm}) for arm in arms]
                trials = [sum(t.arm == arm for t in done) for arm in arms]
                return min(seen), min(trials)
        return None
    finally:
        lab.close()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--new", type=float, default=0.3, help="probability that a trial comes from a new unit")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    started = time.monotonic()
    found = [one(rng, args.new) for _ in range(args.runs)]
    fired = [f for f in found if f is not None]
    units, trials = [u for u, _ in fired], [t for _, t in fired]
    print(f"Always-failing treatment, new unit with probability {args.new}; {args.runs} runs, seed {args.seed}.\n")
    print("| alert fired | shorter arm's units (median, 90th percentile, max) | its trials (median, 90th pct) |")
    print("|---|---|---|")
    q = statistics.quantiles
    print(
        f"| {len(fired)} of {args.runs} | {statistics.median(units):g}, {q(units, n=10)[-1]:g}, {max(units)} "
        f"| {statistics.median(trials):g}, {q(trials, n=10)[-1]:g} |"
    )
    print(f"\n{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
