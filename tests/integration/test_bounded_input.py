"""Issue 14 end to end: an order of amount 1e308 and one dated 9999 are dead-lettered with their reason;
the same customer's later valid events are enriched normally, also after the worker is restarted."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import orjson
import pytest

from pipeline.producers.publish import publish_raw
from pipeline.summary import read_topic

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CID = "cust-bounded-14"


def _order(event_id: str, order_id: str, **changes) -> dict:
    ev = orjson.loads((ROOT / "schemas/examples/order_event/placed.json").read_bytes())
    ev.update(event_id=event_id, order_id=order_id, customer_id=CID, **changes)
    return ev


def _feedback(event_id: str) -> dict:
    ev = orjson.loads((ROOT / "schemas/examples/feedback_event/nps_en.json").read_bytes())
    ev.update(event_id=event_id, customer_id=CID)
    return ev


def _poll(s, topic: str, done, timeout: float = 120.0) -> list[dict]:
    """Read ``topic`` until ``done(docs)`` holds or the deadline passes (each read takes its own time)."""
    deadline = time.monotonic() + timeout
    docs: list[dict] = []
    while time.monotonic() < deadline:
        docs = [orjson.loads(v) for _, v in read_topic(s, topic)]
        if done(docs):
            return docs
    raise AssertionError(f"timed out on {topic}: {len(docs)} records")


def test_unbounded_values_dead_lettered_customer_keeps_flowing(settings, worker_factory):
    s, t = settings, settings.topics
    key = CID.encode()
    huge = _order("bad-amount", "o-huge", amount=1e308)
    future = _order("bad-year", "o-future", occurred_at="9999-01-01T10:00:00Z",
                    promised_delivery_at="9999-01-08T10:00:00Z")
    ok1 = _order("good-1", "o-1", amount=120.5)
    ok2 = _feedback("good-2")
    worker = worker_factory(s)
    # same key, same partition: the bad ones come first, then valid events of the same customer
    publish_raw(t.orders, [(key, orjson.dumps(huge)), (key, orjson.dumps(future)), (key, orjson.dumps(ok1))], s)
    publish_raw(t.feedback, [(key, orjson.dumps(ok2))], s)

    enriched = _poll(s, t.enriched, lambda d: {"good-1", "good-2"} <= {x["event_id"] for x in d})
    dead = _poll(s, t.deadletter, lambda d: len(d) >= 2)
    reasons = {orjson.loads(base64.b64decode(d["original_b64"]))["event_id"]:
               [(e["code"], e["path"]) for e in d["errors"]] for d in dead}
    print(f"\nbefore restart: enriched={len(enriched)} dead={len(dead)} reasons={reasons}")
    assert len(dead) == 2
    assert reasons["bad-amount"] == [("out_of_range", "/amount")]
    assert ("out_of_range", "/occurred_at") in reasons["bad-year"]
    assert {c for c, _ in reasons["bad-year"]} == {"out_of_range"}
    by_id = {x["event_id"]: x for x in enriched}
    assert set(by_id) == {"good-1", "good-2"}
    rate = s.segment.fx_rates.get("BRL", 1.0)
    assert by_id["good-1"]["segment"]["spend"] == pytest.approx(round(120.5 * rate, 2)) and by_id["good-1"]["segment"]["orders_count"] == 1
    assert isinstance(by_id["good-2"]["segment"]["spend"], float)

    # restart: the stored state is read back by a new worker; later events are still enriched
    worker.stop()
    worker_factory(s)
    ok3 = _order("good-3", "o-3", amount=10.0, occurred_at="2017-10-03T10:56:33-03:00",
                 promised_delivery_at="2017-10-20T23:59:59-03:00")
    publish_raw(t.orders, [(key, orjson.dumps(ok3))], s)
    enriched = _poll(s, t.enriched, lambda d: "good-3" in {x["event_id"] for x in d})
    dead = [orjson.loads(v) for _, v in read_topic(s, t.deadletter)]
    by_id = {x["event_id"]: x for x in enriched}
    print(f"after restart: enriched={len(enriched)} dead={len(dead)} "
          f"spend={by_id['good-3']['segment']['spend']} orders={by_id['good-3']['segment']['orders_count']}")
    assert len(dead) == 2
    assert by_id["good-3"]["segment"]["orders_count"] == 2
    assert by_id["good-3"]["segment"]["spend"] == pytest.approx(round(130.5 * rate, 2))
