"""Quiet workers: a new worker process opening a shared store writes nothing that already
exists and makes the server log no error, also when several start at once.

The PostgreSQL cluster is our own, logging every statement that writes (``log_statement =
mod``), so the test reads exactly what each process sent.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from own_servers import PostgresCluster

PASSWORD = "Quiet-Workers-5e1f"

_TASK = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from cmf_orchestrate import CmfSettings, Dataset, RunInfo, task_run

    root = Path(sys.argv[2])
    root.mkdir(parents=True, exist_ok=True)
    settings = CmfSettings(store=sys.argv[1], project_root=root)
    info = RunInfo("cmf", "shared", "step", outputs=[Dataset("out.txt")])
    with task_run(info, settings):
        (root / "out.txt").write_text(sys.argv[3])
    """
)

#: Tables a process writes only when what it needs is not there yet.
_SETUP_TABLES = ("type", "typeproperty", "parenttype", "context", "contextproperty", "parentcontext", "mlmdenv")


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    with PostgresCluster(PASSWORD) as server:
        server.psql("ALTER SYSTEM SET log_statement = 'mod'")
        server.psql("SELECT pg_reload_conf()")
        yield server


def _workers(cluster: PostgresCluster, tmp_path: Path, names: list[str]) -> None:
    script = tmp_path / "task.py"
    script.write_text(_TASK)
    started = [
        subprocess.Popen(
            [sys.executable, str(script), cluster.url(), str(tmp_path / name), name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    for process in started:
        _, err = process.communicate(timeout=180)
        assert process.returncode == 0, err[-3000:]
        assert "ERROR" not in err and "duplicate key" not in err, err[-3000:]


def _tables_written(log: str) -> set[str]:
    found = re.finditer(r"(?:INSERT INTO|UPDATE|DELETE FROM)\s+(\S+)", log, flags=re.IGNORECASE)
    return {match.group(1).lower().strip('"') for match in found}


def _log_since(cluster: PostgresCluster, offset: int) -> str:
    return (cluster.base / "log").read_bytes()[offset:].decode(errors="replace")


def test_new_processes_write_only_their_executions_and_log_no_error(cluster: PostgresCluster, tmp_path: Path) -> None:
    log = cluster.base / "log"
    before = log.stat().st_size
    # Two brand-new workers race to create the schema, the types and the contexts.
    _workers(cluster, tmp_path, ["first-a", "first-b"])
    racing = _log_since(cluster, before)
    assert "ERROR" not in racing, [line for line in racing.splitlines() if "ERROR" in line][:5]
    assert {"type", "context", "parentcontext"} <= _tables_written(racing)  # the log shows setup writes

    after_setup = log.stat().st_size
    _workers(cluster, tmp_path, ["next-a", "next-b", "next-c"])
    later = _log_since(cluster, after_setup)
    assert "ERROR" not in later, [line for line in later.splitlines() if "ERROR" in line][:5]
    written = _tables_written(later)
    assert written, "the log holds no write: log_statement is not in effect"
    assert not written & set(_SETUP_TABLES), sorted(written)
    assert "execution" in written and "event" in written
