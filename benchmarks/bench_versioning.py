"""Versioning benchmarks: committing to the DVC cache against the floor measured in the same run.

    .venv-prefect/bin/python benchmarks/bench_versioning.py [--size-mb 100] [--files 10000] [--repeat 3]

1. A new large file: ``Versioner.commit`` vs. hashlib md5 of the file plus one
   ``shutil.copyfile`` of it (target: at most 1.1x).
2. A new directory of small files: ``Versioner.commit`` vs. the floor, hashlib md5 of every
   file plus one ``shutil.copyfile`` of each (target: at most 1.5x).
3. The same directory again, unchanged: by the same versioner, and by a new one as a fresh
   process would (target: at most 0.5 s).

Every committed file has new content, so nothing is in the cache before it is timed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cmf_orchestrate.versioning import Versioner


def _md5_and_copy(files: list[Path], scratch: Path) -> float:
    scratch.mkdir()
    start = time.perf_counter()
    for index, path in enumerate(files):
        digest = hashlib.md5(usedforsecurity=False)
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        digest.hexdigest()
        shutil.copyfile(path, scratch / str(index))
    elapsed = time.perf_counter() - start
    shutil.rmtree(scratch)
    return elapsed


def _make_dir(path: Path, files: int, size: int) -> list[Path]:
    made = []
    for i in range(files):
        sub = path / f"d{i % 100:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        target = sub / f"f{i:05d}.bin"
        target.write_bytes(os.urandom(size))
        made.append(target)
    return made


def _timed(fn: object, *args: object) -> float:
    start = time.perf_counter()
    fn(*args)  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cmf-bench-versioning-"))
    try:
        versioner = Versioner(root)
        versioner.ensure_repo()
        ours, floor = [], []
        for i in range(args.repeat):
            big = root / f"big-{i}.bin"
            big.write_bytes(os.urandom(args.size_mb << 20))
            floor.append(_md5_and_copy([big], root / "scratch"))
            ours.append(_timed(versioner.commit, big.name))
            big.unlink()
        file_ratio = statistics.median(ours) / statistics.median(floor)
        print(
            f"new {args.size_mb} MB file: commit {statistics.median(ours) * 1000:.0f} ms; "
            f"md5 + copy {statistics.median(floor) * 1000:.0f} ms; ratio {file_ratio:.2f}x (target <= 1.1x)"
        )

        ours, floor = [], []
        for i in range(args.repeat):
            files = _make_dir(root / f"dir-{i}", args.files, 1024)
            floor.append(_md5_and_copy(files, root / "scratch"))
            ours.append(_timed(versioner.commit, f"dir-{i}"))
        dir_ratio = statistics.median(ours) / statistics.median(floor)
        print(
            f"new directory of {args.files} x 1 KB: commit {statistics.median(ours) * 1000:.0f} ms; "
            f"md5 + copy {statistics.median(floor) * 1000:.0f} ms; ratio {dir_ratio:.2f}x (target <= 1.5x)"
        )

        same = [_timed(versioner.commit, "dir-0") for _ in range(args.repeat)]
        fresh = [_timed(Versioner(root).commit, "dir-0") for _ in range(args.repeat)]
        print(
            f"same directory unchanged: {statistics.median(same) * 1000:.0f} ms; "
            f"by a new versioner {statistics.median(fresh) * 1000:.0f} ms (target <= 500 ms)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
