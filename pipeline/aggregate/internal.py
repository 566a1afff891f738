"""Validators of the stage-2 partials topic (issue 14): pure, typed, never raise.

Built on the helpers of :mod:`pipeline.ingest.internal` (same reason codes, same bounds):

* control records (:func:`parse_control` → :class:`Control`):
  ``{"control": "advance", "to": t, "from": p, "of": n}`` (``0 <= p < n``; ``from`` / ``of``
  default to 0 / 1 when absent), ``{"control": "tick", "now": t}``,
  ``{"control": "clock", "time": t, "from": p, "of": n}``;
* partials (:func:`parse_partial` → :class:`Partial`): see :mod:`pipeline.aggregate.partials`;
  :attr:`Partial.doc` is the checked plain dict that ``already_merged`` / ``note_merged`` /
  ``merge_partial`` take.

:func:`parse_stage2` dispatches a partials-topic record to one of the two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from ..core.bounds import MAX_TIME, MIN_TIME
from ..ingest.internal import (DIMENSION, EVENT_ID, MAX_COUNT, MAX_OFFSET, MAX_PAIN_IDS, MAX_PARTITIONS, MAX_TOPICS,
                               MAX_WINDOW_SECONDS, MAX_WINDOWS, PAIN_ID, TOPIC, WINDOW_NAME, _Bad, _esc, _int, _keys,
                               _offsets, _run, _str, _time)
from ..ingest.validate import Problem
from .dimensions import MAX_VALUE_LEN
from .partials import COUNTERS, EVIDENCE_LIMIT

WINDOW_START = re.compile(r"-?[0-9]{1,12}")  # the start of a window key "<name>:<start>"


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
    # Each check first asks the cheap question (the common, well-formed case); only a value that
    # fails it goes through the full check, which builds the JSON-pointer path and raises (or, for
    # a value the cheap question is too strict for, accepts it): the same values pass as before.
    for counter in COUNTERS:
        if counter in b and not _int_ok(b[counter], 0, MAX_COUNT):
            _int(b[counter], f"{path}/{counter}", 0, MAX_COUNT)
    pain = b.get("pain", {})
    if not isinstance(pain, dict) or len(pain) > MAX_PAIN_IDS:
        raise _Bad("wrong_type" if not isinstance(pain, dict) else "out_of_range", "bad pain counts", f"{path}/pain")
    for pid, n in pain.items():
        if not (_str_ok(pid, PAIN_ID) and _int_ok(n, 0, MAX_COUNT)):
            p = f"{path}/pain/{_esc(pid)}"
            _str(pid, p, PAIN_ID)
            _int(n, p, 0, MAX_COUNT)
    evidence = b.get("evidence", {})
    if not isinstance(evidence, dict) or len(evidence) > MAX_PAIN_IDS:
        raise _Bad("wrong_type" if not isinstance(evidence, dict) else "out_of_range", "bad evidence",
                   f"{path}/evidence")
    for pid, ids in evidence.items():
        if _str_ok(pid, PAIN_ID) and type(ids) is list and len(ids) <= EVIDENCE_LIMIT \
                and all(_str_ok(eid, EVENT_ID) for eid in ids):
            continue
        p = f"{path}/evidence/{_esc(pid)}"
        _str(pid, p, PAIN_ID)
        if not isinstance(ids, list) or len(ids) > EVIDENCE_LIMIT:
            raise _Bad("wrong_type" if not isinstance(ids, list) else "out_of_range",
                       f"evidence must be a list of at most {EVIDENCE_LIMIT} event ids", p)
        for i, eid in enumerate(ids):
            _str(eid, f"{p}/{i}", EVENT_ID)


def _int_ok(value: Any, lo: int, hi: int) -> bool:
    """What :func:`_int` accepts, for a plain ``int`` (no path built)."""
    return type(value) is int and lo <= value <= hi


def _str_ok(value: Any, pattern: re.Pattern[str]) -> bool:
    """What :func:`_str` (default length 1..128) accepts, for a plain ``str`` (no path built)."""
    return type(value) is str and 1 <= len(value) <= 128 and pattern.match(value) is not None


# The fast checks below answer "does the full check accept this?" for the common, well-formed
# record without building a JSON-pointer path or calling a helper per field.  They return True
# only for what the full check accepts; anything else goes through the full check, which raises
# the same problem as before (or accepts a value the fast check is too strict for).
_BUCKET_FIELDS = frozenset(("size", "start", *COUNTERS, "pain", "evidence"))
_PARTIAL_FIELDS = frozenset(("dimension", "value", "windows", "max_event_time", "src", "upto"))
_PARTIAL_REQUIRED = frozenset(("dimension", "value", "windows", "max_event_time"))
_MIN_START, _MAX_START = int(MIN_TIME), int(MAX_TIME)


def _bucket_ok(b: Any, start: int) -> bool:
    """``True`` only if :func:`_bucket` accepts ``b`` as the bucket of a window starting at ``start``.

    Stage 1 writes every field of a bucket, so that case reads them directly and checks them in one
    expression; a bucket without some optional field takes :func:`_sparse_bucket_ok`."""
    if type(b) is not dict or len(b) != len(_BUCKET_FIELDS) or not _BUCKET_FIELDS.issuperset(b):
        return _sparse_bucket_ok(b, start)
    size, own, pain, evidence = b["size"], b["start"], b["pain"], b["evidence"]
    events, orders, feedback, complaints, negative = (b["events"], b["orders"], b["feedback"], b["complaints"],
                                                      b["negative_feedback"])
    # the bitwise or of ints is negative if one is, and at least the largest of non-negative ones: it
    # is in 0..MAX_COUNT only if each counter is (a few valid counter sets fail it: the full check)
    if not (type(size) is type(own) is type(events) is type(orders) is type(feedback) is type(complaints)
            is type(negative) is int and own == start and 1 <= size <= MAX_WINDOW_SECONDS
            and _MIN_START <= start <= _MAX_START and not start % size
            and 0 <= events | orders | feedback | complaints | negative <= MAX_COUNT
            and type(pain) is dict and type(evidence) is dict):
        return False
    return _pains_ok(pain, evidence) if pain or evidence else True


def _pains_ok(pain: dict[Any, Any], evidence: dict[Any, Any]) -> bool:
    """``True`` only if :func:`_bucket` accepts ``pain`` and ``evidence`` (both dicts)."""
    if len(pain) > MAX_PAIN_IDS or len(evidence) > MAX_PAIN_IDS:
        return False
    for pid, n in pain.items():
        if not (type(n) is int and 0 <= n <= MAX_COUNT and (pid in _PAIN_IDS_OK or _new_pain_id_ok(pid))):
            return False
    for pid, ids in evidence.items():
        if not (type(ids) is list and len(ids) <= EVIDENCE_LIMIT and (pid in _PAIN_IDS_OK or _new_pain_id_ok(pid))
                and (not ids or _event_ids_ok(ids))):
            return False
    return True


def _sparse_bucket_ok(b: Any, start: int) -> bool:
    """:func:`_bucket_ok` for a bucket that may lack optional fields (absent counters are 0)."""
    if type(b) is not dict or not _BUCKET_FIELDS.issuperset(b):
        return False
    size, own = b.get("size"), b.get("start")
    if not (type(size) is int and 1 <= size <= MAX_WINDOW_SECONDS and type(own) is int and own == start
            and _MIN_START <= start <= _MAX_START and not start % size):
        return False
    for counter in COUNTERS:
        n = b.get(counter, 0)
        if type(n) is not int or not 0 <= n <= MAX_COUNT:
            return False
    pain, evidence = b.get("pain", {}), b.get("evidence", {})
    if type(pain) is not dict or type(evidence) is not dict \
            or len(pain) > MAX_PAIN_IDS or len(evidence) > MAX_PAIN_IDS:
        return False
    for pid, n in pain.items():
        if not (type(n) is int and 0 <= n <= MAX_COUNT and _str_ok(pid, PAIN_ID)):
            return False
    for pid, ids in evidence.items():
        if not (_str_ok(pid, PAIN_ID) and type(ids) is list and len(ids) <= EVIDENCE_LIMIT):
            return False
        for eid in ids:
            if not _str_ok(eid, EVENT_ID):
                return False
    return True


# Strings already found well-formed, per check: pain-point ids and topics recur in every partial.
# Only strings that passed the check are added; each set is cleared when full.
_PAIN_IDS_OK: set[str] = set()
_TOPICS_OK: set[str] = set()
_KNOWN_MAX = 4096


def _new_pain_id_ok(pid: Any) -> bool:
    """``_str_ok(pid, PAIN_ID)``, remembering a well-formed id in :data:`_PAIN_IDS_OK`."""
    return _remember(pid, _PAIN_IDS_OK, _str_ok(pid, PAIN_ID))


def _new_topic_ok(topic: Any) -> bool:
    """What :func:`_offsets` accepts as a topic, remembering a well-formed one in :data:`_TOPICS_OK`."""
    ok = type(topic) is str and 1 <= len(topic) <= 249 and TOPIC.match(topic) is not None
    return _remember(topic, _TOPICS_OK, ok)


def _remember(value: Any, known: set[str], ok: bool) -> bool:
    """``ok``; a well-formed ``value`` is added to ``known``."""
    if ok:
        if len(known) >= _KNOWN_MAX:
            known.clear()
        known.add(value)
    return ok


# EVENT_ID for all ids of a list at once, joined by NUL (a character no well-formed id holds): n ids
# must match exactly n components, so an id holding NUL cannot pass as two.  One component is what
# ``_str_ok(eid, EVENT_ID)`` accepts: 1..128 allowed characters, or 1..127 and a final newline (the
# ``$`` of EVENT_ID also matches before a string's final newline).
_EVENT_ID_CHARS = "[^\\x00-\\x1f\\x7f-\\x9f]"
_ONE_EVENT_ID = f"(?:{_EVENT_ID_CHARS}{{1,128}}|{_EVENT_ID_CHARS}{{1,127}}\\n)"
_EVENT_IDS = [re.compile(_ONE_EVENT_ID + f"(?:\\x00{_ONE_EVENT_ID}){{{n - 1}}}") for n in range(1, EVIDENCE_LIMIT + 1)]


def _event_ids_ok(ids: list[Any]) -> bool:
    """``all(_str_ok(eid, EVENT_ID) for eid in ids)`` for 1..EVIDENCE_LIMIT ids, with one regex."""
    try:
        joined = "\x00".join(ids)
    except TypeError:  # an id that is not a string
        return False
    return _EVENT_IDS[len(ids) - 1].fullmatch(joined) is not None


def _upto_ok(value: Any) -> bool:
    """``True`` only if :func:`_offsets` (lowest offset -1) accepts ``value`` unchanged."""
    if type(value) is not dict or len(value) > MAX_TOPICS:
        return False
    for topic, off in value.items():
        if not (type(off) is int and -1 <= off <= MAX_OFFSET and (topic in _TOPICS_OK or _new_topic_ok(topic))):
            return False
    return True


_WINDOW_STARTS: dict[str, int] = {}  # window key -> its start, for keys already found well-formed
_WINDOW_STARTS_MAX = 4096  # cleared when full (the keys recur: a few windows per size are live)


def _window_start(wkey: str) -> int:
    """The start of a well-formed window key ``"<name>:<start>"``; raises :class:`_Bad` otherwise."""
    start = _WINDOW_STARTS.get(wkey)
    if start is not None:
        return start
    name, sep, digits = wkey.rpartition(":")
    if not sep or not WINDOW_NAME.match(name) or not WINDOW_START.fullmatch(digits):
        raise _Bad("invalid_format", f"window key {wkey[:64]!r} is not <name>:<start>", f"/windows/{_esc(wkey)}")
    if len(_WINDOW_STARTS) >= _WINDOW_STARTS_MAX:
        _WINDOW_STARTS.clear()
    start = _WINDOW_STARTS[wkey] = int(digits)
    return start


def _partial(doc: dict[str, Any]) -> Partial:
    if "control" in doc:
        raise _Bad("invalid_value", "a control record, not a partial", "/control")
    if not (_PARTIAL_FIELDS.issuperset(doc) and _PARTIAL_REQUIRED <= doc.keys()):
        _keys(doc, ("dimension", "value", "windows", "max_event_time"), ("src", "upto"))
    dimension = _str(doc["dimension"], "/dimension", DIMENSION, 32)
    value = _str(doc["value"], "/value", None, MAX_VALUE_LEN)
    max_event_time = _time(doc["max_event_time"], "/max_event_time")
    src = None if doc.get("src") is None else _int(doc["src"], "/src", 0, MAX_PARTITIONS - 1)
    if "upto" not in doc:
        upto: dict[str, int] = {}
    else:
        upto = dict(doc["upto"]) if _upto_ok(doc["upto"]) else _offsets(doc["upto"], "/upto", -1)
    windows = doc["windows"]
    if not isinstance(windows, dict):
        raise _Bad("wrong_type", "windows must be an object", "/windows")
    if len(windows) > MAX_WINDOWS:
        raise _Bad("out_of_range", f"{len(windows)} windows, limit {MAX_WINDOWS}", "/windows")
    for wkey, bucket in windows.items():
        start = _window_start(wkey)
        if not _bucket_ok(bucket, start):
            _bucket(bucket, f"/windows/{_esc(wkey)}", wkey.rpartition(":")[0], start)
    return Partial(dimension, value, max_event_time, src, upto, doc)


def parse_partial(raw: bytes | None) -> Partial | Problem:
    """A stage-1 partial record value → :class:`Partial`, or the :class:`Problem` refusing it."""
    return _run(_partial, raw)


def parse_stage2(raw: bytes | None) -> Control | Partial | Problem:
    """A record of the stage-2 partials topic: a control record if it has ``"control"``, else a partial."""
    return _run(_dispatch, raw)


def _dispatch(doc: dict[str, Any]) -> Control | Partial:
    return _control(doc) if "control" in doc else _partial(doc)


__all__ = ["Control", "Partial", "Problem", "parse_control", "parse_partial", "parse_stage2"]
