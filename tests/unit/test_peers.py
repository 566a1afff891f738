"""The pure mini-pipeline of the peer benchmark (bench/peers.py): no broker, no Quix application."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pytest

from bench import peers


def event(**over: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {"schema_version": 1, "event_id": "e1", "customer_id": "c1",
                          "occurred_at": "2026-11-03T10:00:00+00:00", "feedback_id": "f1", "score": 2,
                          "text": "The parcel arrived LATE and broken"}
    ev.update(over)
    return {k: v for k, v in ev.items() if v is not ...}


class DictState:
    """Stands in for a Quix ``State`` (get with default, set)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value


def test_validate_required_keys_and_types() -> None:
    assert peers.validate(event())
    assert peers.validate(event(text=..., score=...))  # optional keys may be absent
    assert not peers.validate([1, 2])
    assert not peers.validate(event(customer_id=...))
    assert not peers.validate(event(customer_id=""))
    assert not peers.validate(event(customer_id=7))
    assert not peers.validate(event(schema_version="1"))
    assert not peers.validate(event(schema_version=True))
    assert not peers.validate(event(text=3))
    assert not peers.validate(event(score="5"))
    assert not peers.validate(event(score=False))
    assert peers.validate(event(score=4.5))


def test_kind_segment_and_classification() -> None:
    assert peers.kind_of(event()) == "feedback"
    assert peers.kind_of({"complaint_id": "x", "order_id": "o"}) == "complaint"
    assert peers.kind_of({"order_id": "o"}) == "order"
    assert peers.kind_of({"tier": "key"}) == "customer_profile"
    assert [peers.segment_of(n) for n in (1, 2, 3, 50)] == ["new", "new", "repeat", "repeat"]
    assert peers.classify("The parcel arrived LATE and broken") == "delivery"  # first keyword in table order
    assert peers.classify("I want a REFUND, it is broken") == "billing"
    assert peers.classify("배송이 너무 늦어요") == "delivery"
    assert peers.classify("lovely") == peers.OTHER
    assert peers.classify(None) is None and peers.classify("") is None and peers.classify(5) is None


def test_same_work_counts_rekeys_and_encodes() -> None:
    work = peers.SameWork()
    outs = [work(b"c1", orjson.dumps(event(event_id=f"e{i}"))) for i in range(4)]
    outs.append(work(b"c2", orjson.dumps(event(customer_id="c2", text=...))))
    assert work(b"c3", b'{"customer_id": "c3"}') is None and work.invalid == 1
    assert all(o is not None for o in outs)
    keys = [o[0] for o in outs if o]
    values = [json.loads(o[1]) for o in outs if o]
    assert keys == [b"new", b"new", b"repeat", b"repeat", b"new"]
    assert [v["customer_count"] for v in values] == [1, 2, 3, 4, 1]
    assert [v["segment_count"] for v in values] == [1, 2, 1, 2, 3]
    assert values[0] == {"event_id": "e0", "customer_id": "c1", "kind": "feedback",
                         "occurred_at": "2026-11-03T10:00:00+00:00", "customer_count": 1, "segment": "new",
                         "category": "delivery", "segment_count": 1}
    assert values[-1]["category"] is None


def test_quix_steps_match_the_raw_variant() -> None:
    """The Quix steps (state scoped per key by Quix) give the raw variant's records."""
    raw = peers.SameWork()
    customers: dict[str, DictState] = {}
    segments: dict[str, DictState] = {}
    for i, cid in enumerate(["a", "b", "a", "a", "b", "b", "c"]):
        ev = event(event_id=f"e{i}", customer_id=cid, text="login fails" if i % 2 else ...)
        want = raw(cid.encode(), orjson.dumps(ev))
        rec = peers.quix_customer_step(ev, customers.setdefault(cid, DictState()))
        out = peers.quix_segment_step(rec, segments.setdefault(rec["segment"], DictState()))
        assert want is not None
        assert (rec["segment"].encode(), out) == (want[0], orjson.loads(want[1]))


def test_passthrough_and_probe() -> None:
    assert peers.passthrough(b"k", b'{"a": [1, 2.5, "x"]}') == (b"k", b'{"a":[1,2.5,"x"]}')
    probe = peers.QuixProbe()
    assert probe(event()) and not probe({"x": 1})
    assert probe.inputs == 2 and probe.first is not None


def test_result_line_fields() -> None:
    line = peers.result_line(40000.0, 20000.0, 5000.0, quixstreams="3.28.1", events=100000, outputs=100000,
                             seconds=61.23)
    d = json.loads(line)
    assert list(d) == list(peers.RESULT_KEYS)
    assert d["quix_overhead_us_per_event"] == pytest.approx(150.0)  # 200 µs - 50 µs
    assert d["quix_same_work_ratio"] == 0.25
    assert d["seconds"] == 61.2
    missing = json.loads(peers.result_line(40000.0, 20000.0, math.nan, quixstreams="x", events=1, outputs=1,
                                           seconds=1.0))
    assert missing["quix_eps"] is None and missing["quix_overhead_us_per_event"] is None
    assert missing["quix_same_work_ratio"] is None
    assert math.isnan(peers.rate(0, 1.0)) and math.isnan(peers.rate(5, 0.0)) and peers.rate(10, 2.0) == 5.0
