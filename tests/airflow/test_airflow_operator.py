"""CmfOperator and @task.cmf under a real ``dag.test()``, read back from a real MLMD store."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from airflow_testlib import DS, artifacts, asset_events, executions, md5, only_execution, query, task_states

from cmf_orchestrate import ArtifactNotFoundError, EventType, ExecutionState, InvalidArgumentError
from cmf_orchestrate.run import code_fingerprint

PASSWORD = "Neo4j-pw-7c1e93f0-never-shown"
MLMD_TABLES = ("MLMDEnv", "Execution", "Artifact", "ParentContext", "Attribution", "Association")


def _failures(root: Path) -> list[dict[str, object]]:
    path = root / "failures.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_templated_paths_decorator_current_run_and_asset_events(
    cmf_project: Path,
    run_dag,
    load_dag,
    airflow_db: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # The connection also holds a Neo4j login: its password must never be written anywhere.
    monkeypatch.setenv(
        "AIRFLOW_CONN_CMF_DEFAULT",
        json.dumps(
            {
                "conn_type": "cmf",
                "host": "bolt://127.0.0.1:1",
                "login": "neo4j",
                "password": PASSWORD,
                "extra": {"project_root": str(cmf_project), "store": "mlmd", "graph": False},
            }
        ),
    )
    (cmf_project / "data").mkdir()
    (cmf_project / "data" / "in.csv").write_text("a,b\n1,2\n")

    dag_run = run_dag("cmf_t_templated")

    assert dag_run.state == "success"
    out = cmf_project / "data" / DS / "out.csv"
    final = cmf_project / "data" / DS / "final.csv"
    assert out.read_text() == "A,B\n1,2\n?"
    q = query(cmf_project)
    assert q.get_pipeline_names() == ["cmf_t_templated"]
    assert sorted(q.get_pipeline_stages("cmf_t_templated")) == ["cmf_t_templated/consume", "cmf_t_templated/write"]

    write = only_execution(q, "cmf_t_templated", "write")
    assert write.state is ExecutionState.COMPLETE
    assert write.parameters == {"src": "data/in.csv", "dst": f"data/{DS}/out.csv", "suffix": "?"}
    dag = load_dag("cmf_t_templated")
    expected_facts = {
        "orchestrator": "airflow",
        "dag_id": "cmf_t_templated",
        "run_id": dag_run.run_id,
        "logical_date": "2026-01-02T00:00:00Z",
        "attempt": 1,
        "map_index": -1,
        "hostname": socket.gethostname(),
        "operator": "CmfOperator",
        "code_fingerprint": code_fingerprint(dag.get_task("write").python_callable),
    }
    assert {name: write.fact(name) for name in expected_facts} == expected_facts
    write_in = artifacts(q, write.id, EventType.INPUT)
    write_out = artifacts(q, write.id, EventType.OUTPUT)
    assert {p: a.md5 for p, a in write_in.items()} == {"data/in.csv": md5(cmf_project / "data" / "in.csv")}
    assert {p: a.md5 for p, a in write_out.items()} == {f"data/{DS}/out.csv": md5(out)}

    consume = only_execution(q, "cmf_t_templated", "consume")
    assert consume.state is ExecutionState.COMPLETE
    assert consume.fact("operator") == "@task.cmf"
    assert consume.parameters == {"src": f"data/{DS}/out.csv", "dst": f"data/{DS}/final.csv", "factor": 3}
    consume_in = artifacts(q, consume.id, EventType.INPUT)
    # Lineage: the consumer's input is the very artifact the producer wrote.
    assert consume_in[f"data/{DS}/out.csv"].id == write_out[f"data/{DS}/out.csv"].id
    outputs = q.get_artifacts_for_execution(consume.id)[EventType.OUTPUT]
    metrics = [a for a in outputs if a.kind == "Metrics"]
    assert [(m.name.split(":")[0], dict(m.custom_properties)) for m in metrics] == [
        ("consume_metrics", {"lines": 2, "factor": 3})
    ]
    assert {a.path: a.md5 for a in outputs if a.kind == "Dataset"} == {f"data/{DS}/final.csv": md5(final)}

    # Airflow's side: declared static inputs are inlets, templated outputs go through the alias
    # and every declared output is an asset event carrying its md5 and MLMD ids.
    assert [i.uri for i in dag.get_task("write").inlets] == ["cmf://data/in.csv"]
    events = asset_events(dag_run.run_id)
    assert set(events) == {f"cmf://data/{DS}/out.csv", f"cmf://data/{DS}/final.csv"}
    out_event = events[f"cmf://data/{DS}/out.csv"]
    assert out_event == {
        "path": f"data/{DS}/out.csv",
        "md5": md5(out),
        "artifact_type": "Dataset",
        "artifact_id": write_out[f"data/{DS}/out.csv"].id,
        "execution_id": write.id,
        "execution_uuid": write.uuid,
        "pipeline_id": write.pipeline_id,
        "stage_id": write.stage_id,
    }
    assert events[f"cmf://data/{DS}/final.csv"]["execution_id"] == consume.id

    # The task log: one line per execution, with short md5s.
    captured = capfd.readouterr()
    log = captured.out + captured.err
    assert (
        f"CMF execution {write.id} COMPLETE: inputs data/in.csv ({md5(cmf_project / 'data/in.csv')[:8]}); "
        f"outputs data/{DS}/out.csv ({md5(out)[:8]})"
    ) in log
    assert f"CMF execution {consume.id} COMPLETE: inputs data/{DS}/out.csv ({md5(out)[:8]}); outputs " in log
    assert f"consume_metrics (metrics), data/{DS}/final.csv ({md5(final)[:8]})" in log

    # The Neo4j password is in no log line, no MLMD byte, no Airflow table (XCom, rendered fields).
    assert PASSWORD not in captured.out + captured.err
    assert PASSWORD.encode() not in (cmf_project / "mlmd").read_bytes()
    assert PASSWORD.encode() not in (airflow_db / "airflow.db").read_bytes()


def test_try_that_fails_then_succeeds_is_two_executions(cmf_project: Path, run_dag) -> None:
    dag_run = run_dag("cmf_t_retry")

    assert dag_run.state == "success"
    assert task_states(dag_run) == {("flaky", -1): ("success", 2)}
    first, second = executions(query(cmf_project), "cmf_t_retry", "flaky")
    assert (first.fact("attempt"), first.state, first.fact("error_type")) == (
        1,
        ExecutionState.FAILED,
        "cmf_airflow_tests_cmf_test_dags.ExpectedFailure",
    )
    assert first.fact("error_message") == "first try fails"
    assert (second.fact("attempt"), second.state, second.fact("error_type")) == (2, ExecutionState.COMPLETE, None)
    assert first.fact("run_id") == second.fact("run_id") == dag_run.run_id
    # Airflow saw the user's own exception object (its marker attribute survived), on the first try only.
    assert _failures(cmf_project) == [
        {
            "type": "cmf_airflow_tests_cmf_test_dags.ExpectedFailure",
            "message": "first try fails",
            "marker": "flaky-1",
            "try_number": 1,
        }
    ]
    q = query(cmf_project)
    assert artifacts(q, first.id, EventType.OUTPUT) == {}
    assert set(artifacts(q, second.id, EventType.OUTPUT)) == {"out/flaky.txt"}


def test_failing_task_is_failed_with_the_error_and_airflow_gets_it_unchanged(cmf_project: Path, run_dag) -> None:
    dag_run = run_dag("cmf_t_failing")

    assert dag_run.state == "failed"
    assert task_states(dag_run) == {("doomed", -1): ("failed", 1)}
    doomed = only_execution(query(cmf_project), "cmf_t_failing", "doomed")
    assert doomed.state is ExecutionState.FAILED
    assert doomed.fact("error_type") == "cmf_airflow_tests_cmf_test_dags.ExpectedFailure"
    assert doomed.fact("error_message") == "level 7 is too deep"
    assert doomed.parameters == {"level": 7}
    assert _failures(cmf_project) == [
        {
            "type": "cmf_airflow_tests_cmf_test_dags.ExpectedFailure",
            "message": "level 7 is too deep",
            "marker": "always",
            "try_number": 1,
        }
    ]


def test_missing_input_skips_the_callable_and_missing_output_fails_the_try(
    cmf_project: Path, run_dag, capfd: pytest.CaptureFixture[str]
) -> None:
    dag_run = run_dag("cmf_t_missing")

    assert dag_run.state == "failed"
    assert task_states(dag_run) == {("no_input", -1): ("failed", 1), ("no_output", -1): ("failed", 1)}
    assert not (cmf_project / "ran.txt").exists(), "the callable ran although its input was missing"
    q = query(cmf_project)
    no_input = only_execution(q, "cmf_t_missing", "no_input")
    assert no_input.state is ExecutionState.FAILED
    assert no_input.fact("error_type") == f"{ArtifactNotFoundError.__module__}.ArtifactNotFoundError"
    assert "data/absent.csv" in str(no_input.fact("error_message"))

    no_output = only_execution(q, "cmf_t_missing", "no_output")
    assert (cmf_project / "other.txt").exists(), "the callable did not run"
    assert no_output.state is ExecutionState.FAILED
    assert no_output.fact("error_type") == f"{ArtifactNotFoundError.__module__}.ArtifactNotFoundError"
    assert "out/never.csv" in str(no_output.fact("error_message"))
    assert asset_events(dag_run.run_id) == {}
    # Each try's log line, the one that never started included.
    log = capfd.readouterr().out
    error = "cmf_orchestrate.errors.ArtifactNotFoundError"
    assert f"CMF execution {no_input.id} FAILED: inputs -; outputs -; {error}" in log
    assert f"CMF execution {no_output.id} FAILED: inputs -; outputs -; " in log


def test_expand_over_four_items_is_four_executions(cmf_project: Path, run_dag) -> None:
    dag_run = run_dag("cmf_t_mapped")

    assert dag_run.state == "success"
    assert task_states(dag_run) == {(t, i): ("success", 1) for t in ("square", "cube") for i in range(4)}
    q = query(cmf_project)
    found = executions(q, "cmf_t_mapped", "square")
    assert sorted((e.fact("map_index"), e.parameters["x"], e.state) for e in found) == [
        (i, i + 1, ExecutionState.COMPLETE) for i in range(4)
    ]
    for execution in found:
        index = execution.fact("map_index")
        out = artifacts(q, execution.id, EventType.OUTPUT)
        assert {p: a.md5 for p, a in out.items()} == {f"mapped/{index}.txt": md5(cmf_project / f"mapped/{index}.txt")}
    cubes = executions(q, "cmf_t_mapped", "cube")
    assert sorted((e.fact("map_index"), e.parameters["suffix"], e.state) for e in cubes) == [
        (i, str(i), ExecutionState.COMPLETE) for i in range(4)
    ]
    events = asset_events(dag_run.run_id)
    assert sorted(events) == sorted(
        [f"cmf://mapped/{i}.txt" for i in range(4)] + [f"cmf://cubed/{i}.txt" for i in range(4)]
    )
    assert sorted(e["execution_id"] for e in events.values()) == sorted(e.id for e in [*found, *cubes])


def test_operator_rejects_what_is_not_an_artifact_declaration() -> None:
    from cmf_orchestrate.airflow import CmfOperator

    with pytest.raises(InvalidArgumentError, match="not an artifact declaration"):
        CmfOperator(task_id="bad", python_callable=print, outputs=[42])


def test_pipeline_name_from_operator_then_connection_then_dag_id(
    cmf_project: Path, run_dag, monkeypatch: pytest.MonkeyPatch
) -> None:
    dag_run = run_dag("cmf_t_pipeline")
    assert dag_run.state == "success"
    q = query(cmf_project)
    assert sorted(q.get_pipeline_names()) == ["cmf_t_pipeline", "named_by_operator"]
    assert only_execution(q, "named_by_operator", "named").fact("dag_id") == "cmf_t_pipeline"
    assert only_execution(q, "cmf_t_pipeline", "default").state is ExecutionState.COMPLETE

    monkeypatch.setenv(
        "AIRFLOW_CONN_CMF_DEFAULT",
        json.dumps(
            {"conn_type": "cmf", "extra": {"project_root": str(cmf_project), "store": "mlmd", "pipeline": "team"}}
        ),
    )
    run_dag("cmf_t_pipeline")
    assert sorted(q.get_pipeline_names()) == ["cmf_t_pipeline", "named_by_operator", "team"]
    assert len(executions(q, "named_by_operator", "named")) == 2
    assert only_execution(q, "team", "default").fact("dag_id") == "cmf_t_pipeline"


def test_template_that_cannot_render_in_a_manual_run_is_a_failed_execution_saying_why(
    cmf_project: Path, load_dag, capfd: pytest.CaptureFixture[str]
) -> None:
    # No logical date: a run triggered by hand in Airflow 3, where {{ ds }} is undefined.
    dag_run = load_dag("cmf_t_unrenderable").test(logical_date=None)

    assert dag_run.state == "failed" and dag_run.logical_date is None
    assert task_states(dag_run) == {
        ("dated", -1): ("failed", 1),
        ("dated_mapped", 0): ("failed", 1),
        ("dated_mapped", 1): ("failed", 1),
    }
    mapped = executions(query(cmf_project), "cmf_t_unrenderable", "dated_mapped")
    assert sorted((e.fact("map_index"), e.state) for e in mapped) == [(i, ExecutionState.FAILED) for i in (0, 1)]
    assert all("the template of 'outputs' cannot be rendered" in str(e.fact("state_reason")) for e in mapped)
    dated = only_execution(query(cmf_project), "cmf_t_unrenderable", "dated")
    assert dated.state is ExecutionState.FAILED
    assert (dated.fact("error_type"), dated.fact("error_message")) == (
        "jinja2.exceptions.UndefinedError",
        "'ds' is undefined",
    )
    reason = str(dated.fact("state_reason"))
    assert "the template of 'op_kwargs' cannot be rendered" in reason
    assert "no logical date" in reason and "{{ dag_run.run_after | ds }}" in reason
    assert dated.fact("run_id") == dag_run.run_id and dated.fact("logical_date") is None
    assert not (cmf_project / "data").exists()
    captured = capfd.readouterr()
    assert f"CMF execution {dated.id} FAILED: inputs -; outputs -; jinja2.exceptions.UndefinedError" in captured.out


def test_task_log_keeps_library_records_out_but_not_the_task_own(
    cmf_project: Path,
    load_dag,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import logging

    from cmf_orchestrate.airflow._logs import LIBRARY_LOGGERS

    def library_records() -> list[logging.LogRecord]:
        # dag.test() runs Airflow's own SQL in this process too: the recording's is on MLMD's tables.
        return [
            r
            for r in caplog.records
            if r.name != "urllib3.user_code"
            and r.name.split(".")[0] in LIBRARY_LOGGERS
            and (not r.name.startswith("sqlalchemy") or any(t in r.getMessage() for t in MLMD_TABLES))
        ]

    # A deployment that turned SQLAlchemy's statement log on: recording a try runs SQL.
    engine = logging.getLogger("sqlalchemy.engine")
    monkeypatch.setattr(engine, "level", logging.INFO)
    with caplog.at_level(logging.DEBUG):
        dag_run = load_dag("cmf_t_logging").test(logical_date=None)
    during_the_run = library_records()

    assert dag_run.state == "success"
    chatty = only_execution(query(cmf_project), "cmf_t_logging", "chatty")
    assert f"CMF execution {chatty.id} COMPLETE: inputs -; outputs -" in capfd.readouterr().out
    # The task's own records reach its log, whatever logger they use ...
    assert [r.getMessage() for r in caplog.records if r.name == "urllib3.user_code"] == [
        "user code may log through a library logger"
    ]
    # ... while the libraries that record the try write nothing there,
    assert during_the_run == []

    # ... unless [cmf] library_logs lets them in.
    caplog.clear()
    monkeypatch.setenv("AIRFLOW__CMF__LIBRARY_LOGS", "True")
    with caplog.at_level(logging.DEBUG):
        assert load_dag("cmf_t_logging").test(logical_date=None).state == "success"
    assert any(r.name.startswith("sqlalchemy.engine") for r in library_records())


def test_library_logs_are_held_back_only_inside_the_block(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from cmf_orchestrate.airflow._logs import quiet_libraries, user_code

    dvc = logging.getLogger("sqlalchemy.engine")
    with caplog.at_level(logging.INFO):
        with quiet_libraries():
            dvc.warning("held back")
            with user_code():
                dvc.warning("the task's own")
            dvc.error("held back too")
        dvc.warning("after")
        with quiet_libraries(enabled=False):
            dvc.warning("library_logs on")
    assert [r.getMessage() for r in caplog.records] == ["the task's own", "after", "library_logs on"]


def test_cmf_conn_id_option_names_the_default_connection(
    tmp_path: Path, load_dag, airflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    team = {"conn_type": "cmf", "extra": {"project_root": str(other), "store": "mlmd"}}
    monkeypatch.setenv("AIRFLOW_CONN_CMF_TEAM", json.dumps(team))
    monkeypatch.setenv("AIRFLOW__CMF__CONN_ID", "cmf_team")

    assert load_dag("cmf_t_logging").test(logical_date=None).state == "success"
    assert only_execution(query(other), "cmf_t_logging", "chatty").state is ExecutionState.COMPLETE


def test_mapped_tasks_declare_their_assets_and_alias_when_parsed(load_dag) -> None:
    """A mapped task is built without running the operator's ``__init__``: its outputs' alias must be
    declared at parse time all the same, or its map instances race to create it when they finish."""
    from airflow.sdk import Asset, AssetAlias

    dag = load_dag("cmf_t_mapped")
    for task_id in ("square", "cube"):
        mapped = dag.get_task(task_id)
        outlets = mapped.partial_kwargs.get("outlets", [])
        assert [o for o in outlets if isinstance(o, AssetAlias)] == [AssetAlias(name=f"cmf:cmf_t_mapped.{task_id}")]
    cube = dag.get_task("cube")
    assert Asset(name="cmf://mapped/0.txt", uri="cmf://mapped/0.txt") in cube.partial_kwargs.get("inlets", []) or any(
        getattr(i, "uri", "") == "cmf://mapped/0.txt" for i in cube.partial_kwargs.get("inlets", [])
    )
