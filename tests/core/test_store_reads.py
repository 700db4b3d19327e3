"""Reads page by id and never skip a row, on every backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmf_orchestrate import CmfSettings, RunInfo, task_run
from cmf_orchestrate.store import _store, open_store


def test_listing_pages_by_id_and_skips_nothing(store_url: str, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_store, "_PAGE", 7)  # many pages from a few rows
    settings = CmfSettings(store=store_url)
    for n in range(23):
        with task_run(RunInfo("cmf", "paged", f"s{n % 3}", parameters={"n": n}), settings):
            pass
    store = open_store(settings.location)
    everything = store.executions()
    assert [e.id for e in everything] == sorted(e.id for e in everything)
    assert sorted(e.custom_properties["n"] for e in everything) == list(range(23))
    assert [e.id for e in store.executions(newest_first=True)] == [e.id for e in reversed(everything)]
    assert [e.id for e in store.executions(limit=5, newest_first=True)] == [e.id for e in everything[::-1][:5]]
    one_stage = store.executions(stage="paged/s1")
    assert sorted(e.custom_properties["n"] for e in one_stage) == list(range(1, 23, 3))
    assert len(store.executions(pipeline="paged")) == 23
    assert store.count("executions") == 23
