"""The one error hierarchy of cmf-orchestrate.

Every error raised on purpose by this package is a :class:`CmfError`. Errors of
third-party libraries (ML Metadata, DVC, the Neo4j driver) are translated at the
module that talks to them and chained with ``raise ... from exc``. Messages name
the thing at fault and never carry a password.
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "ArtifactNotFoundError",
    "CmfError",
    "ConfigError",
    "GraphError",
    "GraphUnavailableError",
    "InvalidArgumentError",
    "NoActiveRunError",
    "PathOutsideProjectError",
    "RemoteError",
    "StoreError",
    "StoreUnavailableError",
    "TemplateError",
]


class CmfError(Exception):
    """Base class of every error raised by cmf-orchestrate."""


class ConfigError(CmfError):
    """The configuration is invalid: a malformed store URL, an unknown setting, a bad value."""


class InvalidArgumentError(CmfError, ValueError):
    """An argument has a value the call cannot accept (a bad event name, a reserved key)."""


class StoreError(CmfError):
    """The metadata store refused or failed an operation."""


class StoreUnavailableError(StoreError):
    """The metadata store cannot be reached or opened."""


class GraphError(CmfError):
    """The Neo4j graph refused or failed a write (the metadata store is unaffected)."""


class GraphUnavailableError(GraphError):
    """Neo4j cannot be reached, refused the credentials, or timed out."""


class ArtifactError(CmfError):
    """An artifact cannot be recorded."""


class ArtifactNotFoundError(ArtifactError, FileNotFoundError):
    """A declared or logged artifact path does not exist, or an artifact is not in the store."""


class PathOutsideProjectError(ArtifactError):
    """An artifact path lies outside the project root."""


class RemoteError(ArtifactError):
    """A DVC remote could not be reached, or refused or lost content being moved."""


class TemplateError(CmfError, KeyError):
    """A path template names a placeholder that has no value."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class NoActiveRunError(CmfError, RuntimeError):
    """``current_run()`` was called outside a recorded task run."""
