"""Translation of an Airflow task instance's run context into a core :class:`RunInfo`."""

from __future__ import annotations

import inspect
import logging
import os
import threading
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cmf_orchestrate.airflow._compat import AirflowNotFoundException, Asset, config_value, configured_executors
from cmf_orchestrate.airflow.assets import cmf_asset
from cmf_orchestrate.artifacts import ArtifactSpec, Dataset
from cmf_orchestrate.errors import InvalidArgumentError
from cmf_orchestrate.facts import RunInfo, callable_name, code_fingerprint
from cmf_orchestrate.settings import CmfSettings

if TYPE_CHECKING:
    from cmf_orchestrate.airflow._compat import Context

log = logging.getLogger(__name__)

ORCHESTRATOR = "airflow"
DEFAULT_CONN_ID = "cmf_default"
#: Template variables an Airflow 3 run without a logical date (a manual run) lacks.
LOGICAL_DATE_VARIABLES = frozenset(
    {
        "logical_date",
        "ds",
        "ds_nodash",
        "ts",
        "ts_nodash",
        "ts_nodash_with_tz",
        "data_interval_start",
        "data_interval_end",
        "prev_data_interval_start_success",
        "prev_data_interval_end_success",
    }
)


def declarations(values: object, argument: str) -> list[ArtifactSpec]:
    """Normalise an ``inputs``/``outputs`` argument to a list of declarations.

    A plain string is taken as a :class:`Dataset` path.

    Raises:
        InvalidArgumentError: An item is neither a declaration nor a string.
    """
    if values is None:
        return []
    if isinstance(values, (str, ArtifactSpec)):
        values = [values]
    if not isinstance(values, Collection):
        raise InvalidArgumentError(f"{argument}: expected a list of artifact declarations, got {values!r}")
    result: list[ArtifactSpec] = []
    for item in values:
        if isinstance(item, str):
            result.append(Dataset(item))
        elif isinstance(item, ArtifactSpec):
            result.append(item)
        else:
            raise InvalidArgumentError(
                f"{argument}: {item!r} is not an artifact declaration (Dataset, Model, Metrics, Dataslice)"
            )
    return result


def is_templated(path: str) -> bool:
    """Whether a declared path holds Jinja markup (rendered per run)."""
    return "{{" in path or "{%" in path


#: Executors whose workers run on machines (or in pods) of their own, each with its own files.
DISTRIBUTED_EXECUTORS = frozenset(
    {"CeleryExecutor", "KubernetesExecutor", "CeleryKubernetesExecutor", "LocalKubernetesExecutor", "EdgeExecutor"}
)
_warned_lock = threading.Lock()
_warned_in: int | None = None  # the id of the process that gave the warning


def warn_if_store_not_shared(settings: CmfSettings) -> None:
    """Warn, once per process, that a SQLite store is not shared by distributed workers.

    Under Celery, Kubernetes or Edge workers every worker opens its own copy of the file,
    so the metadata of one run ends up scattered over the workers' disks.
    """
    global _warned_in  # noqa: PLW0603 - one warning per process, by design
    if settings.location.backend != "sqlite":
        return
    executor = next((name for name in configured_executors() if name in DISTRIBUTED_EXECUTORS), None)
    if executor is None:
        return
    with _warned_lock:
        if _warned_in == os.getpid():
            return
        _warned_in = os.getpid()
    log.warning(
        "CMF: the metadata store %s is a SQLite file, which %s does not share between its workers: each "
        "worker records into its own file; use a PostgreSQL or MySQL store (the `store` setting)",
        settings.location.path,
        executor,
    )


def resolve_settings(conn_id: str | None) -> CmfSettings:
    """The settings for a task run.

    ``conn_id=None`` uses the connection named by ``[cmf] conn_id`` (``cmf_default``)
    when it exists and the environment otherwise; an explicit id must name an existing
    connection. A SQLite store under an executor whose workers do not share files logs a
    warning (:func:`warn_if_store_not_shared`).

    Raises:
        ConfigError: The connection is invalid.
        airflow.sdk.exceptions.AirflowNotFoundException: An explicitly named
            connection does not exist.
    """
    from cmf_orchestrate.airflow.hook import CmfHook

    default = config_value("cmf", "conn_id", DEFAULT_CONN_ID) or DEFAULT_CONN_ID
    hook = CmfHook(conn_id or default)
    try:
        settings = hook.get_settings()
    except AirflowNotFoundException:
        if conn_id is not None:
            raise
        log.debug("no %r connection; CMF settings from the environment", default)
        settings = CmfSettings.from_env()
    warn_if_store_not_shared(settings)
    return settings


def render_failure_reason(field: str, error: BaseException, context: Mapping[str, Any]) -> str:
    """Why the template of ``field`` could not be rendered, with a hint for manual runs."""
    reason = f"the template of {field!r} cannot be rendered: {type(error).__name__}: {error}"
    missing = _undefined_name(error)
    if missing in LOGICAL_DATE_VARIABLES and context.get("logical_date") is None:
        reason += (
            f". This run has no logical date, so {missing!r} is undefined: Airflow 3 runs triggered "
            "by hand (UI, API, CLI) have none. Use a value every run has, such as "
            "{{ dag_run.run_after | ds }} or {{ run_id }}"
        )
    return reason


def _undefined_name(error: BaseException) -> str | None:
    # jinja2's UndefinedError says "'ds' is undefined" (or "... has no attribute 'x'").
    text = str(error)
    if type(error).__name__ != "UndefinedError" or not text.startswith("'"):
        return None
    name, sep, rest = text[1:].partition("'")
    return name if sep and rest.strip() == "is undefined" else None


def call_parameters(func: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The callable's arguments by parameter name (positional ones included)."""
    try:
        bound = inspect.signature(func).bind_partial(*args, **kwargs)
    except (TypeError, ValueError):
        named = {f"arg{i}": value for i, value in enumerate(args)}
        named.update(kwargs)
        return named
    named = {}
    for name, value in bound.arguments.items():
        kind = bound.signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            named.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            named.update({f"{name}{i}": item for i, item in enumerate(value)})
        else:
            named[name] = value
    return named


def task_instance_key(dag_id: str, task_id: str, run_id: str, map_index: int) -> str:
    """The identity of a task instance, the same for all its tries."""
    return f"{dag_id}/{task_id}/{run_id}/{map_index}"


_fingerprints: weakref.WeakKeyDictionary[Callable[..., Any], str] = weakref.WeakKeyDictionary()


def fingerprint(func: Callable[..., Any]) -> str:
    """The core's code fingerprint of ``func``, computed once per function object."""
    try:
        return _fingerprints[func]
    except KeyError:
        pass
    except TypeError:  # not weakly referenceable (a builtin, a bound method of a slotted class)
        return code_fingerprint(func)
    value = _fingerprints[func] = code_fingerprint(func)
    return value


def task_run_name(task_id: str, map_index: int, rendered_map_index: str | None) -> str:
    """How Airflow shows a task instance: the task id, with the map index when mapped."""
    if map_index < 0:
        return task_id
    return f"{task_id}[{rendered_map_index or map_index}]"


def build_run_info(
    *,
    context: Context,
    operator_class: str,
    func: Callable[..., Any],
    parameters: Mapping[str, Any],
    inputs: Sequence[ArtifactSpec],
    outputs: Sequence[ArtifactSpec],
    pipeline: str,
) -> RunInfo:
    """The core's description of one try of one task instance."""
    ti = context["ti"]
    map_index = int(ti.map_index if ti.map_index is not None else -1)
    facts: dict[str, Any] = {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "pipeline_run_id": ti.run_id,
        # Stable over tries: the core marks a try left RUNNING by a killed worker as abandoned.
        "task_run_id": task_instance_key(ti.dag_id, ti.task_id, ti.run_id, map_index),
        "task_run_name": task_run_name(ti.task_id, map_index, getattr(ti, "rendered_map_index", None)),
        "attempt": int(ti.try_number),
        "map_index": map_index,
        "operator": operator_class,
    }
    logical_date = context.get("logical_date")
    if logical_date is not None:
        facts["logical_date"] = _iso(logical_date)
    return RunInfo(
        orchestrator=ORCHESTRATOR,
        pipeline=pipeline,
        stage=ti.task_id,
        command=callable_name(func),
        parameters=dict(parameters),
        facts=facts,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        code_fingerprint=fingerprint(func),
    )


def _iso(value: Any) -> str:
    import pendulum

    return str(pendulum.instance(value).to_iso8601_string())


# -- assets: what a task declares to Airflow ---------------------------------------------------------


def alias_name(dag_id: str | None, task_id: str) -> str:
    """The asset alias through which a task's templated outputs are announced."""
    return f"cmf:{dag_id}.{task_id}" if dag_id else f"cmf:{task_id}"


def any_templated(declared: Iterable[ArtifactSpec]) -> bool:
    """Whether a declared path is rendered only at run time."""
    return any(is_templated(d.path) for d in declared)


def merged(existing: Any, added: Iterable[Any]) -> list[Any]:
    """``existing`` (one or a list) followed by what of ``added`` it does not hold yet."""
    result = as_list(existing)
    result += [item for item in added if item not in result]
    return result


def static_assets(declared: Iterable[ArtifactSpec]) -> list[Asset]:
    """The assets of the declared paths known when the DAG is parsed."""
    return [cmf_asset(d.path) for d in declared if not is_templated(d.path)]


def as_list(value: Any) -> list[Any]:
    """An operator argument that takes one item or a list, as a list."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]
