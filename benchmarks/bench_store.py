"""Metadata store benchmarks, printed as figures and ratios against baselines of the same run.

    .venv-prefect/bin/python benchmarks/bench_store.py [stage] [concurrency] [lineage]

stage        One seed-API stage (context, execution, two 1 KB inputs, one output) on SQLite:
             write transactions and median time, against the same stage through ml-metadata
             (the release before the store was rewritten, run in .venv-compat).
concurrency  16 processes x 100 task runs into one SQLite store and into PostgreSQL: errors,
             executions lost (counted with SQL), executions per second, and PostgreSQL's
             rate against its single writer.
lineage      Upstream lineage of a model in a store of 100,000 executions that the
             benchmark fills (10,000 runs of a 10-stage pipeline sharing one raw data set).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("DVC_NO_ANALYTICS", "1")

REPO = Path(__file__).resolve().parents[1]
COMPAT_PYTHON = REPO / ".venv-compat" / "bin" / "python"
PG = "postgresql://postgres@127.0.0.1:5432"

STAGE_SCRIPT = """
import os, statistics, sys, time
from pathlib import Path
from cmf_orchestrate import cmf
repeat = int(sys.argv[1])
os.chdir(sys.argv[2])
for name in ("a.txt", "b.txt"):
    Path(name).write_bytes(os.urandom(1024))
writer = cmf.Cmf(filename="mlmd", pipeline_name="bench")
times = []
for i in range(repeat + 5):
    start = time.perf_counter()
    writer.create_context("train")
    writer.create_execution("train", {"i": i})
    writer.log_dataset("a.txt", "input")
    writer.log_dataset("b.txt", "input")
    Path("out.bin").write_bytes(str(i).encode())
    writer.log_dataset("out.bin", "output")
    writer.finalize()
    times.append(time.perf_counter() - start)
print(statistics.median(times[5:]))
"""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def bench_stage(repeat: int) -> None:
    from sqlalchemy import event

    from cmf_orchestrate import cmf
    from cmf_orchestrate.settings import CmfSettings
    from cmf_orchestrate.store._engine import database_for

    root = Path(tempfile.mkdtemp(prefix="cmf-bench-stage-"))
    cwd = Path.cwd()
    os.chdir(root)
    try:
        for name in ("a.txt", "b.txt"):
            Path(name).write_bytes(os.urandom(1024))
        writer = cmf.Cmf(filename="mlmd", pipeline_name="bench")
        writes: list[int] = []
        engine = database_for(CmfSettings(store="mlmd").location).engine

        def count(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
            if statement.startswith("BEGIN IMMEDIATE"):
                writes[-1] += 1

        event.listen(engine, "before_cursor_execute", count)
        times = []
        for i in range(repeat + 5):
            writes.append(0)
            start = time.perf_counter()
            writer.create_context("train")
            writer.create_execution("train", {"i": i})
            writer.log_dataset("a.txt", "input")
            writer.log_dataset("b.txt", "input")
            Path("out.bin").write_bytes(str(i).encode())
            writer.log_dataset("out.bin", "output")
            writer.finalize()
            times.append(time.perf_counter() - start)
        steady, tx = times[5:], writes[5:]
        ours = statistics.median(steady)
        print(
            f"seed-API stage (context, execution, 2 x 1 KB inputs, 1 output), SQLite: median {ours * 1000:.2f} ms, "
            f"p90 {_percentile(steady, 0.9) * 1000:.2f} ms, write transactions per stage: {max(tx)} "
            "(targets: median <= 3 ms, <= 2 transactions)"
        )
    finally:
        os.chdir(cwd)
        shutil.rmtree(root, ignore_errors=True)
    baseline = _mlmd_baseline(repeat)
    if baseline is None:
        return
    print(
        f"same stage through ml-metadata (previous release, .venv-compat): median {baseline * 1000:.2f} ms; "
        f"ratio {baseline / ours:.1f}x faster (target >= 3x)"
    )


def _mlmd_baseline(repeat: int) -> float | None:
    """The stage through the release that wrote with ml-metadata, in the environment that has it."""
    if not COMPAT_PYTHON.is_file():
        print("ml-metadata baseline skipped: .venv-compat is missing (`make test` builds it)")
        return None
    deletion = subprocess.run(
        ["git", "rev-list", "-1", "HEAD", "--", "cmf_orchestrate/store.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tree = Path(tempfile.mkdtemp(prefix="cmf-bench-mlmd-"))
    work = tree / "project"
    work.mkdir()
    try:
        archive = subprocess.run(
            ["git", "archive", f"{deletion}^", "cmf_orchestrate"], cwd=REPO, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        env = {**os.environ, "PYTHONPATH": str(tree), "GLOG_minloglevel": "2"}
        done = subprocess.run(
            [str(COMPAT_PYTHON), "-c", STAGE_SCRIPT, str(repeat), str(work)],
            capture_output=True,
            text=True,
            env=env,
            cwd=work,
            check=False,
        )
        if done.returncode != 0:
            print(f"ml-metadata baseline failed: {done.stderr.strip()[-800:]}")
            return None
        return float(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(tree, ignore_errors=True)


# -- concurrency ---------------------------------------------------------------------------------


def _runs(args: tuple[str, str, int, int]) -> tuple[int, int]:
    store, root, worker, runs = args
    from cmf_orchestrate import CmfSettings, Dataset, RunInfo, task_run

    os.chdir(root)
    settings = CmfSettings(store=store, project_root=Path(root))
    errors = 0
    for run in range(runs):
        name = f"out/w{worker}-r{run}.txt"
        info = RunInfo("cmf", "load", f"task-{worker % 4}", inputs=[Dataset("shared.txt")], outputs=[Dataset(name)])
        try:
            with task_run(info, settings):
                Path(name).write_text(f"{worker} {run}\n")
        except Exception as exc:  # noqa: BLE001 - a benchmark counts every failure
            errors += 1
            print(f"worker {worker} run {run}: {exc}", file=sys.stderr)
    return runs, errors


def _load(store: str, processes: int, runs: int) -> tuple[float, int, int, dict[str, int]]:
    root = Path(tempfile.mkdtemp(prefix="cmf-bench-load-"))
    (root / "out").mkdir()
    (root / "shared.txt").write_text("input\n")
    try:
        from cmf_orchestrate import CmfSettings
        from cmf_orchestrate.store import open_store

        open_store(CmfSettings(store=store, project_root=root).location)  # the schema, once
        context = multiprocessing.get_context("spawn")
        with context.Pool(processes) as pool:
            start = time.perf_counter()
            done = pool.map(_runs, [(store, str(root), w, runs) for w in range(processes)])
            elapsed = time.perf_counter() - start
        counts = _count(store, root)
        return elapsed, sum(d[0] for d in done), sum(d[1] for d in done), counts
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _count(store: str, root: Path) -> dict[str, int]:
    from sqlalchemy import text

    from cmf_orchestrate import CmfSettings
    from cmf_orchestrate.store._engine import database_for

    db = database_for(CmfSettings(store=store, project_root=root).location)
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT last_known_state, COUNT(*) FROM Execution GROUP BY last_known_state"))
        names = {2: "RUNNING", 3: "COMPLETE", 4: "FAILED"}
        return {names.get(int(k), str(k)): int(v) for k, v in rows}


def _pg_database() -> str:
    name = f"cmf_bench_{uuid.uuid4().hex[:8]}"
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f'CREATE DATABASE "{name}"'], check=True)
    return name


def _drop_pg(name: str) -> None:
    sql = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=False)


def bench_concurrency(processes: int, runs: int) -> None:
    total = processes * runs
    sqlite_root = Path(tempfile.mkdtemp(prefix="cmf-bench-sqlite-"))
    try:
        elapsed, _, errors, counts = _load(str(sqlite_root / "mlmd"), processes, runs)
        lost = total - counts.get("COMPLETE", 0)
        print(
            f"SQLite, {processes} processes x {runs} task runs: {errors} errors, {lost} lost, "
            f"{counts.get('RUNNING', 0)} left RUNNING, {total / elapsed:.0f} executions/s"
        )
    finally:
        shutil.rmtree(sqlite_root, ignore_errors=True)
    single_db, many_db = _pg_database(), _pg_database()
    try:
        elapsed1, _, errors1, _ = _load(f"{PG}/{single_db}", 1, runs * 2)
        single = runs * 2 / elapsed1
        elapsed, _, errors, counts = _load(f"{PG}/{many_db}", processes, runs)
        lost = total - counts.get("COMPLETE", 0)
        rate = total / elapsed
        print(
            f"PostgreSQL, {processes} processes x {runs} task runs: {errors} errors, {lost} lost, "
            f"{counts.get('RUNNING', 0)} left RUNNING, {rate:.0f} executions/s; single writer "
            f"{single:.0f} executions/s ({errors1} errors); ratio {rate / single:.1f}x (target >= 3x)"
        )
    finally:
        _drop_pg(single_db)
        _drop_pg(many_db)


# -- lineage -------------------------------------------------------------------------------------


def bench_lineage(runs: int, stages: int, repeat: int) -> None:
    from sqlalchemy import func, select

    from cmf_orchestrate import CmfQuery, CmfSettings, Dataset, RunInfo, task_run
    from cmf_orchestrate.store import _schema as s
    from cmf_orchestrate.store import open_store
    from cmf_orchestrate.store._engine import database_for

    root = Path(tempfile.mkdtemp(prefix="cmf-bench-lineage-"))
    cwd = Path.cwd()
    os.chdir(root)
    try:
        settings = CmfSettings(store="mlmd", project_root=root)
        # One real run of the pipeline registers the types and contexts and gives the shapes.
        Path("raw.csv").write_text("raw\n")
        previous = "raw.csv"
        for k in range(stages):
            out = f"d{k}.csv" if k < stages - 1 else "model.pkl"
            with task_run(RunInfo("cmf", "big", f"s{k}", inputs=[Dataset(previous)], outputs=[Dataset(out)]), settings):
                Path(out).write_text(f"{k}\n")
            previous = out
        store = open_store(settings.location)
        db = database_for(settings.location)
        first = store.executions(limit=stages)
        stage_ids = [e.stage_id for e in first]
        pipeline_id = first[0].pipeline_id
        exec_types = [store.execution_type_id(f"s{k}") for k in range(stages)]
        from cmf_orchestrate.records import ArtifactKind

        dataset_type = store.artifact_type_id(ArtifactKind.DATASET)
        raw = store.artifacts(url="raw.csv")[0].id
        env = store.artifacts(type_name="Environment")[0].id
        start = time.perf_counter()
        with db.engine.begin() as conn:
            next_exec = int(conn.execute(select(func.max(s.EXECUTION.c.id))).scalar() or 0) + 1
            next_art = int(conn.execute(select(func.max(s.ARTIFACT.c.id))).scalar() or 0) + 1
            now = int(time.time() * 1000)
            for batch in range(0, runs, 500):
                executions, eprops, artifacts, aprops, events, assoc, attrib = [], [], [], [], [], [], []
                for r in range(batch, min(runs, batch + 500)):
                    source = raw
                    for k in range(stages):
                        e, a = next_exec, next_art
                        next_exec, next_art = next_exec + 1, next_art + 1
                        executions.append(
                            {
                                "id": e,
                                "type_id": exec_types[k],
                                "name": f"big/s{k}:{r}",
                                "last_known_state": 3,
                                "create_time_since_epoch": now,
                                "last_update_time_since_epoch": now,
                            }
                        )
                        for name, iv, sv in (
                            ("Context_ID", stage_ids[k], None),
                            ("Pipeline_id", pipeline_id, None),
                            ("Pipeline_Type", None, "big"),
                            ("Execution_uuid", None, f"{r}-{k}"),
                        ):
                            eprops.append(
                                {
                                    "execution_id": e,
                                    "name": name,
                                    "is_custom_property": False,
                                    "int_value": iv,
                                    "double_value": None,
                                    "string_value": sv,
                                }
                            )
                        path = f"runs/{r}/d{k}.csv"
                        artifacts.append(
                            {
                                "id": a,
                                "type_id": dataset_type,
                                "uri": f"{r:016x}{k:016x}",
                                "state": 2,
                                "name": f"{path}:{r:016x}{k:016x}",
                                "create_time_since_epoch": now,
                                "last_update_time_since_epoch": now,
                            }
                        )
                        aprops.append(
                            {
                                "artifact_id": a,
                                "name": "url",
                                "is_custom_property": False,
                                "int_value": None,
                                "double_value": None,
                                "string_value": path,
                            }
                        )
                        for art, kind in ((source, 3), (env, 3), (a, 4)):
                            events.append(
                                {"artifact_id": art, "execution_id": e, "type": kind, "milliseconds_since_epoch": now}
                            )
                        assoc.append({"context_id": stage_ids[k], "execution_id": e})
                        attrib.append({"context_id": stage_ids[k], "artifact_id": a})
                        source = a
                conn.execute(s.EXECUTION.insert(), executions)
                conn.execute(s.EXECUTION_PROPERTY.insert(), eprops)
                conn.execute(s.ARTIFACT.insert(), artifacts)
                conn.execute(s.ARTIFACT_PROPERTY.insert(), aprops)
                conn.execute(s.EVENT.insert(), events)
                conn.execute(s.ASSOCIATION.insert(), assoc)
                conn.execute(s.ATTRIBUTION.insert(), attrib)
        fill = time.perf_counter() - start
        total = store.count("executions")
        target = f"runs/{runs - 1}/d{stages - 1}.csv"
        query = CmfQuery("mlmd", settings=settings)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            graph = query.lineage(target, "up")
            times.append(time.perf_counter() - start)
        executions_found = len([n for n in graph.nodes if n.kind == "execution"])
        raw_down = []
        for _ in range(3):
            start = time.perf_counter()
            down = query.lineage("raw.csv", "down", depth=1, contexts=False)
            raw_down.append(time.perf_counter() - start)
        print(
            f"lineage up of a model in a {total}-execution store (filled in {fill:.0f} s): median "
            f"{statistics.median(times) * 1000:.1f} ms, p90 {_percentile(times, 0.9) * 1000:.1f} ms, "
            f"{executions_found} executions found (target <= 100 ms); one hop down from the raw data set "
            f"({len(down.nodes)} nodes): {statistics.median(raw_down) * 1000:.0f} ms"
        )
    finally:
        os.chdir(cwd)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="*", default=["stage", "concurrency", "lineage"])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--processes", type=int, default=16)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--lineage-runs", type=int, default=10_000)
    args = parser.parse_args()
    if "stage" in args.parts:
        bench_stage(args.repeat)
    if "concurrency" in args.parts:
        bench_concurrency(args.processes, args.runs)
    if "lineage" in args.parts:
        bench_lineage(args.lineage_runs, 10, 20)


if __name__ == "__main__":
    main()
