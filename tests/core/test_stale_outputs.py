"""A declared output the attempt did not write is never recorded as produced.

Its mtime is before the attempt started: it is recorded with the DECLARED_OUTPUT event,
a warning names the path and both times, and lineage never shows the execution as its
producer. With ``strict_outputs`` the attempt fails instead.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from cmf_orchestrate import (
    ArtifactError,
    CmfQuery,
    CmfSettings,
    Dataset,
    EventType,
    ExecutionState,
    RunInfo,
    cmf,
    task_run,
)
from cmf_orchestrate.settings import CONFIG_FILE


def _info(**kw: object) -> RunInfo:
    base: dict[str, object] = {"orchestrator": "cmf", "pipeline": "pipe", "stage": "step"}
    base.update(kw)
    return RunInfo(**base)  # type: ignore[arg-type]


def _age(path: Path, seconds: float) -> None:
    """Date a file back, as one written by an earlier run."""
    then = time.time_ns() - int(seconds * 1e9)
    os.utime(path, ns=(then, then))


def _producers(query: CmfQuery, path: str) -> set[int]:
    return {e.id for e in query.get_producer_execution(path)}


def test_an_output_left_from_before_is_declared_not_produced(project: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = CmfSettings()
    Path("in.csv").write_text("a\n1\n")
    with task_run(_info(outputs=[Dataset("old.csv")]), settings) as earlier:
        Path("old.csv").write_text("made by an earlier run\n")
    _age(Path("old.csv"), 120)

    info = _info(inputs=[Dataset("in.csv")], outputs=[Dataset("old.csv"), Dataset("new.csv")])
    with caplog.at_level(logging.WARNING, logger="cmf_orchestrate.run"), task_run(info, settings) as run:
        # The task writes one output under the project root and misses the other
        # (as task code writing a relative path under another working directory does).
        Path("new.csv").write_text("fresh\n")

    assert run.execution.state is ExecutionState.COMPLETE
    assert [a.path for a in run.outputs] == ["new.csv"]
    assert [a.path for a in run.declared_outputs] == ["old.csv"]
    [warning] = [r for r in caplog.records if "old.csv" in r.getMessage()]
    message = warning.getMessage()
    assert "not written by this attempt" in message and "DECLARED_OUTPUT" in message
    assert "last modified" in message and "before the attempt started at" in message
    assert message.count(str(time.gmtime().tm_year)) >= 2  # both times, in ISO 8601

    query = CmfQuery(settings=settings)
    events = query.get_artifacts_for_execution(run.execution_id)
    assert [a.path for a in events[EventType.OUTPUT] if a.kind == "Dataset"] == ["new.csv"]
    assert [a.path for a in events[EventType.DECLARED_OUTPUT]] == ["old.csv"]
    assert _producers(query, "old.csv") == {earlier.execution_id}
    assert _producers(query, "new.csv") == {run.execution_id}
    upstream = query.lineage("old.csv", "up")
    assert f"execution:{run.execution_id}" not in {n.id for n in upstream.nodes}
    assert f"execution:{earlier.execution_id}" in {n.id for n in upstream.nodes}
    downstream = query.lineage("in.csv", "down")
    assert "old.csv" not in {n.label for n in downstream.nodes if n.kind == "artifact"}
    assert "new.csv" in {n.label for n in downstream.nodes if n.kind == "artifact"}


def test_a_directory_with_one_file_rewritten_is_produced(project: Path) -> None:
    for name in ("a.txt", "b.txt"):
        (project / "out").mkdir(exist_ok=True)
        (project / "out" / name).write_text(name)
        _age(project / "out" / name, 60)
    _age(project / "out", 60)
    with task_run(_info(outputs=[Dataset("out")]), CmfSettings()) as run:
        (project / "out" / "b.txt").write_text("rewritten in place")
    assert [a.path for a in run.outputs] == ["out"] and not run.declared_outputs

    # Later, an attempt that writes nothing. (File times come from a coarse clock: a write and
    # the next attempt's start in the same tick carry the same time, so the files are aged.)
    for path in (project / "out" / "a.txt", project / "out" / "b.txt", project / "out"):
        _age(path, 30)
    with task_run(_info(outputs=[Dataset("out")]), CmfSettings()) as untouched:
        pass
    assert [a.path for a in untouched.declared_outputs] == ["out"] and not untouched.outputs


def test_strict_outputs_fails_the_attempt_naming_the_path(project: Path) -> None:
    Path("stale.csv").write_text("old\n")
    _age(Path("stale.csv"), 30)
    settings = CmfSettings(strict_outputs=True)
    with (
        pytest.raises(ArtifactError, match=r"\(strict_outputs\): 'stale\.csv' \(last modified ") as info,
        task_run(_info(outputs=[Dataset("stale.csv")]), settings) as run,
    ):
        pass
    assert "before the attempt started at" in str(info.value)
    execution = CmfQuery(settings=settings).get_execution(run.execution_id)
    assert execution is not None and execution.state is ExecutionState.FAILED
    assert "stale.csv" in str(execution.fact("error_message"))
    assert not run.outputs and not run.declared_outputs


def test_a_cache_hit_keeps_its_outputs(project: Path) -> None:
    from cmf_orchestrate.run import record_cached

    Path("out.csv").write_text("b\n")
    _age(Path("out.csv"), 30)
    execution = record_cached(_info(outputs=[Dataset("out.csv")]), CmfSettings(strict_outputs=True))
    assert execution.state is ExecutionState.CACHED


def test_seed_api_logs_a_stale_output_as_declared(project: Path, caplog: pytest.LogCaptureFixture) -> None:
    Path("before.csv").write_text("x\n")
    _age(Path("before.csv"), 10)
    writer = cmf.Cmf(filename="mlmd", pipeline_name="seed")
    writer.create_context("stage")
    execution = writer.create_execution("stage")
    Path("after.csv").write_text("y\n")
    with caplog.at_level(logging.WARNING, logger="cmf_orchestrate.run"):
        stale = writer.log_dataset("before.csv", "output")
    fresh = writer.log_dataset("after.csv", "output")
    writer.finalize()
    assert any("before.csv" in r.getMessage() for r in caplog.records)
    query = CmfQuery("mlmd")
    events = query.get_artifacts_for_execution(execution.id)
    assert [a.id for a in events[EventType.DECLARED_OUTPUT]] == [stale.id]
    assert [a.id for a in events[EventType.OUTPUT]] == [fresh.id]
    assert execution.id not in _producers(query, "before.csv")
    assert query.get_execution(execution.id).state is ExecutionState.COMPLETE  # type: ignore[union-attr]


def test_seed_api_strict_outputs_from_the_environment(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMF_STRICT_OUTPUTS", "true")
    Path("before.csv").write_text("x\n")
    _age(Path("before.csv"), 10)
    writer = cmf.Cmf(filename="mlmd", pipeline_name="seed")
    writer.create_context("stage")
    execution = writer.create_execution("stage")
    with pytest.raises(ArtifactError, match=r"'before\.csv'"):
        writer.log_dataset("before.csv", "output")
    recorded = CmfQuery("mlmd").get_execution(execution.id)
    assert recorded is not None and recorded.state is ExecutionState.FAILED


def test_strict_outputs_setting_sources(project: Path) -> None:
    assert CmfSettings().strict_outputs is False
    assert CmfSettings.from_env({"CMF_STRICT_OUTPUTS": "1"}).strict_outputs is True
    (project / CONFIG_FILE).write_text("strict_outputs = true\n")
    assert CmfSettings.from_env({}).strict_outputs is True
    assert CmfSettings.from_env({"CMF_STRICT_OUTPUTS": "off"}).strict_outputs is False
    assert "strict_outputs=True" in repr(CmfSettings(strict_outputs="yes"))  # type: ignore[arg-type]


def test_an_unwritten_output_stays_unproduced_through_export_and_import(project: Path, tmp_path: Path) -> None:
    from cmf_orchestrate.interchange import export_document, import_document
    from cmf_orchestrate.store import open_store

    Path("old.csv").write_text("from an earlier run\n")
    _age(Path("old.csv"), 60)
    with task_run(_info(outputs=[Dataset("old.csv")]), CmfSettings(store="mlmd")):
        pass  # the task never writes its declared output
    document = export_document(CmfQuery("mlmd").store)
    events = [e for run in document["Pipeline"][0]["stages"][0]["executions"] for e in run["events"]]
    assert 1 in {e["type"] for e in events}  # ML Metadata's DECLARED_OUTPUT
    copy = tmp_path / "copy.sqlite"
    import_document(open_store(CmfSettings(store=str(copy)).location), document)
    query = CmfQuery(str(copy))
    assert _producers(query, "old.csv") == set()
    [execution] = query.get_all_exe_in_stage("pipe/step")
    assert [a.path for a in query.get_artifacts_for_execution(execution.id)[EventType.DECLARED_OUTPUT]] == ["old.csv"]
