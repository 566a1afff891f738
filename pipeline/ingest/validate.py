"""Decode and validate one raw record.

:func:`decode` never raises: it returns a :class:`Decoded` holding either the
parsed event or the list of :class:`Problem` reasons that send the record to
the dead-letter topic.  Checks, in order: size, UTF-8, JSON, top-level object,
``schema_version`` known for the kind, the JSON Schema, then semantic rules a
schema cannot express (score within its scale, promised date not before the
event).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from . import schemas
from .timeparse import parse_timestamp

MAX_PROBLEMS = 20

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


def _schema_problems(validator: Any, event: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    for err in validator.iter_errors(event):
        keyword = str(list(err.schema_path)[-1]) if list(err.schema_path) else ""
        out.append(
            Problem(KEYWORD_CODES.get(keyword, "schema_violation"), err.message[:500], _pointer(err.instance_path))
        )
        if len(out) >= MAX_PROBLEMS:
            break
    return out


def _semantic_problems(kind: str, event: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    if kind == "feedback":
        lo, hi = event["scale"]["min"], event["scale"]["max"]
        if not lo < hi:
            out.append(Problem("invalid_value", f"scale min {lo} must be below max {hi}", "/scale"))
        else:
            for name in ("score", "expectation_score"):
                value = event.get(name)
                if value is not None and not lo <= value <= hi:
                    out.append(Problem("out_of_range", f"{name} {value} outside scale [{lo}, {hi}]", f"/{name}"))
    if kind == "order" and "promised_delivery_at" in event:
        if parse_timestamp(event["promised_delivery_at"]) < parse_timestamp(event["occurred_at"]):
            out.append(
                Problem("out_of_range", "promised_delivery_at is before occurred_at", "/promised_delivery_at")
            )
    return out


def decode(raw: bytes | None, kind: str, max_bytes: int) -> Decoded:
    """Parse and validate ``raw`` as an event of ``kind``; never raises."""
    result = Decoded(kind)
    if raw is None:
        result.problems.append(Problem("not_json", "record has no value (tombstone or null)"))
        return result
    if len(raw) > max_bytes:
        result.problems.append(Problem("oversize", f"record is {len(raw)} bytes, limit {max_bytes}"))
        return result
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        result.problems.append(Problem("not_utf8", f"invalid UTF-8 at byte {exc.start}"))
        return result
    try:
        event = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        result.problems.append(Problem("not_json", f"invalid JSON: {str(exc)[:200]}"))
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
    problems = _schema_problems(validator, event)
    if not problems:
        problems = _semantic_problems(kind, event)
    if problems:
        result.problems.extend(problems)
        return result
    result.event = event
    return result
