"""The package as users install it: the wheel's metadata, and a fresh Python 3.10 environment.

``pip install "cmf-orchestrate[airflow]"`` or ``[prefect]`` must resolve with plain pip, no
overrides, so the wheel may not declare what Airflow 3 or Prefect 3 cannot have (ml-metadata
and its ``attrs<24``), nor a Python ceiling. The fresh environment gets the locked versions
of the run-time dependencies (``uv export``, installed from uv's cache), then the wheel, on
the oldest supported Python; there the core modules import and a seed-API stage records.

The checks do not depend on the environment running them: ``make test`` runs them once, in
the Prefect environment.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
SUPPORTED = ("3.10", "3.11", "3.12", "3.13")
EXTRAS = {"airflow": "apache-airflow", "prefect": "prefect", "postgresql": "pg8000", "mysql": "pymysql"}
# ml-metadata (and cmflib, which needs it) pin attrs<24 and stop at Python 3.11 on common
# Linux images: they are the test oracle, never a dependency.
FORBIDDEN = {"ml-metadata", "cmflib", "attrs", "tensorflow", "protobuf"}


def _installed(distribution: str) -> bool:
    # A distribution, not an importable name: tests/prefect would pass for "prefect".
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _installed("prefect"), reason="the packaging checks run once per `make test`, in the Prefect environment"
)


def _uv() -> list[str]:
    """The uv command, as the Makefile runs it (``python3.11 -m uv``) or on the PATH."""
    found = shutil.which("uv")
    if found:
        return [found]
    for python in dict.fromkeys((sys.executable, shutil.which("python3.11"))):
        if (
            python
            and subprocess.run([python, "-m", "uv", "--version"], capture_output=True, check=False).returncode == 0
        ):
            return [python, "-m", "uv"]
    if IN_CI:
        pytest.fail("uv is missing (the Makefile installs it with `python3.11 -m pip install uv`)")
    pytest.skip("uv is not installed")


def _run(cmd: list[str], cwd: Path | None = None, timeout: float = 300) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "UV_NO_PROGRESS": "1"}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, as a release would be."""
    out = tmp_path_factory.mktemp("dist")
    _run([*_uv(), "build", "--quiet", "--wheel", "--out-dir", str(out), str(REPO)])
    (built,) = out.glob("cmf_orchestrate-*.whl")
    return built


def _metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(archive.read(name).decode())


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def test_the_wheel_declares_what_plain_pip_can_install_everywhere(wheel: Path) -> None:
    meta = _metadata(wheel)
    assert meta["Requires-Python"] == ">=3.10"
    classifiers = meta.get_all("Classifier") or []
    assert {f"Programming Language :: Python :: {v}" for v in SUPPORTED} <= set(classifiers)
    assert meta.get_all("Project-URL"), "no Project-URL"
    assert meta["License-Expression"] == "Apache-2.0"

    requires = meta.get_all("Requires-Dist") or []
    core = [r for r in requires if "extra ==" not in r]
    assert not FORBIDDEN & {_name(r) for r in requires}, requires
    assert {"sqlalchemy", "dvc", "dvc-data"} <= {_name(r) for r in core}
    # The orchestrators and drivers are extras: the core installs without them.
    assert not set(EXTRAS.values()) & {_name(r) for r in core}, core

    extras = set(meta.get_all("Provides-Extra") or [])
    assert set(EXTRAS) <= extras and "dev" not in extras, extras
    for extra, package in EXTRAS.items():
        assert any(_name(r) == package and f"extra == '{extra}'" in r for r in requires), (extra, requires)


def test_the_wheel_holds_the_package_and_its_entry_points(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entries = archive.read(entry_points).decode()
    package = [n for n in names if ".dist-info/" not in n]
    assert all(n.startswith("cmf_orchestrate/") for n in package), package
    assert "cmf_orchestrate/py.typed" in package
    assert "cmf_orchestrate/_static/lineage.html" in package
    assert not [n for n in package if "__pycache__" in n or n.endswith(".pyc")]
    assert "cmf-orchestrate = cmf_orchestrate.cli:main" in entries
    assert "[apache_airflow_provider]" in entries and "[prefect.collections]" in entries


def test_the_project_resolves_without_overrides() -> None:
    """An override or constraint would let this repository resolve what users' pip cannot."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    uv = project.get("tool", {}).get("uv", {})
    assert not {"override-dependencies", "constraint-dependencies"} & set(uv), uv


def _python310() -> str:
    """An interpreter of the oldest supported Python (pyenv's, or one uv finds or fetches)."""
    pyenv = sorted(Path.home().glob(".pyenv/versions/3.10*/bin/python3.10"))
    return str(pyenv[-1]) if pyenv else shutil.which("python3.10") or "3.10"


_STAGE = textwrap.dedent(
    """
    import importlib, json, math, pkgutil, sys
    from pathlib import Path

    import cmf_orchestrate
    from cmf_orchestrate import Cmf
    from cmf_orchestrate.store import open_store

    adapters = ("cmf_orchestrate.airflow", "cmf_orchestrate.prefect")
    modules = [m.name for m in pkgutil.walk_packages(cmf_orchestrate.__path__, "cmf_orchestrate.")]
    for name in modules:
        if not name.startswith(adapters) and not name.endswith("__main__"):
            importlib.import_module(name)

    Path("data").mkdir()
    Path("data/raw.csv").write_text("a,b\\n1,2\\n")
    Path("data/labels.csv").write_text("y\\n1\\n")
    cmf = Cmf(filename="mlmd", pipeline_name="seed")
    cmf.create_context(pipeline_stage="prepare")
    cmf.create_execution(execution_type="prepare", custom_properties={"ratio": 0.2, "big": 2**70})
    metrics = cmf.log_execution_metrics("scores", {"nan": math.nan, "big": 2**70})
    cmf.log_dataset("data/raw.csv", "input")
    cmf.log_dataset("data/labels.csv", "input")
    Path("data/train.csv").write_text("a,b,y\\n1,2,1\\n")
    cmf.log_dataset("data/train.csv", "output")
    execution = cmf.finalize()
    store = open_store(cmf.settings.location)
    stored = store.executions_by_id([execution.id])[0]
    [scores] = store.artifacts_by_id([metrics.id])
    print(json.dumps({
        "python": "%d.%d" % sys.version_info[:2],
        "state": str(stored.state),
        "big": stored.custom_properties["big"] == 2**70,
        "nan": math.isnan(scores.custom_properties["nan"]) and scores.custom_properties["big"] == 2**70,
        "loaded": sorted(m for m in ("airflow", "prefect", "ml_metadata") if m in sys.modules),
    }))
    """
)


@pytest.mark.slow
def test_a_fresh_python_310_environment_records_a_seed_api_stage(wheel: Path, tmp_path: Path) -> None:
    uv = _uv()
    requirements = tmp_path / "requirements.txt"
    export = ["--frozen", "--no-dev", "--no-emit-project", "--no-header", "--format", "requirements-txt"]
    extras = ["--extra", "postgresql", "--extra", "mysql"]
    _run([*uv, "export", "--quiet", *export, *extras, "-o", str(requirements)], cwd=REPO)
    venv = tmp_path / "venv"
    _run([*uv, "venv", "--quiet", "--python", _python310(), str(venv)])
    python = venv / "bin" / "python"
    _run([*uv, "pip", "install", "--quiet", "--python", str(python), "-r", str(requirements)])
    _run([*uv, "pip", "install", "--quiet", "--python", str(python), "--no-deps", str(wheel)])
    _run([*uv, "pip", "check", "--quiet", "--python", str(python)])

    project = tmp_path / "project"
    project.mkdir()
    report = json.loads(_run([str(python), "-c", _STAGE], cwd=project).strip().splitlines()[-1])
    assert report == {"python": "3.10", "state": "COMPLETE", "big": True, "nan": True, "loaded": []}

    cli = str(venv / "bin" / "cmf-orchestrate")
    pipelines = json.loads(_run([cli, "pipelines", "--json"], cwd=project))
    assert [p["name"] for p in pipelines] == ["seed"], pipelines
    # An ISO time in UTC with a trailing Z, as Python 3.11 reads it.
    since = json.loads(_run([cli, "executions", "--since", "2000-01-01T00:00:00Z", "--json"], cwd=project))
    assert len(since) == 1, since
