"""Classification travels with enriched events on the real broker; a custom taxonomy works end to end."""

from __future__ import annotations

import time

import orjson
import pytest

from pipeline.producers.publish import publish
from pipeline.runtime import wait_for_group
from pipeline.summary import read_topic

pytestmark = pytest.mark.integration

CUSTOM_TAXONOMY = """
version: "test-pets-1"
name: pets
languages_from: default.yaml
settings:
  min_confidence: 0.3
  fallback_category: null
categories:
  - id: pet_health
    label: Pet health
    suggested_action: Ask the vet team to call the customer today.
    aspects:
      en: [dog, cat, puppy, kitten, pet]
      ko: [강아지, 고양이]
    negative:
      en: {sick: 1.2, vomiting: 1.3, "threw up": 1.3}
      ko: {아파요: 1.2, 토했어요: 1.3}
"""


def complaint(i: int, cid: str, text: str, language: str | None = None) -> dict:
    e = {"schema_version": 1, "event_id": f"cl-{i}", "complaint_id": f"cp-{i}", "customer_id": cid,
         "status": "opened", "channel": "app", "text": text, "occurred_at": "2026-11-20T10:00:00+09:00"}
    if language:
        e["language"] = language
    return e


def enriched_by_id(s, expected: int, timeout: float = 120.0) -> dict[str, dict]:
    t = s.topics
    wait_for_group(s, s.app_id, [*t.inputs, t.rekeyed], timeout=timeout)
    docs = {d["event_id"]: d for d in (orjson.loads(v) for _, v in read_topic(s, t.enriched))}
    assert len(docs) == expected
    return docs


def pain_ids(doc: dict) -> set[str]:
    return {p["id"] for p in doc["classification"]["pain_points"]}


def test_enriched_events_carry_classification(settings, worker_factory):
    s = settings
    worker_factory(s)
    cid = "cust-cls-1"
    events = [
        ("complaint", complaint(1, cid, "배송이 너무 늦어요. 일주일째 안 와요")),
        ("complaint", complaint(2, cid, "I was charged twice for my order and nobody answers the phone")),
        ("complaint", complaint(3, cid, "The price is great and delivery was fast")),
        ("feedback", {"schema_version": 1, "event_id": "fb-1", "feedback_id": "f1", "customer_id": cid,
                      "source": "csat", "score": 2, "scale": {"min": 1, "max": 5}, "expectation_score": 5,
                      "text": "배송이 느려요", "occurred_at": "2026-11-20T11:00:00+09:00"}),
        ("order", {"schema_version": 1, "event_id": "o-1", "order_id": "ord-1", "customer_id": cid, "type": "placed",
                   "occurred_at": "2026-11-01T10:00:00+09:00", "promised_delivery_at": "2026-11-03T23:59:59+09:00",
                   "amount": 30000, "currency": "KRW", "channel": "app", "region": "KR-Seoul",
                   "items": [{"sku": "s1", "category": "pet", "qty": 1, "unit_price": 30000}]}),
        ("order", {"schema_version": 1, "event_id": "o-2", "order_id": "ord-1", "customer_id": cid,
                   "type": "delivered", "occurred_at": "2026-11-06T15:00:00+09:00"}),
    ]
    # placed first, then the rest (delivered must see the promise)
    publish([events[4]], s, progress=False)
    enriched_by_id(s, 1)
    publish(events[:4] + events[5:], s, progress=False)
    docs = enriched_by_id(s, 6)
    ko, en, happy, fb, delivered = docs["cl-1"], docs["cl-2"], docs["cl-3"], docs["fb-1"], docs["o-2"]
    assert ko["classification"]["language"] == "ko" and "delivery" in pain_ids(ko)
    assert ko["classification"]["sentiment"]["label"] == "negative"
    assert en["classification"]["language"] == "en"
    assert "billing_payment" in pain_ids(en)
    assert pain_ids(happy) == set() and happy["classification"]["sentiment"]["label"] == "positive"
    assert fb["classification"]["satisfaction_gap"] == -0.75 and "delivery" in pain_ids(fb)
    assert "delivery" in pain_ids(delivered)
    for d in docs.values():
        assert d["classification"]["taxonomy_version"]
        for p in d["classification"]["pain_points"]:
            for e in p["evidence"]:
                if e.get("start") is not None:
                    text = d["event"]["text"]
                    assert text[e["start"]:e["end"]] == e["text"]


def test_custom_taxonomy_file_end_to_end(settings, worker_factory, tmp_path):
    s = settings
    path = tmp_path / "pets.yaml"
    path.write_text(CUSTOM_TAXONOMY)
    worker_factory(s, PIPELINE_TAXONOMY_FILE=str(path))
    publish([("complaint", complaint(10, "cust-pet", "My dog was sick and vomiting after the new food")),
             ("complaint", complaint(11, "cust-pet", "강아지가 먹고 토했어요"))], s, progress=False)
    docs = enriched_by_id(s, 2)
    for d in docs.values():
        assert d["classification"]["taxonomy_version"] == "test-pets-1"
        assert "pet_health" in pain_ids(d), d["classification"]
