"""Configuration: store URLs, the environment, the project file, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmf_orchestrate import CmfSettings, ConfigError, StoreUnavailableError
from cmf_orchestrate._storeurl import parse_store_url
from cmf_orchestrate.store import MetadataStore


@pytest.mark.parametrize(
    ("url", "backend", "host", "port", "database", "user"),
    [
        ("postgresql://alice:pw@db.example:6543/meta", "postgresql", "db.example", 6543, "meta", "alice"),
        ("postgres://bob@h/db", "postgresql", "h", 5432, "db", "bob"),
        ("mysql://root@127.0.0.1/test", "mysql", "127.0.0.1", 3306, "test", "root"),
        ("mysql+pymysql://u:p%40ss@h:3307/d", "mysql", "h", 3307, "d", "u"),
    ],
)
def test_server_urls(url: str, backend: str, host: str, port: int, database: str, user: str) -> None:
    location = parse_store_url(url)
    assert (location.backend, location.host, location.port, location.database, location.user) == (
        backend,
        host,
        port,
        database,
        user,
    )


def test_sqlite_paths(tmp_path: Path) -> None:
    assert parse_store_url("mlmd", base=tmp_path).path == tmp_path / "mlmd"
    assert parse_store_url("sqlite:///rel/m.db", base=tmp_path).path == tmp_path / "rel" / "m.db"
    assert parse_store_url(f"sqlite:///{tmp_path}/abs.db").path == tmp_path / "abs.db"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("oracle://u@h/db", "unsupported scheme"),
        ("postgresql://u:hunter2@/db", "needs a host"),
        ("mysql://u:hunter2@h", "needs a host and a database"),
        ("postgresql://u:hunter2@h:notaport/db", "malformed URL"),
        ("sqlite://host/file", "sqlite:///path"),
        ("", "empty"),
    ],
)
def test_malformed_urls_name_the_problem_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_store_url(url)
    assert "hunter2" not in str(info.value)


def test_password_is_never_shown() -> None:
    settings = CmfSettings(store="postgresql://u:hunter2@h/db", neo4j_password="s3cret", neo4j_uri="bolt://x")
    assert "hunter2" not in repr(settings) and "s3cret" not in repr(settings)
    assert settings.location.redacted == "postgresql://u:***@h:5432/db"


def test_unreachable_store_is_a_clear_error_without_the_password() -> None:
    location = parse_store_url("postgresql://u:hunter2@127.0.0.1:1/db")
    with pytest.raises(StoreUnavailableError, match=r"the metadata store .* is unavailable") as info:
        MetadataStore(location)
    assert "hunter2" not in str(info.value)


def test_from_env_reads_file_then_environment_then_overrides(tmp_path: Path) -> None:
    (tmp_path / "cmf-orchestrate.toml").write_text(
        '[store]\nurl = "meta/store.db"\n[graph]\nenabled = false\nuri = "bolt://file:7687"\nuser = "neo"\n'
    )
    env = {"CMF_PROJECT_ROOT": str(tmp_path), "NEO4J_PASSWD": "pw", "NEO4J_URI": "bolt://env:7687"}
    settings = CmfSettings.from_env(env)
    assert settings.location.path == tmp_path / "meta" / "store.db"
    assert settings.neo4j_uri == "bolt://env:7687" and settings.neo4j_user == "neo"
    assert settings.graph is False  # the file says so explicitly
    assert CmfSettings.from_env(env, graph=True, store="other").store == "other"
    assert CmfSettings.from_env({"CMF_PROJECT_ROOT": str(tmp_path), "CMF_GRAPH": "yes"}).graph is True


def test_bad_values_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="graph"):
        CmfSettings(graph="perhaps")  # type: ignore[arg-type]
    (tmp_path / "cmf-orchestrate.toml").write_text("[graph]\npassword = 'x'\n")
    with pytest.raises(ConfigError, match="password must not be stored"):
        CmfSettings.from_env({"CMF_PROJECT_ROOT": str(tmp_path)})
    with pytest.raises(ConfigError, match="unknown setting"):
        CmfSettings().replace(colour="blue")


def test_remote_inputs_and_reuse_from_file_then_environment_then_overrides(tmp_path: Path) -> None:
    root = {"CMF_PROJECT_ROOT": str(tmp_path)}
    defaults = CmfSettings.from_env(root)
    assert (defaults.remote, defaults.inputs, defaults.reuse) == (None, "recorded", False)

    (tmp_path / "cmf-orchestrate.toml").write_text('inputs = "local"\nreuse = true\n[remote]\nurl = "s3://file/cmf"\n')
    from_file = CmfSettings.from_env(root)
    assert (from_file.remote, from_file.inputs, from_file.reuse) == ("s3://file/cmf", "local", True)
    # A top-level string is taken as the remote URL too.
    (tmp_path / "cmf-orchestrate.toml").write_text('remote = "/srv/remote"\n')
    assert CmfSettings.from_env(root).remote == "/srv/remote"

    (tmp_path / "cmf-orchestrate.toml").write_text('inputs = "local"\nreuse = true\n[remote]\nurl = "s3://file/cmf"\n')
    env = {**root, "CMF_REMOTE": "s3://env/cmf", "CMF_INPUTS": "Recorded", "CMF_REUSE": "off"}
    from_env = CmfSettings.from_env(env)
    assert (from_env.remote, from_env.inputs, from_env.reuse) == ("s3://env/cmf", "recorded", False)
    # An empty variable leaves the file's value.
    assert CmfSettings.from_env({**root, "CMF_REMOTE": "", "CMF_REUSE": ""}).remote == "s3://file/cmf"

    given = CmfSettings.from_env(env, remote="/given", inputs="local", reuse=True)
    assert (given.remote, given.inputs, given.reuse) == ("/given", "local", True)
    assert CmfSettings.from_env(env, remote=None, reuse=None).remote == "s3://env/cmf"


def test_remote_credentials_never_shown_and_bad_values_named(tmp_path: Path) -> None:
    settings = CmfSettings(project_root=tmp_path, remote="https://cmf:hunter2pw@dvc.example/store")
    assert "hunter2pw" not in repr(settings) and "https://cmf:***@dvc.example/store" in repr(settings)
    with pytest.raises(ConfigError, match="inputs: expected one of recorded, local"):
        CmfSettings.from_env({"CMF_PROJECT_ROOT": str(tmp_path), "CMF_INPUTS": "cached"})
    with pytest.raises(ConfigError, match="reuse: expected a boolean"):
        CmfSettings.from_env({"CMF_PROJECT_ROOT": str(tmp_path), "CMF_REUSE": "maybe"})
    with pytest.raises(ConfigError, match="remote: not a URL or path") as info:
        CmfSettings(project_root=tmp_path, remote="s3://u:hunter2pw@b/x\nmore")
    assert "hunter2pw" not in str(info.value)
