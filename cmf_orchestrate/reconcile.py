"""Executions left RUNNING by a worker that died become FAILED (reason ``abandoned``)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

import pendulum

from cmf_orchestrate.records import ExecutionRecord, ExecutionState
from cmf_orchestrate.settings import CmfSettings
from cmf_orchestrate.store import MetadataStore, open_store

__all__ = ["ReconcileReport", "mark_abandoned", "reconcile"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconcileReport:
    """What a reconcile pass did."""

    abandoned: tuple[int, ...]
    alive: tuple[int, ...]
    skipped: tuple[int, ...]


def mark_abandoned(store: MetadataStore, execution: ExecutionRecord, why: str) -> ExecutionRecord:
    """Mark a RUNNING execution FAILED with reason ``abandoned``."""
    logger.warning("execution %s (%s) was abandoned: %s", execution.id, execution.name, why)
    return store.update_execution(
        execution.id,
        state=ExecutionState.FAILED,
        custom_properties={
            "cmf.state_reason": "abandoned",
            "cmf.error_type": "Abandoned",
            "cmf.error_message": why,
            "cmf.end_time": pendulum.now("UTC").isoformat(),
        },
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reconcile(
    settings: CmfSettings,
    older_than: pendulum.Duration | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReconcileReport:
    """Fail RUNNING executions whose worker is gone.

    A RUNNING execution recorded on this host whose process no longer exists is
    abandoned. One whose process is alive, or that ran on another host, is left alone
    unless it started longer ago than ``older_than``.

    Raises:
        StoreUnavailableError: The metadata store cannot be reached.
    """
    store = open_store(settings.location)
    running = store.executions(state="RUNNING")
    host = socket.gethostname()
    now = pendulum.now("UTC")
    abandoned: list[int] = []
    alive: list[int] = []
    skipped: list[int] = []
    for index, execution in enumerate(running, 1):
        started_ms = execution.create_time_ms
        old = older_than is not None and (now.int_timestamp * 1000 - started_ms) > older_than.total_seconds() * 1000
        same_host = execution.fact("hostname") == host
        pid = execution.fact("pid")
        if old:
            mark_abandoned(store, execution, f"still RUNNING after {older_than}")
            abandoned.append(execution.id)
        elif same_host and isinstance(pid, int) and pid != os.getpid() and not _pid_alive(pid):
            mark_abandoned(store, execution, f"its worker process {pid} on {host} is gone")
            abandoned.append(execution.id)
        elif same_host:
            alive.append(execution.id)
        else:
            skipped.append(execution.id)
        if progress is not None:
            progress(index, len(running))
    return ReconcileReport(tuple(abandoned), tuple(alive), tuple(skipped))
