"""Which arm a trial runs in: sticky by unit, or balanced in permuted blocks. Pure functions of
the experiment id, so every process (every Claude Code session) computes the same answer.

`treatment_percent` is the intended share of trials in the treatment arm (models.TREATMENT_PERCENTS):
blocks hold 100 / gcd(percent, 100) trials (2 at 50%, 4 at 25%, 5 at 20%, 10 at 10% or 30%), so
after each whole block the counts match the split exactly and in between they are off by less than
one block; the sample-ratio check (alpha 0.001) never fires on that (tests/test_split.py checks
every arrangement)."""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache

from .models import Arm

BLOCK_SIZE = 2  # the even split: permuted blocks of two, arms never differ by more than one assignment


def _uniform(*parts: object) -> int:
    """The first 8 bytes of SHA-256 of the parts (NUL-separated) as an integer in [0, 2^64)."""
    digest = hashlib.sha256("\x00".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def sticky_arm(experiment_id: str, unit: str, treatment_percent: int = 50) -> Arm:
    """The same unit always gets the same arm: first 8 bytes of SHA-256(experiment id, unit) as a
    uniform number u in [0, 1), control when u < the control share (one half at 50%)."""
    control_share = 100 - treatment_percent
    return "control" if _uniform(experiment_id, unit) * 100 < control_share * 2**64 else "treatment"


def block_shape(treatment_percent: int) -> tuple[int, int]:
    """(trials per permuted block, treatment trials among them) at this split: 100 / gcd(percent,
    100) and percent / gcd."""
    g = math.gcd(treatment_percent, 100)
    return 100 // g, treatment_percent // g


def block_size(treatment_percent: int) -> int:
    return block_shape(treatment_percent)[0]


def block_lag(treatment_percent: int) -> float:
    """How far an arm's count can stray from its share inside one permuted block: size p (1 - p)
    (the block's treatment trials all first, or all last)."""
    p = treatment_percent / 100
    return block_size(treatment_percent) * p * (1 - p)


def block_arm(experiment_id: str, slot: int, treatment_percent: int = 50) -> Arm:
    """Balanced assignment in permuted blocks: each block holds the split's exact counts in an order
    drawn from SHA-256(experiment id, block number), so the sequence is reproducible and every
    process agrees on it; after each whole block the arms are exactly in the intended ratio."""
    if treatment_percent == 50:  # the even split's own draw, kept so running experiments keep their sequence
        block, position = divmod(slot, BLOCK_SIZE)
        digest = hashlib.sha256(f"{experiment_id}\x00block\x00{block}".encode()).digest()
        first: Arm = "control" if digest[0] & 1 == 0 else "treatment"
        second: Arm = "treatment" if first == "control" else "control"
        return first if position == 0 else second
    size = block_size(treatment_percent)
    block, position = divmod(slot, size)
    return _permuted_block(experiment_id, block, treatment_percent)[position]


@lru_cache(maxsize=256)
def _permuted_block(experiment_id: str, block: int, treatment_percent: int) -> tuple[Arm, ...]:
    """One block: percent / gcd treatment slots among 100 / gcd, shuffled by Fisher-Yates (Knuth,
    TAOCP vol. 2, Algorithm 3.4.2 P) with j = H(experiment, block, i) mod (i + 1); the modulo bias
    of a 64-bit hash over at most 10 choices is below 1e-18."""
    size, treated = block_shape(treatment_percent)
    arms: list[Arm] = ["treatment" if i < treated else "control" for i in range(size)]
    for i in range(size - 1, 0, -1):
        j = _uniform(experiment_id, "split-block", block, i) % (i + 1)
        arms[i], arms[j] = arms[j], arms[i]
    return tuple(arms)
