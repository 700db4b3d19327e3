"""Differences between Prefect 3 minor versions, kept in one place."""

from __future__ import annotations

import logging
from collections.abc import Callable
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
