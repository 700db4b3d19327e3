"""The environment variables that configure cmf-orchestrate; tests run without them."""

from __future__ import annotations

CMF_ENV_VARS = (
    "CMF_STORE",
    "CMF_PROJECT_ROOT",
    "CMF_GRAPH",
    "CMF_PIPELINE",
    "CMF_STRICT_OUTPUTS",
    "CMF_REMOTE",
    "CMF_INPUTS",
    "CMF_REUSE",
    "NEO4J_URI",
    "NEO4J_USER_NAME",
    "NEO4J_PASSWD",
)
