"""Database servers a test starts, restarts, freezes and stops by itself.

The shared servers on 5432/3306 are never touched: each cluster here has its own data
directory in a temporary folder and listens on its own free loopback port. Servers refuse
to run as root, so under root the server processes run as the ``postgres``/``mysql``
system user (``runuser``), owning the temporary folder.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from servers import IN_CI
from typing_extensions import Self


def _unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(f"{message}; CI must run this test")
    pytest.skip(message)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = Path(stat).read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = text.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(text.split(" ", 1)[0]))
    return found


class _OwnServer:
    """A temporary folder owned by the server's system user, and a way to run commands as it."""

    system_user = ""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        raise NotImplementedError

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix=f"cmf-{self.system_user}-"))
        self.port = free_port()
        # Who the server processes run as: the system user under root, else ourselves. No
        # runuser/su in between: they stop themselves when their child is SIGSTOPped.
        self.as_user: dict[str, Any] = {}
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam(self.system_user)
            except KeyError:
                shutil.rmtree(self.base, ignore_errors=True)
                _unavailable(f"running as root and there is no {self.system_user!r} user to run the server as")
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
            self.as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        self.base.chmod(0o755)

    def run(self, *cmd: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a command as the server's user; fail the test with its output if it fails."""
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, cwd=self.base, check=False, **self.as_user
        )
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def write(self, name: str, text: str) -> Path:
        path = self.base / name
        path.write_text(text)
        if self.as_user:
            os.chown(path, self.as_user["user"], self.as_user["group"])
        path.chmod(0o600)
        return path


class PostgresCluster(_OwnServer):
    """A PostgreSQL cluster of our own: password (SCRAM) authentication over TCP."""

    system_user = "postgres"

    def __init__(self, password: str, database: str = "cmf") -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            _unavailable("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
        self.bin = Path(found[-1]).parent
        super().__init__()
        self.password = password
        self.database = database
        self.data = self.base / "data"
        self.frozen: list[int] = []
        pwfile = self.write("pw", password + "\n")
        self.run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "--no-sync",
        )
        pwfile.unlink()
        try:
            self.start()
            self.psql(f'CREATE DATABASE "{database}"')
        except BaseException:
            self.stop()
            raise

    def url(self, query: str = "") -> str:
        """The store URL, password included."""
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{self.database}{query}"

    def redacted(self) -> str:
        """The store as error messages must name it."""
        return f"postgresql://postgres:***@127.0.0.1:{self.port}/{self.database}"

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.base / "log"),
            "-w",
            "-o",
            options,
            action,
            *extra,
        )

    def start(self) -> None:
        self._ctl("start")
        _wait_for_port(self.port, 60)

    def restart(self) -> None:
        """Stop the server (disconnecting every client) and start it again on the same port."""
        self._ctl("restart", "-m", "fast")
        _wait_for_port(self.port, 60)

    def halt(self) -> None:
        """Stop the server, keeping its data, to :meth:`start` it again."""
        self._ctl("stop", "-m", "fast")

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the cluster's own Unix socket."""
        return self.run(
            str(self.bin / "psql"),
            "-h",
            str(self.base),
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-Atqc",
            sql,
        ).stdout

    def postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every backend: connections hang, new ones are never answered."""
        postmaster = self.postmaster()
        os.kill(postmaster, signal.SIGSTOP)
        self.frozen = [postmaster, *_children(postmaster)]
        for pid in self.frozen[1:]:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in [*self.frozen[1:], *self.frozen[:1]]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = []

    def stop(self) -> None:
        """Stop this cluster (never any other) and remove its folder."""
        self.thaw()
        if (self.data / "postmaster.pid").exists():
            try:
                self._ctl("stop", "-m", "immediate")
            except AssertionError:
                os.kill(self.postmaster(), signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)


class MariaDBServer(_OwnServer):
    """A MariaDB server of our own, with a password user ``cmf`` reachable over TCP."""

    system_user = "mysql"

    def __init__(self, password: str, database: str = "cmf") -> None:
        for tool in ("mariadb-install-db", "mariadbd", "mariadb"):
            if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
                _unavailable(f"{tool} is not installed")
        super().__init__()
        self.password = password
        self.database = database
        self.data = self.base / "data"
        self.socket = self.base / "sock"
        self.process: subprocess.Popen[bytes] | None = None
        self.run(
            "mariadb-install-db",
            "--no-defaults",
            f"--datadir={self.data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        )
        try:
            self.start()
            self.sql(
                f"CREATE DATABASE `{database}`; CREATE USER 'cmf'@'127.0.0.1' IDENTIFIED BY '{password}'; "
                f"GRANT ALL ON *.* TO 'cmf'@'127.0.0.1'"
            )
        except BaseException:
            self.stop()
            raise

    def url(self, query: str = "") -> str:
        """The store URL, password included."""
        return f"mysql://cmf:{self.password}@127.0.0.1:{self.port}/{self.database}{query}"

    def redacted(self) -> str:
        """The store as error messages must name it."""
        return f"mysql://cmf:***@127.0.0.1:{self.port}/{self.database}"

    def freeze(self) -> None:
        """SIGSTOP the server: connections hang, new ones are never answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def start(self) -> None:
        mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        self.process = subprocess.Popen(
            [
                mariadbd,
                "--no-defaults",
                f"--datadir={self.data}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.socket}",
                f"--pid-file={self.base / 'pid'}",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=16M",
                "--innodb-flush-log-at-trx-commit=0",
                f"--log-error={self.base / 'log'}",
            ],
            cwd=self.base,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **self.as_user,
        )
        _wait_for_port(self.port, 60)

    def sql(self, statement: str) -> str:
        return self.run("mariadb", "--no-defaults", f"--socket={self.socket}", "-u", "root", "-Nse", statement).stdout

    def restart(self) -> None:
        self._shutdown()
        self.start()

    def halt(self) -> None:
        """Stop the server, keeping its data, to :meth:`start` it again."""
        self._shutdown()

    def _shutdown(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        """Stop this server (never any other) and remove its folder."""
        self.thaw()
        self._shutdown()
        shutil.rmtree(self.base, ignore_errors=True)
