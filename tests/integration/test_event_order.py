"""Event-time order across a partition's input topics during a backlog (issue 15, scope 5).

Everything is published *before* the worker starts, so the worker meets a backlog on every input
topic; Faust fetches the topics independently.  Each enriched feedback / complaint event's segment
must count exactly the customer's orders placed before it."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timezone

import orjson
import pytest

from pipeline.core.timeparse import parse_timestamp
from pipeline.producers.publish import publish
from pipeline.runtime import wait_for_group
from pipeline.summary import read_topic

pytestmark = pytest.mark.integration

DAY = 86400.0
START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc).timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def placed(cid: str, oid: str, at: float) -> tuple[str, dict]:
    return ("order", {"schema_version": 1, "event_id": f"{oid}-placed", "order_id": oid, "customer_id": cid,
                      "type": "placed", "occurred_at": iso(at), "promised_delivery_at": iso(at + 5 * DAY),
                      "amount": 30.0, "currency": "USD", "channel": "web", "region": "US-NY", "items": [{"sku": "s", "category": "books", "qty": 1, "unit_price": 30.0}]})


def review(cid: str, rid: str, at: float, score: int, text: str) -> tuple[str, dict]:
    return ("feedback", {"schema_version": 1, "event_id": rid, "feedback_id": rid, "customer_id": cid,
                         "occurred_at": iso(at), "source": "review", "channel": "web", "score": score,
                         "scale": {"min": 1, "max": 5}, "text": text})


def segment_errors(s, kinds: tuple[str, ...] = ("feedback", "complaint")) -> tuple[int, list[tuple]]:
    """(checked, errors): each enriched ``kinds`` event whose ``orders_count`` differs from the
    customer's placed orders at or before its time (all read back from ``events.enriched``)."""
    docs = [orjson.loads(v) for _, v in read_topic(s, s.topics.enriched)]
    placed_at: dict[str, set[tuple[str, float]]] = defaultdict(set)
    for d in docs:
        if d["kind"] == "order" and d["event"].get("type") == "placed":
            placed_at[d["customer_id"]].add((d["event"]["order_id"], parse_timestamp(d["occurred_at"])))
    checked, errors = 0, []
    for d in docs:
        if d["kind"] not in kinds:
            continue
        t = parse_timestamp(d["occurred_at"])
        want = sum(1 for _, at in placed_at[d["customer_id"]] if at <= t)
        checked += 1
        if d["segment"]["orders_count"] != want:
            errors.append((d["event_id"], d["segment"]["orders_count"], want))
    return checked, errors


def test_a_late_review_counts_every_earlier_order_in_a_backlog(settings, worker_factory):
    """Weekly orders for eight weeks, then a 1-star review a week later, among 300 other customers'
    traffic, all waiting in Kafka when the worker starts."""
    s = settings
    rng = random.Random(15)
    events: list[tuple[float, tuple[str, dict]]] = []
    for week in range(8):
        events.append((START + week * 7 * DAY, placed("weekly", f"weekly-o{week}", START + week * 7 * DAY)))
    late = START + 8 * 7 * DAY
    events.append((late, review("weekly", "weekly-r1", late, 1, "Terrible, the last parcel never came.")))
    for i in range(300):
        cid = f"other-{i}"
        for k in range(rng.randint(1, 6)):
            at = START + rng.uniform(0, 60 * DAY)
            events.append((at, placed(cid, f"{cid}-o{k}", at)))
        at = START + rng.uniform(0, 60 * DAY)
        events.append((at, review(cid, f"{cid}-r", at, rng.randint(1, 5), "ok")))
    events.sort(key=lambda x: x[0])
    publish([ke for _, ke in events], s, progress=False)  # in event-time order, before any worker runs
    worker_factory(s)  # event-time ordering is on by default
    wait_for_group(s, s.app_id, [*s.topics.inputs, s.topics.rekeyed], timeout=300)
    docs = {d["event_id"]: d for d in (orjson.loads(v) for _, v in read_topic(s, s.topics.enriched))}
    seg = docs["weekly-r1"]["segment"]
    print(f"\n[order] the late review: orders_count {seg['orders_count']}, "
          f"days_since_last_order {seg['days_since_last_order']}, lifecycle {seg['lifecycle']}")
    checked, errors = segment_errors(s)
    print(f"[order] {checked} reviews checked, {len(errors)} with a wrong order count: {errors[:5]}")
    assert seg["orders_count"] == 8 and seg["days_since_last_order"] == 7.0
    assert checked == 301 and not errors
