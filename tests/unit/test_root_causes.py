"""Issue 18, scope 3: feedback and complaints joined to the order they name (stage 1, from the
customer's state), counted under its seller / categories / carrier, and ranked by root cause."""

from __future__ import annotations

import orjson

from pipeline.aggregate.dimensions import dimensions_of
from pipeline.aggregate.root_causes import merge, rank
from pipeline.process import Record
from pipeline.segment.customer import ORDER_CONTEXT, order_context

from tests.unit.test_customer_query import DAY, T0, iso, processor  # noqa: F401 (processor: a fixture)


def placed(oid: str, at: float, seller: str, categories: list[str]) -> tuple[str, dict]:
    return "order", {"schema_version": 1, "event_id": f"{oid}-p", "order_id": oid, "customer_id": "c1",
                     "type": "placed", "occurred_at": iso(at), "promised_delivery_at": iso(at + 3 * DAY), "amount": 10.0, "currency": "USD", "channel": "web",
                     "region": "BR-SP", "seller_id": seller,
                     "items": [{"sku": f"s{i}", "category": c, "qty": 1, "unit_price": 5.0}
                               for i, c in enumerate(categories)]}


def shipped(oid: str, at: float, carrier: str) -> tuple[str, dict]:
    return "order", {"schema_version": 1, "event_id": f"{oid}-s", "order_id": oid, "customer_id": "c1",
                     "type": "shipped", "occurred_at": iso(at), "channel": "web", "region": "BR-SP",
                     "seller_id": "seller-9-as-shipped", "carrier": carrier}


def review(rid: str, at: float, order_id: str | None) -> tuple[str, dict]:
    doc = {"schema_version": 1, "event_id": rid, "feedback_id": rid, "customer_id": "c1", "occurred_at": iso(at),
           "source": "review", "channel": "web", "score": 1, "scale": {"min": 1, "max": 5},
           "text": "The delivery was very late and the parcel never arrived"}
    if order_id:
        doc["order_id"] = order_id
    return "feedback", doc


def run(processor, docs) -> tuple[dict, list[dict]]:
    states: dict[str, dict] = {}
    out = []
    t = processor.topics
    for i, (kind, doc) in enumerate(docs):
        topic = {"order": t.orders, "feedback": t.feedback}[kind]
        step = processor.process(Record(topic, 0, i, b"c1", orjson.dumps(doc), T0), states.get, now=T0 + 60 * DAY)
        assert step.outcome == "enriched", step.problems
        states[step.state_key] = step.state
        out.append(step.enriched)
    return states["c1"], out


def test_a_review_naming_an_order_counts_under_its_seller_categories_and_carrier(processor):
    state, docs = run(processor, [placed("o1", T0, "seller-9", ["toys", "books"]), shipped("o1", T0 + DAY, "Loggi"),
                                  review("r1", T0 + 5 * DAY, "o1"), review("r2", T0 + 6 * DAY, None),
                                  review("r3", T0 + 7 * DAY, "unknown-order")])
    r1, r2, r3 = docs[2:]
    assert r1["order"] == {"order_id": "o1", "seller_id": "seller-9-as-shipped", "carrier": "Loggi",
                           "region": "BR-SP", "categories": ["books", "toys"]}
    dims = dimensions_of(r1)
    assert ("seller", "seller-9-as-shipped") in dims and ("carrier", "Loggi") in dims
    assert ("category", "books") in dims and ("category", "toys") in dims
    assert "order" not in r2 and "order" not in r3  # no order named / not remembered
    assert not any(d == "seller" for d, _ in dimensions_of(r2))
    assert "order" not in docs[0]  # orders carry their own fields


def test_the_order_memory_is_bounded_newest_kept(processor):
    docs = [placed(f"o{i}", T0 + i * 3600, f"s{i}", ["x"]) for i in range(ORDER_CONTEXT + 3)]
    state, _ = run(processor, docs)
    kept = state["seg"]["orders_ctx"]
    assert len(kept) == ORDER_CONTEXT and "o0" not in kept and f"o{ORDER_CONTEXT + 2}" in kept
    assert order_context(state["seg"], "o0") is None
    assert order_context(state["seg"], f"o{ORDER_CONTEXT + 2}")["seller_id"] == f"s{ORDER_CONTEXT + 2}"
    assert order_context(None, "o1") is None and order_context({"orders_ctx": "bad"}, "o1") is None


def test_rank_and_merge_order_by_count_then_value():
    a = {"current": [{"value": "s1", "count": 2}],
         "last_closed": [{"value": "s2", "count": 5}, {"value": "s1", "count": 5}]}
    b = {"current": [{"value": "s3", "count": 7}],
         "last_closed": [{"value": "s2", "count": 5}, {"value": "s4", "count": 1}]}
    m = merge(iter([a, b]), limit=2)
    assert [r["value"] for r in m["current"]] == ["s3", "s1"]
    assert [r["value"] for r in m["last_closed"]] == ["s1", "s2"]  # tie by value; s2 answered twice counts once


def test_rank_reads_the_windows_of_each_value(processor):
    from pipeline.aggregate.state import top_pain_points

    calls = []

    def fake_top(state, window, wm):
        calls.append((state, window, wm))
        return state

    import pipeline.aggregate.root_causes as rc

    real = rc.top_pain_points
    rc.top_pain_points = fake_top
    try:
        out = rank([("s1", {"current": [{"pain_point": "delivery", "count": 3}],
                            "current_window": {"orders": 2, "window_start": "a"}, "last_closed": []}, 5.0),
                    ("s2", {"current": [{"pain_point": "price", "count": 9}], "last_closed": []}, None)],
                   "delivery", "1h")
    finally:
        rc.top_pain_points = real
    assert out["current"] == [{"value": "s1", "count": 3, "rate_per_100_orders": None, "rate_per_100_events": None,
                               "share_of_feedback": None, "orders": 2, "feedback": None, "window_start": "a",
                               "window_end": None}]
    assert out["last_closed"] == [] and [c[2] for c in calls] == [5.0, None]
    assert top_pain_points is real
