"""``@cmf_task``: a Prefect task whose every attempt is recorded in CMF.

The decorator wraps the user function and hands the wrapper to :func:`prefect.task`
with every task option unchanged, so the result is an ordinary Prefect task:
``.submit()``, ``.map()``, retries, timeouts, tags, task runners and caching behave as
with ``@task``. The wrapper translates Prefect's run context into a
:class:`~cmf_orchestrate.run.RunInfo` and runs the function inside the core run
lifecycle; it records nothing itself.
"""

from __future__ import annotations

import functools
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, cast, overload

from prefect import Task
from prefect import task as prefect_task
from prefect.context import TaskRunContext
from typing_extensions import Unpack

from cmf_orchestrate.artifacts import ArtifactSpec
from cmf_orchestrate.errors import CmfError, InvalidArgumentError
from cmf_orchestrate.facts import RunInfo, callable_name, code_fingerprint
from cmf_orchestrate.prefect import _assets, _context, _ledger
from cmf_orchestrate.prefect._compat import keep_task_key, with_conditional_hook
from cmf_orchestrate.prefect._config import ConfigSource, asettings_from, settings_from, validate_source
from cmf_orchestrate.prefect.flows import flow_defaults, install_summary
from cmf_orchestrate.run import TaskRun, record_cached, task_run

if TYPE_CHECKING:
    from prefect.tasks import TaskOptions

    from cmf_orchestrate.settings import CmfSettings

__all__ = ["cmf_task"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class _Recording:
    """What one decorated function records, fixed at decoration time."""

    fn: Callable[..., Any]
    signature: inspect.Signature
    inputs: tuple[ArtifactSpec, ...]
    outputs: tuple[ArtifactSpec, ...]
    pipeline: str | None
    config: ConfigSource | None
    command: str
    fingerprint: str = field(default="")
    reuse: bool | None = None

    def resolve_source(self) -> ConfigSource | None:
        """The task's config, else its flow's, else ``None`` (the environment)."""
        if self.config is not None:
            return self.config
        defaults = flow_defaults()
        return defaults.config if defaults is not None else None

    def prepare(
        self, settings: CmfSettings, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[CmfSettings, RunInfo]:
        """The settings and :class:`RunInfo` of one attempt.

        Pipeline name, first set wins: the task's ``pipeline``, the flow's
        (``@cmf_flow(pipeline=...)``), the settings' ``pipeline`` (block, environment),
        the flow's name, the task's name (a task run outside a flow).

        Raises:
            TemplateError: A declared path names an unknown placeholder.
        """
        values = _context.bind_arguments(self.signature, args, kwargs)
        defaults = flow_defaults()
        explicit = self.pipeline or (defaults.pipeline if defaults is not None else None)
        if explicit:
            # The core lets settings.pipeline win over RunInfo.pipeline; an explicit
            # per-task or per-flow name must win over both.
            settings = settings.replace(pipeline=explicit)
        stage = _context.task_name(self.fn.__name__)
        info = RunInfo(
            orchestrator=_context.ORCHESTRATOR,
            pipeline=explicit or settings.pipeline or _context.flow_name() or stage,
            stage=stage,
            command=self.command,
            parameters=_context.parameters(values),
            facts=_context.run_facts(),
            inputs=tuple(spec.render(values) for spec in self.inputs),
            outputs=tuple(spec.render(values) for spec in self.outputs),
            code_fingerprint=self.fingerprint or None,
        )
        return settings, info

    @contextmanager
    def recorded(self, settings: CmfSettings, info: RunInfo) -> Iterator[TaskRun]:
        """Run the body as one recorded attempt and announce its outputs as assets.

        With reuse on, the yielded run may hold a reused return value (``run.reused``): the
        body must then not call the function.
        """
        root = settings.project_root
        _announce(_assets.declare, (s.path for s in info.inputs), (s.path for s in info.outputs), root)
        running_flow = _context.running_flow()
        if running_flow is not None:
            install_summary(running_flow)
            _ledger.note_store(_context.flow_run_scope(), settings)
        with task_run(info, settings, reuse=self.reuse, func=self.fn, codec=_ResultSerializer.current()) as run:
            yield run
        facts = {"mlmd_execution_id": run.execution_id, "pipeline": run.pipeline.name, "stage": info.stage}
        _announce(_assets.describe, run.outputs, root, facts)


def _announce(step: Callable[..., None], *args: Any) -> None:
    """Run an asset announcement step; assets are a report and never fail the task run."""
    try:
        step(*args)
    except (ValueError, RuntimeError) as exc:
        logger.warning("Prefect asset announcement skipped: %s", exc)


def _wrap(recording: _Recording) -> Callable[..., Any]:
    fn = recording.fn
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            scope = _context.flow_run_scope()
            settings = await asettings_from(recording.resolve_source(), scope)
            settings, info = recording.prepare(settings, args, kwargs)
            with recording.recorded(settings, info) as run:
                if run.reused is not None:
                    return run.reused.value
                result = await cast(Callable[..., Awaitable[Any]], fn)(*args, **kwargs)
                run.keep_result(result)
                return result

        wrapper: Callable[..., Any] = run_async
    else:

        @functools.wraps(fn)
        def run_sync(*args: Any, **kwargs: Any) -> Any:
            scope = _context.flow_run_scope()
            settings = settings_from(recording.resolve_source(), scope)
            settings, info = recording.prepare(settings, args, kwargs)
            with recording.recorded(settings, info) as run:
                if run.reused is not None:
                    return run.reused.value
                result = fn(*args, **kwargs)
                run.keep_result(result)
                return result

        wrapper = run_sync
    return wrapper


class _ResultSerializer:
    """A task's return value kept with Prefect's result serializer (the task's, else the default)."""

    def __init__(self, serializer: Any) -> None:
        self.serializer = serializer
        self.name = f"prefect-{serializer.type}"

    @classmethod
    def current(cls) -> _ResultSerializer:
        """The serializer of the running task (Prefect's default outside a task run)."""
        from prefect.results import get_default_result_serializer

        ctx = TaskRunContext.get()
        chosen = getattr(ctx.task, "result_serializer", None) if ctx is not None else None
        if isinstance(chosen, str):
            from prefect.serializers import Serializer

            chosen = Serializer(type=chosen)
        return cls(chosen or get_default_result_serializer())

    def dumps(self, value: Any) -> bytes:
        """The value as the serializer writes it."""
        return bytes(self.serializer.dumps(value))

    def loads(self, data: bytes) -> Any:
        """The value back."""
        return self.serializer.loads(data)


class _CmfTask(Task[P, R]):
    """A Prefect task that, when submitted or mapped from a flow, installs the flow-run summary.

    A task runner may run the task in another process (Dask, Ray, a process pool), where
    nothing reaches the flow's process; submitting happens in the flow's process, so a
    plain ``@flow`` learns there that it runs recorded tasks.
    """

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        _note_submission(self)
        return super().submit(*args, **kwargs)

    def map(self, *args: Any, **kwargs: Any) -> Any:
        _note_submission(self)
        return super().map(*args, **kwargs)

    def with_options(self, *args: Any, **kwargs: Any) -> Any:
        copy = super().with_options(*args, **kwargs)
        copy.__class__ = type(self)
        return copy


#: The recording of each task, by the task's wrapper function (which ``with_options`` keeps).
_recordings: weakref.WeakKeyDictionary[Callable[..., Any], _Recording] = weakref.WeakKeyDictionary()


def _note_submission(task: Task[Any, Any]) -> None:
    """Install the summary on the running flow, and note the task's store for it."""
    flow = _context.running_flow()
    recording = _recordings.get(task.fn)
    if flow is None or recording is None:
        return
    scope = _context.flow_run_scope()
    try:
        settings = settings_from(recording.resolve_source(), scope)
    except CmfError as exc:
        logger.debug("flow-run summary: settings of %s not resolved: %s", task.name, exc)
        return  # the task run itself reports the configuration error
    install_summary(flow)
    _ledger.note_store(scope, settings)


def _answered_from_cache() -> bool:
    """Whether the running task run was answered from Prefect's cache (its state is ``Cached``)."""
    ctx = TaskRunContext.get()
    state = ctx.task_run.state if ctx is not None else None
    return state is not None and state.name == "Cached"


def _cache_hit_hook(recording: _Recording) -> Callable[[Any, Any, Any], None]:
    """An ``on_completion`` hook recording a Prefect cache hit as one CACHED execution.

    Prefect answers a cache hit without calling the function, so the wrapper never
    runs; the hook sees the ``Cached`` state and records the attempt from the task run
    context. It is in the task's hooks only while a task run is answered from the cache
    (:func:`_answered_from_cache`), so no other run logs it. Recording a cache hit never
    fails the task run.
    """

    def record_cache_hit(task: Any, task_run: Any, state: Any) -> None:
        del task, task_run
        if getattr(state, "name", None) != "Cached":
            return
        try:
            ctx = TaskRunContext.get()
            values = dict(ctx.parameters) if ctx is not None else {}
            settings = settings_from(recording.resolve_source(), _context.flow_run_scope())
            settings, info = recording.prepare(settings, (), values)
            record_cached(info, settings)
        except CmfError as exc:
            logger.warning("cache hit of %s not recorded: %s", recording.command, exc)

    return record_cache_hit


def _specs(value: Sequence[ArtifactSpec] | ArtifactSpec | None, what: str) -> tuple[ArtifactSpec, ...]:
    if value is None:
        return ()
    items = (value,) if isinstance(value, ArtifactSpec) else tuple(value)
    for item in items:
        if not isinstance(item, ArtifactSpec):
            raise InvalidArgumentError(
                f"cmf_task {what}: expected Dataset, Model, Metrics or Dataslice declarations, got {item!r}"
            )
    return items


def _build(
    fn: Callable[P, R],
    inputs: Sequence[ArtifactSpec] | ArtifactSpec | None,
    outputs: Sequence[ArtifactSpec] | ArtifactSpec | None,
    pipeline: str | None,
    config: ConfigSource | None,
    reuse: bool | None,
    task_kwargs: dict[str, Any],
) -> Task[P, R]:
    if isinstance(fn, Task):
        raise InvalidArgumentError(
            f"cmf_task: {fn.name!r} is already a Prefect task; apply @cmf_task to the plain function instead of @task"
        )
    if not callable(fn):
        raise InvalidArgumentError(f"cmf_task: expected a function, got {fn!r}")
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise InvalidArgumentError(
            f"cmf_task: {getattr(fn, '__name__', fn)!r} is a generator; its outputs exist only once it is "
            "consumed, so it cannot be recorded as one attempt"
        )
    recording = _Recording(
        fn=fn,
        signature=inspect.signature(fn),
        inputs=_specs(inputs, "inputs"),
        outputs=_specs(outputs, "outputs"),
        pipeline=pipeline,
        config=validate_source(config),
        command=callable_name(fn),
        fingerprint=code_fingerprint(fn),
        reuse=reuse,
    )
    wrapper = _wrap(recording)
    keep_task_key(wrapper, fn)
    _recordings[wrapper] = recording
    created = prefect_task(**task_kwargs)(wrapper)
    created.__class__ = _CmfTask
    created.on_completion_hooks = with_conditional_hook(
        created.on_completion_hooks, _cache_hit_hook(recording), _answered_from_cache
    )
    keep_task_key(created, fn)
    return cast("Task[P, R]", created)


@overload
def cmf_task(__fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def cmf_task(
    __fn: Literal[None] = None,
    /,
    *,
    inputs: Sequence[ArtifactSpec] | ArtifactSpec | None = None,
    outputs: Sequence[ArtifactSpec] | ArtifactSpec | None = None,
    pipeline: str | None = None,
    config: ConfigSource | None = None,
    reuse: bool | None = None,
    **task_kwargs: Unpack[TaskOptions],
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def cmf_task(
    __fn: Callable[P, R] | None = None,
    /,
    *,
    inputs: Sequence[ArtifactSpec] | ArtifactSpec | None = None,
    outputs: Sequence[ArtifactSpec] | ArtifactSpec | None = None,
    pipeline: str | None = None,
    config: ConfigSource | None = None,
    reuse: bool | None = None,
    **task_kwargs: Any,
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Make a function a Prefect task whose every attempt is recorded in CMF.

    Works bare (``@cmf_task``) and with arguments. Every keyword of
    :func:`prefect.task` (``name``, ``retries``, ``timeout_seconds``, ``tags``,
    ``cache_policy``, ...) passes through unchanged.

    Each attempt (Prefect ``run_count``) becomes one MLMD execution of the stage named
    after the task, in the pipeline named after the flow. Declared inputs are hashed
    before the function runs; a missing one fails the attempt without running it.
    Declared outputs are hashed, added to the DVC cache and recorded after it returns;
    a missing one fails the attempt. An exception of the function reaches Prefect
    unchanged, so retries happen as configured. A cache hit, which Prefect answers
    without calling the function, is recorded as a CACHED execution. Inside the
    function, :func:`cmf_orchestrate.current_run` returns the running execution.

    Args:
        __fn: The function, when used bare.
        inputs: Declarations read by the task; ``{name}`` placeholders are filled from
            the task's arguments.
        outputs: Declarations written by the task, templated the same way.
        pipeline: Pipeline name replacing the flow's name for this task.
        config: A saved :class:`~cmf_orchestrate.prefect.CmfConfig` block's name, a
            block, or :class:`~cmf_orchestrate.CmfSettings`; default: the flow's
            (``@cmf_flow(config=...)``), else the environment.
        reuse: Reuse an earlier COMPLETE execution with the same declared inputs,
            parameters, code and environment instead of running the function: its
            outputs are checked out, its return value (kept with the task's result
            serializer) is returned again and the attempt is recorded CACHED. Default:
            the ``reuse`` setting. Unlike Prefect's cache, it works across flows, workers
            (with a remote) and orchestrators.
        **task_kwargs: Options of :func:`prefect.task`.

    Returns:
        A :class:`prefect.Task` (or, with arguments, a decorator making one).

    Raises:
        InvalidArgumentError: The decorated object is not a plain function (a Prefect
            task already, or a generator), or a declaration is of the wrong type.
        ConfigError: ``config`` is of an unsupported type.

    At call time, an attempt fails with :class:`~cmf_orchestrate.errors.TemplateError`
    (unknown placeholder), :class:`~cmf_orchestrate.errors.ArtifactNotFoundError`
    (missing input or output) or the function's own exception.
    """
    if __fn is not None:
        return _build(__fn, inputs, outputs, pipeline, config, reuse, task_kwargs)

    def decorator(fn: Callable[P, R]) -> Task[P, R]:
        return _build(fn, inputs, outputs, pipeline, config, reuse, task_kwargs)

    return decorator
