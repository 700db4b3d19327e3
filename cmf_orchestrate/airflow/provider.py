"""Provider metadata read by Airflow's ``ProvidersManager``.

The ``apache_airflow_provider`` entry point of this distribution points at
:func:`get_provider_info`. Airflow reads it to register the ``@task.cmf``
TaskFlow decorator, the :class:`~cmf_orchestrate.airflow.CmfHook` and its
``cmf`` connection type. This module must stay importable without Airflow and
cheap to import: Airflow calls it while it builds its provider registry.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

__all__ = ["get_provider_info"]

_PACKAGE = "cmf-orchestrate"

#: How the connection form shows a ``cmf`` connection (host and port hold the Neo4j address).
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": ["schema"],
    "relabeling": {"host": "Neo4j URI or host", "login": "Neo4j user", "password": "Neo4j password"},
    "placeholders": {
        "host": "bolt://neo4j.example.com:7687 (empty: no graph)",
        "extra": '{"store": "postgresql://cmf@db:5432/mlmd", "project_root": "/srv/ml", "graph": true}',
    },
}


def _version() -> str:
    try:
        return metadata.version(_PACKAGE)
    except metadata.PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0"


def get_provider_info() -> dict[str, Any]:
    """Describe this package as an Airflow provider.

    Returns:
        The provider description in the schema Airflow validates
        (``provider_info.schema.json``): the hook, its connection type and the
        ``cmf`` task decorator.
    """
    return {
        "package-name": _PACKAGE,
        "name": "Common Metadata Framework (CMF)",
        "description": (
            "Records every task run in ML Metadata with DVC content hashes of its declared "
            "inputs and outputs: CmfOperator, the @task.cmf decorator and the CMF hook.\n"
        ),
        "versions": [_version()],
        "integrations": [
            {
                "integration-name": "Common Metadata Framework",
                "external-doc-url": "https://github.com/HewlettPackard/cmf",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "Common Metadata Framework",
                "python-modules": ["cmf_orchestrate.airflow.operator"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Common Metadata Framework",
                "python-modules": ["cmf_orchestrate.airflow.hook"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "cmf_orchestrate.airflow.hook.CmfHook",
                "connection-type": "cmf",
                "hook-name": "Common Metadata Framework",
                "ui-field-behaviour": {
                    "hidden-fields": list(UI_FIELD_BEHAVIOUR["hidden_fields"]),
                    "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
                    "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
                },
            }
        ],
        "task-decorators": [
            {"class-name": "cmf_orchestrate.airflow.decorator.cmf_task", "name": "cmf"},
        ],
    }
