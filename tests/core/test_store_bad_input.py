"""Bad store input on the command line: one line naming the store (password masked), exit 1,
nothing written.

Wrong passwords need a server that asks for one: the PostgreSQL cluster here is our own,
with SCRAM authentication (the shared server trusts local connections).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from own_servers import PostgresCluster, free_port
from servers import MY_HOST, MY_PORT, MY_USER, require_server

from cmf_orchestrate import RunInfo, cmf, task_run
from cmf_orchestrate.errors import StoreError
from cmf_orchestrate.settings import CmfSettings

PASSWORD = "BadInput-Pw-51c0de"
CLI = Path(sys.executable).with_name("cmf-orchestrate")


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[PostgresCluster]:
    with PostgresCluster(PASSWORD) as cluster:
        yield cluster


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    env["COLUMNS"] = "200"
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120, check=False)


def _assert_one_line_error(done: subprocess.CompletedProcess[str], names: str, *secrets: str) -> str:
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("cmf-orchestrate: error: "), line
    assert names in line, line
    for secret in secrets:
        assert secret not in line, line
    return line


def _public_tables(cluster: PostgresCluster, database: str) -> str:
    return cluster.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", database=database).strip()


@pytest.mark.timeout(120)
def test_wrong_password_and_missing_database_on_postgresql(pg_cluster: PostgresCluster, project: Path) -> None:
    wrong = pg_cluster.url().replace(PASSWORD, "Not-" + PASSWORD[::-1])
    line = _assert_one_line_error(
        _cli("pipelines", "--store", wrong, cwd=project), pg_cluster.redacted(), PASSWORD[::-1], PASSWORD
    )
    assert "password authentication failed" in line
    # A short password is masked where it stands alone, not inside every word holding it.
    short = pg_cluster.url().replace(PASSWORD, "s")
    line = _assert_one_line_error(_cli("pipelines", "--store", short, cwd=project), pg_cluster.redacted())
    assert 'password authentication failed for user "postgres"' in line
    assert _public_tables(pg_cluster, pg_cluster.database) == "0"  # nothing was created

    missing = pg_cluster.url().rsplit("/", 1)[0] + "/no_such_db"
    line = _assert_one_line_error(
        _cli("pipelines", "--store", missing, cwd=project), "postgresql://postgres:***@127.0.0.1:", PASSWORD
    )
    assert 'database "no_such_db" does not exist' in line
    assert pg_cluster.psql("SELECT count(*) FROM pg_database WHERE datname = 'no_such_db'").strip() == "0"


@pytest.mark.timeout(120)
def test_wrong_password_and_missing_database_on_mariadb(project: Path) -> None:
    require_server("MariaDB", MY_HOST, MY_PORT)
    name = f"cmf_missing_{uuid.uuid4().hex[:8]}"
    wrong = f"mysql://{MY_USER}:{PASSWORD}@{MY_HOST}:{MY_PORT}/{name}"
    line = _assert_one_line_error(
        _cli("pipelines", "--store", wrong, cwd=project), f"mysql://{MY_USER}:***@{MY_HOST}:{MY_PORT}/{name}", PASSWORD
    )
    assert "Access denied" in line
    missing = f"mysql://{MY_USER}@{MY_HOST}:{MY_PORT}/{name}"
    line = _assert_one_line_error(_cli("pipelines", "--store", missing, cwd=project), missing)
    assert "Unknown database" in line
    databases = subprocess.run(
        ["mariadb", "-h", MY_HOST, "-P", str(MY_PORT), "-u", MY_USER, "-Nse", f"SHOW DATABASES LIKE '{name}'"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert databases.stdout.strip() == ""


@pytest.mark.parametrize(
    ("url", "names"),
    [
        (f"postgresql://u:{PASSWORD}@/db", "postgresql://u:***@/db"),
        (f"postgresql://u:{PASSWORD}@host:99999/db", "postgresql://u:***@host:99999/db"),
        (f"postgresql://u:{PASSWORD}@host:5432/", "postgresql://u:***@host:5432/"),
        (f"oracle://u:{PASSWORD}@host/db", "oracle://u:***@host/db"),
        (f"mysql://u:{PASSWORD}@host/db?timeout=soon", "mysql://u:***@host/db?timeout=soon"),
        (f"mysql://u:{PASSWORD}@host/db?sslmode=on", "mysql://u:***@host/db?sslmode=on"),
        ("sqlite://", "sqlite://"),
        (f"sqlite://u:{PASSWORD}@host/mlmd", "sqlite://u:***@host/mlmd"),
        # A password holding characters that should have been percent-encoded: the parser
        # takes a piece of it for the port, and that piece is never quoted back.
        (f"postgresql://u:{PASSWORD[:6]}#{PASSWORD[6:]}@host/db", "postgresql://u:***@host/db"),
        (f"postgresql://u:{PASSWORD[:6]}/{PASSWORD[6:]}@host:5432/db", "postgresql://u:***@host"),
    ],
)
def test_malformed_urls(url: str, names: str, project: Path) -> None:
    _assert_one_line_error(_cli("pipelines", "--store", url, cwd=project), names, PASSWORD, PASSWORD[:6])
    # Not even the traceback of --debug quotes the password, or a piece of it.
    debug = _cli("--debug", "pipelines", "--store", url, cwd=project)
    assert debug.returncode == 1
    assert PASSWORD[:6] not in debug.stderr and PASSWORD[6:] not in debug.stderr


@pytest.mark.timeout(120)
def test_a_server_that_is_not_running(project: Path) -> None:
    port = free_port()
    url = f"postgresql://u:{PASSWORD}@127.0.0.1:{port}/db?connect_timeout=5"
    line = _assert_one_line_error(
        _cli("pipelines", "--store", url, cwd=project), f"postgresql://u:***@127.0.0.1:{port}/db"
    )
    assert "unavailable" in line


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("content", ["random", "text", "other-sqlite"])
def test_a_file_that_is_not_a_store_is_left_as_it_is(content: str, project: Path) -> None:
    store = project / "data" / "not-a-store"
    store.parent.mkdir()
    if content == "random":
        store.write_bytes(random.Random(9).randbytes(64 * 1024))
    elif content == "text":
        store.write_text("a,b\n1,2\n" * 100)
    else:  # another application's SQLite database: never gets ML Metadata's tables added
        import sqlite3

        with sqlite3.connect(store) as other:
            other.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT)")
            other.execute("INSERT INTO accounts (name) VALUES ('a')")
        other.close()
    before = _listing(store.parent)

    for args in (["pipelines"], ["executions"], ["export", "-o", str(project / "export.json")]):
        _assert_one_line_error(_cli(*args, "--store", str(store), cwd=project), str(store))

    assert _listing(store.parent) == before  # same bytes, no journal or WAL files left
    assert not (project / "export.json").exists()


def _make_read_only(path: Path) -> None:
    if os.geteuid() != 0:
        path.chmod(0o444)
        return
    # Root writes through file modes: an immutable file is read-only even for root.
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot make a file read-only for root here (chattr: {done.stderr.strip()})")


def _make_writable(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=False)
    path.chmod(0o644)


@pytest.mark.timeout(120)
def test_a_read_only_store_is_read_and_never_written(project: Path) -> None:
    source = project / "source"
    source.mkdir()
    (source / "a.csv").write_text("x\n1\n")
    os.chdir(source)
    writer = cmf.Cmf(filename=str(source / "mlmd"), pipeline_name="ro")
    writer.create_context("make")
    writer.create_execution("make", {"k": 1})
    writer.log_dataset("a.csv", "input")
    writer.finalize()
    os.chdir(project)
    export = project / "export.json"
    assert _cli("export", "--store", str(source / "mlmd"), "-o", str(export), cwd=project).returncode == 0

    store = project / "ro" / "mlmd"
    store.parent.mkdir()
    assert _cli("init", "--store", str(store), cwd=store.parent).returncode == 0
    for leftover in ("mlmd-wal", "mlmd-shm"):
        (store.parent / leftover).unlink(missing_ok=True)
    content = store.read_bytes()
    _make_read_only(store)
    try:
        # Reading works, and leaves the store as it was.
        done = _cli("pipelines", "--store", str(store), cwd=project)
        assert done.returncode == 0, done.stderr
        # Writing fails: one line, exit 1.
        line = _assert_one_line_error(_cli("import", str(export), "--store", str(store), cwd=project), str(store))
        assert "read" in line.lower()
        settings = CmfSettings(store=str(store), project_root=project)
        with (
            pytest.raises(StoreError, match=r"readonly|read-only|read only"),
            task_run(RunInfo("cmf", "ro", "w"), settings),
        ):
            pass
        assert store.read_bytes() == content
    finally:
        _make_writable(store)
