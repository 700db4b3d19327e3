"""``CmfOperator(reuse=True)`` and ``@task.cmf(reuse=True)``: a try whose key matches an earlier one is not run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow_testlib import executions, query

from cmf_orchestrate import ExecutionState


def _runs(root: Path) -> int:
    log = root / "runs.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_a_second_run_is_reused_and_its_xcom_comes_back(cmf_project: Path, run_dag: Any) -> None:
    (cmf_project / "in.txt").write_text("a b c")
    assert run_dag("cmf_reuse").state == "success"
    produced = (cmf_project / "out/tally.txt").read_bytes()
    (cmf_project / "out/tally.txt").unlink()
    (cmf_project / "xcom.json").unlink()

    assert run_dag("cmf_reuse").state == "success"
    assert _runs(cmf_project) == 1, "the callable ran again"
    assert (cmf_project / "out/tally.txt").read_bytes() == produced
    assert json.loads((cmf_project / "xcom.json").read_text()) == {"words": 3}
    first, second = executions(query(cmf_project), "cmf_reuse", "tally")
    assert first.state is ExecutionState.COMPLETE and second.state is ExecutionState.CACHED
    assert second.fact("reused_execution") == first.id

    # Another DAG, another parameter: it runs.
    assert run_dag("cmf_reuse_scaled").state == "success"
    assert _runs(cmf_project) == 2
    # One byte of the input changed: it runs.
    (cmf_project / "in.txt").write_text("a b d")
    assert run_dag("cmf_reuse").state == "success"
    assert _runs(cmf_project) == 3
    assert [e.state for e in executions(query(cmf_project), "cmf_reuse", "tally")][-1] is ExecutionState.COMPLETE


def test_the_decorator_reuses_too(cmf_project: Path, run_dag: Any) -> None:
    (cmf_project / "in.txt").write_text("xyz")
    assert run_dag("cmf_reuse_decorated").state == "success"
    (cmf_project / "xcom.json").unlink()
    assert run_dag("cmf_reuse_decorated").state == "success"
    assert _runs(cmf_project) == 1
    assert json.loads((cmf_project / "xcom.json").read_text()) == [1, 2, 3]
    states = [e.state for e in executions(query(cmf_project), "cmf_reuse_decorated", "decorated")]
    assert states == [ExecutionState.COMPLETE, ExecutionState.CACHED]
