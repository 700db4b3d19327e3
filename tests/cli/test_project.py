"""init (idempotent, DVC remote, project file), artifact push/pull, reconcile, graph sync."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from cli_testlib import Recorded, checkpoint

from cmf_orchestrate import CmfQuery, CmfSettings, ExecutionState
from cmf_orchestrate.versioning import Versioner

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib


def _dvc_config(root: Path) -> Any:
    """The repository's DVC configuration, as DVC reads it."""
    from dvc.config import Config

    return Config(dvc_dir=str(root / ".dvc"))


def test_init_is_idempotent_and_keeps_an_existing_repository(run_cli: Any, tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    first = run_cli(root, "init", "--remote", "../remote", "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.output)
    assert report["dvc"] == "initialised" and report["git"] == "found" and report["config"] == "created"
    assert (root / ".git").is_dir() and (root / ".dvc" / "config").is_file() and (root / "mlmd").is_file()
    config = _dvc_config(root)
    assert config["core"]["remote"] == "storage"
    assert config["remote"]["storage"]["url"] == str(tmp_path / "remote")
    settings = tomllib.loads((root / "cmf-orchestrate.toml").read_text())
    assert settings == {"store": {"url": "mlmd"}, "remote": {"url": str(tmp_path / "remote")}}

    second = run_cli(root, "init", "--json")
    assert json.loads(second.output)["dvc"] == "kept" and json.loads(second.output)["config"] == "unchanged"
    assert _dvc_config(root)["remote"]["storage"]["url"] == str(tmp_path / "remote")

    third = run_cli(root, "init", "--store", "postgresql://me:hunter2@db.example:5432/meta", "--json")
    assert third.exit_code == 1  # the server is not there: nothing is written
    assert "hunter2" not in third.output
    assert tomllib.loads((root / "cmf-orchestrate.toml").read_text())["store"]["url"] == "mlmd"

    fourth = run_cli(root, "init", "--store", "meta/mlmd", "--neo4j-uri", "bolt://graph:7687", "--neo4j-user", "neo")
    assert fourth.exit_code == 0, fourth.output
    assert tomllib.loads((root / "cmf-orchestrate.toml").read_text()) == {
        "store": {"url": "meta/mlmd"},
        "graph": {"enabled": True, "uri": "bolt://graph:7687", "user": "neo"},
        "remote": {"url": str(tmp_path / "remote")},
    }
    loaded = CmfSettings.from_env(environ={}, project_root=root)
    assert loaded.location.path == root / "meta" / "mlmd" and loaded.graph and loaded.neo4j_user == "neo"
    assert loaded.remote == str(tmp_path / "remote")


def _git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}  # fmt: skip
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def test_push_then_pull_into_a_fresh_clone_restores_identical_bytes(
    recorded: Recorded, copy_of: Any, run_cli: Any, tmp_path: Path
) -> None:
    root = copy_of(recorded, "origin")
    remote = tmp_path / "dvc-remote"
    _git(root, "init", "-q")
    assert run_cli(root, "init", "--remote", str(remote)).exit_code == 0
    pushed = run_cli(root, "artifact", "push", "--pipeline", "get_started", "--json")
    assert pushed.exit_code == 0, pushed.output
    report = json.loads(pushed.output)
    assert report["transferred"] == report["objects"] > 0 and report["failed"] == []
    again = json.loads(run_cli(root, "artifact", "push", "--json").output)
    assert again["transferred"] == 0 and again["already_there"] == report["objects"] and again["missing"] == []

    # What a user commits: .dvc files, DVC config, project file and the metadata store (not the data).
    dvc_files = [str(p.relative_to(root)) for p in root.rglob("*.dvc") if p.is_file()]
    assert "models/model.pkl.dvc" in dvc_files
    checkpoint(root / "mlmd")  # the store runs in WAL mode; commit a self-contained file
    _git(root, "add", "mlmd", "cmf-orchestrate.toml", ".dvc/config", *dvc_files)
    _git(root, "commit", "-q", "-m", "run")
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(root), str(clone))
    tracked = ["data/raw.csv", "data/train.csv", "features/train.csv", "models/model.pkl", "metrics/scores.json"]
    for path in tracked:
        assert not (clone / path).exists(), f"{path} is DVC-tracked, not in git"
    assert not (clone / ".dvc" / "cache").exists()

    pulled = run_cli(clone, "artifact", "pull", "--pipeline", "get_started", "--json")
    assert pulled.exit_code == 0, pulled.output
    result = json.loads(pulled.output)
    assert result["failed"] == [] and result["conflicts"] == []
    for path in tracked:
        assert (clone / path).read_bytes() == (root / path).read_bytes(), path
    model = CmfQuery(settings=CmfSettings(store="mlmd", project_root=clone)).get_artifact("models/model.pkl")
    assert model.md5 == recorded.md5_v2
    status = subprocess.run(
        [str(Path(sys.executable).with_name("dvc")), "status", "--quiet"], cwd=clone, capture_output=True, check=False
    )
    assert status.returncode == 0, status.stdout  # DVC agrees the work tree matches its .dvc files

    # A changed file is not overwritten unless asked.
    (clone / "data" / "raw.csv").write_text("edited\n")
    conflict = run_cli(clone, "artifact", "pull")
    assert conflict.exit_code == 1 and "data/raw.csv" in conflict.output and "--force" in conflict.output
    forced = run_cli(clone, "artifact", "pull", "--force")
    assert forced.exit_code == 0, forced.output
    assert (clone / "data" / "raw.csv").read_bytes() == (root / "data" / "raw.csv").read_bytes()


def test_push_reports_objects_absent_from_the_cache_as_missing(
    recorded: Recorded, copy_of: Any, run_cli: Any, tmp_path: Path
) -> None:
    root = copy_of(recorded)
    assert run_cli(root, "init", "--remote", str(tmp_path / "remote")).exit_code == 0
    # The first model version was made on another worker: its bytes are not in this cache.
    (root / ".dvc" / "cache" / "files" / "md5" / recorded.md5_v1[:2] / recorded.md5_v1[2:]).unlink()
    result = run_cli(root, "artifact", "push", "--json")
    assert result.exit_code == 1
    report, _ = json.JSONDecoder().raw_decode(result.output)
    assert report["missing"] == [recorded.md5_v1] and report["missing_paths"] == ["models/model.pkl"]
    assert report["already_there"] == 0 and report["transferred"] == report["objects"] - 1
    text = run_cli(root, "artifact", "push")
    assert text.exit_code == 1 and "1 missing" in text.output
    assert f"models/model.pkl ({recorded.md5_v1})" in text.output and "already there" in text.output


def test_pull_by_path_artifact_or_execution_and_absent_objects_are_named(
    recorded: Recorded, copy_of: Any, run_cli: Any, tmp_path: Path
) -> None:
    root = copy_of(recorded, "origin")
    remote = tmp_path / "remote"
    assert run_cli(root, "init", "--remote", str(remote)).exit_code == 0
    assert run_cli(root, "artifact", "push").exit_code == 0

    def fresh(name: str) -> Path:
        clone = copy_of(recorded, name)
        shutil.rmtree(clone / ".dvc" / "cache")
        for path in ["data/raw.csv", "features/train.csv", "models/model.pkl"]:
            (clone / path).unlink()
        return clone

    by_path = fresh("by-path")
    result = run_cli(by_path, "artifact", "pull", "models/model.pkl", "-r", str(remote), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["restored"] == ["models/model.pkl"]
    assert (by_path / "models/model.pkl").read_bytes() == (root / "models/model.pkl").read_bytes()
    assert not (by_path / "data/raw.csv").exists()

    by_artifact = fresh("by-artifact")
    result = run_cli(by_artifact, "artifact", "pull", "--artifact", recorded.md5_v1, "-r", str(remote), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["restored"] == ["models/model.pkl"]
    assert CmfQuery(settings=CmfSettings(project_root=by_artifact)).store.artifacts_by_uri(recorded.md5_v1)
    assert Versioner(by_artifact).hash("models/model.pkl").md5 == recorded.md5_v1

    by_execution = fresh("by-execution")
    [train] = [
        e for e in CmfQuery(settings=CmfSettings(project_root=root)).executions(stage="train", pipeline="get_started")
    ][:1]
    result = run_cli(by_execution, "artifact", "pull", "--execution", str(train.id), "-r", str(remote), "--json")
    assert result.exit_code == 0, result.output
    assert "features/train.csv" in json.loads(result.output)["restored"]

    # An object the remote lost: the pull fails, naming the path and the md5.
    lost = Versioner(root).hash("data/raw.csv").md5
    (remote / "files" / "md5" / lost[:2] / lost[2:]).unlink()
    missing = fresh("missing")
    result = run_cli(missing, "artifact", "pull", "data/raw.csv", "-r", str(remote))
    assert result.exit_code == 1
    assert f"data/raw.csv ({lost})" in result.output and "neither" in result.output


def test_push_without_a_remote_is_a_clear_error(recorded: Recorded, copy_of: Any, run_cli: Any) -> None:
    root = copy_of(recorded)
    result = run_cli(root, "artifact", "push")
    assert result.exit_code == 1
    assert result.output.startswith("cmf-orchestrate: error: no DVC remote for ")
    # The hint names the command that sets one up.
    assert "set one with `cmf-orchestrate init --remote URL`" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_reconcile_fails_executions_of_dead_workers(recorded: Recorded, copy_of: Any, run_cli: Any) -> None:
    root = copy_of(recorded)
    # A worker that opens an execution and dies without closing it.
    script = textwrap.dedent(
        """
        import os
        from cmf_orchestrate import CmfSettings, RunInfo
        from cmf_orchestrate.run import open_run
        run = open_run(RunInfo("cmf", "get_started", "train"), CmfSettings(store="mlmd"))
        print(run.execution_id, flush=True)
        os._exit(0)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=True)
    abandoned_id = int(done.stdout.split()[-1])
    query = CmfQuery(settings=CmfSettings(store="mlmd", project_root=root))
    before = query.get_execution(abandoned_id)
    assert before is not None and before.state is ExecutionState.RUNNING

    listed = run_cli(root, "executions", "--state", "RUNNING", "--json")
    assert [e["id"] for e in json.loads(listed.output)] == [abandoned_id]
    result = run_cli(root, "reconcile", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [e["id"] for e in report["abandoned"]] == [abandoned_id]
    after = query.store.execution(abandoned_id)
    assert after is not None and after.state is ExecutionState.FAILED and after.fact("state_reason") == "abandoned"
    again = run_cli(root, "reconcile")
    assert again.exit_code == 0 and again.output.strip().endswith("0 running on other hosts left alone")
    assert run_cli(root, "reconcile", "--older-than", "soon").exit_code == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_graph_sync_with_the_graph_down_fails_in_one_line(
    recorded: Recorded, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    status = run_cli(recorded.root, "graph", "status", "--json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.output) == {"pending": 0}  # recorded with the graph off: nothing pending
    no_uri = run_cli(recorded.root, "graph", "sync")
    assert no_uri.exit_code == 1 and "neo4j" in no_uri.output.lower()
    monkeypatch.setenv("NEO4J_URI", f"bolt://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("NEO4J_USER_NAME", "neo4j")
    monkeypatch.setenv("NEO4J_PASSWD", "pa55word")
    down = run_cli(recorded.root, "graph", "sync", "--rebuild", "--json")
    assert down.exit_code == 1
    assert "pa55word" not in down.output
    assert down.output.strip().splitlines()[-1].startswith("cmf-orchestrate: error: graph sync incomplete")


# Read before the fixtures clear the environment for every CLI test.
_NEO4J = {k: os.environ[k] for k in ("NEO4J_URI", "NEO4J_USER_NAME", "NEO4J_PASSWD") if os.environ.get(k)}


@pytest.mark.skipif("NEO4J_URI" not in _NEO4J, reason="NEO4J_URI is not set: no Neo4j server to sync to")
def test_graph_sync_rebuild_against_a_real_server(
    recorded: Recorded, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in _NEO4J.items():
        monkeypatch.setenv(name, value)
    result = run_cli(recorded.root, "graph", "sync", "--rebuild", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["written"] == report["pending"] == 9 and report["failed"] == 0
