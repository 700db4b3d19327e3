"""The Python environment of this process, as an artifact.

Like CMF, every execution takes the environment it ran in as an ``Environment`` input:
a file listing the interpreter and every installed distribution, named after its md5
and written where CMF writes its own (``cmf_artifacts/python_env_<md5>.txt``), so an
unchanged environment is one artifact.

Describing the environment reads the metadata of every installed distribution, which
costs a fresh process hundreds of milliseconds (seconds on a busy machine), and Airflow,
Celery and Kubernetes start a fresh process for every task try. So the description is
made once per environment and per project: it is remembered under the project's
``.dvc/tmp`` keyed by a fingerprint of the environment, the interpreter and the names of
the ``*.dist-info``/``*.egg-info`` entries on ``sys.path``, which name every distribution
with its version. Installing, upgrading or removing a distribution changes the
fingerprint, and the next task run describes the environment again.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import sys
import threading
import uuid
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

#: Where environment files are written, relative to the project root: CMF's folder for the
#: files it writes, so an environment file is ``cmf_artifacts/python_env_<md5>.txt`` with
#: either library.
ENV_DIR = "cmf_artifacts"
#: Where descriptions are remembered by fingerprint (DVC keeps ``.dvc/tmp`` out of git).
INDEX_DIR = ".dvc/tmp/cmf-orchestrate/environments"

_lock = threading.Lock()
_described: dict[str, tuple[str, str]] = {}
_fingerprint: tuple[tuple[str, ...], tuple[tuple[str, int], ...], str] | None = None
_MD5 = re.compile(r"[0-9a-f]{32}\Z")
_METADATA_SUFFIXES = (".dist-info", ".egg-info")


@dataclass(frozen=True)
class EnvironmentFile:
    """The environment file of this process: project-relative path and md5."""

    path: str
    md5: str


def _interpreter() -> str:
    return f"# python {platform.python_version()} ({sys.implementation.name}) on {sys.platform}"


def fingerprint() -> str:
    """A cheap fingerprint of the environment: one directory listing per ``sys.path`` entry.

    Only the metadata entries count (``name-version.dist-info`` and the like), in
    ``sys.path`` order, so a script directory or working directory holding no
    distribution does not change it. Within a process the listings are read again only
    when ``sys.path`` changed or one of its directories holding distributions did (a
    directory's mtime moves when an entry is added or removed); a project folder that
    task runs write into is not among them.
    """
    path = tuple(sys.path)
    with _lock:
        known = _fingerprint
    if known is not None and known[0] == path and all(_mtime_ns(e) == m for e, m in known[1]):
        return known[2]
    digest, watched = _list_fingerprint(path)
    with _lock:
        _remember_fingerprint((path, watched, digest))
    return digest


def _remember_fingerprint(value: tuple[tuple[str, ...], tuple[tuple[str, int], ...], str]) -> None:
    global _fingerprint  # noqa: PLW0603 - the one per-process memo of the environment's fingerprint
    _fingerprint = value


def _mtime_ns(entry: str) -> int:
    try:
        return os.stat(entry or ".").st_mtime_ns
    except OSError:
        return -1


def _list_fingerprint(path: tuple[str, ...]) -> tuple[str, tuple[tuple[str, int], ...]]:
    """The fingerprint, and the entries (with their mtimes) whose listing it depends on."""
    digest = hashlib.md5(_interpreter().encode(), usedforsecurity=False)
    watched: list[tuple[str, int]] = []
    for entry in path:
        mtime = _mtime_ns(entry)
        try:
            with os.scandir(entry or ".") as listing:
                names = sorted(e.name for e in listing if e.name.lower().endswith(_METADATA_SUFFIXES))
        except NotADirectoryError:
            # A zip or egg file on sys.path: its name and stat stand for its contents.
            try:
                st = os.stat(entry)
            except OSError:
                continue
            names = [f"{os.path.basename(entry)}:{st.st_size}:{st.st_mtime_ns}"]
        except OSError:
            continue
        if names:
            watched.append((entry, mtime))
            digest.update(("\0" + "\n".join(names)).encode("utf-8", "surrogateescape"))
    return digest.hexdigest(), tuple(watched)


def _name_and_version(dist: object) -> tuple[str | None, str | None]:
    # Only the header of METADATA is needed; parsing the whole file as email (what
    # ``dist.metadata`` does, once for the name and again for the version) is the slow part.
    read_text = getattr(dist, "read_text", None)
    text = None
    if read_text is not None:
        text = read_text("METADATA") or read_text("PKG-INFO")
    if text is None:
        meta = dist.metadata  # type: ignore[attr-defined]
        return meta["Name"], meta["Version"]
    name = version = None
    for line in text.splitlines():
        if not line.strip():
            break  # the body (long description) starts after the first blank line
        key, _, value = line.partition(":")
        if key.lower() == "name" and name is None:
            name = value.lstrip(" \t").rstrip("\r\n")
        elif key.lower() == "version" and version is None:
            version = value.lstrip(" \t").rstrip("\r\n")
        if name is not None and version is not None:
            break
    return name, version


def describe() -> str:
    """The environment file's text: the interpreter, then ``name==version`` of each distribution."""
    import importlib.metadata

    seen: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name, version = _name_and_version(dist)
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={version}"
    lines = [_interpreter(), *sorted(seen.values(), key=str.lower)]
    return "\n".join(lines) + "\n"


def _write_once(full: Path, text: str) -> None:
    if full.exists():
        return
    full.parent.mkdir(parents=True, exist_ok=True)
    # Threads and processes may write it at the same moment: each through its own file.
    tmp = full.with_name(f".{full.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, full)


def environment_file(root: Path) -> EnvironmentFile:
    """Write (once) and describe the environment file under the project root.

    The description is remembered by :func:`fingerprint` in the project (when it has a
    ``.dvc`` directory) and in this process, so a known environment costs a listing of
    the ``sys.path`` directories and two small file reads.
    """
    root = Path(root)
    key = fingerprint()
    index = root / INDEX_DIR / key
    remembered = None
    with suppress(OSError, UnicodeDecodeError):
        remembered = index.read_text(encoding="ascii").strip()
    if remembered is not None and _MD5.match(remembered):
        rel = f"{ENV_DIR}/python_env_{remembered}.txt"
        if (root / rel).is_file():
            return EnvironmentFile(rel, remembered)
    with _lock:
        if key not in _described:
            text = describe()
            _described[key] = (text, hashlib.md5(text.encode(), usedforsecurity=False).hexdigest())
        text, md5 = _described[key]
    rel = f"{ENV_DIR}/python_env_{md5}.txt"
    _write_once(root / rel, text)
    if (root / ".dvc").is_dir():
        try:
            index.parent.mkdir(parents=True, exist_ok=True)
            tmp = index.with_name(f".{key}.{uuid.uuid4().hex}.tmp")
            tmp.write_text(md5 + "\n", encoding="ascii")
            os.replace(tmp, index)
        except OSError:
            pass  # only a cache: the next process describes the environment again
    return EnvironmentFile(rel, md5)
