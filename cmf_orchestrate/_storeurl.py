"""Parsing of metadata store locations (paths and URLs)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict
from urllib.parse import parse_qsl, unquote, urlsplit

from cmf_orchestrate.errors import ConfigError

# A URL's password (scheme://user:PASSWORD@host), an option's value (--db-password=X,
# --token X) and an assignment (PGPASSWORD=X, password=X in a DSN).
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*):[^\s@/]+@")
_SECRET_NAME = r"[\w.-]*(?:password|passwd|secret|token)[\w.-]*"  # noqa: S105 - a pattern of option names, not a password
_SECRET_OPTION = re.compile(rf"(?i)(?<![\w-])(-{{1,2}}{_SECRET_NAME})(=|\s+)(?!-)\S+")
_SECRET_ASSIGNMENT = re.compile(rf"(?i)(?<![\w.-])({_SECRET_NAME})=\S+")
_SHORT_PASSWORD = 6
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
#: Seconds a statement (or SQLite's wait for the write lock) may take before the store is
#: reported unavailable, and seconds to establish a connection.
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0
_OPTIONS = ("timeout", "connect_timeout")
_SCHEMES = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
}


@dataclass(frozen=True)
class StoreLocation:
    """Where an MLMD store lives. ``password`` is never part of ``redacted`` or ``repr``."""

    backend: str  # "sqlite" | "postgresql" | "mysql"
    path: Path | None = None
    host: str = ""
    port: int = 0
    database: str = ""
    user: str = ""
    password: str = field(default="", repr=False)
    timeout: float = DEFAULT_TIMEOUT_S
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S

    @property
    def redacted(self) -> str:
        """The location as a URL with the password masked."""
        if self.backend == "sqlite":
            return f"sqlite:///{self.path}"
        auth = self.user + (":***" if self.password else "")
        return f"{self.backend}://{auth}{'@' if auth else ''}{self.host}:{self.port}/{self.database}"

    @property
    def identity(self) -> str:
        """A stable name of the store (no credentials), used to qualify ids elsewhere."""
        if self.backend == "sqlite":
            return f"sqlite:{self.path}"
        return f"{self.backend}:{self.host}:{self.port}/{self.database}"

    def scrub(self, text: str) -> str:
        """``text`` with any occurrence of the password masked.

        A password shorter than :data:`_SHORT_PASSWORD` characters would also match inside
        ordinary words (``e`` in "does not exist"): it is masked where it stands alone.
        """
        if not self.password:
            return text
        if len(self.password) >= _SHORT_PASSWORD:
            return text.replace(self.password, "***")
        return re.sub(rf"(?<![^\W_]){re.escape(self.password)}(?![^\W_])", "***", text)


def parse_store_url(value: str | Path, base: Path | None = None) -> StoreLocation:
    """Parse a store path or URL.

    Args:
        value: ``path``, ``sqlite:///path``, ``postgresql://user:pass@host:port/db`` or
            ``mysql://user:pass@host:port/db``.
        base: Directory that relative SQLite paths are resolved against (default: cwd).

    Raises:
        ConfigError: The URL is malformed or names an unsupported backend.
    """
    text = str(value).strip()
    if not text:
        raise ConfigError("store: empty store location")
    root = base if base is not None else Path.cwd()
    if "://" not in text:
        return StoreLocation("sqlite", path=(root / Path(text).expanduser()).resolve())
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        # Not chained: the parser's message quotes what it took for a port or host, which
        # may be a piece of a password holding a character that should be percent-encoded.
        raise ConfigError(f"store: malformed URL {_mask(text)!r}: {_parse_error(str(exc), text)}") from None
    options = _options(parts.query, text)
    scheme = parts.scheme.split("+", 1)[0].lower()
    backend = _SCHEMES.get(scheme)
    if backend is None:
        raise ConfigError(
            f"store: unsupported scheme {parts.scheme!r} in {_mask(text)!r} (use a path, sqlite:///, postgresql:// or mysql://)"
        )
    if backend == "sqlite":
        raw = unquote(parts.path)
        if parts.netloc:
            raise ConfigError(f"store: sqlite URL must look like sqlite:///path, got {_mask(text)!r}")
        if not raw or raw == "/":
            raise ConfigError(f"store: sqlite URL has no file path: {_mask(text)!r}")
        # sqlite:///relative/file and sqlite:////absolute/file, as in SQLAlchemy.
        path = Path(raw[1:]) if raw.startswith("/") else Path(raw)
        return StoreLocation("sqlite", path=(root / path).resolve(), **options)
    database = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not database or "/" in database:
        raise ConfigError(f"store: {backend} URL needs a host and a database name: {_mask(text)!r}")
    return StoreLocation(
        backend,
        host=parts.hostname,
        port=port or _DEFAULT_PORTS[backend],
        database=database,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        **options,
    )


class _Options(TypedDict, total=False):
    timeout: float
    connect_timeout: float


def _options(query: str, text: str) -> _Options:
    """The URL's query options (``?timeout=30&connect_timeout=10``), in seconds."""
    options: _Options = {}
    for key, raw in parse_qsl(query, keep_blank_values=True):
        if key not in _OPTIONS:
            raise ConfigError(f"store: unknown option {key!r} in {_mask(text)!r} (known: {', '.join(_OPTIONS)})")
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not 0 < value < 86400:
            raise ConfigError(f"store: option {key} must be a number of seconds, got {raw!r} in {_mask(text)!r}")
        options[key] = value  # type: ignore[literal-required]  # key is one of _OPTIONS
    return options


def _parse_error(detail: str, text: str) -> str:
    """The URL parser's complaint, unless it quotes a piece of the password."""
    authority = text.split("//", 1)[-1].rpartition("@")[0]
    password = authority.partition(":")[2]
    if any(piece and piece in detail for piece in re.split(r"[#/?\[\]@]", password)):
        return "it does not parse (a password holding #, /, ?, @, [ or ] must be percent-encoded)"
    return detail


def _mask(text: str) -> str:
    """Mask the password of a URL-like string for an error message."""
    try:
        parts = urlsplit(text)
        if parts.password:
            return text.replace(parts.password, "***", 1)
    except ValueError:
        pass
    if "@" in text and ":" in text.split("@", 1)[0].split("//", 1)[-1]:
        head, tail = text.split("@", 1)
        scheme, _, userinfo = head.rpartition("//")
        return f"{scheme}//{userinfo.split(':', 1)[0]}:***@{tail}"
    return text


def mask_credentials(text: str) -> str:
    """``text`` (a command line, an error message) with credentials masked as ``***``.

    Masks the password of every URL, the value of options and assignments whose name says
    password, passwd, secret or token. A known password is masked by
    :meth:`StoreLocation.scrub` as well, wherever it appears.
    """
    text = _URL_PASSWORD.sub(r"\1:***@", text)
    text = _SECRET_OPTION.sub(r"\1\2***", text)
    return _SECRET_ASSIGNMENT.sub(r"\1=***", text)
