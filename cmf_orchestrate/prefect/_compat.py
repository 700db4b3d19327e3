"""Differences between Prefect 3 minor versions, kept in one place."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

logger = logging.getLogger(__name__)


def keep_task_key(obj: Any, fn: Callable[..., Any]) -> None:
    """Give a task built on a wrapper of ``fn`` the task key ``@task`` would give ``fn``.

    Prefect derives the key from the function's name and code object; every wrapper
    shares one code object, so without this all recorded tasks of the same name would
    share a key. Prefect 3.9 honours ``__prefect_task_source__`` on the wrapper; older
    3.x releases read the code of the wrapper, so the key is set on the task instead.
    """
    from prefect import Task

    if not isinstance(obj, Task):
        obj.__prefect_task_source__ = fn
        return
    try:
        from prefect.tasks import _generate_task_key
    except ImportError:  # pragma: no cover - every Prefect 3 release has it
        logger.debug("prefect.tasks._generate_task_key is gone; keeping %s", obj.task_key)
        return
    expected = _generate_task_key(fn)
    if obj.task_key != expected:
        obj.task_key = expected


class ConditionalHooks(list[Any]):
    """A task's or flow's state hooks, plus one hook of ours only when it has work to do.

    Prefect logs "Running hook ..." and "... finished running successfully" for every hook
    in the list it reads when a run enters a state; an ordinary list would make our hook
    log twice on every run. Every Prefect 3 release reads the list (truth value, then
    iteration) at that moment, inside the run's context, so this list adds ``extra`` to
    the user's hooks only when ``wanted()`` says so then. It is always true: ``Task`` and
    ``Flow`` replace a false hook list by ``[]`` (``on_completion or []``), and an empty
    iteration runs and logs nothing. ``copy()`` (``with_options``) keeps the class and the
    extra hook.
    """

    def __init__(self, hooks: Iterable[Any], extra: Callable[..., Any], wanted: Callable[[], bool]) -> None:
        super().__init__(hooks)
        self.extra = extra
        self.wanted = wanted

    def _active(self) -> bool:
        if self.extra in list.__iter__(self):
            return False  # the user listed it: it runs as one of theirs
        try:
            return self.wanted()
        except Exception:  # a guard must never break Prefect's state handling
            logger.debug("hook guard of %r failed", self.extra, exc_info=True)
            return False

    def __bool__(self) -> bool:
        return True

    def __iter__(self) -> Iterator[Any]:
        yield from list.__iter__(self)
        if self._active():
            yield self.extra

    def __copy__(self) -> ConditionalHooks:
        return ConditionalHooks(list.__iter__(self), self.extra, self.wanted)

    def __reduce__(self) -> tuple[Any, ...]:
        # Task runners pickle tasks (process pools, Dask): rebuild from the plain items.
        return (ConditionalHooks, (list(list.__iter__(self)), self.extra, self.wanted))


def with_conditional_hook(
    hooks: Iterable[Any], extra: Callable[..., Any], wanted: Callable[[], bool]
) -> ConditionalHooks:
    """``hooks`` as a :class:`ConditionalHooks` adding ``extra`` when ``wanted()``."""
    if isinstance(hooks, ConditionalHooks) and hooks.extra is extra:
        return hooks
    return ConditionalHooks(list(hooks), extra, wanted)
