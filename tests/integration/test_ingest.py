"""Ingest end to end on the real broker: valid → enriched, invalid → dead letters, nothing lost."""

from __future__ import annotations

import base64
import time
from collections import Counter

import jsonschema_rs
import orjson
import pytest

from pipeline.ingest.schemas import load_schema
from pipeline.producers.broken import broken_records
from pipeline.producers.publish import publish, publish_raw
from pipeline.producers.simulator import iter_simulated_events
from pipeline.runtime import wait_for_group
from pipeline.summary import read_topic

pytestmark = pytest.mark.integration

N_EACH = 60


def _valid_events(data_dir):
    """Profiles plus N_EACH events of each kind, from the simulator."""
    wanted = Counter()
    out = []
    for kind, ev in iter_simulated_events(None, seed=5, data_dir=data_dir, customers=80):
        if kind == "customer_profile":
            out.append((kind, ev))
        elif wanted[kind] < N_EACH:
            wanted[kind] += 1
            out.append((kind, ev))
        if all(wanted[k] >= N_EACH for k in ("order", "complaint", "feedback")):
            return out
    raise AssertionError("simulator ran dry")


def _topic_of(s, kind):
    return {"order": s.topics.orders, "complaint": s.topics.complaints, "feedback": s.topics.feedback,
            "customer_profile": s.topics.profiles}[kind]


def test_valid_to_enriched_invalid_to_deadletter(settings, worker_factory):
    s = settings
    worker = worker_factory(s)
    events = _valid_events(s.data_dir)
    # A few valid events arrive with a wrong or missing key: they must be re-keyed, not lost or doubled.
    mis_keyed = [ev for kind, ev in events if kind != "customer_profile"][::25]
    mis_ids = {ev["event_id"] for ev in mis_keyed}
    publish([(k, e) for k, e in events if e.get("event_id") not in mis_ids], s, progress=False)
    for i, ev in enumerate(mis_keyed):
        kind = "order" if "order_id" in ev and "type" in ev else ("complaint" if "complaint_id" in ev else "feedback")
        publish_raw(_topic_of(s, kind), [(None if i % 2 else b"wrong-key", orjson.dumps(ev))], s)
    bad = broken_records(2, s.max_event_bytes)
    for b in bad:
        publish_raw(_topic_of(s, b.kind), [(b.key, b.value)], s)

    t = s.topics
    wait_for_group(s, s.app_id, [*t.inputs, t.rekeyed], timeout=120)

    expected = Counter(e["event_id"] for k, e in events if k != "customer_profile")
    assert sum(expected.values()) == 3 * N_EACH
    records = list(read_topic(s, t.enriched))
    enriched = [orjson.loads(v) for _, v in records]
    got = Counter(d["event_id"] for d in enriched)
    print(f"\nsent valid={sum(expected.values())} (mis-keyed {len(mis_keyed)}) invalid={len(bad)}; "
          f"enriched={len(enriched)} distinct={len(got)}")
    assert got == expected  # exactly the valid ids, each once
    enriched_validator = jsonschema_rs.validator_for(load_schema("enriched_event"), validate_formats=True)
    for d, (k, _) in zip(enriched, records):
        enriched_validator.validate(d)
        assert k == d["customer_id"].encode()
    assert sum(1 for d in enriched if d["processing"]["rekeyed"]) == len(mis_keyed)

    dead = [orjson.loads(v) for _, v in read_topic(s, t.deadletter)]
    dl_validator = jsonschema_rs.validator_for(load_schema("dead_letter"), validate_formats=True)
    for d in dead:
        dl_validator.validate(d)
    assert Counter(base64.b64decode(d["original_b64"]) for d in dead) == Counter(b.value for b in bad)
    assert len({d["dead_letter_id"] for d in dead}) == len(bad)
    kinds_of_breakage = {b.label.split("#")[0] for b in bad}
    assert len(kinds_of_breakage) >= 10
    print(f"dead letters={len(dead)} covering {len(kinds_of_breakage)} kinds of breakage; "
          f"codes={dict(Counter(e['code'] for d in dead for e in d['errors']))}")

    # Still consuming afterwards.
    kind, ev = next((k, e) for k, e in events if k == "order")
    late = dict(ev, event_id="after-the-storm")
    publish([("order", late)], s, progress=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(orjson.loads(v)["event_id"] == "after-the-storm" for _, v in read_topic(s, t.enriched)):
            break
        time.sleep(0.3)
    else:
        raise AssertionError("worker stopped consuming")
    assert worker.proc.poll() is None

    # Metrics: counts match, and no customer id, order id or text leaks into /metrics.
    import urllib.request

    body = urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=5).read().decode()
    produced: Counter = Counter()  # per topic, summed over the kind label
    for line in body.splitlines():
        if line.startswith("pipeline_events_produced_total{"):
            produced[line.split('topic="')[1].split('"')[0]] += float(line.rsplit(" ", 1)[1])
    assert produced[t.enriched] == sum(expected.values()) + 1
    assert produced[t.deadletter] == len(bad)
    assert "pipeline_deadletters_total{reason=\"oversize\"} 2.0" in body
    for _, ev in events:
        assert ev["customer_id"] not in body
        if "order_id" in ev:
            assert ev["order_id"] not in body
