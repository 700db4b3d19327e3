"""Added time per task run with a DVC remote, against ``dvc push`` of the same objects.

    .venv-prefect/bin/python benchmarks/bench_remote.py [--small-repeat 10] [--big-repeat 3] [--big-mb 100]

For each output size (1 KB, 100 MB) and each remote (a local folder, S3 on moto's server
in a process of its own, reached through ``AWS_ENDPOINT_URL``), in one run:

- ``no remote``: a task run (``task_run``, SQLite store) whose callable writes the output;
- ``remote``: the same task run with the ``remote`` setting: completing it pushes the output
  (and, the first time, the environment file);
- ``dvc push``: the same bytes added with ``dvc add`` (not timed) in a DVC repository whose
  default remote is the same URL, then ``dvc push`` on the command line, as a user would;
  ``of which startup``: ``dvc push`` with nothing new to send (the command's own start-up).

Every round writes fresh random bytes, so every push sends a new object. Printed: medians,
the time the remote adds to a task run, and its ratio to ``dvc push``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("GLOG_minloglevel", "2")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from s3server import moto_s3

from cmf_orchestrate import CmfSettings, Dataset, RunInfo, task_run

DVC = str(Path(sys.executable).with_name("dvc"))
BUCKET = "cmf-bench"


def _task(settings: CmfSettings, size: int, index: int) -> float:
    """One recorded task run writing ``size`` fresh bytes; its wall time."""
    info = RunInfo(
        orchestrator="cmf",
        pipeline="bench-remote",
        stage="write",
        facts={"pipeline_run_id": f"run-{index}"},
        outputs=[Dataset("out.bin")],
    )
    data = os.urandom(size)
    start = time.perf_counter()
    with task_run(info, settings):
        (settings.project_root / "out.bin").write_bytes(data)
    return time.perf_counter() - start


def _dvc_push(repo: Path, size: int) -> float:
    """``dvc add`` fresh bytes (not timed), then ``dvc push`` them; the push's wall time."""
    (repo / "out.bin").write_bytes(os.urandom(size))
    subprocess.run([DVC, "add", "-q", "out.bin"], cwd=repo, check=True)
    start = time.perf_counter()
    subprocess.run([DVC, "push", "-q"], cwd=repo, check=True)
    return time.perf_counter() - start


def _timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True)
    return time.perf_counter() - start


def _dvc_repo(path: Path, url: str) -> Path:
    path.mkdir()
    subprocess.run([DVC, "init", "-q", "--no-scm"], cwd=path, check=True)
    subprocess.run([DVC, "remote", "add", "-q", "-d", "bench", url], cwd=path, check=True)
    return path


def _median(measure: Callable[[int], float], repeat: int) -> float:
    measure(-1)  # warm-up: imports, the store's schema, the environment file's first push
    return statistics.median(measure(i) for i in range(repeat))


def _row(label: str, size: int, repeat: int, base: Path, url: str) -> None:
    plain = CmfSettings(store=str(base / "plain" / "mlmd"), project_root=base / "plain")
    pushing = CmfSettings(store=str(base / "pushing" / "mlmd"), project_root=base / "pushing", remote=url)
    for settings in (plain, pushing):
        settings.project_root.mkdir()
    repo = _dvc_repo(base / "dvc", url)
    none = _median(lambda i: _task(plain, size, i), repeat)
    remote = _median(lambda i: _task(pushing, size, i), repeat)
    push = _median(lambda _: _dvc_push(repo, size), repeat)
    floor = _median(lambda _: _timed([DVC, "push", "-q"], repo), 3)
    added = remote - none
    print(
        f"{label:<22} no remote {none * 1000:8.1f} ms | remote {remote * 1000:8.1f} ms | "
        f"added {added * 1000:8.1f} ms | dvc push {push * 1000:8.1f} ms (of which startup {floor * 1000:6.0f} ms) | "
        f"added / dvc push {added / push:5.2f}x | "
        f"task run with remote / without {remote / none:5.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small-repeat", type=int, default=10)
    parser.add_argument("--big-repeat", type=int, default=3)
    parser.add_argument("--big-mb", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cmf-bench-remote-"))
    sizes = [("1 KB", 1024, args.small_repeat), (f"{args.big_mb} MB", args.big_mb << 20, args.big_repeat)]
    try:
        with moto_s3() as s3:
            s3.create_bucket(BUCKET)
            os.environ.update(s3.env)
            rounds = f"{args.small_repeat} rounds of 1 KB, {args.big_repeat} of {args.big_mb} MB"
            print(f"medians; {rounds}, fresh bytes each")
            for kind in ("folder", "s3"):
                for label, size, repeat in sizes:
                    base = work / f"{kind}-{size}"
                    base.mkdir()
                    url = str(base / "remote") if kind == "folder" else f"s3://{BUCKET}/{kind}-{size}"
                    _row(f"{kind} remote, {label}", size, repeat, base, url)
                    shutil.rmtree(base, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
