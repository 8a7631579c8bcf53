"""Validate the monitoring alerts that stop an auto_rollback experiment: how often they fire on
experiments without the problem (checked after every trial), and how fast they fire with it.

    PYTHONPATH=server python bench/validate_alerts.py [--sims 2000] [--seed 20261126]

Error rate: both arms fail with the same probability (no problem), trials assigned in permuted
blocks of two, the alert checked after every trial up to 7x the required size (as long as auto
mode plans for; the e-process's guarantee has no end). "Fisher 0.05" is the rule before: a
one-sided Fisher exact p <= 0.05 at each check (same ratio and sample guards). Floor: the
treatment's mean sits exactly at the floor (the worst case of "not below it"), and for detection
0.1 below it; these tables check the floor half of the alert alone (an upper bound: the alert also
needs the treatment below the control). "Both arms below the floor": the control as low as the
treatment, 0.2 under the floor, which the control half must keep silent. With sticky units
(trials of one unit correlated) both alerts are checked as monitoring.check raises them, with the
design effects of the units, and counted as independent trials for comparison. The detection table
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

from meta_experiment import alert_evidence, floors, monitoring
from meta_experiment.settings import MonitoringSettings
from meta_experiment.stats.binary import wilson
from meta_experiment.stats.summary import Summary
from meta_experiment.store import RunningStats

SETTINGS = MonitoringSettings()
REQUIRED = (10, 20, 100)
FAILURE_RATES = (0.02, 0.05, 0.1, 0.2, 0.5)
HORIZON = 7
NEW_UNIT_SHARE = 0.3


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
            if floors.floor_finding("satisfaction", binary, running, 0.5, SETTINGS) is not None:
                hits += 1
                break
    return hits


def floor_both_low(binary: bool, n_required: int, sims: int, rng: np.random.Generator) -> int:
    """Experiments whose floor alert fired (as monitoring.check raises it, with the control) when
    both arms have the same mean 0.3, under the floor 0.5: the change is not to blame. Trials in
    permuted blocks of two, checked after every trial."""
    n = HORIZON * n_required
    hits = 0
    for _ in range(sims):
        first = rng.integers(0, 2, size=(n + 1) // 2)
        arm = np.empty(2 * first.size, dtype=np.int8)
        arm[0::2], arm[1::2] = first, 1 - first
        values = (rng.random(n) < 0.3).astype(float) if binary else rng.normal(0.3, 0.2, n)
        arms = [RunningStats(0, 0.0, 0.0, 0.0, 0.0, 0.0)] * 2  # control, treatment
        for a, v in zip(arm[:n], values, strict=True):
            arms[a] = arms[a].add(float(v))
            if floors.floor_finding("satisfaction", binary, arms[1], 0.5, SETTINGS, control=arms[0]) is not None:
                hits += 1
                break
    return hits


def _unit_summary(successes: dict[int, list[int]]) -> Summary:
    """The arm's Summary of its 0/1 values clustered by unit ({unit: [n, successes]})."""
    counts = np.array(list(successes.values()), dtype=float)
    n_c, s_c = counts[:, 0], counts[:, 1]
    n, x = int(n_c.sum()), float(s_c.sum())
    p = x / n
    base = Summary(n, p, p * (1 - p) * n / (n - 1) if n > 1 else 0.0)
    residual = s_c - p * n_c
    return base.clustered(len(n_c), float(residual @ residual), float(residual @ n_c), float(n_c @ n_c))


def error_rate_units(q: float, icc: float, n_required: int, sims: int, rng: np.random.Generator) -> tuple[int, int]:
    """(experiments the alert fired on, as monitoring.check does with units; the same counted as
    independent trials) among A/A runs with sticky units: each trial from a new unit with
    probability NEW_UNIT_SHARE, each unit failing with its own probability, Beta with mean q and
    intra-unit correlation icc."""
    from meta_experiment.stats.summary import rate_design_effects

    a = q * (1 / icc - 1)
    b = (1 - q) * (1 / icc - 1)
    n = HORIZON * n_required
    robust = naive = 0
    for _ in range(sims):
        units: list[tuple[int, float]] = []  # (arm, failure probability)
        per_arm: list[dict[int, list[int]]] = [{}, {}]
        c_n = c_f = t_n = t_f = 0
        hit_robust = hit_naive = False
        for _ in range(n):
            if not units or rng.random() < NEW_UNIT_SHARE:
                units.append((int(rng.integers(2)), float(rng.beta(a, b))))
                unit = len(units) - 1
            else:
                unit = int(rng.integers(len(units)))
            arm, p_fail = units[unit]
            failed = rng.random() < p_fail
            acc = per_arm[arm].setdefault(unit, [0, 0])
            acc[0], acc[1] = acc[0] + 1, acc[1] + int(not failed)
            if arm:
                t_n, t_f = t_n + 1, t_f + int(failed)
            else:
                c_n, c_f = c_n + 1, c_f + int(failed)
            if not _alert_rule(c_n, c_f, t_n, t_f):
                continue
            hit_naive = True
            c, t = _unit_summary(per_arm[0]), _unit_summary(per_arm[1])
            if 0 < c.clusters < 2 or 0 < t.clusters < 2:
                continue
            counts = {
                "control": {"recorded": c_n, "successes": c_n - c_f},
                "treatment": {"recorded": t_n, "successes": t_n - t_f},
            }
            found = monitoring.error_rate_finding(counts, SETTINGS, design_effects=rate_design_effects(c, t))
            if found is not None:
                hit_robust = True
                break
        robust, naive = robust + hit_robust, naive + hit_naive
    return robust, naive


def floor_units(
    icc: float, n_required: int, sims: int, rng: np.random.Generator, *, binary: bool = False, shift: float = 0.0
) -> tuple[int, int, list[int]]:
    """(experiments whose floor alert fired as monitoring.check raises it with units, the same
    counting the trials as independent, the treatment trials at which each alert with units fired)
    over treatments whose mean sits `shift` below the floor 0.5. Normal values with sd 0.2, icc of
    the variance between units; or yes/no values, each unit with its own rate, Beta with mean
    0.5 - shift and intra-unit correlation icc. Units arrive as in error_rate_units."""
    from meta_experiment.analysis import summary_of
    from meta_experiment.store import ClusterSums

    mean = 0.5 - shift
    a, b = mean * (1 / icc - 1), (1 - mean) * (1 / icc - 1)
    n = HORIZON * n_required // 2
    robust = naive = 0
    fired_at: list[int] = []
    for _ in range(sims):
        levels: list[float] = []  # a unit's shift (normal) or its rate (yes/no)
        sums: dict[int, list[float]] = {}  # unit -> [n, shifted sum]
        running = RunningStats(0, 0.0, 0.0, 0.0, 0.0, 0.0)
        repeats, sa, sb, sd = 0, 0.0, 0.0, 0.0
        hit_robust = hit_naive = False
        for trial in range(1, n + 1):
            if not levels or rng.random() < NEW_UNIT_SHARE:
                levels.append(float(rng.beta(a, b)) if binary else float(rng.normal(0, 0.2 * np.sqrt(icc))))
                unit = len(levels) - 1
            else:
                unit = int(rng.integers(len(levels)))
            if binary:
                value = float(rng.random() < levels[unit])
            else:
                value = mean + levels[unit] + float(rng.normal(0, 0.2 * np.sqrt(1 - icc)))
            running = running.add(value)
            y = value - running.shift
            acc = sums.setdefault(unit, [0, 0.0])
            dr, da, db, dd = ClusterSums.increment(int(acc[0]), acc[1], y)  # as the store keeps them
            repeats, sa, sb, sd = repeats + dr, sa + da, sb + db, sd + dd
            acc[0], acc[1] = acc[0] + 1, acc[1] + y
            if floors.floor_finding("satisfaction", binary, running, 0.5, SETTINGS) is None:
                continue
            hit_naive = True
            clustered = summary_of(running, ClusterSums(repeats, sa, sb, sd)) if repeats else None
            if floors.floor_finding("satisfaction", binary, running, 0.5, SETTINGS, clustered=clustered):
                hit_robust = True
                fired_at.append(trial)
                break
        robust, naive = robust + hit_robust, naive + hit_naive
    return robust, naive, fired_at


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
        f"{SETTINGS.min_failures} failures; always-valid at {alert_evidence.ALERT_ALPHA:g}).\n"
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
    print("\nFloor alert with both arms below the floor: each arm's mean 0.3, floor 0.5 (normal: sd 0.2).\n")
    print("| metric | required | trials | alert fired |")
    print("|---|---|---|---|")
    for binary in (False, True):
        for n_required in REQUIRED:
            rng = np.random.default_rng([args.seed, int(binary), n_required, 23])
            hits = floor_both_low(binary, n_required, args.sims, rng)
            worst = max(worst, hits / args.sims)
            kind = "yes/no" if binary else "normal"
            print(f"| {kind} | {n_required} | {HORIZON * n_required} | {fmt(hits, args.sims)} |", flush=True)
    print(
        f"\nError-rate alert with sticky units (a new unit with probability {NEW_UNIT_SHARE}, else an earlier one; "
        "each unit fails with its own probability, Beta with the failure rate as mean and the given intra-unit "
        "correlation), as monitoring.check raises it, and counting the trials as independent.\n"
    )
    print("| failure rate | icc | required | alert fired (units) | counted as independent |")
    print("|---|---|---|---|---|")
    for q in (0.1, 0.2):
        for icc in (0.1, 0.3):
            for n_required in (20, 100):
                rng = np.random.default_rng([args.seed, int(q * 1000), int(icc * 100), n_required, 11])
                robust, naive = error_rate_units(q, icc, n_required, args.sims, rng)
                worst = max(worst, robust / args.sims)
                cells = f"{fmt(robust, args.sims)} | {fmt(naive, args.sims)}"
                print(f"| {q:.0%} | {icc:g} | {n_required} | {cells} |", flush=True)
    print(
        "\nFloor alert with sticky units: the treatment's mean exactly at the floor 0.5 (normal, sd 0.2; yes/no: "
        "each unit's rate Beta with mean 0.5 and the given intra-unit correlation).\n"
    )
    print("| metric | icc | required | treatment trials | alert fired (units) | counted as independent |")
    print("|---|---|---|---|---|---|")
    for binary in (False, True):
        for icc in (0.1, 0.3):
            for n_required in (20, 100):
                rng = np.random.default_rng([args.seed, int(icc * 100), n_required, 15 if binary else 13])
                robust, naive, _ = floor_units(icc, n_required, args.sims, rng, binary=binary)
                worst = max(worst, robust / args.sims)
                cells = f"{HORIZON * n_required // 2} | {fmt(robust, args.sims)} | {fmt(naive, args.sims)}"
                print(f"| {'yes/no' if binary else 'normal'} | {icc:g} | {n_required} | {cells} |", flush=True)
    print(
        "\nFloor detection with sticky units: the treatment's mean 0.1 below the floor (normal: 0.4, sd 0.2; "
        "yes/no: 0.4), up to 350 treatment trials.\n"
    )
    print("| metric | icc | alert fired | treatment trials when it fired (median, 90th percentile) |")
    print("|---|---|---|---|")
    for binary in (False, True):
        for icc in (0.1, 0.3):
            rng = np.random.default_rng([args.seed, int(icc * 100), 17 if binary else 19])
            robust, _, fired_at = floor_units(icc, 100, args.sims, rng, binary=binary, shift=0.1)
            when = f"{np.median(fired_at):.0f}, {np.percentile(fired_at, 90):.0f}" if fired_at else "-"
            print(f"| {'yes/no' if binary else 'normal'} | {icc:g} | {fmt(robust, args.sims)} | {when} |", flush=True)
    print("\nDetection: trials per arm until the error-rate alert fires (the expected counts each trial).\n")
    print("| control failure rate | treatment failure rate | trials per arm |")
    print("|---|---|---|")
    for q_c, q_t in ((0.0, 1.0), (0.05, 1.0), (0.05, 0.5), (0.2, 0.5), (0.1, 0.3), (0.05, 0.2), (0.02, 0.1)):
        print(f"| {q_c:.0%} | {q_t:.0%} | {detection(q_c, q_t)} |")
    elapsed = time.perf_counter() - started
    print(f"\nworst false-alert rate {worst:.2%} (bound {alert_evidence.ALERT_ALPHA:.1%}); {elapsed:.0f} s")


if __name__ == "__main__":
    main()
