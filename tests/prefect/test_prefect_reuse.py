"""``@cmf_task(reuse=True)``: a task whose inputs, parameters, code and environment already ran is not run again."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import reuse_task
from prefect import flow
from prefect_testlib import Project

from cmf_orchestrate import Dataset, ExecutionState
from cmf_orchestrate.prefect import cmf_task

REPO = Path(__file__).resolve().parents[2]

tally = cmf_task(reuse=True, inputs=[Dataset("in.txt")], outputs=[Dataset("out/tally.txt")])(reuse_task.tally)
tally_v2 = cmf_task(reuse=True, inputs=[Dataset("in.txt")], outputs=[Dataset("out/tally.txt")])(reuse_task.tally_v2)


@flow(name="words")
def words(scale: int = 1, v2: bool = False) -> dict[str, int]:
    task = tally_v2 if v2 else tally
    return task("in.txt", "out/tally.txt", scale)


def _executions(project: Project, stage: str = "tally") -> list[Any]:
    return project.executions("words", stage)


def test_a_second_run_with_the_same_bytes_is_reused(project: Project) -> None:
    project.write("in.txt", "a b c")
    assert words() == {"words": 3}
    produced = (project.root / "out/tally.txt").read_bytes()
    (project.root / "out/tally.txt").write_text("damaged by someone")

    assert words() == {"words": 3}  # the return value comes back
    assert reuse_task.runs(project.root) == 1, "the task body ran again"
    first, second = _executions(project)
    assert first.state is ExecutionState.COMPLETE and second.state is ExecutionState.CACHED
    assert second.fact("reused_execution") == first.id
    assert (project.root / "out/tally.txt").read_bytes() == produced


@pytest.mark.parametrize("change", ["input", "parameter", "code"])
def test_a_change_runs_again(project: Project, change: str) -> None:
    project.write("in.txt", "a b c")
    words()
    if change == "input":
        project.write("in.txt", "a b d")
        words()
    elif change == "parameter":
        assert words(scale=2) == {"words": 6}
    else:
        words(v2=True)
    assert reuse_task.runs(project.root) == 2
    states = [e.state for e in project.all_executions()]
    assert ExecutionState.CACHED not in states


_AIRFLOW_DAG = textwrap.dedent(
    """
    import json, os
    from pathlib import Path

    import pendulum
    from airflow.sdk import DAG, task

    import reuse_task
    from cmf_orchestrate import Dataset
    from cmf_orchestrate.airflow import CmfOperator

    with DAG("words", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False) as dag:
        tally = CmfOperator(
            task_id="tally",
            python_callable=reuse_task.tally,
            op_kwargs={"source": "in.txt", "target": "out/tally.txt", "scale": 1},
            inputs=[Dataset("in.txt")],
            outputs=[Dataset("out/tally.txt")],
            reuse=True,
        )

        @task
        def keep(value):
            Path(os.environ["CMF_PROJECT_ROOT"], "xcom.json").write_text(json.dumps(value))

        keep(tally.output)
    """
)

_AIRFLOW_RUN = textwrap.dedent(
    """
    import importlib.util, json, sys
    sys.path.insert(0, sys.argv[1])
    from airflow.utils import db
    db.initdb()
    import pendulum
    spec = importlib.util.spec_from_file_location("words_dag", sys.argv[2])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run = module.dag.test(logical_date=pendulum.datetime(2026, 1, 2))
    print(json.dumps({"state": str(run.state)}))
    """
)


def test_a_task_run_under_prefect_is_reused_by_the_same_function_in_airflow(project: Project, tmp_path: Path) -> None:
    airflow_python = REPO / ".venv-airflow" / "bin" / "python"
    if not airflow_python.exists():
        pytest.skip("the Airflow environment (.venv-airflow) is not built; `make venvs` builds it")
    project.write("in.txt", "one two three four")
    assert words() == {"words": 4}
    [produced] = _executions(project)
    (project.root / "out/tally.txt").unlink()

    home = tmp_path / "airflow-home"
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "words_dag.py").write_text(_AIRFLOW_DAG)
    bundle = {"name": "words", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle"}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AIRFLOW_"))},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps([{**bundle, "kwargs": {"path": str(dags)}}]),
        "CMF_PROJECT_ROOT": str(project.root),
        "CMF_STORE": "mlmd",
    }
    script = tmp_path / "run_words.py"
    script.write_text(_AIRFLOW_RUN)
    done = subprocess.run(
        [str(airflow_python), str(script), str(REPO / "tests"), str(dags / "words_dag.py")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["state"] == "success", done.stdout[-2000:]
    assert reuse_task.runs(project.root) == 1, "the Airflow task ran the function again"
    [cached] = [e for e in project.all_executions() if e.fact("orchestrator") == "airflow" and e.type == "tally"]
    assert cached.state is ExecutionState.CACHED and cached.fact("reused_execution") == produced.id
    assert (project.root / "out/tally.txt").read_text() == "ONE TWO THREE FOUR"
    # The value Prefect's run returned is the XCom the downstream Airflow task read.
    assert json.loads((project.root / "xcom.json").read_text()) == {"words": 4}
