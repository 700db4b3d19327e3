"""DVC versioning: md5s identical to `dvc add`, cache and .dvc files usable by DVC itself."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import threading
import time
from contextlib import suppress
from pathlib import Path

import pytest
from dvc.repo import Repo

from cmf_orchestrate.errors import ArtifactError, ArtifactNotFoundError, PathOutsideProjectError
from cmf_orchestrate.transfer import checkout, fetch, push
from cmf_orchestrate.versioning import Versioner, set_remote


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
    assert report.transferred == (model.md5, folder.md5) and report.ok
    again = push(project, [model.md5, folder.md5])
    assert again.present == (model.md5, folder.md5) and not again.transferred
    # Content this cache never held is reported missing, never "already there".
    absent = "0" * 32
    assert push(project, [absent]).missing == (absent,)

    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / ".dvc").mkdir()
    (clone / ".dvc" / "config").write_text((project / ".dvc" / "config").read_text())
    assert fetch(clone, [model.md5, folder.md5]).transferred == (model.md5, folder.md5)
    assert fetch(clone, [absent]).missing == (absent,)
    checkout(clone, "m/model.bin", model.md5)
    (clone / "d").mkdir()
    (clone / "d" / "stray").write_text("not part of the recorded directory")
    checkout(clone, "d", folder.md5)
    assert (clone / "m" / "model.bin").read_bytes() == b"weights" * 100
    assert (clone / "d" / "f1").read_bytes() == b"one"
    assert sorted(p.name for p in (clone / "d").iterdir()) == ["f1"]
    # Checked out content is known: hashing it again reads nothing.
    assert Versioner(clone).hash("d").md5 == folder.md5
    assert (clone / "d.dvc").exists() and (clone / "m" / "model.bin.dvc").exists()


# -- one read per file: the recorded md5 names the cached bytes -----------------------------------


def _cache_files(root: Path) -> dict[str, tuple[bytes, int]]:
    cache = root / ".dvc" / "cache"
    return {
        p.relative_to(cache).as_posix(): (p.read_bytes(), p.stat().st_mode & 0o777)
        for p in sorted(cache.rglob("*"))
        if p.is_file()
    }


def _object(root: Path, md5: str) -> Path:
    return root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def test_cache_layout_is_byte_identical_to_dvc_add(project: Path, tmp_path: Path) -> None:
    big = os.urandom(3 << 20)  # above the in-memory size: streamed through a temporary file
    tree = {"d/a.txt": b"alpha\n", "d/sub/b.bin": os.urandom(2000), "d/sub/c/empty": b"", "d/big": big[:1500000]}
    twin = tmp_path / "twin"
    for base in (project, twin):
        _write(base / "big.bin", big)
        for rel, data in tree.items():
            _write(base / rel, data)
    ours = Versioner(project)
    ours.commit("big.bin")
    ours.commit("d")
    with Repo.init(str(twin), no_scm=True) as repo:
        repo.add([str(twin / "big.bin"), str(twin / "d")])
    assert _cache_files(project) == _cache_files(twin)
    for name in ("big.bin.dvc", "d.dvc"):
        assert (project / name).read_bytes() == (twin / name).read_bytes()


def test_recorded_md5_is_the_md5_of_the_cached_bytes_while_a_writer_appends(project: Path) -> None:
    path = _write(project / "growing.log", os.urandom(24 << 20))
    versioner = Versioner(project)
    versioner.ensure_repo()
    stop = threading.Event()

    def append() -> None:
        with path.open("ab") as fh:
            while not stop.is_set():
                fh.write(os.urandom(4096))
                fh.flush()
                time.sleep(0.0002)

    writer = threading.Thread(target=append, daemon=True)
    writer.start()
    try:
        with pytest.raises(ArtifactError, match=r"growing\.log.*kept changing"):
            versioner.commit("growing.log")
    finally:
        stop.set()
        writer.join()
    assert not (project / "growing.log.dvc").exists()
    # Once the writer is done the same file is recorded, and the cache holds exactly those bytes.
    content = versioner.commit("growing.log")
    cached = _object(project, content.md5).read_bytes()
    assert hashlib.md5(cached).hexdigest() == content.md5 == hashlib.md5(path.read_bytes()).hexdigest()
    assert len(cached) == content.size


@pytest.mark.parametrize("size", [1000, 3 << 20])
def test_a_writer_stopping_mid_read_leaves_no_lie_in_the_cache(project: Path, size: int) -> None:
    path = _write(project / "burst.bin", os.urandom(size))
    versioner = Versioner(project)
    versioner.ensure_repo()

    def burst() -> None:
        with path.open("ab") as fh:
            for _ in range(20):
                fh.write(os.urandom(1024))
                fh.flush()
                time.sleep(0.001)

    writer = threading.Thread(target=burst)
    writer.start()
    try:
        content = versioner.commit("burst.bin")
    except ArtifactError as exc:
        assert "burst.bin" in str(exc)
    else:
        cached = _object(project, content.md5).read_bytes()
        assert hashlib.md5(cached).hexdigest() == content.md5 and len(cached) == content.size
    finally:
        writer.join()


def test_a_lost_or_truncated_cache_object_is_written_again(project: Path) -> None:
    data = os.urandom(4000)
    _write(project / "d" / "x.bin", data)
    _write(project / "f.bin", data[::-1])
    versioner = Versioner(project)
    tree = versioner.commit("d")
    single = versioner.commit("f.bin")
    file_md5 = hashlib.md5(data).hexdigest()
    _object(project, file_md5).unlink()  # as a partial `dvc gc` or a lost disk would
    lost = _object(project, single.md5)
    lost.chmod(0o644)
    lost.write_bytes(b"")  # as a writer killed half-way would leave it
    assert versioner.commit("d") == tree and versioner.commit("f.bin") == single
    with Repo(str(project)) as repo:
        assert repo.status() == {}
    assert _object(project, file_md5).read_bytes() == data
    assert _object(project, single.md5).read_bytes() == data[::-1]


def test_unchanged_directory_is_answered_from_the_stat_cache(project: Path) -> None:
    for i in range(50):
        _write(project / "many" / f"{i:02d}.txt", f"{i}\n".encode())
    first = Versioner(project).commit("many")
    target = project / "many" / "07.txt"
    stat = target.stat()
    target.write_bytes(b"X\n")  # same size, same mtime below: only a stat cache answers the old md5
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert Versioner(project).commit("many").md5 == first.md5  # a new process's versioner


# -- only regular files and directories ---------------------------------------------------------------


def _commit_in_thread(versioner: Versioner, rel: str) -> BaseException | None:
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            versioner.commit(rel)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():
        # Unblock a reader stuck in open() so that the test process can end, then fail.
        for fifo in Path(versioner.root).rglob("*"):
            if fifo.is_fifo():
                with suppress(OSError):
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"committing {rel!r} did not return within 20 s")
    return outcome[0]


def test_a_fifo_is_refused_without_being_opened(project: Path) -> None:
    os.mkfifo(project / "pipe")
    (project / "d").mkdir()
    _write(project / "d" / "ok.txt", b"ok")
    os.mkfifo(project / "d" / "pipe")
    versioner = Versioner(project)
    versioner.ensure_repo()
    started = time.monotonic()
    for rel, shown in (("pipe", "'pipe'"), ("d", "'d/pipe'")):
        error = _commit_in_thread(versioner, rel)
        assert isinstance(error, ArtifactError), error
        assert f"{shown} is a FIFO" in str(error)
    assert time.monotonic() - started < 20
    assert not (project / "pipe.dvc").exists() and not (project / "d.dvc").exists()


def test_a_socket_is_refused(project: Path) -> None:
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(project / "s.sock"))
        versioner = Versioner(project)
        with pytest.raises(ArtifactError, match=r"'s\.sock' is a socket"):
            versioner.commit("s.sock")


# -- symbolic links --------------------------------------------------------------------------------------


def test_symlinks_inside_are_followed_and_outside_are_refused(project: Path, tmp_path: Path) -> None:
    outside = _write(tmp_path / "secret.txt", b"not ours")
    (tmp_path / "outside_dir").mkdir()
    _write(project / "real" / "a.txt", b"a")
    (project / "inner.txt").symlink_to(project / "real" / "a.txt")
    (project / "inner_dir").symlink_to("real", target_is_directory=True)
    (project / "leak.txt").symlink_to(outside)
    _write(project / "tree" / "ok.txt", b"ok")
    (project / "tree" / "leak").symlink_to(outside)
    (project / "loop").mkdir()
    (project / "loop" / "back").symlink_to(project / "loop", target_is_directory=True)
    (project / "to_dvc").symlink_to(".dvc", target_is_directory=True)

    versioner = Versioner(project)
    linked = versioner.commit("inner.txt")
    assert linked.md5 == hashlib.md5(b"a").hexdigest() and linked.path == "inner.txt"
    assert _object(project, linked.md5).read_bytes() == b"a"
    assert versioner.commit("inner_dir").md5 == versioner.commit("real").md5
    with pytest.raises(PathOutsideProjectError, match=r"'leak\.txt' is a symbolic link to .*outside the project"):
        versioner.commit("leak.txt")
    with pytest.raises(PathOutsideProjectError, match=r"'tree/leak' is a symbolic link to .*outside the project"):
        versioner.commit("tree")
    with pytest.raises(PathOutsideProjectError, match=r"\.dvc"):
        versioner.commit("to_dvc")
    with pytest.raises(ArtifactError, match="its own parent"):
        versioner.commit("loop")
    assert not any(data == b"not ours" for data, _ in _cache_files(project).values())


# -- any Unicode name -------------------------------------------------------------------------------------

NAMES = [
    "unicodé_数据_🙂.csv",
    "𠀋𡈽_🚀.bin",
    "with space.csv",
    "null",
    "yes",
    "1data.csv",
    "q'uote\".txt",
    "#hash",
    "x" * 90 + " long name with spaces " + "y" * 40,
]


def test_any_unicode_name_gives_the_dvc_file_dvc_add_writes(project: Path, tmp_path: Path) -> None:
    twin = tmp_path / "twin"
    for base in (project, twin):
        for i, name in enumerate(NAMES):
            _write(base / "files" / name, f"{i}\n".encode())
        _write(base / "dir 🙂" / "数据" / "é🙂.txt", b"tree\n")
        _write(base / "dir 🙂" / "plain.txt", b"plain\n")
    versioner = Versioner(project)
    for name in NAMES:
        versioner.commit(f"files/{name}")
    versioner.commit("dir 🙂")
    with Repo.init(str(twin), no_scm=True) as repo:
        repo.add([str(twin / "files" / name) for name in NAMES] + [str(twin / "dir 🙂")])
    for name in NAMES:
        assert (project / "files" / f"{name}.dvc").read_bytes() == (twin / "files" / f"{name}.dvc").read_bytes()
    assert (project / "dir 🙂.dvc").read_bytes() == (twin / "dir 🙂.dvc").read_bytes()
    assert _cache_files(project) == _cache_files(twin)
    with Repo(str(project)) as repo:
        assert repo.status() == {}  # DVC's own reading of every .dvc file: all up to date


def test_large_directories_are_hashed_in_parallel_as_dvc_add_would(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cmf_orchestrate import versioning

    monkeypatch.setattr(versioning, "_PARALLEL_BYTES", 0)  # this small tree takes the threaded path
    twin = tmp_path / "twin"
    files = {f"p/{i % 3}/{i}.bin": os.urandom(100 + i * 5000) for i in range(40)}
    files["p/big.bin"] = os.urandom(3 << 20)
    for base in (project, twin):
        for rel, data in files.items():
            _write(base / rel, data)
    ours = Versioner(project).commit("p")
    with Repo.init(str(twin), no_scm=True) as repo:
        repo.add([str(twin / "p")])
    assert ours.nfiles == len(files) and ours.size == sum(len(d) for d in files.values())
    assert (project / "p.dvc").read_bytes() == (twin / "p.dvc").read_bytes()
    assert _cache_files(project) == _cache_files(twin)
