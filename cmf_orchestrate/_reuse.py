"""Reuse by content: an attempt whose inputs, parameters, code and environment already ran is not run again.

The key of an attempt has four parts: the md5 of every declared input (in order), the
md5 of its parameters as canonical JSON, the fingerprint of the task function's source and
the fingerprint of the environment the function runs in. The pipeline and the stage are
not part of it, so the same function reuses across pipelines and orchestrators.

The environment part names the Python implementation and major version and every
installed distribution the function's code refers to (through its module globals), with
the distributions those require, at their installed versions. Upgrading a library the
task uses changes the key; installing an unrelated one, or running the same code under
the other orchestrator, does not.

The key is kept with the execution (the ``cmf.reuse_key`` fact, an indexed property), so
finding earlier executions with the same key is one lookup. Completing an attempt records
the md5 of each declared output and of its persisted return value (``cmf.reuse_outputs``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import inspect
import json
import logging
import re
import sys
import threading
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from cmf_orchestrate.facts import FACT_PREFIX, json_safe, source_fingerprint
from cmf_orchestrate.records import ExecutionRecord, ExecutionState

if TYPE_CHECKING:
    from cmf_orchestrate.run import TaskRun

__all__ = ["DEFAULT_CODEC", "ResultCodec", "ReuseRequest", "Reused", "code_environment", "key_parts"]

logger = logging.getLogger(__name__)

_KEY = FACT_PREFIX + "reuse_key"
_PARTS = FACT_PREFIX + "reuse_parts"
_OUTPUTS = FACT_PREFIX + "reuse_outputs"
#: Earlier executions with the same key looked at before giving up on reuse.
_CANDIDATES = 20


class ResultCodec(Protocol):
    """How a task's return value is persisted: the orchestrator's own serializer.

    Attributes:
        name: Names the format; a value is read back only by a codec of the same name.
    """

    name: str

    def dumps(self, value: Any) -> bytes:
        """The value as bytes; raises when it cannot be persisted."""

    def loads(self, data: bytes) -> Any:
        """The value back from :meth:`dumps`'s bytes."""


class _JsonCodec:
    """JSON, for values JSON gives back unchanged: readable by every orchestrator."""

    name = "json"

    def dumps(self, value: Any) -> bytes:
        text = json.dumps(value, sort_keys=True, allow_nan=True)
        if json.loads(text) != value:
            raise TypeError(f"{type(value).__name__} does not come back unchanged from JSON")
        return text.encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


DEFAULT_CODEC: ResultCodec = _JsonCodec()


@dataclass(frozen=True)
class Reused:
    """What an attempt reused: the earlier execution and its return value."""

    execution_id: int
    value: Any


@dataclass(frozen=True)
class ReuseRequest:
    """Reuse asked for an attempt: the task's function (fingerprinted) and how its return value is kept."""

    func: Callable[..., Any] | None
    codec: ResultCodec | None = None


@dataclass
class Plan:
    """Reuse for one attempt: its key and how its return value is kept.

    A return value is kept with the first codec that takes it: JSON when JSON gives it
    back unchanged (so plain values cross orchestrators), else the orchestrator's own.
    """

    key: str
    parts: Mapping[str, Any]
    codecs: tuple[ResultCodec, ...]
    result: Any = None

    def codec(self, name: str) -> ResultCodec | None:
        """The codec of that name, if this attempt has it."""
        return next((c for c in self.codecs if c.name == name), None)


# -- the key ---------------------------------------------------------------------------------


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def key_parts(
    input_md5s: Sequence[str], parameters: Mapping[str, Any], code: str, environment: str
) -> tuple[str, dict[str, Any]]:
    """The key and its parts (what ``show --why`` compares)."""
    parts: dict[str, Any] = {
        "inputs": list(input_md5s),
        "parameters": _md5(_canonical({str(k): json_safe(v) for k, v in parameters.items()})),
        "code": code,
        "environment": environment,
    }
    return hashlib.sha256(_canonical(parts).encode()).hexdigest(), parts


_ENV_LOCK = threading.Lock()
_NAME = re.compile(r"[-_.]+")


@functools.cache
def _packages() -> Mapping[str, list[str]]:
    """Top-level import name -> distributions providing it (read once per process)."""
    return importlib.metadata.packages_distributions()


#: The distribution name at the start of a requirement line (``name[extra] >=1; marker``).
_REQUIREMENT = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@functools.cache
def _installed(name: str) -> tuple[str, str, tuple[str, ...]] | None:
    """(canonical name, version, names it requires) of an installed distribution, or None.

    Requirements of an extra are left out. Others count only if installed, so a
    requirement whose environment marker excludes this interpreter (and which is therefore
    not installed) changes nothing.
    """
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    required: list[str] = []
    for line in dist.requires or ():
        requirement, _, marker = line.partition(";")
        match = _REQUIREMENT.match(requirement)
        if match is None or "extra" in marker:
            continue
        required.append(match.group(1))
    return _NAME.sub("-", dist.metadata["Name"]).lower(), dist.version, tuple(required)


def _referenced_modules(func: Callable[..., Any]) -> set[str]:
    """Top-level modules of the globals the function's code (nested code included) names."""
    target = inspect.unwrap(func)
    code = getattr(target, "__code__", None)
    found: set[str] = set()
    if code is None:
        return found
    names: set[str] = set()
    stack = [code]
    while stack:
        current = stack.pop()
        names.update(current.co_names)
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    scope = getattr(target, "__globals__", {})
    for name in names:
        if name not in scope:
            continue
        value = scope[name]
        module = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
        if isinstance(module, str) and module:
            found.add(module.split(".", 1)[0])
    return found


def code_environment(func: Callable[..., Any]) -> str:
    """Fingerprint of the environment the function's code runs in (see the module docstring)."""
    with _ENV_LOCK:
        packages = _packages()
        todo = [d for top in sorted(_referenced_modules(func)) for d in packages.get(top, ())]
        seen: dict[str, str] = {}
        while todo:
            found = _installed(todo.pop())
            if found is None or found[0] in seen:
                continue
            name, version, required = found
            seen[name] = version
            todo.extend(required)
    implementation = f"{sys.implementation.name}{sys.version_info[0]}"
    listing = "\n".join([implementation, *(f"{n}=={v}" for n, v in sorted(seen.items()))])
    return _md5(listing)


# -- one attempt ---------------------------------------------------------------------------------

_refused: set[tuple[str, str]] = set()
_refused_lock = threading.Lock()


def _once(kind: str, what: str, message: str, *args: Any) -> None:
    """Log a reuse refusal once per process and task."""
    with _refused_lock:
        if (kind, what) in _refused:
            return
        _refused.add((kind, what))
    logger.warning(message, *args)


def plan(
    stage: str,
    input_md5s: Sequence[str],
    parameters: Mapping[str, Any],
    request: ReuseRequest | None,
    custom: dict[str, Any],
) -> Plan | None:
    """The reuse plan of an attempt (its key facts added to ``custom``), or None.

    None when reuse is off, or (with one log line) when the code cannot be fingerprinted.
    """
    if request is None:
        return None
    func = request.func
    code = source_fingerprint(func) if func is not None else None
    if func is None or code is None:
        _once(
            "code",
            stage,
            "reuse is off for %s: the code of %r cannot be fingerprinted (no source: built at run time, or a C "
            "function)",
            stage,
            func,
        )
        return None
    key, parts = key_parts(input_md5s, parameters, code, code_environment(func))
    own = (request.codec,) if request.codec is not None and request.codec.name != DEFAULT_CODEC.name else ()
    found = Plan(key, parts, (DEFAULT_CODEC, *own))
    custom.update(opening_facts(found))
    return found


def opening_facts(reuse: Plan) -> dict[str, Any]:
    """Facts recorded when the attempt opens: its key, and its parts for ``show --why``."""
    return {_KEY: reuse.key, _PARTS: _canonical(reuse.parts)}


def closing_facts(run: TaskRun, reuse: Plan, output_md5s: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """Facts of a COMPLETE attempt that make it reusable, and the content ids to push with it.

    A return value the codec cannot persist leaves the attempt unreusable, with one log line.
    """
    result: dict[str, str] | None = None
    extra: list[str] = []
    if reuse.result is not None:
        errors: list[str] = []
        for codec in reuse.codecs:
            try:
                data = codec.dumps(reuse.result)
            except Exception as exc:  # noqa: BLE001 - a serializer raises whatever the value makes it raise
                errors.append(f"{codec.name}: {exc}")
                continue
            md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
            run.versioner.store_object(md5, data)
            result = {"md5": md5, "codec": codec.name}
            extra.append(md5)
            break
        else:
            _once(
                "result",
                run.stage.name,
                "reuse is off for %s: its return value (%s) cannot be persisted (%s)",
                run.stage.name,
                type(reuse.result).__name__,
                "; ".join(errors),
            )
            return {}, []
    facts = {_OUTPUTS: _canonical({"outputs": list(output_md5s), "result": result})}
    return facts, extra


def find(run: TaskRun, reuse: Plan) -> tuple[ExecutionRecord, dict[str, Any]] | None:
    """An earlier COMPLETE execution with the same key whose outputs can be had here, or None.

    The newest usable one wins. When some match but none is usable, one line says why.
    """
    from cmf_orchestrate.transfer import in_cache, open_remote

    store = run.store
    found = store.executions(
        fact=("reuse_key", reuse.key), state=ExecutionState.COMPLETE, newest_first=True, limit=_CANDIDATES
    )
    candidates = [x for x in found if x.id != run.execution_id]
    why: list[str] = []
    remote = None
    for candidate in candidates:
        recorded = candidate.custom_properties.get(_OUTPUTS)
        if recorded is None:
            why.append(f"execution {candidate.id} kept no outputs to reuse")
            continue
        kept = json.loads(str(recorded))
        outputs: list[str] = list(kept["outputs"])
        result = kept.get("result")
        if len(outputs) != len(run.info.outputs):
            declared = len(run.info.outputs)
            why.append(f"execution {candidate.id} declared {len(outputs)} outputs, this attempt {declared}")
            continue
        if result is not None and reuse.codec(result["codec"]) is None:
            known = ", ".join(c.name for c in reuse.codecs)
            why.append(f"execution {candidate.id} kept its return value as {result['codec']}, not as {known}")
            continue
        needed = [*outputs, *([result["md5"]] if result else [])]
        absent = [m for m in needed if not in_cache(run.versioner.root, m)]
        if absent and run.settings.remote:
            remote = remote or open_remote(run.versioner.root, run.settings.remote)
            absent = [m for m in absent if not remote.has(m)]
        if absent:
            where = "the local DVC cache or the remote" if run.settings.remote else "the local DVC cache (no remote)"
            why.append(f"the outputs of execution {candidate.id} are in neither {where}: {', '.join(absent)}")
            continue
        return candidate, kept
    if why:
        logger.info("%s runs: an earlier execution matches but cannot be reused: %s", run.stage.name, "; ".join(why))
    return None


def restore(run: TaskRun, kept: Mapping[str, Any], reuse: Plan) -> Any:
    """Check the kept outputs out to this attempt's declared paths; return the kept return value.

    Raises:
        RemoteError: Content could not be fetched from the remote.
        ArtifactNotFoundError: Content vanished from the cache and the remote meanwhile.
    """
    from cmf_orchestrate.errors import ArtifactNotFoundError, RemoteError
    from cmf_orchestrate.transfer import checkout, fetch, in_cache

    root = run.versioner.root
    result = kept.get("result")
    needed = [*kept["outputs"], *([result["md5"]] if result else [])]
    absent = [m for m in needed if not in_cache(root, m)]
    if absent:
        report = fetch(root, absent, run.settings.remote)
        if report.failed:
            raise RemoteError(f"reuse: fetching {', '.join(report.failed)} failed: {report.reason}")
        if report.missing:
            raise ArtifactNotFoundError(f"reuse: {', '.join(report.missing)} vanished from the remote")
    for spec, md5 in zip(run.info.outputs, kept["outputs"], strict=True):
        checkout(root, spec.path, md5)
    if not result:
        return None
    codec = reuse.codec(result["codec"])
    assert codec is not None  # checked by find()
    return codec.loads(run.versioner.read_object(result["md5"]))


def explain(store: Any, execution: ExecutionRecord) -> list[str]:
    """Why an execution was reused, or why it ran: which part of its key differed from the closest earlier one."""
    parts_text = execution.custom_properties.get(_PARTS)
    if execution.state is ExecutionState.CACHED and execution.fact("reused_execution") is not None:
        source = execution.fact("reused_execution")
        return [f"reused execution {source}: its declared inputs, parameters, code and environment are the same"]
    if parts_text is None:
        return ["reuse was off for this attempt; turn it on with reuse=True on the task, or the reuse setting"]
    parts = json.loads(str(parts_text))
    earlier = [
        x
        for x in store.executions(state=ExecutionState.COMPLETE, context_ids=_stage_ids(store, execution))
        if x.id < execution.id and x.custom_properties.get(_PARTS) is not None
    ]
    if not earlier:
        return ["ran: no earlier COMPLETE execution of this task was recorded with reuse on"]
    closest = max(earlier, key=lambda x: x.id)
    before = json.loads(str(closest.custom_properties[_PARTS]))
    differ = [name for name in ("inputs", "parameters", "code", "environment") if before.get(name) != parts.get(name)]
    if not differ:
        return [f"ran: execution {closest.id} has the same key, but its outputs could not be reused here"]
    lines = [f"ran: compared with execution {closest.id}, these differ: {', '.join(differ)}"]
    if "inputs" in differ:
        lines += [
            f"  input {i + 1}: {old[:8] if old else '-'} -> {new[:8] if new else '-'}"
            for i, (old, new) in enumerate(_pairs(before.get("inputs", []), parts.get("inputs", [])))
            if old != new
        ]
    return lines


def _pairs(old: Sequence[str], new: Sequence[str]) -> list[tuple[str | None, str | None]]:
    size = max(len(old), len(new))
    return [(old[i] if i < len(old) else None, new[i] if i < len(new) else None) for i in range(size)]


def _stage_ids(store: Any, execution: ExecutionRecord) -> list[int]:
    return [c.id for c in store.contexts_of_execution(execution.id)]
