"""`record` round trip against a trivial `echo` tool on the same server, over stdio.

Each measured `record` is a real trial (assigned beforehand, outside the timing) written with
synchronous=FULL; `echo` returns its argument. Calls alternate so that noise hits both alike.
Target (issue 2): ratio ≤ 1.5.

    python bench/bench_record.py [--calls 400]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time

import anyio
from mcp import Client, StdioServerParameters

from _common import env_with_package, make_project, python, summary

SERVER = """
from meta_experiment.mcp_server import build_server
server = build_server()

@server.tool()
def echo(text: str) -> str:
    \"\"\"Return the text unchanged.\"\"\"
    return text

server.run("stdio")
"""


async def measure(params: StdioServerParameters, calls: int) -> tuple[list[float], list[float]]:
    async with Client(params, mode="legacy", read_timeout_seconds=120) as client:
        created = await client.call_tool(
            "create_experiment",
            {
                "name": "bench",
                "hypothesis": "bench",
                "files": {"cmd.md": "cmd.md.experiment"},
                "primary_metric": {"name": "t", "direction": "lower_is_better", "unit": "s"},
                "secondary_metrics": [{"name": "tokens", "direction": "lower_is_better"}],
                "sample_size_required": calls,
            },
        )
        experiment_id = created.structured_content["id"]
        trials = []
        for _ in range(calls + 20):
            a = await client.call_tool("assign", {"experiment_id": experiment_id})
            trials.append(a.structured_content["trial_id"])
        for trial in trials[:20]:  # warm-up: first calls import and cache
            await client.call_tool("record", {"trial_id": trial, "metrics": {"t": 1.0, "tokens": 100.0}})
            await client.call_tool("echo", {"text": "x"})
        rec, echo = [], []
        for i, trial in enumerate(trials[20:]):
            t0 = time.perf_counter()
            r = await client.call_tool("record", {"trial_id": trial, "metrics": {"t": 1.0 + i % 7, "tokens": 100.0}})
            t1 = time.perf_counter()
            e = await client.call_tool("echo", {"text": "hello"})
            t2 = time.perf_counter()
            assert not r.is_error and not e.is_error
            rec.append(t1 - t0)
            echo.append(t2 - t1)
        return rec, echo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    args = parser.parse_args()
    project = make_project()
    env = env_with_package(CLAUDE_PROJECT_DIR=str(project))
    params = StdioServerParameters(command=python(), args=["-c", SERVER], env=env, cwd=str(project))
    try:
        rec, echo = anyio.run(measure, params, args.calls)
    finally:
        shutil.rmtree(project, ignore_errors=True)
    ratio = statistics.median(rec) / statistics.median(echo)
    print("tool round trip over stdio (legacy mode), same server process")
    print(f"  record (synchronous=FULL) : {summary(rec)}")
    print(f"  echo                      : {summary(echo)}")
    print(f"  ratio (median/median)     : {ratio:.3f}   target <= 1.5   {'OK' if ratio <= 1.5 else 'OVER TARGET'}")


if __name__ == "__main__":
    main()
