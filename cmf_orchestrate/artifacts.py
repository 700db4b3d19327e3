"""Artifact declarations shared by every orchestrator adapter.

A task declares what it reads and writes; the run lifecycle hashes, versions and
records them. Paths may hold ``{name}`` placeholders filled from the task's arguments
(``Dataset("data/{split}/train.csv")``). Airflow's Jinja templating is applied by the
Airflow adapter before these placeholders.
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from cmf_orchestrate.errors import InvalidArgumentError, TemplateError
from cmf_orchestrate.records import ArtifactKind

__all__ = ["ArtifactSpec", "Dataset", "Dataslice", "Metrics", "Model"]

S = TypeVar("S", bound="ArtifactSpec")
_FORMATTER = string.Formatter()


@dataclass(frozen=True)
class ArtifactSpec:
    """Base of the declarations: a project-relative path and custom properties."""

    kind: ClassVar[ArtifactKind]
    path: str
    custom_properties: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path.strip():
            raise InvalidArgumentError(f"{type(self).__name__}: path must be a non-empty string, got {self.path!r}")

    @property
    def placeholders(self) -> tuple[str, ...]:
        """The ``{name}`` placeholders of the path."""
        try:
            return tuple(name for _, name, _, _ in _FORMATTER.parse(self.path) if name is not None)
        except ValueError as exc:
            raise TemplateError(f"{type(self).__name__}({self.path!r}): malformed template: {exc}") from None

    def render(self: S, values: Mapping[str, Any]) -> S:
        """The declaration with ``{name}`` placeholders filled from ``values``.

        Raises:
            TemplateError: A placeholder has no value (the message names it and the path).
        """
        names = self.placeholders
        if not names:
            return self
        for name in names:
            root = name.split(".", 1)[0].split("[", 1)[0]
            if not root or root not in values:
                known = ", ".join(sorted(values)) or "none"
                raise TemplateError(
                    f"{type(self).__name__}({self.path!r}): unknown placeholder {{{name}}} (known: {known})"
                )
        try:
            path = self.path.format_map(dict(values))
        except (KeyError, IndexError, AttributeError, ValueError) as exc:
            raise TemplateError(f"{type(self).__name__}({self.path!r}): cannot fill the template: {exc}") from None
        return dataclasses.replace(self, path=path)


@dataclass(frozen=True)
class Dataset(ArtifactSpec):
    """A data file or directory."""

    kind: ClassVar[ArtifactKind] = ArtifactKind.DATASET


@dataclass(frozen=True)
class Model(ArtifactSpec):
    """A model file or directory."""

    kind: ClassVar[ArtifactKind] = ArtifactKind.MODEL
    framework: str = ""
    model_type: str = ""
    model_name: str = ""


@dataclass(frozen=True)
class Metrics(ArtifactSpec):
    """A JSON file of metrics (a flat object of numbers); its values become properties."""

    kind: ClassVar[ArtifactKind] = ArtifactKind.METRICS


@dataclass(frozen=True)
class Dataslice(ArtifactSpec):
    """A directory whose files form a data slice (hashed per file)."""

    kind: ClassVar[ArtifactKind] = ArtifactKind.DATASLICE
