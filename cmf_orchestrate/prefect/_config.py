"""Resolution of the settings a task run records with.

Precedence: the task's ``config``, then its flow's ``config`` (``@cmf_flow``), then the
environment and the project file (:meth:`CmfSettings.from_env`). A block name is loaded
from the Prefect API once per flow run and block, not once per task run.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Union, cast

from cmf_orchestrate.errors import ConfigError
from cmf_orchestrate.settings import CmfSettings

if TYPE_CHECKING:
    from cmf_orchestrate.prefect.blocks import CmfConfig

logger = logging.getLogger(__name__)

#: What ``config=`` accepts: a saved block's name, a block, or core settings.
ConfigSource = Union[str, "CmfConfig", CmfSettings]

_CACHE_SIZE = 64
_lock = threading.Lock()
_loaded: OrderedDict[tuple[str, str], CmfConfig] = OrderedDict()


def _remember(key: tuple[str, str], block: CmfConfig) -> None:
    with _lock:
        _loaded[key] = block
        _loaded.move_to_end(key)
        while len(_loaded) > _CACHE_SIZE:
            _loaded.popitem(last=False)


def _cached(key: tuple[str, str]) -> CmfConfig | None:
    with _lock:
        return _loaded.get(key)


def _check_source(source: object) -> None:
    from cmf_orchestrate.prefect.blocks import CmfConfig

    if source is not None and not isinstance(source, str | CmfConfig | CmfSettings):
        raise ConfigError(
            f"config must be a CmfConfig block name, a CmfConfig or CmfSettings, got {type(source).__name__}"
        )


def validate_source(source: ConfigSource | None) -> ConfigSource | None:
    """``source`` unchanged once its type is checked (at decoration time).

    Raises:
        ConfigError: ``source`` is of an unsupported type.
    """
    _check_source(source)
    return source


def settings_from(source: ConfigSource | None, scope: str) -> CmfSettings:
    """The settings ``source`` describes (the environment when it is ``None``).

    Args:
        source: Block name, block, settings or ``None``.
        scope: Key the loaded block is cached under with its name (the flow run id).

    Raises:
        ConfigError: The block cannot be loaded or a value is invalid.
    """
    from cmf_orchestrate.prefect.blocks import CmfConfig

    if source is None:
        return CmfSettings.from_env()
    if isinstance(source, CmfSettings):
        return source
    if isinstance(source, CmfConfig):
        return source.to_settings()
    key = (scope, source)
    block = _cached(key)
    if block is None:
        try:
            block = cast("CmfConfig", CmfConfig.load(source, _sync=True))  # type: ignore[call-arg]
        except ValueError as exc:
            raise ConfigError(f"CmfConfig block {source!r} cannot be loaded: {exc}") from exc
        _remember(key, block)
    return block.to_settings()


async def asettings_from(source: ConfigSource | None, scope: str) -> CmfSettings:
    """Async form of :func:`settings_from`, for async tasks.

    Raises:
        ConfigError: The block cannot be loaded or a value is invalid.
    """
    from cmf_orchestrate.prefect.blocks import CmfConfig

    if not isinstance(source, str):
        return settings_from(source, scope)
    key = (scope, source)
    block = _cached(key)
    if block is None:
        try:
            block = await CmfConfig.aload(source)
        except ValueError as exc:
            raise ConfigError(f"CmfConfig block {source!r} cannot be loaded: {exc}") from exc
        _remember(key, block)
    return block.to_settings()
