"""Recorded times of contexts and events written elsewhere before.

A store merged from another one (``cmf-orchestrate import``) keeps when things happened
there: the creation and update time of the contexts it creates, and the time of each
event. The store's writers stamp new rows with the current time; these updates restore
the recorded ones, in the caller's transaction when one is open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, update

from cmf_orchestrate.records import EventType
from cmf_orchestrate.store import _schema as s
from cmf_orchestrate.store._store import _EVENT_CODES

if TYPE_CHECKING:
    from cmf_orchestrate.store._store import MetadataStore

__all__ = ["restore_times"]


def restore_times(
    store: MetadataStore,
    *,
    contexts: Mapping[int, tuple[int, int]] | None = None,
    events: Sequence[tuple[int, int, EventType, int]] = (),
) -> None:
    """Set the recorded times of contexts and events.

    Args:
        store: The store holding them.
        contexts: Context id -> (creation time, last update time), in ms since the epoch.
        events: ``(execution id, artifact id, event type, time in ms)`` of each event.

    Raises:
        StoreUnavailableError: The store cannot be reached.
        StoreError: The store refused the update; nothing of it was written.
    """
    context_rows = [{"cid": i, "created": c, "updated": u} for i, (c, u) in (contexts or {}).items()]
    event_rows = [{"eid": e, "aid": a, "code": _EVENT_CODES[t], "ms": ms} for e, a, t, ms in events]
    if not context_rows and not event_rows:
        return
    c, ev = s.CONTEXT, s.EVENT

    def put(conn: Connection) -> None:
        if context_rows:
            conn.execute(
                update(c)
                .where(c.c.id == bindparam("cid"))
                .values(
                    create_time_since_epoch=bindparam("created"), last_update_time_since_epoch=bindparam("updated")
                ),
                context_rows,
            )
        if event_rows:
            conn.execute(
                update(ev)
                .where(
                    ev.c.execution_id == bindparam("eid"),
                    ev.c.artifact_id == bindparam("aid"),
                    ev.c.type == bindparam("code"),
                )
                .values(milliseconds_since_epoch=bindparam("ms")),
                event_rows,
            )

    store._write("restoring recorded times", put)
    if context_rows:
        # Contexts this process remembers are read again, with their restored times.
        restored = {int(r["cid"]) for r in context_rows}
        with store._lock:
            stale: list[Any] = [k for k, v in store._contexts.items() if v.id in restored]
            for key in stale:
                del store._contexts[key]
