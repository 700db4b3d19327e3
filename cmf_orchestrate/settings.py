"""The one configuration object.

:class:`CmfSettings` is built explicitly, from the environment (:meth:`CmfSettings.from_env`,
which also reads the project's ``cmf-orchestrate.toml``), from an Airflow connection or
from a Prefect block. Nothing here reads the environment at import time, and the Neo4j
password never appears in ``repr`` or in any message.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from cmf_orchestrate._storeurl import StoreLocation, mask_credentials, parse_store_url
from cmf_orchestrate.errors import ConfigError

__all__ = ["CONFIG_FILE", "INPUT_MODES", "CmfSettings"]

#: Project configuration file, read from the project root (written by ``cmf-orchestrate init``).
CONFIG_FILE = "cmf-orchestrate.toml"

#: Values of the ``inputs`` setting.
INPUT_MODES = ("recorded", "local")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{name}: expected a boolean (true/false), got {value!r}")


@dataclass(frozen=True)
class CmfSettings:
    """Where and how cmf-orchestrate records.

    Attributes:
        store: The MLMD store: a file path (relative to ``project_root``), ``sqlite:///path``,
            ``postgresql://user:pass@host:port/db`` or ``mysql://user:pass@host:port/db``.
        project_root: Root of the project; artifact paths are relative to it and its DVC
            repository holds their cache.
        graph: Mirror every execution into Neo4j.
        neo4j_uri: Bolt URL of the Neo4j server.
        neo4j_user: Neo4j user name.
        neo4j_password: Neo4j password; never shown.
        pipeline: Pipeline name overriding the orchestrator's (DAG id, flow name).
        strict_outputs: Fail an attempt whose declared output was not written during it
            (its mtime is before the attempt started). Off: such an output is recorded
            as ``DECLARED_OUTPUT``, never as produced, with a warning.
        remote: DVC remote URL shared by every worker: a path, ``s3://bucket/prefix`` or
            any scheme DVC supports through its plugins (``dvc-s3``, ...). With a remote,
            completing an attempt pushes its outputs there, and an input missing from the
            project root is fetched from there by its recorded md5.
        inputs: ``recorded`` (default): with a remote, a declared input whose local bytes
            differ from its latest recorded version is replaced by that version (the
            project root is a cache). ``local``: local files are used as they are.
        reuse: Reuse an earlier COMPLETE execution with the same inputs, parameters,
            code and environment instead of running a task again (every task).
    """

    store: str = "mlmd"
    project_root: Path = field(default_factory=Path.cwd)
    graph: bool = False
    neo4j_uri: str | None = None
    neo4j_user: str | None = None
    neo4j_password: str | None = field(default=None, repr=False)
    pipeline: str | None = None
    strict_outputs: bool = False
    remote: str | None = None
    inputs: str = "recorded"
    reuse: bool = False

    def __post_init__(self) -> None:
        root = Path(self.project_root).expanduser().resolve()
        object.__setattr__(self, "project_root", root)
        object.__setattr__(self, "graph", _as_bool("graph", self.graph))
        object.__setattr__(self, "strict_outputs", _as_bool("strict_outputs", self.strict_outputs))
        object.__setattr__(self, "reuse", _as_bool("reuse", self.reuse))
        object.__setattr__(self, "remote", _remote(self.remote))
        inputs = str(self.inputs).strip().lower()
        if inputs not in INPUT_MODES:
            raise ConfigError(f"inputs: expected one of {', '.join(INPUT_MODES)}, got {self.inputs!r}")
        object.__setattr__(self, "inputs", inputs)
        # Validate now so that a malformed URL fails where it was configured.
        self.location  # noqa: B018

    @functools.cached_property
    def location(self) -> StoreLocation:
        """The parsed store location (relative SQLite paths resolved against the root)."""
        return parse_store_url(self.store, base=self.project_root)

    def replace(self, **changes: Any) -> CmfSettings:
        """A copy with some settings changed.

        Raises:
            ConfigError: A changed value is invalid.
        """
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        password = ", neo4j_password='***'" if self.neo4j_password else ""
        return (
            f"CmfSettings(store={self.location.redacted!r}, project_root={str(self.project_root)!r}, "
            f"graph={self.graph!r}, neo4j_uri={self.neo4j_uri!r}, neo4j_user={self.neo4j_user!r}"
            f"{password}, pipeline={self.pipeline!r}, strict_outputs={self.strict_outputs!r}, "
            f"remote={mask_credentials(self.remote) if self.remote else None!r}, inputs={self.inputs!r}, "
            f"reuse={self.reuse!r})"
        )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> CmfSettings:
        """Settings from the project config file, then the environment, then ``overrides``.

        Environment variables: ``CMF_STORE``, ``CMF_PROJECT_ROOT``, ``CMF_GRAPH``,
        ``CMF_PIPELINE``, ``CMF_STRICT_OUTPUTS``, ``CMF_REMOTE``, ``CMF_INPUTS``, ``CMF_REUSE``
        and the seed's ``NEO4J_URI``, ``NEO4J_USER_NAME``, ``NEO4J_PASSWD``.
        A keyword set to ``None`` is ignored. ``graph`` defaults to on when a Neo4j URI is
        configured and ``CMF_GRAPH`` says nothing.

        Raises:
            ConfigError: The config file or a value is invalid.
        """
        env = os.environ if environ is None else environ
        given = {k: v for k, v in overrides.items() if v is not None}
        root = Path(given.get("project_root") or env.get("CMF_PROJECT_ROOT") or Path.cwd())
        values: dict[str, Any] = {"project_root": root}
        values.update(read_project_config(root))
        mapping = {
            "CMF_STORE": "store",
            "CMF_GRAPH": "graph",
            "CMF_PIPELINE": "pipeline",
            "CMF_STRICT_OUTPUTS": "strict_outputs",
            "CMF_REMOTE": "remote",
            "CMF_INPUTS": "inputs",
            "CMF_REUSE": "reuse",
            "NEO4J_URI": "neo4j_uri",
            "NEO4J_USER_NAME": "neo4j_user",
            "NEO4J_PASSWD": "neo4j_password",
        }
        for var, name in mapping.items():
            if env.get(var):
                values[name] = env[var]
        values.update(given)
        if "graph" not in values and values.get("neo4j_uri"):
            values["graph"] = True
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return cls(**values)


def read_project_config(root: Path) -> dict[str, Any]:
    """Settings from ``<root>/cmf-orchestrate.toml`` (empty when the file is absent).

    Raises:
        ConfigError: The file is not valid TOML or holds a secret.
    """
    path = Path(root) / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    store = data.get("store", {})
    graph = data.get("graph", {})
    if "password" in graph:
        raise ConfigError(f"{path}: [graph] password must not be stored in the project file; use NEO4J_PASSWD")
    values: dict[str, Any] = {}
    if "url" in store:
        values["store"] = str(store["url"])
    if "enabled" in graph:
        values["graph"] = graph["enabled"]
    if "uri" in graph:
        values["neo4j_uri"] = str(graph["uri"])
    if "user" in graph:
        values["neo4j_user"] = str(graph["user"])
    if "pipeline" in data:
        values["pipeline"] = str(data["pipeline"])
    for key in ("strict_outputs", "inputs", "reuse"):
        if key in data:
            values[key] = data[key]
    remote = data.get("remote", {})
    if isinstance(remote, str):
        values["remote"] = remote
    elif "url" in remote:
        values["remote"] = str(remote["url"])
    return values


def _remote(value: Any) -> str | None:
    """A remote URL as given, or None; a relative local path stays relative to where it is used."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if "\n" in text or "\x00" in text:
        raise ConfigError(f"remote: not a URL or path: {mask_credentials(text)!r}")
    return text
