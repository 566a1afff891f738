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
Stage-2 partials topic, control records (:func:`parse_control` → :class:`Control`)
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
from typing import Any, Literal, Mapping

import orjson

from ..aggregate.dimensions import MAX_VALUE_LEN
from ..aggregate.partials import COUNTERS, EVIDENCE_LIMIT
from .bounds import MAX_TIME, MAX_YEAR, MIN_TIME, MIN_YEAR, is_finite_number
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


@dataclass(frozen=True)
class Control:
    """A control record of the stage-2 partials topic."""

    kind: Literal["advance", "tick", "clock"]
    time: float  # "to" of an advance, "now" of a tick, "time" of a stage-1 clock
    sender: int = 0  # "from": the stage-1 partition that forwarded the advance / announced its clock
    of: int = 1  # "of": how many stage-1 partitions there are


@dataclass(frozen=True)
class Partial:
    """A stage-1 partial (checked); ``doc`` is the plain dict for the aggregate functions."""

    dimension: str
    value: str
    max_event_time: float
    src: int | None
    upto: Mapping[str, int]
    doc: dict[str, Any]


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


# --------------------------------------------------------------------- stage-2 control


def _control(doc: dict[str, Any]) -> Control:
    kind = doc.get("control")
    if kind == "advance":
        _keys(doc, ("control", "to"), ("from", "of"))
        of = _int(doc.get("of", 1), "/of", 1, MAX_PARTITIONS)
        sender = _int(doc.get("from", 0), "/from", 0, MAX_PARTITIONS - 1)
        if sender >= of:
            raise _Bad("out_of_range", f"from {sender} is not below of {of}", "/from")
        return Control("advance", _time(doc["to"], "/to"), sender, of)
    if kind == "tick":
        _keys(doc, ("control", "now"), ())
        return Control("tick", _time(doc["now"], "/now"))
    if kind == "clock":  # a stage-1 partition's clock (moved on while its inputs were idle)
        _keys(doc, ("control", "time", "from", "of"), ())
        of = _int(doc["of"], "/of", 1, MAX_PARTITIONS)
        sender = _int(doc["from"], "/from", 0, MAX_PARTITIONS - 1)
        if sender >= of:
            raise _Bad("out_of_range", f"from {sender} is not below of {of}", "/from")
        return Control("clock", _time(doc["time"], "/time"), sender, of)
    if "control" not in doc:
        raise _Bad("missing_field", "'control' is a required property")
    if not isinstance(kind, str):
        raise _Bad("wrong_type", "control must be a string", "/control")
    raise _Bad("invalid_value", f"unknown control {kind[:32]!r}", "/control")


def parse_control(raw: bytes | None) -> Control | Problem:
    """A stage-2 control record value → :class:`Control`, or the :class:`Problem` refusing it."""
    return _run(_control, raw)


# --------------------------------------------------------------------- stage-2 partials


def _bucket(b: Any, path: str, name: str, start: int) -> None:
    if not isinstance(b, dict):
        raise _Bad("wrong_type", "a window bucket must be an object", path)
    _keys(b, ("size", "start"), (*COUNTERS, "pain", "evidence"), path)
    size = _int(b["size"], f"{path}/size", 1, MAX_WINDOW_SECONDS)
    if _int(b["start"], f"{path}/start", int(MIN_TIME), int(MAX_TIME)) != start:
        raise _Bad("invalid_value", f"start {b['start']} differs from the window key {name}:{start}", f"{path}/start")
    if start % size:
        raise _Bad("invalid_value", f"start {start} is not a multiple of size {size}", f"{path}/start")
    for counter in COUNTERS:
        if counter in b:
            _int(b[counter], f"{path}/{counter}", 0, MAX_COUNT)
    pain = b.get("pain", {})
    if not isinstance(pain, dict) or len(pain) > MAX_PAIN_IDS:
        raise _Bad("wrong_type" if not isinstance(pain, dict) else "out_of_range", "bad pain counts", f"{path}/pain")
    for pid, n in pain.items():
        p = f"{path}/pain/{_esc(pid)}"
        _str(pid, p, PAIN_ID)
        _int(n, p, 0, MAX_COUNT)
    evidence = b.get("evidence", {})
    if not isinstance(evidence, dict) or len(evidence) > MAX_PAIN_IDS:
        raise _Bad("wrong_type" if not isinstance(evidence, dict) else "out_of_range", "bad evidence",
                   f"{path}/evidence")
    for pid, ids in evidence.items():
        p = f"{path}/evidence/{_esc(pid)}"
        _str(pid, p, PAIN_ID)
        if not isinstance(ids, list) or len(ids) > EVIDENCE_LIMIT:
            raise _Bad("wrong_type" if not isinstance(ids, list) else "out_of_range",
                       f"evidence must be a list of at most {EVIDENCE_LIMIT} event ids", p)
        for i, eid in enumerate(ids):
            _str(eid, f"{p}/{i}", EVENT_ID)


def _partial(doc: dict[str, Any]) -> Partial:
    if "control" in doc:
        raise _Bad("invalid_value", "a control record, not a partial", "/control")
    _keys(doc, ("dimension", "value", "windows", "max_event_time"), ("src", "upto"))
    dimension = _str(doc["dimension"], "/dimension", DIMENSION, 32)
    value = _str(doc["value"], "/value", None, MAX_VALUE_LEN)
    max_event_time = _time(doc["max_event_time"], "/max_event_time")
    src = None if doc.get("src") is None else _int(doc["src"], "/src", 0, MAX_PARTITIONS - 1)
    upto = _offsets(doc["upto"], "/upto", -1) if "upto" in doc else {}
    windows = doc["windows"]
    if not isinstance(windows, dict):
        raise _Bad("wrong_type", "windows must be an object", "/windows")
    if len(windows) > MAX_WINDOWS:
        raise _Bad("out_of_range", f"{len(windows)} windows, limit {MAX_WINDOWS}", "/windows")
    for wkey, bucket in windows.items():
        path = f"/windows/{_esc(wkey)}"
        name, sep, start = wkey.rpartition(":")
        if not sep or not WINDOW_NAME.match(name) or not re.fullmatch(r"-?[0-9]{1,12}", start):
            raise _Bad("invalid_format", f"window key {wkey[:64]!r} is not <name>:<start>", path)
        _bucket(bucket, path, name, int(start))
    return Partial(dimension, value, max_event_time, src, upto, doc)


def parse_partial(raw: bytes | None) -> Partial | Problem:
    """A stage-1 partial record value → :class:`Partial`, or the :class:`Problem` refusing it."""
    return _run(_partial, raw)


def parse_stage2(raw: bytes | None) -> Control | Partial | Problem:
    """A record of the stage-2 partials topic: a control record if it has ``"control"``, else a partial."""

    def dispatch(doc: dict[str, Any]) -> Control | Partial:
        return _control(doc) if "control" in doc else _partial(doc)

    return _run(dispatch, raw)


__all__ = ["Control", "Partial", "Problem", "Tick", "parse_control", "parse_partial", "parse_stage2", "parse_tick"]
