"""The database servers tests use: where they listen, and creating and dropping databases."""

from __future__ import annotations

import os
import signal
import socket
import subprocess

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
MY_HOST, MY_PORT, MY_USER = "127.0.0.1", 3306, "root"


def server_up(host: str, port: int) -> bool:
    """Whether something listens on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_server(name: str, host: str, port: int) -> None:
    """Skip (or, in CI, fail) when a server is absent."""
    if server_up(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message}; CI must run the {name} tests (.ci/run starts it)")
    pytest.skip(message)


def _admin(backend: str, sql: str) -> None:
    if backend == "postgresql":
        cmd = ["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-d", "postgres", "-qc", sql]
    else:
        cmd = ["mariadb", "-h", MY_HOST, "-P", str(MY_PORT), "-u", MY_USER, "-e", sql]
    subprocess.run(cmd, check=False, capture_output=True, timeout=60)


def create_database(backend: str, name: str) -> None:
    """Create an empty database on the local server."""
    _admin(backend, f'CREATE DATABASE "{name}"' if backend == "postgresql" else f"CREATE DATABASE `{name}`")


def drop_database(backend: str, name: str) -> None:
    """Drop a database from the local server, if it exists."""
    if backend == "postgresql":
        _admin(backend, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        _admin(backend, f"DROP DATABASE IF EXISTS `{name}`")


def stop_process_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server a test started in its own session: SIGTERM to its group, SIGKILL after 30 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
