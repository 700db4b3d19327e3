"""``python -m cmf_orchestrate.cli``: the same as the ``cmf-orchestrate`` command."""

from __future__ import annotations

from cmf_orchestrate.cli import main

raise SystemExit(main())
