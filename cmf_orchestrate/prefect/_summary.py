"""The markdown summary of the executions a flow run recorded."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from cmf_orchestrate.records import ArtifactRecord, ExecutionSnapshot

_KEY_CHARS = re.compile(r"[^a-z0-9]+")
_MAX_KEY = 100


def artifact_key(pipeline: str) -> str:
    """The Prefect artifact key of a pipeline's summaries (lowercase, digits, dashes)."""
    slug = _KEY_CHARS.sub("-", pipeline.lower()).strip("-") or "pipeline"
    return f"cmf-{slug}"[:_MAX_KEY].rstrip("-")


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _artifacts(records: Sequence[ArtifactRecord]) -> str:
    if not records:
        return "-"
    return "<br>".join(f"`{_cell(r.path)}` ({_cell(r.kind)}, md5 `{_cell(r.md5)}`)" for r in records)


def render(flow_run_name: str, flow_run_id: str, store: str, snapshots: Iterable[ExecutionSnapshot]) -> str:
    """A markdown table of ``snapshots``: stage, attempt, state, inputs and outputs."""
    rows = sorted(snapshots, key=lambda s: s.execution.id)
    lines = [
        f"# CMF lineage of flow run `{_cell(flow_run_name)}`",
        "",
        f"Flow run id `{flow_run_id}`; metadata store `{_cell(store)}`; {len(rows)} execution(s).",
        "",
    ]
    if not rows:
        lines.append("No execution was recorded in this flow run.")
        return "\n".join(lines) + "\n"
    lines += [
        "| Execution | Pipeline | Stage | Attempt | State | Inputs | Outputs |",
        "|---:|---|---|---:|---|---|---|",
    ]
    for snap in rows:
        execution = snap.execution
        attempt = execution.fact("attempt", "")
        error = execution.fact("error_type")
        state = execution.state.value + (f" ({_cell(error)})" if error else "")
        lines.append(
            f"| {execution.id} | {_cell(snap.pipeline.name)} | {_cell(snap.stage.name.rsplit('/', 1)[-1])} "
            f"| {attempt} | {state} | {_artifacts(snap.inputs)} | {_artifacts(snap.outputs)} |"
        )
    return "\n".join(lines) + "\n"
