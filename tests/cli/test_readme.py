"""Every Python and shell block of README.md runs as written, in a fresh folder.

A block runs in the environment it is written for: one importing Airflow (or calling the
``airflow`` command) in the Airflow environment, one importing Prefect in the Prefect
environment, any other in both. ``make test`` runs this file in both environments, so
every block runs. Markers in an HTML comment on the line before a block:

- ``<!-- readme-test: continues -->``: runs in the folder of the block before it, after it.
- ``<!-- readme-test: skip: <reason> -->``: not runnable as it stands, for the reason given.

The full examples the README names run the same way: the file alone, copied into a fresh
folder, with only the installed package beside it.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_testlib import _ENV_VARS

from cmf_orchestrate.facts import RESERVED_FACTS

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
RUNNABLE = {"python", "sh", "bash", "shell"}
_FENCE = re.compile(r"^```([\w-]*)\s*$")
_MARKER = re.compile(r"^<!--\s*readme-test:\s*(.*?)\s*-->$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    line: int
    lang: str
    code: str
    marker: str = ""

    @property
    def runnable(self) -> bool:
        return self.lang in RUNNABLE

    @property
    def environment(self) -> str:
        """``airflow``, ``prefect`` or ``any``."""
        if self.lang == "python":
            if re.search(r"^\s*(from|import) airflow\b", self.code, re.MULTILINE):
                return "airflow"
            if re.search(r"^\s*(from|import) (prefect\b|cmf_orchestrate\.prefect)", self.code, re.MULTILINE):
                return "prefect"
            return "any"
        if re.search(r"^\s*airflow\s", self.code, re.MULTILINE):
            return "airflow"
        if re.search(r"^\s*prefect\s", self.code, re.MULTILINE):
            return "prefect"
        return "any"


def readme_blocks(text: str) -> list[Block]:
    """The fenced blocks of a markdown text, with the marker comment before each, if any."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        previous = next((lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = _MARKER.match(previous)
        blocks.append(
            Block(start + 1, fence.group(1).lower(), "\n".join(body) + "\n", marker.group(1) if marker else "")
        )
        i += 1
    return blocks


def _chains() -> list[list[Block]]:
    """Runnable blocks grouped: a block and the blocks that continue in its folder."""
    chains: list[list[Block]] = []
    for block in readme_blocks(README.read_text(encoding="utf-8")):
        if not block.runnable:
            continue
        if block.marker == "continues":
            assert chains, f"README.md:{block.line}: a continuing block needs a block before it"
            chains[-1].append(block)
        else:
            chains.append([block])
    return chains


CHAINS = _chains()


def _installed(distribution: str) -> bool:
    # By distribution, not module: tests/airflow and tests/prefect shadow the module names here.
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _require(environment: str) -> None:
    distribution = {"airflow": "apache-airflow", "prefect": "prefect"}.get(environment)
    if distribution and not _installed(distribution):
        pytest.skip(f"written for {environment}: runs in the {environment} environment (make test runs it there)")


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An Airflow home whose database is initialised, as `airflow db migrate` leaves it."""
    home = tmp_path_factory.mktemp("airflow-home")
    env = _base_env(home.parent)
    env.update(_airflow_env(home, home))
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    yield home


def _base_env(scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _ENV_VARS and not k.startswith(("PREFECT_", "AIRFLOW"))}
    # The environment's own commands (python, cmf-orchestrate) come first, as in an activated virtualenv.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(Path(sys.executable).parent.parent)
    env.update(
        {
            "DVC_NO_ANALYTICS": "1",
            "PREFECT_HOME": str(scratch / "prefect-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # A temporary Prefect server migrates its database first; give a loaded machine time.
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
        }
    )
    return env


def _airflow_env(home: Path, dags: Path) -> dict[str, str]:
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }


# Runs a script the way it runs where only the wheel is installed: an editable install puts the
# whole checkout on sys.path (examples/, flows/, dags/ too); this keeps only the package.
_WHEEL_ONLY = (
    "import runpy, sys; checkout, package = sys.argv[1:3]; del sys.argv[:3];"
    " sys.path[:] = [p for p in sys.path if p.rstrip('/') != checkout] + [package];"
    " runpy.run_path(sys.argv[0], run_name='__main__')"
)


def python_command(script: Path, scratch: Path) -> list[str]:
    """Run ``script`` with the package importable but nothing else of this repository."""
    package = scratch / "wheel-contents"
    if not package.exists():
        package.mkdir()
        (package / "cmf_orchestrate").symlink_to(REPO / "cmf_orchestrate", target_is_directory=True)
    return [sys.executable, "-c", _WHEEL_ONLY, str(REPO), str(package), script.name]


def _run_block(block: Block, folder: Path, env: dict[str, str], index: int) -> None:
    if block.lang == "python":
        script = folder / f"readme_block_{index}.py"
        command = python_command(script, folder.parent)
    else:
        script = folder / f"readme_block_{index}.sh"
        command = ["bash", "-euo", "pipefail", script.name]
    script.write_text(block.code, encoding="utf-8")
    try:
        done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=900, check=False)
    finally:
        script.unlink()
    assert done.returncode == 0, (
        f"README.md:{block.line} ({block.lang}) failed with status {done.returncode}\n"
        f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("chain", CHAINS, ids=[f"line{c[0].line}-{c[0].lang}" for c in CHAINS])
def test_readme_block_runs_in_a_fresh_folder(
    chain: list[Block], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    head = chain[0]
    if head.marker.startswith("skip"):
        reason = head.marker.partition(":")[2].strip()
        assert reason, f"README.md:{head.line}: a skipped block must say why"
        pytest.skip(f"README.md:{head.line}: {reason}")
    environments = {b.environment for b in chain} - {"any"}
    assert len(environments) <= 1, f"README.md:{head.line}: one chain mixes {environments}"
    environment = next(iter(environments), "any")
    _require(environment)
    folder = tmp_path / "fresh"
    folder.mkdir()
    env = _base_env(tmp_path)
    if environment == "airflow":
        env.update(_airflow_env(request.getfixturevalue("airflow_home"), folder))
    for index, block in enumerate(chain):
        _run_block(block, folder, env, index)


def _full_examples() -> list[str]:
    text = README.read_text(encoding="utf-8")
    return re.findall(r"[Tt]he full example is\s+`([^`]+)`", text)


@pytest.mark.slow
@pytest.mark.parametrize("example", _full_examples())
def test_full_example_runs_from_the_installed_package_alone(
    example: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source = REPO / example
    assert source.is_file(), f"README.md names {example}, which does not exist"
    code = source.read_text(encoding="utf-8")
    block = Block(0, "python", code)
    _require(block.environment)
    folder = tmp_path / "fresh"
    folder.mkdir()
    shutil.copy(source, folder / source.name)
    env = _base_env(tmp_path)
    if block.environment == "airflow":
        env.update(_airflow_env(request.getfixturevalue("airflow_home"), folder))
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        python_command(folder / source.name, tmp_path),
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, (
        f"{example} failed\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
    )


def test_readme_blocks_are_all_accounted_for() -> None:
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    languages = {b.lang for b in blocks}
    # Every block is either run or in a language that is not a program (config, query, usage).
    assert languages <= RUNNABLE | {"toml", "cypher", "text"}, languages
    assert sum(1 for b in blocks if b.runnable) >= 5
    for block in blocks:
        if block.marker:
            assert block.marker == "continues" or re.match(r"skip: \S", block.marker), block


def test_readme_documents_every_reserved_fact_and_cmf_flow() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [fact for fact in RESERVED_FACTS if f"`cmf.{fact}`" not in text]
    assert not missing, f"README.md does not list the reserved facts {missing}"
    assert "`@cmf_flow`" in text and "pipeline=" in text and "config=" in text
