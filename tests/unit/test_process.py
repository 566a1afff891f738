"""The per-record step (routing, re-keying, state) without Kafka."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson

from pipeline.config import load_settings
from pipeline.ingest.normalise import normalise
from pipeline.core.timeparse import parse_timestamp
from pipeline.process import Processor, Record

ROOT = Path(__file__).resolve().parents[2]
S = load_settings({})
T = S.topics


def example(name: str) -> dict:
    return orjson.loads((ROOT / "schemas/examples" / name).read_bytes())


def run(p: Processor, store: dict, rec: Record):
    step = p.process(rec, store.get, now=1_800_000_000.0)
    if step.state is not None:
        store[step.state_key] = step.state
    return step


def test_valid_order_is_enriched_and_keyed_by_customer():
    ev = example("order_event/placed.json")
    store: dict = {}
    step = run(Processor(S), store, Record(T.orders, 2, 40, ev["customer_id"].encode(), orjson.dumps(ev), 1.7e9))
    assert step.outcome == "enriched" and len(step.outputs) == 1
    out = step.outputs[0]
    doc = orjson.loads(out.value)
    assert out.topic == T.enriched and out.key == ev["customer_id"].encode()
    assert doc["event"] == ev and doc["kind"] == "order"
    assert doc["processing"]["partition"] == 2 and doc["processing"]["offset"] == 40
    assert doc["occurred_at"].endswith("Z")
    assert parse_timestamp(doc["occurred_at"]) == parse_timestamp(ev["occurred_at"])
    assert store[ev["customer_id"]]["seg"]["orders"] == 1


def test_wrong_key_goes_to_rekey_topic_then_enriched_once():
    ev = example("feedback_event/nps_en.json")
    p, store = Processor(S), {}
    first = run(p, store, Record(T.feedback, 0, 7, b"not-the-customer", orjson.dumps(ev), 1.7e9))
    assert first.outcome == "rekeyed" and first.outputs[0].topic == T.rekeyed and not store
    again = first.outputs[0]
    second = run(p, store, Record(T.rekeyed, 1, 0, again.key, again.value, 1.7e9))
    doc = orjson.loads(second.outputs[0].value)
    assert second.outcome == "enriched" and doc["processing"]["rekeyed"] is True
    assert doc["processing"]["source_topic"] == T.feedback and doc["processing"]["offset"] == 7


def test_profile_updates_state_without_output():
    prof = example("customer_profile/key_strategic_ko.json")
    store: dict = {}
    step = run(Processor(S), store, Record(T.profiles, 0, 0, prof["customer_id"].encode(), orjson.dumps(prof)))
    assert step.outcome == "state" and step.outputs == []
    assert store[prof["customer_id"]]["seg"]["profile"]["tier"] == prof["tier"]


def test_invalid_goes_to_deadletter_with_original_bytes():
    raw = b'{"schema_version": 1, "event_id": 5}'
    step = run(Processor(S), {}, Record(T.complaints, 3, 99, None, raw, 1.7e9))
    doc = orjson.loads(step.outputs[0].value)
    assert step.outcome == "deadletter" and step.outputs[0].topic == T.deadletter
    assert base64.b64decode(doc["original_b64"]) == raw
    assert doc["source"] == {"topic": T.complaints, "partition": 3, "offset": 99, "key_b64": None,
                             "timestamp": 1_700_000_000_000, "expected_kind": "complaint"}
    assert doc["dead_letter_id"] == f"{T.complaints}:3:99"


def test_forged_rekey_record_is_dead_lettered():
    step = run(Processor(S), {}, Record(T.rekeyed, 0, 0, b"k", b"garbage"))
    assert step.outcome == "deadletter"


def test_normalise_text_and_time():
    ev = normalise("complaint", {"schema_version": 1, "event_id": "e", "complaint_id": "c", "customer_id": "u",
                                 "status": "opened", "channel": "app", "text": "  배송이\u1100 늦어요  ",
                                 "language": "KO", "occurred_at": "2026-01-01T09:00:00+09:00"})
    assert ev.text == ev.text.strip() and ev.language == "ko" and ev.occurred_at == parse_timestamp(
        "2026-01-01T00:00:00Z")


def test_recovery_tail_records_is_a_setting():
    # one place parses it; both stages read it from Settings
    assert load_settings({}).recovery_tail_records == 100_000
    assert load_settings({"PIPELINE_RECOVERY_TAIL_RECORDS": "5000"}).recovery_tail_records == 5000
