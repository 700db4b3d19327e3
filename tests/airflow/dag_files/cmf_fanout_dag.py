"""Fan-out of 8 parallel recorded tasks, then a gather: the real scheduler test's load.

Shard 3 fails its first try on purpose, so the run also has a retried task instance.
"""

from __future__ import annotations

import datetime
import time

import pendulum
from airflow.sdk import DAG

from cmf_orchestrate import Dataset, current_run
from cmf_orchestrate.airflow import CmfOperator

SHARDS = 8
FAILS_FIRST = 3
OUT = "fanout/{{ ds }}"


def shard(index: int, seconds: float, out: str) -> int:
    run = current_run()
    time.sleep(seconds)
    if index == FAILS_FIRST and run.info.facts["attempt"] == 1:
        raise RuntimeError(f"shard {index} fails its first try")
    path = run.settings.project_root / out
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"shard {index}\n" * (index + 1))
    return index


def gather(parts: list[str], out: str) -> int:
    root = current_run().settings.project_root
    text = "".join((root / p).read_text() for p in parts)
    (root / out).write_text(text)
    return len(text)


with DAG(
    "cmf_t_fanout",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=SHARDS,
) as fanout_dag:
    parts = [f"{OUT}/shard_{i}.txt" for i in range(SHARDS)]
    shards = [
        CmfOperator(
            task_id=f"shard_{i}",
            python_callable=shard,
            outputs=[Dataset(parts[i])],
            op_kwargs={"index": i, "seconds": 2.0, "out": parts[i]},
            retries=1,
            retry_delay=datetime.timedelta(seconds=1),
        )
        for i in range(SHARDS)
    ]
    collect = CmfOperator(
        task_id="gather",
        python_callable=gather,
        inputs=[Dataset(p) for p in parts],
        outputs=[Dataset(f"{OUT}/all.txt")],
        op_kwargs={"parts": parts, "out": f"{OUT}/all.txt"},
    )
    shards >> collect
