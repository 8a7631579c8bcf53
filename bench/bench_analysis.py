"""Cost of the decision-relevant analysis at 1,000,000 trials per arm.

    PYTHONPATH=server python bench/bench_analysis.py [--n 1000000] [--repeat 20]

Baseline: numpy computing both arms' means and variances from arrays already in memory (what any
analysis must at least do if it started from raw values). Measured: `stats.analyze` from the
store's sufficient statistics (Welch, Student, intervals, effect sizes, the sequential test, SRM,
power, guardrails and the decision) - it never touches the raw values. Reported separately: the
rank-based tests (Mann-Whitney via scipy, Hodges-Lehmann with its interval), which need raw values
and are kept off the hot path of `record` and auto mode."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from meta_experiment.models import MetricSpec, Targets
from meta_experiment.stats import rank, sequential
from meta_experiment.stats.analysis import AnalysisInputs, analyze
from meta_experiment.stats.summary import Summary


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    control = rng.lognormal(3.8, 0.8, args.n)
    treatment = rng.lognormal(3.75, 0.8, args.n)
    guard_c, guard_t = rng.normal(10, 2, args.n), rng.normal(10, 2, args.n)

    def numpy_baseline() -> None:
        for x in (control, treatment, guard_c, guard_t):
            x.mean()
            x.var(ddof=1)

    def summary(x: np.ndarray) -> Summary:
        return Summary(x.size, float(x.mean()), float(x.var(ddof=1)), float(x.min()), float(x.max()))

    primary = MetricSpec(name="time", direction="lower_is_better", unit="min")
    guard = MetricSpec(name="issues_caught", direction="higher_is_better")
    summaries = {
        ("control", "time"): summary(control),
        ("treatment", "time"): summary(treatment),
        ("control", "issues_caught"): summary(guard_c),
        ("treatment", "issues_caught"): summary(guard_t),
    }
    counts = {"control": args.n, "treatment": args.n}
    inputs = AnalysisInputs(
        primary=primary,
        targets=Targets(),
        summaries=summaries,
        assigned=counts,
        recorded=counts,
        sample_size_required=100,
        now=1e9 + 86400,
        started_at=1e9,
        max_duration_days=14,
        secondary=(guard,),
        successes={"control": args.n - 5, "treatment": args.n - 7},
    )
    analyze(inputs)  # warm the per-alpha threshold caches, as a running server has them

    def fresh_look() -> None:
        sequential.z_boundary.cache_clear()  # every new trial is a new information fraction
        analyze(inputs)

    t_numpy = best(numpy_baseline, args.repeat)
    t_analysis = best(fresh_look, args.repeat)
    t_mw = best(lambda: rank.mann_whitney(control, treatment), 2)
    t_hl = best(lambda: rank.hodges_lehmann(control, treatment), 1)
    print(f"{args.n:,} trials per arm, primary + 1 guardrail + success rate; best of {args.repeat}\n")
    print("| what | time | ratio to numpy baseline |")
    print("|---|---|---|")
    print(f"| numpy: means and variances of 4 in-memory arrays (baseline) | {t_numpy * 1e3:.2f} ms | 1.00 |")
    print(
        f"| stats.analyze from sufficient statistics (decision-relevant) | {t_analysis * 1e3:.2f} ms "
        f"| {t_analysis / t_numpy:.2f} |"
    )
    print(f"| Mann-Whitney U (scipy, raw values; off the hot path) | {t_mw * 1e3:.0f} ms | {t_mw / t_numpy:.0f} |")
    print(
        f"| Hodges-Lehmann shift + 95% CI (raw values; off the hot path) | {t_hl * 1e3:.0f} ms | {t_hl / t_numpy:.0f} |"
    )


if __name__ == "__main__":
    main()
