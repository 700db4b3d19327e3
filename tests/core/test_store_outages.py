"""A long-lived process outlives a database restart, and a frozen database gives a bounded error.

Each test runs its own PostgreSQL cluster (or MariaDB server) on its own loopback port, so
it can restart and SIGSTOP it without disturbing anything else.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from own_servers import MariaDBServer, PostgresCluster

from cmf_orchestrate import CmfQuery, CmfSettings, Dataset, ExecutionState, RunInfo, task_run
from cmf_orchestrate.errors import StoreUnavailableError
from cmf_orchestrate.store._engine import database_for

PASSWORD = "Outage-pw-7f3a9c"
# A liveness bound, not a benchmark: with ?timeout=2 the error comes in a few seconds.
FROZEN_BOUND_S = 30.0
CLI = Path(sys.executable).with_name("cmf-orchestrate")


@pytest.fixture
def pg_cluster() -> Iterator[PostgresCluster]:
    with PostgresCluster(PASSWORD) as cluster:
        yield cluster


@pytest.fixture
def mariadb_server() -> Iterator[MariaDBServer]:
    with MariaDBServer(PASSWORD) as server:
        yield server


def _record(settings: CmfSettings, stage: str) -> int:
    out = Path(f"out/{stage}.txt")
    with task_run(RunInfo("cmf", "outage", stage, outputs=[Dataset(str(out))]), settings) as run:
        out.parent.mkdir(exist_ok=True)
        out.write_text(f"{stage}\n")
    assert run.execution_id is not None
    return run.execution_id


def _states(url: str) -> dict[int, ExecutionState]:
    return {e.id: e.state for e in CmfQuery(url).store.executions()}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("server", ["pg_cluster", "mariadb_server"])
def test_a_long_lived_process_records_across_a_server_restart(
    server: str, project: Path, request: pytest.FixtureRequest
) -> None:
    own: PostgresCluster | MariaDBServer = request.getfixturevalue(server)
    settings = CmfSettings(store=own.url(), project_root=project)
    before = _record(settings, "before")
    engine = database_for(settings.location).engine

    own.restart()  # every pooled connection of this process is now dead

    after = _record(settings, "after")
    again = _record(settings, "again")
    # The same pooled engine reconnected: no new process, no reopening of the store.
    assert database_for(settings.location).engine is engine
    assert _states(own.url()) == {
        before: ExecutionState.COMPLETE,
        after: ExecutionState.COMPLETE,
        again: ExecutionState.COMPLETE,
    }


@pytest.mark.timeout(300)
@pytest.mark.parametrize("server", ["pg_cluster", "mariadb_server"])
def test_a_task_run_waits_for_a_server_that_is_restarting(
    server: str, project: Path, request: pytest.FixtureRequest
) -> None:
    own: PostgresCluster | MariaDBServer = request.getfixturevalue(server)
    settings = CmfSettings(store=own.url("?connect_timeout=20"), project_root=project)
    before = _record(settings, "before")

    own.halt()  # connections are refused until the server is back
    back = threading.Timer(2.0, own.start)
    back.start()
    try:
        start = time.monotonic()
        after = _record(settings, "during-restart")
        waited = time.monotonic() - start
    finally:
        back.join()

    assert waited >= 1.0, "the server was down: the task run must have waited for it"
    assert _states(own.url()) == {before: ExecutionState.COMPLETE, after: ExecutionState.COMPLETE}


def _assert_names_store_without_password(message: str, own: PostgresCluster | MariaDBServer) -> None:
    assert PASSWORD not in message
    assert own.redacted() in message


@pytest.mark.timeout(300)
@pytest.mark.parametrize("server", ["pg_cluster", "mariadb_server"])
def test_a_frozen_server_gives_a_bounded_error_then_recovers(
    server: str, project: Path, request: pytest.FixtureRequest
) -> None:
    own: PostgresCluster | MariaDBServer = request.getfixturevalue(server)
    url = own.url("?timeout=2&connect_timeout=2")
    settings = CmfSettings(store=url, project_root=project)
    before = _record(settings, "before")

    try:
        # The server freezes while a task runs: closing its execution fails in bounded time.
        with pytest.raises(StoreUnavailableError) as closing, task_run(RunInfo("cmf", "outage", "midway"), settings):
            own.freeze()
            start = time.monotonic()
        midway = time.monotonic() - start
        # A process holding pooled connections to the frozen server starts a task.
        start = time.monotonic()
        with pytest.raises(StoreUnavailableError) as raised:
            _record(settings, "frozen")
        in_process = time.monotonic() - start
        # A new process connecting to the frozen server (the CLI): the connect timeout
        # bounds the wait, however long the statement timeout.
        start = time.monotonic()
        cli = subprocess.run(
            [str(CLI), "pipelines", "--store", own.url("?timeout=120&connect_timeout=2")],
            capture_output=True,
            text=True,
            timeout=240,
            cwd=project,
            env={**os.environ, "COLUMNS": "200"},
            check=False,
        )
        new_process = time.monotonic() - start
    finally:
        own.thaw()

    assert midway < FROZEN_BOUND_S, f"the frozen store blocked the end of a task run for {midway:.1f}s"
    _assert_names_store_without_password(str(closing.value), own)
    assert in_process < FROZEN_BOUND_S, f"the frozen store blocked a task run for {in_process:.1f}s"
    _assert_names_store_without_password(str(raised.value), own)
    assert "unavailable" in str(raised.value)

    assert new_process < FROZEN_BOUND_S, f"the CLI waited {new_process:.1f}s on the frozen store"
    assert cli.returncode == 1, cli
    assert cli.stdout == ""
    [line] = cli.stderr.splitlines()
    _assert_names_store_without_password(line, own)

    # Thawed, the same process records again through its pool.
    after = _record(settings, "after")
    states = _states(url)
    assert states[before] is ExecutionState.COMPLETE
    assert states[after] is ExecutionState.COMPLETE
    # The attempt refused at its start left no execution; the one cut off midway is the
    # only one left RUNNING (for reconcile to settle, as for a worker that died).
    assert sorted(states.values(), key=str) == sorted(
        [ExecutionState.COMPLETE, ExecutionState.COMPLETE, ExecutionState.RUNNING], key=str
    )


def _drop_inherited_and_collect(store: str) -> None:
    # A forked child that never records: whatever it inherited is dropped and garbage
    # collected (drivers close sockets on collection) before it exits.
    import gc

    from cmf_orchestrate.store._engine import _databases

    assert not _databases  # the fork hook forgot the parent's engines
    gc.collect()


def test_a_forked_child_collecting_inherited_connections_leaves_the_parents_alone(
    store_url: str, project: Path
) -> None:
    import multiprocessing

    from sqlalchemy import event

    settings = CmfSettings(store=store_url, project_root=project)
    first = _record(settings, "parent-1")
    engine = database_for(settings.location).engine
    invalidated: list[object] = []
    event.listen(engine, "invalidate", lambda *args: invalidated.append(args))
    context = multiprocessing.get_context("fork")
    for _ in range(2):
        child = context.Process(target=_drop_inherited_and_collect, args=(store_url,))
        child.start()
        child.join(60)
        assert child.exitcode == 0
    # The parent's pooled connections still work: none had to be replaced (pre-ping would
    # have hidden a broken one by reconnecting, so invalidations are counted).
    second = _record(settings, "parent-2")
    assert database_for(settings.location).engine is engine
    assert invalidated == []
    assert _states(store_url) == {first: ExecutionState.COMPLETE, second: ExecutionState.COMPLETE}
