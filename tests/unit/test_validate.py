"""Validation and dead-letter reasons, without Kafka."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pipeline.ingest.validate import decode
from pipeline.producers.broken import broken_records

ROOT = Path(__file__).resolve().parents[2]
KIND_DIRS = {"order": "order_event", "complaint": "complaint_event", "feedback": "feedback_event",
             "customer_profile": "customer_profile"}
MAX = 256 * 1024

EXPECTED_CODE = {
    "not_json": "not_json", "not_utf8": "not_utf8", "truncated": "not_json", "not_an_object": "not_an_object",
    "wrong_type": "wrong_type", "missing_field": "missing_field", "unknown_enum": "invalid_value",
    "oversize": "oversize", "unknown_schema_version": "unknown_schema_version", "bad_timestamp": "invalid_format",
    "unknown_field": "unknown_field", "empty": "not_json", "null_value": "not_an_object",
    "score_out_of_scale": "out_of_range",
}


def examples():
    for kind, d in KIND_DIRS.items():
        for p in sorted((ROOT / "schemas" / "examples" / d).glob("*.json")):
            yield pytest.param(kind, p.read_bytes(), id=f"{d}/{p.stem}")


@pytest.mark.parametrize("kind,raw", list(examples()))
def test_examples_are_valid(kind, raw):
    result = decode(raw, kind, MAX)
    assert result.ok, result.problems


@pytest.mark.parametrize("b", broken_records(1, MAX), ids=lambda b: b.label)
def test_each_breakage_gets_its_reason(b):
    result = decode(b.value, b.kind, MAX)
    assert not result.ok
    codes = {p.code for p in result.problems}
    assert EXPECTED_CODE[b.label.split("#")[0]] in codes, result.problems
    assert all(p.message for p in result.problems)


def test_paths_point_at_the_field():
    ev = orjson.loads((ROOT / "schemas/examples/order_event/placed.json").read_bytes())
    ev["items"][0]["qty"] = 0
    result = decode(orjson.dumps(ev), "order", MAX)
    assert [p.path for p in result.problems] == ["/items/0/qty"]
    assert result.problems[0].code == "out_of_range"


def test_schema_version_bool_is_not_one():
    ev = orjson.loads((ROOT / "schemas/examples/order_event/placed.json").read_bytes())
    ev["schema_version"] = True
    assert decode(orjson.dumps(ev), "order", MAX).problems[0].code == "unknown_schema_version"


def test_promise_before_event_is_rejected():
    ev = orjson.loads((ROOT / "schemas/examples/order_event/placed.json").read_bytes())
    ev["promised_delivery_at"] = "2000-01-01T00:00:00Z"
    assert decode(orjson.dumps(ev), "order", MAX).problems[0].code == "out_of_range"


def test_scale_must_be_ordered():
    ev = orjson.loads((ROOT / "schemas/examples/feedback_event/nps_en.json").read_bytes())
    ev["scale"] = {"min": 10, "max": 0}
    assert decode(orjson.dumps(ev), "feedback", MAX).problems[0].code == "invalid_value"


def test_decode_never_raises_on_garbage():
    for raw in (b"\x00", b"{" * 10000, b'{"schema_version": 1}', b"[]" * 3, b'"str"', b"1e999999", None):
        assert not decode(raw, "complaint", MAX).ok
