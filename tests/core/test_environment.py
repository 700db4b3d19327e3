"""The environment description: made once per environment, made again when it changes."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cmf_orchestrate import _environment
from cmf_orchestrate._environment import INDEX_DIR, environment_file, fingerprint
from cmf_orchestrate.versioning import Versioner

REPO = Path(__file__).resolve().parents[2]


def _install(site: Path, name: str, version: str) -> Path:
    """A distribution as an installer leaves it: a ``name-version.dist-info`` with its METADATA."""
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: throwaway\n\nLong description.\n"
    )
    (dist_info / "RECORD").write_text("")
    importlib.invalidate_caches()
    return dist_info


def test_installing_and_removing_a_package_changes_the_environment(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Versioner(project).ensure_repo()
    site = tmp_path / "site"
    _install(site, "cmf-resident-pkg", "1.0")  # site-packages always holds some distribution
    monkeypatch.syspath_prepend(str(site))
    before = fingerprint()
    original = environment_file(project)
    assert environment_file(project) == original
    assert "cmf-throwaway-pkg" not in (project / original.path).read_text()

    dist_info = _install(site, "cmf-throwaway-pkg", "1.2.3")
    assert fingerprint() != before
    installed = environment_file(project)
    assert installed.md5 != original.md5
    assert "cmf-throwaway-pkg==1.2.3\n" in (project / installed.path).read_text()

    shutil.rmtree(dist_info)  # as `pip uninstall` does
    _install(site, "cmf-throwaway-pkg", "1.2.4")  # and an upgrade
    upgraded = environment_file(project)
    assert "cmf-throwaway-pkg==1.2.4\n" in (project / upgraded.path).read_text()

    shutil.rmtree(site / "cmf_throwaway_pkg-1.2.4.dist-info")
    importlib.invalidate_caches()
    assert fingerprint() == before
    assert environment_file(project) == original
    # Each environment seen is remembered under its fingerprint, out of git's sight.
    assert len(list((project / INDEX_DIR).iterdir())) == 3


def test_the_description_is_what_the_distributions_say(project: Path) -> None:
    import importlib.metadata

    text = _environment.describe()
    lines = text.splitlines()
    assert lines[0].startswith("# python ")
    assert lines[1:] == sorted(lines[1:], key=str.lower)
    names = {line.split("==")[0].lower() for line in lines[1:]}
    assert {"dvc", "pendulum"} <= names
    assert f"dvc=={importlib.metadata.version('dvc')}" in lines


def test_a_fresh_process_in_a_known_environment_does_not_describe_it(project: Path) -> None:
    Versioner(project).ensure_repo()
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from cmf_orchestrate._environment import environment_file
        env = environment_file(Path({str(project)!r}))
        # Describing means reading every distribution's metadata through importlib.metadata.
        print(env.md5, "importlib.metadata" in sys.modules)
        """
    )

    def fresh() -> tuple[str, str]:
        out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
        md5, described = out.split()
        return md5, described

    first = fresh()
    assert first[1] == "True"
    assert fresh() == (first[0], "False")
    # Where CMF writes its own environment file.
    assert (project / "cmf_artifacts" / f"python_env_{first[0]}.txt").is_file()
