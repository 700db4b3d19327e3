"""ML Metadata's own library as a test oracle, run in its own environment (``.venv-compat``).

ml-metadata and cmflib pin what Airflow and Prefect cannot have, so they never enter the
project's environments: tests hand them a script and a JSON argument through a
subprocess and read JSON back.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cmf_orchestrate._storeurl import StoreLocation, parse_store_url

REPO = Path(__file__).resolve().parents[1]
COMPAT_PYTHON = REPO / ".venv-compat" / "bin" / "python"


def oracle_python() -> Path:
    """The compat interpreter; skip (in CI: fail) when ``make test`` has not built it."""
    if COMPAT_PYTHON.is_file():
        return COMPAT_PYTHON
    message = f"{COMPAT_PYTHON} is missing (`make test` builds it)"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(message)
    pytest.skip(message)


def connection_config(url: str, base: Path | None = None) -> dict[str, Any]:
    """ml-metadata's ``ConnectionConfig`` for a store URL, as a JSON-ready dict."""
    loc: StoreLocation = parse_store_url(url, base=base)
    if loc.backend == "sqlite":
        return {"sqlite": {"filename_uri": str(loc.path), "connection_mode": 3}}
    if loc.backend == "postgresql":
        return {
            "postgresql": {
                "host": loc.host,
                "port": str(loc.port),
                "dbname": loc.database,
                "user": loc.user,
                **({"password": loc.password} if loc.password else {}),
            }
        }
    return {
        "mysql": {
            "host": loc.host,
            "port": loc.port,
            "database": loc.database,
            "user": loc.user,
            **({"password": loc.password} if loc.password else {}),
        }
    }


_PRELUDE = """
import json, math, sys
from google.protobuf import json_format
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb
args = json.loads(sys.argv[1])
config = json_format.ParseDict(args["config"], pb.ConnectionConfig())
def value(v):
    kind = v.WhichOneof("value")
    x = getattr(v, kind) if kind else None
    if isinstance(x, float) and not math.isfinite(x):
        return "float:" + repr(x)
    return x
def props(m):
    return {k: value(v) for k, v in sorted(m.items())}
"""


def run_oracle(script: str, **args: Any) -> Any:
    """Run ``script`` (after a prelude that opens nothing) in the compat environment; its last stdout line is JSON."""
    python = oracle_python()
    env = {**os.environ, "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [str(python), "-c", _PRELUDE + script, json.dumps(args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


#: Reads a whole store through ml-metadata, refusing any migration.
READ_ALL = """
store = metadata_store.MetadataStore(config, enable_upgrade_migration=False)
types = {}
for t in store.get_execution_types():
    types[t.id] = t.name
for t in store.get_artifact_types():
    types[t.id] = t.name
for t in store.get_context_types():
    types[t.id] = t.name
executions = store.get_executions()
artifacts = store.get_artifacts()
contexts = store.get_contexts()
events = store.get_events_by_execution_ids([e.id for e in executions])
out = {
    "contexts": [{"id": c.id, "name": c.name, "type": types[c.type_id], "properties": props(c.properties),
                  "custom": props(c.custom_properties),
                  "parents": [p.name for p in store.get_parent_contexts_by_context(c.id)]} for c in contexts],
    "executions": [{"id": e.id, "name": e.name, "type": types[e.type_id],
                    "state": pb.Execution.State.Name(e.last_known_state),
                    "properties": props(e.properties), "custom": props(e.custom_properties),
                    "contexts": [c.name for c in store.get_contexts_by_execution(e.id)]} for e in executions],
    "artifacts": [{"id": a.id, "name": a.name, "uri": a.uri, "type": types[a.type_id],
                   "properties": props(a.properties), "custom": props(a.custom_properties),
                   "contexts": sorted(c.name for c in store.get_contexts_by_artifact(a.id))} for a in artifacts],
    "events": sorted([e.execution_id, e.artifact_id, pb.Event.Type.Name(e.type)] for e in events),
}
print(json.dumps(out))
"""
