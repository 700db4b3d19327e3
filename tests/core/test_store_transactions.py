"""How many write transactions a recorded stage costs, counted on the real SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event

from cmf_orchestrate import CmfQuery, Dataset, RunInfo, cmf, task_run
from cmf_orchestrate.settings import CmfSettings
from cmf_orchestrate.store._engine import database_for


@contextmanager
def _counting_writes(url: str) -> Iterator[list[str]]:
    """The write transactions begun on the store while the block runs."""
    engine = database_for(CmfSettings(store=url).location).engine
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("BEGIN IMMEDIATE"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def _stage(writer: cmf.Cmf, n: int) -> None:
    writer.create_context("train")
    writer.create_execution("train", {"round": n})
    writer.log_dataset("a.csv", "input")
    writer.log_dataset("b.csv", "input")
    Path("model.bin").write_bytes(f"model {n}".encode())
    writer.log_model("model.bin", "output")
    writer.finalize()


def test_a_seed_api_stage_is_two_write_transactions(project: Path) -> None:
    Path("a.csv").write_text("a\n1\n")
    Path("b.csv").write_text("b\n2\n")
    writer = cmf.Cmf(filename="mlmd", pipeline_name="tx")
    _stage(writer, 0)  # the first stage also creates types and contexts
    with _counting_writes("mlmd") as writes:
        _stage(writer, 1)
    assert len(writes) == 2
    query = CmfQuery("mlmd")
    [_, second] = query.get_all_exe_in_stage("tx/train")
    recorded = query.get_all_artifacts_for_execution(second.id)
    assert sorted(a.kind for a in recorded) == ["Dataset", "Dataset", "Environment", "Model"]


def test_a_task_run_is_one_transaction_to_open_and_one_to_close(project: Path) -> None:
    Path("in.csv").write_text("x\n")
    settings = CmfSettings(store="mlmd")
    info = RunInfo("cmf", "tx", "step", inputs=[Dataset("in.csv")], outputs=[Dataset("out.csv")])
    with task_run(info, settings):
        Path("out.csv").write_text("y\n")
    with _counting_writes("mlmd") as writes, task_run(info, settings) as run:
        assert len(writes) == 1  # open: execution, environment, inputs, association, attributions
        Path("out.csv").write_text("z\n")
    assert len(writes) == 2  # close: outputs and state
    assert run.execution.state.value == "COMPLETE"


def test_logged_artifacts_are_recorded_when_read_or_at_exit(project: Path) -> None:
    Path("a.csv").write_text("a\n")
    writer = cmf.Cmf(filename="mlmd", pipeline_name="lazy")
    writer.create_context("s")
    execution = writer.create_execution("s")
    logged = writer.log_dataset("a.csv", "input")
    assert not logged.recorded
    assert logged.path == "a.csv" and logged.id > 0  # reading it records it
    artifacts = CmfQuery("mlmd").get_all_artifacts_for_execution(execution.id)
    assert "a.csv" in {a.path for a in artifacts}


def test_a_script_that_never_finalizes_loses_nothing_it_logged(project: Path) -> None:
    import subprocess
    import sys

    Path("a.csv").write_text("a\n")
    script = (
        "from cmf_orchestrate import cmf\n"
        "w = cmf.Cmf(filename='mlmd', pipeline_name='unfinished')\n"
        "w.create_context('s')\n"
        "w.create_execution('s')\n"
        "w.log_dataset('a.csv', 'input')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=project)
    query = CmfQuery("mlmd")
    [execution] = query.get_all_exe_in_stage("unfinished/s")
    assert "a.csv" in {a.path for a in query.get_all_artifacts_for_execution(execution.id)}
