"""The ``CmfConfig`` block: registered through the collection entry point, used by tasks and flows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL
from prefect_testlib import Project
from pydantic import SecretStr, ValidationError

from cmf_orchestrate import CmfQuery, CmfSettings, ConfigError, ExecutionState
from cmf_orchestrate._links import LOGO_URL, documentation_url
from cmf_orchestrate.prefect import CmfConfig, cmf_flow, cmf_task


def test_block_register_cli_finds_the_block_through_the_module() -> None:
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "cmf_orchestrate.prefect"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "CMF Config" in done.stdout
    with get_client(sync_client=True) as client:
        block_type = client.read_block_type_by_slug("cmf-config")
    assert block_type.name == "CMF Config"
    # Shown in the UI's block catalogue, as Prefect's integrations do.
    assert str(block_type.logo_url) == LOGO_URL
    assert str(block_type.documentation_url) == documentation_url()


def test_a_password_inside_store_is_refused_and_never_echoed() -> None:
    secret = "Blk-pw-5e0c1d7a-never-shown"

    with pytest.raises(ValidationError) as caught:
        CmfConfig(store=f"postgresql://cmf:{secret}@db:5432/cmf")
    assert "store_password" in str(caught.value)
    # What reaches a log or a ConfigError (str and repr of the error) never holds it.
    assert secret not in str(caught.value) and secret not in repr(caught.value)

    # The supported form: the user in the URL, the password in the secret field.
    block = CmfConfig(store="postgresql://cmf@db:5432/cmf", store_password=SecretStr(secret))
    assert secret not in repr(block) and secret not in str(block.model_dump())
    settings = block.to_settings(environ={})
    assert settings.location.password == secret and secret not in repr(settings)


def test_tasks_and_flows_record_where_the_block_says(project: Project, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere" / "metadata.sqlite"
    CmfConfig(
        store=str(other),
        project_root=str(project.root),
        graph=False,
        neo4j_user="neo4j",
        neo4j_password=SecretStr("s3cr3t-value"),
        pipeline="from-block",
    ).save("cmf-test-block", overwrite=True)

    loaded = CmfConfig.load("cmf-test-block")
    settings = loaded.to_settings()
    assert isinstance(loaded.neo4j_password, SecretStr)
    assert settings.location.path == other and settings.neo4j_password == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(settings) and "s3cr3t-value" not in repr(loaded)

    @cmf_task(config="cmf-test-block")
    def task_level() -> int:
        return 1

    @cmf_task
    def inherits() -> int:
        return 2

    @cmf_task(config="no-such-block")
    def misconfigured() -> int:
        return 3

    @flow
    def plain_flow() -> None:
        task_level()

    @cmf_flow(config="cmf-test-block", pipeline="flow-default")
    def configured_flow() -> None:
        inherits()

    @flow
    def broken_flow() -> None:
        misconfigured()

    assert plain_flow(return_state=True).is_completed()
    assert configured_flow(return_state=True).is_completed()
    broken = broken_flow(return_state=True)

    block_store = CmfQuery(settings=CmfSettings(store=str(other), project_root=project.root))
    # The block's pipeline replaces the flow name; the flow's own pipeline wins over the block's.
    assert sorted(block_store.get_pipeline_names()) == ["flow-default", "from-block"]
    [task_execution] = block_store.get_all_exe_in_stage("from-block/task_level")
    [flow_execution] = block_store.get_all_exe_in_stage("flow-default/inherits")
    assert task_execution.state is flow_execution.state is ExecutionState.COMPLETE
    # Nothing went to the store the environment names.
    assert not (project.root / "mlmd").exists() or project.all_executions() == []

    error = broken.result(raise_on_failure=False)
    assert isinstance(error, ConfigError) and "no-such-block" in str(error)


def test_strict_outputs_comes_from_the_block_or_the_environment() -> None:
    assert CmfConfig().to_settings(environ={}).strict_outputs is False
    assert CmfConfig(strict_outputs=True).to_settings(environ={}).strict_outputs is True
    assert CmfConfig().to_settings(environ={"CMF_STRICT_OUTPUTS": "1"}).strict_outputs is True


def test_remote_inputs_and_reuse_round_trip_and_fall_back_to_the_environment(tmp_path: Path) -> None:
    secret = "Rmt-pw-3f8a/61d2-never-shown"
    CmfConfig(
        remote="https://cmf@dvc.example/store",
        remote_password=SecretStr(secret),
        inputs="local",
        reuse=True,
    ).save("cmf-test-remote", overwrite=True)

    loaded = CmfConfig.load("cmf-test-remote")
    assert secret not in repr(loaded) and secret not in str(loaded.model_dump())
    settings = loaded.to_settings(environ={"CMF_PROJECT_ROOT": str(tmp_path), "CMF_REMOTE": "/env/remote"})
    # The block wins over the environment; the password lives in the URL only in memory.
    assert settings.remote is not None and settings.remote.startswith("https://cmf:Rmt-pw-3f8a%2F61d2")
    assert (settings.inputs, settings.reuse) == ("local", True)
    assert secret not in repr(settings) and "Rmt-pw" not in repr(settings)

    # Empty fields: the environment, then the project file, then the defaults.
    (tmp_path / "cmf-orchestrate.toml").write_text('inputs = "local"\nreuse = true\n[remote]\nurl = "/file/remote"\n')
    from_file = CmfConfig().to_settings(environ={"CMF_PROJECT_ROOT": str(tmp_path)})
    assert (from_file.remote, from_file.inputs, from_file.reuse) == ("/file/remote", "local", True)
    env = {"CMF_PROJECT_ROOT": str(tmp_path), "CMF_REMOTE": "/env/remote", "CMF_INPUTS": "recorded", "CMF_REUSE": "0"}
    from_env = CmfConfig().to_settings(environ=env)
    assert (from_env.remote, from_env.inputs, from_env.reuse) == ("/env/remote", "recorded", False)
    assert CmfConfig(reuse=True, inputs="local").to_settings(environ=env).reuse is True
    defaults = CmfConfig().to_settings(environ={"CMF_PROJECT_ROOT": str(tmp_path / "none")})
    assert (defaults.remote, defaults.inputs, defaults.reuse) == (None, "recorded", False)


def test_a_password_inside_remote_is_refused_and_never_echoed() -> None:
    secret = "Rmt-pw-a41c9e0b-never-shown"
    with pytest.raises(ValidationError) as caught:
        CmfConfig(remote=f"https://cmf:{secret}@dvc.example/store")
    assert "remote_password" in str(caught.value)
    assert secret not in str(caught.value) and secret not in repr(caught.value)
    with pytest.raises(ValidationError):
        CmfConfig(inputs="mine")  # type: ignore[arg-type]
    # A password with no user to go with.
    with pytest.raises(ConfigError, match="remote_password"):
        CmfConfig(remote="s3://bucket/cmf", remote_password=SecretStr(secret)).to_settings(environ={})
