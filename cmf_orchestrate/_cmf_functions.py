"""CMF's module-level functions (``cmf.cmf_init``, ``cmf.artifact_push``, ...), on this project's commands.

Each runs the matching ``cmf-orchestrate`` subcommand in this process and returns its
output as text, as CMF's functions return theirs. Publishing metadata to a CMF server has
no counterpart: ``metadata_push``/``metadata_pull`` say which commands move metadata instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from cmf_orchestrate.errors import CmfError, InvalidArgumentError

__all__ = [
    "artifact_list",
    "artifact_pull",
    "artifact_pull_single",
    "artifact_push",
    "cmf_init",
    "cmf_init_show",
    "execution_list",
    "metadata_export",
    "metadata_pull",
    "metadata_push",
    "pipeline_list",
]


def _run(*args: str) -> str:
    """Run a ``cmf-orchestrate`` subcommand; its output.

    Raises:
        CmfError: The command failed (its message says why).
    """
    from click.testing import CliRunner

    from cmf_orchestrate.cli import cli

    result = CliRunner().invoke(cli, list(args), catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        if isinstance(result.exception, CmfError):
            raise result.exception
        raise CmfError(f"cmf-orchestrate {args[0]}: {result.exception}") from result.exception
    if result.exit_code != 0:
        raise CmfError(f"cmf-orchestrate {' '.join(args[:2])} failed: {result.output.strip()}")
    return str(result.output)


def _store(file_name: str | os.PathLike[str]) -> list[str]:
    return ["--store", os.fspath(file_name)]


def cmf_init_show() -> str:
    """The project's configuration: ``cmf-orchestrate.toml`` and the DVC default remote."""
    from cmf_orchestrate.settings import CONFIG_FILE, CmfSettings
    from cmf_orchestrate.versioning import default_remote, default_remote_url

    settings = CmfSettings.from_env()
    root = settings.project_root
    config = root / CONFIG_FILE
    lines = [f"project root: {root}", f"metadata store: {settings.location.redacted}"]
    lines.append(f"DVC remote: {default_remote(root) or '(none)'} {default_remote_url(root) or ''}".rstrip())
    if config.is_file():
        lines += [f"{CONFIG_FILE}:", config.read_text().rstrip()]
    return "\n".join(lines) + "\n"


def cmf_init(
    type: str = "",  # CMF's argument name, though it shadows the builtin
    path: str = "",
    git_remote_url: str = "",
    cmf_server_url: str = "",
    url: str = "",
    endpoint_url: str = "",
    access_key_id: str = "",
    secret_key: str = "",
    session_token: str = "",
    user: str = "",
    password: str = "",
    port: int = 0,
    osdf_path: str = "",
    osdf_cache: str = "",
    key_id: str = "",
    key_path: str = "",
    key_issuer: str = "",
    neo4j_user: str | None = None,
    neo4j_password: str | None = None,
    neo4j_uri: str | None = None,
) -> str:
    """Set the project up: a DVC repository with a remote (``cmf-orchestrate init``).

    ``type`` is CMF's remote kind (``local``, ``minioS3``, ``amazonS3``, ``sshremote``,
    ``osdfremote``); the remote is ``path`` for a local one, else ``url``. Credentials
    stay with DVC's own configuration (``dvc remote modify --local``), never in metadata;
    the Neo4j password is read from ``NEO4J_PASSWD``.

    Raises:
        InvalidArgumentError: The remote kind is unknown or its location is missing.
        CmfError: Initialising failed.
    """
    del git_remote_url, cmf_server_url, endpoint_url, access_key_id, secret_key, session_token
    del user, password, port, osdf_cache, key_id, key_path, key_issuer, neo4j_password
    kinds = {"local", "minios3", "amazons3", "sshremote", "osdfremote"}
    if type.lower() not in kinds:
        raise InvalidArgumentError(f"cmf_init: type must be one of {', '.join(sorted(kinds))}, got {type!r}")
    remote = path if type.lower() == "local" else (url or osdf_path)
    if not remote:
        raise InvalidArgumentError(f"cmf_init: the {type} remote needs {'path' if type == 'local' else 'url'}")
    if type.lower() == "local":
        remote = str(Path(remote).expanduser().resolve())
    args = ["init", "--remote", remote]
    if neo4j_uri:
        args += ["--graph", "--neo4j-uri", neo4j_uri]
    if neo4j_user:
        args += ["--neo4j-user", neo4j_user]
    return _run(*args)


def artifact_push(pipeline_name: str, filepath: str = "./mlmd", jobs: int = 32) -> str:
    """Upload a pipeline's artifacts to the DVC remote (``cmf-orchestrate artifact push``)."""
    del jobs
    return _run("artifact", "push", "--pipeline", pipeline_name, *_store(filepath))


def artifact_pull(pipeline_name: str, file_name: str = "./mlmd", artifact_name: str | None = None) -> str:
    """Download a pipeline's artifacts (or one) from the DVC remote (``cmf-orchestrate artifact pull``)."""
    if not artifact_name:
        return _run("artifact", "pull", "--pipeline", pipeline_name, *_store(file_name))
    from cmf_orchestrate.query import MetadataQuery
    from cmf_orchestrate.settings import CmfSettings
    from cmf_orchestrate.transfer import checkout, fetch

    settings = CmfSettings.from_env().replace(store=os.fspath(file_name))
    artifact = MetadataQuery(settings=settings).resolve_artifact(artifact_name)
    fetch(settings.project_root, [artifact.uri])
    checkout(settings.project_root, artifact.path, artifact.uri)
    return f"pulled {artifact.path} ({artifact.uri})\n"


def artifact_pull_single(pipeline_name: str, file_name: str, artifact_name: str) -> str:
    """Download one artifact of a pipeline from the DVC remote."""
    return artifact_pull(pipeline_name, file_name, artifact_name)


def artifact_list(pipeline_name: str, file_name: str = "./mlmd", artifact_name: str | None = None) -> str:
    """A pipeline's artifacts (``cmf-orchestrate artifacts --pipeline``), or one by name or path."""
    if artifact_name:
        return _run("show", artifact_name, *_store(file_name))
    return _run("artifacts", "--pipeline", pipeline_name, *_store(file_name))


def metadata_export(pipeline_name: str, json_file_name: str | None = None, file_name: str = "./mlmd") -> str:
    """Write a pipeline as CMF's JSON document (``cmf-orchestrate export``), to ``<pipeline>.json`` by default."""
    target = json_file_name or f"{pipeline_name}.json"
    return _run("export", "--pipeline", pipeline_name, "-o", target, *_store(file_name))


def pipeline_list(file_name: str = "./mlmd") -> str:
    """The recorded pipelines (``cmf-orchestrate pipelines``)."""
    return _run("pipelines", *_store(file_name))


def execution_list(pipeline_name: str, file_name: str = "./mlmd", execution_uuid: str | None = None) -> str:
    """A pipeline's executions (``cmf-orchestrate executions``), or the one with ``execution_uuid``."""
    if execution_uuid:
        return _run("show", execution_uuid, *_store(file_name))
    return _run("executions", "--pipeline", pipeline_name, *_store(file_name))


def metadata_push(
    pipeline_name: str,
    file_name: str = "./mlmd",
    tensorboard_path: str | None = None,
    execution_uuid: str | None = None,
) -> str:
    """CMF's upload to a CMF server; not available here.

    Raises:
        CmfError: Always: share metadata with ``cmf-orchestrate export`` and ``import``,
            or record into a shared PostgreSQL/MySQL store.
    """
    del pipeline_name, file_name, tensorboard_path, execution_uuid
    raise CmfError(
        "metadata_push to a CMF server is not supported: write the metadata with "
        "`cmf-orchestrate export -o FILE` and load it with `cmf-orchestrate import FILE` "
        "(or record into a shared PostgreSQL/MySQL store)"
    )


def metadata_pull(pipeline_name: str, file_name: str = "./mlmd", execution_uuid: str | None = None) -> str:
    """CMF's download from a CMF server; not available here.

    Raises:
        CmfError: Always: share metadata with ``cmf-orchestrate export`` and ``import``.
    """
    del pipeline_name, file_name, execution_uuid
    raise CmfError(
        "metadata_pull from a CMF server is not supported: load a document written by "
        "`cmf-orchestrate export` (or CMF's own) with `cmf-orchestrate import FILE`"
    )
