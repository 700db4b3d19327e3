"""Subcommands that change things: init, export/import, artifact push/pull, reconcile, graph sync."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import click

from cmf_orchestrate.cli._app import (
    CliError,
    cli,
    common,
    emit_json,
    emit_table,
    info,
    json_option,
    progress,
    state,
)
from cmf_orchestrate.cli._inspect import PIPELINE_TYPE, execution_dict, stages_by_id
from cmf_orchestrate.cli._lookup import fmt_ms
from cmf_orchestrate.errors import ArtifactNotFoundError, ConfigError, InvalidArgumentError
from cmf_orchestrate.records import ArtifactRecord

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

if TYPE_CHECKING:
    from cmf_orchestrate.store import MetadataStore
    from cmf_orchestrate.transfer import TransferReport

_MD5 = re.compile(r"^[0-9a-f]{32}(\.dir)?$")
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")

# --------------------------------------------------------------------------- init


def _without_password(url: str) -> tuple[str, bool]:
    """The store URL without its password, and whether there was one."""
    if "://" not in url:
        return url, False
    parts = urlsplit(url)
    if parts.password is None:
        return url, False
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), True


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _write_config(path: Path, config: dict[str, Any]) -> None:
    lines = [
        "# cmf-orchestrate project settings (read by the library and the command line).",
        "# No secrets here: give passwords through CMF_STORE / NEO4J_PASSWD in the environment.",
    ]
    if "pipeline" in config:
        lines.append(f"pipeline = {_toml_value(config['pipeline'])}")
    for table in ("store", "graph"):
        values = config.get(table) or {}
        if values:
            lines.append("")
            lines.append(f"[{table}]")
            lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
    for table, values in config.items():
        if table not in ("pipeline", "store", "graph") and isinstance(values, dict):
            lines.append("")
            lines.append(f"[{table}]")
            lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)


def _remote_url(url: str) -> str:
    """A relative local remote path is meant from where the user stands: make it absolute."""
    if "://" in url or url.startswith(("/", "~")) or re.match(r"^[\w.-]+@[^:]+:", url):
        return url
    return str(Path(url).resolve())


def _relative_store(value: str, root: Path) -> str:
    """A store path as the project file should hold it: relative to the root when inside it."""
    if "://" in value or value.startswith("sqlite:"):
        return value
    full = Path(value).expanduser().resolve()
    try:
        return full.relative_to(root).as_posix()
    except ValueError:
        return str(full)


def _update_config(
    path: Path,
    root: Path,
    store_arg: str | None,
    *,
    graph: bool | None,
    neo4j_uri: str | None,
    neo4j_user: str | None,
    pipeline: str | None,
    remote: str | None = None,
) -> str:
    """Create or update the project file; return ``created``, ``written`` or ``unchanged``.

    Raises:
        ConfigError: The existing file is not valid TOML.
    """
    existing: dict[str, Any] = {}
    if path.exists():
        try:
            existing = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in existing.items()}
    if store_arg is not None:
        store_url, had_password = _without_password(_relative_store(store_arg, root))
        if had_password:
            info("note: the store password is not written to the project file; set it in CMF_STORE")
        config.setdefault("store", {})["url"] = store_url
    elif "url" not in config.get("store", {}):
        config.setdefault("store", {})["url"] = "mlmd"
    _set_graph(config, graph, neo4j_uri, neo4j_user)
    if pipeline:
        config["pipeline"] = pipeline
    if remote:
        config.setdefault("remote", {})["url"] = remote
    if config == existing:
        return "unchanged"
    _write_config(path, config)
    return "written" if existing else "created"


def _set_graph(config: dict[str, Any], graph: bool | None, neo4j_uri: str | None, neo4j_user: str | None) -> None:
    # Like the settings themselves: naming a Neo4j server turns the graph on unless --no-graph says otherwise.
    if graph is None and neo4j_uri:
        graph = True
    if graph is not None or neo4j_uri or neo4j_user:
        graph_table = config.setdefault("graph", {})
        if graph is not None:
            graph_table["enabled"] = graph
        if neo4j_uri:
            graph_table["uri"] = neo4j_uri
        if neo4j_user:
            graph_table["user"] = neo4j_user


@cli.command("init")
@click.option(
    "--remote", "remote_url", metavar="URL", help="Set the DVC remote (local path, s3://, ssh://, gs://, ...)."
)
@click.option("--remote-name", default="storage", show_default=True, help="Name of the DVC remote.")
@click.option("--graph/--no-graph", "graph", default=None, help="Mirror executions into Neo4j.")
@click.option("--neo4j-uri", metavar="URI", help="Bolt URL of the Neo4j server (the password stays in NEO4J_PASSWD).")
@click.option("--neo4j-user", metavar="USER", help="Neo4j user name.")
@click.option("--pipeline", help="Pipeline name overriding the orchestrator's (DAG id, flow name).")
@common
@json_option
def init_cmd(
    *,
    remote_url: str | None,
    remote_name: str,
    graph: bool | None,
    neo4j_uri: str | None,
    neo4j_user: str | None,
    pipeline: str | None,
) -> None:
    """Set up the project root for recording (safe to run again).

    Initialises a DVC repository (git is optional; an existing DVC or git repository is
    kept), sets the DVC remote with --remote, writes cmf-orchestrate.toml (store URL and
    graph settings, never a password) and creates or checks the metadata store.
    """
    from cmf_orchestrate import versioning
    from cmf_orchestrate.settings import CONFIG_FILE

    st = state()
    root = (st.project_root or Path.cwd()).resolve()
    root.mkdir(parents=True, exist_ok=True)
    st.project_root = root
    done: dict[str, Any] = {"project_root": str(root)}

    # Create (or check) the store first: a bad URL, a down server or a schema of another
    # version fails before any file is written. Only init creates a missing server database.
    from cmf_orchestrate.store import init_store

    location = st.settings().location
    init_store(location)
    store = st.store(must_exist=False)
    done["store"] = location.redacted
    done["store_identity"] = store.identity

    had_dvc = (root / ".dvc" / "config").exists()
    versioning.versioner_for(root).ensure_repo()
    done["dvc"] = "kept" if had_dvc else "initialised"
    done["git"] = "found" if versioning.find_git_dir(root) else "none"

    if remote_url:
        url = _remote_url(remote_url)
        versioning.set_remote(root, url, name=remote_name, default=True)
        done["remote"] = {"name": remote_name, "url": url}

    path = root / CONFIG_FILE
    done["config"] = _update_config(
        path,
        root,
        st.store_arg,
        graph=graph,
        neo4j_uri=neo4j_uri,
        neo4j_user=neo4j_user,
        pipeline=pipeline,
        remote=done["remote"]["url"] if "remote" in done else None,
    )
    done["config_file"] = str(path)

    if st.json_mode:
        emit_json(done)
        return
    lines = [
        f"project root   {root}",
        f"DVC repository {done['dvc']} (git: {done['git']})",
        f"config         {path.name} {done['config']}",
        f"metadata store {done['store']}",
    ]
    if "remote" in done:
        lines.append(f"DVC remote     {remote_name} -> {done['remote']['url']} (default)")
    click.echo("\n".join(lines))


# --------------------------------------------------------------------------- export / import


@cli.command("export")
@click.option("--pipeline", "-p", help="Only this pipeline.")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the JSON to FILE ('-' for stdout).",
)
@common
@json_option
def export_cmd(pipeline: str | None, output: Path) -> None:
    """Export the store as JSON in the shape of CMF's dumptojson.

    pipeline -> stages -> executions -> events -> artifact; readable by CMF's tools and
    by `cmf-orchestrate import`.
    """
    from cmf_orchestrate.interchange import export_document, summarize

    store = state().store()
    with progress("exporting") as report:
        document = export_document(store, pipeline, progress=report)
    text = json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n"
    if str(output) == "-":
        click.echo(text, nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    counts = summarize(document)
    if state().json_mode:
        emit_json({"output": str(output), **counts})
        return
    info(
        f"wrote {output}: {counts['pipelines']} pipelines, {counts['stages']} stages, "
        f"{counts['executions']} executions, {counts['artifacts']} artifacts, {counts['events']} events"
    )


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path))
@common
@json_option
def import_cmd(file: Path) -> None:
    """Merge a dumptojson-shaped FILE into the store.

    Executions already in the store (same execution uuid) are skipped, artifacts
    already in the store (same md5) are reused, so importing twice changes nothing.
    """
    from cmf_orchestrate.interchange import import_document

    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(f"{file}: not JSON ({exc})") from exc
    store = state().store(must_exist=False)
    with progress("importing") as report:
        result = import_document(store, document, progress=report)
    if state().json_mode:
        emit_json(result.to_dict())
        return
    click.echo(
        f"imported {result.executions_added} executions ({result.executions_skipped} already present), "
        f"{result.artifacts_added} new artifacts ({result.artifacts_reused} references to known ones), "
        f"{result.events} events from {result.pipelines} pipelines / {result.stages} stages"
    )


# --------------------------------------------------------------------------- artifact push / pull


def _pipeline_artifacts(store: MetadataStore, pipeline: str | None) -> list[ArtifactRecord]:
    """The DVC-versioned artifacts of one pipeline (or all), newest first."""
    pipelines = store.contexts_of_type(PIPELINE_TYPE)
    if pipeline is not None:
        pipelines = [p for p in pipelines if p.name == pipeline]
        if not pipelines:
            raise ArtifactNotFoundError(f"no pipeline named {pipeline!r}")
    found: dict[int, ArtifactRecord] = {}
    for parent in pipelines:
        for stage in store.children(parent.id):
            for artifact in store.artifacts_in_context(stage.id):
                found[artifact.id] = artifact
    versioned = [a for a in found.values() if _MD5.match(a.uri)]
    return sorted(versioned, key=lambda a: (a.create_time_ms, a.id), reverse=True)


def _paths_of(artifacts: Iterable[ArtifactRecord], md5s: Iterable[str]) -> list[str]:
    wanted = set(md5s)
    return sorted({a.path for a in artifacts if a.uri in wanted})


@cli.group("artifact")
def artifact_group() -> None:
    """Move recorded artifacts to or from the DVC remote."""


def _remote_arg(remote: str | None) -> str | None:
    """The remote to use: the option, else the ``remote`` setting, else the project's DVC default."""
    return remote or state().settings().remote


@artifact_group.command("push")
@click.option("--pipeline", "-p", help="Only this pipeline's artifacts (default: all).")
@click.option("--remote", "-r", help="DVC remote name or URL (default: the remote setting, else DVC's default).")
@common
@json_option
def push_cmd(pipeline: str | None, remote: str | None) -> None:
    """Upload every recorded version of the artifacts to the DVC remote.

    Objects neither in the local DVC cache nor on the remote are reported missing (exit 1).
    """
    from cmf_orchestrate import transfer

    st = state()
    store = st.store()
    root = st.settings().project_root
    artifacts = _pipeline_artifacts(store, pipeline)
    hashes = list(dict.fromkeys(a.uri for a in artifacts))
    target = transfer.open_remote(root, _remote_arg(remote))
    with progress("pushing") as report:
        result = transfer.push(root, hashes, target, progress=report)
    _transfer_summary("pushed", target.url, len(hashes), result, artifacts)


@artifact_group.command("pull")
@click.argument("paths", nargs=-1)
@click.option("--artifact", "-a", "artifact_refs", multiple=True, help="An artifact (id, name, md5); repeatable.")
@click.option(
    "--execution", "-e", "execution_refs", multiple=True, help="An execution's inputs and outputs; repeatable."
)
@click.option("--pipeline", "-p", help="This pipeline's artifacts.")
@click.option("--remote", "-r", help="DVC remote name or URL (default: the remote setting, else DVC's default).")
@click.option("--force", is_flag=True, help="Overwrite work-tree files whose content differs from the recorded one.")
@common
@json_option
def pull_cmd(
    paths: tuple[str, ...],
    artifact_refs: tuple[str, ...],
    execution_refs: tuple[str, ...],
    pipeline: str | None,
    remote: str | None,
    force: bool,
) -> None:
    """Download artifacts from the DVC remote and restore them in the project.

    PATHS are recorded paths (their newest version). With no selection, every artifact of
    every pipeline. An object the remote does not hold fails the command, naming it.
    """
    from cmf_orchestrate import transfer, versioning

    st = state()
    store = st.store()
    root = st.settings().project_root
    artifacts = _selected(store, paths, artifact_refs, execution_refs, pipeline)
    hashes = list(dict.fromkeys(a.uri for a in artifacts))
    source = transfer.open_remote(root, _remote_arg(remote))
    with progress("fetching") as report:
        result = transfer.fetch(root, hashes, source, progress=report)
    # One version per path: the one selected explicitly, else the newest.
    latest: dict[str, ArtifactRecord] = {}
    for artifact in artifacts:
        latest.setdefault(artifact.path, artifact)
    absent = set(result.failed) | set(result.missing)
    restored: list[str] = []
    kept: list[str] = []
    conflicts: list[str] = []
    versioner = versioning.versioner_for(root)
    with progress("restoring") as report:
        for index, (path, artifact) in enumerate(sorted(latest.items()), 1):
            report(index, len(latest))
            if artifact.uri in absent:
                continue
            if (root / path).exists():
                if versioner.hash(path).md5 == artifact.uri:
                    kept.append(path)
                    continue
                if not force:
                    conflicts.append(path)
                    continue
            transfer.checkout(root, path, artifact.uri)
            restored.append(path)
    _transfer_summary(
        "fetched", source.url, len(hashes), result, artifacts, restored=restored, kept=kept, conflicts=conflicts
    )


def _selected(
    store: MetadataStore,
    paths: Iterable[str],
    artifact_refs: Iterable[str],
    execution_refs: Iterable[str],
    pipeline: str | None,
) -> list[ArtifactRecord]:
    """The versioned artifacts a pull selects, newest first within each way of selecting."""
    from cmf_orchestrate.cli._lookup import find_artifact, find_execution

    chosen: list[ArtifactRecord] = []
    for ref in artifact_refs:
        chosen.append(find_artifact(store, ref))
    for path in paths:
        rel = path[2:] if path.startswith("./") else path
        versions = [a for a in store.artifacts(name_prefix=rel + ":") if a.path == rel]
        if not versions:
            raise ArtifactNotFoundError(f"no recorded artifact at path {rel!r}")
        chosen.append(max(versions, key=lambda a: (a.create_time_ms, a.id)))
    for ref in execution_refs:
        snapshot = store.snapshot(find_execution(store, ref).id)
        chosen += [*snapshot.outputs, *snapshot.inputs]
    if pipeline is not None or not chosen:
        chosen += _pipeline_artifacts(store, pipeline)
    return [a for a in chosen if _MD5.match(a.uri)]


def _transfer_summary(
    verb: str,
    where: str,
    wanted: int,
    result: TransferReport,
    artifacts: list[ArtifactRecord],
    *,
    restored: list[str] | None = None,
    kept: list[str] | None = None,
    conflicts: list[str] | None = None,
) -> None:
    data: dict[str, Any] = {
        "remote": where,
        "objects": wanted,
        "transferred": len(result.transferred),
        "already_there": len(result.present),
        "missing": list(result.missing),
        "missing_paths": _paths_of(artifacts, result.missing),
        "failed": list(result.failed),
        "failed_paths": _paths_of(artifacts, result.failed),
    }
    if restored is not None:
        data.update({"restored": restored, "unchanged": kept or [], "conflicts": conflicts or []})
    if state().json_mode:
        emit_json(data)
    else:
        line = f"{verb} {len(result.transferred)} of {wanted} objects ({len(result.present)} already there"
        if result.missing:
            line += f", {len(result.missing)} missing"
        line += ")"
        if restored is not None:
            line += f"; restored {len(restored)} files, {len(kept or [])} already up to date"
        click.echo(line)
    problems = []
    if result.missing:
        where_from = "the local DVC cache or the remote" if verb == "pushed" else "the remote"
        problems.append(
            f"{len(result.missing)} objects are in neither {where_from}: {_named(artifacts, result.missing)}"
        )
    if result.failed:
        problems.append(
            f"{len(result.failed)} objects could not be {verb}: {_named(artifacts, result.failed)} ({result.reason})"
        )
    if conflicts:
        which = ", ".join(conflicts)
        problems.append(f"{len(conflicts)} files differ from the recorded version (use --force): {which}")
    if problems:
        raise CliError("; ".join(problems))


def _named(artifacts: list[ArtifactRecord], md5s: Iterable[str]) -> str:
    """``path (md5)`` for each object."""
    by_uri: dict[str, str] = {}
    for artifact in artifacts:
        by_uri.setdefault(artifact.uri, artifact.path)
    return ", ".join(f"{by_uri[m]} ({m})" if m in by_uri else m for m in md5s)


# --------------------------------------------------------------------------- reconcile


def parse_duration(text: str) -> Any:
    """``30m``/``6h``/``2d``/``1w`` (or ``90s``) as a pendulum duration.

    Raises:
        InvalidArgumentError: Not a duration.
    """
    import pendulum

    match = _DURATION.match(text.strip())
    if not match:
        raise InvalidArgumentError(f"--older-than: {text!r} is not a duration (90s, 30m, 6h, 2d, 1w)")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
    return pendulum.duration(**{unit: int(match.group(1))})


@cli.command("reconcile")
@click.option(
    "--older-than",
    metavar="DURATION",
    help="Also fail RUNNING executions started longer ago than DURATION (30m, 6h, 2d), "
    "even if their worker looks alive.",
)
@common
@json_option
def reconcile_cmd(older_than: str | None) -> None:
    """Mark executions left RUNNING by a dead worker as FAILED (reason: abandoned).

    An execution whose worker process is still alive on this host is left alone, as is
    one recorded on another host, unless --older-than says it has run too long.
    """
    from cmf_orchestrate.reconcile import reconcile

    st = state()
    store = st.store()
    duration = parse_duration(older_than) if older_than else None
    with progress("reconciling") as report:
        result = reconcile(st.settings(), older_than=duration, progress=report)
    abandoned = store.executions_by_id(result.abandoned)
    stages = stages_by_id(store, abandoned)
    if st.json_mode:
        emit_json(
            {
                "abandoned": [execution_dict(e, stages) for e in abandoned],
                "alive": list(result.alive),
                "other_hosts": list(result.skipped),
            }
        )
        return
    if abandoned:
        emit_table(
            "Marked FAILED (abandoned)",
            ("id", "pipeline", "stage", "started", "host", "pid", "reason"),
            [
                (
                    e.id,
                    e.pipeline,
                    e.type,
                    fmt_ms(e.create_time_ms),
                    e.fact("hostname"),
                    e.fact("pid"),
                    e.fact("error_message"),
                )
                for e in abandoned
            ],
        )
    click.echo(
        f"{len(abandoned)} abandoned executions marked FAILED; {len(result.alive)} still running here; "
        f"{len(result.skipped)} running on other hosts left alone"
    )


# --------------------------------------------------------------------------- graph


@cli.group("graph")
def graph_group() -> None:
    """Mirror the metadata into Neo4j."""


@graph_group.command("sync")
@click.option("--rebuild", is_flag=True, help="Project every execution again, not only the pending ones.")
@common
@json_option
def graph_sync_cmd(rebuild: bool) -> None:
    """Push executions not yet in the graph (or, with --rebuild, all of them) to Neo4j.

    Idempotent: running it twice leaves the same graph.
    """
    from cmf_orchestrate import graph

    st = state()
    store = st.store()
    with progress("syncing") as report:
        result = graph.sync(st.settings(), rebuild=rebuild, progress=report, store=store)
    data = {
        "pending": result.pending,
        "written": result.written,
        "failed": result.failed,
        "elapsed_s": round(result.elapsed_s, 3),
        "error": result.error,
    }
    if st.json_mode:
        emit_json(data)
    else:
        rate = f" ({result.rate:.0f}/s)" if result.written and result.elapsed_s > 0 else ""
        click.echo(f"{result.written} executions written{rate}, {result.failed} still pending")
    if not result.ok:
        raise CliError(f"graph sync incomplete: {result.error or f'{result.failed} executions still pending'}")


@graph_group.command("status")
@common
@json_option
def graph_status_cmd() -> None:
    """How many executions wait for `graph sync` (reads the metadata store only)."""
    from cmf_orchestrate import graph

    st = state()
    count = graph.pending(st.settings(), store=st.store())
    if st.json_mode:
        emit_json({"pending": count})
    else:
        click.echo(f"{count} executions pending")
