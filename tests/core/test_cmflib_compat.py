"""CMF's own query library (cmflib's CmfQuery) reads a store written by cmf-orchestrate."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from mlmd_oracle import oracle_python
from test_seed_api import _run_pipeline

READER = """
import json, sys
from cmflib.cmfquery import CmfQuery
q = CmfQuery("mlmd")
model = sys.argv[1]
out = {
    "pipelines": q.get_pipeline_names(),
    "stages": q.get_pipeline_stages("get-started"),
    "train_executions": [e.id for e in q.get_all_exe_in_stage("get-started/train")],
    "train_frame": q.get_all_executions_in_stage("get-started/train")["Execution_uuid"].tolist(),
    "train_artifacts": sorted(q.get_all_artifacts_for_execution(
        q.get_all_exe_in_stage("get-started/train")[0].id)["type"].tolist()),
    "model_parents": sorted(q.get_all_parent_artifacts(model)["name"].tolist()),
    "raw_children": sorted(q.get_all_child_artifacts(sys.argv[2])["name"].tolist()),
}
print(json.dumps(out))
"""


def test_cmflib_reads_our_store(project: Path) -> None:
    python = oracle_python()
    writer = _run_pipeline("mlmd")
    from cmf_orchestrate import CmfQuery

    ours = CmfQuery("mlmd")
    model = ours.get_artifact("model/rf.pkl")
    raw = ours.get_artifact("data/raw.csv")
    env = {**os.environ, "CMF_LOG_FILE": str(project / "cmflib.log")}
    result = subprocess.run(
        [str(python), "-c", READER, model.name, raw.name],
        check=False,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    [train] = ours.get_all_exe_in_stage("get-started/train")
    assert seen["pipelines"] == ["get-started"]
    assert seen["stages"] == ["get-started/prepare", "get-started/train", "get-started/evaluate"]
    assert seen["train_executions"] == [train.id]
    assert seen["train_frame"] == [train.uuid]
    assert seen["train_artifacts"] == ["Dataset", "Environment", "Metrics", "Model", "Step_Metrics"]
    assert {a.name for a in ours.get_all_parent_artifacts("model/rf.pkl")} == set(seen["model_parents"])
    assert {a.name for a in ours.get_all_child_artifacts("data/raw.csv")} == set(seen["raw_children"])
    assert writer.pipeline_name == "get-started"
