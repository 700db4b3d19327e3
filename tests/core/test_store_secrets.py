"""No password in any log at any level, in ``--debug`` output, in errors or in the metadata.

The servers are our own, with password authentication (the shared test servers trust
every local connection, so a password would never even be sent to them). Everything a
process prints at DEBUG level for every logger (SQLAlchemy's engine and pool, pg8000,
PyMySQL included) is captured, and so is everything the store holds afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from own_servers import MariaDBServer, PostgresCluster

from cmf_orchestrate import CmfQuery

PASSWORD = "Sekr1t-Pw-9d4e2b"
# A password of another URL on the command line (not the store's): masked too.
OTHER_PASSWORD = "0ther-Secret-77aa"
OTHER_URL = f"s3://backup:{OTHER_PASSWORD}@objects.example.com/bucket"
CLI = Path(sys.executable).with_name("cmf-orchestrate")

_SCRIPT = textwrap.dedent(
    """
    import logging
    import sys
    from pathlib import Path


    def every_logger_at_debug():
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, force=True,
                            format="%(name)s %(levelname)s %(message)s")
        for name in [*logging.root.manager.loggerDict, "sqlalchemy", "sqlalchemy.engine",
                     "sqlalchemy.pool", "pg8000", "pymysql"]:
            logging.getLogger(name).setLevel(logging.DEBUG)
            logging.getLogger(name).disabled = False


    every_logger_at_debug()
    from cmf_orchestrate import CmfQuery, CmfSettings, Dataset, RunInfo, cmf, task_run
    from cmf_orchestrate.errors import CmfError
    from cmf_orchestrate.store import open_store
    every_logger_at_debug()  # loggers the imports created
    log = logging.getLogger("secrets-check")

    url = sys.argv[1]
    settings = CmfSettings(store=url, project_root=Path.cwd())
    print(settings, repr(settings), settings.location)
    log.debug("settings %r, location %r", settings, settings.location)

    # The seed API records the command line (sys.argv) as the Execution property.
    Path("in.csv").write_text("a\\n1\\n")
    writer = cmf.Cmf(filename=url, pipeline_name="secrets")
    writer.create_context("seed")
    writer.create_execution("seed", {"rate": 0.1})
    writer.log_dataset("in.csv", "input")
    Path("out.csv").write_text("a\\n2\\n")
    writer.log_dataset("out.csv", "output")
    writer.log_execution_metrics("quality", {"auc": 0.9})
    writer.finalize()

    # An adapter's task run given the command line, and one failing with the URL in its error.
    info = RunInfo("cmf", "secrets", "adapter", command=" ".join(sys.argv), outputs=[Dataset("adapter.txt")])
    with task_run(info, settings):
        Path("adapter.txt").write_text("x\\n")
    try:
        with task_run(RunInfo("cmf", "secrets", "failing"), settings):
            raise RuntimeError(f"could not reach {url}")
    except RuntimeError:
        pass  # the user's own exception propagates unchanged; its record is checked below

    query = CmfQuery(url)
    print(query.get_pipeline_names(), query.store.executions(), query.store.artifacts_of_type("Dataset"))

    # A wrong password: the error names the store with the password masked.
    wrong = url.replace(sys.argv[2], "Wr0ng-" + sys.argv[2][::-1])
    try:
        open_store(CmfSettings(store=wrong).location)
    except CmfError as error:
        log.exception("expected: %s", error)
        print("refused:", error)
    else:
        raise SystemExit("a wrong password was accepted")
    """
)


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[PostgresCluster]:
    with PostgresCluster(PASSWORD) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def mariadb_server() -> Iterator[MariaDBServer]:
    with MariaDBServer(PASSWORD) as server:
        yield server


@pytest.fixture(params=["pg_cluster", "mariadb_server"])
def server(request: pytest.FixtureRequest) -> PostgresCluster | MariaDBServer:
    own: PostgresCluster | MariaDBServer = request.getfixturevalue(request.param)
    return own


def _fresh_database(own: PostgresCluster | MariaDBServer, name: str) -> str:
    if isinstance(own, PostgresCluster):
        own.psql(f'DROP DATABASE IF EXISTS "{name}"')
        own.psql(f'CREATE DATABASE "{name}"')
    else:
        own.sql(f"DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`")
    return f"{own.url().rsplit('/', 1)[0]}/{name}"


def _dump(own: PostgresCluster | MariaDBServer, name: str) -> str:
    """Every row of a database, as text."""
    if isinstance(own, PostgresCluster):
        return own.run(
            str(own.bin / "pg_dump"), "-h", str(own.base), "-p", str(own.port), "-U", "postgres", "--data-only", name
        ).stdout
    return own.run("mariadb-dump", "--no-defaults", f"--socket={own.socket}", "-u", "root", name).stdout


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    return subprocess.run(
        cmd, capture_output=True, text=True, cwd=cwd, env={**env, "COLUMNS": "200"}, timeout=300, check=False
    )


def _assert_no_secret(text: str, what: str) -> None:
    for secret in (PASSWORD, OTHER_PASSWORD, PASSWORD[::-1]):
        assert secret not in text, f"{what} holds a password:\n{text[max(0, text.find(secret) - 300) :][:600]}"


@pytest.mark.timeout(300)
def test_debug_logs_errors_and_metadata_never_hold_the_password(
    server: PostgresCluster | MariaDBServer, project: Path
) -> None:
    url = _fresh_database(server, "secrets_run")
    script = project / "record.py"
    script.write_text(_SCRIPT)
    # The password is on the command line three ways: in the store URL, as an option's
    # value, and in another URL.
    argv = [sys.executable, str(script), url, PASSWORD, f"--password={PASSWORD}", "--mirror", OTHER_URL]

    done = _run(argv, project)

    assert done.returncode == 0, done.stderr[-3000:]
    # The logging really was at DEBUG for the libraries: SQL statements and pool events.
    assert "sqlalchemy.engine" in done.stderr
    assert "sqlalchemy.pool" in done.stderr
    assert "refused:" in done.stdout and server.redacted().rsplit("/", 1)[0] in done.stdout
    _assert_no_secret(done.stdout, "stdout")
    _assert_no_secret(done.stderr, "the DEBUG log")
    _assert_no_secret(_dump(server, "secrets_run"), "the metadata store")

    # The command lines were recorded, with the credentials masked.
    executions = CmfQuery(url).store.executions()
    commands = [str(e.properties.get("Execution", "")) for e in executions]
    [error] = [e.custom_properties.get("cmf.error_message") for e in executions if e.state.value == "FAILED"]
    assert error == f"could not reach {server.url().rsplit('/', 1)[0].replace(PASSWORD, '***')}/secrets_run"
    assert len([c for c in commands if str(script) in c]) == 2, commands
    assert all("***" in c for c in commands if str(script) in c), commands


@pytest.mark.timeout(300)
def test_cli_debug_output_never_holds_the_password(server: PostgresCluster | MariaDBServer, project: Path) -> None:
    url = _fresh_database(server, "secrets_cli")
    wrong = url.replace(PASSWORD, "Wr0ng-" + PASSWORD[::-1])
    outputs = []
    for args in (
        ["init", "--store", url],
        ["pipelines", "--store", url],
        ["executions", "--store", url],
        ["export", "--store", url],
        ["pipelines", "--store", wrong],
        ["pipelines", "--store", url.replace("secrets_cli", "no_such_database")],
    ):
        done = _run([str(CLI), "--debug", *args], project)
        outputs.append((args, done))
        _assert_no_secret(done.stdout + done.stderr, f"cmf-orchestrate --debug {args[0]}")
    # Nor did any file the commands wrote (init writes the project's settings file).
    for path in project.rglob("*"):
        if path.is_file():
            _assert_no_secret(path.read_bytes().decode("utf-8", "replace"), str(path))
    # --debug did show the traceback of the failures.
    for args, done in outputs[-2:]:
        assert done.returncode == 1, (args, done.stderr)
        assert "Traceback" in done.stderr
        assert done.stderr.splitlines()[-1].startswith("cmf-orchestrate: error:")
        assert server.redacted().rsplit("/", 1)[0] in done.stderr.splitlines()[-1]
