"""Core benchmarks, printed as figures and ratios against baselines measured in the same run.

    .venv-prefect/bin/python benchmarks/bench_core.py [--size-mb 100] [--repeat 30]

1. log_dataset of a new large file vs. raw hashlib md5 plus one copy of the file.
2. log_dataset of the same unchanged file again (stat cache + metadata write).
3. Metadata overhead: create_context + create_execution + two log_dataset on 1 KB files.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("GLOG_minloglevel", "2")

from cmf_orchestrate import cmf


def _baseline(path: Path, scratch: Path) -> float:
    start = time.perf_counter()
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    shutil.copyfile(path, scratch)
    elapsed = time.perf_counter() - start
    scratch.unlink()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cmf-bench-"))
    os.chdir(root)
    try:
        writer = cmf.Cmf(filename="mlmd", pipeline_name="bench")
        writer.create_context("big")
        writer.create_execution("big")

        ours, base = [], []
        for i in range(3):
            big = root / f"big-{i}.bin"
            big.write_bytes(os.urandom(args.size_mb << 20))
            base.append(_baseline(big, root / "copy.bin"))
            start = time.perf_counter()
            writer.log_dataset(big.name, "input")
            ours.append(time.perf_counter() - start)
        new_ratio = statistics.median(ours) / statistics.median(base)
        print(
            f"log_dataset new {args.size_mb} MB file: median {statistics.median(ours) * 1000:.0f} ms; "
            f"hashlib md5 + one copy: {statistics.median(base) * 1000:.0f} ms; ratio {new_ratio:.2f}x (target <= 1.3x)"
        )

        again = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            writer.log_dataset("big-0.bin", "input")
            again.append(time.perf_counter() - start)
        print(
            f"log_dataset unchanged {args.size_mb} MB file again: median {statistics.median(again) * 1000:.2f} ms "
            f"(target < 10 ms)"
        )
        writer.finalize()

        for name in ("a.txt", "b.txt"):
            (root / name).write_bytes(os.urandom(1024))
        overhead = []
        for i in range(args.repeat + 3):
            start = time.perf_counter()
            writer.create_context(f"stage-{i % 3}")
            writer.create_execution(f"stage-{i % 3}", {"i": i})
            writer.log_dataset("a.txt", "input")
            writer.log_dataset("b.txt", "output")
            overhead.append(time.perf_counter() - start)
        writer.finalize()
        steady = overhead[3:]  # the first calls register types and contexts
        print(
            f"create_context + create_execution + 2 x log_dataset (1 KB, SQLite): median "
            f"{statistics.median(steady) * 1000:.2f} ms, p90 {sorted(steady)[int(len(steady) * 0.9)] * 1000:.2f} ms "
            f"(target median < 10 ms)"
        )
    finally:
        os.chdir("/")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
