"""Moving versioned content between a project's DVC cache, its work tree and a DVC remote.

Workers share a metadata store and a DVC remote, nothing else. Completing an attempt
pushes its outputs to the remote; an input missing on a worker is fetched by its recorded
md5 and checked out. The remote is reached through DVC's own file systems (``dvc-s3`` and
the other plugins), opened once per process and remote, so a push of one small output
costs an existence check and a copy.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmf_orchestrate._storeurl import mask_credentials
from cmf_orchestrate.errors import ArtifactError, ArtifactNotFoundError, ConfigError, RemoteError
from cmf_orchestrate.versioning import ContentHash, versioner_for

if TYPE_CHECKING:
    from dvc_data.hashfile.db import HashFileDB

__all__ = [
    "Remote",
    "TransferReport",
    "checkout",
    "fetch",
    "in_cache",
    "is_content_id",
    "open_remote",
    "push",
    "remote_has",
]

_MD5 = re.compile(r"^[0-9a-f]{32}(\.dir)?$")
#: Remote names DVC accepts in its config (a URL always has a ``:`` or a ``/``).
_NAME = re.compile(r"^[\w.-]+$")


@dataclass(frozen=True)
class TransferReport:
    """What a push or fetch did, object by object (md5s).

    Attributes:
        transferred: Copied to the destination.
        present: Already at the destination; nothing was copied.
        missing: Absent from the source (for a directory: the listing or one of its files).
        failed: The copy failed.
        reason: Why the first failed copy failed.
    """

    transferred: tuple[str, ...] = ()
    present: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    reason: str = ""

    @property
    def ok(self) -> bool:
        """Every object is at the destination."""
        return not self.missing and not self.failed


@dataclass(frozen=True)
class Remote:
    """A DVC remote opened for transfers.

    Attributes:
        url: Where it is, credentials masked (for messages).
        name: Its name in the project's DVC config, or ``""`` for a URL given as is.
    """

    url: str
    name: str
    odb: HashFileDB = field(repr=False, compare=False)

    def has(self, md5: str) -> bool:
        """Whether the remote holds the object (for a directory: its listing and every file)."""
        try:
            if not md5.endswith(".dir"):
                return bool(self.odb.exists(md5))
            tree = _tree(self.odb, md5)
            return tree is not None and all(self.odb.exists(oid) for oid in tree)
        except Exception as exc:  # the remote's file system raises its own types (botocore, ...)
            raise RemoteError(f"DVC remote {self.url}: {mask_credentials(str(exc))}") from exc


_remotes: dict[tuple[str, str, tuple[tuple[int, int, int], ...]], Remote] = {}
_remotes_lock = threading.Lock()


def open_remote(root: Path, remote: str | None = None) -> Remote:
    """The remote named or located by ``remote`` (default: the project's DVC default remote).

    ``remote`` is a DVC remote URL (a path, ``s3://...``, any scheme of an installed DVC
    plugin) or the name of a remote in the project's DVC config. A relative path is
    relative to the project root. A URL equal to a configured remote's takes that
    remote's options (endpoint, credentials profile, ...).

    Raises:
        ConfigError: No remote is given or configured, or DVC refuses its URL or options.
    """
    versioner = versioner_for(root)
    config_files = (versioner.dvc_dir / "config", versioner.dvc_dir / "config.local")
    key = (os.fspath(versioner.root), remote or "", tuple(_stat_key(f) for f in config_files))
    with _remotes_lock:
        found = _remotes.get(key)
    if found is not None:
        return found
    opened = _open(versioner.root, versioner.dvc_dir, remote)
    with _remotes_lock:
        _remotes[key] = opened
    return opened


def _open(root: Path, dvc_dir: Path, remote: str | None) -> Remote:
    from dvc.config import Config
    from dvc.config import ConfigError as DvcConfigError
    from dvc.fs import get_cloud_fs

    try:
        config: Any = Config(dvc_dir=os.fspath(dvc_dir)) if (dvc_dir / "config").exists() else None
    except DvcConfigError as exc:
        raise ConfigError(f"DVC config of {str(root)!r}: {exc}") from exc
    remotes: dict[str, Any] = dict(config["remote"]) if config is not None else {}
    name = ""
    url = None
    if remote is None:
        name = str(config["core"].get("remote") or "") if config is not None else ""
        if not name:
            raise ConfigError(
                f"no DVC remote for {str(root)!r}: set one with `cmf-orchestrate init --remote URL`, "
                "the `remote` setting (cmf-orchestrate.toml, CMF_REMOTE) or `dvc remote add -d`"
            )
    elif remote in remotes:
        name = remote
    else:
        url = _absolute(remote, root)
        name = next((n for n, conf in remotes.items() if _absolute(str(conf.get("url", "")), root) == url), "")
    if name and name not in remotes:
        raise ConfigError(f"DVC remote {name!r} is not defined in {str(dvc_dir / 'config')!r}")
    shown = mask_credentials(str(remotes[name]["url"]) if name else str(url))
    try:
        kwargs = {"name": name} if name else {"url": url}
        cls, fs_config, fs_path = get_cloud_fs(config or {}, **kwargs)
        fs = cls(**fs_config)
    except ImportError as exc:
        raise ConfigError(f"DVC remote {shown}: {exc} (install the DVC plugin of its scheme, e.g. dvc-s3)") from exc
    except Exception as exc:  # DVC and its plugins raise many types for a bad URL
        raise ConfigError(f"DVC remote {shown}: {exc}") from exc
    from dvc_data.hashfile.db import get_odb

    odb = get_odb(fs, fs.join(fs_path, "files", "md5"), hash_name="md5")  # type: ignore[no-untyped-call]
    return Remote(shown, name, odb)


def _absolute(url: str, root: Path) -> str:
    """A local remote path made absolute against the project root; URLs as they are."""
    if not url or "://" in url or re.match(r"^[\w.-]+@[^:]+:", url):
        return url
    return os.path.normpath(os.path.join(root, os.path.expanduser(url)))


def _stat_key(path: Path) -> tuple[int, int, int]:
    try:
        st = path.stat()
    except OSError:
        return (-1, -1, -1)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _tree(odb: HashFileDB, md5: str) -> list[str] | None:
    """The file oids of a directory object, or None when its listing is absent."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree

    try:
        tree = Tree.load(odb, HashInfo("md5", md5))
    except (FileNotFoundError, ValueError):
        return None
    return [str(info.value) for _, _, info in tree]


def is_content_id(uri: str) -> bool:
    """Whether an artifact uri is a DVC md5 (``<md5>`` or ``<md5>.dir``), i.e. versioned bytes."""
    return bool(_MD5.match(uri))


def _wanted(hashes: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(h for h in hashes if h and _MD5.match(h)))


def _transfer(
    src: HashFileDB, dest: HashFileDB, md5s: Sequence[str], progress: Callable[[int, int], None] | None
) -> tuple[set[str], dict[str, str]]:
    """Copy objects (with a directory's files); return the md5s transferred and why others failed."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.transfer import transfer

    transferred: set[str] = set()
    failed: dict[str, str] = {}
    for index, md5 in enumerate(md5s, 1):
        try:
            result = transfer(src, dest, {HashInfo("md5", md5)}, shallow=False)
        except Exception as exc:  # noqa: BLE001 - the remote's file system raises its own types (botocore, ...)
            failed[md5] = mask_credentials(f"{type(exc).__name__}: {exc}")
        else:
            if result.failed:
                failed[md5] = "the copy failed (DVC reported the object as failed)"
            elif result.transferred:
                transferred.add(md5)
        if progress is not None:
            progress(index, len(md5s))
    return transferred, failed


def _ends(root: Path, remote: str | Remote | None) -> tuple[Remote, Remote]:
    """The remote of a transfer, and the project's cache seen the same way."""
    far = remote if isinstance(remote, Remote) else open_remote(root, remote)
    return far, _local(root)


def _local(root: Path) -> Remote:
    return Remote("cache", "", versioner_for(root)._cache())


def push(
    root: Path,
    hashes: Iterable[str],
    remote: str | Remote | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> TransferReport:
    """Upload cached objects (a directory with its files) to a remote.

    An object absent from the local cache is ``present`` when the remote holds it (another
    worker pushed it), else ``missing``: never reported as already there when it is not.

    Raises:
        ConfigError: No usable remote.
        RemoteError: The remote cannot be reached.
    """
    target, local = _ends(root, remote)
    cache = local.odb
    wanted = _wanted(hashes)
    present = [m for m in wanted if target.has(m)]
    elsewhere = [m for m in wanted if m not in set(present)]
    missing = [m for m in elsewhere if not local.has(m)]
    todo = [m for m in elsewhere if m not in set(missing)]
    transferred, failed = _transfer(cache, target.odb, todo, progress)
    # A copy that moved nothing new (another worker pushed it meanwhile) is there all the same.
    present += [m for m in todo if m not in transferred and m not in failed]
    return TransferReport(
        tuple(m for m in todo if m in transferred),
        tuple(present),
        tuple(missing),
        tuple(sorted(failed)),
        next(iter(failed.values()), ""),
    )


def fetch(
    root: Path,
    hashes: Iterable[str],
    remote: str | Remote | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> TransferReport:
    """Download objects from a remote into the local cache.

    Objects the remote does not hold are reported ``missing``.

    Raises:
        ConfigError: No usable remote.
        RemoteError: The remote cannot be reached.
    """
    source, local = _ends(root, remote)
    cache = local.odb
    wanted = _wanted(hashes)
    present = [m for m in wanted if local.has(m)]
    todo = [m for m in wanted if m not in set(present)]
    _, failed = _transfer(source.odb, cache, todo, progress)
    # Whatever is not in the cache now was not on the remote, unless its copy failed.
    missing = [m for m in todo if m not in failed and not local.has(m)]
    done = [m for m in todo if m not in failed and m not in missing]
    return TransferReport(
        tuple(done), tuple(present), tuple(missing), tuple(sorted(failed)), next(iter(failed.values()), "")
    )


def remote_has(root: Path, md5: str, remote: str | Remote | None = None) -> bool:
    """Whether the remote holds an object.

    Raises:
        ConfigError: No usable remote.
        RemoteError: The remote cannot be reached.
    """
    target = remote if isinstance(remote, Remote) else open_remote(root, remote)
    return target.has(md5)


def in_cache(root: Path, md5: str) -> bool:
    """Whether the project's DVC cache holds an object (for a directory: every file)."""
    return _local(root).has(md5)


def checkout(root: Path, path: str, md5: str) -> ContentHash:
    """Make ``path`` hold content ``md5`` from the cache, and write its ``.dvc`` file.

    The content appears at once: a file is copied next to its place and renamed over it; a
    directory is assembled next to its place and swapped in, so no reader ever sees half
    of it, and files the recorded directory does not hold are gone. Nothing is hashed
    again: the cache's objects are named by their md5.

    Raises:
        ArtifactNotFoundError: The content is not in the local cache.
        PathOutsideProjectError: The path lies outside the project root.
        ArtifactError: The path cannot be written.
    """
    versioner = versioner_for(root)
    rel = versioner.relpath(path)
    cache = versioner._cache()
    target = versioner.root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    if md5.endswith(".dir"):
        files = _tree_entries(cache, md5, rel)
        staging = target.with_name(f".{target.name}.{token}.tmp")
        try:
            for key, oid in files:
                dest = staging.joinpath(*key)
                dest.parent.mkdir(parents=True, exist_ok=True)
                _copy_object(cache, oid, rel, dest)
            _swap_in(staging, target, token)
        finally:
            with suppress(FileNotFoundError):
                shutil.rmtree(staging)
        listed = [(f"{rel}/{'/'.join(key)}", target.joinpath(*key), oid) for key, oid in files]
    else:
        staging = target.with_name(f".{target.name}.{token}.tmp")
        try:
            _copy_object(cache, md5, rel, staging)
            if target.is_dir() and not target.is_symlink():
                _swap_in(staging, target, token)
            else:
                os.replace(staging, target)
        finally:
            with suppress(FileNotFoundError):
                staging.unlink()
        listed = [(rel, target, md5)]
    return versioner.adopt(rel, md5, listed)


def _tree_entries(cache: HashFileDB, md5: str, rel: str) -> list[tuple[tuple[str, ...], str]]:
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree

    try:
        tree = Tree.load(cache, HashInfo("md5", md5))
    except (FileNotFoundError, ValueError):
        raise ArtifactNotFoundError(f"directory {md5} of {rel!r} is not in the DVC cache; fetch it first") from None
    return [(tuple(key), str(info.value)) for key, _, info in tree]


def _copy_object(cache: HashFileDB, oid: str, rel: str, dest: Path) -> None:
    source = cache.oid_to_path(oid)
    try:
        shutil.copyfile(source, dest)
    except FileNotFoundError:
        raise ArtifactNotFoundError(f"content {oid} of {rel!r} is not in the DVC cache; fetch it first") from None


def _swap_in(staging: Path, target: Path, token: str) -> None:
    """Put ``staging`` where ``target`` is, moving the old one aside first.

    Another process restoring the same path may put its copy in place between the two
    renames; then that copy is moved aside too, and this one goes in.
    """
    for attempt in range(50):
        old = target.with_name(f".{target.name}.{token}.{attempt}.old")
        with suppress(FileNotFoundError):
            os.rename(target, old)
        try:
            os.rename(staging, target)
        except OSError as exc:
            if not target.exists():
                raise
            del exc  # another restore won the race for the empty place: again
            continue
        finally:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                with suppress(FileNotFoundError):
                    old.unlink()
        return
    raise ArtifactError(f"cannot put {str(target)!r} in place: other processes keep replacing it")
