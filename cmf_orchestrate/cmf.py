"""The seed API: CMF's ``Cmf`` class, for logging by hand.

A script written for CMF's library runs unchanged with ``from cmf_orchestrate import cmf``
(or ``from cmf_orchestrate.cmf import Cmf``)::

    from cmf_orchestrate import cmf
    metawriter = cmf.Cmf(filepath="mlmd", pipeline_name="Test-env")
    context = metawriter.create_context(pipeline_stage="Prepare")
    execution = metawriter.create_execution(execution_type="Prepare", custom_properties={"split": 0.2})
    metawriter.log_dataset("data/raw.csv", "input")
    metawriter.log_dataset("data/train.csv", "output")
    metawriter.finalize()

As in CMF: the pipeline is named after the current folder when no name is given; a
``log_*`` call before ``create_context``/``create_execution`` creates both, named after
the running script; logging after :meth:`Cmf.finalize` adds to the same execution; the
returned contexts, executions and artifacts read like ML Metadata's protos.

Every execution goes through the same lifecycle as the orchestrator adapters: RUNNING
when created, COMPLETE on :meth:`Cmf.finalize` (or when the next execution starts).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

from cmf_orchestrate._cmf_functions import (
    artifact_list,
    artifact_pull,
    artifact_pull_single,
    artifact_push,
    cmf_init,
    cmf_init_show,
    execution_list,
    metadata_export,
    metadata_pull,
    metadata_push,
    pipeline_list,
)
from cmf_orchestrate._logged import LoggedArtifact
from cmf_orchestrate._proto import ArtifactView, ContextView, ExecutionView
from cmf_orchestrate.errors import InvalidArgumentError
from cmf_orchestrate.facts import RunInfo, check_reserved, json_safe
from cmf_orchestrate.records import ArtifactKind, ArtifactRecord, ContextRecord, EventType, ExecutionState
from cmf_orchestrate.run import TaskRun, _environment_draft, open_run
from cmf_orchestrate.settings import CmfSettings
from cmf_orchestrate.store import ArtifactDraft, open_store
from cmf_orchestrate.versioning import default_remote_url, find_git_dir

# pandas ships no type information without pandas-stubs; frames are typed loosely.
DataFrame: TypeAlias = Any

__all__ = [
    "Cmf",
    "artifact_list",
    "artifact_pull",
    "artifact_pull_single",
    "artifact_push",
    "cmf_init",
    "cmf_init_show",
    "execution_list",
    "metadata_export",
    "metadata_pull",
    "metadata_push",
    "pipeline_list",
]

logger = logging.getLogger(__name__)


def _script_name() -> str:
    """The running script's name without its suffix (CMF's default stage and execution name)."""
    return Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "cmf"


def _execution_value(value: Any) -> Any:
    """An execution custom property as CMF records it: integers as integers, the rest as text."""
    if isinstance(value, bool):
        return int(value)
    return value if isinstance(value, int) else str(value)


def _artifact_value(value: Any) -> Any:
    """An artifact custom property as CMF records it: numbers as numbers, the rest as text."""
    if isinstance(value, bool):
        return int(value)
    return value if isinstance(value, (int, float)) else str(value)


def _merge_url(old: str, new: str) -> str:
    """CMF's url list: ``new`` appended to ``old`` (comma separated) unless already there."""
    if not old.strip():
        return new
    return old if new in old else f"{old},{new}"


def _pandas() -> Any:
    from cmf_orchestrate.cmfquery import _pandas as load

    return load()


class Cmf:
    """Record a pipeline's stages, executions and artifacts (the CMF library's API).

    Args:
        filename: The MLMD store: a path (default ``mlmd`` in the project root) or a
            ``sqlite:///``, ``postgresql://`` or ``mysql://`` URL.
        pipeline_name: Name of the pipeline (the ``Parent_Context``); default: the name
            of the current folder.
        custom_properties: Custom properties of the pipeline context.
        graph: Mirror into Neo4j (``NEO4J_URI``, ``NEO4J_USER_NAME``, ``NEO4J_PASSWD``).
        is_server: Ignored (CMF's server mode has no counterpart here).
        filepath: Same as ``filename`` (the name CMF's library uses).
        project_root: Root of the project (default: ``CMF_PROJECT_ROOT`` or the cwd).
        settings: Complete settings; the other arguments override its fields.

    Raises:
        InvalidArgumentError: ``pipeline_name`` is not a string.
        ConfigError: The store location is malformed.
        StoreUnavailableError: The store cannot be reached.
    """

    #: Where CMF keeps the files it writes (step metrics, data slices), per execution.
    ARTIFACTS_PATH = "cmf_artifacts"
    DATASLICE_PATH = "dataslice"
    METRICS_PATH = "metrics"

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
        del is_server
        if pipeline_name is None or not isinstance(pipeline_name, str):
            raise InvalidArgumentError(f"Cmf: pipeline_name must be a string, got {pipeline_name!r}")
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
        self.pipeline_name = pipeline_name.strip() or Path.cwd().name
        self.filepath = self.settings.store
        custom = {k: json_safe(_artifact_value(v)) for k, v in dict(custom_properties or {}).items()}
        check_reserved(custom, "Cmf custom_properties")
        self.store = open_store(self.settings.location)
        self._parent: ContextRecord = self.store.pipeline_context(self.pipeline_name, custom or None)
        self._child: ContextRecord | None = None
        self._stage: str | None = None
        self._run: TaskRun | None = None
        self.metrics: dict[str, dict[int, dict[str, Any]]] = {}
        self.execution_name = ""
        self.execution_command = ""
        self.graph = bool(self.settings.graph)

    def __repr__(self) -> str:
        return f"Cmf(store={self.settings.location.redacted!r}, pipeline_name={self.pipeline_name!r})"

    # -- what CMF scripts read -------------------------------------------------------------------

    @property
    def parent_context(self) -> ContextView:
        """The pipeline context."""
        return ContextView(self._parent, self.store.type_id)

    @property
    def child_context(self) -> ContextView | None:
        """The current stage context, if any."""
        return None if self._child is None else ContextView(self._child, self.store.type_id)

    @child_context.setter
    def child_context(self, context: Any) -> None:
        """Make ``context`` (a stage context of this pipeline, as returned or queried) the current stage."""
        record = context.record if isinstance(context, ContextView) else context
        if not isinstance(record, ContextRecord):
            raise InvalidArgumentError(f"child_context: not a context: {context!r}")
        self._child = record
        prefix = f"{self._parent.name}/"
        self._stage = record.name[len(prefix) :] if record.name.startswith(prefix) else record.name

    @property
    def execution(self) -> ExecutionView | None:
        """The current execution, if any."""
        return None if self._run is None else ExecutionView(self._run.execution, self.store.type_id)

    @execution.setter
    def execution(self, execution: Any) -> None:
        """Log into ``execution`` (one recorded before, e.g. found with CmfQuery) from now on.

        Raises:
            InvalidArgumentError: ``execution`` is not an execution of the store.
        """
        record = execution.record if isinstance(execution, ExecutionView) else execution
        found = self.store.execution(int(getattr(record, "id", -1))) if record is not None else None
        if found is None:
            raise InvalidArgumentError(f"execution: not an execution of this store: {execution!r}")
        if self._run is not None and not self._run.closed and self._run.execution_id != found.id:
            self._run.complete()
        stages = [c for c in self.store.contexts_of_execution(found.id) if c.type == "Pipeline_Stage"]
        if stages:
            self.child_context = stages[0]
        if self._child is None:
            raise InvalidArgumentError(f"execution {found.id} belongs to no stage")
        self._run = self._resume(found)

    # -- contexts and executions ----------------------------------------------------------------

    def create_context(self, pipeline_stage: str, custom_properties: Mapping[str, Any] | None = None) -> ContextView:
        """Create (or reuse) the stage context ``<pipeline>/<pipeline_stage>``.

        Raises:
            InvalidArgumentError: The stage name is empty or a property name is reserved.
        """
        if not pipeline_stage or not isinstance(pipeline_stage, str):
            raise InvalidArgumentError(
                f"create_context: pipeline_stage must be a non-empty string, got {pipeline_stage!r}"
            )
        custom = {k: json_safe(_artifact_value(v)) for k, v in dict(custom_properties or {}).items()}
        check_reserved(custom, "create_context custom_properties")
        self._child = self.store.stage_context(self._parent, pipeline_stage, custom or None)
        self._stage = pipeline_stage
        return ContextView(self._child, self.store.type_id)

    def update_context(
        self,
        type_name: str,
        context_name: str,
        context_id: int,
        properties: Mapping[str, Any] | None = None,
        custom_properties: Mapping[str, Any] | None = None,
    ) -> ContextView | None:
        """Add or change custom properties of the pipeline or a stage context.

        Args:
            type_name: ``Parent_Context`` or ``Pipeline_Stage``.
            context_name: The context's name.
            context_id: The context's id (checked against the name).
            properties: Ignored: a context's type properties are its name.
            custom_properties: Custom properties to merge over the context's own.

        Raises:
            InvalidArgumentError: The type is not a CMF context type, the name and id
                disagree, or a property name is reserved.
        """
        del properties
        custom = {k: _execution_value(v) for k, v in dict(custom_properties or {}).items()}
        check_reserved(custom, "update_context custom_properties")
        if type_name == "Parent_Context":
            record = self.store.pipeline_context(context_name, custom or None)
        elif type_name == "Pipeline_Stage":
            pipeline, _, stage = context_name.partition("/")
            parent = self.store.pipeline_context(pipeline or self.pipeline_name)
            record = self.store.stage_context(parent, stage or context_name, custom or None)
        else:
            raise InvalidArgumentError(f"update_context: unknown context type {type_name!r}")
        if record.id != int(context_id):
            raise InvalidArgumentError(
                f"update_context: context {context_name!r} has id {record.id}, not {context_id!r}"
            )
        return ContextView(record, self.store.type_id)

    def create_execution(
        self,
        execution_type: str,
        custom_properties: Mapping[str, Any] | None = None,
        cmd: str | None = None,
        create_new_execution: bool = True,
    ) -> ExecutionView:
        """Start an execution (RUNNING) of the current stage; the previous one is completed.

        Args:
            execution_type: The execution type; with ``create_new_execution=False``, the
                execution's name.
            custom_properties: Parameters, recorded as custom properties (integers as
                integers, other values as text, as CMF records them).
            cmd: The command line (default: ``str(sys.argv)``).
            create_new_execution: False reuses the stage's execution named
                ``execution_type`` when there is one (its ``Execution_uuid`` grows by one).

        Raises:
            InvalidArgumentError: The type is empty or a property name is reserved.
        """
        if not execution_type or not isinstance(execution_type, str):
            raise InvalidArgumentError(
                f"create_execution: execution_type must be a non-empty string, got {execution_type!r}"
            )
        if self._child is None:
            self.create_context(_script_name())
        assert self._child is not None and self._stage is not None
        custom = {k: _execution_value(v) for k, v in dict(custom_properties or {}).items()}
        check_reserved(custom, "create_execution custom_properties")
        if self._run is not None and not self._run.closed:
            self._run.complete()
        command = cmd if cmd is not None else str(sys.argv)
        self.metrics = {}
        if create_new_execution:
            info = RunInfo(
                orchestrator="cmf",
                pipeline=self.pipeline_name,
                stage=self._stage,
                command=command,
                parameters=custom,
                execution_type=execution_type,
            )
            # CMF leaves a new execution unnamed (names are for executions reused by name).
            self._run = self._configure(open_run(info, self.settings.replace(pipeline=None), name=""))
        else:
            self._run = self._reuse(execution_type, command, custom)
        self.execution_name = f"{self._run.execution_id},{execution_type}"
        self.execution_command = command
        return ExecutionView(self._run.execution, self.store.type_id)

    def _reuse(self, name: str, command: str, custom: Mapping[str, Any]) -> TaskRun:
        """The stage's execution named ``name`` (of the stage context's type), reopened, or a new one."""
        assert self._child is not None and self._stage is not None
        info = RunInfo(
            orchestrator="cmf",
            pipeline=self.pipeline_name,
            stage=self._stage,
            command=command,
            parameters=custom,
            execution_type=self._child.name,
        )
        found = [
            e
            for e in self.store.executions(context_ids=[self._child.id])
            if e.name == name and e.type == self._child.name
        ]
        if not found:
            return self._configure(open_run(info, self.settings.replace(pipeline=None), name=name))
        run = self._resume(found[-1], info)
        uuids = str(run.execution.properties.get("Execution_uuid", ""))
        grown = f"{uuids},{uuid.uuid4()}" if uuids else str(uuid.uuid4())
        run.execution = self.store.update_execution(
            run.execution_id,
            state=ExecutionState.RUNNING,
            properties={"Execution_uuid": grown},
            custom_properties=dict(custom),
        )
        run._queue(_environment_draft(run.versioner, run._git), EventType.INPUT)
        return run

    def _resume(self, execution: Any, info: RunInfo | None = None) -> TaskRun:
        """A task run recording into an execution that already exists."""
        from cmf_orchestrate._git import git_info
        from cmf_orchestrate.versioning import versioner_for

        assert self._child is not None and self._stage is not None
        settings = self.settings.replace(pipeline=None)
        info = info or RunInfo(
            orchestrator="cmf", pipeline=self.pipeline_name, stage=self._stage, execution_type=execution.type
        )
        return self._configure(
            TaskRun(
                settings,
                self.store,
                versioner_for(settings.project_root),
                self._parent,
                self._child,
                execution,
                info,
                git_info(settings.project_root),
            )
        )

    def _configure(self, run: TaskRun) -> TaskRun:
        """Record as CMF does: no ``Git_End_Commit``; with a DVC remote, ``url`` = ``<pipeline>:<remote object>``."""
        run.record_end_commit = False
        remote = default_remote_url(run.versioner.root)
        if remote:
            base = remote.rstrip("/")
            pipeline = self._parent.name
            run._drafts.url_for = lambda c: f"{pipeline}:{base}/files/md5/{c.md5[:2]}/{c.md5[2:]}"
        return run

    def update_execution(self, execution_id: int, custom_properties: Mapping[str, Any] | None = None) -> ExecutionView:
        """Add or change custom properties of an execution.

        Raises:
            InvalidArgumentError: A property name is reserved.
            StoreError: The execution does not exist.
        """
        custom = {k: _execution_value(v) for k, v in dict(custom_properties or {}).items()}
        check_reserved(custom, "update_execution custom_properties")
        record = self.store.update_execution(int(execution_id), custom_properties=custom)
        if self._run is not None and self._run.execution_id == record.id:
            self._run.execution = record
        return ExecutionView(record, self.store.type_id)

    def finalize(self) -> ExecutionView | None:
        """Complete the current execution; in a git work tree, commit what was staged (as CMF does)."""
        if self._run is None:
            return None
        if not self._run.closed:
            self._run.complete()
        self._git_commit(f"commiting {self.execution_name}")
        return ExecutionView(self._run.execution, self.store.type_id)

    def _git_commit(self, message: str) -> str:
        """Commit the staged changes when the project is a git work tree; the new commit, or ``""``."""
        root = self.settings.project_root
        if find_git_dir(root) is None:  # the settings' root is resolved
            return ""
        try:
            subprocess.run(  # noqa: S603 - git from PATH, fixed arguments
                ["git", "commit", "-q", "-m", message],  # noqa: S607
                cwd=root,
                capture_output=True,
                timeout=60,
                check=False,
            )
            head = subprocess.run(
                ["git", "rev-parse", "HEAD"],  # noqa: S607
                cwd=root,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            logger.warning("git commit in %s failed: %s", root, exc)
            return ""
        return head.stdout.strip()

    def _git_add(self, *paths: str) -> None:
        root = self.settings.project_root
        if find_git_dir(root) is None:  # the settings' root is resolved
            return
        try:
            subprocess.run(  # noqa: S603 - git from PATH, fixed arguments
                ["git", "add", "--", *paths],  # noqa: S607
                cwd=root,
                capture_output=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            logger.warning("git add in %s failed: %s", root, exc)

    # -- artifacts --------------------------------------------------------------------------------

    def _current(self) -> TaskRun:
        """The execution to log into: created (named after the script) when there is none,
        reopened when it was finalized (CMF keeps logging into it)."""
        if self._run is None:
            self.create_execution(_script_name())
        assert self._run is not None
        if self._run.closed:
            self._run = self._resume(self._run.execution, self._run.info)
        return self._run

    def _stage_dvc(self, path: str) -> None:
        run = self._current()
        rel = run.versioner.relpath(path)
        if (run.versioner.root / f"{rel}.dvc").exists():
            self._git_add(f"{rel}.dvc")

    def log_dataset(
        self,
        url: str | os.PathLike[str],
        event: str,
        custom_properties: Mapping[str, Any] | None = None,
        label: str | os.PathLike[str] | None = None,
        label_properties: Mapping[str, Any] | None = None,
        external: bool = False,
    ) -> LoggedArtifact:
        """Record a dataset file or directory as an input or output of the current execution.

        Args:
            url: Path of the dataset.
            event: ``"input"`` or ``"output"``.
            custom_properties: Properties of the dataset.
            label: A label file describing the dataset (logged with :meth:`log_label`).
            label_properties: Custom properties of the label.
            external: Accepted for CMF compatibility; every path is versioned in the project.

        Raises:
            InvalidArgumentError: ``event`` is not "input" or "output".
            ArtifactNotFoundError: The path does not exist.
            PathOutsideProjectError: The path lies outside the project root.
        """
        del external
        custom = {k: _artifact_value(v) for k, v in dict(custom_properties or {}).items()}
        run = self._current()
        logged = run.log_dataset(url, event, custom)
        self._stage_dvc(os.fspath(url))
        if label is not None:
            self.log_label(os.fspath(label), os.fspath(url), label_properties)
        return logged

    def log_label(
        self,
        url: str | os.PathLike[str],
        dataset_name: str | os.PathLike[str],
        custom_properties: Mapping[str, Any] | None = None,
    ) -> LoggedArtifact:
        """Record a label file of a dataset as a ``Label`` input of the current execution.

        The dataset gets the custom properties ``labels`` and ``labels_uri``; the label
        gets ``dataset_uri``, as CMF records them.

        Raises:
            ArtifactNotFoundError: The label or the dataset does not exist.
            PathOutsideProjectError: A path lies outside the project root.
        """
        run = self._current()
        label = run.versioner.hash(os.fspath(url))
        dataset = run.versioner.hash(os.fspath(dataset_name))
        run.flush()  # the dataset logged just before is in the store
        label_uri = f"{label.path}:{label.md5}"
        for artifact in self.store.artifacts(uri=dataset.md5, limit=1):
            self.update_existing_artifact(artifact, {"labels": label.path, "labels_uri": label_uri})
        custom = {k: _artifact_value(v) for k, v in dict(custom_properties or {}).items()}
        custom["dataset_uri"] = dataset.md5
        existing = self.store.artifacts(uri=label.md5, type_name=ArtifactKind.LABEL, limit=1)
        if existing:
            self.update_existing_artifact(existing[0], custom)
        props = {"git_repo": run._git.repo, "Commit": label.md5, "url": label_uri}
        draft = ArtifactDraft(ArtifactKind.LABEL, label_uri, label.md5, props, custom)
        return run._queue(draft, EventType.INPUT)

    def log_model(
        self,
        path: str | os.PathLike[str],
        event: str,
        model_framework: str = "Default",
        model_type: str = "Default",
        model_name: str = "Default",
        custom_properties: Mapping[str, Any] | None = None,
    ) -> LoggedArtifact:
        """Record a model file or directory as an input or output of the current execution.

        Raises:
            InvalidArgumentError: ``event`` is not "input" or "output".
            ArtifactNotFoundError: The path does not exist.
            PathOutsideProjectError: The path lies outside the project root.
        """
        custom = {k: _artifact_value(v) for k, v in dict(custom_properties or {}).items()}
        logged = self._current().log_model(path, event, model_framework, model_type, model_name, custom)
        self._stage_dvc(os.fspath(path))
        return logged

    def log_execution_metrics(
        self, metrics_name: str, custom_properties: Mapping[str, Any] | None = None
    ) -> LoggedArtifact:
        """Record execution metrics as a ``Metrics`` output named ``<metrics_name>:<uuid>:<execution id>``.

        Raises:
            InvalidArgumentError: The name is empty or a property name is reserved.
        """
        if not metrics_name or not isinstance(metrics_name, str):
            raise InvalidArgumentError(
                f"log_execution_metrics: metrics_name must be a non-empty string, got {metrics_name!r}"
            )
        run = self._current()
        values = {k: json_safe(_artifact_value(v)) for k, v in dict(custom_properties or {}).items()}
        check_reserved(values, "log_execution_metrics custom_properties")
        uri = str(uuid.uuid1())
        name = f"{metrics_name}:{uri}:{run.execution_id}"
        return run._queue(
            ArtifactDraft(ArtifactKind.METRICS, name, uri, {"metrics_name": name}, values), EventType.OUTPUT
        )

    def log_metric(self, metrics_name: str, custom_properties: Mapping[str, Any] | None = None) -> None:
        """Buffer one step of metrics (e.g. per epoch); :meth:`commit_metrics` records them.

        Raises:
            InvalidArgumentError: The name is empty.
        """
        if not metrics_name or not isinstance(metrics_name, str):
            raise InvalidArgumentError(f"log_metric: metrics_name must be a non-empty string, got {metrics_name!r}")
        self._current()
        steps = self.metrics.setdefault(metrics_name, {})
        steps[len(steps) + 1] = dict(custom_properties or {})

    def _execution_dir(self, run: TaskRun, sub: str) -> str:
        first_uuid = str(run.execution.properties.get("Execution_uuid", "")).split(",")[0]
        return f"{self.ARTIFACTS_PATH}/{first_uuid}/{sub}"

    def commit_metrics(self, metrics_name: str) -> LoggedArtifact:
        """Write the buffered steps to ``cmf_artifacts/<execution uuid>/metrics/<metrics_name>`` (parquet),
        version it and record it as a ``Step_Metrics`` output.

        Raises:
            InvalidArgumentError: No step was logged under that name.
            ConfigError: pandas is not installed.
        """
        run = self._current()
        steps = self.metrics.get(metrics_name)
        if not steps:
            raise InvalidArgumentError(f"commit_metrics: no metrics were logged under {metrics_name!r}")
        pd = _pandas()
        frame = pd.DataFrame.from_dict(steps, orient="index")
        frame.index.names = ["SequenceNumber"]
        rel = f"{self._execution_dir(run, self.METRICS_PATH)}/{metrics_name}"
        full = run.versioner.root / rel
        full.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(full)
        content = run.versioner.commit(rel)
        self._git_add(f"{rel}.dvc")
        name = f"{content.path}:{content.md5}:{run.execution_id}:{uuid.uuid1()}"
        props = {"Commit": content.md5, "url": run._drafts._url(content)}
        return run._queue(ArtifactDraft(ArtifactKind.STEP_METRICS, name, content.md5, props, {}), EventType.OUTPUT)

    def log_python_env(self, url: str | os.PathLike[str]) -> LoggedArtifact:
        """Record a Python environment file as an ``Environment`` input of the current execution.

        Raises:
            ArtifactNotFoundError: The file does not exist.
        """
        run = self._current()
        content = run.versioner.commit(os.fspath(url))
        props = {"git_repo": run._git.repo, "Commit": content.md5, "url": run._drafts._url(content)}
        draft = ArtifactDraft(ArtifactKind.ENVIRONMENT, f"{content.path}:{content.md5}", content.md5, props, {})
        return run._queue(draft, EventType.INPUT)

    def log_dvc_lock(self, file_path: str | os.PathLike[str]) -> str:
        """Commit a ``dvc.lock`` file to git (in a git work tree); the new commit, or ``""``."""
        self._current()
        self._git_add(os.fspath(file_path))
        return self._git_commit(f"commiting dvc.lock of {self.execution_name}")

    def _log_known(
        self, kind: ArtifactKind, uri: str, event: str, name: str, props: Mapping[str, Any], custom: Mapping[str, Any]
    ) -> LoggedArtifact:
        """Log an artifact whose version (md5) is known, without reading its file: the one
        recorded with this ``uri`` when there is one (its url list grows), else a new one."""
        run = self._current()
        direction = EventType.INPUT if str(event).lower() == "input" else EventType.OUTPUT
        values = {k: _artifact_value(v) for k, v in dict(custom).items()}
        check_reserved(values, "custom_properties")
        run.flush()
        existing = self.store.artifacts(uri=uri, limit=1) if uri.strip() else []
        if existing:
            record = existing[0]
            if values:
                self.update_existing_artifact(record, values)
            if props.get("url"):
                self.update_dataset_url(record, str(props["url"]))
            draft = ArtifactDraft(ArtifactKind(record.kind), record.name, record.uri, {}, {})
        else:
            draft = ArtifactDraft(kind, name, uri or str(uuid.uuid1()), dict(props), values)
        return run._queue(draft, direction)

    def log_dataset_with_version(
        self,
        url: str,
        version: str,
        event: str,
        props: Mapping[str, Any] | None = None,
        custom_properties: Mapping[str, Any] | None = None,
    ) -> LoggedArtifact:
        """Record a dataset whose version (md5) is known, e.g. one recorded on another machine.

        Args:
            url: Path of the dataset.
            version: Its md5.
            event: ``"input"`` or ``"output"``.
            props: ``git_repo`` and ``url`` properties.
            custom_properties: Properties of the dataset.

        Raises:
            InvalidArgumentError: A property name is reserved.
        """
        given = dict(props or {})
        properties = {"git_repo": str(given.get("git_repo", "")), "Commit": version, "url": str(given.get("url", " "))}
        return self._log_known(
            ArtifactKind.DATASET, version, event, f"{url}:{version}", properties, custom_properties or {}
        )

    def log_model_with_version(
        self,
        path: str,
        event: str,
        props: Mapping[str, Any] | None = None,
        custom_properties: Mapping[str, Any] | None = None,
    ) -> LoggedArtifact:
        """Record a model whose version is known: ``props["uri"]`` is its md5.

        Raises:
            InvalidArgumentError: ``props`` has no ``uri``, or a property name is reserved.
        """
        given = dict(props or {})
        uri = str(given.get("uri", "")).strip()
        if not uri:
            raise InvalidArgumentError("log_model_with_version: props must give the model's 'uri' (its md5)")
        run = self._current()
        properties = {
            key: str(given.get(key, "")) for key in ("model_framework", "model_type", "model_name", "Commit", "url")
        }
        name = f"{path}:{uri}:{run.execution_id}"
        return self._log_known(ArtifactKind.MODEL, uri, event, name, properties, custom_properties or {})

    # -- reading and changing recorded artifacts ------------------------------------------------

    def get_artifact(self, artifact_id: int) -> ArtifactView:
        """An artifact by id.

        Raises:
            IndexError: No artifact has this id (as in CMF).
        """
        return ArtifactView(self.store.artifacts_by_id([int(artifact_id)])[0], self.store.type_id)

    def _record_of(self, artifact: Any) -> ArtifactRecord:
        if isinstance(artifact, LoggedArtifact):
            return artifact.record
        if isinstance(artifact, ArtifactView):
            return artifact.record  # type: ignore[no-any-return]
        if isinstance(artifact, ArtifactRecord):
            return artifact
        raise InvalidArgumentError(f"not an artifact: {artifact!r}")

    def update_existing_artifact(self, artifact: Any, custom_properties: Mapping[str, Any]) -> None:
        """Merge custom properties into an artifact (``labels``, ``labels_uri``, ``dataset_uri`` accumulate).

        Raises:
            InvalidArgumentError: ``artifact`` is not an artifact or a property name is reserved.
        """
        record = self._record_of(artifact)
        values: dict[str, Any] = {}
        for key, value in custom_properties.items():
            if isinstance(value, int) and not isinstance(value, bool):
                values[key] = value
                continue
            text = str(value)
            old = record.custom_properties.get(key)
            if key in {"labels", "labels_uri", "dataset_uri"} and isinstance(old, str) and old:
                text = ",".join(sorted(set(f"{old},{text}".split(","))))
            values[key] = text
        check_reserved(values, "update_existing_artifact custom_properties")
        self.store.update_artifact(record.id, custom_properties=values)

    def update_dataset_url(self, artifact: Any, updated_url: str) -> None:
        """Add ``updated_url`` to the artifact's ``url`` list."""
        record = self._record_of(artifact)
        self.store.update_artifact(
            record.id, properties={"url": _merge_url(str(record.properties.get("url", "")), updated_url)}
        )

    def update_model_url(self, dup_artifact: list[Any], updated_url: str) -> list[ArtifactView]:
        """Add ``updated_url`` to the ``url`` list of each artifact; the updated artifacts."""
        updated = []
        for artifact in dup_artifact:
            record = self._record_of(artifact)
            new = _merge_url(str(record.properties.get("url", "")), updated_url)
            updated.append(
                ArtifactView(self.store.update_artifact(record.id, properties={"url": new}), self.store.type_id)
            )
        return updated

    def update_model_output(self, artifact: Any) -> None:
        """Write an artifact's properties back (CMF's counterpart of ``put_artifact``)."""
        record = self._record_of(artifact)
        self.store.update_artifact(
            record.id, properties=dict(record.properties), custom_properties=dict(record.custom_properties)
        )

    def link_artifacts(self, artifact_source: Any, artifact_target: Any) -> None:
        """CMF draws a ``derived`` edge between two artifacts in its graph; here lineage is the event graph."""
        logger.debug(
            "link_artifacts(%s, %s): lineage is read from the events",
            self._record_of(artifact_source).name,
            self._record_of(artifact_target).name,
        )

    # -- data slices ------------------------------------------------------------------------------

    def create_dataslice(self, name: str) -> Cmf.DataSlice:
        """A data slice bound to this writer; fill it with :meth:`DataSlice.add_data`, then commit it.

        Raises:
            InvalidArgumentError: The name is empty.
        """
        if not name or not isinstance(name, str):
            raise InvalidArgumentError(f"create_dataslice: name must be a non-empty string, got {name!r}")
        return Cmf.DataSlice(name, self)

    def _dataslice_path(self, name: str) -> Path:
        run = self._current()
        return run.versioner.root / self._execution_dir(run, self.DATASLICE_PATH) / name

    def read_dataslice(self, name: str) -> DataFrame:
        """The data slice ``name`` of the current execution as a data frame (index ``Path``).

        Raises:
            ConfigError: pandas is not installed.
        """
        return _pandas().read_parquet(self._dataslice_path(name))

    def update_dataslice(self, name: str, record: str, custom_properties: Mapping[str, Any]) -> None:
        """Change the properties of one file (``record``) of the data slice ``name``.

        Raises:
            KeyError: The slice has no such record.
            ConfigError: pandas is not installed.
        """
        pd = _pandas()
        path = self._dataslice_path(name)
        rows = pd.read_parquet(path).to_dict("index")
        rows[record].update(custom_properties)
        frame = pd.DataFrame.from_dict(rows, orient="index")
        frame.index.names = ["Path"]
        frame.to_parquet(path)

    def log_validation_output(self, version: str, custom_properties: Mapping[str, Any] | None = None) -> LoggedArtifact:
        """Record the version an execution validated against, as CMF does.

        A ``Validation_output`` artifact named and identified by a new uuid, with the
        ``version`` property, linked to the current execution by an ``INTERNAL_OUTPUT``
        event: listed with the execution, never counted as data it produced.

        Args:
            version: The version validated (any text).
            custom_properties: Properties of the validation output.

        Raises:
            InvalidArgumentError: No execution was created yet (CMF's library raises
                ``ValueError`` too), or a property name is reserved.
        """
        if self._run is None:
            raise InvalidArgumentError(
                "log_validation_output: no execution; create one with create_execution before calling it"
            )
        run = self._current()
        values = {k: json_safe(_artifact_value(v)) for k, v in dict(custom_properties or {}).items()}
        check_reserved(values, "log_validation_output custom_properties")
        uri = str(uuid.uuid1())
        draft = ArtifactDraft(ArtifactKind.VALIDATION_OUTPUT, uri, uri, {"version": str(version)}, values)
        return run._queue(draft, EventType.INTERNAL_OUTPUT)

    class DataSlice:
        """A named subset of files, recorded as a ``Dataslice`` output: a parquet file indexed
        by ``Path`` with each file's ``hash`` and properties."""

        def __init__(self, name: str, writer: Cmf) -> None:
            self.name = name
            self.writer = writer
            self.props: dict[str, dict[str, Any]] = {}

        def add_data(self, path: str | os.PathLike[str], custom_properties: Mapping[str, Any] | None = None) -> None:
            """Add a file (or directory) to the slice.

            Raises:
                ArtifactNotFoundError: The path does not exist.
                PathOutsideProjectError: The path lies outside the project root.
            """
            run = self.writer._current()
            content = run.versioner.hash(os.fspath(path))
            self.props[os.fspath(path)] = {"hash": content.md5, **dict(custom_properties or {})}

        def commit(self, custom_properties: Mapping[str, Any] | None = None) -> LoggedArtifact:
            """Write, version and record the slice.

            Raises:
                InvalidArgumentError: The slice is empty or a property name is reserved.
                ConfigError: pandas is not installed.
            """
            if not self.props:
                raise InvalidArgumentError(f"dataslice {self.name!r} has no data: call add_data() first")
            writer = self.writer
            run = writer._current()
            pd = _pandas()
            frame = pd.DataFrame.from_dict(self.props, orient="index")
            frame.index.names = ["Path"]
            rel = f"{writer._execution_dir(run, writer.DATASLICE_PATH)}/{self.name}"
            full = run.versioner.root / rel
            full.parent.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(full)
            content = run.versioner.commit(rel)
            writer._git_add(f"{rel}.dvc")
            custom = {k: _artifact_value(v) for k, v in dict(custom_properties or {}).items()}
            check_reserved(custom, "dataslice custom_properties")
            props = {"git_repo": run._git.repo, "Commit": content.md5, "url": run._drafts._url(content)}
            draft = ArtifactDraft(ArtifactKind.DATASLICE, f"{content.path}:{content.md5}", content.md5, props, custom)
            return run._queue(draft, EventType.OUTPUT)
