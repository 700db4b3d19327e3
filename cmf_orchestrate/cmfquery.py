"""CMF's ``CmfQuery``: the store read as pandas data frames, as CMF's own library returns them.

A CMF user's query scripts run unchanged with ``from cmf_orchestrate.cmfquery import
CmfQuery``: the same methods, the same columns (type properties by name, custom
properties as ``custom_properties_<name>``), the same row order and the same value
types. Methods that return ML Metadata protos in CMF return read-only views with the
same attributes (:mod:`cmf_orchestrate._proto`).

The typed read API of this project, with records instead of data frames, is
:class:`cmf_orchestrate.query.MetadataQuery` (also importable as
``cmf_orchestrate.CmfQuery``).

pandas is needed here only; install it with ``pip install pandas``.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias

from cmf_orchestrate._proto import ArtifactView, ExecutionView, PropertyValue
from cmf_orchestrate.errors import ConfigError
from cmf_orchestrate.records import ArtifactRecord, ContextRecord, EventRecord, EventType, ExecutionRecord, Value
from cmf_orchestrate.settings import CmfSettings
from cmf_orchestrate.store import PIPELINE_CONTEXT_TYPE, MetadataStore, open_store

# pandas ships no type information without pandas-stubs; frames are typed loosely.
DataFrame: TypeAlias = Any

__all__ = ["EXCLUDED_ARTIFACT_TYPES", "CmfQuery"]

logger = logging.getLogger(__name__)

#: Artifact types left out of lineage views (as CMF does).
EXCLUDED_ARTIFACT_TYPES = ["Environment", "Label"]

_CUSTOM_PREFIX = "custom_properties_"


def _pandas() -> Any:
    try:
        pandas = importlib.import_module("pandas")
    except ImportError as exc:
        raise ConfigError(
            "cmf_orchestrate.cmfquery needs pandas: pip install pandas "
            "(or use the typed cmf_orchestrate.query.MetadataQuery, which does not)"
        ) from exc
    return pandas


def _row(
    values: Mapping[str, Value], custom: Mapping[str, Value], first: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One row: ``first``, then type properties by name, then prefixed custom properties."""
    row: dict[str, Any] = dict(first or {})
    row.update(values)
    for key, value in custom.items():
        column = _CUSTOM_PREFIX + key
        base, index = column, 0
        while column in row:  # a clash gets the smallest free _<n> suffix
            index += 1
            column = f"{base}_{index}"
        row[column] = value
    return row


def _single(row: Mapping[str, Any]) -> DataFrame:
    """One row, its columns in the order given (CMF builds single rows without concatenation)."""
    return _pandas().DataFrame(dict(row), index=[0])


def _frame(rows: Iterable[Mapping[str, Any]]) -> DataFrame:
    """Rows as a data frame, typed and ordered as CMF's row-by-row concatenation makes it."""
    pd = _pandas()
    frames = [pd.DataFrame(dict(r), index=[0]) for r in rows]
    if not frames:
        return pd.DataFrame()
    return pd.concat([pd.DataFrame(), *frames], sort=True, ignore_index=True)


class CmfQuery:
    """Query a CMF store; results are pandas data frames as in CMF's library.

    Args:
        filepath: The MLMD store: a path (default ``mlmd``) or a ``sqlite:///``,
            ``postgresql://`` or ``mysql://`` URL.
        is_server: Ignored (CMF's server mode reads a PostgreSQL store: pass its URL).

    Raises:
        ConfigError: The store location is malformed, or pandas is not installed.
        StoreUnavailableError: The store cannot be reached.
    """

    def __init__(self, filepath: str | os.PathLike[str] = "mlmd", is_server: bool = False) -> None:
        del is_server
        _pandas()
        self.filepath = os.fspath(filepath)
        settings = CmfSettings.from_env().replace(store=self.filepath)
        self.store: MetadataStore = open_store(settings.location)

    # -- views and rows -------------------------------------------------------------------

    def _execution_view(self, record: ExecutionRecord) -> ExecutionView:
        return ExecutionView(record, self.store.type_id)

    def _execution_row(self, record: ExecutionRecord, first: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return _row(record.properties, record.custom_properties, first)

    def _artifact_row(self, record: ArtifactRecord, first: Mapping[str, Any] | None = None) -> dict[str, Any]:
        head = dict(first or {})
        head.update(
            {
                "id": record.id,
                "type": record.kind,
                "uri": record.uri,
                "name": record.name,
                "create_time_since_epoch": record.create_time_ms,
                "last_update_time_since_epoch": record.update_time_ms or record.create_time_ms,
            }
        )
        return _row(record.properties, record.custom_properties, head)

    def _artifacts_frame(self, ids: Iterable[int]) -> DataFrame:
        return _frame(self._artifact_row(a) for a in self._artifacts_sorted(ids))

    def _artifacts_sorted(self, ids: Iterable[int]) -> list[ArtifactRecord]:
        return sorted(self.store.artifacts_by_id(ids), key=lambda a: a.id)

    def _executions_sorted(self, ids: Iterable[int]) -> list[ExecutionRecord]:
        return sorted(self.store.executions_by_id(ids), key=lambda e: e.id)

    # -- lookups ----------------------------------------------------------------------------

    def _get_pipelines(self, name: str | None = None) -> list[ContextRecord]:
        found = sorted(self.store.contexts_of_type(PIPELINE_CONTEXT_TYPE), key=lambda c: c.id)
        return [p for p in found if name is None or p.name == name]

    def _get_pipeline(self, name: str) -> ContextRecord | None:
        found = self._get_pipelines(name)
        return found[0] if found else None

    def _get_stages(self, pipeline_id: int) -> list[ContextRecord]:
        return sorted(self.store.children(pipeline_id), key=lambda c: c.id)

    def _get_executions(self, stage_id: int, execution_id: int | None = None) -> list[ExecutionRecord]:
        found = self.store.executions(context_ids=[stage_id])
        return [e for e in found if execution_id is None or e.id == execution_id]

    def _events_of_artifact(self, artifact_id: int) -> list[EventRecord]:
        # The order of ML Metadata's (artifact, execution, type) index.
        events = self.store.events_of_artifacts([artifact_id])
        return sorted(events, key=lambda e: (e.execution_id, _event_code(e.type)))

    def _events_of_executions(self, execution_ids: Iterable[int]) -> list[EventRecord]:
        ids = sorted({int(i) for i in execution_ids})
        events = self.store.events_of_executions(ids)
        return sorted(events, key=lambda e: e.execution_id)  # stable: event order within an execution

    def _in_pipeline(self, execution_ids: Iterable[int], pipeline_id: int | None) -> list[int]:
        ids = list(execution_ids)
        if pipeline_id is None:
            return ids
        keep = {e.id for e in self.store.executions_by_id(ids) if e.properties.get("Pipeline_id") == pipeline_id}
        return [i for i in ids if i in keep]

    def _get_executions_by_input_artifact_id(self, artifact_id: int, pipeline_id: int | None = None) -> list[int]:
        ids = sorted({e.execution_id for e in self._events_of_artifact(artifact_id) if e.type is EventType.INPUT})
        return self._in_pipeline(ids, pipeline_id)

    def _get_executions_by_output_artifact_id(self, artifact_id: int, pipeline_id: int | None = None) -> list[int]:
        ids = [e.execution_id for e in self._events_of_artifact(artifact_id) if e.type is EventType.OUTPUT]
        return self._in_pipeline(ids, pipeline_id)

    def _get_artifact(self, name: str) -> ArtifactRecord | None:
        found = sorted(self.store.artifacts(name=name.strip()), key=lambda a: a.id)
        return found[0] if found else None

    def _get_output_artifacts(self, execution_ids: Sequence[int]) -> list[int]:
        ids = [e.artifact_id for e in self._events_of_executions(execution_ids) if e.type is EventType.OUTPUT]
        if len(set(ids)) != len(ids):
            logger.debug("several executions claim the same output artifacts")
        return sorted(set(ids))

    def _get_input_artifacts(self, execution_ids: Sequence[int]) -> list[int]:
        return sorted({e.artifact_id for e in self._events_of_executions(execution_ids) if e.type is EventType.INPUT})

    # -- pipelines, stages, executions --------------------------------------------------------

    def get_pipeline_names(self) -> list[str]:
        """Names of all pipelines."""
        return [p.name for p in self._get_pipelines()]

    def get_pipeline_id(self, pipeline_name: str) -> int:
        """Id of the pipeline ``pipeline_name``, or -1."""
        pipeline = self._get_pipeline(pipeline_name)
        return -1 if pipeline is None else pipeline.id

    def get_pipeline_stages(self, pipeline_name: str) -> list[str]:
        """Names (``<pipeline>/<stage>``) of a pipeline's stages."""
        return [s.name for p in self._get_pipelines(pipeline_name) for s in self._get_stages(p.id)]

    def get_all_exe_in_stage(self, stage_name: str) -> list[ExecutionView]:
        """Executions of the stage ``stage_name`` (``<pipeline>/<stage>``)."""
        for pipeline in self._get_pipelines():
            for stage in self._get_stages(pipeline.id):
                if stage.name == stage_name:
                    return [self._execution_view(e) for e in self._get_executions(stage.id)]
        return []

    def get_all_executions_by_ids_list(self, exe_ids: list[int]) -> DataFrame:
        """Executions by id, one row each."""
        return _frame(self._execution_row(e) for e in self._executions_sorted(exe_ids))

    def get_all_artifacts_by_context(self, pipeline_name: str) -> DataFrame:
        """Artifacts attributed to the stages of a pipeline."""
        pipeline_id = self.get_pipeline_id(pipeline_name)
        rows: list[dict[str, Any]] = []
        for pipeline in self._get_pipelines():
            if pipeline.id != pipeline_id:
                continue
            for stage in self._get_stages(pipeline.id):
                rows += [self._artifact_row(a) for a in sorted(self.store.artifacts_in_context(stage.id), key=_id)]
        return _frame(rows)

    def get_all_artifacts_by_ids_list(self, artifact_ids: list[int]) -> DataFrame:
        """Artifacts by id, one row each."""
        return self._artifacts_frame(artifact_ids)

    def get_all_executions_in_stage(self, stage_name: str) -> DataFrame:
        """Executions of a stage, with ``id`` and ``name`` columns."""
        rows = [
            self._execution_row(e, {"id": e.id, "name": e.name})
            for p in self._get_pipelines()
            for s in self._get_stages(p.id)
            if s.name == stage_name
            for e in self._get_executions(s.id)
        ]
        return _frame(rows)

    def get_artifact_df(self, artifact: Any, d: dict[str, Any] | None = None) -> DataFrame:
        """One artifact (a record or a view of one) as a one-row data frame."""
        record = artifact.record if isinstance(artifact, ArtifactView) else artifact
        return _single(self._artifact_row(record, d))

    def get_all_artifacts(self) -> list[str]:
        """Names of all artifacts."""
        return [a.name for a in sorted(self.store.artifacts(), key=_id)]

    get_artifact_names = get_all_artifacts

    def get_artifact(self, name: str) -> DataFrame | None:
        """The artifact of this exact name as a one-row data frame, or None."""
        artifact = self._get_artifact(name)
        return None if artifact is None else _single(self._artifact_row(artifact))

    def get_all_artifacts_for_execution(self, execution_id: int) -> DataFrame:
        """Inputs and outputs of an execution, with an ``event`` column."""
        rows: list[dict[str, Any]] = []
        for event in self._events_of_executions([execution_id]):
            direction = "INPUT" if event.type is EventType.INPUT else "OUTPUT"
            rows += [
                self._artifact_row(a, {"event": direction}) for a in self.store.artifacts_by_id([event.artifact_id])
            ]
        return _frame(rows)

    def get_all_artifact_types(self) -> list[str]:
        """Names of all artifact types."""
        # ML Metadata leaves its own system types (``mlmd.*``) out of this list.
        return [name for name in self.store.type_names("artifact") if not name.startswith("mlmd.")]

    def _linked_executions(self, artifact_id: int) -> DataFrame:
        rows: list[dict[str, Any]] = []
        for event in self._events_of_artifact(artifact_id):
            execution = self.store.execution(event.execution_id)
            stages = self.store.contexts_of_execution(event.execution_id)
            if execution is None or not stages:
                continue
            parents = self.store.parents(stages[0].id)
            rows.append(
                {
                    "Type": "INPUT" if event.type is EventType.INPUT else "OUTPUT",
                    "execution_id": event.execution_id,
                    "execution_name": execution.name,
                    "execution_type_name": PropertyValue(execution.properties.get("Execution_type_name")),
                    "stage": stages[0].name,
                    "pipeline": parents[0].name if parents else "",
                }
            )
        return _frame(rows)

    def get_all_executions_for_artifact(self, artifact_name: str) -> DataFrame:
        """Executions that consumed or produced an artifact (by exact name)."""
        artifact = self._get_artifact(artifact_name)
        return _frame([]) if artifact is None else self._linked_executions(artifact.id)

    def get_all_executions_for_artifact_id(self, artifact_id: int) -> DataFrame:
        """Executions that consumed or produced an artifact (by id)."""
        return self._linked_executions(int(artifact_id))

    # -- lineage -----------------------------------------------------------------------------

    def get_one_hop_child_artifacts(self, artifact_name: str, pipeline_id: int | None = None) -> DataFrame:
        """Outputs of the executions that consumed an artifact."""
        artifact = self._get_artifact(artifact_name)
        if artifact is None:
            return _frame([])
        consumers = self._get_executions_by_input_artifact_id(artifact.id, pipeline_id)
        return self._artifacts_frame(self._get_output_artifacts(consumers))

    def get_one_hop_parent_executions(
        self, execution_id: list[int], pipeline_id: int | None = None
    ) -> list[ExecutionView]:
        """Executions that produced the inputs of the given executions."""
        found: list[ExecutionView] = []
        seen: list[list[int]] = []
        for artifact_id in self._get_input_artifacts(execution_id):
            producers = self._get_executions_by_output_artifact_id(artifact_id, pipeline_id)
            if producers not in seen:
                seen.append(producers)
                found += [self._execution_view(e) for e in self._executions_sorted(producers)]
        return found

    def get_one_hop_parent_executions_ids(self, execution_ids: list[int], pipeline_id: int | None = None) -> list[int]:
        """Ids of the executions that produced the inputs of the given executions."""
        ids: list[int] = []
        for artifact_id in self._get_input_artifacts(execution_ids):
            ids += self._get_executions_by_output_artifact_id(artifact_id, pipeline_id)
        return ids

    def get_executions_with_execution_ids(self, exe_ids: list[int]) -> DataFrame:
        """``id``, ``Execution_type_name`` and ``Execution_uuid`` of executions.

        Raises:
            KeyError: Some execution lacks one of these properties (as in CMF).
        """
        frame = _frame(self._execution_row(e, {"id": e.id}) for e in self._executions_sorted(exe_ids))
        return frame[["id", "Execution_type_name", "Execution_uuid"]]

    def get_all_child_artifacts(self, artifact_name: str) -> DataFrame:
        """Every artifact downstream of an artifact."""
        return self._closure(artifact_name, self.get_one_hop_child_artifacts)

    def get_one_hop_parent_artifacts(self, artifact_name: str) -> DataFrame:
        """Inputs of the executions that produced an artifact."""
        artifact = self._get_artifact(artifact_name)
        if artifact is None:
            return _frame([])
        return self._artifacts_frame(self._get_input_artifacts(self._get_executions_by_output_artifact_id(artifact.id)))

    def get_all_parent_artifacts(self, artifact_name: str) -> DataFrame:
        """Every artifact upstream of an artifact."""
        return self._closure(artifact_name, self.get_one_hop_parent_artifacts)

    def _closure(self, artifact_name: str, hop: Callable[[str], DataFrame]) -> DataFrame:
        pd = _pandas()
        parts: list[DataFrame] = []
        pending = [artifact_name]
        expanded: set[str] = set()
        # Depth first, as CMF's recursion walks it; a name expanded once is not walked again.
        while pending:
            name = pending.pop()
            if name in expanded:
                continue
            expanded.add(name)
            step = hop(name)
            parts.append(step)
            if "name" in step:
                pending += [str(n) for n in reversed(step["name"].tolist())]
        frames = [p for p in parts if not p.empty]
        if not frames:
            return pd.DataFrame()
        return pd.concat([pd.DataFrame(), *frames], sort=True, ignore_index=True).drop_duplicates(keep="first")

    def get_all_parent_executions_by_id(
        self, execution_id: list[int], pipeline_id: int | None = None
    ) -> list[list[Any]]:
        """Every execution upstream of the given ones, and the links between them.

        Returns:
            ``[[[id, Execution_type_name, Execution_uuid], ...], [{"source": id, "target": id}, ...]]``.
        """
        found: list[list[Any]] = [[], []]
        listed: list[list[Any]] = []
        links: list[dict[str, int]] = []
        hop: list[Any] = list(self.get_one_hop_parent_executions(execution_id, pipeline_id))
        # CMF walks only groups (lists) of parent executions; one hop returns executions, not
        # groups, so CMF 0.1.0 finds no parents here: the same answer is given.
        for parent in (p for group in hop if isinstance(group, list) for p in group):
            entry: list[Any] = [
                parent.id,
                parent.properties["Execution_type_name"].string_value,
                parent.properties["Execution_uuid"].string_value,
            ]
            if entry not in found[0]:
                links.append({"source": parent.id, "target": execution_id[0]})
                listed.append(entry)
        if not listed:
            return found
        found[0].extend(listed)
        found[1].extend(links)
        for entry in listed:
            upstream = self.get_all_parent_executions_by_id([entry[0]], pipeline_id)
            found[0].extend(upstream[0])
            found[1].extend(upstream[1])
        return found

    def get_all_parent_executions(self, artifact_name: str) -> DataFrame:
        """Executions that produced the artifacts upstream of an artifact."""
        parents = self.get_all_parent_artifacts(artifact_name)
        if parents.shape[0] == 0:
            return _frame([])
        ids = {int(i) for i in parents["id"].tolist()}
        producers = {e.execution_id for e in self.store.events_of_artifacts(ids, [EventType.OUTPUT])}
        return _frame(self._execution_row(e, {"id": e.id, "name": e.name}) for e in self._executions_sorted(producers))

    def find_producer_execution(self, artifact_name: str) -> ExecutionView | None:
        """The (first) execution that produced an artifact, or None."""
        artifact = self._get_artifact(artifact_name)
        if artifact is None:
            logger.error("artifact %r does not exist", artifact_name)
            return None
        ids = {e.execution_id for e in self._events_of_artifact(artifact.id) if e.type is EventType.OUTPUT}
        executions = self._executions_sorted(ids)
        if not executions:
            logger.error("no execution produced artifact %r (id %s)", artifact.name, artifact.id)
            return None
        return self._execution_view(executions[0])

    get_producer_execution = find_producer_execution

    def get_metrics(self, metrics_name: str) -> DataFrame | None:
        """The step metrics recorded under the artifact name ``metrics_name``, or None."""
        for metric in sorted(self.store.artifacts_of_type("Step_Metrics"), key=_id):
            if metric.name == metrics_name:
                path = metric.custom_properties.get("Name")
                return _pandas().read_parquet(str(path)) if path else None
        return None

    @staticmethod
    def read_dataslice(name: str) -> DataFrame:
        """The data slice file ``name`` (a parquet file)."""
        return _pandas().read_parquet(name)

    def get_all_executions_in_pipeline(self, pipeline_name: str) -> DataFrame:
        """Executions of every stage of a pipeline, with ``id`` and ``name`` columns."""
        pipeline_id = self.get_pipeline_id(pipeline_name)
        rows = [
            self._execution_row(e, {"id": e.id, "name": e.name})
            for s in self._get_stages(pipeline_id)
            for e in self._get_executions(s.id)
        ]
        return _frame(rows)

    def get_all_artifacts_for_executions(self, execution_ids: list[int]) -> DataFrame:
        """Every artifact linked to one of the given executions."""
        return self._artifacts_frame({e.artifact_id for e in self._events_of_executions(execution_ids)})

    def get_one_hop_parent_artifacts_with_id(self, artifact_id: int) -> DataFrame:
        """Inputs of the executions that produced an artifact (by id), without environments and labels."""
        ids = self._get_input_artifacts(self._get_executions_by_output_artifact_id(int(artifact_id)))
        frame = self._artifacts_frame(ids)
        if not frame.empty:
            frame = frame[~frame["type"].isin(EXCLUDED_ARTIFACT_TYPES)]
        return frame

    def get_all_executions_by_stage(self, stage_id: int, execution_uuid: str | None = None) -> list[ExecutionView]:
        """Executions of a stage (by id), optionally only the one with ``execution_uuid``."""
        found = self._get_executions(int(stage_id))
        if execution_uuid is not None:
            found = [e for e in found if execution_uuid in str(e.properties.get("Execution_uuid", "")).split(",")]
        return [self._execution_view(e) for e in found]

    # -- JSON ------------------------------------------------------------------------------------

    def dumptojson(self, pipeline_name: str, exec_uuid: str | None = None) -> str | None:
        """A pipeline as CMF's JSON document (``{"Pipeline": [...]}``)."""
        return json.dumps({"Pipeline": [self._pipeline_dict(p, exec_uuid) for p in self._get_pipelines(pipeline_name)]})

    def extract_to_json(self, last_sync_time: int) -> str:
        """Every pipeline (changed after ``last_sync_time``, ms, when given) as CMF's JSON document."""
        pipelines = []
        for pipeline in self._get_pipelines():
            attrs = self._pipeline_dict(pipeline, None, last_sync_time or None)
            if not last_sync_time or attrs["stages"] or attrs["last_update_time_since_epoch"] > last_sync_time:
                pipelines.append(attrs)
        return json.dumps({"Pipeline": pipelines})

    def _node(self, record: Any, kind: str, extra: Mapping[str, Any]) -> dict[str, Any]:
        type_name = record.kind if isinstance(record, ArtifactRecord) else record.type
        attrs: dict[str, Any] = dict(extra)
        attrs["create_time_since_epoch"] = record.create_time_ms
        attrs["custom_properties"] = {
            ("user_type" if k == "type" else k): v for k, v in record.custom_properties.items()
        }
        attrs["id"] = record.id
        attrs["last_update_time_since_epoch"] = getattr(record, "update_time_ms", 0) or record.create_time_ms
        if record.name:
            attrs["name"] = record.name
        attrs["properties"] = dict(record.properties)
        attrs["type"] = type_name
        attrs["type_id"] = self.store.type_id(kind, type_name) or 0
        if isinstance(record, ArtifactRecord) and record.uri:
            attrs["uri"] = record.uri
        return attrs

    def _pipeline_dict(
        self, pipeline: ContextRecord, exec_uuid: str | None, since: int | None = None
    ) -> dict[str, Any]:
        stages = []
        for stage in self._get_stages(pipeline.id):
            executions = []
            for view in self.get_all_executions_by_stage(stage.id, exec_uuid):
                execution: ExecutionRecord = view.record
                if since and execution.update_time_ms <= since:
                    continue
                events = []
                for event in self._events_of_executions([execution.id]):
                    found = self.store.artifacts_by_id([event.artifact_id])
                    if not found:
                        continue
                    artifact = found[0]
                    # CMF writes an event as its type and its artifact only.
                    artifact_node = self._node(artifact, "artifact", {"type": artifact.kind})
                    events.append({"type": _event_code(event.type), "artifact": artifact_node})
                # CMF gives every execution a name, empty when it has none.
                node = self._node(execution, "execution", {"name": execution.name, "events": events})
                executions.append(node)
            attrs = self._node(stage, "context", {"executions": executions})
            if not since or executions or attrs["last_update_time_since_epoch"] > since:
                stages.append(attrs)
        return self._node(pipeline, "context", {"stages": stages})


def _id(record: ArtifactRecord) -> int:
    return record.id


def _event_code(event_type: EventType) -> int:
    """ML Metadata's number of an event type."""
    codes = {EventType.DECLARED_OUTPUT: 1, EventType.INPUT: 3, EventType.OUTPUT: 4, EventType.INTERNAL_OUTPUT: 6}
    return codes.get(event_type, 0)
