"""Apache Airflow 3 integration: ``CmfOperator``, ``@task.cmf`` and ``CmfHook``.

Every try of every task instance becomes one CMF execution (ML Metadata), with its
declared inputs and outputs content-hashed by DVC::

    from airflow.sdk import dag, task
    from cmf_orchestrate import Dataset, Model, current_run
    from cmf_orchestrate.airflow import CmfOperator

    @dag(schedule="@daily", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
    def get_started():
        prepare = CmfOperator(
            task_id="prepare", python_callable=prepare_fn,
            inputs=[Dataset("data/raw.csv")], outputs=[Dataset("data/{{ ds }}/train.csv")],
            op_kwargs={"ratio": 0.2}, retries=2)

        @task.cmf(inputs=[Dataset("data/{{ ds }}/train.csv")], outputs=[Model("model/rf.pkl")])
        def train(n_estimators: int = 100):
            run = current_run()  # the execution being recorded; seed-API logging
            ...

        prepare >> train()

Where to record comes from the Airflow connection ``cmf_default`` (type ``cmf``, see
:class:`CmfHook`), or another one named by ``cmf_conn_id``; without a connection, from
the environment (``CMF_STORE``, ``CMF_PROJECT_ROOT``, ...). ``@task.cmf`` is registered by
this distribution's ``apache_airflow_provider`` entry point. Declared paths are Airflow
assets too (:func:`cmf_asset`): outputs are emitted as asset events whose ``extra`` holds
the md5 and the MLMD ids.

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
