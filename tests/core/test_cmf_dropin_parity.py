"""The same CMF scripts, run once with CMF's library and once with ours: every CmfQuery answer agrees.

CMF's library (``cmflib``) lives in ``.venv-compat`` and runs as a subprocess. Each project is
a git repository with a DVC remote, as CMF requires. The scripts differ only in the package
they import. Every ``CmfQuery`` method is then asked, by both libraries, of both stores; the
answers must be the same, ids, times, uuids and host names aside.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlmd_oracle import COMPAT_PYTHON, oracle_python

pytest.importorskip("pandas")

SCRIPTS = {
    "prepare.py": """
from LIB import cmf
w = cmf.Cmf(filepath="mlmd", pipeline_name="demo")
w.create_context(pipeline_stage="prepare", custom_properties={"team": "a"})
w.create_execution(execution_type="Prepare", custom_properties={"ratio": 0.2, "seed": 7, "tags": ["a", "b"]})
w.log_dataset("data/raw.csv", "input", custom_properties={"source": "gen"},
              label="data/labels.csv", label_properties={"user": "ron"})
open("data/train.csv", "w").write("a,b\\n1,2\\n")
open("data/test.csv", "w").write("a,b\\n3,4\\n")
w.log_dataset("data/train.csv", "output")
w.log_dataset("data/test.csv", "output", custom_properties={"rows": 1, "share": 0.5})
w.finalize()
""",
    "train.py": """
from LIB import cmf
w = cmf.Cmf(filepath="mlmd", pipeline_name="demo")
w.create_context(pipeline_stage="train")
w.create_execution(execution_type="Train", custom_properties={"epochs": 2})
w.log_dataset("data/train.csv", "input")
open("model.pkl", "wb").write(b"weights")
w.log_model("model.pkl", "output", model_framework="sk", model_type="rf", model_name="rf")
for i in range(2):
    w.log_metric("training", {"loss": 1.0 / (i + 1), "step": i})
w.commit_metrics("training")
w.log_execution_metrics("scores", {"acc": 0.5, "n": 3})
w.finalize()
""",
    "evaluate.py": """
from LIB import cmf
w = cmf.Cmf(filepath="mlmd", pipeline_name="demo")
w.log_model("model.pkl", "input")
w.log_dataset("data/test.csv", "input")
ds = w.create_dataslice("slice-a")
ds.add_data("data/sl/f1.csv", {"k": "v"})
ds.add_data("data/sl/f2.csv")
ds.commit({"p": 1})
w.log_execution_metrics("eval", {"auc": 0.9})
w.log_validation_output("v1.2", {"passed": 1, "score": 0.75, "note": "ok"})
w.finalize()
""",
}

QUERY = r"""
import json, re, sys
import pandas as pd
from LIB.cmfquery import CmfQuery

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ENV = re.compile(r"[\w./-]*python_env_[0-9a-f]{32}\.(?:txt|yaml)")
HEX40 = re.compile(r"\b[0-9a-f]{40}\b")
IDS = {"id", "execution_id", "Context_ID", "Pipeline_id", "type_id", "source", "target"}
TIMES = {"create_time_since_epoch", "last_update_time_since_epoch", "milliseconds_since_epoch"}

def text(v):
    v = UUID.sub("<uuid>", v)
    v = ENV.sub("<env>", v)
    v = HEX40.sub("<commit>", v)
    return re.sub(r":\d+(?=$|:)", ":<id>", v)

def value(k, v):
    if k in IDS:
        return "<id>"
    if k in TIMES:
        return "<time>"
    if isinstance(v, float) and v != v:
        return "NaN"
    if isinstance(v, str):
        return text(v)
    if hasattr(v, "WhichOneof"):
        return text(str(v))
    return v

def frame(df):
    if df is None:
        return None
    if not isinstance(df, pd.DataFrame):
        return {"type": type(df).__name__}
    keep = [c for c in df.columns if not str(c).startswith("custom_properties_cmf.")]
    df = df[keep]
    rows = []
    for r in df.to_dict("records"):
        row = {k: value(k, v) for k, v in r.items()}
        if row.get("type") == "Environment":
            row = {k: ("<env>" if k in ("uri", "Commit", "url", "name") else v) for k, v in row.items()}
        rows.append(row)
    return {"columns": [str(c) for c in df.columns], "dtypes": [str(t) for t in df.dtypes],
            "rows": sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str)),
            "order": [json.dumps(r, sort_keys=True, default=str) for r in rows]}

def execution(e):
    return {"name": text(e.name), "type": e.type if hasattr(e, "type") else None,
            "properties": {k: value(k, getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None)
                           for k, v in sorted(e.properties.items())},
            "custom": {k: value(k, getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None)
                       for k, v in sorted(e.custom_properties.items()) if not k.startswith("cmf.")}}

q = CmfQuery("mlmd")
names = q.get_all_artifacts()
def named(prefix):
    return next(n for n in names if n.startswith(prefix))
raw, train, model = named("data/raw.csv:"), named("data/train.csv:"), named("model.pkl:")
out = {}
def ask(key, fn):
    try:
        out[key] = fn()
    except Exception as exc:
        out[key] = {"error": type(exc).__name__}

stages = q.get_pipeline_stages("demo")
ex = {s.split("/")[-1]: [e.id for e in q.get_all_exe_in_stage(s)] for s in stages}
all_ids = sorted(i for ids in ex.values() for i in ids)
pid = q.get_pipeline_id("demo")
ask("get_pipeline_names", q.get_pipeline_names)
ask("get_pipeline_id", lambda: q.get_pipeline_id("nope"))
ask("get_pipeline_stages", lambda: stages)
ask("get_all_exe_in_stage", lambda: {s: [execution(e) for e in q.get_all_exe_in_stage(s)] for s in stages})
ask("get_all_executions_by_ids_list", lambda: frame(q.get_all_executions_by_ids_list(all_ids)))
ask("get_all_artifacts_by_context", lambda: frame(q.get_all_artifacts_by_context("demo")))
ask("get_all_artifacts_by_ids_list", lambda: frame(q.get_all_artifacts_by_ids_list(
    [int(i) for i in q.get_all_artifacts_for_executions(all_ids)["id"]])))
ask("get_all_executions_in_stage", lambda: {s: frame(q.get_all_executions_in_stage(s)) for s in stages})
ask("get_all_artifacts", lambda: sorted(value("name", n) for n in q.get_all_artifacts()
                                         if "python_env" not in n))
ask("get_artifact", lambda: {n: frame(q.get_artifact(n)) for n in (raw, train, model, "nope")})
ask("get_all_artifacts_for_execution", lambda: {s: frame(q.get_all_artifacts_for_execution(ids[0]))
                                                 for s, ids in ex.items()})
ask("get_all_artifact_types", lambda: sorted(q.get_all_artifact_types()))
ask("get_all_executions_for_artifact", lambda: {n: frame(q.get_all_executions_for_artifact(n))
                                                 for n in (raw, train, model)})
ask("get_one_hop_child_artifacts", lambda: {n: frame(q.get_one_hop_child_artifacts(n)) for n in (raw, train)})
ask("get_one_hop_child_artifacts_pipeline", lambda: frame(q.get_one_hop_child_artifacts(train, pid)))
ask("get_one_hop_parent_executions", lambda: [execution(e) for e in q.get_one_hop_parent_executions(ex["evaluate"])])
ask("get_one_hop_parent_executions_ids", lambda: len(q.get_one_hop_parent_executions_ids(ex["evaluate"], pid)))
ask("get_executions_with_execution_ids", lambda: frame(q.get_executions_with_execution_ids(all_ids)))
ask("get_all_child_artifacts", lambda: frame(q.get_all_child_artifacts(raw)))
ask("get_one_hop_parent_artifacts", lambda: frame(q.get_one_hop_parent_artifacts(model)))
ask("get_all_parent_artifacts", lambda: frame(q.get_all_parent_artifacts(model)))
ask("get_all_parent_executions_by_id", lambda: [[value("x", x) for x in e] for e in
                                                q.get_all_parent_executions_by_id(ex["evaluate"])[0]])
ask("get_all_parent_executions", lambda: frame(q.get_all_parent_executions(model)))
ask("find_producer_execution", lambda: execution(q.find_producer_execution(model)))
ask("get_metrics", lambda: frame(q.get_metrics(named("cmf_artifacts/"))))
ask("get_all_executions_in_pipeline", lambda: frame(q.get_all_executions_in_pipeline("demo")))
ask("get_all_artifacts_for_executions", lambda: frame(q.get_all_artifacts_for_executions(all_ids)))
ask("get_one_hop_parent_artifacts_with_id", lambda: frame(q.get_one_hop_parent_artifacts_with_id(
    int(q.get_artifact(model)["id"][0]))))
ask("get_all_executions_for_artifact_id", lambda: frame(q.get_all_executions_for_artifact_id(
    int(q.get_artifact(raw)["id"][0]))))
ask("get_all_executions_by_stage", lambda: [execution(e) for e in q.get_all_executions_by_stage(
    q.get_pipeline_id("demo") + 1)])
def nested(v, k=""):
    if isinstance(v, dict):
        return {key: nested(x, key) for key, x in v.items()
                if not str(key).startswith("cmf.") and key not in ("type_id", "Python_Env")}
    if isinstance(v, list):
        return sorted((nested(x) for x in v), key=lambda x: json.dumps(x, sort_keys=True, default=str))
    return value(k, v)
def dump():
    doc = nested(json.loads(q.dumptojson("demo")))
    for stage in doc["Pipeline"][0]["stages"]:
        for execution in stage["executions"]:
            for event in execution["events"]:
                if event["artifact"]["type"] == "Environment":
                    event["artifact"] = {"type": "Environment"}
    return doc
ask("dumptojson", dump)
print(json.dumps(out, default=str))
"""


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def _compat_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CMF_", "NEO4J_"))}
    env.update(
        {
            "PATH": f"{COMPAT_PYTHON.parent}{os.pathsep}{env.get('PATH', '')}",
            "CMF_LOG_FILE": str(root.parent / f"{root.name}-cmflib.log"),
            "DVC_NO_ANALYTICS": "1",
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
        }
    )
    env.pop("PYTHONPATH", None)
    return env


def _project(root: Path, remote: Path) -> None:
    """A git repository with a DVC default remote and the input files, as ``cmf init`` leaves it."""
    root.mkdir()
    env = _compat_env(root)
    _git(root, "init", "-q")
    _git(root, "remote", "add", "origin", "https://example.com/demo.git")
    dvc = str(COMPAT_PYTHON.parent / "dvc")
    subprocess.run([dvc, "init", "-q"], cwd=root, env=env, check=True, capture_output=True)
    subprocess.run([dvc, "remote", "add", "-d", "store", str(remote)], cwd=root, env=env, check=True)
    (root / "data" / "sl").mkdir(parents=True)
    (root / "data" / "raw.csv").write_text("a,b\n1,2\n3,4\n")
    (root / "data" / "labels.csv").write_text("label\n0\n1\n")
    (root / "data" / "sl" / "f1.csv").write_text("1\n")
    (root / "data" / "sl" / "f2.csv").write_text("2\n")
    # CMF's data slices need the folder of their files versioned.
    subprocess.run([dvc, "add", "-q", "data/sl"], cwd=root, env=env, check=True, capture_output=True)
    # Only DVC's files: a data file git already tracks cannot be added to DVC.
    _git(root, "add", ".dvc", "data/sl.dvc", "data/.gitignore")
    subprocess.run(["git", "commit", "-qm", "init"], cwd=root, env=env, check=True, capture_output=True)


def _run(root: Path, python: str, lib: str, code: str, name: str, env: dict[str, str]) -> str:
    (root / name).write_text(code.replace("LIB", lib))
    done = subprocess.run([python, name], cwd=root, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{lib} {name}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    python = str(oracle_python())
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    base = tmp_path_factory.mktemp("dropin")
    roots = {"theirs": base / "theirs", "ours": base / "ours"}
    for root in roots.values():
        _project(root, base / "remote")  # one DVC remote: artifact urls name the same objects
    ours_env = _compat_env(roots["ours"])
    ours_env["PATH"] = os.environ.get("PATH", "")
    ours_env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    for script, code in SCRIPTS.items():
        _run(roots["theirs"], python, "cmflib", code, script, _compat_env(roots["theirs"]))
        _run(roots["ours"], sys.executable, "cmf_orchestrate", code, script, ours_env)
    return roots


def _ask(root: Path, reader: str) -> dict[str, Any]:
    if reader == "cmflib":
        out = _run(root, str(COMPAT_PYTHON), "cmflib", QUERY, "query_cmflib.py", _compat_env(root))
    else:
        env = _compat_env(root)
        env["PATH"] = os.environ.get("PATH", "")
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
        out = _run(root, sys.executable, "cmf_orchestrate", QUERY, "query_ours.py", env)
    answers: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return answers


def _differences(left: dict[str, Any], right: dict[str, Any]) -> list[str]:
    return [
        f"{key}:\n  {json.dumps(left.get(key), sort_keys=True)[:1500]}"
        f"\n  {json.dumps(right.get(key), sort_keys=True)[:1500]}"
        for key in sorted(set(left) | set(right))
        if _plain(left.get(key)) != _plain(right.get(key))
    ]


def _plain(value: Any) -> Any:
    """Compare rows as sets (both stores are read in id order, and ids differ between them), and
    columns with their types as a mapping: a single-row frame lists custom properties in the order
    of ML Metadata's proto map, which has no defined order."""
    if isinstance(value, dict) and "columns" in value and "dtypes" in value:
        typed = dict(zip(value["columns"], value["dtypes"], strict=True))
        return {"columns": sorted(typed.items()), "rows": _plain(value["rows"])}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "order"}
    if isinstance(value, list):
        items = [_plain(v) for v in value]
        # Lists of executions follow the order of Python sets of ids in CMF: compare them as sets.
        return (
            sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
            if all(isinstance(v, dict) for v in items)
            else items
        )
    return value


def test_cmflib_query_gives_the_same_answers_on_both_stores(stores: dict[str, Path]) -> None:
    theirs, ours = _ask(stores["theirs"], "cmflib"), _ask(stores["ours"], "cmflib")
    assert not [k for k, v in theirs.items() if isinstance(v, dict) and "error" in v], theirs
    problems = _differences(theirs, ours)
    assert not problems, "\n".join(problems)


def test_our_query_on_their_store_answers_like_theirs(stores: dict[str, Path]) -> None:
    theirs = _ask(stores["theirs"], "cmflib")
    ours = _ask(stores["theirs"], "cmf_orchestrate")
    problems = _differences(theirs, ours)
    assert not problems, "\n".join(problems)


def test_their_query_on_our_store_answers_like_ours_on_theirs(stores: dict[str, Path]) -> None:
    mixed = _ask(stores["ours"], "cmflib")
    ours_on_theirs = _ask(stores["theirs"], "cmf_orchestrate")
    problems = _differences(mixed, ours_on_theirs)
    assert not problems, "\n".join(problems)


def test_cmf_scripts_leave_cmf_layout_on_disk(stores: dict[str, Path]) -> None:
    for root in stores.values():
        metrics = list(root.glob("cmf_artifacts/*/metrics/training"))
        slices = list(root.glob("cmf_artifacts/*/dataslice/slice-a"))
        assert len(metrics) == 1 and len(slices) == 1, root
        # One environment (the same interpreter ran every script) in CMF's folder and name.
        environments = list(root.glob("cmf_artifacts/python_env_*.txt"))
        assert len(environments) == 1 and re.fullmatch(r"python_env_[0-9a-f]{32}\.txt", environments[0].name), root
    assert re.fullmatch(r"[0-9a-f-]{36}", metrics[0].parent.parent.name)
