"""Validate auto mode's decisions when trials come from sticky units (a PR, a task, a session that
is run several times): trials of one unit are correlated and all land in the unit's arm.

    PYTHONPATH=server python bench/validate_units.py [--sims 2000] [--seed 20261126]

Each simulated experiment is a stream of trials; each trial comes from a new unit with probability
0.3, else from a uniformly chosen earlier unit (about 3 trials per unit on average, many more for
the early units); a unit's arm is a fair coin. `icc` of the variance lies between units (on the log
scale for lognormal). Auto mode re-analyses after every trial from `sample_size_required` to 7x that
many (stats/simulate_units.py, which mirrors analyze + policy.decide and is checked against them in
the tests). Columns, each with its Wilson 95% interval:
  FP / FR naive         A/A false-promote / false-rollback rate when every trial is treated as
                        independent (what the engine did before cluster-robust variances)
  FP / FR               the same with cluster-robust variances (goal <= 2.5% each, as issue 3's)
  power naive / power   share of experiments with a true 30% improvement that get promoted
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from meta_experiment.stats import simulate_units as su
from meta_experiment.stats.binary import wilson

NEW_UNIT_SHARE = 0.3
EFFECT = 0.30
HORIZON = 7
CELLS = [  # (setting, required, icc)
    ("normal", 10, 0.2),
    ("normal", 10, 0.5),
    ("normal", 20, 0.2),
    ("normal", 20, 0.5),
    ("normal", 100, 0.5),
    ("lognormal", 10, 0.2),
    ("lognormal", 10, 0.5),
    ("lognormal", 20, 0.2),
    ("lognormal", 20, 0.5),
    ("lognormal", 100, 0.5),
]


def fmt(count: int, sims: int) -> str:
    lo, hi = wilson(count, sims)
    return f"{count / sims:.2%} [{lo:.2%}, {hi:.2%}]"


def run(
    setting: str, n_required: int, icc: float, effect: float, sims: int, seed: int, percent: int = 50
) -> dict[str, int]:
    """How many of `sims` experiments each analysis promotes / rolls back first."""
    key = [seed, n_required, int(icc * 100), int(effect * 100), int(setting == "lognormal")]
    rng = np.random.default_rng(key if percent == 50 else [*key, percent])
    log = setting == "lognormal"
    counts = {f"{what} {mode}": 0 for what in ("promote", "rollback") for mode in ("naive", "robust")}
    for _ in range(sims):
        stream = su.generate(setting, HORIZON * n_required, rng, icc, NEW_UNIT_SHARE, effect, percent)
        for mode, clustered in (("naive", False), ("robust", True)):
            first = su.first_decision(*su.decisions(stream, n_required, log, clustered, treatment_percent=percent))
            if first != "none":
                counts[f"{first} {mode}"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--quick", action="store_true", help="required 10 and 20 only")
    parser.add_argument(
        "--treatment-percent", type=int, default=50, help="share of units in the treatment (an uneven split)"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    print(
        f"Sticky units: {args.sims} simulated experiments per cell, seed {args.seed}, "
        f"{args.treatment_percent}% of units in the treatment; a new unit with probability "
        f"{NEW_UNIT_SHARE}, looks after every trial from required to {HORIZON}x; lognormal analysed on the log scale.\n"
    )
    print("| setting | required | icc | FP naive | FP | FR naive | FR | power naive | power |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for setting, n_required, icc in CELLS:
        if args.quick and n_required > 20:
            continue
        aa = run(setting, n_required, icc, 0.0, args.sims, args.seed, args.treatment_percent)
        ab = run(setting, n_required, icc, EFFECT, args.sims, args.seed, args.treatment_percent)
        worst = max(worst, aa["promote robust"] / args.sims, aa["rollback robust"] / args.sims)
        cells = [
            fmt(aa["promote naive"], args.sims),
            fmt(aa["promote robust"], args.sims),
            fmt(aa["rollback naive"], args.sims),
            fmt(aa["rollback robust"], args.sims),
            f"{ab['promote naive'] / args.sims:.1%}",
            f"{ab['promote robust'] / args.sims:.1%}",
        ]
        print(f"| {setting} | {n_required} | {icc:g} | " + " | ".join(cells) + " |", flush=True)
    print(f"\nworst cluster-robust error rate {worst:.2%}; {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
