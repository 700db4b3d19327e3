"""Content versioning through DVC's own libraries (the only module importing dvc).

An artifact's identity is the md5 that ``dvc add`` records: the file's md5, or
``<md5>.dir`` for a directory. Outputs and untracked inputs are committed to the
project's DVC cache with a ``.dvc`` file, exactly as ``dvc add`` would leave them, so
``dvc status``, ``dvc push`` and ``dvc checkout`` work on them. Hashes are remembered
in a DVC state database keyed by inode, mtime and size, so an unchanged file is not
read again. No ``dvc`` or ``git`` process is spawned.
"""

from __future__ import annotations

import configparser
import fcntl
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmf_orchestrate.errors import ArtifactError, ArtifactNotFoundError, ConfigError, PathOutsideProjectError

if TYPE_CHECKING:
    from dvc_data.hashfile.db.local import LocalHashFileDB

__all__ = [
    "ContentHash",
    "TransferReport",
    "Versioner",
    "checkout",
    "default_remote",
    "fetch",
    "find_git_dir",
    "push",
    "set_remote",
    "versioner_for",
]

logger = logging.getLogger(__name__)

_STATE_DIR = ("tmp", "cmf-orchestrate-state")


@dataclass(frozen=True)
class ContentHash:
    """The DVC identity of a file or directory.

    Attributes:
        path: Path relative to the project root, with forward slashes.
        md5: The md5 ``dvc add`` records (``<md5>.dir`` for a directory).
        size: Size in bytes (sum of files for a directory).
        nfiles: Number of files for a directory, ``None`` for a file.
    """

    path: str
    md5: str
    size: int
    nfiles: int | None = None

    @property
    def is_dir(self) -> bool:
        """Whether the hash is a directory (tree) hash."""
        return self.md5.endswith(".dir")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {"path": self.path, "md5": self.md5, "size": self.size, "nfiles": self.nfiles}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContentHash:
        """Inverse of :meth:`to_dict`."""
        return cls(str(data["path"]), str(data["md5"]), int(data["size"]), data.get("nfiles"))


def find_git_dir(start: Path) -> Path | None:
    """The ``.git`` directory of the work tree containing ``start``, if any."""
    for directory in (start, *start.parents):
        candidate = directory / ".git"
        if candidate.exists():
            return candidate
    return None


class Versioner:
    """Hashes and caches artifacts of one project root.

    Thread-safe: one instance serves every thread of a process (see :func:`versioner_for`).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._lock = threading.RLock()
        self._odb: LocalHashFileDB | None = None

    # -- paths -------------------------------------------------------------------------

    def relpath(self, path: str | os.PathLike[str]) -> str:
        """``path`` relative to the project root, with forward slashes.

        Relative paths are taken relative to the project root.

        Raises:
            PathOutsideProjectError: The path lies outside the project root.
        """
        candidate = Path(path).expanduser()
        full = candidate if candidate.is_absolute() else self.root / candidate
        full = Path(os.path.normpath(full))
        try:
            rel = full.relative_to(self.root)
        except ValueError:
            raise PathOutsideProjectError(
                f"{os.fspath(path)!r} is outside the project root {str(self.root)!r}"
            ) from None
        if not rel.parts:
            raise PathOutsideProjectError(f"{os.fspath(path)!r} is the project root itself, not an artifact")
        if rel.parts[0] in {".dvc", ".git"}:
            raise PathOutsideProjectError(f"{os.fspath(path)!r} is inside the project's {rel.parts[0]} directory")
        return rel.as_posix()

    def abspath(self, path: str | os.PathLike[str]) -> Path:
        """Absolute path of a project path.

        Raises:
            PathOutsideProjectError: The path lies outside the project root.
        """
        return self.root / self.relpath(path)

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
        if (self.dvc_dir / "config").exists():
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
        """The DVC cache directory, honouring ``cache.dir`` of the repository config."""
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

    def _cache(self) -> LocalHashFileDB:
        with self._lock:
            if self._odb is None:
                self.ensure_repo()
                from dvc_data.hashfile.db.local import LocalHashFileDB
                from dvc_data.hashfile.state import State
                from dvc_objects.fs.local import LocalFileSystem

                state_dir = self.dvc_dir.joinpath(*_STATE_DIR)
                state_dir.mkdir(parents=True, exist_ok=True)
                state = State(os.fspath(self.root), os.fspath(state_dir))
                files = self.cache_dir() / "files" / "md5"
                self._odb = LocalHashFileDB(LocalFileSystem(), os.fspath(files), state=state)
            return self._odb

    # -- hashing and committing ----------------------------------------------------------

    def hash(self, path: str | os.PathLike[str]) -> ContentHash:
        """The DVC md5 of a file or directory, without touching the cache.

        Raises:
            PathOutsideProjectError: The path lies outside the project root.
            ArtifactNotFoundError: The path does not exist.
        """
        rel = self.relpath(path)
        return self._build(rel, commit=False)

    def commit(self, path: str | os.PathLike[str]) -> ContentHash:
        """Hash ``path``, add it to the DVC cache and write its ``.dvc`` file, as ``dvc add``.

        Unchanged content already in the cache with an up-to-date ``.dvc`` file costs
        one stat and one state lookup.

        Raises:
            PathOutsideProjectError: The path lies outside the project root.
            ArtifactNotFoundError: The path does not exist.
            ArtifactError: DVC failed to cache the content.
        """
        rel = self.relpath(path)
        content = self._build(rel, commit=True)
        self._write_dvc_file(content)
        return content

    def _build(self, rel: str, commit: bool) -> ContentHash:
        from dvc_data.hashfile.build import build
        from dvc_data.hashfile.transfer import transfer

        full = self.root / rel
        if not full.exists():
            raise ArtifactNotFoundError(f"artifact path {rel!r} does not exist (looked in {str(self.root)!r})")
        odb = self._cache()
        try:
            staging, meta, obj = build(odb, os.fspath(full), odb.fs, "md5", dry_run=not commit)
            if commit:
                transfer(staging, odb, {obj.hash_info}, shallow=False, hardlink=False)
        except FileNotFoundError as exc:
            raise ArtifactNotFoundError(f"artifact path {rel!r} vanished while it was being hashed") from exc
        except OSError as exc:
            raise ArtifactError(f"cannot version {rel!r}: {exc}") from exc
        md5 = str(obj.hash_info.value)
        return ContentHash(rel, md5, int(meta.size or 0), meta.nfiles if md5.endswith(".dir") else None)

    def _write_dvc_file(self, content: ContentHash) -> None:
        full = self.root / content.path
        dvc_file = full.with_name(full.name + ".dvc")
        lines = ["outs:", f"- md5: {content.md5}", f"  size: {content.size}"]
        if content.nfiles is not None:
            lines.append(f"  nfiles: {content.nfiles}")
        lines += ["  hash: md5", f"  path: {_yaml_str(full.name)}", ""]
        text = "\n".join(lines)
        try:
            if dvc_file.exists() and dvc_file.read_text() == text:
                return
            tmp = dvc_file.with_name(f".{dvc_file.name}.{uuid.uuid4().hex}.tmp")
            tmp.write_text(text)
            os.replace(tmp, dvc_file)
        except OSError as exc:
            raise ArtifactError(f"cannot write {dvc_file}: {exc}") from exc
        self._gitignore(full)

    def _gitignore(self, full: Path) -> None:
        # As `dvc add` does in a git work tree: the data itself is ignored, the .dvc file is not.
        if find_git_dir(self.root) is None:
            return
        ignore = full.parent / ".gitignore"
        entry = "/" + full.name
        existing = ignore.read_text().splitlines() if ignore.exists() else []
        if entry not in existing:
            with ignore.open("a") as fh:
                fh.write(entry + "\n")


def _yaml_str(value: str) -> str:
    plain = value.replace("-", "").replace("_", "").replace(".", "").replace("/", "")
    if (
        plain.isalnum()
        and not value[0].isdigit()
        and value.lower() not in {"yes", "no", "true", "false", "null", "on", "off"}
    ):
        return value
    return json.dumps(value)


_versioners: dict[tuple[Path, int], Versioner] = {}
_versioners_lock = threading.Lock()


def versioner_for(root: Path) -> Versioner:
    """The process-wide :class:`Versioner` of a project root."""
    path = Path(root).resolve()
    key = (path, os.getpid())  # the hash state database is not shared with a forked child
    with _versioners_lock:
        versioner = _versioners.get(key)
        if versioner is None:
            versioner = _versioners[key] = Versioner(path)
        return versioner


# -- remotes: moving cached content -------------------------------------------------------------


@dataclass(frozen=True)
class TransferReport:
    """What a push or fetch moved."""

    transferred: int
    skipped: int
    failed: tuple[str, ...]


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


def _move(
    root: Path,
    hashes: Sequence[str],
    remote: str | None,
    upload: bool,
    progress: Callable[[int, int], None] | None,
) -> TransferReport:
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc_data.hashfile.hash_info import HashInfo

    versioner = versioner_for(root)
    versioner.ensure_repo()
    wanted = list(dict.fromkeys(h for h in hashes if h))
    transferred = skipped = 0
    failed: list[str] = []
    try:
        repo = Repo(os.fspath(versioner.root))
    except DvcException as exc:
        raise ArtifactError(f"cannot open the DVC repository at {str(versioner.root)!r}: {exc}") from exc
    with repo:
        try:
            remote_odb = repo.cloud.get_remote_odb(remote, "push" if upload else "fetch")
        except DvcException as exc:
            raise ConfigError(f"DVC remote {remote or '(default)'}: {exc}") from exc
        cache = versioner._cache()
        src, dest = (cache, remote_odb) if upload else (remote_odb, cache)
        for index, md5 in enumerate(wanted, 1):
            try:
                result = repo.cloud.transfer(src, dest, {HashInfo("md5", md5)}, shallow=False)
                if result.failed:
                    failed.append(md5)
                elif result.transferred:
                    transferred += 1
                else:
                    skipped += 1
            except (DvcException, OSError, FileNotFoundError):
                failed.append(md5)
            if progress is not None:
                progress(index, len(wanted))
    return TransferReport(transferred, skipped, tuple(failed))


def push(
    root: Path, hashes: Sequence[str], *, remote: str | None = None, progress: Callable[[int, int], None] | None = None
) -> TransferReport:
    """Upload cached content (files, and directories with their files) to a DVC remote.

    Raises:
        ConfigError: No usable remote.
        ArtifactError: The DVC repository cannot be opened.
    """
    return _move(root, hashes, remote, True, progress)


def fetch(
    root: Path, hashes: Sequence[str], *, remote: str | None = None, progress: Callable[[int, int], None] | None = None
) -> TransferReport:
    """Download content from a DVC remote into the local cache.

    Raises:
        ConfigError: No usable remote.
        ArtifactError: The DVC repository cannot be opened.
    """
    return _move(root, hashes, remote, False, progress)


def checkout(root: Path, path: str, md5: str) -> ContentHash:
    """Materialise ``path`` as content ``md5`` from the cache and write its ``.dvc`` file.

    Raises:
        ArtifactNotFoundError: The content is not in the local cache.
        PathOutsideProjectError: The path lies outside the project root.
    """
    import shutil

    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree

    versioner = versioner_for(root)
    rel = versioner.relpath(path)
    cache = versioner._cache()
    target = versioner.root / rel

    def copy(oid: str, dest: Path) -> None:
        source = Path(cache.oid_to_path(oid))
        if not source.exists():
            raise ArtifactNotFoundError(f"content {oid} of {rel!r} is not in the DVC cache; fetch it first")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)

    with versioner._lock:
        if md5.endswith(".dir"):
            try:
                tree = Tree.load(cache, HashInfo("md5", md5))
            except FileNotFoundError:
                raise ArtifactNotFoundError(
                    f"directory {md5} of {rel!r} is not in the DVC cache; fetch it first"
                ) from None
            if target.is_file():
                target.unlink()
            for key, _, hash_info in tree:
                copy(str(hash_info.value), target.joinpath(*key))
        else:
            if target.is_dir():
                shutil.rmtree(target)
            copy(md5, target)
    return versioner.commit(rel)
