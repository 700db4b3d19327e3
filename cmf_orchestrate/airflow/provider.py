"""Provider metadata read by Airflow's ``ProvidersManager``.

The ``apache_airflow_provider`` entry point of this distribution points at
:func:`get_provider_info`. Airflow reads it to register the ``@task.cmf`` TaskFlow
decorator, the :class:`~cmf_orchestrate.airflow.CmfHook`, its ``cmf`` connection type and
form, and the ``[cmf]`` configuration section. This module must stay importable without
Airflow and cheap to import: Airflow calls it while it builds its provider registry.

The connection form: ``host``, ``login`` and ``password`` are Neo4j's (relabelled),
``port`` and ``schema`` are hidden (the Neo4j URI carries its port), and the CMF settings
are typed fields of their own, kept in the connection's ``extra``. Airflow 3.2 and later
read the form from :func:`get_provider_info` (``conn-fields``, ``ui-field-behaviour``);
3.0 and 3.1 from the hook's ``get_connection_form_widgets`` and
``get_ui_field_behaviour``, which build the same form from :data:`CONNECTION_FIELDS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal

from cmf_orchestrate._links import CMF_REPOSITORY_URL, documentation_url

__all__ = ["CONFIG_SECTION", "CONNECTION_FIELDS", "UI_FIELD_BEHAVIOUR", "ConnectionField", "get_provider_info"]

_PACKAGE = "cmf-orchestrate"
_INTEGRATION = "Common Metadata Framework"

#: The ``airflow.cfg`` section of this provider.
CONFIG_SECTION = "cmf"


@dataclass(frozen=True)
class ConnectionField:
    """One CMF setting of the ``cmf`` connection form, kept in the connection's ``extra``."""

    name: str
    label: str
    kind: Literal["string", "boolean"]
    description: str
    placeholder: str = ""
    #: The values a string field accepts (the form offers them as a choice).
    choices: tuple[str, ...] = ()


#: The typed fields of the connection form, in form order. Settings the form leaves empty
#: come from the environment and the project file (``CmfSettings.from_env``).
CONNECTION_FIELDS: tuple[ConnectionField, ...] = (
    ConnectionField(
        "store",
        "Metadata store",
        "string",
        "ML Metadata store: a path relative to the project root, sqlite:///path, "
        "postgresql://user@host:port/db or mysql://user@host:port/db. Default: CMF_STORE, else the project "
        "file, else mlmd in the project root.",
        "postgresql://cmf@metadata-db:5432/cmf",
    ),
    ConnectionField(
        "project_root",
        "Project root",
        "string",
        "Folder that declared paths are relative to; it holds the DVC repository and cache. "
        "Default: CMF_PROJECT_ROOT, else the task's working directory.",
        "/srv/ml-project",
    ),
    ConnectionField(
        "graph",
        "Mirror into Neo4j",
        "boolean",
        "Mirror every finished execution into the Neo4j server of the standard fields (Neo4j URI, user, "
        "password). Default: on when a Neo4j URI is set.",
    ),
    ConnectionField(
        "pipeline",
        "Pipeline name",
        "string",
        "Pipeline name replacing the DAG id. Default: the DAG id.",
        "nightly-training",
    ),
    ConnectionField(
        "strict_outputs",
        "Strict outputs",
        "boolean",
        "Fail an attempt whose declared output it did not write (default: record it as declared, not produced).",
    ),
    ConnectionField(
        "remote",
        "DVC remote",
        "string",
        "DVC remote URL shared by every worker: a path, s3://bucket/prefix or any scheme DVC supports. "
        "Completing a task pushes its outputs there; an input missing on a worker is fetched from there. "
        "A password in the URL is masked in task logs. Default: CMF_REMOTE, else the project file, else none.",
        "s3://ml-artifacts/cmf",
    ),
    ConnectionField(
        "inputs",
        "Declared inputs",
        "string",
        "With a remote, an input whose local bytes differ from its latest recorded version is replaced by "
        "that version (recorded, the default), or used as it is (local).",
        "recorded",
        ("recorded", "local"),
    ),
    ConnectionField(
        "reuse",
        "Reuse earlier runs",
        "boolean",
        "Every task reuses an earlier COMPLETE execution with the same inputs, parameters, code and "
        "environment instead of running again (default: off; a task can turn it on for itself).",
    ),
)

#: How the connection form shows the standard fields of a ``cmf`` connection.
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": ["port", "schema"],
    "relabeling": {"host": "Neo4j URI", "login": "Neo4j user", "password": "Neo4j password"},
    "placeholders": {
        "host": "bolt://neo4j.example.com:7687 (empty: no graph)",
        "login": "neo4j",
        "password": "Neo4j password",
        **{f.name: f.placeholder for f in CONNECTION_FIELDS if f.placeholder},
    },
}

_OPTIONS: dict[str, dict[str, Any]] = {
    "conn_id": {
        "description": "The Airflow connection (type cmf) that operators without a cmf_conn_id record with. "
        "When it does not exist, settings come from the environment (CMF_STORE, CMF_PROJECT_ROOT, ...).\n",
        "version_added": None,
        "type": "string",
        "example": "cmf_prod",
        "default": "cmf_default",
    },
    "library_logs": {
        "description": "Let the log records of the libraries that record a task (DVC, SQLAlchemy, the Neo4j "
        "driver, ...) into the task log. Off: the task log holds one line per execution, and errors "
        "reach it as the task's own exception.\n",
        "version_added": None,
        "type": "boolean",
        "example": "True",
        "default": "False",
    },
}


def _version() -> str:
    try:
        return metadata.version(_PACKAGE)
    except metadata.PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0"


def _conn_fields() -> dict[str, Any]:
    # Airflow 3.2+ shows no placeholder in an extra field (schema "examples" become a list
    # of suggestions under a generic "Start typing" placeholder): the example goes in the
    # description shown under the field.
    return {
        f.name: {
            "label": f.label,
            "description": f"{f.description} Example: {f.placeholder}" if f.placeholder else f.description,
            "schema": {"type": [f.kind, "null"], **({"enum": [*f.choices, None]} if f.choices else {})},
        }
        for f in CONNECTION_FIELDS
    }


def get_provider_info() -> dict[str, Any]:
    """Describe this package as an Airflow provider.

    Returns:
        The provider description in the schema Airflow validates
        (``provider_info.schema.json``): documentation URL, hook, connection type and
        form, the ``cmf`` task decorator and the ``[cmf]`` configuration section.
    """
    return {
        "package-name": _PACKAGE,
        "name": _INTEGRATION,
        "description": (
            "Records every task run in ML Metadata with DVC content hashes of its declared "
            "inputs and outputs: CmfOperator, the @task.cmf decorator and the CMF hook.\n"
        ),
        "documentation-url": documentation_url(),
        "versions": [_version()],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": CMF_REPOSITORY_URL,
                "tags": ["software"],
            }
        ],
        "operators": [{"integration-name": _INTEGRATION, "python-modules": ["cmf_orchestrate.airflow.operator"]}],
        "hooks": [{"integration-name": _INTEGRATION, "python-modules": ["cmf_orchestrate.airflow.hook"]}],
        "connection-types": [
            {
                "hook-class-name": "cmf_orchestrate.airflow.hook.CmfHook",
                "connection-type": "cmf",
                "hook-name": _INTEGRATION,
                "ui-field-behaviour": {
                    "hidden-fields": list(UI_FIELD_BEHAVIOUR["hidden_fields"]),
                    "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
                    "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
                },
                "conn-fields": _conn_fields(),
            }
        ],
        "task-decorators": [
            {"class-name": "cmf_orchestrate.airflow.decorator.cmf_task", "name": "cmf"},
        ],
        "config": {
            CONFIG_SECTION: {
                "description": "How cmf-orchestrate records Airflow task runs.\n",
                "options": {name: dict(option) for name, option in _OPTIONS.items()},
            }
        },
    }
