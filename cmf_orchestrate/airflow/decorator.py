"""The ``@task.cmf`` TaskFlow decorator.

Registered through this package's provider entry point, so after installation it
is simply ``@task.cmf(...)``::

    @task.cmf(inputs=[Dataset("data/{{ ds }}/train.csv")], outputs=[Model("model/rf.pkl")])
    def train(n_estimators: int = 100) -> dict[str, float]: ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from cmf_orchestrate.airflow._compat import DecoratedOperator, TaskDecorator, task_decorator_factory
from cmf_orchestrate.airflow.operator import CmfOperator

__all__ = ["cmf_task"]


class _CmfDecoratedOperator(DecoratedOperator, CmfOperator):
    """The operator behind ``@task.cmf``: TaskFlow argument handling plus CMF recording."""

    template_fields: Sequence[str] = CmfOperator.template_fields
    template_fields_renderers: ClassVar[dict[str, str]] = CmfOperator.template_fields_renderers
    custom_operator_name: str = "@task.cmf"

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Sequence[Any] | None = None,
        op_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs_to_upstream = {"python_callable": python_callable, "op_args": op_args, "op_kwargs": op_kwargs}
        super().__init__(
            kwargs_to_upstream=kwargs_to_upstream,
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            **kwargs,
        )


def cmf_task(
    python_callable: Callable[..., Any] | None = None,
    multiple_outputs: bool | None = None,
    **kwargs: Any,
) -> TaskDecorator:
    """Turn a function into a recorded Airflow task (``@task.cmf``).

    Args:
        python_callable: The decorated function (when used without parentheses).
        multiple_outputs: Unroll a returned dict into several XComs, as ``@task``.
        **kwargs: ``CmfOperator`` arguments: ``inputs``, ``outputs``, ``cmf_conn_id``,
            ``pipeline``, ``reuse``, and any ``BaseOperator`` argument (``retries``, ...).

    Returns:
        The TaskFlow decorator.
    """
    return task_decorator_factory(
        python_callable=python_callable,
        multiple_outputs=multiple_outputs,
        decorated_operator_class=_CmfDecoratedOperator,
        **kwargs,
    )
