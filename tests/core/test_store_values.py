"""NaN, infinities and integers beyond any column never fail a run, and read back as written.

On every backend: as execution parameters (seed API and task runs) and as execution
metrics, read back through :class:`CmfQuery`. (What ML Metadata itself reads from these
rows is checked in ``test_mlmd_compat.py``.)
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from cmf_orchestrate import CmfQuery, EventType, ExecutionState, RunInfo, cmf, current_run, task_run
from cmf_orchestrate.settings import CmfSettings

VALUES: dict[str, Any] = {
    "nan": math.nan,
    "inf": math.inf,
    "minus_inf": -math.inf,
    "int32_past_max": 2**31,
    "int32_past_min": -(2**31) - 1,
    "int64_max": 2**63 - 1,
    "int64_min": -(2**63),
    "int64_past_max": 2**63,
    "int64_past_min": -(2**63) - 1,
    "huge": 10**40,
    "float_max": sys.float_info.max,
    "float_tiny": 5e-324,
    "minus_zero": -0.0,
    "looks_tagged": "cmf:int:12",
    "looks_tagged_float": "cmf:float:nan",
    "text_nan": "nan",
    "flag": True,
}


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, bool):
        return got == int(want)
    if isinstance(want, float):
        if math.isnan(want):
            return isinstance(got, float) and math.isnan(got)
        return isinstance(got, float) and got == want
    return type(got) is type(want) and got == want


def _assert_round_trip(found: dict[str, Any], what: str, *, floats_as_text: bool = False) -> None:
    def ok(got: Any, want: Any) -> bool:
        # cmflib's create_execution records a float parameter as its text: so may the seed API.
        as_text = floats_as_text and isinstance(want, float) and got == str(want)
        return as_text or _same(got, want)

    wrong = {k: (found.get(k), v) for k, v in VALUES.items() if not ok(found.get(k), v)}
    assert not wrong, f"{what}: (read, written): {wrong}"


def test_seed_api_parameters_and_metrics_round_trip(store_url: str, project: Path) -> None:
    Path("in.csv").write_text("a\n1\n")
    writer = cmf.Cmf(filename=store_url, pipeline_name="values")
    writer.create_context("train")
    execution = writer.create_execution("train", dict(VALUES))
    writer.log_dataset("in.csv", "input")
    writer.log_execution_metrics("scores", dict(VALUES))
    writer.finalize()

    query = CmfQuery(store_url)
    [read] = query.get_all_exe_in_stage("values/train")
    assert read.id == execution.id and read.state is ExecutionState.COMPLETE
    _assert_round_trip(dict(read.custom_properties), "execution parameters", floats_as_text=True)
    [metrics] = [a for a in query.get_all_artifacts_for_execution(read.id) if a.kind == "Metrics"]
    _assert_round_trip(dict(metrics.custom_properties), "execution metrics")


def test_a_task_run_with_such_values_completes(store_url: str, project: Path) -> None:
    settings = CmfSettings(store=store_url, project_root=project)
    with task_run(RunInfo("cmf", "values", "task", parameters=dict(VALUES)), settings) as run:
        current_run().log_execution_metrics("scores", dict(VALUES))
        for step in range(2):
            current_run().log_metric("steps", {"step": step, **VALUES, "mixed": 10**40 if step else 1})
        current_run().commit_metrics("steps")

    query = CmfQuery(store_url)
    read = query.get_execution(run.execution_id)
    assert read is not None and read.state is ExecutionState.COMPLETE
    _assert_round_trip({k: v for k, v in read.custom_properties.items() if not k.startswith("cmf.")}, "parameters")
    outputs = query.get_artifacts_for_execution(run.execution_id)[EventType.OUTPUT]
    [metrics] = [a for a in outputs if a.kind == "Metrics"]
    _assert_round_trip(dict(metrics.custom_properties), "metrics")
    # Step metrics: a parquet file; a column holding an integer wider than 64 bits is text.
    [steps] = [a for a in outputs if a.kind == "Step_Metrics"]
    [row, _] = pq.read_table(project / str(steps.properties["url"])).to_pylist()
    assert math.isnan(row["nan"]) and row["inf"] == math.inf and row["minus_inf"] == -math.inf
    assert row["int64_max"] == 2**63 - 1 and row["float_max"] == sys.float_info.max
    assert row["int64_past_max"] == str(2**63) and row["huge"] == str(10**40) and row["mixed"] == "1"
    # Read again through the store's filtered listing: the same values.
    [listed] = query.executions(pipeline="values")
    assert listed.id == run.execution_id
    _assert_round_trip({k: v for k, v in listed.custom_properties.items() if not k.startswith("cmf.")}, "listing")
