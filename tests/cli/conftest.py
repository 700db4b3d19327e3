"""Stores made by real pipeline runs, and the command line as users run it."""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_testlib import _ENV_VARS, Recorded, checkpoint
from click.testing import CliRunner, Result

from cmf_orchestrate import CmfSettings, Dataset, Metrics, Model, RunInfo, task_run
from cmf_orchestrate.cli import cli
from cmf_orchestrate.run import code_fingerprint
from examples.get_started import steps


def _run(
    settings: CmfSettings,
    stage: str,
    func: Any,
    params: dict[str, Any],
    inputs: list[Any],
    outputs: list[Any],
    **kw: Any,
) -> int:
    info = RunInfo(
        "cmf",
        "get_started",
        stage,
        command=f"examples.get_started.steps:{func.__name__}",
        parameters=params,
        inputs=inputs,
        outputs=outputs,
        code_fingerprint=code_fingerprint(func),
    )
    with task_run(info, settings) as run:
        func(**kw)
    return run.execution_id


def _pipeline(settings: CmfSettings, ratio: float, trees: int) -> None:
    _run(
        settings, "prepare", steps.prepare, {"ratio": ratio},
        [Dataset("data/raw.csv")], [Dataset("data/train.csv"), Dataset("data/test.csv")],
        raw="data/raw.csv", train="data/train.csv", test="data/test.csv", ratio=ratio,
    )  # fmt: skip
    _run(
        settings, "featurize", steps.featurize, {},
        [Dataset("data/train.csv"), Dataset("data/test.csv")],
        [Dataset("features/train.csv"), Dataset("features/test.csv")],
        train="data/train.csv", test="data/test.csv", train_out="features/train.csv", test_out="features/test.csv",
    )  # fmt: skip
    _run(
        settings, "train", steps.train, {"n_estimators": trees},
        [Dataset("features/train.csv")], [Model("models/model.pkl", framework="sklearn")],
        features="features/train.csv", model="models/model.pkl", n_estimators=trees,
    )  # fmt: skip
    _run(
        settings, "evaluate", steps.evaluate, {},
        [Model("models/model.pkl"), Dataset("features/test.csv")], [Metrics("metrics/scores.json")],
        model="models/model.pkl", features="features/test.csv", metrics="metrics/scores.json",
    )  # fmt: skip


def _explode() -> None:
    raise RuntimeError("disk full")


@pytest.fixture(scope="session")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """Run the example pipeline twice (v1, then v2 with other parameters) and one failing task."""
    root = tmp_path_factory.mktemp("recorded") / "project"
    root.mkdir()
    saved_cwd = Path.cwd()
    saved_env = {k: os.environ.pop(k) for k in _ENV_VARS if k in os.environ}
    os.chdir(root)
    try:
        settings = CmfSettings(store="mlmd", project_root=root)
        steps.generate_raw("data/raw.csv", rows=240)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Some inputs do not have OOB scores")  # tiny forests
            _pipeline(settings, ratio=0.2, trees=12)
            _pipeline(settings, ratio=0.25, trees=16)
        with pytest.raises(RuntimeError):
            _run(settings, "publish", _explode, {"target": "prod"}, [Model("models/model.pkl")], [])
        from cmf_orchestrate import CmfQuery

        query = CmfQuery(settings=settings)
        models = sorted(query.store.artifacts_of_type("Model"), key=lambda a: a.id)
        failed = [e for e in query.store.executions() if e.state.value == "FAILED"]
        yield Recorded(root, models[0].name, models[1].name, models[0].md5, models[1].md5, failed[0].id)
    finally:
        os.chdir(saved_cwd)
        os.environ.update(saved_env)


@pytest.fixture
def copy_of(tmp_path: Path) -> Any:
    """A private copy of a recorded project, for commands that change it."""

    def make(source: Recorded, name: str = "copy") -> Path:
        checkpoint(source.root / "mlmd")
        target = tmp_path / name
        shutil.copytree(source.root, target, symlinks=True)
        return target

    return make


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Invoke the command group in-process (Click's runner), from a given directory."""
    for var in _ENV_VARS:
        monkeypatch.delenv(var, raising=False)

    def invoke(cwd: Path, *args: str, input: str | None = None) -> Result:
        monkeypatch.chdir(cwd)
        return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke
