"""DAGs of the reuse tests: the same recorded task, reused when its key matches.

Every real run of ``tally`` appends a line to ``runs.log`` in the project root; the
downstream task writes the XCom it received to ``xcom.json``.
"""

from __future__ import annotations

import json

import pendulum
from airflow.sdk import DAG, task

from cmf_orchestrate import Dataset, current_run
from cmf_orchestrate.airflow import CmfOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")


def tally(source: str, target: str, scale: int = 1) -> dict[str, int]:
    """Count the words of ``source`` and write them upper-cased to ``target``."""
    root = current_run().settings.project_root
    with (root / "runs.log").open("a") as log:
        log.write(f"{source} -> {target} x{scale}\n")
    words = (root / source).read_text().split()
    (root / target).parent.mkdir(parents=True, exist_ok=True)
    (root / target).write_text(" ".join(w.upper() for w in words) * scale)
    return {"words": len(words) * scale}


@task
def keep(value: dict[str, int]) -> None:
    (current_root() / "xcom.json").write_text(json.dumps(value))


def current_root() -> object:
    from cmf_orchestrate import CmfSettings
    from cmf_orchestrate.airflow import CmfHook

    settings: CmfSettings = CmfHook().get_settings()
    return settings.project_root


for dag_id, scale in (("cmf_reuse", 1), ("cmf_reuse_scaled", 2)):
    with DAG(dag_id, schedule=None, start_date=START, catchup=False) as dag:
        tallied = CmfOperator(
            task_id="tally",
            python_callable=tally,
            op_kwargs={"source": "in.txt", "target": "out/tally.txt", "scale": scale},
            inputs=[Dataset("in.txt")],
            outputs=[Dataset("out/tally.txt")],
            reuse=True,
        )
        keep(tallied.output)
    globals()[dag_id] = dag


with DAG("cmf_reuse_decorated", schedule=None, start_date=START, catchup=False) as cmf_reuse_decorated:

    @task.cmf(inputs=[Dataset("in.txt")], outputs=[Dataset("out/decorated.txt")], reuse=True)
    def decorated() -> list[int]:
        root = current_run().settings.project_root
        with (root / "runs.log").open("a") as log:
            log.write("decorated\n")
        (root / "out").mkdir(exist_ok=True)
        (root / "out/decorated.txt").write_text((root / "in.txt").read_text()[::-1])
        return [1, 2, 3]

    keep(decorated())
