"""The ``cmf-orchestrate`` command line.

Entry point ``cmf_orchestrate.cli:main``; :data:`cli` is the Click group (for
``click.testing.CliRunner``).
"""

from __future__ import annotations

from cmf_orchestrate.cli import _inspect, _lineage, _project  # noqa: F401 - registers the subcommands
from cmf_orchestrate.cli._app import cli, main

__all__ = ["cli", "main"]
