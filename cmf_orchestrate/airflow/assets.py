"""Airflow assets naming CMF artifacts.

A declared input or output ``path`` (relative to the project root) is the Airflow asset
``cmf://<path>`` (name and URI), the same key a Prefect task gives the same file (see
:mod:`cmf_orchestrate._assetkey` for the rules). Use :func:`cmf_asset` to schedule a DAG
on an output of another DAG::

    @dag(schedule=[cmf_asset("model/rf.pkl")])
    def evaluate_nightly(): ...

Asset events emitted by ``CmfOperator`` carry, in their ``extra``: ``path``, ``md5``,
``artifact_type``, ``artifact_id``, ``execution_id``, ``execution_uuid``,
``pipeline_id`` and ``stage_id`` (MLMD ids).
"""

from __future__ import annotations

from cmf_orchestrate._assetkey import ASSET_SCHEME, asset_key
from cmf_orchestrate.airflow._compat import Asset

__all__ = ["ASSET_SCHEME", "cmf_asset"]


def cmf_asset(path: str) -> Asset:
    """The Airflow asset standing for the project file or directory ``path``.

    Args:
        path: Path relative to the project root, with forward slashes.

    Returns:
        The asset ``cmf://<path>``, named by its URI.
    """
    key = asset_key(path)
    return Asset(name=key, uri=key)
