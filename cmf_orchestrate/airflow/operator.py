"""``CmfOperator``: a PythonOperator whose every try is recorded as a CMF execution."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from cmf_orchestrate.airflow import _logs, _runinfo
from cmf_orchestrate.airflow._compat import (
    AirflowNotFoundException,
    Asset,
    AssetAlias,
    PythonOperator,
    XComCodec,
    config_flag,
    task_placement,
)
from cmf_orchestrate.airflow.assets import cmf_asset
from cmf_orchestrate.artifacts import ArtifactSpec
from cmf_orchestrate.errors import CmfError

if TYPE_CHECKING:
    import jinja2

    from cmf_orchestrate.airflow._compat import Context
    from cmf_orchestrate.facts import RunInfo
    from cmf_orchestrate.records import ArtifactRecord
    from cmf_orchestrate.run import TaskRun
    from cmf_orchestrate.settings import CmfSettings

__all__ = ["CmfOperator"]

log = logging.getLogger(__name__)


class CmfOperator(PythonOperator):
    """Run a Python callable like ``PythonOperator`` and record the try in CMF.

    Every try of every task instance (mapped instances included) becomes one MLMD
    execution of the stage ``task_id`` in the pipeline ``dag_id``. Declared inputs
    must exist before the callable runs; declared outputs must exist after it
    returns. Both are content-hashed with DVC and outputs are added to the DVC cache.
    Inside the callable, :func:`cmf_orchestrate.current_run` is the running execution.

    On Airflow's side a declared path is the asset ``cmf://<path>``
    (:func:`~cmf_orchestrate.airflow.cmf_asset`). Inputs with a fixed path are inlets;
    outputs with a fixed path are outlets, and outputs whose path is templated are
    emitted through the asset alias ``cmf:<dag_id>.<task_id>``. Each output's asset
    event carries its md5 and MLMD ids in ``extra``.

    Args:
        python_callable: The callable, as for ``PythonOperator``.
        inputs: Declared inputs (``Dataset``, ``Model``, ...; a string means a
            ``Dataset``). Paths are relative to the project root. Templated: Jinja
            in a path is rendered per run, e.g. ``"data/{{ dag_run.run_after | ds }}/train.csv"``
            (``{{ ds }}`` is undefined in runs triggered by hand, which have no logical date).
        outputs: Declared outputs, as ``inputs``.
        cmf_conn_id: Airflow connection (type ``cmf``) holding the settings. Default:
            ``cmf_default`` when it exists, else the environment.
        pipeline: Pipeline name; default: the connection's, else the DAG id.
        reuse: Reuse an earlier COMPLETE execution with the same declared inputs,
            parameters, code and environment instead of calling the callable: its outputs
            are checked out, its return value is pushed as this try's XCom and the try is
            recorded CACHED. Default: the ``reuse`` setting.
        **kwargs: Everything ``PythonOperator`` accepts (``op_kwargs``, ``retries``, ...).

    Raises:
        InvalidArgumentError: ``inputs`` or ``outputs`` holds something that is not
            an artifact declaration.

    At run time the try fails with :class:`~cmf_orchestrate.errors.ArtifactNotFoundError`
    (the callable does not run) when a declared input is missing, with the same error
    after the callable when a declared output is missing, and with the callable's own
    exception, re-raised unchanged, when it raises. A templated field that cannot be
    rendered fails the try before it starts, with Jinja's error; that try is recorded
    too, FAILED, with the reason in its ``state_reason`` fact.

    Each try writes one INFO line to the task log: the execution id, its state, and its
    inputs and outputs with short md5s. Library log records are held back unless
    ``[cmf] library_logs`` is on.
    """

    template_fields: Sequence[str] = (*PythonOperator.template_fields, "inputs", "outputs")
    template_fields_renderers: ClassVar[dict[str, str]] = {
        **PythonOperator.template_fields_renderers,
        "inputs": "py",
        "outputs": "py",
    }
    ui_color = "#e3f1e8"

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        inputs: Collection[ArtifactSpec | str] | None = None,
        outputs: Collection[ArtifactSpec | str] | None = None,
        cmf_conn_id: str | None = None,
        pipeline: str | None = None,
        reuse: bool | None = None,
        **kwargs: Any,
    ) -> None:
        declared_inputs = _runinfo.declarations(inputs, "inputs")
        declared_outputs = _runinfo.declarations(outputs, "outputs")
        kwargs["inlets"] = _runinfo.merged(kwargs.get("inlets"), _runinfo.static_assets(declared_inputs))
        kwargs["outlets"] = _runinfo.merged(kwargs.get("outlets"), _runinfo.static_assets(declared_outputs))
        super().__init__(python_callable=python_callable, **kwargs)
        self.inputs: list[ArtifactSpec] = declared_inputs
        self.outputs: list[ArtifactSpec] = declared_outputs
        self.cmf_conn_id = cmf_conn_id
        self.pipeline = pipeline
        self.reuse = reuse
        if _runinfo.any_templated(declared_outputs) and not any(isinstance(o, AssetAlias) for o in self.outlets):
            # A rendered path is known only at run time: its asset events go through an alias.
            dag_id = self.dag_id if self.has_dag() else None  # type: ignore[no-untyped-call]
            self.outlets = [*self.outlets, AssetAlias(name=_runinfo.alias_name(dag_id, self.task_id))]

    @classmethod
    def partial(cls, *, task_id: str, **kwargs: Any) -> Any:
        """As ``BaseOperator.partial``, declaring the assets and alias of the outputs when the DAG is parsed.

        A mapped task is built from its partial arguments at parse time, without running
        ``__init__``; map instances that find the alias of templated outputs undeclared
        would each create it when they finish, and all but one would fail on Airflow's
        unique index.
        """
        declared_inputs = _runinfo.declarations(kwargs.get("inputs"), "inputs")
        declared_outputs = _runinfo.declarations(kwargs.get("outputs"), "outputs")
        kwargs["inlets"] = _runinfo.merged(kwargs.get("inlets"), _runinfo.static_assets(declared_inputs))
        outlets = _runinfo.merged(kwargs.get("outlets"), _runinfo.static_assets(declared_outputs))
        if _runinfo.any_templated(declared_outputs):
            dag, full_id = task_placement(kwargs.get("dag"), kwargs.get("task_group"), task_id)
            alias = AssetAlias(name=_runinfo.alias_name(dag.dag_id if dag else None, full_id))
            outlets = _runinfo.merged(outlets, [alias])
        kwargs["outlets"] = outlets
        return super().partial(task_id=task_id, **kwargs)

    def render_template(
        self,
        content: Any,
        context: Context,
        jinja_env: jinja2.Environment | None = None,
        seen_oids: set[int] | None = None,
    ) -> Any:
        """Render like any operator, plus the paths of artifact declarations."""
        if isinstance(content, ArtifactSpec):
            path = super().render_template(content.path, context, jinja_env, seen_oids)
            return dataclasses.replace(content, path=path)
        return super().render_template(content, context, jinja_env, seen_oids)

    def _do_render_template_fields(
        self,
        parent: Any,
        template_fields: Iterable[str],
        context: Context,
        jinja_env: jinja2.Environment,
        seen_oids: set[int],
    ) -> None:
        """Render like any operator; a field that cannot be rendered is recorded as a FAILED try."""
        if parent is not self:  # a nested templated object
            super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)
            return
        for field in list(template_fields):
            try:
                super()._do_render_template_fields(parent, [field], context, jinja_env, seen_oids)
            except Exception as exc:
                self._record_unrendered(context, field, exc)
                raise

    def _record_unrendered(self, context: Context, field: str, error: Exception) -> None:
        """Record the try that cannot start, FAILED, with why; never masks ``error``."""
        reason = _runinfo.render_failure_reason(field, error, context)
        try:
            settings, info = self._run_info(context, inputs=(), outputs=())
            from cmf_orchestrate.run import open_run

            with _logs.quiet_libraries(not config_flag("cmf", "library_logs", False)):
                run = open_run(info, settings)
                execution = run.fail(error, reason=reason)
        except (CmfError, AirflowNotFoundException) as exc:
            self.log.warning("CMF: the failed rendering of %r could not be recorded: %s", field, exc)
            return
        self.log.info("%s", _logs.execution_line(execution, run.inputs, run.outputs))

    def _run_info(
        self, context: Context, inputs: Sequence[ArtifactSpec], outputs: Sequence[ArtifactSpec]
    ) -> tuple[CmfSettings, RunInfo]:
        settings = _runinfo.resolve_settings(self.cmf_conn_id)
        pipeline = self.pipeline or settings.pipeline or self.dag_id
        info = _runinfo.build_run_info(
            context=context,
            operator_class=getattr(self, "custom_operator_name", None) or type(self).__name__,
            func=self.python_callable,
            parameters=_runinfo.call_parameters(self.python_callable, tuple(self.op_args), self.op_kwargs),
            inputs=inputs,
            outputs=outputs,
            pipeline=pipeline,
        )
        return settings.replace(pipeline=pipeline), info

    def execute(self, context: Context) -> Any:
        """Record the try around ``PythonOperator.execute``.

        Raises:
            ArtifactNotFoundError: A declared input is missing (the callable does not
                run), or a declared output is missing after it returned.
            ConfigError: The CMF connection or environment settings are invalid.
            StoreUnavailableError: The metadata store cannot be opened.
        """
        settings, info = self._run_info(context, inputs=self.inputs, outputs=self.outputs)
        from cmf_orchestrate.run import task_run  # ML Metadata and DVC load when a task runs, not when a DAG is parsed

        run: TaskRun | None = None
        with _logs.quiet_libraries(not config_flag("cmf", "library_logs", False)):
            try:
                with (
                    task_run(info, settings, reuse=self.reuse, func=self.python_callable, codec=XComCodec()) as run,
                    _logs.user_code(),
                ):
                    if run.reused is not None:
                        result = run.reused.value  # pushed as this try's XCom, as if the callable returned it
                    else:
                        result = super().execute(context)
                        run.keep_result(result)
            except BaseException as exc:
                self._log_failure(run, info, settings, exc)
                raise
        self.log.info("%s", _logs.execution_line(run.execution, run.inputs, run.outputs))
        self._emit_asset_events(context, run)
        return result

    def _log_failure(self, run: TaskRun | None, info: RunInfo, settings: CmfSettings, error: BaseException) -> None:
        if run is not None:
            self.log.info("%s", _logs.execution_line(run.execution, run.inputs, run.outputs))
            return
        # The try failed before it started (a missing input): find its execution by its facts.
        try:
            from cmf_orchestrate.query import CmfQuery

            found = CmfQuery(settings=settings).get_executions_by_fact("task_run_id", info.facts["task_run_id"])
        except CmfError:
            found = []
        attempt = info.facts.get("attempt")
        mine = [s for s in found if s.execution.fact("attempt") == attempt]
        if mine:
            snap = mine[-1]
            self.log.info("%s", _logs.execution_line(snap.execution, snap.inputs, snap.outputs))
        else:
            self.log.info("CMF execution not recorded: %s: %s", type(error).__name__, error)

    def _emit_asset_events(self, context: Context, run: TaskRun) -> None:
        """Announce the declared outputs as Airflow asset events, with md5 and MLMD ids."""
        outlet_events = context.get("outlet_events")
        if outlet_events is None or not self.outputs:
            return
        declared = {cmf_asset(d.path) for d in self.outputs}
        static = {o for o in self.outlets if isinstance(o, Asset)}
        alias = next((o for o in self.outlets if isinstance(o, AssetAlias)), None)
        for record in run.outputs:
            asset = cmf_asset(record.path)
            if asset not in declared:
                continue  # logged through the seed API inside the callable: not a declared outlet
            extra = _event_extra(record, run)
            if asset in static:
                outlet_events[asset].extra.update(extra)
            elif alias is not None:
                outlet_events[alias].add(asset, extra=extra)


def _event_extra(record: ArtifactRecord, run: TaskRun) -> dict[str, Any]:
    return {
        "path": record.path,
        "md5": record.md5,
        "artifact_type": record.kind,
        "artifact_id": record.id,
        "execution_id": run.execution_id,
        "execution_uuid": run.execution_uuid,
        "pipeline_id": run.pipeline_id,
        "stage_id": run.stage_id,
    }
