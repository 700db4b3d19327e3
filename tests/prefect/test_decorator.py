"""``@cmf_task`` and ``@cmf_flow`` give ordinary Prefect tasks and flows."""

from __future__ import annotations

import datetime
import inspect
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from prefect import Flow, Task, flow, task
from prefect.cache_policies import INPUTS

from cmf_orchestrate import Dataset, InvalidArgumentError
from cmf_orchestrate.errors import ConfigError
from cmf_orchestrate.prefect import cmf_flow, cmf_task


def double(x: int) -> int:
    return 2 * x


def triple(x: int) -> int:
    return 3 * x


def test_bare_and_configured_forms_return_real_tasks() -> None:
    bare = cmf_task(double)
    configured = cmf_task(
        inputs=[Dataset("in.csv")],
        name="tripler",
        retries=3,
        retry_delay_seconds=0,
        timeout_seconds=5,
        tags={"cmf", "demo"},
        cache_policy=INPUTS,
        cache_expiration=datetime.timedelta(minutes=1),
        description="times three",
    )(triple)

    assert isinstance(bare, Task) and isinstance(configured, Task)
    assert bare.name == "double"
    assert (configured.name, configured.retries, configured.timeout_seconds) == ("tripler", 3, 5)
    assert configured.tags == {"cmf", "demo"}
    assert configured.cache_policy == INPUTS
    assert configured.cache_expiration == datetime.timedelta(minutes=1)
    assert configured.description == "times three"
    # The signature Prefect binds parameters against is the user's.
    assert list(inspect.signature(bare.fn).parameters) == ["x"]
    assert bare.fn.__wrapped__ is double


def test_each_function_keeps_the_task_key_of_a_plain_task() -> None:
    recorded_double, recorded_triple = cmf_task(double), cmf_task(triple)

    assert recorded_double.task_key == task(double).task_key
    assert recorded_triple.task_key == task(triple).task_key
    assert recorded_double.task_key != recorded_triple.task_key
    # with_options copies keep the key too (Prefect rebuilds it from the wrapped function).
    assert recorded_double.with_options(name="renamed").task_key == recorded_double.task_key


def test_cmf_flow_is_a_real_flow_and_keeps_its_options() -> None:
    @cmf_flow(name="configured", pipeline="pipe", retries=1, log_prints=True)
    def configured() -> int:
        return 1

    @cmf_flow
    def bare() -> int:
        return 2

    assert isinstance(configured, Flow) and isinstance(bare, Flow)
    assert (configured.name, configured.retries, configured.log_prints) == ("configured", 1, True)


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: cmf_task(task(double)), InvalidArgumentError),
        (lambda: cmf_task(outputs=["data.csv"])(double), InvalidArgumentError),  # type: ignore[list-item]
        (lambda: cmf_task(config=42)(double), ConfigError),  # type: ignore[arg-type]
        (lambda: cmf_flow(flow(double)), InvalidArgumentError),
    ],
    ids=["already-a-task", "not-a-declaration", "bad-config", "already-a-flow"],
)
def test_misuse_is_a_clear_error_at_decoration(make: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        make()  # type: ignore[operator]


def test_generators_are_refused() -> None:
    def produce() -> object:
        yield 1

    with pytest.raises(InvalidArgumentError, match="generator"):
        cmf_task(produce)


def test_importing_the_core_does_not_import_prefect() -> None:
    code = "import sys, cmf_orchestrate; assert 'prefect' not in sys.modules, 'prefect imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_prefect_collection_entry_point_loads_the_adapter() -> None:
    from prefect.plugins import load_prefect_collections

    loaded = load_prefect_collections()
    assert "cmf_orchestrate" in loaded, loaded
    module = loaded["cmf_orchestrate"]
    assert not isinstance(module, Exception), module
    assert module.CmfConfig.get_block_type_slug() == "cmf-config"


def test_asset_keys_are_valid_for_any_path(tmp_path: Path) -> None:
    from prefect.assets import Asset

    from cmf_orchestrate.prefect._assets import asset_key

    odd = asset_key("data/100% raw #1 [v2].csv", tmp_path)
    accented = asset_key("données/été.csv", tmp_path)
    long = asset_key("d/" + "x" * 600 + ".csv", tmp_path)

    assert odd.startswith("cmf://data/100__raw__1__v2_.csv~") and Asset(key=odd).key == odd
    assert accented.isascii() and Asset(key=accented).key == accented
    assert odd != asset_key("data/100_ raw _1 _v2_.csv", tmp_path)  # cleaned alike, still two keys
    assert len(long) <= 512 and Asset(key=long).key == long


def test_one_asset_key_for_a_file_in_airflow_and_prefect(tmp_path: Path) -> None:
    from cmf_orchestrate._assetkey import asset_key as shared_key
    from cmf_orchestrate.prefect._assets import asset_key

    # Relative or absolute under the project root: the key is the project-relative path.
    assert asset_key("data/a.csv", tmp_path) == "cmf://data/a.csv"
    assert asset_key(tmp_path / "data" / "a.csv", tmp_path) == "cmf://data/a.csv"
    assert asset_key("./data//a.csv", tmp_path) == shared_key("data/a.csv") == "cmf://data/a.csv"
    # A step-metrics file carries its execution's uuid; every run is a version of one asset.
    first = asset_key(f"cmf_artifacts/metrics/training-{uuid.uuid4()}.parquet", tmp_path)
    second = asset_key(f"cmf_artifacts/metrics/training-{uuid.uuid4()}.parquet", tmp_path)
    assert first == second == "cmf://cmf_artifacts/metrics/training.parquet"
