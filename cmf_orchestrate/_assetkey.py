"""The orchestrator asset standing for a project file: one key for Airflow and Prefect.

A file or directory of the project is the asset ``cmf://<path>``, where ``<path>`` is its
path relative to the project root, with forward slashes: ``data/raw.csv`` is
``cmf://data/raw.csv`` whether an Airflow task or a Prefect task wrote it, on whichever
worker (a worker's project root may be anywhere; the relative path is what the metadata
store records). Airflow uses the key as the asset's name and URI, Prefect as its key.

Three rules keep the key valid in both orchestrators and stable over runs:

- A file whose name carries a run's uuid, as step-metrics files do
  (``cmf_artifacts/metrics/training-<uuid>.parquet``), is the asset of its name without
  the uuid (``cmf://cmf_artifacts/metrics/training.parquet``): each run is a new version
  of one asset, not a new asset.
- Characters that Prefect refuses in a key, and non-ASCII characters, which Airflow
  refuses in a URI, become ``_``; the key then ends with ``~`` and 8 hex digits of the
  original path's sha1, so that two paths never share a key.
- A key longer than 512 characters keeps the end of the path after a sha1 of the whole.

This module imports neither Airflow nor Prefect.
"""

from __future__ import annotations

import hashlib
import posixpath
import re

__all__ = ["ASSET_SCHEME", "MAX_KEY_LENGTH", "asset_key", "asset_path"]

#: URI scheme of the assets that stand for project files.
ASSET_SCHEME = "cmf"
#: Longest key Prefect accepts (Airflow accepts longer URIs).
MAX_KEY_LENGTH = 512

_PREFIX = f"{ASSET_SCHEME}://"
# Characters Prefect refuses in an asset key (prefect.types.names.RESTRICTED_ASSET_CHARACTERS).
_RESTRICTED = frozenset("\n\r\t\0 #?&%\"'<>[]{}|\\^`")
_RUN_UUID = re.compile(r"-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?=\.[^/]*$|$)")
_RUN_NAMED_DIRS = ("cmf_artifacts/",)


def asset_path(path: str) -> str:
    """The project-relative path an asset key is made of.

    Backslashes become slashes, ``.`` and doubled slashes are dropped, a leading ``/`` is
    removed, and a run uuid in the name of a file under ``cmf_artifacts/`` is dropped.
    """
    relative = posixpath.normpath(path.replace("\\", "/")).lstrip("/")
    if relative == ".":
        return ""
    if relative.startswith(_RUN_NAMED_DIRS):
        head, _, name = relative.rpartition("/")
        relative = f"{head}/{_RUN_UUID.sub('', name)}"
    return relative


def _digest(text: str, length: int) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:length]


def asset_key(path: str) -> str:
    """The asset key of the project file or directory at ``path``.

    Args:
        path: Path relative to the project root.

    Returns:
        ``cmf://<path>``, valid as an Airflow asset URI and as a Prefect asset key.
    """
    relative = asset_path(path)
    cleaned = "".join("_" if ch in _RESTRICTED or not ch.isascii() else ch for ch in relative)
    if cleaned != relative:
        cleaned = f"{cleaned}~{_digest(relative, 8)}"
    key = _PREFIX + cleaned
    if len(key) > MAX_KEY_LENGTH:
        head = f"{_PREFIX}{_digest(relative, 12)}/..."
        key = head + cleaned[-(MAX_KEY_LENGTH - len(head)) :]
    return key
