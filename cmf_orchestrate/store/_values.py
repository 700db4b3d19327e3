"""Property values: Python values to MLMD property columns and back.

ML Metadata keeps a property in one of ``int_value``, ``double_value`` and
``string_value``. Not every backend holds every value there: ``int_value`` is 32 bits on
PostgreSQL and MySQL and 64 bits on SQLite; SQLite turns NaN into NULL; MySQL has no NaN
or infinities. Such a value is kept in ``string_value`` in a tagged form, so it is
recorded (a value never fails a run) and reads back as it was written:

=====================  ==========================
value                  ``string_value``
=====================  ==========================
an integer too large   ``cmf:int:<decimal digits>``
NaN, +inf, -inf        ``cmf:float:nan``, ``cmf:float:inf``, ``cmf:float:-inf``
a string of that form  ``cmf:str:<the string>``
=====================  ==========================

Only strings of exactly these forms are tagged; every other string is kept as it is.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from cmf_orchestrate.records import Value

__all__ = ["BACKEND_LIMITS", "Column", "decode", "encode", "to_python"]

_TAGGED = re.compile(r"cmf:(?:int:-?[0-9]+|float:(?:nan|inf|-inf)|str:.*)", re.DOTALL)


@dataclass(frozen=True)
class _Limits:
    int_bits: int
    nan: bool
    inf: bool


BACKEND_LIMITS = {
    "sqlite": _Limits(int_bits=64, nan=False, inf=True),
    "postgresql": _Limits(int_bits=32, nan=True, inf=True),
    "mysql": _Limits(int_bits=32, nan=False, inf=False),
}


@dataclass(frozen=True)
class Column:
    """A value as the three MLMD property columns hold it (exactly one is set)."""

    int_value: int | None = None
    double_value: float | None = None
    string_value: str | None = None


def to_python(value: Any) -> Value:
    """A user value as CMF records it: int, float, else a string (JSON for containers)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, str)):
        return value
    if isinstance(value, (dict, list, tuple)):
        try:
            return json.dumps(value, sort_keys=True, default=str)
        except (TypeError, ValueError):
            pass
    return str(value)


def encode(value: Any, backend: str) -> Column:
    """The columns that hold ``value`` on ``backend``."""
    limits = BACKEND_LIMITS[backend]
    plain = to_python(value)
    if isinstance(plain, int):
        bound = 1 << (limits.int_bits - 1)
        return Column(int_value=plain) if -bound <= plain < bound else Column(string_value=f"cmf:int:{plain}")
    if isinstance(plain, float):
        return _encode_float(plain, limits)
    if _TAGGED.fullmatch(plain):
        return Column(string_value=f"cmf:str:{plain}")
    return Column(string_value=plain)


def _encode_float(value: float, limits: _Limits) -> Column:
    if math.isnan(value):
        return Column(double_value=value) if limits.nan else Column(string_value="cmf:float:nan")
    if math.isinf(value) and not limits.inf:
        return Column(string_value=f"cmf:float:{'inf' if value > 0 else '-inf'}")
    return Column(double_value=value)


def decode(int_value: Any, double_value: Any, string_value: Any, bool_value: Any = None) -> Value:
    """The value a property row holds (the inverse of :func:`encode`)."""
    if int_value is not None:
        return int(int_value)
    if double_value is not None:
        return float(double_value)
    if string_value is not None:
        return _decode_text(str(string_value))
    if bool_value is not None:
        return int(bool(bool_value))
    # SQLite stores a NaN written by another program as NULL.
    return math.nan


def _decode_text(text: str) -> Value:
    if not (text.startswith("cmf:") and _TAGGED.fullmatch(text)):
        return text
    kind, _, rest = text[4:].partition(":")
    if kind == "int":
        return int(rest)
    return float(rest) if kind == "float" else rest
