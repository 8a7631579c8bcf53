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

REQUIRED = (10, 20, 100)
EFFECT = 0.30
HORIZON = 7
Z = stats.norm.isf(0.025)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=20251020)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
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
    print(
        f"\nWorst A/A error rate of ours: {worst:.2%} (goal <= 2.50%). Elapsed {time.perf_counter() - started:.0f} s."
    )


if __name__ == "__main__":
    main()
