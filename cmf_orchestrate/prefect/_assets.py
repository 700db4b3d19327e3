"""Announcing recorded artifacts as Prefect asset materializations.

Prefect emits ``prefect.asset.materialization.*`` events for the downstream assets of
the task run's :class:`~prefect.context.AssetContext` when the attempt ends. Declared
paths may be templated, so the assets are only known at call time: they are added to
the running task's asset context here instead of being fixed at decoration time.

A project file is the asset ``cmf://<path relative to the project root>``, the key an
Airflow task gives the same file (:mod:`cmf_orchestrate._assetkey`); a step-metrics file
is one asset over runs, whatever run uuid its name carries.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prefect.assets import Asset
from prefect.context import AssetContext

from cmf_orchestrate import _assetkey
from cmf_orchestrate.records import ArtifactKind, ArtifactRecord

logger = logging.getLogger(__name__)

#: Recorded as the tool that materialized the assets.
MATERIALIZED_BY = "cmf-orchestrate"


def asset_key(path: str | Path, root: Path) -> str:
    """The asset key of the project file ``path`` (relative, or absolute under ``root``)."""
    candidate = Path(path)
    if candidate.is_absolute():
        # Outside the project it stays absolute: the core refuses to record it anyway.
        with contextlib.suppress(ValueError):
            candidate = candidate.resolve().relative_to(root.resolve())
    return _assetkey.asset_key(candidate.as_posix())


def _context() -> AssetContext | None:
    ctx = AssetContext.get()
    if ctx is None or ctx.task_run_id is None:
        return None
    return ctx


def declare(inputs: Iterable[str], outputs: Iterable[str], root: Path) -> None:
    """Make the running task materialize ``outputs`` and reference ``inputs``.

    Declared before user code runs, so that a failed attempt is announced as a failed
    materialization of the same assets.
    """
    ctx = _context()
    if ctx is None:
        return
    ctx.direct_asset_dependencies.update(Asset(key=asset_key(p, root)) for p in inputs)
    produced = {Asset(key=asset_key(p, root)) for p in outputs}
    if produced:
        ctx.downstream_assets.update(produced)
        if ctx.materialized_by is None:
            ctx.materialized_by = MATERIALIZED_BY
    # Tasks downstream of this one inherit these assets as their upstream assets.
    ctx.update_tracked_assets()


def describe(outputs: Iterable[ArtifactRecord], root: Path, facts: Mapping[str, Any]) -> None:
    """Attach md5, MLMD ids and ``facts`` to the materialization of each recorded output file.

    Outputs without a file (execution metrics logged through ``current_run()``) are not
    assets and are left out.
    """
    ctx = _context()
    if ctx is None:
        return
    known = {asset.key for asset in ctx.downstream_assets}
    for record in outputs:
        if record.kind == ArtifactKind.ENVIRONMENT or not (root / record.path).exists():
            continue
        key = asset_key(record.path, root)
        if key not in known:
            ctx.downstream_assets.add(Asset(key=key))
            known.add(key)
            if ctx.materialized_by is None:
                ctx.materialized_by = MATERIALIZED_BY
        metadata: dict[str, Any] = {
            "path": record.path,
            "md5": record.md5,
            "kind": record.kind,
            "mlmd_artifact_id": record.id,
            "mlmd_artifact_name": record.name,
        }
        metadata.update(facts)
        ctx.add_asset_metadata(key, metadata)
    ctx.update_tracked_assets()
