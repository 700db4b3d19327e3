"""Prefect adapter benchmark: the wall time ``@cmf_task`` adds to a task run.

    .venv-prefect/bin/python benchmarks/bench_prefect.py [--runs 60] [--warmup 5]

A plain ``@task`` and a ``@cmf_task`` do the same work (read a 1 KB input file, write a
1 KB output file); the recorded one declares both, so each of its runs opens an
execution, hashes and records the input, hashes, caches and records the output, and
announces the output as an asset. Both tasks run alternately in the same flow run
against the same temporary Prefect server and an embedded SQLite store; the figure is
the difference of the median task-run wall times, measured from the flow.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# The temporary server reports pending task-run events it drops while shutting down; not ours.
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefect import flow, task
from prefect.testing.utilities import prefect_test_harness

from cmf_orchestrate import Dataset
from cmf_orchestrate.prefect import cmf_task


def _work(source: str, target: str) -> int:
    data = Path(source).read_bytes()
    Path(target).write_bytes(data[::-1])
    return len(data)


@task
def plain(source: str, target: str) -> int:
    return _work(source, target)


@cmf_task(inputs=[Dataset("{source}")], outputs=[Dataset("{target}")])
def recorded(source: str, target: str) -> int:
    return _work(source, target)


@flow
def side_by_side(runs: int, warmup: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"plain": [], "recorded": []}
    for i in range(warmup + runs):
        for name, fn, target in (("plain", plain, "plain-out.bin"), ("recorded", recorded, "recorded-out.bin")):
            start = time.perf_counter()
            fn("in.bin", target)
            elapsed = time.perf_counter() - start
            if i >= warmup:  # the first runs register MLMD types and contexts
                times[name].append(elapsed)
    return times


def _p90(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.9)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cmf-bench-prefect-"))
    os.chdir(root)
    os.environ["CMF_PROJECT_ROOT"] = str(root)
    os.environ["CMF_STORE"] = "mlmd"
    for name in ("CMF_GRAPH", "CMF_PIPELINE", "NEO4J_URI"):
        os.environ.pop(name, None)
    (root / "in.bin").write_bytes(os.urandom(1024))
    try:
        with prefect_test_harness(server_startup_timeout=180):
            times = side_by_side(args.runs, args.warmup)
        base, ours = statistics.median(times["plain"]), statistics.median(times["recorded"])
        print(f"task runs measured: {args.runs} of each, alternating, in one flow run (after {args.warmup} warm-up)")
        print(f"plain @task:  median {base * 1000:.2f} ms, p90 {_p90(times['plain']) * 1000:.2f} ms")
        print(f"@cmf_task:    median {ours * 1000:.2f} ms, p90 {_p90(times['recorded']) * 1000:.2f} ms")
        print(
            f"added by @cmf_task: median {(ours - base) * 1000:.2f} ms per task run "
            f"(ratio {ours / base:.2f}x; target < 15 ms)"
        )
    finally:
        os.chdir("/")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
