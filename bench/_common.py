"""Helpers shared by the benchmarks: a throwaway project, stdio server parameters, statistics."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "server"


def env_with_package(**extra: str) -> dict[str, str]:
    """Subprocess environment that imports this checkout's meta_experiment (installed or not)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SOURCE), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def make_project() -> Path:
    root = Path(tempfile.mkdtemp(prefix="meta-experiment-bench-"))
    (root / "cmd.md").write_text("control text\n")
    (root / "cmd.md.experiment").write_text("treatment text\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=False, capture_output=True)
    return root


def summary(samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return f"median {statistics.median(ms):8.2f} ms  (min {min(ms):.2f}, max {max(ms):.2f}, n={len(ms)})"


def python() -> str:
    return sys.executable
