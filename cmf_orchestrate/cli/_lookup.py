"""Finding what the user named on the command line, and formatting times."""

from __future__ import annotations

import re
import sys
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

from cmf_orchestrate.errors import ArtifactNotFoundError, InvalidArgumentError
from cmf_orchestrate.records import ArtifactRecord, ExecutionRecord

if TYPE_CHECKING:
    from cmf_orchestrate.store import MetadataStore

_MD5 = re.compile(r"^[0-9a-f]{32}(\.dir)?$")
_MD5_PREFIX = re.compile(r"^[0-9a-f]{6,32}(\.dir)?$")
_RELATIVE = re.compile(r"^(\d+)\s*([a-z]+)(\s+ago)?$")
_UNIT_WORDS = {
    **{w: "seconds" for w in ("s", "sec", "secs", "second", "seconds")},
    **{w: "minutes" for w in ("m", "min", "mins", "minute", "minutes")},
    **{w: "hours" for w in ("h", "hr", "hrs", "hour", "hours")},
    **{w: "days" for w in ("d", "day", "days")},
    **{w: "weeks" for w in ("w", "wk", "wks", "week", "weeks")},
}
_SINCE_HELP = "a date (2024-05-01, 2024-05-01T10:00), a duration ago (30m, 2h, 1d, 1w) or today/yesterday"


def _fromisoformat(text: str) -> datetime:
    """``datetime.fromisoformat``, with Python 3.11's trailing ``Z`` for UTC on Python 3.10 too."""
    if sys.version_info < (3, 11) and text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


def newest(artifacts: list[ArtifactRecord]) -> ArtifactRecord:
    """The most recently created artifact of a non-empty list."""
    return max(artifacts, key=lambda a: (a.create_time_ms, a.id))


def find_artifact(store: MetadataStore, text: str) -> ArtifactRecord:
    """The artifact a user means by ``text``.

    Accepted, in this order: ``artifact:<id>``; a full name (``path:md5``); a full md5;
    a path (the newest version of it); a unique md5 prefix of at least 6 characters;
    ``path:md5-prefix``.

    Raises:
        ArtifactNotFoundError: Nothing matches.
        InvalidArgumentError: An md5 prefix matches several contents.
    """
    text = text.strip()
    if not text:
        raise InvalidArgumentError("an artifact path or md5 is required")
    if text.startswith("artifact:") and text[9:].isdigit():
        found = store.artifacts_by_id([int(text[9:])])
        if found:
            return found[0]
        raise ArtifactNotFoundError(f"no artifact with id {text[9:]} in the store")
    by_name = store.artifacts(name=text)
    if by_name:
        return newest(by_name)
    if _MD5.match(text):
        by_uri = store.artifacts_by_uri(text)
        if by_uri:
            return newest(by_uri)
    path = text[2:] if text.startswith("./") else text
    by_path = [a for a in store.artifacts(name_prefix=path + ":") if a.path == path]
    if by_path:
        return newest(by_path)
    if ":" in path:
        head, _, prefix = path.rpartition(":")
        if _MD5_PREFIX.match(prefix):
            matches = [a for a in store.artifacts(name_prefix=head + ":" + prefix) if a.path == head]
            if matches:
                return _unique_prefix(matches, prefix)
    if _MD5_PREFIX.match(text):
        matches = store.artifacts(uri_prefix=text)
        if matches:
            return _unique_prefix(matches, text)
    raise ArtifactNotFoundError(f"no artifact matches {text!r} (give a recorded path, an md5 or a name)")


def _unique_prefix(matches: list[ArtifactRecord], prefix: str) -> ArtifactRecord:
    uris = sorted({a.uri for a in matches})
    if len(uris) > 1:
        shown = ", ".join(u[:12] for u in uris[:5])
        raise InvalidArgumentError(f"md5 prefix {prefix!r} is ambiguous: {shown}{', ...' if len(uris) > 5 else ''}")
    return newest(matches)


def find_execution(store: MetadataStore, text: str) -> ExecutionRecord:
    """The execution a user means: an id (``12`` or ``execution:12``) or an execution uuid.

    Raises:
        ArtifactNotFoundError: No such execution (it is the "not in the store" error).
    """
    text = text.strip()
    raw = text[10:] if text.startswith("execution:") else text
    if raw.isdigit():
        found = store.execution(int(raw))
        if found is not None:
            return found
        raise ArtifactNotFoundError(f"no execution with id {raw} in the store")
    # cmf-orchestrate names executions "<stage>:<uuid>"; others (imported) are found by a scan.
    for candidate in store.executions(name_suffix=":" + raw) or store.executions():
        if candidate.uuid == raw:
            return candidate
    raise ArtifactNotFoundError(f"no execution {text!r} in the store")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """A point in time, as people type one after ``--since``.

    Accepted: a date or date and time (``2024-05-01``, ``2024-05-01T10:00``, ``2024-05-01 10:00``);
    a duration ago (``30m``, ``2h``, ``1d``, ``1w``, ``90 minutes``, ``3 days ago``); ``now``,
    ``today`` and ``yesterday`` (local midnight). Dates without a time zone are local time.

    Raises:
        InvalidArgumentError: The text is none of these.
    """
    now = now or datetime.now(timezone.utc)
    text = text.strip()
    lowered = text.lower()
    if lowered in ("now", "today", "yesterday"):
        if lowered == "now":
            return now
        midnight = now.astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
        # Subtracting a calendar day, not 24 hours: a daylight-saving change keeps midnight at midnight.
        return midnight if lowered == "today" else _local_midnight(midnight.date() - timedelta(days=1))
    rel = _RELATIVE.match(lowered)
    if rel and rel.group(2) in _UNIT_WORDS:
        return now - timedelta(**{_UNIT_WORDS[rel.group(2)]: int(rel.group(1))})
    try:
        parsed = _fromisoformat(text)
    except ValueError:
        raise InvalidArgumentError(f"--since: {text!r} is not {_SINCE_HELP}") from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()  # local time, the way people type dates
    return parsed


def _local_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day).astimezone()


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


def fmt_ms(ms: int | None) -> str:
    """A store timestamp (ms since the epoch) as local ``YYYY-MM-DD HH:MM:SS``."""
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def iso_ms(ms: int | None) -> str | None:
    """A store timestamp as ISO 8601 UTC (for JSON)."""
    if not ms:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


def fmt_duration(start_iso: object, end_iso: object) -> str:
    """``1.2s`` / ``3m04s`` between two ISO timestamps, or empty when one is missing."""
    try:
        start = _fromisoformat(str(start_iso))
        end = _fromisoformat(str(end_iso))
    except ValueError:
        return ""
    seconds = (end - start).total_seconds()
    if seconds < 0:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
