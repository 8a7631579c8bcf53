"""Which arm a trial runs in: sticky by unit, or balanced in permuted blocks. Pure functions of
the experiment id, so every process (every Claude Code session) computes the same answer."""

from __future__ import annotations

import hashlib

from .models import Arm

BLOCK_SIZE = 2  # permuted blocks of two: arms never differ by more than one assignment


def sticky_arm(experiment_id: str, unit: str) -> Arm:
    """The same unit always gets the same arm: first 8 bytes of SHA-256(experiment id, unit) as a
    uniform number in [0, 1), control below one half."""
    digest = hashlib.sha256(f"{experiment_id}\x00{unit}".encode()).digest()
    return "control" if int.from_bytes(digest[:8], "big") < 2**63 else "treatment"


def block_arm(experiment_id: str, slot: int) -> Arm:
    """Balanced assignment in permuted blocks of two: each block is control/treatment in an order
    drawn from SHA-256(experiment id, block number), so the sequence is reproducible and every
    process agrees on it; after an even number of assignments the arms are exactly equal."""
    block, position = divmod(slot, BLOCK_SIZE)
    digest = hashlib.sha256(f"{experiment_id}\x00block\x00{block}".encode()).digest()
    first: Arm = "control" if digest[0] & 1 == 0 else "treatment"
    second: Arm = "treatment" if first == "control" else "control"
    return first if position == 0 else second
