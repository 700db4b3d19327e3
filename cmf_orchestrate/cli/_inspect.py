"""Read-only subcommands: pipelines, stages, executions, artifacts, show."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import click

from cmf_orchestrate.cli._app import cli, common, emit_json, emit_mapping, emit_table, json_option, state
from cmf_orchestrate.cli._lookup import (
    find_artifact,
    find_execution,
    fmt_duration,
    fmt_ms,
    iso_ms,
    parse_since,
    to_ms,
)
from cmf_orchestrate.errors import ArtifactNotFoundError, InvalidArgumentError
from cmf_orchestrate.records import (
    ArtifactRecord,
    ContextRecord,
    EventType,
    ExecutionRecord,
    ExecutionState,
    metrics_set_name,
)

if TYPE_CHECKING:
    from cmf_orchestrate.store import MetadataStore

PIPELINE_TYPE = "Parent_Context"
STAGE_TYPE = "Pipeline_Stage"
STATES = [s.value for s in ExecutionState]


def stage_short(stage_name: str, pipeline: str) -> str:
    """``train`` from the stage context name ``<pipeline>/train``."""
    prefix = pipeline + "/"
    return stage_name[len(prefix) :] if stage_name.startswith(prefix) else stage_name


def stages_by_id(store: MetadataStore, executions: Iterable[ExecutionRecord]) -> dict[int, ContextRecord]:
    """The stage contexts of some executions, by id (one bulk read)."""
    return {c.id: c for c in store.contexts_by_id({e.stage_id for e in executions if e.stage_id})}


def execution_dict(execution: ExecutionRecord, stages: dict[int, ContextRecord]) -> dict[str, Any]:
    """An execution as printed by ``--json``."""
    stage = stages.get(execution.stage_id)
    data = execution.to_dict()
    data.update(
        {
            "uuid": execution.uuid,
            "pipeline": execution.pipeline,
            "stage": stage_short(stage.name, execution.pipeline) if stage else execution.type,
            "parameters": execution.parameters,
            "facts": {k[4:]: v for k, v in execution.custom_properties.items() if k.startswith("cmf.")},
            "create_time": iso_ms(execution.create_time_ms),
            "run": run_facts(execution),
            "error": execution_error(execution),
        }
    )
    return data


def run_facts(execution: ExecutionRecord) -> dict[str, Any]:
    """The orchestrator run an execution belongs to: a DAG run or a flow run (empty for the seed API)."""
    facts = {
        "orchestrator": execution.fact("orchestrator"),
        "id": execution.fact("pipeline_run_id") or execution.fact("run_id"),
        "name": execution.fact("pipeline_run_name"),
        "logical_date": execution.fact("logical_date"),
        "attempt": execution.fact("attempt"),
    }
    return {k: v for k, v in facts.items() if v not in (None, "")}


def run_label(execution: ExecutionRecord) -> str:
    """The run as a table cell: a flow run's name, a DAG run's id, else the orchestrator (``cmf``)."""
    facts = run_facts(execution)
    return str(facts.get("name") or facts.get("id") or facts.get("orchestrator") or "")


def execution_error(execution: ExecutionRecord) -> str | None:
    """``Type: message`` of a FAILED execution (or why it was failed), None otherwise."""
    if execution.state is not ExecutionState.FAILED:
        return None
    kind, message = execution.fact("error_type"), execution.fact("error_message")
    reason = execution.fact("state_reason")
    text = ": ".join(str(v) for v in (kind, message) if v not in (None, ""))
    return text or (str(reason) if reason else "failed (no error recorded)")


def artifact_path(artifact: ArtifactRecord) -> str:
    """What to call an artifact in a table: its path, or a metrics set's name."""
    name = artifact.properties.get("metrics_name")
    if artifact.kind == "Metrics" and name and not artifact.path.endswith((".json", ".csv", ".yaml", ".txt")):
        return metrics_set_name(name)
    if artifact.kind == "Validation_output":  # named by a uuid; the version validated is what tells it apart
        return f"version {artifact.properties.get('version', '')}"
    return artifact.path


def artifact_dict(artifact: ArtifactRecord) -> dict[str, Any]:
    """An artifact as printed by ``--json``."""
    data = artifact.to_dict()
    data.update({"md5": artifact.md5, "create_time": iso_ms(artifact.create_time_ms)})
    return data


def _pipeline(store: MetadataStore, name: str) -> ContextRecord:
    found = store.context(PIPELINE_TYPE, name)
    if found is None:
        known = ", ".join(sorted(c.name for c in store.contexts_of_type(PIPELINE_TYPE))) or "none recorded"
        raise ArtifactNotFoundError(f"no pipeline named {name!r} (pipelines: {known})")
    return found


def _executions_in(store: MetadataStore, context_ids: list[int]) -> list[ExecutionRecord]:
    return store.executions(context_ids=context_ids) if context_ids else []


# --------------------------------------------------------------------------- pipelines / stages


@cli.command("pipelines")
@common
@json_option
def pipelines_cmd() -> None:
    """List the recorded pipelines."""
    store = state().store()
    rows: list[dict[str, Any]] = []
    for pipeline in store.contexts_of_type(PIPELINE_TYPE):
        stages = store.children(pipeline.id)
        executions = _executions_in(store, [c.id for c in stages])
        last = max((e.create_time_ms for e in executions), default=0)
        rows.append(
            {
                "id": pipeline.id,
                "name": pipeline.name,
                "stages": len(stages),
                "executions": len(executions),
                "failed": sum(1 for e in executions if e.state is ExecutionState.FAILED),
                "last_run": iso_ms(last),
                "_last": last,
            }
        )
    if state().json_mode:
        emit_json([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
        return
    emit_table(
        "Pipelines",
        ("pipeline", "id", "stages", "executions", "failed", "last run"),
        [(r["name"], r["id"], r["stages"], r["executions"], r["failed"], fmt_ms(r["_last"])) for r in rows],
        fit={"last run": "time"},
    )


@cli.command("stages")
@click.argument("pipeline")
@common
@json_option
def stages_cmd(pipeline: str) -> None:
    """List the stages of PIPELINE with their latest execution."""
    store = state().store()
    parent = _pipeline(store, pipeline)
    rows: list[dict[str, Any]] = []
    for stage in store.children(parent.id):
        executions = store.executions_in_context(stage.id)
        last = max(executions, key=lambda e: (e.create_time_ms, e.id), default=None)
        rows.append(
            {
                "id": stage.id,
                "name": stage_short(stage.name, parent.name),
                "context": stage.name,
                "executions": len(executions),
                "last_state": last.state.value if last else None,
                "last_execution": last.id if last else None,
                "last_run": iso_ms(last.create_time_ms) if last else None,
                "_last_ms": last.create_time_ms if last else 0,
            }
        )
    if state().json_mode:
        emit_json([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
        return
    emit_table(
        f"Stages of {parent.name}",
        ("stage", "id", "executions", "last state", "last execution", "last run"),
        [
            (r["name"], r["id"], r["executions"], r["last_state"], r["last_execution"], fmt_ms(r["_last_ms"]))
            for r in rows
        ],
        fit={"last run": "time"},
    )


# --------------------------------------------------------------------------- executions


@cli.command("executions")
@click.option("--pipeline", "-p", help="Only executions of this pipeline.")
@click.option("--stage", "-s", help="Only executions of this stage (name within the pipeline, or pipeline/stage).")
@click.option(
    "--state",
    "state_",
    type=click.Choice(STATES, case_sensitive=False),
    help="Only executions in this state.",
)
@click.option(
    "--since",
    metavar="WHEN",
    help="Only executions started since WHEN: a date (2024-05-01, 2024-05-01T10:00), "
    "a duration ago (30m, 2h, 1d, 1w) or today/yesterday.",
)
@click.option("--limit", "-n", type=click.IntRange(min=1), help="Show at most N executions (the newest).")
@common
@json_option
def executions_cmd(
    *, pipeline: str | None, stage: str | None, state_: str | None, since: str | None, limit: int | None
) -> None:
    """List executions, newest first."""
    store = state().store()
    context_ids: list[int] | None = None
    if stage:
        full = stage if "/" in stage or not pipeline else f"{pipeline}/{stage}"
        found = store.context(STAGE_TYPE, full)
        candidates = (
            [found] if found else [c for c in store.contexts_of_type(STAGE_TYPE) if c.name.endswith("/" + stage)]
        )
        if pipeline:
            candidates = [c for c in candidates if c.name.startswith(pipeline + "/")]
        if not candidates:
            raise ArtifactNotFoundError(
                f"no stage named {stage!r}" + (f" in pipeline {pipeline!r}" if pipeline else "")
            )
        context_ids = [c.id for c in candidates]
    elif pipeline:
        context_ids = [c.id for c in store.children(_pipeline(store, pipeline).id)]
    # Newest first, limited by the store itself rather than after loading everything.
    executions = store.executions(
        context_ids=context_ids,
        state=state_.upper() if state_ else None,
        since_ms=to_ms(parse_since(since)) if since else None,
        limit=limit,
        newest_first=True,
    )
    stages = stages_by_id(store, executions)
    if state().json_mode:
        emit_json([execution_dict(e, stages) for e in executions])
        return
    rows = []
    for e in executions:
        stage_ctx = stages.get(e.stage_id)
        rows.append(
            (
                e.id,
                e.pipeline,
                stage_short(stage_ctx.name, e.pipeline) if stage_ctx else e.type,
                e.state.value,
                fmt_ms(e.create_time_ms),
                fmt_duration(e.fact("start_time"), e.fact("end_time")),
                run_label(e),
                execution_error(e) or "",
            )
        )
    emit_table(
        "Executions",
        ("id", "pipeline", "stage", "state", "started", "duration", "run", "error"),
        rows,
        fit={"pipeline": "end", "stage": "end", "started": "time", "run": "end", "error": "end"},
    )


# --------------------------------------------------------------------------- artifacts


@cli.command("artifacts")
@click.option("--type", "-t", "type_", metavar="TYPE", help="Only this artifact type (Dataset, Model, Metrics, ...).")
@click.option("--path", "pattern", metavar="GLOB", help="Only artifacts whose path matches GLOB (e.g. 'data/*.csv').")
@click.option("--pipeline", "-p", help="Only artifacts of this pipeline.")
@common
@json_option
def artifacts_cmd(type_: str | None, pattern: str | None, pipeline: str | None) -> None:
    """List artifacts (every recorded version), newest first."""
    store = state().store()
    if pipeline:
        parent = _pipeline(store, pipeline)
        seen: dict[int, ArtifactRecord] = {}
        for stage in store.children(parent.id):
            for artifact in store.artifacts_in_context(stage.id):
                seen[artifact.id] = artifact
        artifacts = list(seen.values())
        if type_:
            artifacts = [a for a in artifacts if a.kind.lower() == type_.lower()]
    elif type_:
        artifacts = store.artifacts(type_name=_type_name(store, type_))
    else:
        artifacts = store.artifacts()
    if pattern:
        artifacts = [a for a in artifacts if fnmatch.fnmatchcase(a.path, pattern)]
    artifacts.sort(key=lambda a: (a.create_time_ms, a.id), reverse=True)
    if state().json_mode:
        emit_json([artifact_dict(a) for a in artifacts])
        return
    emit_table(
        "Artifacts",
        ("id", "type", "path", "md5", "created"),
        # Ids as `show` and `diff` take them (a bare number is an execution id there).
        [(f"artifact:{a.id}", a.kind, artifact_path(a), a.md5, fmt_ms(a.create_time_ms)) for a in artifacts],
        fit={"path": "middle", "md5": "hash", "created": "time"},
    )


def _type_name(store: MetadataStore, given: str) -> str:
    from cmf_orchestrate.records import ArtifactKind

    for kind in ArtifactKind:
        if kind.value.lower() == given.lower():
            return kind.value
    raise InvalidArgumentError(f"unknown artifact type {given!r} (one of {', '.join(k.value for k in ArtifactKind)})")


# --------------------------------------------------------------------------- show


@cli.command("show")
@click.argument("target")
@click.option("--why", is_flag=True, help="Explain why an execution was reused, or why it ran (its reuse key).")
@common
@json_option
def show_cmd(target: str, why: bool) -> None:
    """Show one execution (by id or uuid) or one artifact (by path, md5 or name).

    An integer is an execution id; use artifact:<id> for an artifact id.
    """
    store = state().store()
    if why:
        _show_why(store, find_execution(store, target))
        return
    is_execution = target.isdigit() or target.startswith("execution:")
    if not is_execution:
        try:
            artifact = find_artifact(store, target)
        except ArtifactNotFoundError:
            try:
                execution = find_execution(store, target)
            except ArtifactNotFoundError:
                raise ArtifactNotFoundError(f"no artifact or execution matches {target!r}") from None
            _show_execution(store, execution)
            return
        _show_artifact(store, artifact)
        return
    _show_execution(store, find_execution(store, target))


def _show_why(store: MetadataStore, execution: ExecutionRecord) -> None:
    from cmf_orchestrate._reuse import explain

    lines = explain(store, execution)
    if state().json_mode:
        emit_json({"id": execution.id, "state": execution.state.value, "why": lines})
        return
    click.echo(f"Execution {execution.id} ({execution.state.value})")
    click.echo("\n".join(lines))


#: Facts too long for the text view (``--json`` has them): the reuse key's parts and kept outputs.
_LONG_FACTS = frozenset({"reuse_parts", "reuse_outputs"})


def _show_execution(store: MetadataStore, execution: ExecutionRecord) -> None:
    stages = stages_by_id(store, [execution])
    events = store.events_of_executions([execution.id])
    artifacts = {a.id: a for a in store.artifacts_by_id({e.artifact_id for e in events})}
    inputs = [artifacts[e.artifact_id] for e in events if e.type is EventType.INPUT and e.artifact_id in artifacts]
    outputs = [artifacts[e.artifact_id] for e in events if e.type is EventType.OUTPUT and e.artifact_id in artifacts]
    # CMF's validation outputs: kept with the execution, not data it produced.
    internal = [
        artifacts[e.artifact_id] for e in events if e.type is EventType.INTERNAL_OUTPUT and e.artifact_id in artifacts
    ]
    data = execution_dict(execution, stages)
    if state().json_mode:
        data["inputs"] = [artifact_dict(a) for a in inputs]
        data["outputs"] = [artifact_dict(a) for a in outputs]
        data["internal_outputs"] = [artifact_dict(a) for a in internal]
        emit_json(data)
        return
    summary = {
        "id": execution.id,
        "name": execution.name,
        "pipeline": data["pipeline"],
        "stage": data["stage"],
        "state": execution.state.value,
        "uuid": execution.uuid,
        "command": execution.properties.get("Execution", ""),
        "run": run_label(execution),
        "error": execution_error(execution),
        "reused": f"execution {execution.fact('reused_execution')}" if execution.fact("reused_execution") else None,
        "created": fmt_ms(execution.create_time_ms),
        "updated": fmt_ms(execution.update_time_ms),
        "duration": fmt_duration(execution.fact("start_time"), execution.fact("end_time")),
        "git": " ".join(
            str(execution.properties.get(k, ""))
            for k in ("Git_Repo", "Git_Start_Commit")
            if execution.properties.get(k)
        ),
    }
    emit_mapping(f"Execution {execution.id}", {k: v for k, v in summary.items() if v not in ("", None)})
    if execution.parameters:
        emit_mapping("Parameters", dict(sorted(execution.parameters.items())))
    facts = {k: v for k, v in sorted(data["facts"].items()) if k not in _LONG_FACTS}
    if facts:
        emit_mapping("Orchestration facts", facts)
    rows = [("input", a.kind, artifact_path(a), a.md5) for a in inputs]
    rows += [("output", a.kind, artifact_path(a), a.md5) for a in outputs]
    rows += [("internal output", a.kind, artifact_path(a), a.md5) for a in internal]
    emit_table("Artifacts", ("event", "type", "path", "md5"), rows, section=True, fit={"path": "middle", "md5": "hash"})


def _show_artifact(store: MetadataStore, artifact: ArtifactRecord) -> None:
    events = store.events_of_artifacts([artifact.id])
    executions = {e.id: e for e in store.executions_by_id({ev.execution_id for ev in events})}
    stages = stages_by_id(store, executions.values())
    producers = [
        executions[ev.execution_id] for ev in events if ev.type is EventType.OUTPUT and ev.execution_id in executions
    ]
    consumers = [
        executions[ev.execution_id] for ev in events if ev.type is EventType.INPUT and ev.execution_id in executions
    ]
    recorders = [
        executions[ev.execution_id]
        for ev in events
        if ev.type is EventType.INTERNAL_OUTPUT and ev.execution_id in executions
    ]
    versions = [a for a in store.artifacts(name_prefix=artifact.path + ":") if a.path == artifact.path]
    versions.sort(key=lambda a: (a.create_time_ms, a.id), reverse=True)
    if state().json_mode:
        data = artifact_dict(artifact)
        data["produced_by"] = [execution_dict(e, stages) for e in producers]
        data["consumed_by"] = [execution_dict(e, stages) for e in consumers]
        data["recorded_by"] = [execution_dict(e, stages) for e in recorders]
        data["versions"] = [{"id": a.id, "md5": a.md5, "create_time": iso_ms(a.create_time_ms)} for a in versions]
        emit_json(data)
        return
    summary: dict[str, Any] = {
        "id": artifact.id,
        "type": artifact.kind,
        "path": artifact.path,
        "md5": artifact.md5,
        "name": artifact.name,
        "created": fmt_ms(artifact.create_time_ms),
    }
    summary.update({k: v for k, v in sorted(artifact.properties.items()) if v not in ("", None)})
    emit_mapping(f"Artifact {artifact.path}", summary)
    if artifact.custom_properties:
        emit_mapping("Custom properties", dict(sorted(artifact.custom_properties.items())))

    def row(role: str, e: ExecutionRecord) -> tuple[Any, ...]:
        stage_ctx = stages.get(e.stage_id)
        stage = stage_short(stage_ctx.name, e.pipeline) if stage_ctx else e.type
        return (role, e.id, e.pipeline, stage, e.state.value, fmt_ms(e.create_time_ms))

    emit_table(
        "Executions",
        ("role", "id", "pipeline", "stage", "state", "started"),
        [row("produced by", e) for e in producers]
        + [row("consumed by", e) for e in consumers]
        + [row("recorded by", e) for e in recorders],
        section=True,
        fit={"started": "time"},
    )
    if len(versions) > 1:
        emit_table(
            f"Versions of {artifact.path}",
            ("id", "md5", "created", ""),
            [
                (f"artifact:{a.id}", a.md5, fmt_ms(a.create_time_ms), "(this one)" if a.id == artifact.id else "")
                for a in versions
            ],
            section=True,
            fit={"md5": "hash", "created": "time"},
        )
