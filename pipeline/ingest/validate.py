"""Decode and validate one raw record.

:func:`decode` never raises: it returns a :class:`Decoded` holding either the
parsed event or the list of :class:`Problem` reasons that send the record to
the dead-letter topic.  Checks, in order: size, UTF-8, JSON, top-level object,
``schema_version`` known for the kind, the JSON Schema, then semantic rules a
schema cannot express (score within its scale, promised date not before the
event, every timestamp within years 1970..2100 once its offset is applied).

Bounds (issue 14): numbers are finite and within the schemas' ``maximum``s (a
JSON number too large for a double, e.g. ``1e309``, is ``out_of_range``, not
``not_json``); a timestamp outside years 1970..2100 is ``out_of_range``; an id
with a control character is ``invalid_format``.  :func:`validate_event` runs the
same checks on an already parsed object (the re-key topic).

Bounds relative to the wall clock (issue 15), when the caller passes
:class:`~.bounds.TimeLimits` and ``now``: an ``occurred_at`` before
``min_event_year`` or more than ``max_future_seconds`` ahead of ``now``, a
``promised_*`` before ``min_event_year`` or more than ``max_promise_days`` after
the event's ``occurred_at``, and a ``signup_at`` more than ``max_future_seconds``
ahead of ``now`` are ``out_of_range``.  Such an event is dead-lettered, so it
never moves a clock or a watermark.  The check stays pure: ``now`` is a
parameter, never read here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from . import schemas
from ..core.bounds import MAX_TIME, MAX_YEAR, MIN_TIME, MIN_YEAR, TimeLimits, is_finite_number, time_in_range
from .normalise import TIMESTAMP_FIELDS
from ..core.timeparse import parse_timestamp

MAX_PROBLEMS = 20
INPUT_KINDS = ("order", "complaint", "feedback", "customer_profile")

# JSON Schema keyword → stable dead-letter reason code.
KEYWORD_CODES = {
    "required": "missing_field",
    "dependentRequired": "missing_field",
    "type": "wrong_type",
    "enum": "invalid_value",
    "const": "invalid_value",
    "format": "invalid_format",
    "pattern": "invalid_format",
    "additionalProperties": "unknown_field",
    "unevaluatedProperties": "unknown_field",
    "minimum": "out_of_range",
    "maximum": "out_of_range",
    "exclusiveMinimum": "out_of_range",
    "exclusiveMaximum": "out_of_range",
    "minLength": "out_of_range",
    "maxLength": "out_of_range",
    "minItems": "out_of_range",
    "maxItems": "out_of_range",
}


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    path: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "path": self.path}


@dataclass
class Decoded:
    kind: str
    event: dict[str, Any] | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.event is not None


def _pointer(parts: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _is_year_bound(schema_path: list[Any]) -> bool:
    """Whether a ``pattern`` error comes from the timestamp's year range (``$defs/timestamp/allOf``)."""
    return "timestamp" in schema_path and "allOf" in schema_path


def _schema_problems(validator: Any, event: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    if validator.is_valid(event):  # the common case: no error objects built
        return out
    for err in validator.iter_errors(event):
        path = list(err.schema_path)
        keyword = str(path[-1]) if path else ""
        if keyword == "pattern" and _is_year_bound(path):
            out.append(Problem("out_of_range", f"timestamp outside years {MIN_YEAR}..{MAX_YEAR}",
                               _pointer(err.instance_path)))
        else:
            out.append(
                Problem(KEYWORD_CODES.get(keyword, "schema_violation"), err.message[:500], _pointer(err.instance_path))
            )
        if len(out) >= MAX_PROBLEMS:
            break
    return out


def _non_finite(value: Any, path: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    """Path of the first NaN / ±infinity in ``value``, or ``None``.

    orjson already refuses them when parsing; this guards objects that reach
    :func:`validate_event` by another way.
    """
    if isinstance(value, float):
        return None if is_finite_number(value) else path
    if isinstance(value, dict):
        for k, v in value.items():
            found = _non_finite(v, (*path, k))
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _non_finite(v, (*path, i))
            if found is not None:
                return found
    return None


def _relative_problem(name: str, t: float, limits: TimeLimits, now: float | None) -> Problem | None:
    """The ``out_of_range`` problem of one in-range time against ``limits`` and the wall clock, or ``None``.

    Promises are checked against the event's own ``occurred_at`` by :func:`_promise_problems`.
    """
    if name != "signup_at" and t < limits.min_time:
        return Problem("out_of_range", f"{name} before the year {limits.min_event_year} (UTC)", f"/{name}")
    if name in ("occurred_at", "signup_at") and now is not None and t > limits.latest(now):
        return Problem("out_of_range",
                       f"{name} more than {limits.max_future_seconds:g} s ahead of the wall clock", f"/{name}")
    return None


def _range_problem(name: str, t: float, limits: TimeLimits | None, now: float | None) -> Problem | None:
    """The problem of the time ``t`` of field ``name``: outside years 1970..2100 (UTC), else out of ``limits``."""
    if not time_in_range(t):
        return Problem("out_of_range", f"{name} outside years {MIN_YEAR}..{MAX_YEAR} (UTC)", f"/{name}")
    return None if limits is None else _relative_problem(name, t, limits, now)


def _promise_problems(times: dict[str, float], limits: TimeLimits, now: float | None) -> list[Problem]:
    """Promises more than ``max_promise_days`` after the event (or the wall clock when it has no ``occurred_at``)."""
    base = times.get("occurred_at", now)
    if base is None:
        return []
    return [
        Problem("out_of_range", f"{name} more than {limits.max_promise_days:g} days after occurred_at", f"/{name}")
        for name, t in times.items()
        if name.startswith("promised_") and t > base + limits.max_promise_seconds
    ]


def _time_problems(
    event: dict[str, Any], limits: TimeLimits | None = None, now: float | None = None
) -> tuple[list[Problem], dict[str, float]]:
    """Every timestamp field parsed; out of years 1970..2100 (UTC), out of ``limits`` or unparseable is a problem."""
    out: list[Problem] = []
    times: dict[str, float] = {}
    # a time in [lo, hi] and before MAX_TIME has no problem of any field (the common case, no checks to call)
    lo = MIN_TIME if limits is None else limits.min_time
    hi = math.inf if limits is None or now is None else limits.latest(now)
    for name in TIMESTAMP_FIELDS:
        value = event.get(name)
        if not isinstance(value, str):
            continue
        try:
            t = parse_timestamp(value)
        except (ValueError, OverflowError, OSError) as exc:
            out.append(Problem("invalid_format", f"{name} is not a valid timestamp: {exc}"[:300], f"/{name}"))
            continue
        if lo <= t < MAX_TIME and t <= hi:
            times[name] = t
            continue
        problem = _range_problem(name, t, limits, now)
        if problem is not None:
            out.append(problem)
            continue
        times[name] = t
    if limits is not None:
        out.extend(_promise_problems(times, limits, now))
    return out, times


def _semantic_problems(
    kind: str, event: dict[str, Any], limits: TimeLimits | None = None, now: float | None = None
) -> list[Problem]:
    out, times = _time_problems(event, limits, now)
    if kind == "feedback":
        lo, hi = event["scale"]["min"], event["scale"]["max"]
        if not lo < hi:
            out.append(Problem("invalid_value", f"scale min {lo} must be below max {hi}", "/scale"))
        else:
            for name in ("score", "expectation_score"):
                value = event.get(name)
                if value is not None and not lo <= value <= hi:
                    out.append(Problem("out_of_range", f"{name} {value} outside scale [{lo}, {hi}]", f"/{name}"))
    if kind == "order" and "promised_delivery_at" in times and "occurred_at" in times:
        if times["promised_delivery_at"] < times["occurred_at"]:
            out.append(
                Problem("out_of_range", "promised_delivery_at is before occurred_at", "/promised_delivery_at")
            )
    return out


def decode(
    raw: bytes | None, kind: str, max_bytes: int, limits: TimeLimits | None = None, now: float | None = None
) -> Decoded:
    """Parse and validate ``raw`` as an event of ``kind``; never raises.

    With ``limits``, times are also checked against them and the wall clock ``now`` (module docstring).
    """
    result = Decoded(kind)
    if raw is None:
        result.problems.append(Problem("not_json", "record has no value (tombstone or null)"))
        return result
    if len(raw) > max_bytes:
        result.problems.append(Problem("oversize", f"record is {len(raw)} bytes, limit {max_bytes}"))
        return result
    if type(raw) is bytes:
        # orjson checks the UTF-8 itself and parses the same bytes a decoded str would give it; when it
        # refuses them, the steps below tell why, with the messages of a decode first
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
        else:
            return validate_event(event, kind, result, limits, now, finite=True)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        result.problems.append(Problem("not_utf8", f"invalid UTF-8 at byte {exc.start}"))
        return result
    try:
        event = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "infinity" in str(exc):  # a number beyond the double range, e.g. 1e309: valid JSON, no finite value
            result.problems.append(Problem("out_of_range", f"number too large: {str(exc)[:200]}"))
        else:
            result.problems.append(Problem("not_json", f"invalid JSON: {str(exc)[:200]}"))
        return result
    return validate_event(event, kind, result, limits, now, finite=True)


def validate_event(
    event: Any, kind: str, result: Decoded | None = None, limits: TimeLimits | None = None, now: float | None = None,
    finite: bool = False,
) -> Decoded:
    """The checks of :func:`decode` after JSON parsing, on an already parsed ``event``; never raises.
    ``finite``: every number in ``event`` is known to be finite (parsed by orjson, which refuses
    NaN, infinities and numbers beyond the double range), so the walk over the document is skipped."""
    result = Decoded(kind) if result is None else result
    try:
        return _validate(event, kind, result, limits, now, finite)
    except Exception as exc:  # a validator bug must dead-letter the record, not stall the partition
        result.event = None
        result.problems.append(Problem("invalid_value", f"validation failed: {exc!r}"[:300]))
        return result


def _validate(event: Any, kind: str, result: Decoded, limits: TimeLimits | None, now: float | None,
              finite: bool = False) -> Decoded:
    if kind not in INPUT_KINDS:
        result.problems.append(Problem("invalid_value", f"unknown event kind {kind!r}"[:200]))
        return result
    if not isinstance(event, dict):
        result.problems.append(Problem("not_an_object", f"top level is {type(event).__name__}, not an object"))
        return result
    if "schema_version" not in event:
        result.problems.append(Problem("missing_field", '"schema_version" is a required property'))
        return result
    validator = schemas.validator(kind, event["schema_version"])
    if validator is None:
        result.problems.append(
            Problem(
                "unknown_schema_version",
                f"schema_version {event['schema_version']!r} not supported for {kind}; "
                f"supported: {list(schemas.supported_versions(kind))}",
                "/schema_version",
            )
        )
        return result
    bad = None if finite else _non_finite(event)
    if bad is not None:
        result.problems.append(Problem("out_of_range", "number is not finite (NaN or infinity)", _pointer(bad)))
        return result
    problems = _schema_problems(validator, event)
    if not problems:
        problems = _semantic_problems(kind, event, limits, now)
    if problems:
        result.problems.extend(problems)
        return result
    result.event = event
    return result
