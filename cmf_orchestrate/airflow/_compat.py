"""Every difference between Airflow 3.x minors, in one place.

The rest of :mod:`cmf_orchestrate.airflow` imports Airflow names from here only.
Airflow 3.0 moved the task authoring API into ``airflow.sdk``; a few helpers
(secret masking, the decorator base classes, the configuration) changed module
between 3.0 and later minors, so each is looked up in its newest home first.

``CmfOperator`` also overrides ``_do_render_template_fields(parent, template_fields,
context, jinja_env, seen_oids)``, the one rendering step that plain and mapped task
instances both go through, with that signature, in every 3.x minor (a mapped one never
calls ``render_template_fields`` on the unmapped operator).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow import __version__ as AIRFLOW_VERSION  # noqa: N812 - a constant, named as one
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import Asset, AssetAlias, BaseHook, Connection, Context

if TYPE_CHECKING:
    from airflow.sdk import conf as _conf
    from airflow.sdk.bases.decorator import DecoratedOperator, TaskDecorator, task_decorator_factory
    from airflow.sdk.exceptions import AirflowNotFoundException
    from airflow.sdk.log import mask_secret
else:
    # airflow.exceptions re-exports the Task SDK's class from 3.1 on; 3.0 defines it there.
    from airflow.exceptions import AirflowNotFoundException

    try:
        from airflow.sdk.bases.decorator import DecoratedOperator, TaskDecorator, task_decorator_factory
    except ImportError:  # Airflow 3.0 kept them in airflow.decorators.base
        from airflow.decorators.base import DecoratedOperator, TaskDecorator, task_decorator_factory
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # Airflow 3.0
        from airflow.sdk.execution_time.secrets_masker import mask_secret
    try:
        from airflow.sdk import conf as _conf
    except ImportError:  # Airflow 3.0 and 3.1: the core's configuration
        from airflow.configuration import conf as _conf

__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_VERSION_TUPLE",
    "AirflowNotFoundException",
    "Asset",
    "AssetAlias",
    "BaseHook",
    "Connection",
    "Context",
    "DecoratedOperator",
    "PythonOperator",
    "TaskDecorator",
    "config_flag",
    "config_value",
    "configured_executors",
    "mask_secret",
    "task_decorator_factory",
]


def _version_tuple(version: str) -> tuple[int, int, int]:
    parts: list[int] = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit()) or "0"
        parts.append(int(digits))
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


#: The running Airflow version as ``(major, minor, micro)``.
AIRFLOW_VERSION_TUPLE = _version_tuple(AIRFLOW_VERSION)


def config_value(section: str, key: str, fallback: str) -> str:
    """An ``airflow.cfg`` option (or its ``AIRFLOW__SECTION__KEY`` variable), else ``fallback``."""
    from airflow.exceptions import AirflowConfigException

    try:
        return str(_conf.get(section, key, fallback=fallback))
    except AirflowConfigException:
        return fallback


def configured_executors() -> list[str]:
    """Class names of the executors ``[core] executor`` names, in order.

    Airflow 2.10 and later take a comma-separated list; an entry is a core executor's name
    (``CeleryExecutor``), a module path (``my.module.MyExecutor``) or ``alias:module.path``,
    and Airflow 3.1 and later prefix a team's list with ``team=`` and separate teams by ``;``.
    """
    names: list[str] = []
    for team in config_value("core", "executor", "").split(";"):
        for entry in team.rpartition("=")[2].split(","):
            name = entry.rpartition(":")[2].strip().rpartition(".")[2]
            if name:
                names.append(name)
    return names


def config_flag(section: str, key: str, fallback: bool) -> bool:
    """A boolean ``airflow.cfg`` option, else ``fallback``."""
    from airflow.exceptions import AirflowConfigException

    try:
        return bool(_conf.getboolean(section, key, fallback=fallback))
    except (AirflowConfigException, ValueError):
        return fallback


class XComCodec:
    """A task's return value kept as Airflow keeps an XCom value: Airflow's serde, as JSON."""

    name = "airflow-xcom"

    def dumps(self, value: Any) -> bytes:
        """The value as XCom's JSON; raises for a value XCom cannot hold."""
        serialize, _ = _serde()
        return json.dumps(serialize(value), sort_keys=True).encode()

    def loads(self, data: bytes) -> Any:
        """The value back, as a downstream task would read the XCom."""
        _, deserialize = _serde()
        return deserialize(json.loads(data))


def _serde() -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    try:  # Airflow 3.1 and later
        from airflow.sdk.serde import deserialize, serialize
    except ImportError:  # Airflow 3.0
        from airflow.serialization.serde import deserialize, serialize  # type: ignore[no-redef,import-not-found,unused-ignore]
    return serialize, deserialize


def task_placement(dag: Any, task_group: Any, task_id: str) -> tuple[Any, str]:
    """The DAG a task defined now belongs to, and its full id in its task group (as ``partial`` makes them)."""
    from airflow.sdk.definitions._internal.contextmanager import DagContext, TaskGroupContext

    dag = dag or DagContext.get_current()
    group = task_group or (TaskGroupContext.get_current(dag) if dag else None)
    return dag, group.child_id(task_id) if group else task_id
