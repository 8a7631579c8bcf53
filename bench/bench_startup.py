"""Cold start: spawn the server → first `tools/list` answered, against a bare MCPServer
hello-world started the same way (same interpreter, same client, same legacy handshake).

Target (issue 2): ratio ≤ 1.15. Runs alternate between the two servers so that machine noise hits
both alike; the ratio of medians is printed, and the median of the per-pair ratios as a check. The
machines are shared: expect ±5% between runs of this script.

    python bench/bench_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time

import anyio
from mcp import Client, StdioServerParameters

from _common import env_with_package, make_project, python, summary

HELLO = """
from mcp.server.mcpserver import MCPServer
server = MCPServer("hello")

@server.tool()
def hello(name: str) -> str:
    \"\"\"Say hello.\"\"\"
    return f"hello {name}"

server.run("stdio")
"""


async def cold_start(params: StdioServerParameters) -> float:
    started = time.perf_counter()
    async with Client(params, mode="legacy", read_timeout_seconds=120) as client:
        tools = await client.list_tools()
        elapsed = time.perf_counter() - started
    assert tools.tools
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    project = make_project()
    env = env_with_package(CLAUDE_PROJECT_DIR=str(project))
    ours = StdioServerParameters(command=python(), args=["-m", "meta_experiment", "serve"], env=env, cwd=str(project))
    bare = StdioServerParameters(command=python(), args=["-c", HELLO], env=env, cwd=str(project))
    try:
        anyio.run(cold_start, ours)  # warm the OS file cache for both, and create the state folder
        anyio.run(cold_start, bare)
        a, b = [], []
        for _ in range(args.runs):
            a.append(anyio.run(cold_start, ours))
            b.append(anyio.run(cold_start, bare))
    finally:
        shutil.rmtree(project, ignore_errors=True)
    ratio = statistics.median(a) / statistics.median(b)
    paired = statistics.median(x / y for x, y in zip(a, b, strict=True))
    print("cold start: spawn -> first tools/list (legacy initialize handshake over stdio)")
    print(f"  meta-experiment server : {summary(a)}")
    print(f"  bare MCPServer hello   : {summary(b)}")
    print(f"  ratio (median/median)  : {ratio:.3f}   target <= 1.15   {'OK' if ratio <= 1.15 else 'OVER TARGET'}")
    print(f"  median of paired ratios: {paired:.3f}   (each run against the baseline run next to it)")


if __name__ == "__main__":
    main()
