"""Flow-level defaults and the end-of-flow lineage summary.

``@cmf_flow`` is :func:`prefect.flow` plus two CMF options: a pipeline name and a
config that the flow's ``@cmf_task`` tasks use unless they set their own. At the end of
a flow run, a markdown artifact lists the executions recorded in it. The summary is
built by querying the store for the executions whose ``flow_run_id`` fact is the flow
run's id, so it lists the task runs of every process: threads, process pools, Dask or
Ray workers.

Which flow runs get the summary hook (:class:`~cmf_orchestrate.prefect._compat.ConditionalHooks`):

- every run of a ``@cmf_flow``: it declares that its tasks record, wherever they run;
- a run of a plain ``@flow`` that called, submitted or mapped a ``@cmf_task``: those
  calls happen in the flow's process even when the task runner (Dask, Ray, a process
  pool) runs the task elsewhere. A run of a plain ``@flow`` in which no ``@cmf_task``
  was called gets no hook of ours.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, cast, overload

from prefect import Flow
from prefect import flow as prefect_flow
from prefect.context import FlowRunContext

from cmf_orchestrate.errors import CmfError, InvalidArgumentError
from cmf_orchestrate.prefect import _ledger, _summary
from cmf_orchestrate.prefect._compat import with_conditional_hook
from cmf_orchestrate.prefect._config import ConfigSource, settings_from, validate_source

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun, State

    from cmf_orchestrate.settings import CmfSettings

__all__ = ["FlowDefaults", "cmf_flow", "flow_defaults", "publish_summary"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class FlowDefaults:
    """CMF options of a flow, used by its tasks unless they set their own.

    Attributes:
        pipeline: Pipeline name replacing the flow's name.
        config: Block name, block or settings the flow's tasks record with.
    """

    pipeline: str | None = None
    config: ConfigSource | None = None


# Keyed by the user's function, which ``Flow.with_options`` copies are built on too.
_defaults: weakref.WeakKeyDictionary[Callable[..., Any], FlowDefaults] = weakref.WeakKeyDictionary()
_hooks_lock = threading.Lock()


def flow_defaults(flow: Flow[Any, Any] | None = None) -> FlowDefaults | None:
    """The CMF options of ``flow`` (default: the running flow), if it has any."""
    if flow is None:
        ctx = FlowRunContext.get()
        if ctx is None or ctx.flow is None:
            return None
        flow = ctx.flow
    try:
        return _defaults.get(flow.fn)
    except TypeError:  # an unhashable or non-weakrefable callable
        return None


def publish_summary(flow: Flow[Any, Any], flow_run: FlowRun, state: State[Any]) -> None:
    """Flow state hook: publish the executions the flow run recorded as a markdown artifact.

    Installed automatically (on completion, failure, crash and cancellation) on
    ``@cmf_flow`` flows and on a plain flow once it calls, submits or maps a ``@cmf_task``; it
    can also be listed explicitly in ``on_completion`` / ``on_failure``. It queries the
    flow's store (its ``@cmf_flow(config=...)``, else the environment's) and any other
    store a task of the run recorded into in this process, for the executions of this
    flow run; one artifact per store that holds some. Failures are logged, never
    raised: a summary never changes the outcome of a flow run.
    """
    from cmf_orchestrate.prefect import _readback

    scope = str(flow_run.id)
    for settings in _stores_of(flow, flow_run.name, scope):
        path = settings.location.path
        if settings.location.backend == "sqlite" and (path is None or not path.is_file()):
            continue  # nothing was recorded there, and reading must not create it
        try:
            snapshots = _readback.executions_of_flow_run(settings, scope)
            if not snapshots:
                continue
            markdown = _summary.render(
                flow_run.name, scope, settings.location.redacted, snapshots, store_argument=_store_argument(settings)
            )
            pipeline = snapshots[0].pipeline.name
            _readback.publish_markdown(
                key=_summary.artifact_key(pipeline),
                markdown=markdown,
                description=f"CMF executions of flow run {flow_run.name} ({state.name})",
                flow_run_id=flow_run.id,
            )
        except CmfError as exc:  # the store is unavailable, for example: said in one line
            logger.warning("CMF summary of flow run %s from %s: %s", flow_run.name, settings.location.redacted, exc)
        except Exception:
            # A summary is a report: it must not turn a finished flow run into a crash.
            logger.exception("CMF summary of flow run %s could not be published", flow_run.name)


def _stores_of(flow: Flow[Any, Any], flow_run_name: str, scope: str) -> list[CmfSettings]:
    """The stores that may hold executions of flow run ``scope``, each once.

    The flow's settings first: its ``@cmf_flow(config=...)``, else the environment's (the
    settings of its tasks that set no config of their own, wherever they ran); then the
    stores its tasks noted in this process.
    """
    stores: list[CmfSettings] = []
    defaults = flow_defaults(flow)
    source = defaults.config if defaults is not None else None
    try:
        stores.append(settings_from(source, scope))
    except CmfError as exc:
        # A config the flow names is the user's to fix; the environment matters only
        # when the flow's tasks fell back to it, and then they reported it already.
        logger.log(
            logging.WARNING if source is not None else logging.DEBUG,
            "CMF summary of flow run %s: %s",
            flow_run_name,
            exc,
        )
    stores.extend(_ledger.take_stores(scope))
    unique: dict[str, CmfSettings] = {}
    for settings in stores:
        unique.setdefault(settings.location.identity, settings)
    return list(unique.values())


def _summary_wanted(flow: Flow[Any, Any]) -> Callable[[], bool]:
    """Whether the running flow run has a summary to publish (see :func:`install_summary`)."""

    def wanted() -> bool:
        ctx = FlowRunContext.get()
        if ctx is None or ctx.flow_run is None:
            return False
        if flow_defaults(flow) is not None:
            return True  # a @cmf_flow: its tasks may have recorded in other processes
        return _ledger.has_stores(str(ctx.flow_run.id))

    return wanted


def _store_argument(settings: CmfSettings) -> str:
    """The store as the command line takes it: a SQLite path, or a server URL without password."""
    location = settings.location
    if location.backend == "sqlite":
        return str(location.path)
    user = f"{location.user}@" if location.user else ""
    return f"{location.backend}://{user}{location.host}:{location.port}/{location.database}"


def install_summary(flow: Flow[Any, Any]) -> None:
    """Make :func:`publish_summary` a hook of every final state of ``flow`` (once).

    Called on every ``@cmf_flow`` when it is built, and on a plain flow when it calls,
    submits or maps one of its ``@cmf_task`` tasks. The hook runs in every run of a
    ``@cmf_flow``, and in the runs of a plain flow that called a recorded task (see the
    module's documentation).
    """
    wanted = _summary_wanted(flow)
    with _hooks_lock:
        for attribute in ("on_completion_hooks", "on_failure_hooks", "on_crashed_hooks", "on_cancellation_hooks"):
            hooks = getattr(flow, attribute)
            setattr(flow, attribute, with_conditional_hook(hooks, publish_summary, wanted))


def _build(
    fn: Callable[P, R], pipeline: str | None, config: ConfigSource | None, flow_kwargs: dict[str, Any]
) -> Flow[P, R]:
    if isinstance(fn, Flow):
        raise InvalidArgumentError(
            f"cmf_flow: {fn.name!r} is already a Prefect flow; apply @cmf_flow to the plain function instead of @flow"
        )
    created = cast("Flow[P, R]", prefect_flow(**flow_kwargs)(fn))
    _defaults[created.fn] = FlowDefaults(pipeline=pipeline, config=validate_source(config))
    install_summary(created)
    return created


@overload
def cmf_flow(__fn: Callable[P, R], /) -> Flow[P, R]: ...


@overload
def cmf_flow(
    __fn: Literal[None] = None,
    /,
    *,
    pipeline: str | None = None,
    config: ConfigSource | None = None,
    **flow_kwargs: Any,
) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def cmf_flow(
    __fn: Callable[P, R] | None = None,
    /,
    *,
    pipeline: str | None = None,
    config: ConfigSource | None = None,
    **flow_kwargs: Any,
) -> Flow[P, R] | Callable[[Callable[P, R]], Flow[P, R]]:
    """A Prefect flow with CMF defaults for its recorded tasks.

    Works bare and with arguments; every keyword of :func:`prefect.flow` passes through.
    The result is an ordinary :class:`prefect.Flow` (``with_options`` copies keep the
    defaults) that publishes the lineage summary artifact at the end of each run.

    Args:
        __fn: The function, when used bare.
        pipeline: Pipeline name replacing the flow's name for its tasks.
        config: Block name, :class:`~cmf_orchestrate.prefect.CmfConfig` or
            :class:`~cmf_orchestrate.CmfSettings` used by tasks without their own.
        **flow_kwargs: Options of :func:`prefect.flow`.

    Returns:
        A :class:`prefect.Flow` (or, with arguments, a decorator making one).

    Raises:
        InvalidArgumentError: The decorated object is a Prefect flow already.
        ConfigError: ``config`` is of an unsupported type.
    """
    if __fn is not None:
        return _build(__fn, pipeline, config, flow_kwargs)

    def decorator(fn: Callable[P, R]) -> Flow[P, R]:
        return _build(fn, pipeline, config, flow_kwargs)

    return decorator
