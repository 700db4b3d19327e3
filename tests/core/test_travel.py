"""Artifacts travel with the metadata: workers sharing only a store and a DVC remote."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cmf_orchestrate import (
    ArtifactNotFoundError,
    CmfQuery,
    CmfSettings,
    Dataset,
    ExecutionState,
    RunInfo,
    task_run,
)
from cmf_orchestrate.errors import RemoteError
from cmf_orchestrate.transfer import open_remote, push


def _worker(tmp_path: Path, name: str, store: Path, remote: Path | None, **kw: object) -> CmfSettings:
    """A worker: its own brand-new project root, the shared store and remote."""
    root = tmp_path / name
    root.mkdir()
    return CmfSettings(store=str(store), project_root=root, remote=str(remote) if remote else None, **kw)  # type: ignore[arg-type]


def _info(stage: str, run_id: str = "run-1", **kw: object) -> RunInfo:
    facts = {"pipeline_run_id": run_id, "run_id": run_id}
    return RunInfo(orchestrator="cmf", pipeline="pipe", stage=stage, facts=facts, **kw)  # type: ignore[arg-type]


@pytest.fixture
def shared(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "shared-mlmd", tmp_path / "remote"


def _produce(settings: CmfSettings, path: str, data: bytes, run_id: str = "run-1") -> str:
    """Run a producing task; return the md5 of what it wrote."""
    with task_run(_info("produce", run_id, outputs=[Dataset(path)]), settings) as run:
        target = settings.project_root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return run.outputs[0].md5


def test_an_output_made_on_one_worker_is_an_input_on_another(tmp_path: Path, shared: tuple[Path, Path]) -> None:
    store, remote = shared
    a = _worker(tmp_path, "a", store, remote)
    b = _worker(tmp_path, "b", store, remote)
    _produce(a, "data/x.csv", b"1,2\n")
    assert not (b.project_root / "data").exists() and not (b.project_root / ".dvc").exists()
    seen: list[bytes] = []
    with task_run(_info("consume", inputs=[Dataset("data/x.csv")]), b) as run:
        seen.append((b.project_root / "data/x.csv").read_bytes())
    assert seen == [b"1,2\n"]
    assert [r.path for r in run.inputs if r.kind == "Dataset"] == ["data/x.csv"]
    # Nothing of value is left only on the worker: its environment file went to the remote too.
    env = next(r for r in run.inputs if r.kind == "Environment")
    assert open_remote(b.project_root, str(remote)).has(env.uri)


def test_a_directory_output_travels_whole(tmp_path: Path, shared: tuple[Path, Path]) -> None:
    store, remote = shared
    a = _worker(tmp_path, "a", store, remote)
    b = _worker(tmp_path, "b", store, remote)
    with task_run(_info("shard", outputs=[Dataset("shards")]), a):
        for i in range(3):
            (a.project_root / "shards").mkdir(exist_ok=True)
            (a.project_root / "shards" / f"{i}.txt").write_text(str(i))
    (b.project_root / "shards").mkdir()
    (b.project_root / "shards" / "stale.txt").write_text("left from an older run")
    with task_run(_info("gather", inputs=[Dataset("shards")]), b):
        names = sorted(p.name for p in (b.project_root / "shards").iterdir())
    assert names == ["0.txt", "1.txt", "2.txt"]


def test_a_stale_local_copy_is_replaced_by_the_recorded_version(
    tmp_path: Path, shared: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    store, remote = shared
    a = _worker(tmp_path, "a", store, remote)
    b = _worker(tmp_path, "b", store, remote)
    _produce(a, "x.csv", b"old\n", run_id="run-0")
    _produce(b, "x.csv", b"older, on b\n", run_id="run-other")  # b's copy, from another run
    _produce(a, "x.csv", b"new\n")
    caplog.set_level(logging.INFO, logger="cmf_orchestrate")
    with task_run(_info("consume", inputs=[Dataset("x.csv")]), b):
        assert (b.project_root / "x.csv").read_bytes() == b"new\n"
    assert len([r for r in caplog.records if "differs from the version" in r.getMessage()]) == 1
    # inputs = "local" keeps the worker's own bytes.
    (b.project_root / "x.csv").write_bytes(b"mine\n")
    with task_run(_info("consume", inputs=[Dataset("x.csv")]), b.replace(inputs="local")):
        assert (b.project_root / "x.csv").read_bytes() == b"mine\n"


def test_the_same_pipeline_run_is_preferred(tmp_path: Path, shared: tuple[Path, Path]) -> None:
    store, remote = shared
    a = _worker(tmp_path, "a", store, remote)
    b = _worker(tmp_path, "b", store, remote)
    _produce(a, "x.csv", b"run 1\n", run_id="run-1")
    _produce(a, "x.csv", b"run 2\n", run_id="run-2")  # newer, but of another run
    with task_run(_info("consume", "run-1", inputs=[Dataset("x.csv")]), b):
        assert (b.project_root / "x.csv").read_bytes() == b"run 1\n"


def test_a_missing_object_names_path_md5_and_remote(tmp_path: Path, shared: tuple[Path, Path]) -> None:
    store, remote = shared
    a = _worker(tmp_path, "a", store, None)  # produced without a remote: the bytes stay on a
    b = _worker(tmp_path, "b", store, remote)
    md5 = _produce(a, "x.csv", b"only on a\n")
    ran: list[int] = []
    with pytest.raises(ArtifactNotFoundError) as raised, task_run(_info("consume", inputs=[Dataset("x.csv")]), b):
        ran.append(1)
    assert not ran
    message = str(raised.value)
    assert "'x.csv'" in message and md5 in message and str(remote) in message
    failed = CmfQuery(settings=b).executions(state=ExecutionState.FAILED)
    assert [e.type for e in failed] == ["consume"]
    # Nobody ever recorded it: the message says so.
    with pytest.raises(ArtifactNotFoundError, match="no COMPLETE execution recorded it"), task_run(
        _info("consume", inputs=[Dataset("never.csv")]), b
    ):
        pass


def test_a_failed_push_fails_the_attempt(tmp_path: Path, shared: tuple[Path, Path]) -> None:
    store, _ = shared
    blocked = tmp_path / "remote-is-a-file"
    blocked.write_text("a file where the remote's folder should be: every upload fails")
    a = _worker(tmp_path, "a", store, blocked)
    with pytest.raises(RemoteError, match="push to DVC remote") as raised:
        _produce(a, "x.csv", b"1\n")
    assert str(blocked) in str(raised.value)
    [failed] = CmfQuery(settings=a).executions(state=ExecutionState.FAILED)
    assert failed.fact("error_type") == "cmf_orchestrate.errors.RemoteError"
    assert not CmfQuery(settings=a).executions(state=ExecutionState.COMPLETE)


def test_repeated_pushes_send_nothing_new(tmp_path: Path, shared: tuple[Path, Path]) -> None:
    store, remote = shared
    a = _worker(tmp_path, "a", store, remote)
    md5 = _produce(a, "x.csv", b"1\n")
    files = sorted(p for p in remote.rglob("*") if p.is_file())
    report = push(a.project_root, [md5], str(remote))
    assert report.present == (md5,) and not report.transferred
    _produce(a, "x.csv", b"1\n")  # same bytes again
    assert sorted(p for p in remote.rglob("*") if p.is_file()) == files


def test_a_push_counts_what_another_worker_pushed_as_there_and_the_rest_as_missing(
    tmp_path: Path, shared: tuple[Path, Path]
) -> None:
    store, remote = shared
    a = _worker(tmp_path, "a", store, remote)
    b = _worker(tmp_path, "b", store, remote)
    on_remote = _produce(a, "x.csv", b"made and pushed on a\n")
    absent = "f" * 32
    report = push(b.project_root, [on_remote, absent], str(remote))
    assert report.present == (on_remote,) and report.missing == (absent,) and not report.transferred
