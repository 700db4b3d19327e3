"""Apache Airflow 3 integration: ``CmfOperator``, ``@task.cmf`` and ``CmfHook``.

The public names load Airflow lazily, on first access: Airflow imports
:mod:`cmf_orchestrate.airflow.provider` while it builds its provider registry, and
that import must not import Airflow back.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cmf_orchestrate.airflow.assets import cmf_asset
    from cmf_orchestrate.airflow.decorator import cmf_task
    from cmf_orchestrate.airflow.hook import CmfHook
    from cmf_orchestrate.airflow.operator import CmfOperator
    from cmf_orchestrate.airflow.provider import get_provider_info

__all__ = ["CmfHook", "CmfOperator", "cmf_asset", "cmf_task", "get_provider_info"]

_HOMES = {
    "CmfHook": "cmf_orchestrate.airflow.hook",
    "CmfOperator": "cmf_orchestrate.airflow.operator",
    "cmf_asset": "cmf_orchestrate.airflow.assets",
    "cmf_task": "cmf_orchestrate.airflow.decorator",
    "get_provider_info": "cmf_orchestrate.airflow.provider",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
