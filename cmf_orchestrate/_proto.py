"""Read-only views of records shaped like ML Metadata's protos, without ml-metadata.

CMF scripts read what ``create_context``, ``create_execution`` and the ``log_*`` calls
return as MLMD protos: ``.id``, ``.name``, ``.type_id``, ``.last_known_state``,
``.properties["k"].string_value`` and so on. These views answer those reads from the
typed records; any other attribute is the record's own (``.uuid``, ``.path``, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from cmf_orchestrate.records import ArtifactRecord, ContextRecord, ExecutionRecord, ExecutionState, Value
from cmf_orchestrate.store._schema import ARTIFACT_STATE_LIVE, EXECUTION_STATE_CODES

__all__ = ["ArtifactView", "ContextView", "ExecutionView", "PropertyMap", "PropertyValue", "state_code"]


def state_code(state: ExecutionState) -> int:
    """ML Metadata's number of an execution state."""
    return EXECUTION_STATE_CODES.get(state, 0)


class PropertyValue:
    """One property value, read like ``metadata_store_pb2.Value``."""

    __slots__ = ("_value",)

    def __init__(self, value: Value | None) -> None:
        self._value = value

    @property
    def value(self) -> Value | None:
        """The plain value (None when unset)."""
        return self._value

    @property
    def string_value(self) -> str:
        """The value when it is text, else ``""``."""
        return self._value if isinstance(self._value, str) else ""

    @property
    def int_value(self) -> int:
        """The value when it is an integer, else 0."""
        return self._value if isinstance(self._value, int) and not isinstance(self._value, bool) else 0

    @property
    def double_value(self) -> float:
        """The value when it is a float, else 0.0."""
        return self._value if isinstance(self._value, float) else 0.0

    def WhichOneof(self, group: str) -> str | None:  # noqa: N802 - protobuf's name
        """Which of ``int_value``, ``double_value``, ``string_value`` is set."""
        del group
        if isinstance(self._value, str):
            return "string_value"
        if isinstance(self._value, float):
            return "double_value"
        if isinstance(self._value, int):
            return "int_value"
        return None

    def HasField(self, name: str) -> bool:  # noqa: N802 - protobuf's name
        """Whether the value is held in the field ``name``."""
        return self.WhichOneof("value") == name

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PropertyValue):
            return self._value == other._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        field = self.WhichOneof("value")
        if field is None:
            return ""
        shown = f'"{self._value}"' if field == "string_value" else str(self._value)
        return f"{field}: {shown}\n"

    __str__ = __repr__


class PropertyMap(Mapping[str, PropertyValue]):
    """Properties read like a proto's map field; a missing key reads as an unset value."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Value]) -> None:
        self._values = values

    def __getitem__(self, key: str) -> PropertyValue:
        return PropertyValue(self._values.get(key))

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when it is not set."""
        return PropertyValue(self._values[key]) if key in self._values else default

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"PropertyMap({dict(self._values)!r})"


class _View:
    """The shared part: id, name, type, times, properties; the rest from the record."""

    _kind = ""

    def __init__(self, record: Any, type_ids: Callable[[str, str], int | None] | None = None) -> None:
        self._record = record
        self._type_ids = type_ids

    @property
    def record(self) -> Any:
        """The typed record behind the view."""
        return self._record

    @property
    def id(self) -> int:
        """MLMD id."""
        return int(self._record.id)

    @property
    def name(self) -> str:
        """MLMD name (``""`` when unnamed)."""
        return str(self._record.name)

    @property
    def type(self) -> str:
        """Type name."""
        return str(self._type_name())

    def _type_name(self) -> str:
        return str(self._record.type)

    @property
    def type_id(self) -> int:
        """MLMD type id (0 when the type is not known to the store)."""
        if self._type_ids is None:
            return 0
        return self._type_ids(self._kind, self._type_name()) or 0

    @property
    def properties(self) -> PropertyMap:
        """Type properties, read like a proto map."""
        return PropertyMap(self._record.properties)

    @property
    def custom_properties(self) -> PropertyMap:
        """Custom properties, read like a proto map."""
        return PropertyMap(self._record.custom_properties)

    @property
    def create_time_since_epoch(self) -> int:
        """Creation time, ms since the epoch."""
        return int(self._record.create_time_ms)

    @property
    def last_update_time_since_epoch(self) -> int:
        """Last update time, ms since the epoch."""
        return int(getattr(self._record, "update_time_ms", 0) or self._record.create_time_ms)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._record, name)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _View):
            return bool(self._record == other._record)
        return bool(self._record == other)

    def __hash__(self) -> int:
        return hash(self._record)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id}, name={self.name!r}, type={self.type!r})"


class ContextView(_View):
    """A context, read like ``metadata_store_pb2.Context``."""

    _kind = "context"
    _record: ContextRecord


class ExecutionView(_View):
    """An execution, read like ``metadata_store_pb2.Execution``."""

    _kind = "execution"
    _record: ExecutionRecord

    @property
    def last_known_state(self) -> int:
        """ML Metadata's state number (``COMPLETE`` is 3)."""
        return state_code(self._record.state)


class ArtifactView(_View):
    """An artifact, read like ``metadata_store_pb2.Artifact``."""

    _kind = "artifact"
    _record: ArtifactRecord

    def _type_name(self) -> str:
        return str(self._record.kind)

    @property
    def uri(self) -> str:
        """The artifact's uri (its md5 for a versioned file)."""
        return str(self._record.uri)

    @property
    def state(self) -> int:
        """ML Metadata's artifact state number (``LIVE`` is 2)."""
        return ARTIFACT_STATE_LIVE
