"""Reuse by content: the reuse decision in a large store, and restoring a reused output.

    .venv-prefect/bin/python benchmarks/bench_reuse.py [--executions 100000] [--size-mb 100] [--repeat 15]

The store (SQLite, embedded default) is filled through the store API with
``--executions`` COMPLETE executions, each with its own reuse key and kept outputs, as
recorded task runs leave them; then one real task run with reuse on writes a
``--size-mb`` output. Figures:

  * decision: the reuse decision of a new attempt of that task, as every attempt makes it
    (the key: inputs, parameters, code fingerprint and environment; the indexed lookup;
    the check that the outputs are in the cache), median and 90th percentile in ms;
  * restore: checking the reused output out to its declared path, against a plain copy of
    the same bytes (``shutil.copyfile`` from the cache), as a ratio.

Nothing here is asserted: these are figures to read, not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cmf_orchestrate import CmfSettings, Dataset, RunInfo, task_run
from cmf_orchestrate import _reuse as reuse
from cmf_orchestrate.records import ArtifactKind, EventType, ExecutionState
from cmf_orchestrate.run import open_run
from cmf_orchestrate.store import ArtifactDraft, MetadataStore, open_store
from cmf_orchestrate.transfer import checkout


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def fill(store: MetadataStore, executions: int) -> None:
    """``executions`` COMPLETE executions with distinct reuse keys, in one pipeline of 10 stages."""
    pipeline = store.pipeline_context("filler")
    stages = [store.stage_context(pipeline, f"s{k}") for k in range(10)]
    started = time.perf_counter()
    for number in range(executions):
        md5 = _md5(f"out-{number}")
        output = ArtifactDraft(ArtifactKind.DATASET, f"work/{number}.csv:{md5}", md5, {"url": f"work/{number}.csv"})
        store.write_execution(
            execution_id=None,
            type_name=f"s{number % 10}",
            name=f"filler:{number}",
            state=ExecutionState.COMPLETE,
            properties={"Execution_uuid": _md5(f"uuid-{number}")},
            custom_properties={
                "cmf.reuse_key": hashlib.sha256(str(number).encode()).hexdigest(),
                "cmf.reuse_outputs": json.dumps({"outputs": [md5], "result": None}),
            },
            stage=stages[number % 10],
            artifacts=[(output, EventType.OUTPUT)],
        )
        if number and number % 10_000 == 0:
            rate = number / (time.perf_counter() - started)
            print(f"  {number:,} executions written ({rate:,.0f}/s)", file=sys.stderr)


def make_output(source: str, target: str, size_mb: int) -> None:
    """The task: a ``size_mb`` output derived from its input."""
    seed = Path(source).read_bytes()
    block = hashlib.sha256(seed).digest() * (1 << 15)  # 1 MiB
    with open(target, "wb") as out:
        for _ in range(size_mb):
            out.write(block)


def _stats(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"median {statistics.median(values):7.2f} ms   p90 {p90:7.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="cmf-bench-reuse-"))
    try:
        os.chdir(root)
        settings = CmfSettings(project_root=root)
        store = open_store(settings.location)
        print(f"filling the store with {args.executions:,} executions ...", file=sys.stderr)
        fill(store, args.executions)
        (root / "in.txt").write_text("the input")
        info = RunInfo(
            orchestrator="cmf",
            pipeline="bench",
            stage="make",
            parameters={"size_mb": args.size_mb},
            inputs=[Dataset("in.txt")],
            outputs=[Dataset("out/big.bin")],
        )
        (root / "out").mkdir()
        with task_run(info, settings, reuse=True, func=make_output) as first:
            make_output(str(root / "in.txt"), str(root / "out/big.bin"), args.size_mb)
        assert first.execution.state is ExecutionState.COMPLETE
        md5 = first.outputs[0].md5
        print(f"store: {store.count('executions'):,} executions; output {args.size_mb} MB, md5 {md5}")

        # The decision, as task_run makes it for a new attempt (the attempt itself is opened outside the timing).
        decisions: list[float] = []
        for _ in range(args.repeat):
            run = open_run(info, settings)
            started = time.perf_counter()
            plan = reuse.plan("make", [run.inputs[-1].md5], info.parameters, reuse.ReuseRequest(make_output), {})
            assert plan is not None
            found = reuse.find(run, plan)
            decisions.append((time.perf_counter() - started) * 1000)
            assert found is not None and found[0].id == first.execution_id
            run.fail(RuntimeError("measured only"))
        print(f"reuse decision (key, lookup, availability): {_stats(decisions)}")

        cached = Path(first.versioner._cache().oid_to_path(md5))
        copies: list[float] = []
        restores: list[float] = []
        for _ in range(max(3, args.repeat // 3)):
            (root / "out/big.bin").unlink()
            started = time.perf_counter()
            shutil.copyfile(cached, root / "plain-copy.bin")
            copies.append(time.perf_counter() - started)
            (root / "plain-copy.bin").unlink()
            started = time.perf_counter()
            checkout(root, "out/big.bin", md5)
            restores.append(time.perf_counter() - started)
        copy, restore = statistics.median(copies), statistics.median(restores)
        print(
            f"restore {args.size_mb} MB: plain copy {copy * 1000:.0f} ms, reuse restore {restore * 1000:.0f} ms, "
            f"ratio {restore / copy:.2f}x"
        )
    finally:
        os.chdir("/")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
