"""The task-run lifecycle every adapter uses: states, failure policy, current_run, reconcile."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cmf_orchestrate import (
    ArtifactNotFoundError,
    CmfQuery,
    CmfSettings,
    Dataset,
    EventType,
    ExecutionState,
    InvalidArgumentError,
    Metrics,
    Model,
    NoActiveRunError,
    RunInfo,
    TemplateError,
    current_run,
    task_run,
)
from cmf_orchestrate.reconcile import reconcile
from cmf_orchestrate.store import open_store


def _info(**kw: object) -> RunInfo:
    base: dict[str, object] = {"orchestrator": "cmf", "pipeline": "pipe", "stage": "step"}
    base.update(kw)
    return RunInfo(**base)  # type: ignore[arg-type]


def test_success_records_inputs_outputs_and_facts(project: Path) -> None:
    Path("in.csv").write_text("a\n1\n")
    settings = CmfSettings()
    info = _info(
        inputs=[Dataset("in.csv")],
        outputs=[Dataset("out.csv"), Model("model.bin", framework="torch"), Metrics("m.json")],
        parameters={"lr": 0.1, "obj": object()},
        facts={"run_id": "r1", "attempt": 1},
        code_fingerprint="abc",
    )
    with task_run(info, settings) as run:
        assert current_run() is run
        assert run.execution.state is ExecutionState.RUNNING
        Path("out.csv").write_text("b\n2\n")
        Path("model.bin").write_bytes(b"\x00" * 10)
        Path("m.json").write_text('{"accuracy": 0.9, "n": 3}')
        current_run().log_execution_metrics("extra", {"loss": 0.1})
    with pytest.raises(NoActiveRunError, match="outside a recorded task run"):
        current_run()
    execution = CmfQuery(settings=settings).get_execution(run.execution_id)
    assert execution is not None and execution.state is ExecutionState.COMPLETE
    assert execution.parameters["lr"] == 0.1 and str(execution.parameters["obj"]).startswith("<object")
    for fact in ("orchestrator", "run_id", "attempt", "start_time", "end_time", "hostname", "pid", "code_fingerprint"):
        assert execution.fact(fact) not in (None, ""), fact
    kinds = sorted(a.kind for a in run.inputs) + sorted(a.kind for a in run.outputs)
    assert kinds == ["Dataset", "Environment", "Dataset", "Metrics", "Metrics", "Model"]
    metrics_file = next(a for a in run.outputs if a.kind == "Metrics" and a.path == "m.json")
    assert metrics_file.custom_properties == {"accuracy": 0.9, "n": 3}
    assert Path("out.csv.dvc").is_file() and Path("model.bin.dvc").is_file()


def test_exception_fails_the_execution_and_propagates_unchanged(project: Path) -> None:
    settings = CmfSettings()
    error = ValueError("bad value for postgresql://u:topsecret@h/db")
    with pytest.raises(ValueError) as raised, task_run(_info(), CmfSettings(store="mlmd")) as run:
        raise error
    assert raised.value is error
    execution = CmfQuery(settings=settings).get_execution(run.execution_id)
    assert execution is not None and execution.state is ExecutionState.FAILED
    assert execution.fact("error_type") == "ValueError"
    assert "bad value" in str(execution.fact("error_message"))


def test_missing_input_never_runs_user_code(project: Path) -> None:
    ran = []
    with (
        pytest.raises(ArtifactNotFoundError, match=r"'data/absent\.csv'"),
        task_run(_info(inputs=[Dataset("data/absent.csv")]), CmfSettings()),
    ):
        ran.append(True)
    assert ran == []
    [execution] = CmfQuery("mlmd").get_all_exe_in_stage("pipe/step")
    assert execution.state is ExecutionState.FAILED
    assert "data/absent.csv" in str(execution.fact("error_message"))


def test_missing_output_fails_the_try(project: Path) -> None:
    with (
        pytest.raises(ArtifactNotFoundError, match=r"'never-written\.csv'"),
        task_run(_info(outputs=[Dataset("never-written.csv")]), CmfSettings()),
    ):
        pass
    [execution] = CmfQuery("mlmd").get_all_exe_in_stage("pipe/step")
    assert (
        execution.state is ExecutionState.FAILED
        and execution.fact("error_type") == "cmf_orchestrate.errors.ArtifactNotFoundError"
    )


def test_templates_and_reserved_names() -> None:
    assert Dataset("data/{split}/x-{n}.csv").render({"split": "v1", "n": 3}).path == "data/v1/x-3.csv"
    with pytest.raises(TemplateError, match=r"unknown placeholder \{sp1it\}"):
        Dataset("data/{sp1it}/x.csv").render({"split": "v1"})
    with pytest.raises(InvalidArgumentError, match="reserved"):
        _info(parameters={"cmf.attempt": 2})
    with pytest.raises(InvalidArgumentError, match="unknown fact"):
        _info(facts={"colour": "red"})


def test_abandoned_attempts_are_reconciled(project: Path) -> None:
    # A worker process that dies mid-task leaves its execution RUNNING.
    script = textwrap.dedent(
        """
        import os
        from cmf_orchestrate import RunInfo, CmfSettings
        from cmf_orchestrate.run import open_run
        open_run(RunInfo("cmf", "pipe", "step", facts={"task_run_id": "tr-1", "attempt": 1}), CmfSettings())
        os._exit(0)
        """
    )
    subprocess.run(
        [sys.executable, "-c", script], check=True, cwd=project, env={**os.environ, "CMF_PROJECT_ROOT": str(project)}
    )
    store = open_store(CmfSettings().location)
    [dead] = store.executions(state="RUNNING")
    report = reconcile(CmfSettings())
    assert report.abandoned == (dead.id,)
    after = store.execution(dead.id)
    assert after is not None and after.state is ExecutionState.FAILED and after.fact("state_reason") == "abandoned"

    # The next attempt of the same task run reconciles its predecessor by itself.
    subprocess.run(
        [sys.executable, "-c", script], check=True, cwd=project, env={**os.environ, "CMF_PROJECT_ROOT": str(project)}
    )
    [second] = store.executions(state="RUNNING")
    with task_run(_info(facts={"task_run_id": "tr-1", "attempt": 2}), CmfSettings()):
        pass
    assert store.execution(second.id).state is ExecutionState.FAILED  # type: ignore[union-attr]


def test_importing_the_core_loads_no_orchestrator() -> None:
    code = (
        "import sys, cmf_orchestrate\n"
        "from cmf_orchestrate import Dataset, Model\n"
        "print(sorted(m for m in ('airflow', 'prefect', 'neo4j', 'dvc', 'sqlalchemy') if m in sys.modules))\n"
        "from cmf_orchestrate import Cmf, CmfQuery, cmf\n"
        "print(cmf.Cmf is Cmf, 'ml_metadata' in sys.modules, 'airflow' in sys.modules or 'prefect' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    # Declarations are cheap to import (DAG files are parsed often); the rest loads on use,
    # and ML Metadata's library is never loaded at all.
    assert out.split("\n")[:2] == ["[]", "True False False"]


def test_a_cache_hit_is_one_cached_execution(project: Path) -> None:
    from cmf_orchestrate.run import record_cached

    Path("in.csv").write_text("a\n")
    Path("out.csv").write_text("b\n")
    execution = record_cached(
        _info(inputs=[Dataset("in.csv")], outputs=[Dataset("out.csv"), Dataset("gone.csv")]), CmfSettings()
    )
    assert execution.state is ExecutionState.CACHED
    artifacts = CmfQuery("mlmd").get_artifacts_for_execution(execution.id)
    assert sorted(a.path for a in artifacts[EventType.INPUT] if a.kind == "Dataset") == ["in.csv"]
    assert [a.path for a in artifacts[EventType.OUTPUT]] == ["out.csv"]
