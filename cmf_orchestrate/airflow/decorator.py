"""The ``@task.cmf`` TaskFlow decorator.

Registered through this package's provider entry point, so after installation it
is simply ``@task.cmf(...)``::

    @task.cmf(inputs=[Dataset("data/{{ ds }}/train.csv")], outputs=[Model("model/rf.pkl")])
    def train(n_estimators: int = 100) -> dict[str, float]: ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, cast

from cmf_orchestrate.airflow import _runinfo
from cmf_orchestrate.airflow._compat import (
    AssetAlias,
    DecoratedOperator,
    TaskDecorator,
    task_decorator_factory,
    task_placement,
)
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
    if python_callable is None:

        def decorate(fn: Callable[..., Any]) -> Any:
            return cmf_task(fn, multiple_outputs=multiple_outputs, **kwargs)

        return cast(TaskDecorator, decorate)
    return task_decorator_factory(
        python_callable=python_callable,
        multiple_outputs=multiple_outputs,
        decorated_operator_class=_CmfDecoratedOperator,
        **_declared_assets(python_callable, kwargs),
    )


def _declared_assets(fn: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with the declared paths' assets, and the alias of templated outputs, as inlets and outlets.

    Declared when the function is decorated, so that a mapped ``@task.cmf``, built without
    running the operator's ``__init__``, announces its outputs through an alias Airflow
    knows before any map instance finishes.
    """
    inputs = _runinfo.declarations(kwargs.get("inputs"), "inputs")
    outputs = _runinfo.declarations(kwargs.get("outputs"), "outputs")
    inlets = _runinfo.merged(kwargs.get("inlets"), _runinfo.static_assets(inputs))
    outlets = _runinfo.merged(kwargs.get("outlets"), _runinfo.static_assets(outputs))
    if _runinfo.any_templated(outputs):
        dag, full_id = task_placement(kwargs.get("dag"), kwargs.get("task_group"), kwargs.get("task_id") or fn.__name__)
        outlets = _runinfo.merged(outlets, [AssetAlias(name=_runinfo.alias_name(dag.dag_id if dag else None, full_id))])
    return {**kwargs, "inlets": inlets, "outlets": outlets}
