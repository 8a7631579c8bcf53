"""The fixed-horizon Welch test with sticky units: how often a 5% test rejects on A/A data. The
engine's test is CR2 with the Bell-McCaffrey degrees of freedom at the ANOVA intra-unit correlation
(stats/cluster.py; Imbens & Kolesar 2016); for comparison the CR1 variance (the always-valid test's,
and the fixed-horizon test's before) with units - 1 df per arm as statsmodels' cluster t, with the
effective number of units - 1 (n^2 / sum of squared unit sizes, Summary.effective_groups, which the
floor alert uses), and with the normal approximation.

    PYTHONPATH=server python bench/validate_welch_units.py [--sims 4000] [--seed 20261126]

Units arrive as in validate_units.py: each trial comes from a new unit with probability 0.3, else
from an earlier one of its arm chosen at random, so early units collect many trials. Values: a
unit level (variance icc) plus noise (variance 1 - icc). One analysis per run, at the end.
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

from meta_experiment.stats.continuous import welch_se_df
from meta_experiment.stats.summary import Summary

NEW_UNIT_SHARE = 0.3
CELLS = ((35, 0.3), (70, 0.3), (350, 0.3), (35, 0.1), (70, 0.1), (35, 0.0), (15, 0.3))


def arm(n: int, icc: float, rng: np.random.Generator) -> Summary:
    levels: list[float] = []
    units, values = [], []
    for _ in range(n):
        if not levels or rng.random() < NEW_UNIT_SHARE:
            levels.append(float(rng.normal(0, math.sqrt(icc))))
            unit = len(levels) - 1
        else:
            unit = int(rng.integers(len(levels)))
        units.append(unit)
        values.append(levels[unit] + float(rng.normal(0, math.sqrt(1 - icc))))
    return Summary.of_units(values, units)


def p_values(c: Summary, t: Summary) -> tuple[float, float, float, float] | None:
    """Two-sided p: (engine: CR2 + Bell-McCaffrey df; CR1 + units - 1; CR1 + effective units - 1;
    CR1 + normal)."""
    small = welch_se_df(c, t)
    se_df = welch_se_df(c, t, small_sample=False)
    if se_df is None or small is None:
        return None
    se, df = se_df
    t_stat = (t.mean - c.mean) / se
    # Welch-Satterthwaite as continuous.mean_variances, with the effective numbers of units
    a, b = t.mean_variance / se**2, c.mean_variance / se**2
    effective = 1 / (a**2 / (t.effective_groups - 1) + b**2 / (c.effective_groups - 1))
    return (
        2 * stats.t.sf(abs(t.mean - c.mean) / small[0], small[1]),
        2 * stats.t.sf(abs(t_stat), df),
        2 * stats.t.sf(abs(t_stat), effective),
        2 * stats.norm.sf(abs(t_stat)),
    )


def fmt(count: int, sims: int) -> str:
    low, high = stats.binomtest(count, sims).proportion_ci(0.95, method="wilson")
    return f"{count / sims:.2%} [{low:.2%}, {high:.2%}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=20261126)
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"Welch at 5% on A/A data with sticky units ({args.sims} runs per cell, seed {args.seed}).\n")
    print(
        "| trials per arm | icc | CR2, Bell-McCaffrey df (engine) | CR1, units - 1 "
        "| CR1, effective units - 1 | CR1, normal |"
    )
    print("|---|---|---|---|---|---|")
    for n, icc in CELLS:
        rng = np.random.default_rng([args.seed, n, int(icc * 100)])
        hits = np.zeros(4, dtype=int)
        runs = 0
        while runs < args.sims:
            p = p_values(arm(n, icc, rng), arm(n, icc, rng))
            if p is None:
                continue  # fewer than 2 units in an arm: no test (rare)
            hits += np.array(p) < 0.05
            runs += 1
        cells = " | ".join(fmt(int(h), args.sims) for h in hits)
        print(f"| {n} | {icc:g} | {cells} |", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
