"""Artifacts logged through the seed API, recorded with their execution's next write.

Logging an artifact hashes and versions it at once (so a bad path fails the call), but
its metadata waits for the execution's next write: closing the execution records the
artifacts logged during it, the outputs and the final state in one transaction. Reading
a :class:`LoggedArtifact` (its id, name or any attribute of
:class:`~cmf_orchestrate.records.ArtifactRecord`) records what is pending first.

It reads like ML Metadata's ``Artifact`` proto, as CMF scripts expect:
``.properties["url"].string_value``, ``.custom_properties[...]``, ``.type_id``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cmf_orchestrate._proto import ArtifactView
from cmf_orchestrate.records import ArtifactRecord

__all__ = ["LoggedArtifact"]


class LoggedArtifact:
    """An artifact logged in an execution; reads as the :class:`ArtifactRecord` it becomes."""

    __slots__ = ("_flush", "_record", "_type_ids")

    def __init__(self, flush: Callable[[], None], type_ids: Callable[[str, str], int | None] | None = None) -> None:
        self._flush = flush
        self._type_ids = type_ids
        self._record: ArtifactRecord | None = None

    def resolve(self, record: ArtifactRecord) -> None:
        """Bind the stored record (called by the write that recorded it)."""
        self._record = record

    @property
    def recorded(self) -> bool:
        """Whether the artifact is in the store already."""
        return self._record is not None

    @property
    def record(self) -> ArtifactRecord:
        """The stored artifact (recording what is pending first)."""
        if self._record is None:
            self._flush()
        if self._record is None:  # pragma: no cover - a flush always binds its artifacts
            raise RuntimeError("the logged artifact was not recorded")
        return self._record

    @property
    def view(self) -> ArtifactView:
        """The stored artifact, read like an ML Metadata ``Artifact`` proto."""
        return ArtifactView(self.record, self._type_ids)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.view, name)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LoggedArtifact):
            return self.record == other.record
        return self.record == other

    def __hash__(self) -> int:
        return hash(self.record)

    def __repr__(self) -> str:
        return repr(self._record) if self._record is not None else "LoggedArtifact(<pending>)"
