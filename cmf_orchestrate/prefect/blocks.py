"""The ``CmfConfig`` Prefect block: where cmf-orchestrate records, kept in Prefect.

Save one block per environment (``CmfConfig(store=...).save("prod")``) and name it in
``@cmf_task(config="prod")`` or ``@cmf_flow(config="prod")``. Fields left empty fall
back to the environment and the project's ``cmf-orchestrate.toml``, exactly as
:meth:`cmf_orchestrate.CmfSettings.from_env` does without a block.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, HttpUrl, SecretStr, field_validator

from cmf_orchestrate._links import LOGO_URL, documentation_url
from cmf_orchestrate.errors import ConfigError
from cmf_orchestrate.settings import CmfSettings

__all__ = ["CmfConfig"]

logger = logging.getLogger(__name__)


class CmfConfig(Block):
    """Settings of cmf-orchestrate stored as a Prefect block.

    Attributes:
        store: MLMD store: a path relative to the project root, ``sqlite:///path``,
            ``postgresql://user@host:port/db`` or ``mysql://user@host:port/db``. A URL
            holding a password is refused: the password belongs in ``store_password``.
        store_password: Password of a PostgreSQL or MySQL store, kept secret and
            merged into ``store`` only in memory.
        project_root: Root of the project (its DVC repository and relative paths).
        graph: Mirror executions into Neo4j; empty lets the environment decide.
        neo4j_uri: Bolt URL of the Neo4j server.
        neo4j_user: Neo4j user name.
        neo4j_password: Neo4j password, kept secret.
        pipeline: Pipeline name replacing the flow name.
        strict_outputs: Fail an attempt whose declared output it did not write.
        remote: DVC remote URL shared by every worker (a path, ``s3://bucket/prefix``, any
            scheme DVC supports): completing a task pushes its outputs there, and an input
            missing from the project root is fetched from there. A URL holding a password
            is refused: the password belongs in ``remote_password``.
        remote_password: Password of the remote URL's user, kept secret and merged into
            ``remote`` only in memory.
        inputs: ``recorded``: with a remote, an input whose local bytes differ from its
            latest recorded version is replaced by that version; ``local``: local files are
            used as they are.
        reuse: Every task reuses an earlier COMPLETE execution with the same inputs,
            parameters, code and environment instead of running again.

    Example:
        ```python
        from cmf_orchestrate.prefect import CmfConfig, cmf_task

        CmfConfig(store="postgresql://cmf@db:5432/cmf", project_root="/srv/project").save("prod")

        @cmf_task(config="prod")
        def train(): ...
        ```
    """

    # Validation errors never echo a value: a store URL may hold a password by mistake.
    model_config = ConfigDict(hide_input_in_errors=True)

    _block_type_name: ClassVar[str] = "CMF Config"
    _block_type_slug: ClassVar[str] = "cmf-config"
    _logo_url: ClassVar[HttpUrl | None] = HttpUrl(LOGO_URL)
    _documentation_url: ClassVar[HttpUrl | None] = HttpUrl(documentation_url())
    _description: ClassVar[str] = (
        "Where cmf-orchestrate records the lineage of Prefect task runs: the ML Metadata store, "
        "the project (DVC) root, the DVC remote shared by workers and the optional Neo4j graph."
    )
    _code_example: ClassVar[str] = """
```python
from cmf_orchestrate.prefect import CmfConfig, cmf_task

@cmf_task(config="BLOCK_NAME")
def train(): ...
```
"""

    store: str | None = Field(
        default=None,
        title="Metadata store",
        description="ML Metadata store: a path relative to the project root, sqlite:///path, "
        "postgresql://user@host:port/db or mysql://user@host:port/db. Default: CMF_STORE, else the project file, "
        "else mlmd in the project root.",
        examples=["mlmd", "postgresql://cmf@127.0.0.1:5432/cmf"],
    )
    store_password: SecretStr | None = Field(
        default=None, title="Store password", description="Password of a PostgreSQL or MySQL store."
    )
    project_root: str | None = Field(
        default=None,
        title="Project root",
        description="Folder that declared paths are relative to; it holds the DVC repository and cache. "
        "Default: CMF_PROJECT_ROOT, else the task's working directory.",
    )
    graph: bool | None = Field(
        default=None,
        title="Mirror into Neo4j",
        description="Mirror every finished execution into Neo4j. Default: on when a Neo4j URI is set.",
    )
    neo4j_uri: str | None = Field(default=None, title="Neo4j URI", description="Bolt URL of the Neo4j server.")
    neo4j_user: str | None = Field(default=None, title="Neo4j user", description="Neo4j user name.")
    neo4j_password: SecretStr | None = Field(default=None, title="Neo4j password", description="Neo4j password.")
    pipeline: str | None = Field(
        default=None,
        title="Pipeline name",
        description="Pipeline name replacing the flow name. Default: the flow name.",
    )
    strict_outputs: bool | None = Field(
        default=None,
        title="Strict outputs",
        description="Fail an attempt whose declared output it did not write (default: record it as declared, "
        "not produced).",
    )
    remote: str | None = Field(
        default=None,
        title="DVC remote",
        description="DVC remote URL shared by every worker: a path, s3://bucket/prefix or any scheme DVC "
        "supports. Completing a task pushes its outputs there; a missing input is fetched from there. "
        "Default: CMF_REMOTE, else the project file, else none.",
        examples=["s3://ml-artifacts/cmf", "/mnt/shared/dvc-remote"],
    )
    remote_password: SecretStr | None = Field(
        default=None,
        title="Remote password",
        description="Password of the remote URL's user (https://user@host/path, ssh://user@host/path).",
    )
    inputs: Literal["recorded", "local"] | None = Field(
        default=None,
        title="Declared inputs",
        description="With a remote, an input whose local bytes differ from its latest recorded version is "
        "replaced by that version (recorded, the default), or used as it is (local).",
    )
    reuse: bool | None = Field(
        default=None,
        title="Reuse earlier runs",
        description="Every task reuses an earlier COMPLETE execution with the same inputs, parameters, "
        "code and environment instead of running again (default: off; a task can turn it on for itself).",
    )

    @field_validator("store")
    @classmethod
    def _no_password_in_store(cls, value: str | None) -> str | None:
        if _has_password(value):
            raise ValueError(
                "store holds a password; put it in the secret field store_password and keep only "
                "the user in the URL (postgresql://user@host:port/db)"
            )
        return value

    @field_validator("remote")
    @classmethod
    def _no_password_in_remote(cls, value: str | None) -> str | None:
        if _has_password(value):
            raise ValueError(
                "remote holds a password; put it in the secret field remote_password and keep only "
                "the user in the URL (https://user@host/path)"
            )
        return value

    def to_settings(self, environ: dict[str, str] | None = None) -> CmfSettings:
        """The core settings this block describes, completed from the environment.

        Args:
            environ: Environment to complete empty fields from (default: ``os.environ``).

        Raises:
            ConfigError: A value is invalid (a malformed store URL, for example).
        """
        overrides: dict[str, Any] = {
            "store": _with_password(self.store, self.store_password),
            "project_root": self.project_root or None,
            "graph": self.graph,
            "neo4j_uri": self.neo4j_uri or None,
            "neo4j_user": self.neo4j_user or None,
            "neo4j_password": self.neo4j_password.get_secret_value() if self.neo4j_password else None,
            "pipeline": self.pipeline or None,
            "strict_outputs": self.strict_outputs,
            "remote": _with_remote_password(self.remote, self.remote_password),
            "inputs": self.inputs or None,
            "reuse": self.reuse,
        }
        return CmfSettings.from_env(environ, **overrides)


def _has_password(url: str | None) -> bool:
    try:
        return bool(url and "://" in url and urlsplit(url).password)
    except ValueError:  # not a URL: the settings report it where it is used
        return False


def _with_password(store: str | None, password: SecretStr | None) -> str | None:
    """``store`` with ``password`` set in its URL (server stores only)."""
    if not store or password is None or not password.get_secret_value():
        return store or None
    parts = urlsplit(store)
    if "://" not in store or parts.scheme.startswith("sqlite"):
        raise ConfigError("store_password is set but the store is not a PostgreSQL or MySQL URL")
    if parts.password:
        raise ConfigError("store_password is set and the store URL already holds a password")
    return _set_password(store, password)


def _with_remote_password(remote: str | None, password: SecretStr | None) -> str | None:
    """``remote`` with ``password`` set in its URL (a URL naming its user)."""
    if not remote or password is None or not password.get_secret_value():
        return remote or None
    parts = urlsplit(remote)
    if "://" not in remote or "@" not in parts.netloc:
        raise ConfigError("remote_password is set but the remote is not a URL naming a user (https://user@host/path)")
    if parts.password:
        raise ConfigError("remote_password is set and the remote URL already holds a password")
    return _set_password(remote, password)


def _set_password(url: str, password: SecretStr) -> str:
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    netloc = f"{user}:{quote(password.get_secret_value(), safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
