"""Helpers of the command-line tests: recorded stores and the console script."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cmf_env import CMF_ENV_VARS

_ENV_VARS = CMF_ENV_VARS


@dataclass(frozen=True)
class Recorded:
    """A project whose store holds two versions of the get_started pipeline and a failed run."""

    root: Path
    model_v1: str  # artifact names (path:md5:execution) of the two trained models
    model_v2: str
    md5_v1: str
    md5_v2: str
    failed_execution: int


def checkpoint(store: Path) -> None:
    """Fold the SQLite write-ahead log into the store file, so that copying the file alone is enough.

    It runs in a child process: this process's ML Metadata has the file open with its own
    SQLite library, and a second SQLite library in the same process must never open it.
    """
    script = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.close()"
    )
    subprocess.run([sys.executable, "-c", script, str(store)], check=True)


def console_script() -> list[str]:
    """The installed ``cmf-orchestrate`` entry point (or the same entry through ``python -c``)."""
    script = Path(sys.executable).with_name("cmf-orchestrate")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from cmf_orchestrate.cli import main; sys.exit(main())"]


def run_entry_point(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real console script in a subprocess."""
    env = {k: v for k, v in os.environ.items() if k not in _ENV_VARS}
    env["DVC_NO_ANALYTICS"] = "1"
    return subprocess.run(
        [*console_script(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def run_in_terminal(cwd: Path, *args: str, columns: int = 80) -> str:
    """Run the console script on a real pseudo-terminal ``columns`` wide; return what it showed.

    Colours and other escape sequences are removed; lines are returned as the terminal got them.
    """
    import fcntl
    import pty
    import re
    import struct
    import termios

    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in _ENV_VARS and k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env.update({"DVC_NO_ANALYTICS": "1", "TERM": "xterm-256color"})
    process = subprocess.Popen(
        [*console_script(), *args], cwd=cwd, env=env, stdin=terminal, stdout=terminal, stderr=terminal, close_fds=True
    )
    os.close(terminal)
    chunks: list[bytes] = []
    try:
        while True:
            try:
                chunk = os.read(controller, 1 << 16)
            except OSError:  # the terminal is gone once the process has exited
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(controller)
        process.wait(timeout=120)
    text = b"".join(chunks).decode("utf-8", errors="replace").replace("\r\n", "\n")
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07", "", text)
