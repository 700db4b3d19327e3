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
