"""Content versioning: the md5 ``dvc add`` records, and the DVC cache it points to.

An artifact's identity is the md5 that ``dvc add`` records: the file's md5, or
``<md5>.dir`` for a directory. Outputs and untracked inputs are committed to the
project's DVC cache with a ``.dvc`` file, exactly as ``dvc add`` would leave them, so
``dvc status``, ``dvc push`` and ``dvc checkout`` work on them.

Each file is read once: its bytes are hashed as they are copied into the cache, so the
recorded md5 names the cached bytes by construction. A file whose size or mtime moves
while it is read is read again once, then refused. Only regular files and directories
are versioned; a FIFO, socket or device is refused without being opened. Symbolic links
are followed when their target lies inside the project, and refused like ``../x``
otherwise. Hashes are remembered in a stat cache keyed by path, inode, mtime and size,
so an unchanged file is not read again.

Committing needs no DVC import: the cache layout, the ``.dir`` listing and the ``.dvc``
file are the ones dvc-data and DVC write (the test suite compares them byte for byte
with ``dvc add``). DVC's own libraries serve what is rarer: creating the repository,
unusual ``.dvc`` path names, remotes, push, fetch and checkout.
"""

from __future__ import annotations

import configparser
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import sqlite3
import stat
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from cmf_orchestrate.errors import ArtifactError, ArtifactNotFoundError, ConfigError, PathOutsideProjectError

if TYPE_CHECKING:
    from dvc_data.hashfile.db.local import LocalHashFileDB

__all__ = [
    "ContentHash",
    "Versioner",
    "default_remote",
    "find_git_dir",
    "set_remote",
    "versioner_for",
]

logger = logging.getLogger(__name__)

_STAT_CACHE = ("tmp", "cmf-orchestrate", "stat-cache.db")
#: dvc-data's mode of a cache object (``LocalHashFileDB.CACHE_MODE``).
_CACHE_MODE = 0o444
#: Files up to this size are read in one piece and written straight to their cache path.
_SMALL = 1 << 20
_CHUNK = 1 << 20
#: Directories with more bytes than this to read spread the work over threads.
_PARALLEL_BYTES = 64 << 20
# Files whose stat-cache entries a process keeps in memory (beyond, it starts again).
_STAT_MEMORY = 100_000
# The kernel clock that stamps file times on a local file system (Linux's number where
# Python does not name it); a file server stamps with its own clock instead.
_COARSE_CLOCK: int | None = getattr(time, "CLOCK_REALTIME_COARSE", 5 if sys.platform.startswith("linux") else None)
# How long a check that the file system stamps with the local clock is trusted.
_CLOCK_CHECK_NS = 60_000_000_000
_FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
# What DVC's default ignore file leaves out of a directory (dvc.ignore.DvcIgnoreFilter).
_IGNORED_ANY = frozenset({".git"})
_IGNORED_DIRS = frozenset({".git", ".hg", ".dvc"})
# A file name ruamel.yaml writes as a plain scalar, the way `dvc add` does; others go through ruamel.
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
_YAML_WORDS = frozenset({"null", "true", "false", "yes", "no", "on", "off", "y", "n", "nan", "inf"})


@dataclass(frozen=True)
class ContentHash:
    """The DVC identity of a file or directory.

    Attributes:
        path: Path relative to the project root, with forward slashes.
        md5: The md5 ``dvc add`` records (``<md5>.dir`` for a directory).
        size: Size in bytes (sum of files for a directory).
        nfiles: Number of files for a directory, ``None`` for a file.
        mtime_ns: Last modification seen, in ns since the epoch (for a directory, the
            latest of its files and subdirectories); not part of the identity.
    """

    path: str
    md5: str
    size: int
    nfiles: int | None = None
    mtime_ns: int | None = field(default=None, compare=False)

    @property
    def is_dir(self) -> bool:
        """Whether the hash is a directory (tree) hash."""
        return self.md5.endswith(".dir")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {"path": self.path, "md5": self.md5, "size": self.size, "nfiles": self.nfiles, "mtime_ns": self.mtime_ns}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContentHash:
        """Inverse of :meth:`to_dict`."""
        mtime = data.get("mtime_ns")
        return cls(
            str(data["path"]),
            str(data["md5"]),
            int(data["size"]),
            data.get("nfiles"),
            None if mtime is None else int(mtime),
        )


def find_git_dir(start: Path) -> Path | None:
    """The ``.git`` directory of the work tree containing ``start``, if any.

    Every task run asks several times, walking up to the file system's root: an answer is
    remembered for a second, and a remembered ``.git`` only while it exists.
    """
    key = os.fspath(start)
    now = time.monotonic()
    known = _git_dirs.get(key)
    if known is not None and now - known[1] < _GIT_DIR_TTL and (known[0] is None or known[0].exists()):
        return known[0]
    found = next((d / ".git" for d in (start, *start.parents) if (d / ".git").exists()), None)
    _git_dirs[key] = (found, now)
    return found


_git_dirs: dict[str, tuple[Path | None, float]] = {}
#: Seconds a found (or missing) work tree is remembered: a repository created meanwhile is seen after that.
_GIT_DIR_TTL = 1.0


class _ChangedWhileReadError(Exception):
    """A file's size or mtime moved while it was read."""


class _File(NamedTuple):
    """One regular file to hash: its key in the stat cache, its real path, its stat."""

    key: str
    real: str
    st: os.stat_result


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def _read_umask() -> int | None:
    # os.umask() can only be read by setting it, which races with other threads.
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return None


class _StatCache:
    """md5 by (path, inode, mtime, size), in a SQLite file under ``.dvc/tmp``.

    A broken or locked database never fails a recording: it only costs a re-read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        # Entries this process read or wrote: a file logged again (every run's inputs) costs
        # no query. An entry is only ever used when the file's stat still matches it.
        self._memory: dict[str, tuple[int, int, int, str]] = {}

    def md5_of(self, rel: str, st: os.stat_result) -> str | None:
        """The md5 recorded for the file ``rel`` as it is now (``st``), or None."""
        known = _matches(self._memory.get(rel), st)
        if known is not None:
            return known
        entry = self.lookup(rel, tree=False).get(rel)
        known = _matches(entry, st)
        if known is not None and entry is not None:
            self._memory[rel] = entry
        return known

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            # A forked child never uses its parent's connection.
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS entries (path TEXT PRIMARY KEY, ino INTEGER, mtime_ns INTEGER,"
                " size INTEGER, md5 TEXT)"
            )
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def lookup(self, rel: str, tree: bool) -> dict[str, tuple[int, int, int, str]]:
        """Entries of ``rel`` (and, for a tree, of every path under it)."""
        with self._lock:
            try:
                conn = self._connect()
                if tree:
                    # Every key under "rel/": from "rel/" up to "rel0", the next character after "/".
                    rows = conn.execute(
                        "SELECT path, ino, mtime_ns, size, md5 FROM entries WHERE path >= ? AND path < ?",
                        (rel + "/", rel + "0"),
                    ).fetchall()
                else:
                    rows = conn.execute(
                        "SELECT path, ino, mtime_ns, size, md5 FROM entries WHERE path = ?", (rel,)
                    ).fetchall()
            except sqlite3.Error as exc:
                logger.debug("stat cache %s unreadable: %s", self.path, exc)
                return {}
        return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}

    def save(self, rows: Sequence[tuple[str, int, int, int, str]]) -> None:
        """Remember ``(path, inode, mtime_ns, size, md5)`` rows."""
        if not rows:
            return
        if len(rows) == 1:  # a file; a tree's many entries are read back from the database
            if len(self._memory) >= _STAT_MEMORY:
                self._memory.clear()
            self._memory[rows[0][0]] = rows[0][1:]
        with self._lock:
            try:
                conn = self._connect()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?)", rows)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                logger.debug("stat cache %s not updated: %s", self.path, exc)


def _matches(entry: tuple[int, int, int, str] | None, st: os.stat_result) -> str | None:
    if entry is not None and entry[0] == st.st_ino and entry[1] == st.st_mtime_ns and entry[2] == st.st_size:
        return entry[3]
    return None


class Versioner:
    """Hashes and caches artifacts of one project root.

    Thread-safe: one instance serves every thread of a process (see :func:`versioner_for`).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._root_str = os.fspath(self.root)
        self._lock = threading.RLock()
        self._odb: LocalHashFileDB | None = None
        self._objects: str | None = None
        self._prefixes: set[str] = set()
        self._reflink: bool | None = None if sys.platform.startswith("linux") else False
        self._umask = _read_umask()
        self._stat_cache = _StatCache(self.dvc_dir.joinpath(*_STAT_CACHE))
        self._config = os.path.join(self._root_str, ".dvc", "config")
        # Until when (monotonic ns) the file system is trusted to stamp with the local coarse clock.
        self._local_clock_until = 0
        # .dvc files as this process last wrote or read them: (inode, mtime, size) and text.
        self._dvc_files: dict[str, tuple[tuple[int, int, int], str]] = {}

    # -- paths -------------------------------------------------------------------------

    def relpath(self, path: str | os.PathLike[str]) -> str:
        """``path`` relative to the project root, with forward slashes.

        Relative paths are taken relative to the project root. The path is not resolved:
        a symbolic link keeps its own name (its target is checked when it is hashed).

        Raises:
            PathOutsideProjectError: The path lies outside the project root.
        """
        # Plain string operations: every logged artifact goes through here, several times.
        text = os.fspath(path)
        if text.startswith("~"):
            text = os.path.expanduser(text)
        full = os.path.normpath(text if os.path.isabs(text) else os.path.join(self._root_str, text))
        if full == self._root_str:
            raise PathOutsideProjectError(f"{os.fspath(path)!r} is the project root itself, not an artifact")
        prefix = self._root_str if self._root_str.endswith(os.sep) else self._root_str + os.sep
        if not full.startswith(prefix):
            raise PathOutsideProjectError(f"{os.fspath(path)!r} is outside the project root {str(self.root)!r}")
        rel = full[len(prefix) :]
        head = rel.split(os.sep, 1)[0]
        if head in {".dvc", ".git"}:
            raise PathOutsideProjectError(f"{os.fspath(path)!r} is inside the project's {head} directory")
        return rel if os.sep == "/" else rel.replace(os.sep, "/")

    def abspath(self, path: str | os.PathLike[str]) -> Path:
        """Absolute path of a project path.

        Raises:
            PathOutsideProjectError: The path lies outside the project root.
        """
        return self.root / self.relpath(path)

    def _inside(self, real: str, shown: str) -> None:
        """Refuse a link target outside the project, or the root itself, or inside .dvc or .git."""
        prefix = self._root_str + os.sep
        if real == self._root_str:
            raise PathOutsideProjectError(f"{shown!r} is a symbolic link to the project root itself, not an artifact")
        if not real.startswith(prefix):
            raise PathOutsideProjectError(
                f"{shown!r} is a symbolic link to {real!r}, outside the project root {self._root_str!r}"
            )
        head = real[len(prefix) :].split(os.sep, 1)[0]
        if head in {".dvc", ".git"}:
            raise PathOutsideProjectError(f"{shown!r} is a symbolic link into the project's {head} directory")

    def clock_ns(self) -> int:
        """Now, as the project's file system stamps a file it writes, in ns since the epoch.

        File times come from the kernel's coarse clock (or a file server's clock), which
        may lag ``time.time_ns()`` by a few milliseconds or more; comparing an output's
        mtime with this stamp says truthfully whether it was written after now.

        Learning the time from a file written for it costs a create and an unlink. Once
        such a probe shows the file system stamping with this machine's coarse clock (a
        local file system with nanosecond times), that clock is read instead, and the
        probe is made again a minute later; a file server, or a file system with coarser
        times, is always probed.
        """
        if _COARSE_CLOCK is not None and time.monotonic_ns() < self._local_clock_until:
            return time.clock_gettime_ns(_COARSE_CLOCK)
        return self._calibrate_clock()

    def _calibrate_clock(self) -> int:
        """A probe's stamp; on the way, whether the local coarse clock gives the same stamps."""
        try:
            before = time.clock_gettime_ns(_COARSE_CLOCK) if _COARSE_CLOCK is not None else None
        except OSError:  # a platform without that clock
            before = None
        stamp = self._probe_ns()
        after = time.time_ns()
        if stamp is None:
            return after
        # Between the coarse clock before and the precise one after, in nanoseconds (a
        # multiple of 1000 is taken as a file system with microsecond or coarser times,
        # which would stamp a file written just after below the coarse clock).
        if before is not None and stamp % 1000 and before <= stamp <= after:
            self._local_clock_until = time.monotonic_ns() + _CLOCK_CHECK_NS
        return stamp

    def _probe_ns(self) -> int | None:
        """The mtime of a file created now, or None where none can be created."""
        tmp = os.path.join(self._root_str, ".dvc", "tmp")
        directory = tmp if os.path.isdir(tmp) else self._root_str
        probe = os.path.join(directory, f".cmf-orchestrate-clock.{uuid.uuid4().hex}")
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o600)
        except OSError:
            return None
        try:
            return os.fstat(fd).st_mtime_ns
        finally:
            os.close(fd)
            with suppress(OSError):
                os.unlink(probe)

    # -- DVC plumbing ------------------------------------------------------------------

    @property
    def dvc_dir(self) -> Path:
        """The project's ``.dvc`` directory."""
        return self.root / ".dvc"

    def ensure_repo(self) -> None:
        """Initialise a DVC repository at the root if there is none (git is optional).

        Raises:
            ArtifactError: DVC could not initialise the repository.
        """
        if os.path.exists(self._config):
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with self._init_lock():
            if (self.dvc_dir / "config").exists():
                return
            from dvc.exceptions import DvcException
            from dvc.repo import Repo

            git = find_git_dir(self.root)
            dvc_logger = logging.getLogger("dvc")
            level = dvc_logger.level
            # DVC announces the new repository through its logger; a library stays quiet.
            dvc_logger.setLevel(logging.WARNING)
            try:
                try:
                    Repo.init(
                        os.fspath(self.root), no_scm=git is None, subdir=git is not None and git.parent != self.root
                    )
                except DvcException:
                    if git is None:
                        raise
                    # A .git that dulwich cannot read (corrupt, or not a repository): go without git.
                    Repo.init(os.fspath(self.root), no_scm=True, force=True)
            except DvcException as exc:
                raise ArtifactError(f"cannot initialise a DVC repository in {str(self.root)!r}: {exc}") from exc
            finally:
                dvc_logger.setLevel(level)
            logger.info("initialised a DVC repository in %s", self.root)

    @contextmanager
    def _init_lock(self) -> Iterator[None]:
        # Several worker processes may record their first artifact at the same moment.
        lock_path = self.root / ".cmf-orchestrate.init.lock"
        with self._lock, lock_path.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
                with suppress(FileNotFoundError):
                    lock_path.unlink()

    def cache_dir(self) -> Path:
        """The DVC cache directory, honouring ``cache.dir`` of the repository config.

        Raises:
            ArtifactError: The repository config cannot be read.
        """
        directory = self.dvc_dir / "cache"
        for name in ("config", "config.local"):
            config = configparser.ConfigParser(interpolation=None)
            try:
                config.read(self.dvc_dir / name)
            except configparser.Error as exc:
                raise ArtifactError(f"cannot read {self.dvc_dir / name}: {exc}") from exc
            if config.has_option("cache", "dir"):
                directory = (self.dvc_dir / config.get("cache", "dir")).resolve()
        return directory

    def _objects_dir(self) -> str:
        """``<cache>/files/md5``, where content objects live (read from the config once)."""
        if self._objects is None:
            with self._lock:
                if self._objects is None:
                    self.ensure_repo()
                    objects = self.cache_dir() / "files" / "md5"
                    objects.mkdir(parents=True, exist_ok=True)
                    self._objects = os.fspath(objects)
        return self._objects

    def _cache(self) -> LocalHashFileDB:
        """dvc-data's view of the cache, for transfers and checkouts."""
        with self._lock:
            if self._odb is None:
                from dvc_data.hashfile.db.local import LocalHashFileDB
                from dvc_objects.fs.local import LocalFileSystem

                self._odb = LocalHashFileDB(LocalFileSystem(), self._objects_dir())
            return self._odb

    # -- hashing and committing ----------------------------------------------------------

    def hash(self, path: str | os.PathLike[str]) -> ContentHash:
        """The DVC md5 of a file or directory, without touching the cache.

        Raises:
            PathOutsideProjectError: The path, or a symbolic link's target, lies outside the project root.
            ArtifactNotFoundError: The path does not exist.
            ArtifactError: The path is not a regular file or directory, or kept changing while read.
        """
        rel = self.relpath(path)
        return self._build(rel, commit=False)

    def commit(self, path: str | os.PathLike[str]) -> ContentHash:
        """Hash ``path``, add it to the DVC cache and write its ``.dvc`` file, as ``dvc add``.

        Each file is read once, hashed as it is copied into the cache. Unchanged content
        already in the cache costs a stat and a stat-cache lookup per file.

        Raises:
            PathOutsideProjectError: The path, or a symbolic link's target, lies outside the project root.
            ArtifactNotFoundError: The path does not exist.
            ArtifactError: The path is not a regular file or directory, kept changing while
                read, or could not be cached.
        """
        rel = self.relpath(path)
        content = self._build(rel, commit=True)
        self._write_dvc_file(content)
        return content

    def _build(self, rel: str, commit: bool) -> ContentHash:
        _check_name(rel)
        self.ensure_repo()
        full = os.path.join(self._root_str, rel)
        try:
            lst = os.lstat(full)
        except FileNotFoundError:
            raise ArtifactNotFoundError(
                f"artifact path {rel!r} does not exist (looked in {self._root_str!r})"
            ) from None
        except OSError as exc:
            raise ArtifactError(f"cannot version {rel!r}: {exc}") from exc
        real = self._real(full, rel, lst)
        if real != full:
            self._inside(real, rel)
        try:
            st = os.stat(real) if real != full else lst
        except FileNotFoundError:
            raise ArtifactNotFoundError(
                f"artifact path {rel!r} is a symbolic link to {real!r}, which does not exist"
            ) from None
        try:
            if stat.S_ISDIR(st.st_mode):
                return self._build_tree(rel, real, st, commit)
            if not stat.S_ISREG(st.st_mode):
                raise ArtifactError(
                    f"artifact path {rel!r} is {_kind(st.st_mode)}; only regular files and directories are versioned"
                )
            return self._build_file(rel, real, st, commit)
        except FileNotFoundError as exc:
            raise ArtifactNotFoundError(f"artifact path {rel!r} vanished while it was being hashed: {exc}") from exc
        except OSError as exc:
            raise ArtifactError(f"cannot version {rel!r}: {exc}") from exc

    def _real(self, full: str, rel: str, lst: os.stat_result) -> str:
        """``full`` with symbolic links resolved; itself, without a system call, when it has none.

        The root is resolved already: only the path's own components below it can be links.
        """
        if stat.S_ISLNK(lst.st_mode):
            return os.path.realpath(full)
        parent = self._root_str
        for part in rel.split("/")[:-1]:
            parent = os.path.join(parent, part)
            if os.path.islink(parent):
                return os.path.realpath(full)
        return full

    def _build_file(self, rel: str, real: str, st: os.stat_result, commit: bool) -> ContentHash:
        known = self._stat_cache.md5_of(rel, st)
        if known is not None and (not commit or self._has_object(known, st.st_size)):
            return ContentHash(rel, known, st.st_size, None, st.st_mtime_ns)
        md5, st = self._ingest(_File(rel, real, st), rel, commit)
        self._stat_cache.save([(rel, st.st_ino, st.st_mtime_ns, st.st_size, md5)])
        return ContentHash(rel, md5, st.st_size, None, st.st_mtime_ns)

    def _build_tree(self, rel: str, real: str, st: os.stat_result, commit: bool) -> ContentHash:
        files: list[_File] = []
        newest = self._walk(rel, real, st, files, set())
        _check_names(files)
        known = self._stat_cache.lookup(rel, tree=True)
        md5s: dict[str, str] = {}
        todo: list[_File] = []
        objects = self._objects_dir() + os.sep if commit else ""
        for item in files:
            entry = known.get(item.key)
            fst = item.st
            if entry is None or entry[0] != fst.st_ino or entry[1] != fst.st_mtime_ns or entry[2] != fst.st_size:
                todo.append(item)
                continue
            md5 = entry[3]
            if commit:
                # Every object is looked for (one stat each): a cache that lost a file is mended, not trusted.
                try:
                    present = os.stat(f"{objects}{md5[:2]}{os.sep}{md5[2:]}").st_size == fst.st_size
                except OSError:
                    present = False
                if not present:
                    todo.append(item)
                    continue
            md5s[item.key] = md5
        size = sum(f.st.st_size for f in files)
        saved: list[tuple[str, int, int, int, str]] = []
        for item, (md5, seen) in zip(todo, self._ingest_many(todo, commit), strict=True):
            md5s[item.key] = md5
            saved.append((item.key, seen.st_ino, seen.st_mtime_ns, seen.st_size, md5))
            newest = max(newest, seen.st_mtime_ns)
            size += seen.st_size - item.st.st_size  # a file rewritten since it was listed: the size read
        self._stat_cache.save(saved)
        raw, md5 = _listing(rel, files, md5s)
        if commit and not self._has_object(md5, len(raw)):
            self._store_bytes(md5, raw)
        return ContentHash(rel, md5, size, len(files), newest)

    def _walk(self, key: str, real: str, st: os.stat_result, files: list[_File], active: set[tuple[int, int]]) -> int:
        """Collect the regular files under ``real`` (keys under ``key``); return the newest mtime seen."""
        ident = (st.st_dev, st.st_ino)
        if ident in active:
            raise ArtifactError(f"{key!r} is a symbolic link to one of its own parent directories ({real!r})")
        active.add(ident)
        newest = st.st_mtime_ns
        with os.scandir(real) as entries:
            listed = list(entries)
        for entry in listed:
            name = entry.name
            if name in _IGNORED_ANY:
                continue
            child_key = f"{key}/{name}"
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                self._inside(target, child_key)
                try:
                    child = os.stat(target)
                except FileNotFoundError:
                    raise ArtifactError(
                        f"{child_key!r} is a symbolic link to {target!r}, which does not exist"
                    ) from None
                path = target
            else:
                child = entry.stat(follow_symlinks=False)
                path = entry.path
            mode = child.st_mode
            if stat.S_ISREG(mode):
                files.append(_File(child_key, path, child))
                if child.st_mtime_ns > newest:  # noqa: PLR1730 - max() costs a call per file
                    newest = child.st_mtime_ns
            elif stat.S_ISDIR(mode):
                if name not in _IGNORED_DIRS:
                    newest = max(newest, self._walk(child_key, path, child, files, active))
            else:
                raise ArtifactError(f"{child_key!r} is {_kind(mode)}; only regular files and directories are versioned")
        active.discard(ident)
        return newest

    # -- reading once, writing once ---------------------------------------------------------

    def _ingest_many(self, todo: list[_File], commit: bool) -> list[tuple[str, os.stat_result]]:
        total = sum(f.st.st_size for f in todo)
        workers = min(4, os.cpu_count() or 1)
        if workers < 2 or total < _PARALLEL_BYTES:
            # Below this, threads cost more than they save: a small file is mostly Python
            # overhead under the GIL, while md5 and I/O release it only on large buffers.
            return [self._ingest(f, f.key, commit) for f in todo]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cmf-versioning") as pool:
            return list(pool.map(lambda f: self._ingest(f, f.key, commit), todo))

    def _ingest(self, item: _File, shown: str, commit: bool) -> tuple[str, os.stat_result]:
        """Read a file once, hashing it and (when committing) copying it into the cache."""
        try:
            return self._ingest_once(item, commit)
        except _ChangedWhileReadError:
            logger.info("%s changed while it was read; reading it again", shown)
        try:
            return self._ingest_once(item, commit)
        except _ChangedWhileReadError:
            raise ArtifactError(
                f"{shown!r} kept changing while it was read (size or mtime moved during two reads in a row); "
                "record it once its writer has finished"
            ) from None

    def _ingest_once(self, item: _File, commit: bool) -> tuple[str, os.stat_result]:
        # O_NONBLOCK: should the path have become a FIFO since it was listed, open() returns
        # at once instead of waiting for a writer; fstat below then refuses it.
        fd = os.open(item.real, os.O_RDONLY | _O_CLOEXEC | _O_NOFOLLOW | _O_NONBLOCK)
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                raise ArtifactError(
                    f"{item.key!r} is {_kind(before.st_mode)}; only regular files and directories are versioned"
                )
            if before.st_size <= _SMALL:
                data = _read_all(fd, before.st_size)
                after = os.fstat(fd)
                if len(data) != before.st_size or _moved(before, after):
                    raise _ChangedWhileReadError
                md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
                if commit:
                    self._store_bytes(md5, data)
                return md5, after
            return self._stream(fd, before, commit)
        finally:
            os.close(fd)

    def _stream(self, fd: int, before: os.stat_result, commit: bool) -> tuple[str, os.stat_result]:
        """A large file: copied into a temporary file in the cache, then hashed there, then renamed.

        The source is read once, by the kernel copy (a reflink where the file system
        can); the md5 is computed on the copy, a private file nobody else writes, so it
        names the cached bytes by construction. A source whose size or mtime moved during
        the copy is copied again.
        """
        if not commit:
            md5, read = _hash_fd(fd, before.st_size)
            after = os.fstat(fd)
            if read != before.st_size or _moved(before, after):
                raise _ChangedWhileReadError
            return md5, after
        tmp = os.path.join(self._objects_dir(), f".{uuid.uuid4().hex}.tmp")
        out = self._create(tmp, os.O_RDWR)
        try:
            try:
                copied = before.st_size if self._clone(fd, out) else _copy(fd, out, before.st_size)
                after = os.fstat(fd)
                if copied != before.st_size or _moved(before, after):
                    raise _ChangedWhileReadError
                os.lseek(out, 0, os.SEEK_SET)
                md5, read = _hash_fd(out, before.st_size)
                if read != before.st_size:
                    raise _ChangedWhileReadError
                self._protect(out)
            finally:
                os.close(out)
            if self._has_object(md5, read):
                os.unlink(tmp)
            else:
                self._place(tmp, md5)
            return md5, after
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp)
            raise

    def _clone(self, src: int, dst: int) -> bool:
        """Reflink ``src`` into ``dst`` when the file system can (btrfs, XFS); remembered per cache."""
        if self._reflink is False:
            return False
        try:
            fcntl.ioctl(dst, _FICLONE, src)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.ENOSYS, errno.EPERM):
                self._reflink = False  # this file system never will: do not ask again
            return False
        self._reflink = True
        return True

    # -- the cache ------------------------------------------------------------------------------

    def _object_path(self, oid: str) -> str:
        return f"{self._objects_dir()}{os.sep}{oid[:2]}{os.sep}{oid[2:]}"

    def _has_object(self, oid: str, size: int) -> bool:
        # A short object (a writer killed half-way) is not content: it is written again.
        try:
            return os.stat(self._object_path(oid)).st_size == size
        except OSError:
            return False

    def _place(self, tmp: str, oid: str) -> None:
        self._ensure_prefix(oid)
        try:
            os.replace(tmp, self._object_path(oid))
        except FileNotFoundError:
            # The prefix directory was removed since it was made (a `dvc gc`): make it again.
            self._prefixes.discard(oid[:2])
            self._ensure_prefix(oid)
            os.replace(tmp, self._object_path(oid))

    def _ensure_prefix(self, oid: str) -> None:
        prefix = oid[:2]
        if prefix not in self._prefixes:
            os.makedirs(os.path.join(self._objects_dir(), prefix), exist_ok=True)
            self._prefixes.add(prefix)

    def _create(self, path: str, access: int = os.O_WRONLY) -> int:
        return os.open(path, access | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, _CACHE_MODE)

    def _protect(self, fd: int) -> None:
        # Created with mode 0o444 already; only a umask taking read bits needs the chmod dvc-data does.
        if self._umask is None or self._umask & _CACHE_MODE:
            os.fchmod(fd, _CACHE_MODE)

    def _store_bytes(self, oid: str, data: bytes) -> None:
        """Write a small object straight to its final path, unless it is there already.

        The exclusive create is the existence check: content already cached costs one
        failed open and one stat. Concurrent writers of the same content stay consistent.
        """
        dest = self._object_path(oid)
        try:
            try:
                out = self._create(dest)
            except FileNotFoundError:
                self._prefixes.discard(oid[:2])
                self._ensure_prefix(oid)
                out = self._create(dest)
        except FileExistsError:
            if self._has_object(oid, len(data)):
                return  # another thread or process wrote the same content
            # A short object left by a killed writer: replace it as a whole.
            tmp = os.path.join(self._objects_dir(), f".{uuid.uuid4().hex}.tmp")
            out = self._create(tmp)
            try:
                _write_all(out, data)
                self._protect(out)
            finally:
                os.close(out)
            self._place(tmp, oid)
            return
        try:
            _write_all(out, data)
            self._protect(out)
        except BaseException:
            with suppress(OSError):
                os.unlink(dest)
            raise
        finally:
            os.close(out)

    def store_object(self, md5: str, data: bytes) -> None:
        """Keep ``data``, whose md5 is ``md5``, in the cache (a blob that is no file of the project).

        Raises:
            ArtifactError: The cache cannot be written.
        """
        self.ensure_repo()
        if self._has_object(md5, len(data)):
            return
        try:
            self._store_bytes(md5, data)
        except OSError as exc:
            raise ArtifactError(f"cannot write object {md5} to the DVC cache: {exc}") from exc

    def read_object(self, md5: str) -> bytes:
        """The bytes of a cached object.

        Raises:
            ArtifactNotFoundError: The object is not in the cache.
        """
        try:
            with open(self._object_path(md5), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            raise ArtifactNotFoundError(f"object {md5} is not in the DVC cache") from None

    def adopt(self, rel: str, md5: str, files: Sequence[tuple[str, Path, str]]) -> ContentHash:
        """Record content just materialised from the cache as ``rel``, without reading it again.

        Args:
            rel: Project-relative path of the file or directory.
            md5: Its md5 (``<md5>.dir`` for a directory).
            files: ``(key, path, md5)`` of every file written (the key is ``rel``/name...).

        Raises:
            ArtifactError: A written file cannot be read back, or its ``.dvc`` file written.
        """
        rows: list[tuple[str, int, int, int, str]] = []
        size = 0
        newest = 0
        try:
            for key, path, oid in files:
                st = os.stat(path)
                rows.append((key, st.st_ino, st.st_mtime_ns, st.st_size, oid))
                size += st.st_size
                newest = max(newest, st.st_mtime_ns)
            if md5.endswith(".dir"):
                newest = max(newest, os.stat(self.root / rel).st_mtime_ns)
        except OSError as exc:
            raise ArtifactError(f"cannot record {rel!r}: {exc}") from exc
        self._stat_cache.save(rows)
        content = ContentHash(rel, md5, size, len(files) if md5.endswith(".dir") else None, newest)
        self._write_dvc_file(content)
        return content

    # -- .dvc files ----------------------------------------------------------------------------

    def _write_dvc_file(self, content: ContentHash) -> None:
        full = os.path.join(self._root_str, content.path)
        dvc_file = full + ".dvc"
        text = _dvc_file_text(content, os.path.basename(full))
        try:
            if self._dvc_file_is(dvc_file, text):
                return
            # Written aside and renamed: a reader never sees half a file.
            tmp = os.path.join(os.path.dirname(dvc_file), f".{os.path.basename(dvc_file)}.{uuid.uuid4().hex}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o666)
            try:
                _write_all(fd, text.encode("utf-8"))
                written = os.fstat(fd)
            finally:
                os.close(fd)
            os.replace(tmp, dvc_file)
        except OSError as exc:
            raise ArtifactError(f"cannot write {dvc_file}: {exc}") from exc
        self._dvc_files[dvc_file] = (_file_key(written), text)
        self._gitignore(Path(full))

    def _dvc_file_is(self, dvc_file: str, text: str) -> bool:
        """Whether the ``.dvc`` file holds ``text``: one stat when this process last wrote or read it."""
        try:
            key = _file_key(os.stat(dvc_file))
        except FileNotFoundError:
            return False
        known = self._dvc_files.get(dvc_file)
        if known is not None and known[0] == key:
            return known[1] == text
        try:
            with open(dvc_file, encoding="utf-8") as fh:
                current = fh.read()
        except (FileNotFoundError, UnicodeDecodeError):
            return False
        if len(self._dvc_files) >= _STAT_MEMORY:
            self._dvc_files.clear()
        self._dvc_files[dvc_file] = (key, current)
        return current == text

    def _gitignore(self, full: Path) -> None:
        # As `dvc add` does in a git work tree: the data itself is ignored, the .dvc file is not.
        if find_git_dir(self.root) is None:
            return
        ignore = full.parent / ".gitignore"
        entry = "/" + full.name
        existing = ignore.read_text(encoding="utf-8").splitlines() if ignore.exists() else []
        if entry not in existing:
            with ignore.open("a", encoding="utf-8") as fh:
                fh.write(entry + "\n")


def _listing(rel: str, files: list[_File], md5s: dict[str, str]) -> tuple[bytes, str]:
    """The ``.dir`` object and its oid, as dvc-data's ``Tree.as_bytes()`` and ``Tree.digest()`` make them."""
    prefix = len(rel) + 1
    listing = sorted(({"md5": md5s[f.key], "relpath": f.key[prefix:]} for f in files), key=lambda e: e["relpath"])
    raw = json.dumps(listing, sort_keys=True).encode("utf-8")
    return raw, hashlib.md5(raw, usedforsecurity=False).hexdigest() + ".dir"


def _file_key(st: os.stat_result) -> tuple[int, int, int]:
    """What changes when a file is written or replaced (and not when it is renamed)."""
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _moved(before: os.stat_result, after: os.stat_result) -> bool:
    return before.st_size != after.st_size or before.st_mtime_ns != after.st_mtime_ns or before.st_ino != after.st_ino


def _read_all(fd: int, size: int) -> bytes:
    # Asking for one byte more costs nothing and shows a file that grew since its fstat; one
    # that grows later is caught by the fstat after the read, so a full read needs no EOF read.
    chunks: list[bytes] = []
    total = 0
    while total < size:
        chunk = os.read(fd, size + 1 - total)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _chunks(fd: int, limit: int) -> Iterator[bytes]:
    """The file's bytes in chunks, stopping one byte past ``limit``: a growing file never keeps us reading."""
    read = 0
    while read <= limit:
        chunk = os.read(fd, min(_CHUNK, limit + 1 - read))
        if not chunk:
            return
        read += len(chunk)
        yield chunk


def _hash_fd(fd: int, limit: int) -> tuple[str, int]:
    digest = hashlib.md5(usedforsecurity=False)
    read = 0
    for chunk in _chunks(fd, limit):
        digest.update(chunk)
        read += len(chunk)
    return digest.hexdigest(), read


def _copy(src: int, dst: int, limit: int) -> int:
    """Copy from ``src`` to ``dst`` in the kernel, stopping one byte past ``limit``; the bytes copied."""
    copied = 0
    try:
        while copied <= limit:
            step = os.copy_file_range(src, dst, limit + 1 - copied)
            if not step:
                return copied
            copied += step
        return copied
    except (AttributeError, OSError) as exc:
        # No copy_file_range (not Linux, or across file systems on an old kernel): go through user space.
        if isinstance(exc, OSError) and exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    for chunk in _chunks(src, limit - copied):
        _write_all(dst, chunk)
        copied += len(chunk)
    return copied


def _check_name(key: str) -> None:
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise ArtifactError(
            f"{key.encode('utf-8', 'surrogateescape')!r} is not a valid UTF-8 file name; DVC cannot record it"
        ) from None


def _check_names(files: list[_File]) -> None:
    try:
        "\0".join(f.key for f in files).encode("utf-8")
    except UnicodeEncodeError:
        for item in files:
            _check_name(item.key)


def _dvc_file_text(content: ContentHash, name: str) -> str:
    """The ``.dvc`` file ``dvc add`` writes for ``content`` (DVC dumps it with ruamel.yaml)."""
    _check_name(name)
    out: dict[str, Any] = {"md5": content.md5, "size": content.size}
    if content.nfiles is not None:
        out["nfiles"] = content.nfiles
    out["hash"] = "md5"
    out["path"] = name
    if _PLAIN_NAME.match(name) and name.lower() not in _YAML_WORDS:
        lines = ["outs:", f"- md5: {content.md5}", f"  size: {content.size}"]
        if content.nfiles is not None:
            lines.append(f"  nfiles: {content.nfiles}")
        lines += ["  hash: md5", f"  path: {name}", ""]
        return "\n".join(lines)
    # Any other name (spaces, quotes, any Unicode) is quoted and wrapped exactly as DVC does it.
    import io

    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.default_flow_style = False
    stream = io.StringIO()
    yaml.dump({"outs": [out]}, stream)
    return stream.getvalue()


_versioners: dict[tuple[Path, int], Versioner] = {}
_versioners_lock = threading.Lock()


def versioner_for(root: Path) -> Versioner:
    """The process-wide :class:`Versioner` of a project root."""
    pid = os.getpid()  # the stat cache connection is not shared with a forked child
    given = (os.fspath(root), pid)
    versioner = _versioners_given.get(given)
    if versioner is not None:
        return versioner
    path = Path(root).resolve()
    with _versioners_lock:
        versioner = _versioners.get((path, pid))
        if versioner is None:
            versioner = _versioners[(path, pid)] = Versioner(path)
        _versioners_given[given] = versioner
        return versioner


#: The same, by the root as given: resolving the path on every call costs a stat per component.
_versioners_given: dict[tuple[str, int], Versioner] = {}


# -- remotes: moving cached content -------------------------------------------------------------


def set_remote(root: Path, url: str, name: str = "storage", default: bool = True) -> None:
    """Add or update a DVC remote through DVC's config API (idempotent).

    Raises:
        ConfigError: DVC refused the remote.
    """
    from dvc.config import Config
    from dvc.config import ConfigError as DvcConfigError

    versioner = versioner_for(root)
    versioner.ensure_repo()
    try:
        config = Config(dvc_dir=os.fspath(versioner.dvc_dir))
        with config.edit("repo") as conf:
            conf["remote"][name] = {**conf["remote"].get(name, {}), "url": url}
            if default:
                conf["core"]["remote"] = name
    except DvcConfigError as exc:
        raise ConfigError(f"DVC remote {name!r} ({url!r}): {exc}") from exc


def default_remote(root: Path) -> str | None:
    """Name of the default DVC remote of the project, if any."""
    from dvc.config import Config

    versioner = versioner_for(root)
    if not (versioner.dvc_dir / "config").exists():
        return None
    remote = Config(dvc_dir=os.fspath(versioner.dvc_dir))["core"].get("remote")
    return str(remote) if remote else None


def default_remote_url(root: Path) -> str | None:
    """URL of the project's default DVC remote, if any (as DVC's config holds it).

    DVC's config is parsed again only when the project's config files change.
    """
    versioner = versioner_for(root)
    files = [versioner.dvc_dir / "config", versioner.dvc_dir / "config.local"]
    if not files[0].exists():
        return None
    key = (str(versioner.dvc_dir), tuple(_stat_key(f) for f in files))
    with _remote_urls_lock:
        if key in _remote_urls:
            return _remote_urls[key]
    url = _read_remote_url(versioner.dvc_dir)
    with _remote_urls_lock:
        _remote_urls[key] = url
    return url


_remote_urls: dict[tuple[str, tuple[tuple[int, int, int], ...]], str | None] = {}
_remote_urls_lock = threading.Lock()


def _stat_key(path: Path) -> tuple[int, int, int]:
    try:
        st = path.stat()
    except OSError:
        return (-1, -1, -1)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _read_remote_url(dvc_dir: Path) -> str | None:
    from dvc.config import Config

    config = Config(dvc_dir=os.fspath(dvc_dir))
    name = config["core"].get("remote")
    if not name:
        return None
    url = config["remote"].get(name, {}).get("url")
    return str(url) if url else None
