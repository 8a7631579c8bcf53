"""Crash bench: kill promote/rollback with SIGKILL, restart, check that no file was lost.

    python bench/crash_bench.py [--runs 200] [--random 100] [--seed 7]

`--runs` runs cycle through every checkpoint case of tests/crash_harness.py (promote and rollback,
one and two files, a person's edit between crash and restart, restarts killed too). `--random`
more runs kill the process from outside after a random delay, which lands between checkpoints
(inside SQLite, inside git, between syscalls). Every run checks: right after the kill each
production file holds its old or its new bytes; after the restart no operation is unfinished and
the experiment's status agrees with every file. The table counts runs per case and what the
restart found. Exit status 1 if any invariant broke.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "server"), str(HERE.parent / "tests")]

from crash_harness import (  # noqa: E402
    GIT_IDENTITY,
    Zygote,
    at_crash,
    build_templates,
    cases,
    check_after_restart,
    run_case,
)
from release_helpers import record_trials  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--random", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="meta-experiment-crash-"))
    config = root / "gitconfig"
    config.write_text("[init]\n\tdefaultBranch = main\n")
    os.environ.update(GIT_IDENTITY, GIT_CONFIG_GLOBAL=str(config))
    for name in ("CLAUDE_PROJECT_DIR", "META_EXPERIMENT_HOME"):
        os.environ.pop(name, None)
    templates = build_templates(root / "templates", lambda lab, e: record_trials(lab, e))
    zygote = Zygote(dict(os.environ))
    rows: dict[str, Counter] = defaultdict(Counter)
    times: dict[str, list[float]] = defaultdict(list)
    failures: list[str] = []
    all_cases = cases()
    try:
        for i in range(args.runs):
            case = all_cases[i % len(all_cases)]
            key = f"{case.template:<16} {case.id.split(':', 1)[1]}"
            t0 = time.perf_counter()
            try:
                status = run_case(zygote, templates, case, root / f"run-{i}")
                rows[key][status] += 1
            except AssertionError as exc:
                rows[key]["FAILED"] += 1
                failures.append(f"{case.id}: {exc}")
            times[key].append(time.perf_counter() - t0)
            shutil.rmtree(root / f"run-{i}", ignore_errors=True)
        rng = random.Random(args.seed)
        for i in range(args.random):
            name = rng.choice(sorted(templates))
            template = templates[name]
            key = f"{name:<16} random kill"
            project = root / f"random-{i}" / "project"
            shutil.copytree(template.path, project, symlinks=True)
            op = "promote" if template.status == "running" else "rollback"
            # in the child, promote takes ~0.2 s and rollback ~0.1 s: most kills land inside them
            delay = rng.uniform(0.0, 0.2 if op == "promote" else 0.1)
            t0 = time.perf_counter()
            try:
                result = zygote.run(project, op, template.experiment_id, delay=delay)
                at_crash(project, template)
                time.sleep(0.05)  # let an orphaned git child (killed parent) finish with the index
                zygote.run(project, "recover", template.experiment_id)
                status = check_after_restart(project, template, git_strict=False)
                rows[key][status + (" (killed)" if result["killed"] else " (completed)")] += 1
            except AssertionError as exc:
                rows[key]["FAILED"] += 1
                failures.append(f"{key} delay {delay:.3f}: {exc}")
            times[key].append(time.perf_counter() - t0)
            shutil.rmtree(project.parent, ignore_errors=True)
    finally:
        zygote.close()
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'case':<70} {'runs':>4}  {'after restart':<40} {'median ms':>9}")
    for key in sorted(rows):
        outcome = ", ".join(f"{k} {v}" for k, v in sorted(rows[key].items()))
        runs = sum(rows[key].values())
        print(f"{key:<70} {runs:>4}  {outcome:<40} {statistics.median(times[key]) * 1000:>9.0f}")
    total = sum(sum(c.values()) for c in rows.values())
    print(f"\n{total} runs ({args.runs} at checkpoints, {args.random} random kills), {len(failures)} failed")
    for failure in failures:
        print("FAILED", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
