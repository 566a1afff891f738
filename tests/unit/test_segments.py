"""Segment derivation and customer state, without Kafka."""

from __future__ import annotations

from pipeline.config import SegmentThresholds, load_settings
from pipeline.ingest.normalise import normalise
from pipeline.core.timeparse import format_timestamp, parse_timestamp
from pipeline.segment.customer import apply_event
from pipeline.segment.segments import derive_segment

T = SegmentThresholds()
FX = T.fx_rates
DAY = 86400.0
T0 = parse_timestamp("2026-01-01T00:00:00Z")


def order(i: int, t: float, amount: float, currency: str = "USD", cid: str = "c1"):
    return normalise("order", {
        "schema_version": 1, "event_id": f"e{i}", "order_id": f"o{i}", "customer_id": cid, "type": "placed",
        "occurred_at": format_timestamp(t), "promised_delivery_at": format_timestamp(t + 3 * DAY),
        "amount": amount, "currency": currency, "channel": "web", "region": "KR-Seoul",
        "items": [{"sku": "s", "category": "c", "qty": 1, "unit_price": amount}],
    })


def run(events):
    state = None
    for ev in events:
        state, _ = apply_event(state, ev, FX)
    return state


def test_no_profile_no_orders_is_unknown_not_error():
    seg = derive_segment(None, T0, T)
    assert seg["value_tier"] == "unknown" and seg["lifecycle"] == "unknown" and seg["region"] == "unknown"
    assert seg["tier_source"] == "none" and seg["profile_known"] is False


def test_tier_from_spend_thresholds():
    assert derive_segment(run([order(1, T0, 150)]), T0, T)["value_tier"] == "general"
    assert derive_segment(run([order(1, T0, 200)]), T0, T)["value_tier"] == "regular"
    assert derive_segment(run([order(1, T0, 600), order(2, T0 + DAY, 400)]), T0 + DAY, T)["value_tier"] == "key"


def test_spend_converts_currency():
    state = run([order(1, T0, 1_500_000, "KRW")])  # ~1,080 USD
    assert derive_segment(state, T0, T)["value_tier"] == "key"


def test_profile_tier_wins_and_fields_flow():
    prof = normalise("customer_profile", {"schema_version": 1, "customer_id": "c1", "tier": "key",
                                          "region": "BR-SP", "relationship_level": "partner",
                                          "preferred_channel": "app"})
    seg = derive_segment(run([prof, order(1, T0, 10)]), T0, T)
    assert (seg["value_tier"], seg["tier_source"], seg["region"], seg["relationship_level"], seg["channel"]) == (
        "key", "profile", "BR-SP", "partner", "app")


def test_lifecycle_relative_to_own_cadence():
    # orders every 10 days → cadence 10
    state = run([order(i, T0 + 10 * i * DAY, 50) for i in range(4)])
    last = T0 + 30 * DAY
    assert derive_segment(state, last + 5 * DAY, T)["lifecycle"] == "active"
    assert derive_segment(state, last + 20 * DAY, T)["lifecycle"] == "at_risk"
    assert derive_segment(state, last + 40 * DAY, T)["lifecycle"] == "lapsed"
    assert derive_segment(state, last, T)["cadence_days"] == 10.0


def test_single_recent_order_is_new_then_default_cadence():
    state = run([order(1, T0, 50)])
    assert derive_segment(state, T0 + 5 * DAY, T)["lifecycle"] == "new"
    assert derive_segment(state, T0 + 100 * DAY, T)["lifecycle"] == "active"  # within 1.5 × 90 days
    assert derive_segment(state, T0 + 300 * DAY, T)["lifecycle"] == "lapsed"


def test_redelivered_event_is_not_double_counted():
    ev = order(1, T0, 300)
    state, changed = apply_event(None, ev, FX)
    state2, changed2 = apply_event(state, ev, FX)
    assert changed and not changed2 and state2["spend"] == 300 and state2["orders"] == 1


def test_thresholds_from_env():
    s = load_settings({"PIPELINE_TIER_KEY_SPEND": "50", "PIPELINE_FX_RATES": "KRW=0.001"})
    assert s.segment.key_spend == 50 and s.segment.fx_rates["KRW"] == 0.001 and s.segment.fx_rates["USD"] == 1.0
