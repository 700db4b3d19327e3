"""What the command line shows on a real terminal: tables fitted to its width."""

from __future__ import annotations

import pytest
from cli_testlib import Recorded, run_in_terminal
from rich.cells import cell_len

from cmf_orchestrate.cli._app import ellipsize, fit_columns


def _commands(recorded: Recorded) -> list[list[str]]:
    return [
        ["pipelines"],
        ["stages", "get_started"],
        ["executions"],
        ["executions", "--state", "FAILED"],
        ["artifacts"],
        ["show", str(recorded.failed_execution)],
        ["show", "models/model.pkl"],
        ["diff", recorded.model_v1, recorded.model_v2],
        ["lineage", "metrics/scores.json"],
    ]


@pytest.mark.parametrize("columns", [80, 48])
def test_every_table_fits_the_terminal(recorded: Recorded, columns: int) -> None:
    for args in _commands(recorded):
        shown = run_in_terminal(recorded.root, *args, columns=columns)
        assert "error" not in shown.splitlines()[0], shown
        for line in shown.splitlines():
            assert cell_len(line.rstrip()) <= columns, (args, columns, line)
        # Words are never folded over two lines ("COMPLET" / "E"): a cell is whole or ellipsized.
        words = shown.split()
        assert "COMPLET" not in words and "get-star" not in words and "get_star" not in words, (args, shown)


def test_executions_at_80_columns_show_state_run_and_error(recorded: Recorded) -> None:
    shown = run_in_terminal(recorded.root, "executions", columns=80)
    header = next(line for line in shown.splitlines() if line.startswith("id "))
    assert header.split() == ["id", "pipeline", "stage", "state", "started", "duration", "run", "error"]
    failed = next(line for line in shown.splitlines() if line.startswith(f"{recorded.failed_execution} "))
    assert "get_started" in failed and "publish" in failed and "FAILED" in failed and "RuntimeError" in failed
    assert shown.count("COMPLETE") == 8
    artifacts = run_in_terminal(recorded.root, "artifacts", columns=80)
    # md5s are cut to their first digits before paths are shortened; paths keep their file name.
    assert f"{recorded.md5_v1[:8]}…" in artifacts and "models/model.pkl" in artifacts
    assert "features/train.csv" in artifacts


def test_a_column_nobody_filled_in_is_left_out_on_a_terminal(recorded: Recorded) -> None:
    shown = run_in_terminal(recorded.root, "executions", "--state", "COMPLETE", columns=80)
    header = next(line for line in shown.splitlines() if line.startswith("id "))
    assert header.split() == ["id", "pipeline", "stage", "state", "started", "duration", "run"]


def test_too_narrow_for_a_table_lays_rows_out_vertically(recorded: Recorded) -> None:
    shown = run_in_terminal(recorded.root, "executions", "--state", "FAILED", columns=30)
    lines = [line.rstrip() for line in shown.splitlines()]
    assert f"id {recorded.failed_execution}" in lines
    assert any(line.split() == ["state", "FAILED"] for line in lines)
    assert all(cell_len(line) <= 30 for line in lines)


def test_fitting_rules() -> None:
    columns = ("id", "path", "md5", "created")
    cells = [["artifact:12", "features/v1/train.csv", "0123456789abcdef0123456789abcdef", "2020-01-02 03:04:05"]]
    layout = fit_columns(columns, cells, 200, {"md5": "hash", "path": "middle", "created": "time"})
    assert layout is not None and layout[0] == [11, 21, 32, 19]  # room enough: nothing changes
    layout = fit_columns(columns, cells, 64, {"md5": "hash", "path": "middle", "created": "time"})
    assert layout is not None
    widths, _modes, rows = layout
    assert sum(widths) + 2 * 3 <= 64
    assert widths[2] < 32 and widths[1] == 21  # the md5 gives way first
    assert rows[0][3] == "2020-01-02"  # an old timestamp keeps its date
    assert fit_columns(columns, cells, 30, {}) is None
    assert ellipsize("features/v1/train.csv", 12, "middle") == "featu…in.csv"
    assert ellipsize("features/v1/train.csv", 12, "start") == "…1/train.csv"
    assert ellipsize("RuntimeError: disk full", 10) == "RuntimeEr…"
    assert ellipsize("short", 10) == "short"


def test_lineage_tree_on_a_narrow_terminal(recorded: Recorded) -> None:
    shown = run_in_terminal(recorded.root, "lineage", "models/model.pkl", columns=80)
    lines = shown.splitlines()
    assert lines[0].rstrip() == f"Model models/model.pkl md5 {recorded.md5_v2[:8]}…"
    assert shown.count("python environment") == 1  # an input of every execution, shown once
    assert "prepare #" in shown and "data/raw.csv" in shown
