"""Where the documentation lives, as the Airflow provider and the Prefect block announce it.

The installed distribution's ``Documentation`` project URL wins (``[project.urls]`` in
``pyproject.toml``); without one, the Common Metadata Framework's documentation.
This module imports neither Airflow nor Prefect.
"""

from __future__ import annotations

import functools
from importlib import metadata

__all__ = ["CMF_DOCUMENTATION_URL", "CMF_REPOSITORY_URL", "LOGO_URL", "documentation_url"]

DISTRIBUTION = "cmf-orchestrate"
#: The Common Metadata Framework's documentation and repository.
CMF_DOCUMENTATION_URL = "https://hewlettpackard.github.io/cmf/"
CMF_REPOSITORY_URL = "https://github.com/HewlettPackard/cmf"
#: The avatar of the organisation that publishes CMF, shown next to the Prefect block.
LOGO_URL = "https://github.com/HewlettPackard.png"


@functools.cache
def documentation_url() -> str:
    """The documentation URL of this package."""
    urls: list[str]
    try:
        urls = [str(u) for u in metadata.metadata(DISTRIBUTION).get_all("Project-URL") or []]
    except metadata.PackageNotFoundError:  # a source tree without an install
        urls = []
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip().lower() in {"documentation", "docs"} and url.strip():
            return url.strip()
    return CMF_DOCUMENTATION_URL
