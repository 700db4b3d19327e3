"""Metadata store benchmarks, printed as figures and ratios against baselines of the same run.

    .venv-prefect/bin/python benchmarks/bench_store.py [stage] [concurrency] [lineage]

stage        One seed-API stage (context, execution, two 1 KB inputs, one output) on SQLite:
             write transactions and median time, against the same stage through ml-metadata
             (the release before the store was rewritten, run in .venv-compat).
concurrency  16 processes x 100 task runs into one SQLite store and into PostgreSQL: errors,
             executions lost (counted with SQL), executions per second, and PostgreSQL's
             rate against its single writer. Writers start up (imports, one run) before
             the clock starts. For PostgreSQL also the CPU time per task run, of the
             writers and of their server processes, and the rate the cores allow at it.
lineage      Upstream lineage of a model in a store of 100,000 executions that the
             benchmark fills (10,000 runs of a 10-stage pipeline sharing one raw data set).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("DVC_NO_ANALYTICS", "1")

REPO = Path(__file__).resolve().parents[1]
COMPAT_PYTHON = REPO / ".venv-compat" / "bin" / "python"
PG = "postgresql://postgres@127.0.0.1:5432"

STAGE_SCRIPT = """
import json, os, sys, time
from pathlib import Path
from cmf_orchestrate import cmf
os.chdir(sys.argv[1])
for name in ("a.txt", "b.txt"):
    Path(name).write_bytes(os.urandom(1024))
writer = cmf.Cmf(filename="mlmd", pipeline_name="bench")
i = 0
for line in sys.stdin:
    times = []
    for _ in range(int(line)):
        i += 1
        start = time.perf_counter()
        writer.create_context("train")
        writer.create_execution("train", {"i": i})
        writer.log_dataset("a.txt", "input")
        writer.log_dataset("b.txt", "input")
        Path("out.bin").write_bytes(str(i).encode())
        writer.log_dataset("out.bin", "output")
        writer.finalize()
        times.append(time.perf_counter() - start)
    print(json.dumps(times), flush=True)
"""
# Stages are timed in blocks, ours and the baseline's in turn, so that both see the same
# load of a shared machine; the first stages of each (imports, types, contexts) are left out.
_BLOCKS = 10
_WARM_UP = 5


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
    baseline = _MlmdBaseline.start()
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
        times: list[float] = []
        theirs: list[float] = []

        def ours(n: int) -> None:
            for _ in range(n):
                i = len(times)
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

        ours(_WARM_UP)
        if baseline is not None:
            baseline.run(_WARM_UP)
        block = max(1, repeat // _BLOCKS)
        for _ in range(_BLOCKS):
            ours(block)
            if baseline is not None:
                theirs += baseline.run(block)
        steady, tx = times[_WARM_UP:], writes[_WARM_UP:]
        median = statistics.median(steady)
        print(
            f"seed-API stage (context, execution, 2 x 1 KB inputs, 1 output), SQLite: median {median * 1000:.2f} ms, "
            f"p10 {_percentile(steady, 0.1) * 1000:.2f} ms, p90 {_percentile(steady, 0.9) * 1000:.2f} ms, "
            f"write transactions per stage: {max(tx)} (targets: median <= 3 ms, <= 2 transactions)"
        )
    finally:
        os.chdir(cwd)
        shutil.rmtree(root, ignore_errors=True)
        if baseline is not None:
            baseline.close()
    if baseline is None or not theirs:
        return
    other = statistics.median(theirs)
    print(
        f"same stage through ml-metadata (previous release, .venv-compat): median {other * 1000:.2f} ms, "
        f"p10 {_percentile(theirs, 0.1) * 1000:.2f} ms; ratio of medians {other / median:.1f}x faster (target >= 3x)"
    )


class _MlmdBaseline:
    """The stage through the release that wrote with ml-metadata, in the environment that has it.

    A process of its own, which times as many stages as it is asked for, when asked.
    """

    def __init__(self, tree: Path, process: subprocess.Popen[str]) -> None:
        self.tree = tree
        self.process = process

    @classmethod
    def start(cls) -> _MlmdBaseline | None:
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
        archive = subprocess.run(
            ["git", "archive", f"{deletion}^", "cmf_orchestrate"], cwd=REPO, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        env = {**os.environ, "PYTHONPATH": str(tree), "GLOG_minloglevel": "2"}
        process = subprocess.Popen(
            [str(COMPAT_PYTHON), "-c", STAGE_SCRIPT, str(work)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=work,
        )
        return cls(tree, process)

    def run(self, n: int) -> list[float]:
        """Seconds of each of ``n`` more stages (none when the baseline has failed)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(f"{n}\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except OSError:
            line = ""
        if not line:
            print("ml-metadata baseline failed")
            return []
        times: list[float] = json.loads(line)
        return times

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(60)
        shutil.rmtree(self.tree, ignore_errors=True)


# -- concurrency ---------------------------------------------------------------------------------


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine_cpu_s() -> tuple[float, float]:
    """Seconds the machine's cores have been busy and in all, since boot (every process's, from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / ticks, sum(fields[:8]) / ticks


def _runs(
    args: tuple[str, str, int, int, Any],
) -> tuple[int, int, float, float, float, tuple[float, float], tuple[float, float]]:
    """One writer's task runs: how many, how many failed, their CPU seconds in this process, start and end
    time, and the machine's busy and total CPU seconds at both.

    The writer first imports the package and records one run of its own (a process's
    start-up, not a task run's cost), then waits until every writer is ready.
    """
    store, root, worker, runs, ready = args
    from cmf_orchestrate import CmfSettings, Dataset, RunInfo, task_run

    os.chdir(root)
    settings = CmfSettings(store=store, project_root=Path(root))
    warm = f"out/w{worker}-warm.txt"
    with task_run(RunInfo("cmf", "load", f"task-{worker % 4}", outputs=[Dataset(warm)]), settings):
        Path(warm).write_text("warm\n")
    ready.wait()
    started, cpu, machine = time.time(), _cpu_s(), _machine_cpu_s()
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
    return runs, errors, _cpu_s() - cpu, started, time.time(), machine, _machine_cpu_s()


@dataclass
class _Load:
    """What a load of task runs measured."""

    elapsed_s: float
    runs: int
    errors: int
    states: dict[str, int]
    client_cpu_s: float
    server_cpu_s: float
    #: CPU seconds the whole machine was busy, and had, while the runs went on (other programs' too).
    machine_busy_s: float
    machine_total_s: float

    def lost(self) -> int:
        """Task runs not recorded COMPLETE (the writers' warm-up runs are not counted)."""
        return self.runs - self.states.get("COMPLETE", 0)


def _load(store: str, processes: int, runs: int) -> _Load:
    root = Path(tempfile.mkdtemp(prefix="cmf-bench-load-"))
    (root / "out").mkdir()
    (root / "shared.txt").write_text("input\n")
    try:
        from cmf_orchestrate import CmfSettings
        from cmf_orchestrate.store import open_store

        open_store(CmfSettings(store=store, project_root=root).location)  # the schema, once
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager, context.Pool(processes) as pool:
            ready = manager.Barrier(processes)
            waiting = pool.map_async(_runs, [(store, str(root), w, runs, ready) for w in range(processes)], 1)
            done = waiting.get()
            # The writers' backends are still connected: their CPU time is there to read.
            server = _server_cpu_s(store) if store.startswith("postgresql") else 0.0
        states = _count(store, root)
        states["COMPLETE"] = states.get("COMPLETE", 0) - processes  # the warm-up runs
        return _Load(
            elapsed_s=max(d[4] for d in done) - min(d[3] for d in done),
            runs=sum(d[0] for d in done),
            errors=sum(d[1] for d in done),
            states=states,
            client_cpu_s=sum(d[2] for d in done),
            server_cpu_s=server,
            machine_busy_s=max(done, key=lambda d: d[4])[6][0] - min(done, key=lambda d: d[3])[5][0],
            machine_total_s=max(done, key=lambda d: d[4])[6][1] - min(done, key=lambda d: d[3])[5][1],
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _server_cpu_s(store: str) -> float:
    """CPU seconds (user + system) that the server processes of ``store``'s other connections have used.

    The server runs on this machine: its backends' times are read from /proc. Includes
    each writer's warm-up run, a small share of the total.
    """
    from sqlalchemy import text

    from cmf_orchestrate import CmfSettings
    from cmf_orchestrate.store._engine import database_for

    db = database_for(CmfSettings(store=store).location)
    query = text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
    with db.engine.connect() as conn:
        pids = [int(p) for (p,) in conn.execute(query)]
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


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


def _per_run(load: _Load) -> str:
    wall = load.elapsed_s / load.runs * 1000
    client = load.client_cpu_s / load.runs * 1000
    server = load.server_cpu_s / load.runs * 1000
    ours = (load.client_cpu_s + load.server_cpu_s) / max(load.machine_total_s, 1e-9) * 100
    busy = load.machine_busy_s / max(load.machine_total_s, 1e-9) * 100
    return (
        f"wall {wall:.2f} ms, CPU {client:.2f} ms in the writer + {server:.2f} ms in the server "
        f"(the cores were {busy:.0f}% busy, {ours:.0f}% with this benchmark)"
    )


def bench_concurrency(processes: int, runs: int) -> None:
    """Executions per second with many writers; for PostgreSQL, against one writer and against the cores' limit.

    Every writer first starts up (imports, one task run of its own), then all start
    together: the rates are of task runs, not of starting Python processes.
    """
    total = processes * runs
    sqlite_root = Path(tempfile.mkdtemp(prefix="cmf-bench-sqlite-"))
    try:
        load = _load(str(sqlite_root / "mlmd"), processes, runs)
        print(
            f"SQLite, {processes} processes x {runs} task runs: {load.errors} errors, {load.lost()} lost, "
            f"{load.states.get('RUNNING', 0)} left RUNNING, {total / load.elapsed_s:.0f} executions/s"
        )
    finally:
        shutil.rmtree(sqlite_root, ignore_errors=True)
    single_db, many_db = _pg_database(), _pg_database()
    try:
        one = _load(f"{PG}/{single_db}", 1, runs * 2)
        many = _load(f"{PG}/{many_db}", processes, runs)
        single, rate = one.runs / one.elapsed_s, many.runs / many.elapsed_s
        print(
            f"PostgreSQL, {processes} processes x {runs} task runs: {many.errors} errors, {many.lost()} lost, "
            f"{many.states.get('RUNNING', 0)} left RUNNING, {rate:.0f} executions/s; single writer "
            f"{single:.0f} executions/s ({one.errors} errors); ratio {rate / single:.1f}x (target >= 3x)"
        )
        # Writers and server share this machine's cores: at the CPU a task run costs, the
        # cores cannot run more than this many per second, however many writers wait.
        cores = os.cpu_count() or 1
        cpu_per_run = (many.client_cpu_s + many.server_cpu_s) / many.runs
        limit = cores / cpu_per_run
        print(
            f"  per task run: single writer {_per_run(one)}; {processes} writers {_per_run(many)}; "
            f"{cores} cores at that CPU cost allow at most {limit:.0f} executions/s, "
            f"{limit / single:.1f}x the single writer"
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
