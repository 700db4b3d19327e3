"""The markdown summary of the executions a flow run recorded.

Made to be read in the Prefect UI's artifact page, whose markdown column is about 850 px
wide in a 1,500 px window and cuts a wider table off: the table has one row per execution
with its state and its inputs and outputs as short paths with 8-digit md5s; the metric
values follow as a list, which wraps; then the store it was read from and the command
that shows the lineage of the run's model. The Python environment file, an input of every
execution, is named once above the table instead of in every row. Plain text only: the
UI's font has no emoji.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Iterable, Sequence

from cmf_orchestrate.records import ArtifactKind, ArtifactRecord, ExecutionSnapshot, ExecutionState

_KEY_CHARS = re.compile(r"[^a-z0-9]+")
_MD5 = re.compile(r"^[0-9a-f]{32}(\.dir)?$")
_MAX_KEY = 100
SHORT_MD5 = 8
#: Longest path shown in full; longer ones keep their last two components.
MAX_PATH = 24
#: Metric values shown per artifact before "...".
MAX_VALUES = 6

_STATES = (ExecutionState.COMPLETE, ExecutionState.CACHED, ExecutionState.FAILED, ExecutionState.RUNNING)
_FILE_KINDS = frozenset({ArtifactKind.DATASET, ArtifactKind.MODEL, ArtifactKind.DATASLICE})


def artifact_key(pipeline: str) -> str:
    """The Prefect artifact key of a pipeline's summaries (lowercase, digits, dashes)."""
    slug = _KEY_CHARS.sub("-", pipeline.lower()).strip("-") or "pipeline"
    return f"cmf-{slug}"[:_MAX_KEY].rstrip("-")


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def short_md5(md5: str) -> str:
    """The first 8 hex digits of an md5 (``.dir`` kept for a directory)."""
    return md5[:SHORT_MD5] + (".dir" if md5.endswith(".dir") else "")


def short_path(path: str) -> str:
    """``path`` itself, or ``.../<parent>/<name>`` when longer than :data:`MAX_PATH`."""
    if len(path) <= MAX_PATH:
        return path
    parts = path.split("/")
    return "…/" + "/".join(parts[-2:]) if len(parts) > 2 else path


def _value(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    return str(value)


def _metric_values(record: ArtifactRecord) -> str:
    values = {k: v for k, v in record.custom_properties.items() if not str(k).startswith("cmf.")}
    if not values:
        return ""
    shown = [f"{_cell(k)}={_cell(_value(v))}" for k, v in list(values.items())[:MAX_VALUES]]
    if len(values) > MAX_VALUES:
        shown.append("…")
    return ", ".join(shown)


def _files(records: Sequence[ArtifactRecord]) -> str:
    shown = [
        f"`{_cell(short_path(r.path))}` {short_md5(r.md5)}"
        for r in records
        if r.kind not in (ArtifactKind.ENVIRONMENT, ArtifactKind.STEP_METRICS) and _MD5.match(r.md5)
    ]
    return "<br>".join(shown) or "-"


def _metrics(records: Sequence[ArtifactRecord]) -> list[str]:
    found = []
    for record in records:
        if record.kind == ArtifactKind.METRICS:
            name = record.properties.get("metrics_name") or record.path
            values = _metric_values(record)
            found.append(f"`{_cell(short_path(str(name)))}` {values or '(no values)'}")
        elif record.kind == ArtifactKind.STEP_METRICS:
            name = record.custom_properties.get("metrics_name") or record.properties.get("metrics_name") or "steps"
            found.append(f"`{_cell(name)}` (steps, parquet {short_md5(record.md5)})")
    return found


def _state(snap: ExecutionSnapshot) -> str:
    execution = snap.execution
    text = f"**{execution.state!s}**" if execution.state is ExecutionState.FAILED else str(execution.state)
    error = execution.fact("error_type")
    if error:
        text += f"<br>{_cell(str(error).rsplit('.', 1)[-1])}"
    attempt = execution.fact("attempt")
    if isinstance(attempt, int) and attempt > 1:
        text += f"<br>try {attempt}"
    return text


def _environment(rows: Sequence[ExecutionSnapshot]) -> str | None:
    found = {r.md5 for snap in rows for r in snap.inputs if r.kind == ArtifactKind.ENVIRONMENT}
    if not found:
        return None
    return ", ".join(f"`{short_md5(md5)}`" for md5 in sorted(found))


def _is_file(record: ArtifactRecord) -> bool:
    # A metrics file declared as an output has a content md5; logged execution metrics do not.
    return record.kind in _FILE_KINDS or (record.kind == ArtifactKind.METRICS and _MD5.match(record.md5) is not None)


def _last_output(rows: Sequence[ExecutionSnapshot]) -> str | None:
    """The output whose lineage tells the run's story: the last model, else the last file."""
    outputs = [r for snap in rows for r in snap.outputs if _is_file(r)]
    models = [r for r in outputs if r.kind == ArtifactKind.MODEL]
    chosen = (models or outputs)[-1:]
    return chosen[0].path if chosen else None


def render(
    flow_run_name: str,
    flow_run_id: str,
    store: str,
    snapshots: Iterable[ExecutionSnapshot],
    store_argument: str | None = None,
) -> str:
    """The markdown summary of ``snapshots``.

    Args:
        flow_run_name: Name of the flow run.
        flow_run_id: Id of the flow run.
        store: The metadata store as shown to the reader (no password).
        snapshots: The executions recorded in the flow run.
        store_argument: ``--store`` value of the lineage command (default: ``store``).
    """
    rows = sorted(snapshots, key=lambda s: s.execution.id)
    pipelines = sorted({snap.pipeline.name for snap in rows})
    counts = {state: sum(1 for s in rows if s.execution.state is state) for state in _STATES}
    tally = ", ".join(f"{n} {state!s}" for state, n in counts.items() if n) or "no execution"
    lines = [
        f"# CMF lineage of flow run `{_cell(flow_run_name)}`",
        "",
        f"Pipeline {', '.join(f'`{_cell(p)}`' for p in pipelines) or '-'}: {tally}.  ",
        f"Metadata store `{_cell(store)}`; flow run `{flow_run_id}`.",
    ]
    environment = _environment(rows)
    if environment:
        lines[-1] += "  "
        lines.append(f"Python environment {environment} (an input of every execution, left out below).")
    lines.append("")
    if not rows:
        lines.append("No execution was recorded in this flow run.")
        return "\n".join(lines) + "\n"
    several = len(pipelines) > 1

    def stage_of(snap: ExecutionSnapshot) -> str:
        return _cell(snap.stage.name if several else snap.stage.name.rsplit("/", 1)[-1])

    lines += [
        "| Id | Stage | State | Inputs (md5) | Outputs (md5) |",
        "|---:|---|---|---|---|",
    ]
    for snap in rows:
        lines.append(
            f"| {snap.execution.id} | {stage_of(snap)} | {_state(snap)} "
            f"| {_files(snap.inputs)} | {_files(snap.outputs)} |"
        )
    metrics = [(snap, found) for snap in rows if (found := _metrics(snap.outputs))]
    if metrics:
        lines += ["", "Metrics:", ""]
        lines += [f"- {stage_of(snap)} ({snap.execution.id}): {'; '.join(found)}" for snap, found in metrics]
    target = _last_output(rows)
    if target:
        command = ["cmf-orchestrate", "lineage", target, "--store", store_argument or store]
        lines += [
            "",
            f"Lineage of `{_cell(target)}` in a terminal, or as a page with `--format html -o lineage.html`:",
            "",
            "```sh",
            shlex.join(command),
            "```",
        ]
    return "\n".join(lines) + "\n"
