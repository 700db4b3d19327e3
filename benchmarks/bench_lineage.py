"""`cmf-orchestrate lineage --up` on a large store, with the query alone as the baseline.

    .venv-prefect/bin/python benchmarks/bench_lineage.py [--runs 1000] [--stages 10] [--repeat 15]

The store (SQLite, embedded default) is written through the store API every task run
uses: ``--runs`` pipeline runs of ``--stages`` stages, each execution reading the
previous stage's output (the first stage reads the shared raw data) and the shared
environment, and writing three artifacts (its output, a metrics file and a log); the last
stage's output is a Model. With the defaults: 10,000 executions, 30,000+ artifacts.

The last 10 % of the runs are continual training: their first stage also reads the
previous run's model, so the newest model's upstream spans all of those runs.

Figures, for the newest model of an independent run and for the continual model:
  * query:  ``CmfQuery.lineage(..., "up")`` alone (baseline);
  * cli:    ``lineage MODEL --up --format json -o FILE`` through the Click entry point,
            in-process (artifact lookup + query + conversion + rendering + writing);
  * ratio cli / query;
and, once, the same command as a new process (Python start-up and imports included).
Nothing here is asserted: these are figures to read, not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from click.testing import CliRunner

from cmf_orchestrate import CmfQuery
from cmf_orchestrate.cli import cli
from cmf_orchestrate.records import ArtifactKind, EventType, ExecutionState
from cmf_orchestrate.settings import CmfSettings
from cmf_orchestrate.store import ArtifactDraft, MetadataStore, open_store


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _artifact(kind: ArtifactKind, path: str, execution: int | None = None) -> ArtifactDraft:
    md5 = _md5(path)
    if kind is ArtifactKind.MODEL:
        props = {"model_framework": "sklearn", "model_type": "forest", "model_name": "model"}
        props.update({"Commit": md5, "url": path})
        return ArtifactDraft(kind, f"{path}:{md5}:{execution}", md5, props)
    if kind is ArtifactKind.METRICS:
        return ArtifactDraft(kind, f"{path}:{md5}", md5, {"metrics_name": path}, {"accuracy": 0.9})
    return ArtifactDraft(kind, f"{path}:{md5}", md5, {"git_repo": "", "Commit": md5, "url": path})


def build(store: MetadataStore, runs: int, stages: int) -> tuple[str, str]:
    """Write the store; return the names of the newest independent model and the continual model."""
    pipeline = store.pipeline_context("bench")
    contexts = [store.stage_context(pipeline, f"s{k}") for k in range(stages)]
    environment = _artifact(ArtifactKind.ENVIRONMENT, ".cmf-orchestrate/environments/python_env.txt")
    raw = _artifact(ArtifactKind.DATASET, "data/raw.csv")
    continual_from = runs - max(1, runs // 10)
    independent = continual = ""
    previous_model: ArtifactDraft | None = None
    for run in range(runs):
        upstream = raw
        for k, stage in enumerate(contexts):
            number = run * stages + k
            last = k == stages - 1
            inputs = [(environment, EventType.INPUT), (upstream, EventType.INPUT)]
            if k == 0 and run > continual_from and previous_model is not None:
                inputs.append((previous_model, EventType.INPUT))
            output = (
                _artifact(ArtifactKind.MODEL, f"models/run{run}/model.pkl", number)
                if last
                else _artifact(ArtifactKind.DATASET, f"work/run{run}/s{k}.parquet")
            )
            store.write_execution(
                execution_id=None,
                type_name=f"s{k}",
                name=f"bench/s{k}:{run}",
                state=ExecutionState.COMPLETE,
                properties={
                    "Execution_uuid": _md5(f"uuid-{number}"),
                    "Context_Type": f"s{k}",
                    "Context_ID": stage.id,
                    "Execution": f"steps:s{k}",
                    "Pipeline_Type": "bench",
                    "Pipeline_id": pipeline.id,
                },
                custom_properties={"cmf.orchestrator": "cmf", "cmf.run_id": f"run-{run}", "lr": 0.1, "k": k},
                stage=stage,
                artifacts=[
                    *inputs,
                    (output, EventType.OUTPUT),
                    (_artifact(ArtifactKind.METRICS, f"metrics/run{run}/s{k}.json"), EventType.OUTPUT),
                    (_artifact(ArtifactKind.DATASET, f"logs/run{run}/s{k}.log"), EventType.OUTPUT),
                ],
            )
            upstream = output
        previous_model = upstream
        if run == continual_from - 1:
            independent = upstream.name
        continual = upstream.name
    return independent, continual


def _stats(values: list[float]) -> str:
    low, high, mid = min(values) * 1e3, max(values) * 1e3, statistics.median(values) * 1e3
    return f"median {mid:7.1f} ms   min {low:7.1f} ms   max {high:7.1f} ms"


def measure(root: Path, settings: CmfSettings, model: str, repeat: int, label: str) -> None:
    query = CmfQuery(settings=settings)
    graph = query.lineage(model, "up")
    executions = sum(1 for n in graph.nodes if n.kind == "execution")
    artifacts = sum(1 for n in graph.nodes if n.kind == "artifact")
    query_s: list[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        query.lineage(model, "up")
        query_s.append(time.perf_counter() - start)
    runner = CliRunner()
    out = root / "lineage.json"
    args = ["--project-root", str(root), "lineage", model, "--up", "--format", "json", "-o", str(out)]
    cli_s: list[float] = []
    tree_s: list[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = runner.invoke(cli, args, catch_exceptions=False)
        cli_s.append(time.perf_counter() - start)
        assert result.exit_code == 0, result.output
        start = time.perf_counter()
        result = runner.invoke(cli, ["--project-root", str(root), "lineage", model, "--up"], catch_exceptions=False)
        tree_s.append(time.perf_counter() - start)
    print(f"\n{label}: {model}")
    print(f"  upstream graph: {executions:,} executions, {artifacts:,} artifacts, {len(graph.edges):,} edges")
    print(f"  query  CmfQuery.lineage(up)              {_stats(query_s)}")
    print(f"  cli    lineage --up --format json -o F   {_stats(cli_s)}")
    print(f"  cli    lineage --up (tree)               {_stats(tree_s)}")
    print(f"  ratio  cli json / query                  {statistics.median(cli_s) / statistics.median(query_s):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--stages", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cmf-bench-lineage-") as tmp:
        root = Path(tmp)
        settings = CmfSettings(store="mlmd", project_root=root)
        store = open_store(settings.location)
        start = time.perf_counter()
        independent, continual = build(store, args.runs, args.stages)
        built = time.perf_counter() - start
        executions = len(store.executions())
        artifacts = len(store.artifacts())
        print(f"store: {executions:,} executions, {artifacts:,} artifacts (SQLite), written in {built:.1f} s")
        measure(root, settings, independent, args.repeat, "newest model of an independent run")
        measure(root, settings, continual, args.repeat, "newest model of the continual-training runs")

        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        command = [sys.executable, "-m", "cmf_orchestrate.cli", "--project-root", str(root), "lineage", independent]
        start = time.perf_counter()
        done = subprocess.run(
            [*command, "--up", "--format", "json", "-o", str(root / "p.json")],
            env=env,
            check=False,
            capture_output=True,
        )
        wall = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import cmf_orchestrate.cli"], env=env, check=True)
        imports = time.perf_counter() - start
        print(f"\nnew process: lineage --up (independent model) {wall * 1e3:.0f} ms wall, exit {done.returncode};")
        print(f"  of which Python start-up + `import cmf_orchestrate.cli` {imports * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
