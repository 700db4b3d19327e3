"""``lineage`` and ``diff``: where an artifact came from, what was built from it, and why two differ."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Literal, cast

import click

from cmf_orchestrate.cli._app import cli, common, emit_json, emit_table, info, json_option, out_console, state
from cmf_orchestrate.cli._lookup import find_artifact, find_execution, iso_ms
from cmf_orchestrate.errors import ArtifactNotFoundError, InvalidArgumentError
from cmf_orchestrate.records import (
    ArtifactKind,
    ArtifactRecord,
    ContextRecord,
    EventType,
    ExecutionRecord,
    metrics_set_name,
)
from cmf_orchestrate.render import FORMATS, RenderEdge, RenderGraph, RenderNode, render, to_tree

if TYPE_CHECKING:
    from cmf_orchestrate.query import CmfQuery, LineageGraph
    from cmf_orchestrate.render import Format
    from cmf_orchestrate.render._model import EdgeKind
    from cmf_orchestrate.store import MetadataStore

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
    help="tree (the default) prints in the terminal; json, mermaid and dot print text; html writes one "
    "self-contained interactive page (to lineage.html unless -o is given). --json is --format json.",
)
@click.option("--no-contexts", is_flag=True, help="Leave pipelines and stages out of the graph.")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE instead of stdout."
)
@common
@json_option
def lineage_cmd(
    *, path_or_md5: str, direction: str, depth: int | None, fmt: str | None, no_contexts: bool, output: Path | None
) -> None:
    """Trace the lineage of an artifact (a recorded path, md5, md5 prefix or name).

    Upstream: the executions that produced it, their parameters and code fingerprint,
    their inputs, and so on back to the raw data. Downstream: everything built from it.
    """
    if state().json_mode:
        if fmt not in (None, "json"):
            raise InvalidArgumentError(f"--json and --format {fmt} ask for two different outputs; give one")
        fmt = "json"
    fmt = fmt or "tree"
    query = _query()
    artifact = find_artifact(query.store, path_or_md5)
    graph = query.lineage(artifact.name, cast(Literal["up", "down"], direction), depth, contexts=not no_contexts)
    title = f"{artifact.path} ({artifact.md5[:8]})"
    rgraph = to_render_graph(graph, title)
    if fmt == "html" and output is None:
        output = Path("lineage.html")
    if fmt == "tree" and output is None:
        console = out_console()
        # A narrow terminal gets short md5s, and lines that end in "…" rather than wrap under the tree's guides.
        console.print(to_tree(rgraph, short=console.width < 120), no_wrap=True, overflow="ellipsis")
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
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DiffTarget:
    """One side of a ``diff``: an artifact, or an execution (compared through its own stage)."""

    artifact: ArtifactRecord | None = None
    execution: ExecutionRecord | None = None

    def describe(self) -> dict[str, Any]:
        """The JSON form: ``kind`` plus the artifact's or the execution's identity."""
        if self.artifact is not None:
            a = self.artifact
            return {"kind": "artifact", "id": a.id, "path": a.path, "md5": a.md5, "name": a.name}
        assert self.execution is not None
        e = self.execution
        return {"kind": "execution", "id": e.id, "uuid": e.uuid, "pipeline": e.pipeline, "state": e.state.value}

    def line(self) -> str:
        """One line for the terminal."""
        if self.artifact is not None:
            return f"artifact {self.artifact.id}  {self.artifact.path}  md5 {self.artifact.md5}"
        assert self.execution is not None
        e = self.execution
        return f"execution {e.id}  {e.pipeline}/{e.type}  {e.state.value}"


def find_target(store: MetadataStore, text: str) -> DiffTarget:
    """What ``diff`` compares, named as ``executions`` and ``artifacts`` print them.

    A bare number or ``execution:<id>`` is an execution; ``artifact:<id>`` an artifact (as
    the ``artifacts`` table prints it); anything else an artifact path, name, md5 or md5
    prefix, and failing that an execution uuid.

    Raises:
        ArtifactNotFoundError: Nothing matches.
        InvalidArgumentError: An md5 prefix is ambiguous.
    """
    text = text.strip()
    if text.isdigit() or text.startswith("execution:"):
        return DiffTarget(execution=find_execution(store, text))
    try:
        return DiffTarget(artifact=find_artifact(store, text))
    except ArtifactNotFoundError:
        if text.startswith("artifact:"):
            raise
        try:
            return DiffTarget(execution=find_execution(store, text))
        except ArtifactNotFoundError:
            raise ArtifactNotFoundError(f"no artifact or execution matches {text!r}") from None


def _input_key(artifact: ArtifactRecord) -> str:
    # The environment file's path carries its own md5, so it is compared by kind.
    return "(python environment)" if artifact.kind == ArtifactKind.ENVIRONMENT.value else artifact.path


def _histories(graphs: Iterable[LineageGraph], own: Iterable[_StageHistory] = ()) -> dict[str, _StageHistory]:
    """Newest upstream execution per stage, with its inputs by path; ``own`` wins for its stage."""
    result: dict[str, _StageHistory] = {}
    for graph in graphs:
        stage_names: dict[str, str] = {}
        inputs: dict[str, list[ArtifactRecord]] = {}
        for edge in graph.edges:
            if edge.relation == "runs":
                context = graph.node(edge.source).record
                assert isinstance(context, ContextRecord)
                stage_names[edge.target] = context.name
            elif edge.relation == "input":
                record = graph.node(edge.source).record
                assert isinstance(record, ArtifactRecord)
                inputs.setdefault(edge.target, []).append(record)
        for node in graph.nodes:
            execution = node.record
            if not isinstance(execution, ExecutionRecord):
                continue
            stage = stage_names.get(node.id, f"{execution.pipeline}/{execution.type}")
            current = result.get(stage)
            if current is not None and (current.execution.create_time_ms, current.execution.id) >= (
                execution.create_time_ms,
                execution.id,
            ):
                continue
            result[stage] = _StageHistory(stage, execution, {_input_key(a): a for a in inputs.get(node.id, [])})
    for history in own:
        result[history.stage] = history
    return result


def _own_history(store: MetadataStore, execution: ExecutionRecord) -> tuple[_StageHistory, list[ArtifactRecord]]:
    """An execution as a stage history, and its inputs (to trace further upstream)."""
    stage = next(iter(store.contexts_by_id([execution.stage_id])), None)
    events = store.events_of_executions([execution.id])
    artifacts = {a.id: a for a in store.artifacts_by_id({e.artifact_id for e in events})}
    inputs = [artifacts[e.artifact_id] for e in events if e.type is EventType.INPUT and e.artifact_id in artifacts]
    name = stage.name if stage is not None else f"{execution.pipeline}/{execution.type}"
    return _StageHistory(name, execution, {_input_key(a): a for a in inputs}), inputs


def _metric_values(artifact: ArtifactRecord) -> dict[str, Any]:
    """The values a Metrics artifact holds, keyed ``<metrics name or path>:<key>``."""
    given = artifact.properties.get("metrics_name")
    name = metrics_set_name(given) if given else artifact.path
    return {f"{name}:{k}": v for k, v in sorted(artifact.custom_properties.items())}


def _attach_metrics(store: MetadataStore, histories: Iterable[_StageHistory]) -> None:
    """Read the Metrics each execution wrote (one batch of events, one of artifacts)."""
    by_execution = {h.execution.id: h for h in histories}
    events = [e for e in store.events_of_executions(list(by_execution)) if e.type is EventType.OUTPUT]
    artifacts = {a.id: a for a in store.artifacts_by_id({e.artifact_id for e in events})}
    for event in events:
        artifact = artifacts.get(event.artifact_id)
        if artifact is not None and artifact.kind == ArtifactKind.METRICS.value:
            by_execution[event.execution_id].metrics.update(_metric_values(artifact))


def _changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> Iterable[tuple[str, Any, Any]]:
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            yield key, a.get(key), b.get(key)


_INTERPRETER = re.compile(r"^(python[\d.]*|pypy[\d.]*|pytest|prefect|airflow)(\.exe)?$")


def launch_free(command: object) -> str:
    """A recorded command without how the process was launched.

    A callable name (``module:function``) is kept. A command line loses its interpreter,
    the interpreter's own options and the directory of the script, so that
    ``python /tmp/a/train.py --lr 1`` and ``./train.py --lr 1`` read the same.
    """
    text = str(command or "").strip()
    if not text or (" " not in text and ":" in text and "/" not in text):
        return text
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    while words and _INTERPRETER.match(PurePath(words[0]).name):
        words.pop(0)
        # The interpreter's own switches (-u, -O, -X dev, -m) say how it ran, not what.
        while words and words[0].startswith("-") and words[0] not in ("-c",):
            flag = words.pop(0)
            if flag == "-m":
                break
            if flag in ("-X", "-W") and words:
                words.pop(0)
    if words:
        words[0] = PurePath(words[0]).name
    return " ".join(words)


def diff_histories(graph_a: LineageGraph, graph_b: LineageGraph) -> list[dict[str, Any]]:
    """Differences between two upstream histories, stage by stage (metrics not included).

    Each difference: ``{"stage", "what" (input|parameter|code|command|stage), "name", "a", "b"}``.
    """
    return _diff(_histories([graph_a]), _histories([graph_b]))


def _diff(ha: Mapping[str, _StageHistory], hb: Mapping[str, _StageHistory]) -> list[dict[str, Any]]:
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
        if sa.execution.state is not sb.execution.state:
            add(stage, "state", "state", sa.execution.state.value, sb.execution.state.value)
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
        if launch_free(ca) != launch_free(cb):
            add(stage, "command", "Execution", ca, cb)
        ga, gb = sa.execution.properties.get("Git_Start_Commit"), sb.execution.properties.get("Git_Start_Commit")
        if ga != gb:
            add(stage, "code", "git_commit", ga, gb)
        for key, va, vb in _changes(sa.metrics, sb.metrics):
            add(stage, "metric", key, va, vb)
    return found


def _history_of(query: CmfQuery, target: DiffTarget) -> dict[str, _StageHistory]:
    if target.artifact is not None:
        return _histories([query.lineage(target.artifact.name, "up")])
    assert target.execution is not None
    own, inputs = _own_history(query.store, target.execution)
    upstream = [query.lineage(a.name, "up") for a in inputs if a.kind != ArtifactKind.ENVIRONMENT.value]
    return _histories(upstream, [own])


def _metric_delta(a: Any, b: Any) -> str:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool | str):
        delta = b - a
        return f"{delta:+.6g}"
    return ""


@cli.command("diff")
@click.argument("a")
@click.argument("b")
@common
@json_option
def diff_cmd(a: str, b: str) -> None:
    """Explain how two artifacts, or two executions, differ upstream.

    For every stage upstream of either side: which inputs changed md5, which parameters,
    code fingerprints and metrics changed. The answer to "why is model v4 different from
    v3". Name an artifact as `artifacts` prints it (artifact:<id>), by path:md5, md5 or md5
    prefix; an execution by its id as `executions` prints it, or its uuid.
    """
    query = _query()
    ta, tb = find_target(query.store, a), find_target(query.store, b)
    if ta.describe() == tb.describe():
        what = ta.artifact.name if ta.artifact is not None else f"execution {b}"
        raise InvalidArgumentError(f"{a!r} and {b!r} are the same {ta.describe()['kind']} ({what})")
    ha, hb = _history_of(query, ta), _history_of(query, tb)
    _attach_metrics(query.store, [*ha.values(), *hb.values()])
    differences = _diff(ha, hb)
    same = ta.artifact.md5 == tb.artifact.md5 if ta.artifact is not None and tb.artifact is not None else None
    if state().json_mode:
        emit_json({"a": ta.describe(), "b": tb.describe(), "same_content": same, "differences": differences})
        return
    console = out_console()
    console.print(f"A: {ta.line()}", markup=False)
    console.print(f"B: {tb.line()}", markup=False)
    if same:
        console.print("Same content (identical md5).")
    if not differences:
        console.print("No difference in their upstream histories.")
        return
    pipelines = {d["stage"].split("/", 1)[0] for d in differences if "/" in d["stage"]}
    # One pipeline (the usual case): name it once in the title, not in every row.
    prefix = f"{next(iter(pipelines))}/" if len(pipelines) == 1 else ""
    emit_table(
        f"Upstream differences in {prefix[:-1]} (A -> B)" if prefix else "Upstream differences (A -> B)",
        ("stage", "what", "name", "A", "B", "change"),
        [
            (
                d["stage"].removeprefix(prefix),
                d["what"],
                d["name"],
                _show(d["a"]),
                _show(d["b"]),
                _metric_delta(d["a"], d["b"]) if d["what"] in ("metric", "parameter") else "",
            )
            for d in differences
        ],
        section=True,
        fit={"stage": "end", "name": "start", "A": "hash", "B": "hash"},
    )


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)
