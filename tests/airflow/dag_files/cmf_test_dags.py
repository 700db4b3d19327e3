"""DAGs exercised by tests/airflow with ``dag.test()``.

Paths are relative to the CMF project root of the ``cmf_default`` connection, which
each test points at its own temporary directory. ``@task.cmf`` is used as any user
would: through ``airflow.sdk.task``, resolved by the installed provider entry point.
"""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from cmf_orchestrate import Dataset, current_run
from cmf_orchestrate.airflow import CmfHook, CmfOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
NO_DELAY = datetime.timedelta(seconds=0)


def _root() -> Path:
    return current_run().settings.project_root


def _write(relative: str, text: str) -> Path:
    path = _root() / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


class ExpectedFailure(Exception):
    """Raised on purpose; carries a marker to prove the same object reaches Airflow."""

    def __init__(self, message: str, marker: str) -> None:
        super().__init__(message)
        self.marker = marker


def _record_exception(context: Any) -> None:
    exc = context["exception"]
    note = {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": str(exc),
        "marker": getattr(exc, "marker", None),
        "try_number": context["ti"].try_number,
    }
    root = CmfHook().get_settings().project_root
    with (root / "failures.jsonl").open("a") as fh:
        fh.write(json.dumps(note) + "\n")


# -- templated paths, @task.cmf, current_run() -------------------------------------------------


def copy_upper(src: str, dst: str, suffix: str = "!") -> dict[str, int]:
    text = (_root() / src).read_text()
    _write(dst, text.upper() + suffix)
    return {"chars": len(text)}


with DAG("cmf_t_templated", schedule=None, start_date=START, catchup=False) as templated_dag:
    write = CmfOperator(
        task_id="write",
        python_callable=copy_upper,
        inputs=[Dataset("data/in.csv")],
        outputs=[Dataset("data/{{ ds }}/out.csv")],
        op_kwargs={"src": "data/in.csv", "dst": "data/{{ ds }}/out.csv", "suffix": "?"},
    )

    @task.cmf(inputs=["data/{{ ds }}/out.csv"], outputs=[Dataset("data/{{ ds }}/final.csv")])
    def consume(src: str, dst: str, factor: int = 2) -> dict[str, Any]:
        run = current_run()
        text = (_root() / src).read_text()
        _write(dst, text * factor)
        run.log_execution_metrics("consume_metrics", {"lines": text.count("\n"), "factor": factor})
        return {"execution_id": run.execution_id, "stage": run.stage.name}

    write >> consume(src="data/{{ ds }}/out.csv", dst="data/{{ ds }}/final.csv", factor=3)


# -- a try that fails, then succeeds -------------------------------------------------------------


def flaky(out: str) -> str:
    marker = _root() / "flaky.tried"
    if not marker.exists():
        marker.write_text("1")
        raise ExpectedFailure("first try fails", marker="flaky-1")
    _write(out, "second try\n")
    return out


with DAG("cmf_t_retry", schedule=None, start_date=START, catchup=False) as retry_dag:
    CmfOperator(
        task_id="flaky",
        python_callable=flaky,
        outputs=["out/flaky.txt"],
        op_kwargs={"out": "out/flaky.txt"},
        retries=2,
        retry_delay=NO_DELAY,
        on_failure_callback=_record_exception,
        on_retry_callback=_record_exception,
    )


# -- a task that always fails ----------------------------------------------------------------------


def always_fails(level: int) -> None:
    raise ExpectedFailure(f"level {level} is too deep", marker="always")


with DAG("cmf_t_failing", schedule=None, start_date=START, catchup=False) as failing_dag:
    CmfOperator(
        task_id="doomed",
        python_callable=always_fails,
        op_kwargs={"level": 7},
        retries=0,
        on_failure_callback=_record_exception,
    )


# -- declared input and output missing ---------------------------------------------------------------


def must_not_run() -> None:
    _write("ran.txt", "the callable ran\n")


def forgets_output() -> str:
    _write("other.txt", "not the declared output\n")
    return "done"


with DAG("cmf_t_missing", schedule=None, start_date=START, catchup=False) as missing_dag:
    CmfOperator(
        task_id="no_input",
        python_callable=must_not_run,
        inputs=[Dataset("data/absent.csv")],
        retries=0,
    )
    CmfOperator(
        task_id="no_output",
        python_callable=forgets_output,
        outputs=[Dataset("out/never.csv")],
        retries=0,
    )


# -- dynamic task mapping -----------------------------------------------------------------------------


with DAG("cmf_t_mapped", schedule=None, start_date=START, catchup=False) as mapped_dag:

    @task.cmf(outputs=[Dataset("mapped/{{ ti.map_index }}.txt")])
    def square(x: int) -> int:
        index = current_run().info.facts["map_index"]
        _write(f"mapped/{index}.txt", f"{x * x}\n")
        return x * x

    squares = square.expand(x=[1, 2, 3, 4])

    # The classic operator maps too; each instance renders its own output path.
    cubes = CmfOperator.partial(
        task_id="cube",
        python_callable=copy_upper,
        inputs=["mapped/0.txt"],
        outputs=[Dataset("cubed/{{ ti.map_index }}.txt")],
    ).expand(op_kwargs=[{"src": "mapped/0.txt", "dst": f"cubed/{i}.txt", "suffix": str(i)} for i in range(4)])
    squares >> cubes


# -- pipeline naming: the operator's argument, else the connection's, else the DAG id ---------------


def noop() -> None:
    return None


with DAG("cmf_t_pipeline", schedule=None, start_date=START, catchup=False) as pipeline_dag:
    CmfOperator(task_id="named", python_callable=noop, pipeline="named_by_operator")
    CmfOperator(task_id="default", python_callable=noop)


# -- a template that cannot render in a run without a logical date ----------------------------------


def writes_dated(dst: str) -> None:
    _write(dst, "dated\n")


with DAG("cmf_t_unrenderable", schedule=None, start_date=START, catchup=False) as unrenderable_dag:
    CmfOperator(
        task_id="dated",
        python_callable=writes_dated,
        outputs=[Dataset("data/{{ ds }}/dated.csv")],
        op_kwargs={"dst": "data/{{ ds }}/dated.csv"},
        retries=0,
    )
    # Mapped instances render through another path of Airflow's: recorded the same way.
    CmfOperator.partial(
        task_id="dated_mapped", python_callable=writes_dated, outputs=["m/{{ ds }}/{{ ti.map_index }}.csv"], retries=0
    ).expand(op_kwargs=[{"dst": "m/0.csv"}, {"dst": "m/1.csv"}])


# -- library loggers inside the task's own code ---------------------------------------------------


def logs_through_a_library_logger() -> None:
    logging.getLogger("urllib3.user_code").warning("user code may log through a library logger")


with DAG("cmf_t_logging", schedule=None, start_date=START, catchup=False) as logging_dag:
    CmfOperator(task_id="chatty", python_callable=logs_through_a_library_logger, outputs=[], retries=0)
