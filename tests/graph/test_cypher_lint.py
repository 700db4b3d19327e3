"""Neo4j's own Cypher front end accepts every statement the writer can send."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from servers import IN_CI

from cmf_orchestrate import _cypher, graph
from tests.graph._snapshots import every_kind_snapshot

LINTER = Path(__file__).resolve().parents[2] / "tools" / "cypher-lint"
PACKAGE = LINTER / "node_modules" / "@neo4j-cypher" / "language-support"


def _node() -> str:
    node = shutil.which("node")
    reason = ""
    if node is None:
        reason = "node is not installed"
    elif not PACKAGE.is_dir():
        reason = f"@neo4j-cypher/language-support is not installed (run `npm ci --prefix {LINTER}`)"
    if reason:
        if IN_CI:
            pytest.fail(f"{reason}; CI must lint the graph statements")
        pytest.skip(reason)
    assert node is not None
    return node


def _lint(statements: list[graph.Statement]) -> list[dict[str, object]]:
    payload = {
        "statements": [{"text": s.text, "params": dict(s.params)} for s in statements],
        "labels": list(graph.NODE_LABELS),
        "relationshipTypes": list(graph.RELATIONSHIP_TYPES),
    }
    done = subprocess.run(
        [_node(), str(LINTER / "lint.mjs")],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    results: list[dict[str, object]] = json.loads(done.stdout)
    return results


GOOD = [*graph.statements_for(every_kind_snapshot(), "store-1"), *graph.schema_statements()]
#: Mistakes the linter must catch, so that a linter accepting anything cannot pass.
BAD = [
    graph.Statement("UNWIND $rows AS row MERGE (n:Execution {uid: $nope})", {"rows": []}),
    graph.Statement("MATCH (n:Exection) RETURN n"),
    graph.Statement("MATCH (a)-[:ouput]->(b) RETURN a"),
    graph.Statement("MERG (n) RETURN n"),
]


@pytest.fixture(scope="module")
def diagnostics() -> list[object]:
    """Diagnostics of GOOD then BAD, from one run of the linter."""
    results = _lint([*GOOD, *BAD])
    assert [r["index"] for r in results] == list(range(len(GOOD) + len(BAD)))
    return [r["diagnostics"] for r in results]


def test_every_statement_lints_clean(diagnostics: list[object]) -> None:
    assert {s.text for s in GOOD} == {*_cypher.WRITE_TEXTS, *_cypher.SCHEMA}
    problems = [(s.text, d) for s, d in zip(GOOD, diagnostics[: len(GOOD)], strict=True) if d]
    assert problems == []


def test_the_linter_catches_mistakes(diagnostics: list[object]) -> None:
    assert all(diagnostics[len(GOOD) :])
