"""pipelines, stages, executions, artifacts, show; --help everywhere; errors as one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_testlib import Recorded, run_entry_point

from cmf_orchestrate.cli import cli

SUBCOMMANDS = [
    ["init"],
    ["pipelines"],
    ["stages"],
    ["executions"],
    ["artifacts"],
    ["show"],
    ["lineage"],
    ["diff"],
    ["export"],
    ["import"],
    ["artifact", "push"],
    ["artifact", "pull"],
    ["reconcile"],
    ["graph", "sync"],
    ["graph", "status"],
]


def test_every_subcommand_has_help_and_takes_store(run_cli: Any, tmp_path: Path) -> None:
    listed = run_cli(tmp_path, "--help")
    assert listed.exit_code == 0
    top_level = {args[0] for args in SUBCOMMANDS}
    assert top_level == set(cli.commands), "the list above must name every subcommand"
    for args in SUBCOMMANDS:
        result = run_cli(tmp_path, *args, "--help")
        assert result.exit_code == 0, (args, result.output)
        assert "--store" in result.output and "Usage: cli" in result.output, args


def test_pipelines_and_stages(recorded: Recorded, run_cli: Any) -> None:
    result = run_cli(recorded.root, "pipelines", "--json")
    assert result.exit_code == 0, result.output
    [pipeline] = json.loads(result.output)
    assert pipeline["name"] == "get_started"
    assert (pipeline["stages"], pipeline["executions"], pipeline["failed"]) == (5, 9, 1)
    table = run_cli(recorded.root, "pipelines")
    assert table.output.splitlines()[1].startswith("get_started\t")

    stages = json.loads(run_cli(recorded.root, "stages", "get_started", "--json").output)
    by_name = {s["name"]: s for s in stages}
    assert list(by_name) == ["prepare", "featurize", "train", "evaluate", "publish"]
    assert by_name["train"]["executions"] == 2 and by_name["train"]["last_state"] == "COMPLETE"
    assert by_name["publish"]["last_state"] == "FAILED"


def test_executions_filters(recorded: Recorded, run_cli: Any) -> None:
    def ids(*args: str) -> list[dict[str, Any]]:
        result = run_cli(recorded.root, "executions", *args, "--json")
        assert result.exit_code == 0, result.output
        return list(json.loads(result.output))

    everything = ids()
    assert len(everything) == 9
    assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)  # newest first
    trains = ids("--pipeline", "get_started", "--stage", "train")
    assert [e["parameters"]["n_estimators"] for e in trains] == [16, 12]
    assert ids("--stage", "get_started/train") == trains
    [failed] = ids("--state", "failed")
    assert failed["id"] == recorded.failed_execution and failed["stage"] == "publish"
    assert failed["facts"]["error_type"] == "RuntimeError" and "disk full" in failed["facts"]["error_message"]
    assert len(ids("--limit", "3")) == 3
    assert len(ids("--since", "1d")) == 9
    assert ids("--since", "2999-01-01") == []
    table = run_cli(recorded.root, "executions", "--stage", "train")
    header, *rows = table.output.splitlines()
    assert header.split("\t")[:4] == ["id", "pipeline", "stage", "state"] and len(rows) == 2
    assert run_cli(recorded.root, "executions", "--stage", "nope").exit_code == 1


def test_artifacts_filters(recorded: Recorded, run_cli: Any) -> None:
    def listed(*args: str) -> list[dict[str, Any]]:
        result = run_cli(recorded.root, "artifacts", *args, "--json")
        assert result.exit_code == 0, result.output
        return list(json.loads(result.output))

    models = listed("--type", "model")
    assert [m["md5"] for m in models] == [recorded.md5_v2, recorded.md5_v1]
    csvs = listed("--path", "data/*.csv")
    assert {a["path"] for a in csvs} == {"data/raw.csv", "data/train.csv", "data/test.csv"}
    assert len([a for a in csvs if a["path"] == "data/train.csv"]) == 2  # two versions
    assert listed("--path", "nothing/*") == []
    assert run_cli(recorded.root, "artifacts", "--type", "Nope").exit_code == 1


def test_show_execution_and_artifact(recorded: Recorded, run_cli: Any) -> None:
    result = run_cli(recorded.root, "show", str(recorded.failed_execution), "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["state"] == "FAILED" and shown["parameters"] == {"target": "prod"}
    assert [a["type"] for a in shown["inputs"]] == ["Environment", "Model"] and shown["outputs"] == []
    by_uuid = json.loads(run_cli(recorded.root, "show", shown["uuid"], "--json").output)
    assert by_uuid["id"] == recorded.failed_execution

    model = json.loads(run_cli(recorded.root, "show", "models/model.pkl", "--json").output)
    assert model["md5"] == recorded.md5_v2  # a path means its newest version
    assert [e["stage"] for e in model["produced_by"]] == ["train"]
    assert sorted(e["stage"] for e in model["consumed_by"]) == ["evaluate", "publish"]
    assert [v["md5"] for v in model["versions"]] == [recorded.md5_v2, recorded.md5_v1]
    by_prefix = json.loads(run_cli(recorded.root, "show", recorded.md5_v1[:8], "--json").output)
    assert by_prefix["name"] == recorded.model_v1

    table = run_cli(recorded.root, "show", recorded.model_v1)
    assert table.exit_code == 0
    assert "# Artifact models/model.pkl" in table.output and f"md5\t{recorded.md5_v1}" in table.output
    assert "produced by\t" in table.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "no/such/file.csv"], "no artifact or execution matches 'no/such/file.csv'"),
        (["lineage", "no/such/file.csv"], "no artifact matches 'no/such/file.csv'"),
        (["show", "999999"], "no execution with id 999999"),
        (["stages", "nope"], "no pipeline named 'nope'"),
        (["pipelines", "--store", "ftp://host/db"], "unsupported scheme 'ftp'"),
        (["pipelines", "--store", "missing/mlmd"], "no metadata store at"),
        (
            ["pipelines", "--store", "postgresql://user:s3cret@127.0.0.1:9/db"],
            "postgresql://user:***@127.0.0.1:9/db is unavailable",
        ),
        (["executions", "--since", "yesterday-ish"], "--since: 'yesterday-ish' is not a date"),
    ],
)
def test_errors_are_one_line_through_the_entry_point(recorded: Recorded, args: list[str], message: str) -> None:
    done = run_entry_point(recorded.root, *args)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("cmf-orchestrate: error: ") and message in lines[0], lines[0]
    assert "Traceback" not in done.stderr and "s3cret" not in done.stderr


def test_debug_shows_the_traceback(recorded: Recorded) -> None:
    done = run_entry_point(recorded.root, "show", "no/such/file.csv", "--debug")
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("cmf-orchestrate: error: ")


def test_entry_point_lists_pipelines(recorded: Recorded) -> None:
    done = run_entry_point(recorded.root, "pipelines", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["name"] == "get_started"


def test_json_on_every_command(run_cli: Any, recorded: Recorded, tmp_path: Path) -> None:
    for args in SUBCOMMANDS:
        assert "--json" in run_cli(tmp_path, *args, "--help").output, args
    lineage = run_cli(recorded.root, "lineage", "models/model.pkl", "--json")
    assert lineage.exit_code == 0, lineage.output
    assert json.loads(lineage.output)["title"].startswith("models/model.pkl")
    both = run_cli(recorded.root, "lineage", "models/model.pkl", "--json", "--format", "dot")
    assert both.exit_code == 1 and "--json and --format dot" in both.output
    exported = run_cli(recorded.root, "export", "-o", str(tmp_path / "store.json"), "--json")
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.output)["executions"] == 9


def test_executions_show_the_orchestrator_run_and_the_error(project: Path, run_cli: Any) -> None:
    """A flow run and a DAG run, as the adapters record them; the failed attempt says why."""
    from cmf_orchestrate import CmfSettings, Dataset, RunInfo, task_run

    settings = CmfSettings(store="mlmd", project_root=project)
    Path("in.csv").write_text("a\n1\n")
    prefect = RunInfo(
        "prefect",
        "flow",
        "load",
        inputs=[Dataset("in.csv")],
        facts={
            "orchestrator": "prefect",
            "flow_run_id": "0c9f",
            "flow_run_name": "crimson-otter",
            "pipeline_run_id": "0c9f",
            "pipeline_run_name": "crimson-otter",
            "run_id": "0c9f",
        },
    )
    with task_run(prefect, settings):
        pass
    airflow = RunInfo(
        "airflow",
        "dag",
        "train",
        inputs=[Dataset("in.csv")],
        facts={
            "orchestrator": "airflow",
            "dag_id": "dag",
            "run_id": "manual__2026-01-01T00:00:00+00:00",
            "pipeline_run_id": "manual__2026-01-01T00:00:00+00:00",
            "attempt": 2,
        },
    )
    with pytest.raises(ValueError, match="bad split"), task_run(airflow, settings):
        raise ValueError("bad split")
    listed = {e["pipeline"]: e for e in json.loads(run_cli(project, "executions", "--json").output)}
    assert listed["flow"]["run"] == {"orchestrator": "prefect", "id": "0c9f", "name": "crimson-otter"}
    assert listed["flow"]["error"] is None
    assert listed["dag"]["run"]["id"] == "manual__2026-01-01T00:00:00+00:00" and listed["dag"]["run"]["attempt"] == 2
    assert listed["dag"]["error"] == "ValueError: bad split"
    rows = {line.split("\t")[1]: line.split("\t") for line in run_cli(project, "executions").output.splitlines()[1:]}
    assert rows["flow"][6:] == ["crimson-otter", ""]
    assert rows["dag"][6:] == ["manual__2026-01-01T00:00:00+00:00", "ValueError: bad split"]
    shown = run_cli(project, "show", str(listed["dag"]["id"])).output
    assert "error\tValueError: bad split" in shown and "run\tmanual__2026-01-01T00:00:00+00:00" in shown


def test_since_takes_dates_durations_and_days() -> None:
    from datetime import datetime, timedelta, timezone

    from cmf_orchestrate.cli._lookup import parse_since
    from cmf_orchestrate.errors import InvalidArgumentError

    now = datetime(2026, 3, 10, 15, 30, tzinfo=timezone.utc)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("1d", now) == now - timedelta(days=1)
    assert parse_since("90 minutes", now) == now - timedelta(minutes=90)
    assert parse_since("3 days ago", now) == now - timedelta(days=3)
    assert parse_since("1W", now) == now - timedelta(weeks=1)
    today = parse_since("today", now)
    yesterday = parse_since("Yesterday", now)
    assert (today.hour, today.minute) == (0, 0) and today <= now
    assert (yesterday.hour, yesterday.minute) == (0, 0) and yesterday.date() == today.date() - timedelta(days=1)
    assert parse_since("2026-03-01T10:00+00:00", now) == datetime(2026, 3, 1, 10, tzinfo=timezone.utc)
    for bad in ("2 fortnights", "tomorrowish", "-3h"):
        with pytest.raises(InvalidArgumentError, match="is not a date"):
            parse_since(bad, now)


def test_since_relative_forms_on_the_command_line(recorded: Recorded, run_cli: Any) -> None:
    def count(since: str) -> int:
        result = run_cli(recorded.root, "executions", "--since", since, "--json")
        assert result.exit_code == 0, result.output
        return len(json.loads(result.output))

    assert count("2h") == count("1d") == count("yesterday") == count("6 hours ago") == 9
    assert count("2999-01-01") == 0


def test_a_closed_pipe_is_not_an_error(recorded: Recorded) -> None:
    """`cmf-orchestrate artifacts | head -1`: when the reader has gone, nothing is reported."""
    import os
    import subprocess

    from cli_testlib import console_script

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line is written
    try:
        done = subprocess.run(
            [*console_script(), "artifacts"],
            cwd=recorded.root,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert done.stderr == ""
