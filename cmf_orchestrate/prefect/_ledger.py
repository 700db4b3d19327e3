"""Which stores the task runs of each flow run recorded into, in this process.

The end-of-flow summary queries the store for the executions of the flow run: the
flow's own store and, through this ledger, any other store (a task's own ``config``)
that a task run of the flow recorded into in the flow's process. It is what tells a
plain ``@flow`` that it has something to summarise. Task runs in other processes
(Dask, Ray, process pools) note their stores in those processes, where nobody reads
them: the ledger keeps only the latest flow runs, so such a worker does not grow.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from cmf_orchestrate.settings import CmfSettings

#: Flow runs remembered per process; older ones are forgotten first.
MAX_FLOW_RUNS = 256

_lock = threading.Lock()
_stores: OrderedDict[str, dict[str, CmfSettings]] = OrderedDict()


def note_store(scope: str, settings: CmfSettings) -> None:
    """Remember that a task of flow run ``scope`` records into ``settings``' store."""
    if not scope:
        return
    identity = settings.location.identity
    with _lock:
        _stores.setdefault(scope, {}).setdefault(identity, settings)
        _stores.move_to_end(scope)
        while len(_stores) > MAX_FLOW_RUNS:
            _stores.popitem(last=False)


def take_stores(scope: str) -> list[CmfSettings]:
    """The stores noted for flow run ``scope``, forgetting them."""
    with _lock:
        return list(_stores.pop(scope, {}).values())


def has_stores(scope: str) -> bool:
    """Whether a task of flow run ``scope`` recorded anything in this process."""
    with _lock:
        return bool(_stores.get(scope))
