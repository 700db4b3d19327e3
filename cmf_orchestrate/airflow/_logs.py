"""What a recorded task writes to its Airflow task log.

One INFO line per execution (its id, state, and inputs and outputs with short md5s),
and nothing from the libraries that do the recording: DVC, SQLAlchemy, ML Metadata's
absl logger, the Neo4j driver and their helpers log through the standard ``logging``
tree, which the task log collects, so while a try is being recorded they are held back
(unless ``[cmf] library_logs`` is on). The task's own code runs with the levels as they
were configured.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from cmf_orchestrate.records import ArtifactKind

if TYPE_CHECKING:
    from cmf_orchestrate.records import ArtifactRecord, ExecutionRecord

#: Loggers of the libraries cmf-orchestrate records through.
LIBRARY_LOGGERS = (
    "absl",
    "dulwich",
    "dvc",
    "dvc_data",
    "dvc_objects",
    "filelock",
    "fsspec",
    "git",
    "neo4j",
    "scmrepo",
    "sqlalchemy",
    "urllib3",
)

_SILENT = logging.CRITICAL + 1
_MD5 = re.compile(r"^[0-9a-f]{32}(\.dir)?$")
SHORT_MD5 = 8

# Levels the library loggers had before the innermost quiet_libraries() block (an Airflow
# task process runs one task at a time; dag.test() runs them one after the other).
_saved: list[dict[str, int]] = []


def _library_loggers() -> list[str]:
    # Children with a level of their own (Airflow sets sqlalchemy.engine to WARNING) would
    # not inherit a level set on their parent only.
    existing = [
        name
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and name.split(".", 1)[0] in LIBRARY_LOGGERS
    ]
    return sorted({*LIBRARY_LOGGERS, *existing})


def _set_levels(levels: dict[str, int]) -> None:
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@contextmanager
def quiet_libraries(enabled: bool = True) -> Iterator[None]:
    """Hold back every record of :data:`LIBRARY_LOGGERS` (and their children) while the block runs.

    Args:
        enabled: ``False`` leaves the logging levels alone (``[cmf] library_logs``).
    """
    if not enabled:
        yield
        return
    saved = {name: logging.getLogger(name).level for name in _library_loggers()}
    _saved.append(saved)
    _set_levels(dict.fromkeys(saved, _SILENT))
    try:
        yield
    finally:
        _saved.pop()
        _set_levels(saved)


@contextmanager
def user_code() -> Iterator[None]:
    """Inside :func:`quiet_libraries`: the task's own code logs as configured."""
    if not _saved:
        yield
        return
    saved = _saved[-1]
    _set_levels(saved)
    try:
        yield
    finally:
        _set_levels(dict.fromkeys(saved, _SILENT))


def short_md5(md5: str) -> str:
    """The first 8 hex digits of an md5 (``.dir`` kept for a directory)."""
    return md5[:SHORT_MD5] + (".dir" if md5.endswith(".dir") else "")


def _describe(record: ArtifactRecord) -> str:
    name = record.properties.get("metrics_name") or record.custom_properties.get("metrics_name")
    if record.kind == ArtifactKind.STEP_METRICS:
        return f"{name or record.path} (step metrics {short_md5(record.md5)})"
    if record.kind == ArtifactKind.METRICS and not _MD5.match(record.md5):
        return f"{name or record.path} (metrics)"  # logged values, no file
    return f"{record.path} ({short_md5(record.md5)})"


def _files(records: Iterable[ArtifactRecord]) -> str:
    return ", ".join(_describe(r) for r in records if r.kind != ArtifactKind.ENVIRONMENT) or "-"


def execution_line(
    execution: ExecutionRecord,
    inputs: Iterable[ArtifactRecord],
    outputs: Iterable[ArtifactRecord],
) -> str:
    """The task log's line about one execution."""
    line = f"CMF execution {execution.id} {execution.state!s}: inputs {_files(inputs)}; outputs {_files(outputs)}"
    error = execution.fact("error_type")
    if error:
        line += f"; {error}: {execution.fact('error_message', '')}"
    reason = execution.fact("state_reason")
    if reason:
        line += f" ({reason})"
    return line
