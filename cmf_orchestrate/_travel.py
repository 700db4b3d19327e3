"""Artifacts travel with the metadata: inputs come from their recorded version, outputs go to the remote.

Workers share the metadata store and a DVC remote, nothing else. A worker's project root
is a cache: an input it lacks is found in the store (the latest COMPLETE output of that
path, preferring the same pipeline run, then the same pipeline), fetched from the remote
by md5 and checked out; completing an attempt pushes what it wrote.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cmf_orchestrate.errors import ArtifactNotFoundError, RemoteError
from cmf_orchestrate.records import EventType, ExecutionRecord, ExecutionState
from cmf_orchestrate.settings import CmfSettings
from cmf_orchestrate.store import MetadataStore
from cmf_orchestrate.versioning import Versioner

logger = logging.getLogger(__name__)

#: States whose outputs count as recorded versions (a reused execution re-records its outputs).
_DONE = (ExecutionState.COMPLETE, ExecutionState.CACHED)


@dataclass(frozen=True)
class RecordedVersion:
    """The latest recorded version of a path: its md5 and the execution that wrote it."""

    path: str
    md5: str
    execution_id: int


def latest_version(
    store: MetadataStore, path: str, *, run_id: str | None, pipeline: str | None
) -> RecordedVersion | None:
    """The md5 the latest COMPLETE (or CACHED) execution wrote to ``path``, or None.

    Preference: an execution of the same pipeline run, then of the same pipeline, then any.
    The pipeline run's own executions are found through their indexed run id fact, so an
    input made earlier in the same run costs no scan of the store's artifacts.
    """
    if run_id:
        found = _latest(store, path, store.executions(fact=("pipeline_run_id", run_id)), None)
        if found is not None:
            return found
    from cmf_orchestrate.transfer import is_content_id

    artifacts = [a for a in store.artifacts(name_prefix=f"{path}:") if a.path == path and is_content_id(a.uri)]
    if not artifacts:
        return None
    writers = {e.execution_id for e in store.events_of_artifacts([a.id for a in artifacts], [EventType.OUTPUT])}
    executions = store.executions_by_id(writers)
    return (_latest(store, path, executions, pipeline) if pipeline else None) or _latest(store, path, executions, None)


def _latest(
    store: MetadataStore, path: str, executions: Iterable[ExecutionRecord], pipeline: str | None
) -> RecordedVersion | None:
    """The newest of ``executions`` (of ``pipeline``, when given) that wrote ``path``, and what it wrote."""
    from cmf_orchestrate.transfer import is_content_id

    done = sorted(
        (x for x in executions if x.state in _DONE and (pipeline is None or x.pipeline == pipeline)),
        key=lambda x: x.id,
        reverse=True,
    )
    if not done:
        return None
    events = store.events_of_executions([x.id for x in done], [EventType.OUTPUT])
    artifacts = {a.id: a for a in store.artifacts_by_id({e.artifact_id for e in events})}
    written: dict[int, str] = {}
    for event in events:  # in event order: the last write of the path by an execution wins
        artifact = artifacts.get(event.artifact_id)
        if artifact is not None and artifact.path == path and is_content_id(artifact.uri):
            written[event.execution_id] = artifact.uri
    for execution in done:
        if execution.id in written:
            return RecordedVersion(path, written[execution.id], execution.id)
    return None


def ensure_inputs(
    settings: CmfSettings,
    store: MetadataStore,
    versioner: Versioner,
    paths: Iterable[str],
    *,
    run_id: str | None,
    pipeline: str | None,
) -> None:
    """Make every input path hold its recorded version before the task reads it.

    A missing path is restored from its latest recorded version (the local cache, else the
    remote). With a remote and ``inputs = "recorded"``, a local copy whose bytes differ from
    that version is replaced by it, with one log line. A path nobody recorded as an output
    is left as it is.

    Raises:
        ArtifactNotFoundError: A missing path has no recorded version, or its content is
            neither in the local cache nor on the remote; the message names the path, the
            md5 looked for and the remote.
        RemoteError: The remote cannot be reached.
        PathOutsideProjectError: A path lies outside the project root.
    """
    from cmf_orchestrate.transfer import checkout, fetch, in_cache, open_remote

    replace_stale = bool(settings.remote) and settings.inputs == "recorded"
    for path in paths:
        rel = versioner.relpath(path)
        exists = os.path.lexists(versioner.root / rel)
        if exists and not replace_stale:
            continue
        recorded = latest_version(store, rel, run_id=run_id, pipeline=pipeline)
        if recorded is None:
            if exists:
                continue
            where = f"; remote {open_remote(versioner.root, settings.remote).url}" if settings.remote else ""
            raise ArtifactNotFoundError(
                f"declared input {rel!r} is missing under {str(versioner.root)!r} and no COMPLETE execution "
                f"recorded it as an output{where}"
            )
        if exists:
            current = versioner.hash(rel).md5
            if current == recorded.md5:
                continue
            logger.info(
                "input %r: the local copy (md5 %s) differs from the version execution %d recorded (md5 %s); "
                "checking the recorded version out",
                rel,
                current,
                recorded.execution_id,
                recorded.md5,
            )
        if not in_cache(versioner.root, recorded.md5):
            if not settings.remote:
                raise ArtifactNotFoundError(
                    f"declared input {rel!r} is missing under {str(versioner.root)!r}; its recorded version "
                    f"(md5 {recorded.md5}, written by execution {recorded.execution_id}) is not in the local DVC "
                    "cache and no remote is set"
                )
            remote = open_remote(versioner.root, settings.remote)
            report = fetch(versioner.root, [recorded.md5], remote)
            if report.failed:
                raise RemoteError(
                    f"input {rel!r}: fetching md5 {recorded.md5} from DVC remote {remote.url} failed: {report.reason}"
                )
            if report.missing:
                raise ArtifactNotFoundError(
                    f"input {rel!r}: md5 {recorded.md5} (written by execution {recorded.execution_id}) is neither "
                    f"in the local DVC cache nor on DVC remote {remote.url}"
                )
        checkout(versioner.root, rel, recorded.md5)
        logger.debug("input %r restored as md5 %s", rel, recorded.md5)


def push_outputs(settings: CmfSettings, root: os.PathLike[str] | str, md5s: Sequence[str], what: str) -> None:
    """Push an attempt's outputs (and environment file) to the remote; a no-op without one.

    Raises:
        RemoteError: The remote cannot be reached, or refused an object.
        ConfigError: The remote setting is not a usable DVC remote.
        ArtifactError: An object to push is not in the local cache.
    """
    if not settings.remote:
        return
    from pathlib import Path

    from cmf_orchestrate.transfer import open_remote, push

    remote = open_remote(Path(root), settings.remote)
    report = push(Path(root), md5s, remote)
    if report.missing:
        raise RemoteError(
            f"{what}: cannot push to DVC remote {remote.url}: not in the local DVC cache: {', '.join(report.missing)}"
        )
    if report.failed:
        raise RemoteError(
            f"{what}: push to DVC remote {remote.url} failed for {', '.join(report.failed)}: {report.reason}"
        )
    if report.transferred:
        logger.debug("%s: pushed %d object(s) to %s", what, len(report.transferred), remote.url)
