"""Helpers shared by the release tests: experiments with unmistakable effects (so the tests hold
with the statistics branch's always-valid policy as well as with any reasonable rule), and git
inspection."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

from conftest import PROD, VAR, spec
from meta_experiment.lifecycle import Lab
from meta_experiment.models import Experiment

CONTROL_MEAN, WINNER_MEAN, LOSER_MEAN = 45.0, 27.0, 72.0  # minutes: 40% better / 60% worse


def record_trials(
    lab: Lab,
    experiment_id: str,
    *,
    control: float = CONTROL_MEAN,
    treatment: float = WINNER_MEAN,
    trials: int = 40,
    noise: float = 1.0,
    seed: int = 1,
    failures: dict[str, int] | None = None,
) -> None:
    """`trials` assigned and recorded trials; `failures[arm]` of them per arm recorded with
    success=False (the first ones of that arm). Each arm draws its noise from its own generator,
    so its values do not depend on how the arms interleave (which follows the experiment id, a
    time): the same figures whenever the test runs."""
    rngs = {"control": random.Random(seed), "treatment": random.Random(seed + 1_000_003)}
    failed = {"control": 0, "treatment": 0}
    failures = failures or {}
    # the experiment's guardrails get values too, equal in both arms: a guardrail with no data
    # blocks promotion
    guards = [m.name for m in lab.get(experiment_id).secondary_metrics]
    for _ in range(trials):
        a = lab.assign(experiment_id)
        mean = control if a.arm == "control" else treatment
        success = failed[a.arm] >= failures.get(a.arm, 0)
        failed[a.arm] += not success
        rng = rngs[a.arm]
        values = {"time_to_complete": mean + rng.gauss(0, noise)}
        values.update({name: 5.0 + rng.gauss(0, 0.2) for name in guards})
        lab.record(a.trial_id, values, success)


def winner(lab: Lab, **overrides: object) -> Experiment:
    """A running experiment whose variant is 40% faster over 40 trials (sample size 20)."""
    e = lab.create(**spec(sample_size_required=20, **overrides))
    record_trials(lab, e.id)
    return lab.get(e.id)


def promoted(lab: Lab, **overrides: object) -> Experiment:
    from meta_experiment import release

    e = winner(lab, **overrides)
    release.promote(lab, e.id)
    return lab.get(e.id)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def commit_paths(repo: Path, rev: str = "HEAD") -> set[str]:
    return set(git(repo, "show", "--name-only", "--format=", rev).split())


def porcelain(repo: Path) -> set[str]:
    return set(git(repo, "status", "--porcelain", "--untracked-files=all").splitlines())


def unrelated_changes(repo: Path) -> None:
    """A staged new file, a staged edit and an unstaged edit that no experiment owns."""
    (repo / "notes.md").write_text("staged, not committed\n")
    (repo / "README.md").write_text("v1\n")
    git(repo, "add", "--", "README.md")
    git(repo, "commit", "-q", "-m", "readme")
    (repo / "README.md").write_text("v2, unstaged\n")
    (repo / "other.md").write_text("tracked\n")
    git(repo, "add", "--", "other.md")
    git(repo, "commit", "-q", "-m", "other")
    (repo / "other.md").write_text("tracked, edit staged\n")
    git(repo, "add", "--", "notes.md", "other.md")


UNRELATED = {"A  notes.md", " M README.md", "M  other.md"}
__all__ = ["PROD", "UNRELATED", "VAR"]
