"""Validate the monitoring alerts that stop an auto_rollback experiment: how often they fire on
experiments without the problem (checked after every trial), and how fast they fire with it.

    PYTHONPATH=server python bench/validate_alerts.py [--sims 2000] [--seed 20261126]

Error rate: both arms fail with the same probability (no problem), trials assigned in permuted
blocks of two, the alert checked after every trial up to 7x the required size (as long as auto
mode plans for; the e-process's guarantee has no end). "Fisher 0.05" is the rule before: a
one-sided Fisher exact p <= 0.05 at each check (same ratio and sample guards). Floor: the
treatment's mean sits exactly at the floor (the worst case of "not below it"). The detection table
gives the trials per arm at which the alert fires when the expected counts arrive.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from meta_experiment import monitoring
from meta_experiment.settings import MonitoringSettings
from meta_experiment.stats.binary import wilson
from meta_experiment.store import RunningStats

SETTINGS = MonitoringSettings()
REQUIRED = (10, 20, 100)
FAILURE_RATES = (0.02, 0.05, 0.1, 0.2, 0.5)
HORIZON = 7


def fmt(count: int, sims: int) -> str:
    lo, hi = wilson(count, sims)
    return f"{count / sims:.2%} [{lo:.2%}, {hi:.2%}]"


def _fisher_rule(c_n: int, c_f: int, t_n: int, t_f: int) -> bool:
    s = SETTINGS
    if c_n < s.min_trials_per_arm or t_n < s.min_trials_per_arm or t_f < s.min_failures:
        return False
    if t_f / t_n < s.error_rate_ratio * c_f / c_n:
        return False
    return stats.fisher_exact([[t_f, t_n - t_f], [c_f, c_n - c_f]], alternative="greater").pvalue <= 0.05


def _alert_rule(c_n: int, c_f: int, t_n: int, t_f: int) -> bool:
    counts = {
        "control": {"recorded": c_n, "successes": c_n - c_f},
        "treatment": {"recorded": t_n, "successes": t_n - t_f},
    }
    return monitoring.error_rate_finding(counts, SETTINGS) is not None


def error_rate(q: float, n_required: int, sims: int, rng: np.random.Generator) -> tuple[int, int]:
    """(experiments the new rule alerted on, the Fisher rule alerted on) among `sims` A/A runs."""
    n = HORIZON * n_required
    cache: dict[tuple[int, ...], tuple[bool, bool]] = {}
    new = old = 0
    for _ in range(sims):
        first = rng.integers(0, 2, size=(n + 1) // 2)
        arm = np.empty(2 * first.size, dtype=np.int8)
        arm[0::2], arm[1::2] = first, 1 - first
        fails = rng.random(n) < q
        c_n = c_f = t_n = t_f = 0
        hit_new = hit_old = False
        for a, f in zip(arm[:n], fails, strict=True):
            if a:
                t_n, t_f = t_n + 1, t_f + int(f)
            else:
                c_n, c_f = c_n + 1, c_f + int(f)
            key = (c_n, c_f, t_n, t_f)
            if key not in cache:
                cache[key] = (_alert_rule(*key), _fisher_rule(*key))
            got_new, got_old = cache[key]
            hit_new, hit_old = hit_new or got_new, hit_old or got_old
            if hit_new and hit_old:
                break
        new, old = new + hit_new, old + hit_old
    return new, old


def floor(binary: bool, n_required: int, sims: int, rng: np.random.Generator) -> int:
    """Experiments whose floor alert fired, with the treatment's mean exactly at the floor 0.5."""
    n = HORIZON * n_required // 2  # the treatment's trials
    hits = 0
    for _ in range(sims):
        values = (rng.random(n) < 0.5).astype(float) if binary else rng.normal(0.5, 0.2, n)
        running = RunningStats(0, 0.0, 0.0, 0.0, 0.0, 0.0)
        for v in values:
            running = running.add(float(v))
            if monitoring.floor_finding("satisfaction", binary, running, 0.5, SETTINGS) is not None:
                hits += 1
                break
    return hits


def detection(q_control: float, q_treatment: float) -> int | None:
    """Trials per arm at which the alert fires when each arm's failures arrive at their rates."""
    for k in range(SETTINGS.min_trials_per_arm, 5000):
        if _alert_rule(k, round(q_control * k), k, round(q_treatment * k)):
            return k
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=20261126)
    args = parser.parse_args()
    started = time.perf_counter()
    print(
        f"Error-rate alert on A/A experiments ({args.sims} per cell, seed {args.seed}; alert at >= "
        f"{SETTINGS.error_rate_ratio:g}x, >= {SETTINGS.min_trials_per_arm} trials per arm, >= "
        f"{SETTINGS.min_failures} failures; always-valid at {monitoring.ALERT_ALPHA:g}).\n"
    )
    print("| failure rate | required | trials | alert fired (always-valid) | before (Fisher 0.05 each trial) |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for q in FAILURE_RATES:
        for n_required in REQUIRED:
            rng = np.random.default_rng([args.seed, int(q * 1000), n_required])
            new, old = error_rate(q, n_required, args.sims, rng)
            worst = max(worst, new / args.sims)
            row = f"| {q:.0%} | {n_required} | {HORIZON * n_required} | {fmt(new, args.sims)} | {fmt(old, args.sims)} |"
            print(row, flush=True)
    print("\nFloor alert with the treatment's mean exactly at the floor 0.5 (normal: sd 0.2).\n")
    print("| metric | required | treatment trials | alert fired |")
    print("|---|---|---|---|")
    for binary in (False, True):
        for n_required in REQUIRED:
            rng = np.random.default_rng([args.seed, int(binary), n_required, 7])
            hits = floor(binary, n_required, args.sims, rng)
            worst = max(worst, hits / args.sims)
            kind = "yes/no" if binary else "normal"
            print(f"| {kind} | {n_required} | {HORIZON * n_required // 2} | {fmt(hits, args.sims)} |", flush=True)
    print("\nDetection: trials per arm until the error-rate alert fires (the expected counts each trial).\n")
    print("| control failure rate | treatment failure rate | trials per arm |")
    print("|---|---|---|")
    for q_c, q_t in ((0.0, 1.0), (0.05, 1.0), (0.05, 0.5), (0.2, 0.5), (0.1, 0.3), (0.05, 0.2), (0.02, 0.1)):
        print(f"| {q_c:.0%} | {q_t:.0%} | {detection(q_c, q_t)} |")
    elapsed = time.perf_counter() - started
    print(f"\nworst false-alert rate {worst:.2%} (bound {monitoring.ALERT_ALPHA:.1%}); {elapsed:.0f} s")


if __name__ == "__main__":
    main()
