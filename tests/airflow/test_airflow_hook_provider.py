"""The provider as Airflow discovers it, and the hook built from real Airflow connections."""

from __future__ import annotations

import json
import urllib.parse
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from cmf_orchestrate import CmfSettings, ConfigError

PASSWORD = "Hook-pw-4b7d2a9e-never-shown"


def test_installed_entry_point_registers_decorator_hook_and_connection_type(airflow_db: Path) -> None:
    [entry] = [e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("cmf_orchestrate.")]
    assert entry.value == "cmf_orchestrate.airflow.provider:get_provider_info"

    from airflow.providers_manager import ProvidersManager
    from airflow.sdk import task
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    runtime = ProvidersManagerTaskRuntime()
    assert "cmf-orchestrate" in runtime.providers
    assert runtime.taskflow_decorators["cmf"].__module__ == "cmf_orchestrate.airflow.decorator"
    hook = runtime.hooks["cmf"]
    assert hook is not None
    assert (hook.hook_class_name, hook.connection_id_attribute_name, hook.hook_name) == (
        "cmf_orchestrate.airflow.hook.CmfHook",
        "cmf_conn_id",
        "Common Metadata Framework",
    )
    # What a DAG author writes resolves through that registry.
    assert task.cmf is runtime.taskflow_decorators["cmf"]
    # The UI side (api-server): the connection form of type "cmf".
    behaviour = ProvidersManager().field_behaviours["cmf"]
    assert behaviour["hidden_fields"] == ["port", "schema"]
    assert behaviour["relabeling"]["password"] == "Neo4j password"


def test_connection_form_has_typed_cmf_fields_and_neo4j_labels(airflow_db: Path) -> None:
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    # What the api-server sends the UI's connection form.
    [meta] = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "cmf"]
    standard = meta.standard_fields
    assert standard is not None
    assert standard.port is not None and standard.port.hidden
    assert standard.url_schema is not None and standard.url_schema.hidden
    labels = {name: getattr(standard, name).title for name in ("host", "login", "password")}
    assert labels == {"host": "Neo4j URI", "login": "Neo4j user", "password": "Neo4j password"}
    assert standard.host is not None and "bolt://" in str(standard.host.placeholder)
    fields = meta.extra_fields or {}
    assert {name: field["schema"]["type"] for name, field in fields.items()} == {
        "store": ["string", "null"],
        "project_root": ["string", "null"],
        "graph": ["boolean", "null"],
        "pipeline": ["string", "null"],
        "strict_outputs": ["boolean", "null"],
        "remote": ["string", "null"],
        "inputs": ["string", "null"],
        "reuse": ["boolean", "null"],
    }
    assert fields["store"]["schema"]["title"] == "Metadata store"
    assert (fields["remote"]["schema"]["title"], fields["reuse"]["schema"]["title"]) == (
        "DVC remote",
        "Reuse earlier runs",
    )
    assert "recorded" in fields["inputs"]["description"] and "local" in fields["inputs"]["description"]
    assert fields["store"]["description"].endswith("Example: postgresql://cmf@metadata-db:5432/cmf")
    assert all(field["description"] for field in fields.values())


def test_hook_methods_build_the_same_form_for_airflow_3_0_and_3_1(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
    from airflow.providers_manager import ConnectionFormWidgetInfo

    from cmf_orchestrate.airflow import CmfHook
    from cmf_orchestrate.airflow.provider import get_provider_info

    # Airflow 3.0/3.1 call the hook's methods with its own stand-ins for WTForms and FAB.
    stand_ins = {
        "wtforms": types.SimpleNamespace(
            StringField=HookMetaService.MockStringField, BooleanField=HookMetaService.MockBooleanField
        ),
        "wtforms.validators": types.SimpleNamespace(Optional=HookMetaService.MockOptional),
        "flask_babel": types.SimpleNamespace(lazy_gettext=str),
        "flask_appbuilder.fieldwidgets": types.SimpleNamespace(BS3TextFieldWidget=HookMetaService.MockAnyWidget),
    }
    for name, module in stand_ins.items():
        monkeypatch.setitem(sys.modules, name, module)
    widgets = CmfHook.get_connection_form_widgets()
    infos = {
        f"extra__cmf__{name}": ConnectionFormWidgetInfo("CmfHook", "cmf-orchestrate", field, name, False)
        for name, field in widgets.items()
    }
    legacy = HookMetaService._convert_extra_fields(infos)["cmf"]

    [declared] = get_provider_info()["connection-types"]
    assert {n: (f["schema"]["type"], f["schema"]["title"]) for n, f in legacy.items()} == {
        n: (f["schema"]["type"], f["label"]) for n, f in declared["conn-fields"].items()
    }
    # Airflow 3.2+ offers the values of a setting that takes a few as a choice.
    assert declared["conn-fields"]["inputs"]["schema"]["enum"] == ["recorded", "local", None]
    behaviour = CmfHook.get_ui_field_behaviour()
    assert behaviour["hidden_fields"] == declared["ui-field-behaviour"]["hidden-fields"] == ["port", "schema"]
    assert behaviour["relabeling"] == declared["ui-field-behaviour"]["relabeling"]


def test_provider_info_has_documentation_url_and_cmf_config_section(airflow_db: Path) -> None:
    from airflow.api_fastapi.core_api.services.public.providers import _provider_mapper
    from airflow.configuration import conf
    from airflow.providers_manager import ProvidersManager

    from cmf_orchestrate._links import documentation_url

    # The api-server's /api/v2/providers answer for this package.
    provider = _provider_mapper(ProvidersManager().providers["cmf-orchestrate"])
    assert provider.documentation_url == documentation_url()
    assert provider.documentation_url.startswith("https://")

    # The [cmf] section is part of Airflow's configuration, with its defaults.
    assert conf.get("cmf", "conn_id") == "cmf_default"
    assert conf.getboolean("cmf", "library_logs") is False
    assert "cmf" in dict(ProvidersManager().provider_configs)["cmf-orchestrate"]


def test_connection_saved_by_the_form_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cmf_orchestrate.airflow import CmfHook

    # The form writes every field, empty ones included; older forms prefix their keys.
    extra = {"store": "form.sqlite", "extra__cmf__project_root": str(tmp_path), "pipeline": "", "graph": None}
    monkeypatch.setenv("AIRFLOW_CONN_CMF_DEFAULT", json.dumps({"conn_type": "cmf", "extra": extra}))

    settings = CmfHook().get_settings()

    assert (settings.store, settings.project_root, settings.pipeline) == ("form.sqlite", tmp_path.resolve(), None)
    assert settings.strict_outputs is False

    extra["strict_outputs"] = True
    monkeypatch.setenv("AIRFLOW_CONN_CMF_DEFAULT", json.dumps({"conn_type": "cmf", "extra": extra}))
    assert CmfHook().get_settings().strict_outputs is True


def test_every_form_field_round_trips_into_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cmf_orchestrate.airflow import CmfHook
    from cmf_orchestrate.airflow.provider import get_provider_info

    # What the form of Airflow 3.2+ saves: one extra key per declared field, typed by its schema.
    [declared] = get_provider_info()["connection-types"]
    values: dict[str, object] = {
        "store": "form.sqlite",
        "project_root": str(tmp_path),
        "graph": False,
        "pipeline": "nightly",
        "strict_outputs": True,
        "remote": f"https://cmf:{PASSWORD}@dvc.example/store",
        "inputs": "local",
        "reuse": True,
    }
    assert set(declared["conn-fields"]) == set(values)
    monkeypatch.setenv("AIRFLOW_CONN_CMF_DEFAULT", json.dumps({"conn_type": "cmf", "extra": values}))

    settings = CmfHook().get_settings()

    assert {name: getattr(settings, name) for name in values} == {**values, "project_root": tmp_path.resolve()}
    assert PASSWORD not in repr(settings)

    # Empty fields leave the settings to the environment; the legacy form's prefixed keys work too.
    monkeypatch.setenv("CMF_REMOTE", str(tmp_path / "env-remote"))
    monkeypatch.setenv("CMF_REUSE", "true")
    empty = {"extra__cmf__store": "form.sqlite", "remote": "", "inputs": None, "reuse": None}
    monkeypatch.setenv("AIRFLOW_CONN_CMF_DEFAULT", json.dumps({"conn_type": "cmf", "extra": empty}))
    settings = CmfHook().get_settings()
    assert (settings.remote, settings.inputs, settings.reuse) == (str(tmp_path / "env-remote"), "recorded", True)
    # The connection wins over the environment.
    monkeypatch.setenv(
        "AIRFLOW_CONN_CMF_DEFAULT", json.dumps({"conn_type": "cmf", "extra": {"reuse": False, "remote": "/srv/r"}})
    )
    assert (CmfHook().get_settings().reuse, CmfHook().get_settings().remote) == (False, "/srv/r")

    monkeypatch.setenv("AIRFLOW_CONN_CMF_DEFAULT", json.dumps({"conn_type": "cmf", "extra": {"inputs": "mine"}}))
    with pytest.raises(ConfigError, match="inputs: expected one of recorded, local"):
        CmfHook().get_settings()


def test_a_remote_password_is_masked_like_the_store_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow.sdk.log import redact

    from cmf_orchestrate.airflow import CmfHook

    secret = "Remote-pw-9c1e/7f3a"  # a slash: written percent-encoded in the URL
    remote = f"https://cmf:{urllib.parse.quote(secret, safe='')}@dvc.example/store"
    query = urllib.parse.urlencode(
        {"project_root": str(tmp_path), "remote": remote, "inputs": "local", "reuse": "true"}
    )
    monkeypatch.setenv("AIRFLOW_CONN_CMF_DEFAULT", f"cmf://?{query}")

    with caplog.at_level("DEBUG"):
        settings = CmfHook().get_settings()

    assert (settings.remote, settings.inputs, settings.reuse) == (remote, "local", True)
    assert secret not in caplog.text and urllib.parse.quote(secret, safe="") not in caplog.text
    # Registered with Airflow's secrets masker, as written in the URL and decoded.
    assert "***" in str(redact(f"pushing to {remote}")) and "Remote-pw" not in str(redact(f"pushing to {remote}"))
    assert "Remote-pw" not in str(redact(f"auth {secret}"))


def test_hook_reads_the_connection_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from cmf_orchestrate.airflow import CmfHook

    root = tmp_path / "proj"
    store_url = f"postgresql://mlmd:{PASSWORD}@db.invalid:5433/mlmd"
    query = urllib.parse.urlencode({"store": store_url, "project_root": str(root), "pipeline": "nightly"})
    uri = f"cmf://neo4j:{PASSWORD}@neo4j.invalid:7688/?{query}"
    monkeypatch.setenv("AIRFLOW_CONN_CMF_DEFAULT", uri)

    with caplog.at_level("DEBUG"):
        settings = CmfHook().get_settings()

    assert settings == CmfSettings(
        store=store_url,
        project_root=root,
        graph=True,
        neo4j_uri="bolt://neo4j.invalid:7688",
        neo4j_user="neo4j",
        neo4j_password=PASSWORD,
        pipeline="nightly",
    )
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in caplog.text


def test_named_connection_and_defaults_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cmf_orchestrate.airflow import CmfHook

    monkeypatch.setenv("CMF_PROJECT_ROOT", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_CMF_LAB", json.dumps({"conn_type": "cmf", "extra": {"store": "lab.sqlite"}}))

    settings = CmfHook(cmf_conn_id="cmf_lab").get_settings()

    # What the connection leaves out (project root, graph) comes from the environment and defaults.
    assert (settings.store, settings.project_root, settings.graph, settings.neo4j_uri) == (
        "lab.sqlite",
        tmp_path.resolve(),
        False,
        None,
    )


def test_unknown_extra_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from cmf_orchestrate.airflow import CmfHook

    monkeypatch.setenv("AIRFLOW_CONN_CMF_DEFAULT", json.dumps({"conn_type": "cmf", "extra": {"stroe": "typo"}}))
    with pytest.raises(ConfigError, match="stroe"):
        CmfHook().get_settings()


def test_test_connection_opens_the_store_or_says_why_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cmf_orchestrate.airflow import CmfHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_CMF_DEFAULT",
        json.dumps({"conn_type": "cmf", "extra": {"store": "mlmd", "project_root": str(tmp_path)}}),
    )
    ok, message = CmfHook().test_connection()
    assert ok, message
    assert "reachable" in message

    # Nothing listens on port 1: the check fails, and the message names the store without its password.
    monkeypatch.setenv(
        "AIRFLOW_CONN_CMF_DEFAULT",
        json.dumps(
            {
                "conn_type": "cmf",
                "extra": {"store": f"postgresql://cmf:{PASSWORD}@127.0.0.1:1/mlmd", "project_root": str(tmp_path)},
            }
        ),
    )
    ok, message = CmfHook().test_connection()
    assert not ok
    assert "StoreUnavailableError" in message
    assert "127.0.0.1:1/mlmd" in message
    assert PASSWORD not in message


def test_explicit_connection_that_does_not_exist_fails_the_task(cmf_project: Path) -> None:
    from airflow.sdk.exceptions import AirflowNotFoundException

    from cmf_orchestrate.airflow._runinfo import resolve_settings

    assert resolve_settings(None).project_root == cmf_project.resolve()
    with pytest.raises(AirflowNotFoundException):
        resolve_settings("cmf_missing")


def test_cmf_asset_is_the_key_prefect_gives_the_same_file() -> None:
    from airflow.sdk import Asset

    from cmf_orchestrate._assetkey import asset_key
    from cmf_orchestrate.airflow import cmf_asset

    assert cmf_asset("model/rf.pkl") == Asset(name="cmf://model/rf.pkl", uri="cmf://model/rf.pkl")
    # Airflow refuses non-ASCII URIs: such a path still makes a valid asset, one per path.
    odd = cmf_asset("données/été #1.csv")
    assert odd.uri == asset_key("données/été #1.csv") and odd.uri.isascii()
    assert odd != cmf_asset("données/ete #1.csv")
