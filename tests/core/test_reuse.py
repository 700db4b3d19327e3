"""Reuse by content: an attempt whose inputs, parameters, code and environment already ran is not run again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cmf_orchestrate import CmfQuery, CmfSettings, Dataset, ExecutionState, Model, RunInfo, task_run
from cmf_orchestrate.store import open_store


def scale(source: Path, target: Path, factor: int) -> dict[str, int]:
    """The task: read numbers, write them scaled, return how many."""
    numbers = [int(x) * factor for x in source.read_text().split()]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(" ".join(map(str, numbers)))
    return {"count": len(numbers)}


def scale_differently(source: Path, target: Path, factor: int) -> dict[str, int]:
    """Another version of the task's code."""
    numbers = [int(x) * factor + 0 for x in source.read_text().split()]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(" ".join(map(str, numbers)))
    return {"count": len(numbers)}


class Attempts:
    """Runs a task the way an adapter does, counting how often its body really ran."""

    def __init__(self, settings: CmfSettings) -> None:
        self.settings = settings
        self.ran = 0

    def __call__(
        self,
        func: Callable[..., Any] = scale,
        factor: int = 2,
        *,
        pipeline: str = "numbers",
        stage: str = "scale",
        out: str = "out/scaled.txt",
        model: bool = False,
    ) -> tuple[Any, Any]:
        outputs = [Model(out) if model else Dataset(out)]
        info = RunInfo(
            orchestrator="cmf",
            pipeline=pipeline,
            stage=stage,
            parameters={"factor": factor},
            inputs=[Dataset("in.txt")],
            outputs=outputs,
        )
        root = self.settings.project_root
        with task_run(info, self.settings, reuse=True, func=func) as run:
            if run.reused is not None:
                value = run.reused.value
            else:
                self.ran += 1
                value = func(root / "in.txt", root / out, factor)
                run.keep_result(value)
        return run, value


@pytest.fixture
def attempts(project: Path) -> Attempts:
    (project / "in.txt").write_text("1 2 3")
    return Attempts(CmfSettings(project_root=project))


def test_the_same_inputs_parameters_and_code_are_reused(attempts: Attempts, project: Path) -> None:
    first, value = attempts()
    assert attempts.ran == 1 and first.execution.state is ExecutionState.COMPLETE and value == {"count": 3}
    produced = (project / "out/scaled.txt").read_bytes()
    (project / "out/scaled.txt").unlink()

    second, again = attempts()
    assert attempts.ran == 1, "the task body ran again"
    assert again == {"count": 3}
    assert (project / "out/scaled.txt").read_bytes() == produced
    assert second.execution.state is ExecutionState.CACHED
    assert second.execution.fact("reused_execution") == first.execution_id
    # The same input and output artifacts as the execution it reused.
    assert [a.id for a in second.outputs] == [a.id for a in first.outputs]
    assert {a.id for a in second.inputs} == {a.id for a in first.inputs}


@pytest.mark.parametrize("change", ["input", "parameter", "code"])
def test_any_change_of_the_key_runs_again(attempts: Attempts, project: Path, change: str) -> None:
    attempts()
    if change == "input":
        (project / "in.txt").write_text("1 2 4")
        attempts()
    elif change == "parameter":
        attempts(factor=3)
    else:
        attempts(func=scale_differently)
    assert attempts.ran == 2


def test_reuse_crosses_pipelines_and_stages_and_restores_templated_paths(attempts: Attempts, project: Path) -> None:
    first, _ = attempts()
    second, _ = attempts(pipeline="other", stage="rescale", out="elsewhere/result.txt")
    assert attempts.ran == 1 and second.execution.state is ExecutionState.CACHED
    assert (project / "elsewhere/result.txt").read_bytes() == (project / "out/scaled.txt").read_bytes()
    assert second.execution.fact("reused_execution") == first.execution_id


def test_lineage_through_a_cached_execution_reaches_the_producer(attempts: Attempts) -> None:
    first, _ = attempts(model=True)
    second, _ = attempts(model=True)
    assert second.execution.state is ExecutionState.CACHED
    [model] = second.outputs
    assert model.id == first.outputs[0].id  # the producer's own model artifact
    producers = CmfQuery(settings=attempts.settings).get_producer_execution(model.name)
    assert {p.id for p in producers} == {first.execution_id, second.execution_id}


def test_outputs_that_cannot_be_had_run_again_with_one_line(
    attempts: Attempts, project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, _ = attempts()
    md5 = first.outputs[0].md5
    cached = project / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    cached.chmod(0o644)
    cached.unlink()
    (project / "out/scaled.txt").unlink()
    caplog.set_level(logging.INFO, logger="cmf_orchestrate")
    second, _ = attempts()
    assert attempts.ran == 2 and second.execution.state is ExecutionState.COMPLETE
    lines = [r.getMessage() for r in caplog.records if "cannot be reused" in r.getMessage()]
    assert len(lines) == 1 and md5 in lines[0] and f"execution {first.execution_id}" in lines[0]


def test_a_directory_output_is_restored_whole(project: Path) -> None:
    (project / "in.txt").write_text("3")
    settings = CmfSettings(project_root=project)
    ran: list[int] = []

    def attempt() -> Any:
        info = RunInfo("cmf", "shards", "split", inputs=[Dataset("in.txt")], outputs=[Dataset("parts")])
        with task_run(info, settings, reuse=True, func=split) as run:
            if run.reused is None:
                ran.append(1)
                split(project / "in.txt", project / "parts")
        return run

    attempt()
    (project / "parts" / "0.txt").write_text("damaged")
    (project / "parts" / "extra.txt").write_text("not an output")
    run = attempt()
    assert ran == [1] and run.execution.state is ExecutionState.CACHED
    assert sorted(p.name for p in (project / "parts").iterdir()) == ["0.txt", "1.txt", "2.txt"]
    assert (project / "parts" / "0.txt").read_text() == "part 0"


def split(source: Path, target: Path) -> None:
    target.mkdir(exist_ok=True)
    for i in range(int(source.read_text())):
        (target / f"{i}.txt").write_text(f"part {i}")


def test_code_without_source_is_never_reused(attempts: Attempts, caplog: pytest.LogCaptureFixture) -> None:
    # Code built at run time has no source to fingerprint.
    built = eval("lambda source, target, factor: scale(source, target, factor)", {"scale": scale})
    caplog.set_level(logging.WARNING, logger="cmf_orchestrate")
    attempts(func=built, stage="built")
    attempts(func=built, stage="built")
    assert attempts.ran == 2
    lines = [r.getMessage() for r in caplog.records if "cannot be fingerprinted" in r.getMessage()]
    assert len(lines) == 1 and "built" in lines[0]


def opaque(source: Path, target: Path, factor: int) -> object:
    scale(source, target, factor)
    return object()


def test_a_return_value_that_cannot_be_kept_refuses_reuse(attempts: Attempts, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="cmf_orchestrate")
    attempts(func=opaque, stage="opaque")
    attempts(func=opaque, stage="opaque")
    assert attempts.ran == 2
    lines = [r.getMessage() for r in caplog.records if "cannot be persisted" in r.getMessage()]
    assert len(lines) == 1 and "object" in lines[0]


def test_across_workers_the_outputs_come_from_the_remote(tmp_path: Path) -> None:
    store, remote = tmp_path / "mlmd", tmp_path / "remote"
    roots = [tmp_path / "a", tmp_path / "b"]
    for root in roots:
        root.mkdir()
        (root / "in.txt").write_text("5 6")
    a, b = (Attempts(CmfSettings(store=str(store), project_root=r, remote=str(remote))) for r in roots)
    first, _ = a()
    second, value = b()
    assert b.ran == 0 and value == {"count": 2}
    assert second.execution.fact("reused_execution") == first.execution_id
    assert (roots[1] / "out/scaled.txt").read_text() == "10 12"
    assert open_store(b.settings.location).execution(second.execution_id).state is ExecutionState.CACHED  # type: ignore[union-attr]


def test_the_cli_traces_reuse_and_explains_misses(attempts: Attempts, project: Path) -> None:
    import json

    from click.testing import CliRunner

    from cmf_orchestrate.cli import cli

    first, _ = attempts()
    cached, _ = attempts()
    changed, _ = attempts(factor=5)

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--project-root", str(project), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    listed = json.loads(run("executions", "--state", "CACHED", "--json"))
    assert [e["id"] for e in listed] == [cached.execution_id]
    assert f"execution {first.execution_id}" in run("show", str(cached.execution_id))
    assert f"reused execution {first.execution_id}" in run("show", "--why", str(cached.execution_id))
    why = run("show", "--why", str(changed.execution_id))
    assert "these differ: parameters" in why and "inputs" not in why


def _race(root: str, store: str, remote: str, barrier: Any, results: Any) -> None:
    """One of two attempts racing for the same key."""
    settings = CmfSettings(store=store, project_root=root, remote=remote)
    info = RunInfo("cmf", "shards", "split", inputs=[Dataset("in.txt")], outputs=[Dataset("parts")])
    barrier.wait()
    with task_run(info, settings, reuse=True, func=split) as run:
        if run.reused is None:
            split(Path(root) / "in.txt", Path(root) / "parts")
    results.put(run.execution.state.value)


@pytest.mark.parametrize("earlier", [True, False], ids=["after-a-complete-run", "first-runs"])
def test_racing_attempts_never_leave_a_half_restored_output(tmp_path: Path, earlier: bool) -> None:
    """Two attempts with one key start together: both reuse, or both run (or one of each), and
    every output is whole. Without an earlier run they run on two workers sharing the store and
    remote (two attempts writing one folder in place at once would race in the task's own code);
    after one, both restore into the same folder."""
    import multiprocessing

    store, remote = str(tmp_path / "mlmd"), str(tmp_path / "remote")
    roots = [tmp_path / "a", tmp_path / "b"]
    for root in roots:
        root.mkdir()
        (root / "in.txt").write_text("40")
    if earlier:
        info = RunInfo("cmf", "shards", "split", inputs=[Dataset("in.txt")], outputs=[Dataset("parts")])
        with task_run(info, CmfSettings(store=store, project_root=roots[0], remote=remote), reuse=True, func=split):
            split(roots[0] / "in.txt", roots[0] / "parts")
        (roots[0] / "parts" / "3.txt").write_text("damaged")
        roots = [roots[0], roots[0]]
    context = multiprocessing.get_context("spawn")  # a fork of this threaded test process could deadlock
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_race, args=(str(root), store, remote, barrier, results)) for root in roots]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    states = sorted(results.get(timeout=5) for _ in workers)
    assert states == (["CACHED", "CACHED"] if earlier else ["COMPLETE", "COMPLETE"]) or states == [
        "CACHED",
        "COMPLETE",
    ]
    for root in set(roots):
        names = sorted((root / "parts").iterdir(), key=lambda p: int(p.stem))
        assert [p.name for p in names] == [f"{i}.txt" for i in range(40)]
        assert all(p.read_text() == f"part {i}" for i, p in enumerate(names))
        assert not [p for p in root.iterdir() if p.name.startswith(".parts.")]
