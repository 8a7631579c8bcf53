"""Several processes (several Claude Code sessions) writing into one experiment at once."""

from __future__ import annotations

import math
import random
import subprocess
import sys
from pathlib import Path

from conftest import package_env, spec
from meta_experiment.lifecycle import Lab

WORKER = """
import random, sys
from pathlib import Path
from meta_experiment.lifecycle import Lab
project, experiment_id, seed, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
lab = Lab.open(project)
rng = random.Random(seed)
for i in range(count):
    a = lab.assign(experiment_id, unit=f"w{seed}-{i}" if i % 5 == 0 else None)
    lab.record(a.trial_id, {"time_to_complete": 1.7e9 + rng.random(), "issues_caught": float(i % 7)})
lab.close()
"""


def expected_values(seed: int, count: int) -> list[float]:
    rng = random.Random(seed)
    return [1.7e9 + rng.random() for _ in range(count)]


def test_four_processes_record_500_trials_each(project: Path, lab: Lab) -> None:
    experiment = lab.create(**spec(sample_size_required=2000))
    workers, count = 4, 500
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(project), experiment.id, str(seed), str(count)],
            env=package_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(workers)
    ]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    e = lab.get(experiment.id)
    assert e.control.recorded + e.treatment.recorded == workers * count
    assert e.control.assigned + e.treatment.assigned == workers * count
    rows = lab.store.trial_rows(experiment.id)
    assert len(rows) == workers * count and {r["status"] for r in rows} == {"recorded"}
    assert len({r["id"] for r in rows}) == workers * count
    running = lab.store.running_stats(experiment.id)
    everything: list[float] = []
    for arm in ("control", "treatment"):
        raw = lab.store.raw_values(experiment.id, arm, "time_to_complete")
        stats = running[(arm, "time_to_complete")]
        assert stats.n == len(raw)
        assert math.isclose(stats.n * stats.mean, math.fsum(raw), rel_tol=1e-15)
        everything += raw
    produced = [v for seed in range(workers) for v in expected_values(seed, count)]
    assert sorted(everything) == sorted(produced)  # no value lost or duplicated
    # blocks stay balanced even with four writers interleaving (units are hashed, not blocked)
    assert abs(e.control.assigned - e.treatment.assigned) < 80
