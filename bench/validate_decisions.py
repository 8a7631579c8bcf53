"""Validate auto mode's decisions by simulation: A/A false-promote and false-rollback rates, and
power to promote a true 30% improvement, for our always-valid policy and for the seed's peeking
rule, re-analysing after every trial from `sample_size_required` up to 7x that many trials.

    PYTHONPATH=server python bench/validate_decisions.py [--sims 10000] [--seed 20251020]

Prints a markdown table with Wilson 95% intervals. Columns:
  FP / FR        false-promote / false-rollback rate on A/A data (goal <= 2.5% each)
  power          share of experiments with a true 30% improvement that get promoted by 7x
  seed@2.5%      the seed's rule with its per-look p cut-off lowered until its A/A false-promote rate
                 is 2.5% (size-adjusted: the fair comparison of power at equal error)
  NP bound       the power of the most powerful level-2.5% test that sees all 7x trials at once
                 (Neyman-Pearson, known variance): no procedure with <= 2.5% false promotions can
                 exceed it, peeking or not
  trials         mean number of trials at which our policy promoted (true 30% improvement)

A second table runs A/A experiments on past the planned window, to 3x its end (21x required),
where only the e-process can still decide: the chance of ever deciding wrongly stays <= 2.5%.

A third table adds what every real experiment has: the implicit guardrail success_rate, every trial
succeeding with probability 1 - crash rate in both arms (no true effect), at crash rates 0.5% and
2%, on the first table's experiments (lognormal on the log scale). A suspected regression of the
success rate beyond max_regression holds promotion back, and rollback takes Holm across the primary
and success_rate (`simulate.looks`). At 0% the gate never fires, so FP and power are the first
table's, while Holm still halves the primary's rollback budget (the trials then carry success flags).

A fourth table takes uneven splits (treatment_percent 20, 10 and 90: permuted blocks of 5 or 10,
the sequential test's information n_c n_t / (n_c + n_t) planned with that split): FP and FR, the
same without policy.decide's per-arm floor (no decision before each arm has MIN_PER_ARM values;
with the even split and required >= 10 the floor never binds), power against the first table's even
split, and the mean trials to promotion. Its experiments come from their own generator, so the first
three tables keep their draws.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from meta_experiment.stats import simulate as sim
from meta_experiment.stats.binary import wilson
from meta_experiment.stats.plan import MIN_PER_ARM

REQUIRED = (10, 20, 100)
EFFECT = 0.30
HORIZON = 7
Z = stats.norm.isf(0.025)
CRASH_RATES = (0.005, 0.02)
GUARD_STREAM = 1  # success flags come from their own generator: the first two tables keep their draws
SPLITS = (20, 10, 90)  # treatment_percent of the uneven-split table
SPLIT_STREAM = 2  # its experiments come from their own generator too


def fmt(rate: float, sims: int) -> str:
    lo, hi = wilson(round(rate * sims), sims)
    return f"{rate:.2%} [{lo:.2%}, {hi:.2%}]"


def np_bound(setting: str, n_required: int) -> float:
    """Power of the one-sided level-0.025 z-test at the final look, known variances (normal approx)."""
    n = HORIZON * n_required / 2
    if setting == "normal":
        delta = EFFECT * sim.NORMAL_MEAN
        se0 = se1 = math.sqrt((sim.NORMAL_SD**2 + (sim.NORMAL_SD * (1 - EFFECT)) ** 2) / n)
    elif setting == "lognormal":
        delta = -math.log(1 - EFFECT)
        se0 = se1 = sim.LOGNORMAL_SIGMA * math.sqrt(2 / n)
    else:
        p0, p1 = sim.BINARY_RATE, sim.BINARY_RATE * (1 + EFFECT)
        delta = p1 - p0
        pbar = (p0 + p1) / 2
        se0 = math.sqrt(2 * pbar * (1 - pbar) / n)
        se1 = math.sqrt((p0 * (1 - p0) + p1 * (1 - p1)) / n)
    return float(stats.norm.sf((Z * se0 - delta) / se1))


def seed_cutoff(arm: np.ndarray, x: np.ndarray, setting: str, n_required: int) -> float:
    """The per-look p cut-off at which the seed's rule promotes 2.5% of these A/A experiments."""
    lo, hi = 1e-8, 0.05
    for _ in range(40):
        mid = math.sqrt(lo * hi)
        if sim.seed_rule(arm, x, setting, n_required, critical_p=mid).promote > 0.025:
            hi = mid
        else:
            lo = mid
    return lo


def guarded(
    data: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    setting: str,
    n_req: int,
    log_scale: bool,
    seeds: np.ndarray,
) -> list[tuple[sim.Rates, sim.Rates]]:
    """Per crash rate: (A/A, true 30% improvement) rates with success_rate. Each experiment's success
    flags come from one seed at every crash rate, so the crash sets are nested (common random numbers)."""
    out = []
    for crash in CRASH_RATES:
        a, b = (
            sim.ours(
                arm,
                x,
                setting,
                n_req,
                log_scale=log_scale,
                success=sim.generate_success(x.shape, crash, np.random.default_rng(seed)),
            )
            for (arm, x), seed in zip(data, seeds, strict=True)
        )
        out.append((a, b))
    return out


def print_guarded(rows: list[tuple[str, int, float, list[tuple[sim.Rates, sim.Rates]]]], sims: int, seed: int) -> float:
    rates = " and ".join(f"{c:.1%}" for c in CRASH_RATES)
    print(
        f"\nWith the implicit guardrail success_rate: success with probability 1 - crash rate in both arms "
        f"(crash rates {rates}; no true effect), tolerance max_regression 10%; the first table's "
        f"experiments (lognormal on the log scale), success flags drawn from seed ({seed}, {GUARD_STREAM}); "
        f"{sims} simulated experiments per cell. Change: power with success_rate minus the primary alone "
        "(first table), in points, on the same experiments.\n"
    )
    head = [f"{kind} {c:.1%}" for kind in ("FP", "FR", "power") for c in CRASH_RATES]
    change = [f"change {c:.1%}" for c in CRASH_RATES]
    print("| setting | required | " + " | ".join([*head, "power, primary alone", *change]) + " |")
    print("|---" * (3 + len(head) + len(change)) + "|")
    worst = 0.0
    for name, n_req, alone, cells in rows:
        fp = [fmt(a.promote, a.sims) for a, _ in cells]
        fr = [fmt(a.rollback, a.sims) for a, _ in cells]
        power = [f"{b.promote:.2%}" for _, b in cells]
        delta = [f"{100 * (b.promote - alone):+.2f}" for _, b in cells]
        worst = max([worst, *(max(a.promote, a.rollback) for a, _ in cells)])
        print(f"| {name} | {n_req} | " + " | ".join([*fp, *fr, *power, f"{alone:.2%}", *delta]) + " |", flush=True)
    return worst


def print_splits(even_power: dict[tuple[str, int], float], sims: int, seed: int) -> float:
    """The uneven-split table; returns its worst A/A error rate (with the per-arm floor)."""
    rng = np.random.default_rng([seed, SPLIT_STREAM])
    print(
        f"\nUneven splits: treatment_percent {', '.join(map(str, SPLITS))}, permuted blocks as allocation.block_arm; "
        f"lognormal on the log scale; experiments from seed ({seed}, {SPLIT_STREAM}); {sims} simulated experiments "
        f"per cell. 'no floor': the same experiments without the per-arm floor ({MIN_PER_ARM} values per arm). "
        "even power: the first table's.\n"
    )
    print("| setting | required | treatment | FP | FR | FP no floor | FR no floor | power | even power | trials |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for percent in SPLITS:
        for setting in sim.SETTINGS:
            log_scale = setting == "lognormal"
            name = f"{setting} (log scale)" if log_scale else setting
            for n_req in REQUIRED:
                arm0, x0 = sim.generate(setting, n_req, sims, 0.0, rng, HORIZON, treatment_percent=percent)
                arm1, x1 = sim.generate(setting, n_req, sims, EFFECT, rng, HORIZON, treatment_percent=percent)
                kw = dict(log_scale=log_scale, treatment_percent=percent)
                a = sim.ours(arm0, x0, setting, n_req, **kw)
                loose = sim.ours(arm0, x0, setting, n_req, min_per_arm=0, **kw)
                b = sim.ours(arm1, x1, setting, n_req, **kw)
                worst = max(worst, a.promote, a.rollback)
                trials = "-" if b.mean_trials_to_decision is None else f"{b.mean_trials_to_decision:.0f}"
                print(
                    f"| {name} | {n_req} | {percent}% | {fmt(a.promote, sims)} | {fmt(a.rollback, sims)} "
                    f"| {fmt(loose.promote, sims)} | {fmt(loose.rollback, sims)} "
                    f"| {b.promote:.1%} | {even_power[setting, n_req]:.1%} | {trials} |",
                    flush=True,
                )
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=20251020)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    guard_rng = np.random.default_rng([args.seed, GUARD_STREAM])
    guard_rows = []
    even_power: dict[tuple[str, int], float] = {}
    started = time.perf_counter()
    print(
        f"Auto mode re-analysing after every trial from required to {HORIZON}x required (total trials); "
        f"{args.sims} simulated experiments per cell; threshold 15%, max_regression 10%, "
        "confidence_threshold 0.80 or 0.95 (both: alpha 0.05, 2.5% per direction). Wilson 95% intervals.\n"
    )
    print(
        "| setting | required | ours FP | ours FR | seed FP | seed FR | ours power | seed power "
        "| seed@2.5% power | NP bound | trials |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for setting in sim.SETTINGS:
        variants = [("log scale", True), ("raw scale", False)] if setting == "lognormal" else [("", False)]
        for n_req in REQUIRED:
            arm0, x0 = sim.generate(setting, n_req, args.sims, 0.0, rng, HORIZON)
            arm1, x1 = sim.generate(setting, n_req, args.sims, EFFECT, rng, HORIZON)
            seed0 = sim.seed_rule(arm0, x0, setting, n_req)
            seed1 = sim.seed_rule(arm1, x1, setting, n_req)
            adjusted = sim.seed_rule(arm1, x1, setting, n_req, critical_p=seed_cutoff(arm0, x0, setting, n_req))
            for label, log_scale in variants:
                a = sim.ours(arm0, x0, setting, n_req, log_scale=log_scale)
                b = sim.ours(arm1, x1, setting, n_req, log_scale=log_scale)
                worst = max(worst, a.promote, a.rollback)
                name = f"{setting} ({label})" if label else setting
                trials = "-" if b.mean_trials_to_decision is None else f"{b.mean_trials_to_decision:.0f}"
                print(
                    f"| {name} | {n_req} | {fmt(a.promote, a.sims)} | {fmt(a.rollback, a.sims)} "
                    f"| {fmt(seed0.promote, a.sims)} | {fmt(seed0.rollback, a.sims)} "
                    f"| {b.promote:.1%} | {seed1.promote:.1%} | {adjusted.promote:.1%} "
                    f"| {np_bound(setting, n_req):.1%} | {trials} |",
                    flush=True,
                )
                if log_scale == (setting == "lognormal"):
                    even_power[setting, n_req] = b.promote
                    seeds = guard_rng.integers(2**63, size=2)
                    cells = guarded(((arm0, x0), (arm1, x1)), setting, n_req, log_scale, seeds)
                    guard_rows.append((name, n_req, b.promote, cells))
    long_sims = max(1, args.sims // 2)
    print(
        f"\nA/A past the planned window: looks after every trial up to {3 * HORIZON}x required; "
        f"{long_sims} simulated experiments per cell.\n"
    )
    print("| setting | required | ours FP | ours FR | of which after the window (FP + FR) |")
    print("|---|---|---|---|---|")
    for setting in sim.SETTINGS:
        for n_req in REQUIRED[:2]:
            log_scale = setting == "lognormal"
            arm0, x0 = sim.generate(setting, n_req, long_sims, 0.0, rng, 3 * HORIZON)
            a = sim.ours(arm0, x0, setting, n_req, log_scale=log_scale)
            window = sim.ours(arm0[:, : HORIZON * n_req], x0[:, : HORIZON * n_req], setting, n_req, log_scale=log_scale)
            worst = max(worst, a.promote, a.rollback)
            after = a.promote + a.rollback - window.promote - window.rollback
            name = f"{setting} (log scale)" if log_scale else setting
            print(
                f"| {name} | {n_req} | {fmt(a.promote, a.sims)} | {fmt(a.rollback, a.sims)} | {after:.2%} |",
                flush=True,
            )
    guard_worst = print_guarded(guard_rows, args.sims, args.seed)
    print(f"\nWorst A/A error rate with success_rate: {guard_worst:.2%} (goal <= 2.50%).")
    split_worst = print_splits(even_power, args.sims, args.seed)
    print(f"\nWorst A/A error rate at uneven splits: {split_worst:.2%} (goal <= 2.50%).")
    print(
        f"\nWorst A/A error rate of ours: {worst:.2%} (goal <= 2.50%). Elapsed {time.perf_counter() - started:.0f} s."
    )


if __name__ == "__main__":
    main()
