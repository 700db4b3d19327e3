"""Which stores the task runs of each flow run recorded into, in this process.

The end-of-flow summary reads the executions of the flow run back from those stores
(plus the flow's default store), so that it lists what other processes recorded too.
"""

from __future__ import annotations

import threading

from cmf_orchestrate.settings import CmfSettings

_lock = threading.Lock()
_stores: dict[str, dict[str, CmfSettings]] = {}


def note_store(scope: str, settings: CmfSettings) -> None:
    """Remember that a task of flow run ``scope`` records into ``settings``' store."""
    if not scope:
        return
    identity = settings.location.identity
    with _lock:
        _stores.setdefault(scope, {}).setdefault(identity, settings)


def take_stores(scope: str) -> list[CmfSettings]:
    """The stores noted for flow run ``scope``, forgetting them."""
    with _lock:
        return list(_stores.pop(scope, {}).values())


def has_stores(scope: str) -> bool:
    """Whether a task of flow run ``scope`` recorded anything in this process."""
    with _lock:
        return bool(_stores.get(scope))
