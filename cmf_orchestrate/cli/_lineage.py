"""``lineage`` and ``diff``: where an artifact came from, what was built from it, and why two differ."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import click

from cmf_orchestrate.cli._app import cli, common, emit_json, emit_table, info, json_option, out_console, state
from cmf_orchestrate.cli._lookup import find_artifact, iso_ms
from cmf_orchestrate.errors import InvalidArgumentError
from cmf_orchestrate.records import ArtifactKind, ArtifactRecord, ContextRecord, ExecutionRecord
from cmf_orchestrate.render import FORMATS, RenderEdge, RenderGraph, RenderNode, render, to_tree

if TYPE_CHECKING:
    from cmf_orchestrate.query import CmfQuery, LineageGraph
    from cmf_orchestrate.render import Format
    from cmf_orchestrate.render._model import EdgeKind

_FACTS_SHOWN = (
    "orchestrator",
    "start_time",
    "end_time",
    "attempt",
    "run_id",
    "task_run_id",
    "hostname",
    "logical_date",
)


def _query() -> CmfQuery:
    from cmf_orchestrate.query import CmfQuery

    st = state()
    store = st.store()  # refuses a missing SQLite file before CmfQuery would create one
    query = CmfQuery(settings=st.settings())
    query.store = store
    return query


# --------------------------------------------------------------------------- graph conversion


def execution_properties(execution: ExecutionRecord) -> dict[str, Any]:
    """What hovering an execution shows: parameters, code fingerprint, times, ids."""
    props: dict[str, Any] = {
        "execution_id": execution.id,
        "uuid": execution.uuid,
        "pipeline": execution.pipeline,
        "command": execution.properties.get("Execution", ""),
        "parameters": dict(sorted(execution.parameters.items())),
        "code_fingerprint": execution.fact("code_fingerprint") or "",
    }
    for fact in (*_FACTS_SHOWN, "error_type", "error_message", "state_reason"):
        value = execution.fact(fact)
        if value not in (None, ""):
            props[fact] = value
    git = execution.properties.get("Git_Start_Commit")
    if git:
        props["git_commit"] = git
    return props


def artifact_properties(artifact: ArtifactRecord) -> dict[str, Any]:
    """What hovering an artifact shows: md5, path, type properties, custom properties."""
    props: dict[str, Any] = {
        "artifact_id": artifact.id,
        "md5": artifact.md5,
        "path": artifact.path,
        "name": artifact.name,
        "created": iso_ms(artifact.create_time_ms),
    }
    props.update({k: v for k, v in sorted(artifact.properties.items()) if v not in ("", None) and k != "url"})
    if artifact.custom_properties:
        props["custom_properties"] = dict(sorted(artifact.custom_properties.items()))
    return props


def to_render_graph(graph: LineageGraph, title: str = "") -> RenderGraph:
    """Convert the query layer's lineage graph into the renderers' graph."""
    nodes: list[RenderNode] = []
    for node in graph.nodes:
        record = node.record
        if isinstance(record, ExecutionRecord):
            nodes.append(
                RenderNode(
                    node.id, "execution", node.label, record.type, record.state.value, execution_properties(record)
                )
            )
        elif isinstance(record, ArtifactRecord):
            nodes.append(RenderNode(node.id, "artifact", node.label, record.kind, "", artifact_properties(record)))
        else:
            context = record
            nodes.append(
                RenderNode(
                    node.id,
                    node.kind,
                    node.label,
                    context.type,
                    "",
                    {"context_id": context.id, "name": context.name, **dict(context.custom_properties)},
                )
            )
    edges = [RenderEdge(e.source, e.target, cast("EdgeKind", e.relation)) for e in graph.edges]
    return RenderGraph.build(graph.roots[0], graph.direction, nodes, edges, title)


# --------------------------------------------------------------------------- lineage


@cli.command("lineage")
@click.argument("path_or_md5")
@click.option(
    "--up", "direction", flag_value="up", default=True, help="Everything upstream: where it came from (default)."
)
@click.option("--down", "direction", flag_value="down", help="Everything downstream: what was built from it.")
@click.option("--depth", type=click.IntRange(min=0), help="At most N execution hops away.")
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(FORMATS),
    default="tree",
    show_default=True,
    help="tree prints in the terminal; json, mermaid and dot print text; html writes one self-contained "
    "interactive page (to lineage.html unless -o is given).",
)
@click.option("--no-contexts", is_flag=True, help="Leave pipelines and stages out of the graph.")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE instead of stdout."
)
@common
def lineage_cmd(
    *, path_or_md5: str, direction: str, depth: int | None, fmt: str, no_contexts: bool, output: Path | None
) -> None:
    """Trace the lineage of an artifact (a recorded path, md5, md5 prefix or name).

    Upstream: the executions that produced it, their parameters and code fingerprint,
    their inputs, and so on back to the raw data. Downstream: everything built from it.
    """
    query = _query()
    artifact = find_artifact(query.store, path_or_md5)
    graph = query.lineage(artifact.name, cast(Literal["up", "down"], direction), depth, contexts=not no_contexts)
    title = f"{artifact.path} ({artifact.md5[:8]})"
    rgraph = to_render_graph(graph, title)
    if fmt == "html" and output is None:
        output = Path("lineage.html")
    if fmt == "tree" and output is None:
        out_console().print(to_tree(rgraph))
        return
    text = render(rgraph, cast("Format", fmt))
    if output is None:
        click.echo(text, nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    counts = ", ".join(f"{sum(1 for n in rgraph.nodes if n.kind == k)} {k}s" for k in ("execution", "artifact"))
    info(f"wrote {output} ({counts})")


# --------------------------------------------------------------------------- diff


@dataclass
class _StageHistory:
    stage: str
    execution: ExecutionRecord
    inputs: dict[str, ArtifactRecord] = field(default_factory=dict)


def _input_key(artifact: ArtifactRecord) -> str:
    # The environment file's path carries its own md5, so it is compared by kind.
    return "(python environment)" if artifact.kind == ArtifactKind.ENVIRONMENT.value else artifact.path


def _histories(graph: LineageGraph) -> dict[str, _StageHistory]:
    """Newest upstream execution per stage, with its inputs by path."""
    stage_names: dict[str, str] = {}
    for edge in graph.edges:
        if edge.relation == "runs":
            context = graph.node(edge.source).record
            assert isinstance(context, ContextRecord)
            stage_names[edge.target] = context.name
    inputs: dict[str, list[ArtifactRecord]] = {}
    for edge in graph.edges:
        if edge.relation == "input":
            record = graph.node(edge.source).record
            assert isinstance(record, ArtifactRecord)
            inputs.setdefault(edge.target, []).append(record)
    result: dict[str, _StageHistory] = {}
    for node in graph.nodes:
        execution = node.record
        if not isinstance(execution, ExecutionRecord):
            continue
        stage = stage_names.get(node.id, f"{execution.pipeline}/{execution.type}")
        current = result.get(stage)
        if current is not None and (current.execution.create_time_ms, current.execution.id) > (
            execution.create_time_ms,
            execution.id,
        ):
            continue
        result[stage] = _StageHistory(stage, execution, {_input_key(a): a for a in inputs.get(node.id, [])})
    return result


def _changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> Iterable[tuple[str, Any, Any]]:
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            yield key, a.get(key), b.get(key)


def diff_histories(graph_a: LineageGraph, graph_b: LineageGraph) -> list[dict[str, Any]]:
    """Differences between two upstream histories, stage by stage.

    Each difference: ``{"stage", "what" (input|parameter|code|command|stage|state), "name", "a", "b"}``.
    """
    ha, hb = _histories(graph_a), _histories(graph_b)
    found: list[dict[str, Any]] = []

    def add(stage: str, what: str, name: str, a: Any, b: Any) -> None:
        found.append({"stage": stage, "what": what, "name": name, "a": a, "b": b})

    for stage in sorted(set(ha) | set(hb)):
        sa, sb = ha.get(stage), hb.get(stage)
        if sa is None or sb is None:
            add(stage, "stage", "ran", sa.execution.id if sa else None, sb.execution.id if sb else None)
            continue
        if sa.execution.id == sb.execution.id:
            continue  # the very same run feeds both
        md5_a = {k: v.md5 for k, v in sa.inputs.items()}
        md5_b = {k: v.md5 for k, v in sb.inputs.items()}
        for key, va, vb in _changes(md5_a, md5_b):
            add(stage, "input", key, va, vb)
        for key, va, vb in _changes(sa.execution.parameters, sb.execution.parameters):
            add(stage, "parameter", key, va, vb)
        fa, fb = sa.execution.fact("code_fingerprint"), sb.execution.fact("code_fingerprint")
        if fa != fb:
            add(stage, "code", "code_fingerprint", fa, fb)
        ca, cb = sa.execution.properties.get("Execution"), sb.execution.properties.get("Execution")
        if ca != cb:
            add(stage, "command", "Execution", ca, cb)
        ga, gb = sa.execution.properties.get("Git_Start_Commit"), sb.execution.properties.get("Git_Start_Commit")
        if ga != gb:
            add(stage, "code", "git_commit", ga, gb)
    return found


@cli.command("diff")
@click.argument("artifact_a")
@click.argument("artifact_b")
@common
@json_option
def diff_cmd(artifact_a: str, artifact_b: str) -> None:
    """Explain how two artifacts' upstream histories differ.

    For every stage upstream of either artifact: which inputs changed md5, which
    parameters changed, which code fingerprint changed. The answer to "why is model v4
    different from v3". Give each artifact as a path:md5 name, an md5 or an md5 prefix.
    """
    query = _query()
    a = find_artifact(query.store, artifact_a)
    b = find_artifact(query.store, artifact_b)
    if a.id == b.id:
        raise InvalidArgumentError(f"{artifact_a!r} and {artifact_b!r} are the same artifact ({a.name})")
    graph_a = query.lineage(a.name, "up")
    graph_b = query.lineage(b.name, "up")
    differences = diff_histories(graph_a, graph_b)
    if state().json_mode:
        emit_json(
            {
                "a": {"id": a.id, "path": a.path, "md5": a.md5, "name": a.name},
                "b": {"id": b.id, "path": b.path, "md5": b.md5, "name": b.name},
                "same_content": a.md5 == b.md5,
                "differences": differences,
            }
        )
        return
    console = out_console()
    console.print(f"A: {a.path}  md5 {a.md5}")
    console.print(f"B: {b.path}  md5 {b.md5}")
    if a.md5 == b.md5:
        console.print("Same content (identical md5).")
    if not differences:
        console.print("No difference in their upstream histories.")
        return
    emit_table(
        "Upstream differences (A -> B)",
        ("stage", "what", "name", "A", "B"),
        [(d["stage"], d["what"], d["name"], _show(d["a"]), _show(d["b"])) for d in differences],
        section=True,
    )


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)
