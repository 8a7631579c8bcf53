"""Reading the trials resource of a large experiment: the newest page and numbered pages.

The experiment's trials (recorded, two metrics, a unit on every fifth) are written straight into a
real store; each read is what `experiment://ID/trials` and `experiment://ID/trials/N` answer,
in-process (no client). Baseline, measured in the same run: the newest page (it reads only the
newest trials). A numbered page should cost about as much wherever it is: the first page of a large
experiment once read every trial to find its boundaries.

    python bench/bench_trials_pages.py [--trials 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time

from _common import make_project


def populate(trials: int):  # type: ignore[no-untyped-def]
    from meta_experiment.lifecycle import Lab

    project = make_project()
    lab = Lab.open(project)
    e = lab.create(
        name="pages",
        hypothesis="pages",
        files={"cmd.md": "cmd.md.experiment"},
        primary_metric={"name": "time_to_complete", "direction": "lower_is_better", "unit": "s"},
        secondary_metrics=[{"name": "issues_caught", "direction": "higher_is_better"}],
        auto_rollback=False,
    )
    with lab.store.transaction() as db:
        start = time.time()
        for i in range(trials):
            cursor = db.execute(
                "INSERT INTO trials (experiment_id, arm, unit, status, source, assigned_at, recorded_at, success)"
                " VALUES (?, ?, ?, 'recorded', 'assign', ?, ?, 1)",
                (e.id, ("control", "treatment")[i % 2], f"pr-{i}" if i % 5 == 0 else None, start + i, start + i + 60),
            )
            db.executemany(
                "INSERT INTO metric_values (trial_id, metric, value) VALUES (?, ?, ?)",
                [(cursor.lastrowid, "time_to_complete", 30.0 + i % 17), (cursor.lastrowid, "issues_caught", i % 4)],
            )
    return project, lab, e.id


def timed(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from meta_experiment.mcp_resources import trials_page, trials_per_page

    project, lab, experiment_id = populate(args.trials)
    try:
        per_page = trials_per_page(lab, experiment_id)
        last = -(-args.trials // per_page)
        newest = timed(lambda: trials_page(lab, experiment_id, None), args.repeat)
        print(f"trials resource reads, {args.trials:,} trials ({per_page:,} a page, {last} pages)", end="")
        print(f", median of {args.repeat}")
        print(f"  newest page (baseline) : {newest * 1000:8.1f} ms")
        for page in sorted({1, (last + 1) // 2, last}):
            t = timed(lambda page=page: trials_page(lab, experiment_id, page), args.repeat)
            print(f"  page {page:<5}             : {t * 1000:8.1f} ms   ratio {t / newest:.2f}")
    finally:
        lab.close()
        shutil.rmtree(project, ignore_errors=True)


if __name__ == "__main__":
    main()
