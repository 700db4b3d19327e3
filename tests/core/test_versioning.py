"""DVC versioning: md5s identical to `dvc add`, cache and .dvc files usable by DVC itself."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from dvc.repo import Repo

from cmf_orchestrate.errors import ArtifactNotFoundError, PathOutsideProjectError
from cmf_orchestrate.versioning import Versioner, checkout, fetch, push, set_remote


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_first_write_initialises_dvc_without_git(project: Path) -> None:
    _write(project / "a.bin", b"x" * 10)
    Versioner(project).commit("a.bin")
    assert (project / ".dvc" / "config").is_file()
    assert not (project / ".git").exists()


def test_md5_and_dvc_file_match_dvc_add(project: Path, tmp_path: Path) -> None:
    data = os.urandom(5000)
    _write(project / "data" / "raw.bin", data)
    _write(project / "data" / "dir" / "a.txt", b"alpha\n")
    _write(project / "data" / "dir" / "sub" / "b.txt", b"beta\r\n")
    ours = Versioner(project)
    file_hash = ours.commit("data/raw.bin")
    dir_hash = ours.commit("data/dir")

    twin = tmp_path / "twin"
    _write(twin / "data" / "raw.bin", data)
    _write(twin / "data" / "dir" / "a.txt", b"alpha\n")
    _write(twin / "data" / "dir" / "sub" / "b.txt", b"beta\r\n")
    repo = Repo.init(str(twin), no_scm=True)
    with repo:
        repo.add([str(twin / "data" / "raw.bin"), str(twin / "data" / "dir")])
    assert (project / "data" / "raw.bin.dvc").read_text() == (twin / "data" / "raw.bin.dvc").read_text()
    assert (project / "data" / "dir.dvc").read_text() == (twin / "data" / "dir.dvc").read_text()
    assert dir_hash.md5.endswith(".dir") and dir_hash.nfiles == 2 and dir_hash.size == 12
    assert file_hash.size == 5000

    with Repo(str(project)) as repo:
        assert repo.status() == {}  # `dvc status`: everything up to date and cached


def test_unchanged_file_is_not_rehashed(project: Path) -> None:
    path = _write(project / "big.bin", b"a" * 4096)
    versioner = Versioner(project)
    first = versioner.commit("big.bin")
    stat = path.stat()
    # Same inode, size and mtime with other bytes: only a stat cache can answer the old hash.
    with path.open("r+b") as fh:
        fh.write(b"b" * 4096)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert versioner.hash("big.bin").md5 == first.md5
    # A real change (new mtime) is seen.
    path.write_bytes(b"c" * 4096)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000))
    assert versioner.hash("big.bin").md5 != first.md5


def test_paths_outside_the_project_and_missing_paths(project: Path, tmp_path: Path) -> None:
    versioner = Versioner(project)
    outside = _write(tmp_path / "elsewhere.txt", b"x")
    with pytest.raises(PathOutsideProjectError, match="outside the project root"):
        versioner.commit(outside)
    with pytest.raises(PathOutsideProjectError, match="outside"):
        versioner.commit("../elsewhere.txt")
    with pytest.raises(ArtifactNotFoundError, match=r"nope\.csv"):
        versioner.commit("nope.csv")
    assert not (project / "nope.csv.dvc").exists()


def test_git_work_tree_gets_gitignore_entries(project: Path) -> None:
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    _write(project / "data" / "x.csv", b"1,2\n")
    Versioner(project).commit("data/x.csv")
    assert "/x.csv" in (project / "data" / ".gitignore").read_text().splitlines()


def test_push_fetch_checkout_through_a_local_remote(project: Path, tmp_path: Path) -> None:
    _write(project / "m" / "model.bin", b"weights" * 100)
    _write(project / "d" / "f1", b"one")
    versioner = Versioner(project)
    model = versioner.commit("m/model.bin")
    folder = versioner.commit("d")
    set_remote(project, str(tmp_path / "remote"))
    report = push(project, [model.md5, folder.md5])
    assert report.transferred == 2 and not report.failed
    assert push(project, [model.md5]).skipped == 1

    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / ".dvc").mkdir()
    (clone / ".dvc" / "config").write_text((project / ".dvc" / "config").read_text())
    assert fetch(clone, [model.md5, folder.md5]).transferred == 2
    checkout(clone, "m/model.bin", model.md5)
    checkout(clone, "d", folder.md5)
    assert (clone / "m" / "model.bin").read_bytes() == b"weights" * 100
    assert (clone / "d" / "f1").read_bytes() == b"one"
