"""The seed API: CMF's ``Cmf`` class, for logging by hand.

Usage, as the seed documents it::

    from cmf_orchestrate import cmf
    metawriter = cmf.Cmf(filename="mlmd", pipeline_name="Test-env")
    context = metawriter.create_context(pipeline_stage="Prepare")
    execution = metawriter.create_execution(execution_type="Prepare", custom_properties={"split": 0.2})
    metawriter.log_dataset("data/raw.csv", "input")
    metawriter.log_dataset("data/train.csv", "output")
    metawriter.finalize()

Every execution goes through the same lifecycle as the orchestrator adapters: RUNNING
when created, COMPLETE on :meth:`Cmf.finalize` (or when the next execution starts).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cmf_orchestrate._logged import LoggedArtifact
from cmf_orchestrate.errors import CmfError, InvalidArgumentError
from cmf_orchestrate.facts import RunInfo, check_reserved, json_safe
from cmf_orchestrate.records import ContextRecord, ExecutionRecord
from cmf_orchestrate.run import DataSlice, TaskRun, open_run
from cmf_orchestrate.settings import CmfSettings
from cmf_orchestrate.store import open_store

__all__ = ["Cmf"]


class Cmf:
    """Record a pipeline's stages, executions and artifacts (the CMF library's API).

    Args:
        filename: The MLMD store: a path (default ``mlmd`` in the project root) or a
            ``sqlite:///``, ``postgresql://`` or ``mysql://`` URL.
        pipeline_name: Name of the pipeline (the ``Parent_Context``).
        custom_properties: Custom properties of the pipeline context.
        graph: Mirror into Neo4j (``NEO4J_URI``, ``NEO4J_USER_NAME``, ``NEO4J_PASSWD``).
        filepath: Same as ``filename`` (the name CMF's library uses).
        project_root: Root of the project (default: ``CMF_PROJECT_ROOT`` or the cwd).
        settings: Complete settings; the other arguments override its fields.

    Raises:
        InvalidArgumentError: ``pipeline_name`` is empty.
        ConfigError: The store location is malformed.
        StoreUnavailableError: The store cannot be reached.
    """

    def __init__(
        self,
        filename: str | os.PathLike[str] | None = None,
        pipeline_name: str = "",
        custom_properties: Mapping[str, Any] | None = None,
        graph: bool = False,
        is_server: bool = False,
        *,
        filepath: str | os.PathLike[str] | None = None,
        project_root: str | os.PathLike[str] | None = None,
        settings: CmfSettings | None = None,
    ) -> None:
        del is_server  # the CMF server mode has no counterpart here
        if not pipeline_name or not isinstance(pipeline_name, str):
            raise InvalidArgumentError(f"Cmf: pipeline_name must be a non-empty string, got {pipeline_name!r}")
        store = filename if filename is not None else filepath
        base = settings or CmfSettings.from_env(project_root=project_root)
        changes: dict[str, Any] = {}
        if store is not None:
            changes["store"] = os.fspath(store)
        if project_root is not None:
            changes["project_root"] = Path(project_root)
        if graph:
            changes["graph"] = True
        self.settings = base.replace(**changes) if changes else base
        self.pipeline_name = pipeline_name
        custom = {k: json_safe(v) for k, v in dict(custom_properties or {}).items()}
        check_reserved(custom, "Cmf custom_properties")
        self.store = open_store(self.settings.location)
        self.parent_context: ContextRecord = self.store.pipeline_context(pipeline_name, custom or None)
        self.child_context: ContextRecord | None = None
        self.execution: ExecutionRecord | None = None
        self._stage: str | None = None
        self._run: TaskRun | None = None

    def __repr__(self) -> str:
        return f"Cmf(store={self.settings.location.redacted!r}, pipeline_name={self.pipeline_name!r})"

    # -- contexts and executions ----------------------------------------------------------------

    def create_context(self, pipeline_stage: str, custom_properties: Mapping[str, Any] | None = None) -> ContextRecord:
        """Create (or reuse) the stage context ``<pipeline>/<pipeline_stage>``.

        Raises:
            InvalidArgumentError: The stage name is empty or a property name is reserved.
        """
        if not pipeline_stage or not isinstance(pipeline_stage, str):
            raise InvalidArgumentError(
                f"create_context: pipeline_stage must be a non-empty string, got {pipeline_stage!r}"
            )
        custom = {k: json_safe(v) for k, v in dict(custom_properties or {}).items()}
        check_reserved(custom, "create_context custom_properties")
        self.child_context = self.store.stage_context(self.parent_context, pipeline_stage, custom or None)
        self._stage = pipeline_stage
        return self.child_context

    def create_execution(
        self,
        execution_type: str,
        custom_properties: Mapping[str, Any] | None = None,
        cmd: str | None = None,
        create_new_execution: bool = True,
    ) -> ExecutionRecord:
        """Start an execution (RUNNING) of the current stage; the previous one is completed.

        Raises:
            CmfError: No stage context was created first.
            InvalidArgumentError: The type is empty or a property name is reserved.
        """
        del create_new_execution  # every call records a new execution; names are unique
        if self._stage is None:
            raise CmfError("create_execution: call create_context(pipeline_stage=...) first")
        if not execution_type or not isinstance(execution_type, str):
            raise InvalidArgumentError(
                f"create_execution: execution_type must be a non-empty string, got {execution_type!r}"
            )
        if self._run is not None and not self._run.closed:
            self._run.complete()
        info = RunInfo(
            orchestrator="cmf",
            pipeline=self.pipeline_name,
            stage=self._stage,
            command=cmd if cmd is not None else " ".join(sys.argv),
            parameters=dict(custom_properties or {}),
            execution_type=execution_type,
        )
        self._run = open_run(info, self.settings.replace(pipeline=None))
        self.execution = self._run.execution
        return self.execution

    def update_execution(
        self, execution_id: int, custom_properties: Mapping[str, Any] | None = None
    ) -> ExecutionRecord:
        """Add or change custom properties of an execution.

        Raises:
            InvalidArgumentError: A property name is reserved.
            StoreError: The execution does not exist.
        """
        custom = {k: json_safe(v) for k, v in dict(custom_properties or {}).items()}
        check_reserved(custom, "update_execution custom_properties")
        record = self.store.update_execution(int(execution_id), custom_properties=custom)
        if self._run is not None and self._run.execution_id == record.id:
            self._run.execution = record
            self.execution = record
        return record

    def finalize(self) -> ExecutionRecord | None:
        """Complete the current execution (end commit recorded, state COMPLETE)."""
        if self._run is None:
            return None
        if not self._run.closed:
            self._run.complete()
        self.execution = self._run.execution
        return self.execution

    # -- artifacts --------------------------------------------------------------------------------

    def _current(self, what: str) -> TaskRun:
        if self._run is None or self._run.closed:
            raise CmfError(f"{what}: no open execution; call create_execution(...) first")
        return self._run

    def log_dataset(
        self, url: str | os.PathLike[str], event: str, custom_properties: Mapping[str, Any] | None = None
    ) -> LoggedArtifact:
        """Record a dataset as an input or output of the current execution (see :meth:`TaskRun.log_dataset`)."""
        return self._current("log_dataset").log_dataset(url, event, custom_properties)

    def log_model(
        self,
        path: str | os.PathLike[str],
        event: str,
        model_framework: str = "Default",
        model_type: str = "Default",
        model_name: str = "Default",
        custom_properties: Mapping[str, Any] | None = None,
    ) -> LoggedArtifact:
        """Record a model as an input or output of the current execution (see :meth:`TaskRun.log_model`)."""
        return self._current("log_model").log_model(
            path, event, model_framework, model_type, model_name, custom_properties
        )

    def log_metric(self, metrics_name: str, custom_properties: Mapping[str, Any]) -> None:
        """Buffer one step of metrics (see :meth:`TaskRun.log_metric`)."""
        self._current("log_metric").log_metric(metrics_name, custom_properties)

    def commit_metrics(self, metrics_name: str) -> LoggedArtifact:
        """Version and record buffered step metrics (see :meth:`TaskRun.commit_metrics`)."""
        return self._current("commit_metrics").commit_metrics(metrics_name)

    def log_execution_metrics(self, metrics_name: str, custom_properties: Mapping[str, Any]) -> LoggedArtifact:
        """Record execution metrics (see :meth:`TaskRun.log_execution_metrics`)."""
        return self._current("log_execution_metrics").log_execution_metrics(metrics_name, custom_properties)

    def create_dataslice(self, name: str) -> DataSlice:
        """A data slice bound to the current execution (see :meth:`TaskRun.create_dataslice`)."""
        return self._current("create_dataslice").create_dataslice(name)
