"""Validators of the internal topics (issue 14): pure, typed, never raise.

Internal topics are written by the pipeline itself, but anything that can write
to Kafka can write to them, so their records are checked like inputs: bytes →
either a frozen dataclass or a :class:`~pipeline.ingest.validate.Problem` with
the same reason codes as input events (``not_json``, ``not_an_object``,
``unknown_field``, ``missing_field``, ``wrong_type``, ``invalid_value``,
``out_of_range``, ``oversize``).  Times must be finite epoch seconds in years
1970..2100; unknown keys are refused.

``pipeline.ticks`` (:func:`parse_tick` → :class:`Tick`)
    ``{"now": t}`` — a wall-clock tick;
    ``{"advance_to": t, "after": {topic: offset}}`` — move the event-time clock
    (``after`` optional, offsets ≥ 0).
Stage-2 partials topic: :mod:`pipeline.aggregate.internal` (with these helpers)
    control records (:func:`parse_control` → :class:`Control`)
    ``{"control": "advance", "to": t, "from": p, "of": n}`` (``0 <= p < n``;
    ``from`` / ``of`` default to 0 / 1 when absent, as before);
    ``{"control": "tick", "now": t}``.
Stage-2 partials topic, partials (:func:`parse_partial` → :class:`Partial`)
    see :mod:`pipeline.aggregate.partials`; :attr:`Partial.doc` is the checked
    plain dict that ``already_merged`` / ``note_merged`` / ``merge_partial`` take.
:func:`parse_stage2` dispatches a partials-topic record to one of the two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import orjson

from ..core.bounds import MAX_TIME, MAX_YEAR, MIN_TIME, MIN_YEAR, is_finite_number
from .validate import Problem

MAX_INTERNAL_BYTES = 4 * 1024 * 1024  # a partial of a large batch stays far below
MAX_PARTITIONS = 10_000  # "from" / "of" / "src" / partition counts
MAX_TOPICS = 64  # entries of "after" / "upto"
MAX_OFFSET = 2**63 - 1
MAX_WINDOWS = 10_000  # windows in one partial
MAX_WINDOW_SECONDS = 400 * 86400
MAX_COUNT = 10**9  # one counter of one bucket of one partial
MAX_PAIN_IDS = 256
TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
WINDOW_NAME = re.compile(r"^[A-Za-z0-9_]{1,32}$")
DIMENSION = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
PAIN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
EVENT_ID = re.compile(r"^[^\x00-\x1f\x7f-\x9f]{1,128}$")


@dataclass(frozen=True)
class Tick:
    """A ``pipeline.ticks`` record: exactly one of ``now`` / ``advance_to`` is set."""

    now: float | None = None  # {"now": t}
    advance_to: float | None = None  # {"advance_to": t, "after": {...}}
    after: Mapping[str, int] = field(default_factory=dict)  # topic -> offset that must be processed first

    @property
    def is_advance(self) -> bool:
        return self.advance_to is not None


class _Bad(Exception):
    def __init__(self, code: str, message: str, path: str = "") -> None:
        super().__init__(message)
        self.problem = Problem(code, message[:300], path)


# ----------------------------------------------------------------------------- helpers


def _load(raw: Any) -> dict[str, Any]:
    if raw is None:
        raise _Bad("not_json", "record has no value (tombstone or null)")
    if not isinstance(raw, (bytes, bytearray, memoryview, str)):
        raise _Bad("wrong_type", f"record value is {type(raw).__name__}, not bytes")
    if len(raw) > MAX_INTERNAL_BYTES:
        raise _Bad("oversize", f"record is {len(raw)} bytes, limit {MAX_INTERNAL_BYTES}")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "infinity" in str(exc):
            raise _Bad("out_of_range", f"number too large: {str(exc)[:200]}") from None
        code = "not_utf8" if "utf-8" in str(exc).lower() else "not_json"
        raise _Bad(code, f"invalid JSON: {str(exc)[:200]}") from None
    if not isinstance(doc, dict):
        raise _Bad("not_an_object", f"top level is {type(doc).__name__}, not an object")
    return doc


def _keys(doc: Mapping[str, Any], required: tuple[str, ...], optional: tuple[str, ...], path: str = "") -> None:
    for key in doc:
        if key not in required and key not in optional:
            raise _Bad("unknown_field", f"unknown field {str(key)[:64]!r}", f"{path}/{_esc(str(key))}")
    for key in required:
        if key not in doc:
            raise _Bad("missing_field", f"{key!r} is a required property", path)


def _esc(token: str) -> str:
    return token[:64].replace("~", "~0").replace("/", "~1")


def _time(value: Any, path: str) -> float:
    if not is_finite_number(value):
        code = "out_of_range" if isinstance(value, float) else "wrong_type"
        raise _Bad(code, "time must be a finite number of epoch seconds", path)
    if not MIN_TIME <= value < MAX_TIME:
        raise _Bad("out_of_range", f"time {value!r} outside years {MIN_YEAR}..{MAX_YEAR}", path)
    return float(value)


def _int(value: Any, path: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad("wrong_type", "expected an integer", path)
    if not lo <= value <= hi:
        raise _Bad("out_of_range", f"{value} outside {lo}..{hi}", path)
    return value


def _str(value: Any, path: str, pattern: re.Pattern[str] | None = None, max_len: int = 128) -> str:
    if not isinstance(value, str):
        raise _Bad("wrong_type", "expected a string", path)
    if not 1 <= len(value) <= max_len:
        raise _Bad("out_of_range", f"string length {len(value)} outside 1..{max_len}", path)
    if pattern is not None and not pattern.match(value):
        raise _Bad("invalid_format", f"{value[:64]!r} does not match {pattern.pattern}", path)
    return value


def _offsets(value: Any, path: str, lo: int) -> dict[str, int]:
    if not isinstance(value, dict):
        raise _Bad("wrong_type", "expected an object of topic -> offset", path)
    if len(value) > MAX_TOPICS:
        raise _Bad("out_of_range", f"{len(value)} topics, limit {MAX_TOPICS}", path)
    out: dict[str, int] = {}
    for topic, off in value.items():
        p = f"{path}/{_esc(topic)}"
        out[_str(topic, p, TOPIC, 249)] = _int(off, p, lo, MAX_OFFSET)
    return out


def _run(fn: Any, raw: Any) -> Any:
    try:
        return fn(_load(raw))
    except _Bad as bad:
        return bad.problem
    except Exception as exc:  # a validator bug must not stop an agent: refuse the record
        return Problem("invalid_value", f"validation failed: {type(exc).__name__}")


# ----------------------------------------------------------------------------- ticks


def _tick(doc: dict[str, Any]) -> Tick:
    if "advance_to" in doc:
        _keys(doc, ("advance_to",), ("after",))
        after = _offsets(doc.get("after", {}), "/after", 0)
        return Tick(advance_to=_time(doc["advance_to"], "/advance_to"), after=after)
    if "now" in doc:
        _keys(doc, ("now",), ())
        return Tick(now=_time(doc["now"], "/now"))
    _keys(doc, (), ())  # reports the first unknown key, if any
    raise _Bad("missing_field", "a tick needs 'now' or 'advance_to'")


def parse_tick(raw: bytes | None) -> Tick | Problem:
    """A ``pipeline.ticks`` record value → :class:`Tick`, or the :class:`Problem` refusing it."""
    return _run(_tick, raw)



__all__ = ["Problem", "Tick", "parse_tick"]
