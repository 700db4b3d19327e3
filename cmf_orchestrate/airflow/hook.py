"""The CMF hook: an Airflow connection of type ``cmf`` turned into :class:`CmfSettings`.

Connection fields (the connection form labels them so):

- ``host``: the Neo4j URI, e.g. ``bolt://neo4j:7687``; a bare host name gets the
  ``bolt`` scheme and port 7687 (or the connection's ``port``). Empty: no graph.
- ``login`` / ``password``: the Neo4j user and password.
- ``extra`` (JSON), one typed form field each: ``store`` (MLMD store path or URL),
  ``project_root``, ``graph`` (bool), ``pipeline`` (pipeline name override),
  ``strict_outputs`` (bool: fail an attempt that did not write a declared output),
  ``remote`` (DVC remote URL), ``inputs`` (``recorded`` or ``local``) and ``reuse``
  (bool: reuse earlier executions for every task). Empty values count as unset; the
  form's ``extra__cmf__<name>`` keys are accepted too.

As a URI: ``cmf://neo4j:secret@neo4j-host:7687?store=postgresql%3A%2F%2Fcmf%40db%2Fmlmd&project_root=%2Fsrv%2Fml&reuse=true``.
Settings the connection leaves out come from the environment and the project file, as
:meth:`CmfSettings.from_env` reads them. Passwords (Neo4j's, and one embedded in the store
or the remote URL) are registered with Airflow's secrets masker, so task logs show ``***``.
"""

from __future__ import annotations

import copy
import importlib
import json
import logging
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from cmf_orchestrate.airflow._compat import BaseHook, Connection, mask_secret
from cmf_orchestrate.errors import CmfError, ConfigError
from cmf_orchestrate.settings import CmfSettings

__all__ = ["CmfHook"]

log = logging.getLogger(__name__)

_EXTRA_KEYS = frozenset({"store", "project_root", "graph", "pipeline", "strict_outputs", "remote", "inputs", "reuse"})
_FORM_PREFIX = "extra__cmf__"
_DEFAULT_NEO4J_PORT = 7687


class CmfHook(BaseHook):
    """Reads CMF settings from an Airflow connection of type ``cmf``.

    Args:
        cmf_conn_id: Id of the connection (default ``cmf_default``).

    Example:
        >>> settings = CmfHook("cmf_prod").get_settings()  # doctest: +SKIP
    """

    conn_name_attr: ClassVar[str] = "cmf_conn_id"
    default_conn_name: ClassVar[str] = "cmf_default"
    conn_type: ClassVar[str] = "cmf"
    hook_name: ClassVar[str] = "Common Metadata Framework"

    def __init__(self, cmf_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cmf_conn_id = cmf_conn_id

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The typed fields of the connection form: the CMF settings kept in ``extra``.

        Airflow 3.0 and 3.1 call it (with WTForms, or Airflow's stand-ins for it);
        3.2 and later read the same fields from the provider info.
        """
        from cmf_orchestrate.airflow.provider import CONNECTION_FIELDS

        # Imported by name: only the API server has them, or Airflow's stand-ins for them.
        fieldwidgets = importlib.import_module("flask_appbuilder.fieldwidgets")
        lazy_gettext = importlib.import_module("flask_babel").lazy_gettext
        wtforms = importlib.import_module("wtforms")
        optional = importlib.import_module("wtforms.validators").Optional
        widgets: dict[str, Any] = {}
        for field in CONNECTION_FIELDS:
            if field.kind == "boolean":
                widgets[field.name] = wtforms.BooleanField(
                    lazy_gettext(field.label), description=field.description, default=None
                )
            else:
                widgets[field.name] = wtforms.StringField(
                    lazy_gettext(field.label),
                    widget=fieldwidgets.BS3TextFieldWidget(),
                    validators=[optional()],
                    description=field.description,
                )
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """How the connection form shows the standard fields: Neo4j's, port and schema hidden.

        Airflow 3.0 and 3.1 call it; 3.2 and later read the same from the provider info.
        """
        from cmf_orchestrate.airflow.provider import UI_FIELD_BEHAVIOUR

        return copy.deepcopy(UI_FIELD_BEHAVIOUR)

    def get_conn(self) -> CmfSettings:
        """Same as :meth:`get_settings` (the ``BaseHook`` interface)."""
        return self.get_settings()

    def get_settings(self) -> CmfSettings:
        """Build the settings from the connection, the environment and the project file.

        Returns:
            The settings; the connection's values win over the environment's.

        Raises:
            ConfigError: The connection's ``extra`` is not a JSON object, names an
                unknown key, or holds an invalid value.
        """
        conn = self.get_connection(self.cmf_conn_id)
        return settings_from_connection(conn)

    def test_connection(self) -> tuple[bool, str]:
        """Check that the settings are valid and the metadata store can be opened.

        Returns:
            ``(True, message)`` when the store opens, else ``(False, reason)``; the
            reason never contains a password.
        """
        from cmf_orchestrate.query import CmfQuery

        try:
            settings = self.get_settings()
            pipelines = CmfQuery(settings=settings).get_pipeline_names()
        except CmfError as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"metadata store {settings.location.redacted} is reachable ({len(pipelines)} pipeline(s))"


def settings_from_connection(conn: Connection) -> CmfSettings:
    """Translate a ``cmf`` connection into :class:`CmfSettings`.

    Raises:
        ConfigError: The connection's ``extra`` is not a JSON object, names an unknown
            key, or holds an invalid value.
    """
    extra = _extra(conn)
    overrides: dict[str, Any] = {key: extra[key] for key in _EXTRA_KEYS if key in extra}
    neo4j_uri = _neo4j_uri(conn)
    if neo4j_uri:
        overrides["neo4j_uri"] = neo4j_uri
    if conn.login:
        overrides["neo4j_user"] = conn.login
    if conn.password:
        mask_secret(conn.password)
        overrides["neo4j_password"] = conn.password
    settings = CmfSettings.from_env(**overrides)
    store_password = settings.location.password
    if store_password:
        mask_secret(store_password)
    for secret in _url_secrets(settings.remote):
        mask_secret(secret)
    log.debug("CMF settings from connection %r: %r", conn.conn_id, settings)
    return settings


def _extra(conn: Connection) -> dict[str, Any]:
    raw = conn.extra
    if not raw:
        return {}
    try:
        extra = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"connection {conn.conn_id!r}: extra is not valid JSON") from exc
    if not isinstance(extra, dict):
        raise ConfigError(f"connection {conn.conn_id!r}: extra must be a JSON object")
    # The connection form writes every field, empty ones included.
    extra = {str(key).removeprefix(_FORM_PREFIX): value for key, value in extra.items() if value not in (None, "")}
    unknown = set(extra) - _EXTRA_KEYS
    if unknown:
        raise ConfigError(
            f"connection {conn.conn_id!r}: unknown extra key(s) {', '.join(sorted(unknown))}; "
            f"expected {', '.join(sorted(_EXTRA_KEYS))}"
        )
    return extra


def _neo4j_uri(conn: Connection) -> str | None:
    host = (conn.host or "").strip()
    if not host:
        return None
    if "://" in host:
        return host
    return f"bolt://{host}:{conn.port or _DEFAULT_NEO4J_PORT}"


def _url_secrets(url: str | None) -> list[str]:
    """The password of a URL (``scheme://user:password@host``), as written and decoded."""
    if not url or "://" not in url:
        return []
    try:
        password = urlsplit(url).password
    except ValueError:  # a malformed port: the remote is reported where it is used
        password = url.split("://", 1)[1].rpartition("@")[0].partition(":")[2] or None
    if not password:
        return []
    return sorted({password, unquote(password)})
