"""Two flows deployed to a process work pool: one produces files, the other reads them.

Each deployment names the work queue of one worker; each worker records into its own
project root (``CMF_PROJECT_ROOT`` in the worker's environment, inherited by the flow-run
processes it starts), and every worker shares the store and the DVC remote
(``CMF_STORE``, ``CMF_REMOTE``). So the consumer's inputs are made on the other worker.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cmf_orchestrate import Dataset
from cmf_orchestrate.prefect import cmf_flow, cmf_task

PIPELINE = "cmf-workers"
PARTS = 4


def _root() -> Path:
    return Path(os.environ["CMF_PROJECT_ROOT"])


@cmf_task(outputs=[Dataset("pool/part-{i}.txt")])
def make_part(i: int) -> str:
    """Write one part; return the project root it was written under."""
    path = _root() / f"pool/part-{i}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"part {i}\n" * (i + 1))
    return str(_root())


@cmf_task(inputs=[Dataset(f"pool/part-{i}.txt") for i in range(PARTS)], outputs=[Dataset("pool/joined.txt")])
def join_parts() -> str:
    """Join the parts, which another worker made; return the md5 of what was read."""
    data = b"".join((_root() / f"pool/part-{i}.txt").read_bytes() for i in range(PARTS))
    (_root() / "pool/joined.txt").write_bytes(data)
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@cmf_flow(name="cmf-pool-produce", pipeline=PIPELINE)
def produce_flow() -> list[str]:
    """Make the parts on this worker."""
    return [make_part(i) for i in range(PARTS)]


@cmf_flow(name="cmf-pool-consume", pipeline=PIPELINE)
def consume_flow() -> str:
    """Join the parts on this worker."""
    return join_parts()
