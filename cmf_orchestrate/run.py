"""The task-run lifecycle shared by every adapter and the seed API.

open (pipeline, stage, execution RUNNING) -> record declared inputs -> user code ->
record declared outputs -> COMPLETE, or FAILED with the error. Each step that writes
is one ML Metadata transaction, so a crash never leaves half of a step recorded.
"""

from __future__ import annotations

import atexit
import contextvars
import dataclasses
import json
import logging
import os
import socket
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pendulum

from cmf_orchestrate import _reuse, _travel
from cmf_orchestrate._environment import environment_file
from cmf_orchestrate._git import GitInfo, git_info
from cmf_orchestrate._logged import LoggedArtifact
from cmf_orchestrate._reuse import ResultCodec, Reused, ReuseRequest
from cmf_orchestrate._storeurl import mask_credentials
from cmf_orchestrate.artifacts import ArtifactSpec, Dataset, Dataslice, Metrics, Model
from cmf_orchestrate.errors import (
    ArtifactError,
    ArtifactNotFoundError,
    CmfError,
    InvalidArgumentError,
    NoActiveRunError,
)
from cmf_orchestrate.facts import (
    FACT_PREFIX,
    RESERVED_FACTS,
    RunInfo,
    check_reserved,
    code_fingerprint,
    json_safe,
)
from cmf_orchestrate.records import (
    ArtifactKind,
    ArtifactRecord,
    ContextRecord,
    EventType,
    ExecutionRecord,
    ExecutionState,
)
from cmf_orchestrate.settings import CmfSettings
from cmf_orchestrate.store import ArtifactDraft, MetadataStore, open_store
from cmf_orchestrate.versioning import ContentHash, Versioner, versioner_for

__all__ = [
    "FACT_PREFIX",
    "RESERVED_FACTS",
    "DataSlice",
    "RunInfo",
    "TaskRun",
    "code_fingerprint",
    "current_run",
    "open_run",
    "record_cached",
    "task_run",
]

logger = logging.getLogger(__name__)

_current: contextvars.ContextVar[TaskRun | None] = contextvars.ContextVar("cmf_orchestrate_current_run", default=None)


def current_run() -> TaskRun:
    """The task run recording the code that is running now.

    Raises:
        NoActiveRunError: Called outside a recorded task run.
    """
    run = _current.get()
    if run is None or run.closed:
        raise NoActiveRunError(
            "current_run() was called outside a recorded task run "
            "(use it inside a @cmf_task, CmfOperator or @task.cmf callable)"
        )
    return run


def now_iso() -> str:
    """The current time, ISO 8601 in UTC."""
    return pendulum.now("UTC").isoformat()


class _Drafts:
    """Turns declared and logged paths into artifact drafts (hash, cache, CMF naming)."""

    def __init__(self, store: MetadataStore, versioner: Versioner, git: GitInfo, stage: ContextRecord) -> None:
        self.store = store
        self.versioner = versioner
        self.git = git
        self.stage = stage
        #: The ``url`` property of a versioned file (default: its project-relative path).
        self.url_for: Callable[[ContentHash], str] | None = None

    def _url(self, content: ContentHash) -> str:
        return self.url_for(content) if self.url_for is not None else content.path

    def draft(
        self, spec: ArtifactSpec, content: ContentHash, event: EventType, execution_id: int | None
    ) -> ArtifactDraft | None:
        """The draft of a declared artifact; None when it needs an execution id not known yet."""
        custom = dict(spec.custom_properties)
        check_reserved(custom, f"{type(spec).__name__}({spec.path!r}).custom_properties")
        if isinstance(spec, Model):
            return self.model_draft(
                content, event, spec.framework, spec.model_type, spec.model_name, custom, execution_id
            )
        if isinstance(spec, Metrics):
            values = _read_metrics_file(self.versioner.root / content.path)
            custom = {**values, **custom}
            return ArtifactDraft(
                ArtifactKind.METRICS,
                f"{content.path}:{content.md5}",
                content.md5,
                {"metrics_name": content.path},
                custom,
            )
        kind = ArtifactKind.DATASLICE if isinstance(spec, Dataslice) else ArtifactKind.DATASET
        return self.file_draft(kind, content, custom)

    def file_draft(self, kind: ArtifactKind, content: ContentHash, custom: Mapping[str, Any]) -> ArtifactDraft:
        """A ``<path>:<md5>`` artifact (Dataset, Dataslice, Step_Metrics)."""
        props = {"git_repo": self.git.repo, "Commit": content.md5, "url": self._url(content)}
        if kind is ArtifactKind.STEP_METRICS:
            props = {"Commit": content.md5, "url": self._url(content)}
        return ArtifactDraft(kind, f"{content.path}:{content.md5}", content.md5, props, custom)

    def model_draft(
        self,
        content: ContentHash,
        event: EventType,
        framework: str,
        model_type: str,
        model_name: str,
        custom: Mapping[str, Any],
        execution_id: int | None,
    ) -> ArtifactDraft | None:
        """A ``<path>:<md5>:<execution id>`` model; a model read is the one that was written."""
        prefix = f"{content.path}:{content.md5}:"
        if event is EventType.INPUT:
            for existing in self.store.artifacts_by_uri(content.md5):
                if existing.kind == ArtifactKind.MODEL.value and existing.name.startswith(prefix):
                    return ArtifactDraft(ArtifactKind.MODEL, existing.name, existing.uri, {}, custom)
        if execution_id is None:
            return None
        props = {
            "model_framework": framework or "Default",
            "model_type": model_type or "Default",
            "model_name": model_name or Path(content.path).name,
            "Commit": content.md5,
            "url": self._url(content),
        }
        return ArtifactDraft(ArtifactKind.MODEL, f"{prefix}{execution_id}", content.md5, props, custom)

    def hash_all(self, specs: Sequence[ArtifactSpec], direction: str) -> list[ContentHash]:
        """Hash and cache every spec; report every missing path at once.

        Raises:
            ArtifactNotFoundError: Some paths are missing (all of them are named).
            PathOutsideProjectError: A path lies outside the project root.
        """
        missing: list[str] = []
        for spec in specs:
            rel = self.versioner.relpath(spec.path)
            if not (self.versioner.root / rel).exists():
                missing.append(rel)
        if missing:
            raise ArtifactNotFoundError(
                f"declared {direction} missing for {self.stage.name!r}: {', '.join(repr(m) for m in missing)}"
                f" (under {str(self.versioner.root)!r})"
            )
        return [self.versioner.commit(spec.path) for spec in specs]


class TaskRun:
    """One recorded execution: an attempt of a stage, open until completed or failed.

    Obtain one with :func:`task_run` (or :func:`open_run`); inside a task, with
    :func:`current_run`. Its logging methods are the seed API's, bound to this execution.
    """

    def __init__(
        self,
        settings: CmfSettings,
        store: MetadataStore,
        versioner: Versioner,
        pipeline: ContextRecord,
        stage: ContextRecord,
        execution: ExecutionRecord,
        info: RunInfo,
        git: GitInfo,
    ) -> None:
        self.settings = settings
        self.store = store
        self.versioner = versioner
        self.pipeline = pipeline
        self.stage = stage
        self.execution = execution
        self.info = info
        self._git = git
        self._drafts = _Drafts(store, versioner, git, stage)
        self._lock = threading.RLock()
        self._step_metrics: dict[str, list[dict[str, Any]]] = {}
        self._pending: list[tuple[ArtifactDraft, EventType, LoggedArtifact]] = []
        self.inputs: list[ArtifactRecord] = []
        self.outputs: list[ArtifactRecord] = []
        #: Declared outputs this attempt did not write (recorded as DECLARED_OUTPUT, not produced).
        self.declared_outputs: list[ArtifactRecord] = []
        # On the file system's own clock, which stamps the outputs' mtimes.
        self.started_ns = versioner.clock_ns()
        self.closed = False
        #: Whether completing records ``Git_End_Commit`` (CMF's own scripts leave it empty).
        self.record_end_commit = True
        #: The attempt's reuse key and kept return value, when reuse is on.
        self.reuse_plan: _reuse.Plan | None = None
        #: The earlier execution this attempt reused instead of running, if it did.
        self.reused: Reused | None = None

    def __repr__(self) -> str:
        return (
            f"TaskRun(execution_id={self.execution_id}, stage={self.stage.name!r}, state={self.execution.state.value})"
        )

    @property
    def execution_id(self) -> int:
        """MLMD id of the execution."""
        return self.execution.id

    @property
    def execution_uuid(self) -> str:
        """CMF ``Execution_uuid`` of the execution."""
        return self.execution.uuid

    @property
    def pipeline_id(self) -> int:
        """MLMD id of the pipeline context."""
        return self.pipeline.id

    @property
    def stage_id(self) -> int:
        """MLMD id of the stage context."""
        return self.stage.id

    # -- writing ---------------------------------------------------------------------------

    def _write(
        self,
        artifacts: Sequence[tuple[ArtifactDraft, EventType]],
        state: ExecutionState | None = None,
        custom_properties: Mapping[str, Any] | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> list[ArtifactRecord]:
        """Record ``artifacts`` (after those logged and pending) and the execution, in one transaction."""
        with self._lock:
            pending, self._pending = self._pending, []
            everything = [(draft, event) for draft, event, _ in pending] + list(artifacts)
            try:
                execution, records = self.store.write_execution(
                    execution_id=self.execution.id,
                    type_name=self.execution.type,
                    state=state or self.execution.state,
                    properties=properties,
                    custom_properties=custom_properties,
                    stage=self.stage,
                    artifacts=everything,
                    previous=self.execution,
                )
            except BaseException:
                self._pending = pending + self._pending  # nothing was written: still pending
                raise
            self.execution = execution
            for (_, _, handle), record in zip(pending, records, strict=False):
                handle.resolve(record)
            for record, (_, event) in zip(records, everything, strict=True):
                if event is EventType.INPUT:
                    self.inputs.append(record)
                elif event is EventType.DECLARED_OUTPUT:
                    self.declared_outputs.append(record)
                else:
                    self.outputs.append(record)
            return records[len(pending) :]

    def _queue(self, draft: ArtifactDraft, event: EventType) -> LoggedArtifact:
        """Log an artifact; it is recorded with the execution's next write (or when read)."""
        handle = LoggedArtifact(self.flush, self.store.type_id)
        with self._lock:
            self._pending.append((draft, event, handle))
        _with_pending.add(self)
        return handle

    def flush(self) -> None:
        """Record the artifacts logged so far (one transaction); a no-op when none are pending."""
        with self._lock:
            if self._pending and not self.closed:
                self._write([])

    def _ensure_open(self, what: str) -> None:
        if self.closed:
            raise CmfError(f"{what}: execution {self.execution_id} is already {self.execution.state.value}")

    def _draft(self, spec: ArtifactSpec, content: ContentHash, event: EventType) -> ArtifactDraft:
        draft = self._drafts.draft(spec, content, event, self.execution_id)
        assert draft is not None  # with an execution id every draft can be named
        return draft

    def record_inputs(self, specs: Sequence[ArtifactSpec]) -> list[ArtifactRecord]:
        """Check, hash, cache and record declared inputs in one transaction.

        Raises:
            ArtifactNotFoundError: A declared input is missing (nothing is recorded).
            PathOutsideProjectError: A path lies outside the project root.
        """
        self._ensure_open("record_inputs")
        hashes = self._drafts.hash_all(specs, "input(s)")
        drafts = [(self._draft(s, h, EventType.INPUT), EventType.INPUT) for s, h in zip(specs, hashes, strict=True)]
        return self._write(drafts) if drafts else []

    def keep_result(self, value: Any) -> None:
        """The task's return value, persisted with the execution when reuse is on (returned again on reuse)."""
        if self.reuse_plan is not None:
            self.reuse_plan.result = value

    def complete(
        self,
        outputs: Sequence[ArtifactSpec] | None = None,
        state: ExecutionState = ExecutionState.COMPLETE,
        *,
        reused: tuple[ExecutionRecord, Mapping[str, Any]] | None = None,
    ) -> ExecutionRecord:
        """Record declared outputs and mark the execution COMPLETE, in one transaction.

        A declared output not written during the attempt (its mtime is before the attempt
        started) is recorded as ``DECLARED_OUTPUT``, never as produced, with a warning; with
        ``strict_outputs`` the attempt fails instead. A CACHED attempt writes nothing by
        definition, so the rule does not apply to it.

        Args:
            outputs: The outputs to record (default: the declared ones).
            state: COMPLETE, or CACHED for an attempt the orchestrator answered from its cache.
            reused: The earlier execution this attempt reused, and what it kept: the
                attempt is recorded CACHED with that execution's output artifacts.

        Raises:
            ArtifactNotFoundError: A declared output is missing; the execution is then FAILED.
            ArtifactError: ``strict_outputs`` is set and a declared output was not written
                during the attempt; the execution is then FAILED.
            InvalidArgumentError: ``state`` is neither COMPLETE nor CACHED.
        """
        self._ensure_open("complete")
        if state not in (ExecutionState.COMPLETE, ExecutionState.CACHED):
            raise InvalidArgumentError(f"complete: state must be COMPLETE or CACHED, got {state}")
        specs = self.info.outputs if outputs is None else outputs
        if reused is not None:
            state = ExecutionState.CACHED
        facts = self._end_facts()
        try:
            hashes = self._drafts.hash_all(specs, "output(s)")
            events = (
                self._output_events(hashes) if state is ExecutionState.COMPLETE else [EventType.OUTPUT] * len(hashes)
            )
            drafts = [(self._draft(s, h, e), e) for s, h, e in zip(specs, hashes, events, strict=True)]
            if reused is not None:
                drafts = self._reused_drafts(reused[0], drafts)
                facts[FACT_PREFIX + "reused_execution"] = reused[0].id
            drafts.extend(self._pending_step_metrics())
            extra: list[str] = []
            if self.reuse_plan is not None and state is ExecutionState.COMPLETE:
                kept, extra = _reuse.closing_facts(self, self.reuse_plan, [h.md5 for h in hashes])
                facts.update(kept)
            if self.settings.remote:
                _travel.push_outputs(
                    self.settings, self.versioner.root, [*self._to_push(drafts), *extra], self.stage.name
                )
        except CmfError as exc:
            self.fail(exc)
            raise
        end = {"Git_End_Commit": git_info(self.versioner.root).commit} if self.record_end_commit else None
        self._write(drafts, state, facts, end)
        self._close()
        return self.execution

    def _reused_drafts(
        self, source: ExecutionRecord, drafts: list[tuple[ArtifactDraft, EventType]]
    ) -> list[tuple[ArtifactDraft, EventType]]:
        """The reused execution's own output artifacts where this attempt's output is the same file and content.

        So lineage through the CACHED execution reaches the execution that made them.
        """
        produced = {(a.path, a.uri): a for a in self.store.execution_snapshot(source.id).outputs}

        def original(draft: ArtifactDraft) -> ArtifactDraft:
            same = produced.get((draft.name.partition(f":{draft.uri}")[0], draft.uri))
            if same is None or same.kind != draft.kind:
                return draft
            return ArtifactDraft(ArtifactKind(same.kind), same.name, same.uri, dict(same.properties))

        return [(original(draft), event) for draft, event in drafts]

    def _to_push(self, drafts: Sequence[tuple[ArtifactDraft, EventType]]) -> list[str]:
        """The content ids an attempt leaves behind: its outputs, logged ones included, and its environment."""
        with self._lock:
            pending = [(draft, event) for draft, event, _ in self._pending]
        written = [*self.outputs, *self.declared_outputs]
        environment = [r.uri for r in self.inputs if r.kind == ArtifactKind.ENVIRONMENT]
        drafted = [d.uri for d, e in [*pending, *drafts] if e is not EventType.INPUT]
        return [*environment, *(r.uri for r in written), *drafted]

    def _output_events(self, hashes: Sequence[ContentHash]) -> list[EventType]:
        """OUTPUT for each output written during this attempt, DECLARED_OUTPUT for one left from before.

        Raises:
            ArtifactError: ``strict_outputs`` is set and some output was not written during the attempt.
        """
        events: list[EventType] = []
        stale: list[str] = []
        started = _ns_iso(self.started_ns)
        for content in hashes:
            if content.mtime_ns is None or content.mtime_ns >= self.started_ns:
                events.append(EventType.OUTPUT)
                continue
            events.append(EventType.DECLARED_OUTPUT)
            stale.append(f"{content.path!r} (last modified {_ns_iso(content.mtime_ns)})")
            if not self.settings.strict_outputs:
                logger.warning(
                    "declared output %r of %s was not written by this attempt: last modified %s, before the "
                    "attempt started at %s; recorded as DECLARED_OUTPUT, not as produced (task code must write "
                    "its outputs under the project root %s)",
                    content.path,
                    self.stage.name,
                    _ns_iso(content.mtime_ns),
                    started,
                    self.versioner.root,
                )
        if stale and self.settings.strict_outputs:
            raise ArtifactError(
                f"declared output(s) of {self.stage.name!r} not written by this attempt (strict_outputs): "
                f"{', '.join(stale)}, before the attempt started at {started}; task code must write them "
                f"under the project root {str(self.versioner.root)!r}"
            )
        return events

    def fail(self, error: BaseException, reason: str | None = None) -> ExecutionRecord:
        """Mark the execution FAILED with the error's type and message."""
        if self.closed:
            return self.execution
        facts = self._end_facts()
        facts.update(_failure_facts(error, self.settings))
        if reason:
            facts[FACT_PREFIX + "state_reason"] = reason
        self._write([], ExecutionState.FAILED, facts)
        self._close()
        return self.execution

    def _end_facts(self) -> dict[str, Any]:
        return _closing_facts(self.settings)

    def _close(self) -> None:
        self.closed = True
        if self.settings.graph:
            _mirror(self)

    # -- the seed API, bound to this execution -----------------------------------------------

    def log_dataset(
        self, url: str | os.PathLike[str], event: str, custom_properties: Mapping[str, Any] | None = None
    ) -> LoggedArtifact:
        """Record a dataset file or directory as an input or output of this execution.

        An output not written since the execution started is recorded as ``DECLARED_OUTPUT``.

        Raises:
            InvalidArgumentError: ``event`` is not "input" or "output".
            ArtifactNotFoundError: The path does not exist.
            PathOutsideProjectError: The path lies outside the project root.
            ArtifactError: ``strict_outputs`` is set and the output was not written since the
                execution started (it is then FAILED).
        """
        return self._log(Dataset(os.fspath(url), dict(custom_properties or {})), event, "log_dataset")

    def log_model(
        self,
        path: str | os.PathLike[str],
        event: str,
        model_framework: str = "Default",
        model_type: str = "Default",
        model_name: str = "Default",
        custom_properties: Mapping[str, Any] | None = None,
    ) -> LoggedArtifact:
        """Record a model file or directory as an input or output of this execution.

        An output not written since the execution started is recorded as ``DECLARED_OUTPUT``.

        Raises:
            InvalidArgumentError: ``event`` is not "input" or "output".
            ArtifactNotFoundError: The path does not exist.
            PathOutsideProjectError: The path lies outside the project root.
            ArtifactError: ``strict_outputs`` is set and the output was not written since the
                execution started (it is then FAILED).
        """
        spec = Model(os.fspath(path), dict(custom_properties or {}), model_framework, model_type, model_name)
        return self._log(spec, event, "log_model")

    def _log(self, spec: ArtifactSpec, event: str, what: str) -> LoggedArtifact:
        direction = _event(event)
        self._ensure_open(what)
        check_reserved(spec.custom_properties, f"{what} custom_properties")
        if direction is EventType.INPUT:
            _travel.ensure_inputs(
                self.settings, self.store, self.versioner, [spec.path], **_run_scope(self.info, self.pipeline.name)
            )
        content = self._hash_one(spec.path)
        if direction is EventType.OUTPUT:
            try:
                [direction] = self._output_events([content])
            except CmfError as exc:
                self.fail(exc)
                raise
        return self._queue(self._draft(spec, content, direction), direction)

    def log_execution_metrics(self, metrics_name: str, custom_properties: Mapping[str, Any]) -> LoggedArtifact:
        """Record execution-level metrics as a ``Metrics`` output artifact.

        Raises:
            InvalidArgumentError: The name is empty or a value cannot be stored.
        """
        self._ensure_open("log_execution_metrics")
        if not metrics_name or not isinstance(metrics_name, str):
            raise InvalidArgumentError(
                f"log_execution_metrics: metrics_name must be a non-empty string, got {metrics_name!r}"
            )
        values = {k: json_safe(v) for k, v in dict(custom_properties or {}).items()}
        check_reserved(values, "log_execution_metrics custom_properties")
        uri = str(uuid.uuid4())
        draft = ArtifactDraft(
            ArtifactKind.METRICS,
            f"{metrics_name}:{uri}:{self.execution_id}",
            uri,
            {"metrics_name": metrics_name},
            values,
        )
        return self._queue(draft, EventType.OUTPUT)

    def log_metric(self, metrics_name: str, custom_properties: Mapping[str, Any]) -> None:
        """Buffer one step of metrics (e.g. per epoch); :meth:`commit_metrics` records them.

        Raises:
            InvalidArgumentError: The name is empty.
        """
        self._ensure_open("log_metric")
        if not metrics_name or not isinstance(metrics_name, str):
            raise InvalidArgumentError(f"log_metric: metrics_name must be a non-empty string, got {metrics_name!r}")
        with self._lock:
            self._step_metrics.setdefault(metrics_name, []).append(dict(custom_properties or {}))

    def commit_metrics(self, metrics_name: str) -> LoggedArtifact:
        """Write the buffered steps of ``metrics_name`` to a parquet file, version it, record it.

        Raises:
            InvalidArgumentError: No step was logged under that name.
        """
        self._ensure_open("commit_metrics")
        with self._lock:
            rows = self._step_metrics.pop(metrics_name, None)
        if not rows:
            raise InvalidArgumentError(f"commit_metrics: no metrics were logged under {metrics_name!r}")
        return self._queue(*self._step_metrics_draft(metrics_name, rows))

    def _step_metrics_draft(self, metrics_name: str, rows: list[dict[str, Any]]) -> tuple[ArtifactDraft, EventType]:
        rel = f"cmf_artifacts/metrics/{_safe_name(metrics_name)}-{self.execution_uuid}.parquet"
        _write_parquet(self.versioner.root / rel, rows)
        content = self.versioner.commit(rel)
        draft = self._drafts.file_draft(ArtifactKind.STEP_METRICS, content, {"metrics_name": metrics_name})
        return draft, EventType.OUTPUT

    def _pending_step_metrics(self) -> list[tuple[ArtifactDraft, EventType]]:
        # Steps logged but never committed are not lost: they are committed with the outputs.
        with self._lock:
            pending, self._step_metrics = self._step_metrics, {}
        return [self._step_metrics_draft(name, rows) for name, rows in pending.items() if rows]

    def create_dataslice(self, name: str) -> DataSlice:
        """A data slice (a named subset of files) to fill with :meth:`DataSlice.add_data`.

        Raises:
            InvalidArgumentError: The name is empty.
        """
        if not name or not isinstance(name, str):
            raise InvalidArgumentError(f"create_dataslice: name must be a non-empty string, got {name!r}")
        return DataSlice(self, name)

    def _hash_one(self, path: str | os.PathLike[str]) -> ContentHash:
        return self.versioner.commit(path)


class DataSlice:
    """A named subset of data files, recorded as one ``Dataslice`` artifact (a parquet of per-file hashes)."""

    def __init__(self, run: TaskRun, name: str) -> None:
        self.run = run
        self.name = name
        self._files: dict[str, dict[str, Any]] = {}

    def add_data(self, path: str | os.PathLike[str], custom_properties: Mapping[str, Any] | None = None) -> None:
        """Add a file (or directory) to the slice.

        Raises:
            ArtifactNotFoundError: The path does not exist.
            PathOutsideProjectError: The path lies outside the project root.
        """
        content = self.run._hash_one(path)
        self._files[content.path] = {"md5": content.md5, "size": content.size, **dict(custom_properties or {})}

    def commit(self, custom_properties: Mapping[str, Any] | None = None) -> LoggedArtifact:
        """Write the slice's parquet file, version it and record it as an output.

        Raises:
            InvalidArgumentError: The slice is empty.
        """
        if not self._files:
            raise InvalidArgumentError(f"dataslice {self.name!r} has no data: call add_data() first")
        rows = [{"path": path, **meta} for path, meta in sorted(self._files.items())]
        rel = f"cmf_artifacts/dataslices/{_safe_name(self.name)}-{self.run.execution_uuid}.parquet"
        _write_parquet(self.run.versioner.root / rel, rows)
        content = self.run.versioner.commit(rel)
        custom = {"dataslice_name": self.name, "files": len(rows), **dict(custom_properties or {})}
        check_reserved(custom, "dataslice custom_properties")
        draft = self.run._drafts.file_draft(ArtifactKind.DATASLICE, content, custom)
        record = self.run._queue(draft, EventType.OUTPUT)
        return record


# A script may end without closing its execution: what it logged is still recorded.
_with_pending: weakref.WeakSet[TaskRun] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for run in list(_with_pending):
        try:
            run.flush()
        except CmfError as exc:
            logger.error("could not record the artifacts logged in execution %s: %s", run.execution_id, exc)


def _event(event: str) -> EventType:
    value = str(event).strip().lower() if isinstance(event, str) else None
    if value == "input":
        return EventType.INPUT
    if value == "output":
        return EventType.OUTPUT
    raise InvalidArgumentError(f"event must be 'input' or 'output', got {event!r}")


def _ns_iso(ns: int) -> str:
    """A file system time (ns since the epoch) in ISO 8601, UTC."""
    return pendulum.from_timestamp(ns / 1e9, tz="UTC").isoformat()


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100] or "metrics"


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, list[Any]] = {}
    for row in rows:
        for key in row:
            columns.setdefault(key, [])
    normalised = {key: [json_safe(row.get(key)) if key in row else None for row in rows] for key in columns}
    table = pa.table({k: _column(v) for k, v in normalised.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


_INT64 = range(-(2**63), 2**63)


def _column(values: list[Any]) -> list[Any]:
    kinds = {type(v) for v in values if v is not None}
    # Parquet has no integer wider than 64 bits: such a column is kept as decimal text.
    fits = all(v in _INT64 for v in values if type(v) is int)
    if fits and (kinds <= {int, float} or len(kinds) <= 1):
        return values
    return [None if v is None else str(v) for v in values]


def _read_metrics_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"metrics file {str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"metrics file {str(path)!r} must hold a JSON object of metric values")
    return {str(k): json_safe(v) for k, v in data.items()}


def _closing_facts(settings: CmfSettings) -> dict[str, Any]:
    """Reserved facts of an execution's last write: its end, and a pending graph mirror."""
    facts: dict[str, Any] = {FACT_PREFIX + "end_time": now_iso()}
    if settings.graph:
        facts[FACT_PREFIX + "graph_synced"] = 0
    return facts


def _failure_facts(error: BaseException, settings: CmfSettings) -> dict[str, Any]:
    """Reserved facts describing a failure: which error type, which message."""
    name = f"{type(error).__module__}.{type(error).__qualname__}".removeprefix("builtins.")
    return {
        FACT_PREFIX + "error_type": name,
        FACT_PREFIX + "error_message": _scrub(str(error), settings)[:4000],
    }


def _scrub(text: str, settings: CmfSettings) -> str:
    text = mask_credentials(settings.location.scrub(text))
    if settings.neo4j_password:
        text = text.replace(settings.neo4j_password, "***")
    return text


def _mirror(run: TaskRun) -> None:
    """Mirror the execution into the graph store; never fails the task."""
    try:
        from cmf_orchestrate import graph

        graph.mirror_execution(run.settings, run.store, run.execution_id)
    except Exception as exc:  # noqa: BLE001 - the graph is optional; MLMD stays the source of truth
        logger.warning("graph mirror of execution %s failed: %s", run.execution_id, _scrub(str(exc), run.settings))


def _reconcile_previous(store: MetadataStore, stage: ContextRecord, info: RunInfo) -> None:
    """Earlier attempts of this task run still RUNNING were abandoned by a killed worker."""
    task_run_id = info.facts.get("task_run_id")
    if not task_run_id or info.facts.get("attempt") == 1:
        return  # a first attempt has no predecessor to reconcile
    from cmf_orchestrate.reconcile import mark_abandoned

    running = store.executions_in_context(
        stage.id, state=ExecutionState.RUNNING, fact=("task_run_id", str(task_run_id))
    )
    for execution in running:
        mark_abandoned(store, execution, "a later attempt of the same task run started")


def _run_scope(info: RunInfo, pipeline: str) -> dict[str, Any]:
    """Where an input's recorded version is looked for first: this pipeline run, then this pipeline."""
    run_id = info.facts.get("pipeline_run_id")
    return {"run_id": str(run_id) if run_id else None, "pipeline": pipeline}


def _opening_properties(info: RunInfo) -> dict[str, Any]:
    """Custom properties of a new execution: the user's parameters and the reserved facts."""
    custom: dict[str, Any] = {k: json_safe(v) for k, v in info.parameters.items()}
    facts: dict[str, Any] = {
        "orchestrator": info.orchestrator,
        "start_time": now_iso(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        **({"code_fingerprint": info.code_fingerprint} if info.code_fingerprint else {}),
        **{k: v for k, v in info.facts.items() if v is not None},
    }
    custom.update({FACT_PREFIX + k: json_safe(v) for k, v in facts.items()})
    return custom


def _environment_draft(versioner: Versioner, git: GitInfo) -> ArtifactDraft:
    """The ``Environment`` input of every execution: this process's Python environment file."""
    versioner.ensure_repo()
    env = environment_file(versioner.root)
    if not (versioner.root / f"{env.path}.dvc").exists():
        # Versioned like any artifact, so that `artifact push` carries it to the remote.
        versioner.commit(env.path)
    return ArtifactDraft(
        ArtifactKind.ENVIRONMENT,
        f"{env.path}:{env.md5}",
        env.md5,
        {"git_repo": git.repo, "Commit": env.md5, "url": env.path},
    )


def open_run(
    info: RunInfo,
    settings: CmfSettings | None = None,
    *,
    name: str | None = None,
    reuse: ReuseRequest | None = None,
) -> TaskRun:
    """Open an execution (RUNNING) and record its environment and declared inputs.

    Args:
        info: What the orchestrator knows about the attempt.
        settings: Where to record (default: :meth:`CmfSettings.from_env`).
        name: The execution's name (default: ``<stage context>:<Execution_uuid>``; ``""``: none).
        reuse: The task's function and result codec when reuse is on: the attempt's reuse
            key is recorded with it.

    Returns:
        The open :class:`TaskRun`; call :meth:`TaskRun.complete` or :meth:`TaskRun.fail`.

    Raises:
        StoreUnavailableError: The metadata store cannot be reached.
        ArtifactNotFoundError: A declared input is missing; the execution is FAILED.
        PathOutsideProjectError: A declared path lies outside the project root; FAILED too.
    """
    settings = settings or CmfSettings.from_env()
    store = open_store(settings.location)
    versioner = versioner_for(settings.project_root)
    pipeline_name = settings.pipeline or info.pipeline
    pipeline = store.pipeline_context(pipeline_name)
    stage = store.stage_context(pipeline, info.stage)
    _reconcile_previous(store, stage, info)
    git = git_info(settings.project_root)
    exec_uuid = str(uuid.uuid4())
    type_name = info.execution_type or info.stage
    properties = {
        "Execution_uuid": exec_uuid,
        # As CMF writes them: both name the stage context (``<pipeline>/<stage>``).
        "Context_Type": stage.name,
        "Execution_type_name": stage.name,
        "Context_ID": stage.id,
        "Execution": _scrub(info.command, settings) or type_name,
        "Pipeline_Type": pipeline.name,
        "Pipeline_id": pipeline.id,
        "Git_Repo": git.repo,
        "Git_Start_Commit": git.commit,
        "Git_End_Commit": "",
    }
    custom = _opening_properties(info)
    env_draft = _environment_draft(versioner, git)
    # CMF names the environment file of every execution in this custom property.
    custom["Python_Env"] = env_draft.properties["url"]
    # Declared inputs are hashed before the execution exists, so that the execution, its
    # environment and its inputs are recorded in one transaction.
    drafts = _Drafts(store, versioner, git, stage)
    artifacts: list[tuple[ArtifactDraft, EventType]] = [(env_draft, EventType.INPUT)]
    failure: CmfError | None = None
    deferred = False
    plan: _reuse.Plan | None = None
    try:
        _travel.ensure_inputs(
            settings, store, versioner, [s.path for s in info.inputs], **_run_scope(info, pipeline.name)
        )
        hashes = drafts.hash_all(info.inputs, "input(s)")
        for spec, content in zip(info.inputs, hashes, strict=True):
            draft = drafts.draft(spec, content, EventType.INPUT, None)
            if draft is None:
                deferred = True  # a model nobody recorded yet is named after this execution
                break
            artifacts.append((draft, EventType.INPUT))
        plan = _reuse.plan(stage.name, [h.md5 for h in hashes], info.parameters, reuse, custom)
    except CmfError as exc:
        failure = exc
    if failure is not None or deferred:
        artifacts = artifacts[:1]
    if failure is not None:
        custom.update(_closing_facts(settings))
        custom.update(_failure_facts(failure, settings))
    execution, records = store.write_execution(
        execution_id=None,
        type_name=type_name,
        name=name if name is not None else f"{stage.name}:{exec_uuid}",
        state=ExecutionState.RUNNING if failure is None else ExecutionState.FAILED,
        properties=properties,
        custom_properties=custom,
        stage=stage,
        artifacts=artifacts,
    )
    run = TaskRun(settings, store, versioner, pipeline, stage, execution, info, git)
    run.reuse_plan = plan
    run.inputs.extend(records)
    logger.debug("opened execution %s of %s", execution.id, stage.name)
    if failure is not None:
        run._close()  # recorded FAILED above; the user's code never runs
        raise failure
    if deferred:
        try:
            run.record_inputs(info.inputs)
        except CmfError as exc:
            run.fail(exc)
            raise
    return run


def record_cached(info: RunInfo, settings: CmfSettings | None = None) -> ExecutionRecord:
    """Record an attempt the orchestrator answered from its cache, without running it.

    The execution is CACHED, with the declared inputs and outputs that exist now (a
    cache hit promises the outputs of an earlier run, which may have moved since).

    Raises:
        StoreUnavailableError: The metadata store cannot be reached.
    """
    settings = settings or CmfSettings.from_env()
    versioner = versioner_for(settings.project_root)

    def present(specs: Sequence[ArtifactSpec]) -> tuple[ArtifactSpec, ...]:
        return tuple(s for s in specs if (versioner.root / versioner.relpath(s.path)).exists())

    existing = dataclasses.replace(info, inputs=present(info.inputs), outputs=present(info.outputs))
    run = open_run(existing, settings)
    return run.complete(state=ExecutionState.CACHED)


@contextmanager
def task_run(
    info: RunInfo,
    settings: CmfSettings | None = None,
    *,
    reuse: bool | None = None,
    func: Callable[..., Any] | None = None,
    codec: ResultCodec | None = None,
) -> Iterator[TaskRun]:
    """Record one task run attempt around the user's code.

    The execution is RUNNING while the block runs and :func:`current_run` returns it.
    On success declared outputs are recorded and the execution is COMPLETE; on an
    exception it is FAILED with the error, and the exception propagates unchanged.

    With reuse on, an earlier COMPLETE execution with the same declared inputs,
    parameters, code and environment whose outputs can be had (local cache or remote) is
    reused: its outputs are checked out to this attempt's declared paths, the attempt is
    recorded CACHED, and the yielded run's :attr:`TaskRun.reused` holds the earlier
    return value: the block must then skip the task's code. Otherwise the block calls
    :meth:`TaskRun.keep_result` with what the code returned.

    Args:
        info: What the orchestrator knows about the attempt.
        settings: Where to record (default: :meth:`CmfSettings.from_env`).
        reuse: Reuse on or off (default: the ``reuse`` setting).
        func: The task's function, whose source is the code part of the reuse key.
        codec: How the return value is persisted (default: JSON).

    Raises:
        ArtifactNotFoundError: A declared input (before the block) or output (after it) is missing.
        StoreUnavailableError: The metadata store cannot be reached.
    """
    settings = settings or CmfSettings.from_env()
    wanted = settings.reuse if reuse is None else reuse
    run = open_run(info, settings, reuse=ReuseRequest(func, codec) if wanted else None)
    if run.reuse_plan is not None:
        _try_reuse(run, run.reuse_plan)
    if run.reused is not None:
        yield run
        return
    token = _current.set(run)
    try:
        yield run
    except BaseException as exc:
        try:
            run.fail(exc)
        except CmfError as record_error:
            logger.error("could not record the failure of execution %s: %s", run.execution_id, record_error)
        raise
    else:
        run.complete()
    finally:
        _current.reset(token)


def _try_reuse(run: TaskRun, plan: _reuse.Plan) -> None:
    """Reuse an earlier execution for ``run`` when one matches and its outputs can be had."""
    try:
        found = _reuse.find(run, plan)
        if found is None:
            return
        execution, kept = found
        value = _reuse.restore(run, kept, plan)
        run.complete(reused=(execution, kept))
    except CmfError as exc:
        if run.closed:
            raise  # recording the CACHED attempt failed: it is FAILED, say why
        logger.warning("%s runs: reusing an earlier execution failed: %s", run.stage.name, exc)
        return
    run.reused = Reused(execution.id, value)
    logger.info("%s: reused execution %s (execution %s is CACHED)", run.stage.name, execution.id, run.execution_id)
