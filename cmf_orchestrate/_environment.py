"""The Python environment of this process, as an artifact.

Like CMF, every execution takes the environment it ran in as an ``Environment`` input.
The distribution list is read in-process once per process (no ``pip`` subprocess) and
written to a content-addressed file, so an unchanged environment is one artifact.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

ENV_DIR = ".cmf-orchestrate/environments"

_lock = threading.Lock()
_snapshot: dict[str, tuple[str, str]] = {}


@dataclass(frozen=True)
class EnvironmentFile:
    """The environment file of this process: project-relative path and md5."""

    path: str
    md5: str


def _describe() -> tuple[str, str]:
    with _lock:
        if "this" not in _snapshot:
            seen: dict[str, str] = {}
            for dist in importlib.metadata.distributions():
                name = dist.metadata["Name"]
                if name and name.lower() not in seen:
                    seen[name.lower()] = f"{name}=={dist.version}"
            lines = [
                f"# python {platform.python_version()} ({sys.implementation.name}) on {sys.platform}",
                *sorted(seen.values(), key=str.lower),
            ]
            text = "\n".join(lines) + "\n"
            _snapshot["this"] = (text, hashlib.md5(text.encode(), usedforsecurity=False).hexdigest())
        return _snapshot["this"]


def environment_file(root: Path) -> EnvironmentFile:
    """Write (once) and describe the environment file under the project root."""
    text, md5 = _describe()
    rel = f"{ENV_DIR}/python_env_{md5}.txt"
    full = Path(root) / rel
    if not full.exists():
        full.parent.mkdir(parents=True, exist_ok=True)
        # Threads and processes may write it at the same moment: each through its own file.
        tmp = full.with_name(f".{full.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(text)
        os.replace(tmp, full)
    return EnvironmentFile(rel, md5)
