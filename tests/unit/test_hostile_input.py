"""Hostile input, property-based (hypothesis): validation and classification never raise.

* :func:`pipeline.ingest.validate.decode` on arbitrary bytes, arbitrary JSON
  values, arbitrary unicode and mutated valid events: never raises; a record is
  either a valid event (an object that passes the schema) or carries at least
  one known reason code — and its dead letter is schema-valid.
* :meth:`Processor.process` on arbitrary bytes: one dead letter or a normal
  outcome, never an exception.
* :func:`pipeline.classify.classify` on arbitrary unicode (any script, control
  characters, emoji, mixed Korean/English, any scores on any scale): never
  raises; the result matches the enriched-event schema's ``classification``
  and every evidence offset points at its text.

Bounded example counts, no deadline (the machine is shared).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import jsonschema_rs
import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.classify import classify
from pipeline.config import Settings
from pipeline.ingest.schemas import load_schema
from pipeline.ingest.validate import decode
from pipeline.outputs.deadletter import dead_letter
from pipeline.process import Processor, Record

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("order", "complaint", "feedback", "customer_profile")
REASON_CODES = {
    "not_utf8", "not_json", "not_an_object", "oversize", "unknown_schema_version", "missing_field",
    "wrong_type", "invalid_value", "invalid_format", "unknown_field", "out_of_range", "schema_violation",
}
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOWER = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies --------------------------------------------------------------------------------

json_scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=25,
)

# Text likely to reach the analysers: real aspect words, negations, scripts and junk mixed.
WORDS = [
    "배송", "늦어요", "너무", "안", "좋아요", "환불", "가격", "비싸요", "상담원", "불친절", "못", "없다",
    "delivery", "late", "not", "cheap", "price", "great", "refund", "broken", "rude", "agent", "never",
    "entrega", "atrasada", "produto", "não", "ruim", "preço", "!!!", "...", "?", "😡", "👍", "\n", "\t",
    "\u200b", "\u202e", "\x00", "ㅋㅋㅋ", "ㅠㅠ", "010-1234-5678", "a@b.co", "4111 1111 1111 1111",
]
mixed_text = st.lists(st.sampled_from(WORDS) | st.text(max_size=8), max_size=30).map(" ".join)
any_text = st.text(max_size=300) | mixed_text | st.text(
    alphabet=st.characters(codec="utf-8"), max_size=200)


@lru_cache(maxsize=1)
def _dl_validator():
    return jsonschema_rs.validator_for(load_schema("dead_letter"), validate_formats=True)


@lru_cache(maxsize=1)
def _classification_validator():
    schema = load_schema("enriched_event")
    sub = dict(schema["properties"]["classification"])
    sub["$defs"] = schema.get("$defs", {})
    return jsonschema_rs.validator_for(sub, validate_formats=True)


@lru_cache(maxsize=1)
def _processor() -> Processor:
    return Processor(Settings(), env={})


@lru_cache(maxsize=None)
def _examples(kind: str) -> tuple[dict, ...]:
    folder = {"order": "order_event", "complaint": "complaint_event", "feedback": "feedback_event",
              "customer_profile": "customer_profile"}[kind]
    return tuple(json.loads(p.read_text()) for p in sorted((ROOT / "schemas" / "examples" / folder).glob("*.json")))


def _check_decoded(raw: bytes | None, kind: str, max_bytes: int = 256 * 1024):
    d = decode(raw, kind, max_bytes)  # must not raise
    if d.ok:
        assert isinstance(d.event, dict) and not d.problems
        assert raw is not None and len(raw) <= max_bytes
    else:
        assert d.event is None or d.problems
        assert d.problems, "an invalid record needs at least one reason"
        for p in d.problems:
            assert p.code in REASON_CODES, p
            assert isinstance(p.message, str) and isinstance(p.path, str)
        doc = dead_letter(topic="events.x", partition=0, offset=7, key=None, timestamp_ms=None, raw=raw,
                          problems=d.problems, expected_kind=kind, now=1.7e9)
        _dl_validator().validate(orjson.loads(orjson.dumps(doc)))
    return d


# -- validation --------------------------------------------------------------------------------

@FAST
@given(raw=st.binary(max_size=2000), kind=st.sampled_from(KINDS))
def test_decode_arbitrary_bytes(raw, kind):
    d = _check_decoded(raw, kind)
    assert not d.ok  # random bytes are never a valid event


@FAST
@given(raw=st.binary(max_size=600), kind=st.sampled_from(KINDS), max_bytes=st.integers(0, 700))
def test_decode_any_size_limit(raw, kind, max_bytes):
    d = _check_decoded(raw, kind, max_bytes)
    if len(raw) > max_bytes:
        assert [p.code for p in d.problems] == ["oversize"]


@FAST
@given(value=json_values, kind=st.sampled_from(KINDS))
def test_decode_arbitrary_json(value, kind):
    d = _check_decoded(orjson.dumps(value), kind)
    if not isinstance(value, dict):
        assert [p.code for p in d.problems] == ["not_an_object"]


@FAST
@given(text=st.text(max_size=300), kind=st.sampled_from(KINDS))
def test_decode_arbitrary_unicode(text, kind):
    _check_decoded(text.encode("utf-8"), kind)
    # Lone surrogates and other invalid UTF-8.
    _check_decoded(text.encode("utf-16-le"), kind)


@FAST
@given(data=st.data(), kind=st.sampled_from(KINDS))
def test_decode_mutated_valid_events(data, kind):
    event = dict(data.draw(st.sampled_from(_examples(kind))))
    field_names = sorted(event)
    action = data.draw(st.sampled_from(["replace", "delete", "add", "nest"]))
    name = data.draw(st.sampled_from(field_names))
    if action == "replace":
        event[name] = data.draw(json_values)
    elif action == "delete":
        del event[name]
    elif action == "add":
        event[data.draw(st.text(max_size=20))] = data.draw(json_values)
    else:
        event[name] = {"x": event[name], "y": [event[name]] * 3}
    _check_decoded(orjson.dumps(event), kind)


def test_decode_examples_are_valid():
    for kind in KINDS:
        for ev in _examples(kind):
            assert decode(orjson.dumps(ev), kind, 256 * 1024).ok


def test_decode_pathological_json_does_not_raise():
    deep = b"[" * 100_000 + b"]" * 100_000
    for raw in (deep, b'{"a":' * 5000 + b"1" + b"}" * 5000, b"1e999999", b'"\\ud800"', b"\xef\xbb\xbf{}",
                b'{"schema_version": true}', b'{"schema_version": 1.0}', b'{"schema_version": 18446744073709551616}',
                b"NaN", b"Infinity", b'{"a":1,"a":2}', b"\x00" * 50, None, b""):
        for kind in KINDS:
            _check_decoded(raw, kind, 1024 * 1024)


@SLOWER
@given(raw=st.binary(max_size=500) | json_values.map(orjson.dumps), topic=st.sampled_from(
    ["events.orders", "events.complaints", "events.feedback", "customers.profiles", "pipeline.events-rekeyed",
     "unknown.topic"]), key=st.none() | st.binary(max_size=20))
def test_processor_never_raises_on_hostile_records(raw, topic, key):
    step = _processor().process(Record(topic, 1, 42, key, raw, 1.7e9), lambda _k: None, now=1.7e9)
    assert step.outcome in ("deadletter", "enriched", "rekeyed", "state")
    if step.outcome == "deadletter":
        assert len(step.outputs) == 1 and step.outputs[0].topic == "events.deadletter"
        doc = orjson.loads(step.outputs[0].value)
        _dl_validator().validate(doc)
        assert orjson.loads(step.outputs[0].value)["original_size"] == len(raw)


# -- classification ----------------------------------------------------------------------------

def _check_classification(text, result) -> None:
    doc = result.to_dict()
    _classification_validator().validate(doc)
    orjson.dumps(doc)
    assert -1 <= doc["sentiment"]["score"] <= 1 and not math.isnan(doc["sentiment"]["score"])
    assert doc["sentiment"]["label"] in ("negative", "neutral", "positive")
    for pp in doc["pain_points"]:
        assert 0 <= pp["confidence"] <= 1
        for ev in pp["evidence"]:
            if ev.get("start", -1) >= 0:
                assert text[ev["start"]:ev["end"]] == ev["text"]


@SLOWER
@given(text=any_text, language=st.sampled_from([None, None, "ko", "en", "pt", "und", "xx"]))
def test_classify_arbitrary_unicode(text, language):
    _check_classification(text, classify(text, language=language))


@SLOWER
@given(text=mixed_text, lo=st.integers(-10, 10), width=st.integers(1, 100), data=st.data())
def test_classify_with_any_scores(text, lo, width, data):
    hi = lo + width
    score = data.draw(st.none() | st.floats(lo, hi, allow_nan=False))
    expectation = data.draw(st.none() | st.floats(lo, hi, allow_nan=False))
    _check_classification(text, classify(text, score=score, scale=(lo, hi), expectation_score=expectation))


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=50))
@example(text="ᄀ")  # found by hypothesis: Kiwi raised UnicodeDecodeError on Hangul + a lone surrogate
@example(text="배송이 늦어요")
def test_classify_with_lone_surrogates_and_non_strings(text):
    """Texts that JSON input cannot carry (lone surrogates, non-strings) still do not raise."""
    for t in (text + "\ud800" + text, None, 12345, ["a"], {"t": text}):
        result = classify(t)  # type: ignore[arg-type]
        _classification_validator().validate(result.to_dict())


def test_classify_very_long_text():
    text = ("배송이 너무 늦어요 delivery was late 😡 " * 3000)[:60_000]
    _check_classification(text, classify(text))
