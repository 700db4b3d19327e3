"""Graph benchmarks on the embedded engine (FalkorDB), with baselines measured in the same run.

    .venv-prefect/bin/python benchmarks/bench_graph.py [--executions 10000] [--sample 300]

1. Graph write cost per task run (2 inputs, 1 output): ``mirror_execution`` (read the
   snapshot, one write of the exact statements, mark synced) against the baseline of
   recording that task run's execution, artifacts and events in MLMD (SQLite).
2. ``graph sync --rebuild`` throughput over a store of ``--executions`` executions, in
   executions per second, against the baseline of only reading their snapshots from MLMD;
   then the same rebuild again over the existing graph (all merges, no creations).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cmf_orchestrate import graph
from cmf_orchestrate.records import ArtifactKind, EventType, ExecutionState
from cmf_orchestrate.settings import CmfSettings
from cmf_orchestrate.store import ArtifactDraft, MetadataStore, open_store
from tests.graph.conftest import FalkorBackend, FalkorServer


def _draft(name: str) -> ArtifactDraft:
    md5 = f"{abs(hash(name)):032x}"[:32]
    return ArtifactDraft(ArtifactKind.DATASET, f"{name}:{md5}", md5, {"Commit": md5, "url": name, "git_repo": ""})


def _record(store: MetadataStore, stage: object, i: int) -> int:
    """One task run: inputs = shared reference data + the previous run's output; one output."""
    execution, _ = store.write_execution(
        execution_id=None,
        type_name="step",
        name=f"bench/step:{i}",
        state=ExecutionState.COMPLETE,
        properties={
            "Execution_uuid": f"uuid-{i}",
            "Context_Type": "step",
            "Execution": "step",
            "Pipeline_Type": "bench",
        },
        custom_properties={"cmf.orchestrator": "cmf", "cmf.attempt": 1, "cmf.run_id": f"run-{i // 100}", "lr": 0.1},
        stage=stage,  # type: ignore[arg-type]
        artifacts=[
            (_draft("data/reference.csv"), EventType.INPUT),
            (_draft(f"data/part-{i - 1}.csv"), EventType.INPUT),
            (_draft(f"data/part-{i}.csv"), EventType.OUTPUT),
        ],
    )
    return execution.id


def _ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1e3:.2f} ms, p90 {statistics.quantiles(values, n=10)[-1] * 1e3:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=300, help="task runs timed one by one")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cmf-bench-graph-") as tmp:
        root = Path(tmp)
        server = FalkorServer(root)
        server.start()
        try:
            settings = CmfSettings(store=str(root / "mlmd"), project_root=root)
            store = open_store(settings.location)
            pipeline = store.pipeline_context("bench")
            stage = store.stage_context(pipeline, "step")
            backend = FalkorBackend(server.graph("bench"))
            backend.ensure_schema()

            # 1. per task run
            record_s: list[float] = []
            mirror_s: list[float] = []
            ids: list[int] = []
            for i in range(args.sample):
                start = time.perf_counter()
                execution_id = _record(store, stage, i)
                record_s.append(time.perf_counter() - start)
                start = time.perf_counter()
                assert graph.mirror_execution(settings, store, execution_id, backend=backend)
                mirror_s.append(time.perf_counter() - start)
                ids.append(execution_id)
            [snapshot] = store.execution_snapshots([ids[-1]])
            statements = graph.statements_for(snapshot, store.store_id)
            write_s = []
            for _ in range(args.sample):
                start = time.perf_counter()
                backend.write(statements)
                write_s.append(time.perf_counter() - start)
            print(f"task run with 2 inputs, 1 output ({args.sample} runs, {len(statements)} statements per write)")
            print(f"  baseline: MLMD record of the run      {_ms(record_s)}")
            print(f"  graph mirror (read + write + mark)    {_ms(mirror_s)}")
            print(f"  graph write alone (one transaction)   {_ms(write_s)}")
            ratio = statistics.median(mirror_s) / statistics.median(record_s)
            print(f"  ratio mirror / MLMD record            {ratio:.2f}")

            # 2. rebuild throughput
            start = time.perf_counter()
            for i in range(args.sample, args.executions):
                _record(store, stage, i)
            print(f"\nstore of {args.executions} executions built in {time.perf_counter() - start:.1f} s")
            all_ids = store.execution_ids()
            start = time.perf_counter()
            count = sum(1 for _ in store.execution_snapshots(all_ids))
            read_rate = count / (time.perf_counter() - start)
            fresh = FalkorBackend(server.graph("rebuild"))
            fresh.ensure_schema()
            first = graph.sync(settings, rebuild=True, store=store, backend=fresh)
            again = graph.sync(settings, rebuild=True, store=store, backend=fresh)
            assert first.ok and again.ok and first.written == count == len(all_ids)
            nodes = fresh.graph.query("MATCH (n) RETURN count(n)").result_set[0][0]
            edges = fresh.graph.query("MATCH ()-[r]->() RETURN count(r)").result_set[0][0]
            print(f"graph sync --rebuild ({graph.DEFAULT_BATCH} executions per transaction)")
            print(f"  baseline: read snapshots from MLMD    {read_rate:,.0f} executions/s")
            print(f"  rebuild into an empty graph           {first.rate:,.0f} executions/s ({first.elapsed_s:.1f} s)")
            print(f"  rebuild over the existing graph       {again.rate:,.0f} executions/s ({again.elapsed_s:.1f} s)")
            print(f"  ratio rebuild / snapshot read         {read_rate / first.rate:.2f}x the read time")
            print(f"  graph: {nodes:,} nodes, {edges:,} relationships")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
