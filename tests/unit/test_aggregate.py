"""Pain-point aggregation, windows, watermark, surge detection and alerts (pipeline.aggregate).

Deterministic, no Kafka: synthetic enriched events plus a replay of the real
Olist subset through partials → state → close → surge → alert.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from pipeline.aggregate import dimensions as dims
from pipeline.aggregate.alerts import alert_id, load_playbook, surge_alert
from pipeline.aggregate.partials import PartialsBuilder, merge_bucket, partials_from
from pipeline.aggregate.state import (
    Late,
    Watermark,
    close_windows,
    grace_from_env,
    merge_partial,
    new_state,
    next_close_time,
    top_pain_points,
)
from pipeline.aggregate.surge import (
    Baseline,
    SurgeConfig,
    detect,
    poisson_sf,
    process_finals,
)
from pipeline.aggregate.windows import (
    DEFAULT_WINDOWS,
    WindowSpec,
    parse_window_key,
    parse_windows,
    window_start,
    windows_from_env,
)
from pipeline.core.timeparse import format_timestamp, parse_timestamp

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
OLIST_DIR = Path("/work/shared/data/olist_subset_5k")
H = 3600
D = 86400
T0 = 1_710_806_400  # 2024-03-19T00:00:00Z (a multiple of 86400)
HOUR = [WindowSpec("1h", H)]


# --------------------------------------------------------------------------- helpers
def ev(
    event_id: str,
    t: float,
    kind: str = "feedback",
    *,
    pains: dict[str, float] | None = None,
    sentiment: str = "neutral",
    order_type: str = "placed",
    tier: str = "regular",
    lifecycle: str = "active",
    region: str = "SP",
    event_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A minimal enriched event."""
    event: dict[str, Any] = {"event_id": event_id}
    if kind == "order":
        event["type"] = order_type
    event.update(event_extra or {})
    return {
        "event_id": event_id,
        "kind": kind,
        "customer_id": "c-" + event_id,
        "occurred_at": format_timestamp(t),
        "event": event,
        "segment": {
            "value_tier": tier,
            "lifecycle": lifecycle,
            "region": region,
            "relationship_level": "unknown",
            "channel": "web",
        },
        "classification": {
            "sentiment": {"label": sentiment, "score": 0.0},
            "pain_points": [{"id": p, "confidence": c, "evidence": []} for p, c in (pains or {}).items()],
        },
    }


def window_events(prefix: str, start: float, orders: int, feedback: int, pain: int, pain_id: str = "delivery", **kw: Any) -> list[dict]:
    """``orders`` placed orders and ``feedback`` feedback events in one hour; ``pain`` of the feedback carry ``pain_id``."""
    out = [ev(f"{prefix}-o{i}", start + 10 + i, "order", **kw) for i in range(orders)]
    out += [
        ev(f"{prefix}-f{i}", start + 20 + i, "feedback", pains={pain_id: 0.9} if i < pain else None,
           sentiment="negative" if i < pain else "positive", **kw)
        for i in range(feedback)
    ]
    return out


class Stage2:
    """A single-partition stage 2 as the Faust agent will run it: merge, watermark, close, surge."""

    def __init__(self, grace: float = 300.0, retention: int = 24, cfg: SurgeConfig | None = None) -> None:
        self.states: dict[str, dict] = {}
        self.wm = Watermark(grace)
        self.grace = grace
        self.retention = retention
        self.cfg = cfg or SurgeConfig()
        self.finals: list[dict] = []
        self.alerts: list[tuple[dict, Any]] = []
        self.suppressed: list[tuple[dict, Any]] = []
        self.late = Counter()

    def feed(self, partials: dict[str, dict]) -> None:
        before = self.wm.value
        for key, partial in partials.items():
            state = self.states.get(key) or new_state(partial["dimension"], partial["value"])
            state, late = merge_partial(state, partial, self.grace, before, retention_windows=self.retention)
            self.states[key] = state
            self.late.update(held=late.held, after_close=late.after_close, dropped=late.dropped)
        for partial in partials.values():
            self.wm.observe(partial["max_event_time"])
        self.close()

    def close(self) -> list[dict]:
        new: list[dict] = []
        for key, state in self.states.items():
            nxt = next_close_time(state)
            if nxt is None and self.wm.value is None:
                continue
            state, finals = close_windows(state, self.wm.value, retention_windows=self.retention)
            if finals:
                state, result = process_finals(state, finals, self.cfg)
                self.alerts += result.alerts
                self.suppressed += result.suppressed
                new += finals
        self.finals += new
        return new


# --------------------------------------------------------------------------- windows
def test_window_alignment_half_open_epoch_utc():
    assert window_start(0, H) == 0
    assert window_start(H - 0.001, H) == 0
    assert window_start(H, H) == H  # [start, end): the end belongs to the next window
    assert window_start(T0 + 5 * H + 59, D) == T0
    assert window_start(-1, H) == -H
    ts = parse_timestamp("2024-03-19T10:59:59.999+09:00")  # 01:59:59.999Z
    assert format_timestamp(window_start(ts, H)) == "2024-03-19T01:00:00.000Z"
    assert format_timestamp(window_start(ts, D)) == "2024-03-19T00:00:00.000Z"  # UTC midnight
    spec = WindowSpec("1h", H)
    assert spec.key_of(T0 + 1) == f"1h:{T0}"
    assert parse_window_key(f"1h:{T0}") == ("1h", T0)


def test_window_config():
    assert list(DEFAULT_WINDOWS) == windows_from_env({}) == [WindowSpec("1h", 3600), WindowSpec("1d", 86400)]
    assert windows_from_env({"PIPELINE_WINDOWS": "15m=900, 1h=3600"}) == [WindowSpec("15m", 900), WindowSpec("1h", 3600)]
    for bad in ("1h", "1h=0", "1h=x", "1h=60,1h=120", "", "a:b=60"):
        with pytest.raises(ValueError):
            parse_windows(bad)


# --------------------------------------------------------------------------- dimensions
def test_dimensions_segment_and_root_cause():
    order = ev("o1", T0, "order", event_extra={
        "items": [{"category": "toys"}, {"category": "books"}, {"category": "toys"}],
        "seller_id": "s-1", "carrier": "correios"})
    assert dims.dimensions_of(order) == [
        ("all", "all"), ("tier", "regular"), ("lifecycle", "active"), ("region", "SP"),
        ("channel", "web"), ("relationship", "unknown"),
        ("category", "books"), ("category", "toys"), ("seller", "s-1"), ("carrier", "correios"),
    ]
    fb = ev("f1", T0, "feedback")
    assert [d for d, _ in dims.dimensions_of(fb)] == ["all", "tier", "lifecycle", "region", "channel", "relationship"]
    fb["event"]["attributes"] = {"category": "toys", "carrier": "dhl"}
    assert ("category", "toys") in dims.dimensions_of(fb) and ("carrier", "dhl") in dims.dimensions_of(fb)
    broken = {"event_id": "x", "segment": {"value_tier": None}, "event": "nope"}
    assert dims.dimensions_of(broken)[:2] == [("all", "all"), ("tier", "unknown")]


def test_dimension_values_bounded():
    long_a, long_b = "s" * 100 + "a", "s" * 100 + "b"
    va, vb = dims.bound_value(long_a), dims.bound_value(long_b)
    assert len(va) == len(vb) == dims.MAX_VALUE_LEN and va != vb
    assert dims.bound_value("  SP ") == "SP" and dims.bound_value("  ") is None and dims.bound_value(True) is None
    assert dims.split_group_key(dims.group_key("seller", "a=b")) == ("seller", "a=b")
    assert "seller" in dims.HIGH_CARDINALITY


# --------------------------------------------------------------------------- partials
def test_partials_counts():
    events = [
        ev("o1", T0 + 10, "order"),
        ev("o2", T0 + 20, "order", order_type="delivered", pains={"delivery": 0.9}),
        ev("f1", T0 + 30, "feedback", pains={"delivery": 0.8, "product_quality": 0.4842}, sentiment="negative"),
        ev("c1", T0 + 40, "complaint", pains={"delivery": 0.5, "customer_service": 0.7}, sentiment="negative"),
        ev("f2", T0 + H + 1, "feedback", sentiment="positive"),  # next hour
        ev("f1", T0 + 30, "feedback", pains={"delivery": 0.8}),  # duplicate id in the batch
        {"event_id": "bad", "kind": "feedback", "occurred_at": "yesterday"},
    ]
    builder = PartialsBuilder([WindowSpec("1h", H), WindowSpec("1d", D)])
    for e in events:
        builder.add(e)
    assert (builder.skipped, builder.duplicates) == (1, 1)
    out = builder.partials()
    assert set(out) == {"all=all", "tier=regular", "lifecycle=active", "region=SP", "channel=web", "relationship=unknown"}
    p = out["tier=regular"]
    assert p["max_event_time"] == T0 + H + 1
    hour0 = p["windows"][f"1h:{T0}"]
    assert hour0 == {
        "size": H, "start": T0, "events": 4, "orders": 1, "feedback": 2, "complaints": 1, "negative_feedback": 2,
        "pain": {"delivery": 3, "customer_service": 1},  # product_quality below 0.5 not counted
        "evidence": {"delivery": ["o2", "f1", "c1"], "customer_service": ["c1"]},
    }
    assert p["windows"][f"1h:{T0 + H}"]["feedback"] == 1
    day = p["windows"][f"1d:{T0}"]
    assert (day["events"], day["orders"], day["feedback"], day["pain"]["delivery"]) == (5, 1, 3, 3)
    assert json.loads(json.dumps(out)) == out  # JSON-serialisable
    assert partials_from(events, [WindowSpec("1h", H)], min_confidence=0.4)["all=all"]["windows"][f"1h:{T0}"]["pain"]["product_quality"] == 1


def test_partials_evidence_capped():
    events = [ev(f"f{i}", T0 + i, pains={"delivery": 0.9}) for i in range(12)]
    bucket = partials_from(events, HOUR)["all=all"]["windows"][f"1h:{T0}"]
    assert bucket["pain"]["delivery"] == 12 and bucket["evidence"]["delivery"] == ["f0", "f1", "f2", "f3", "f4"]
    merged = merge_bucket(copy.deepcopy(bucket), bucket)
    assert merged["pain"]["delivery"] == 24 and merged["evidence"]["delivery"] == ["f0", "f1", "f2", "f3", "f4"]


def test_real_enriched_examples():
    examples = [json.loads(p.read_text()) for p in sorted((SCHEMAS / "examples" / "enriched_event").glob("*.json"))]
    out = partials_from(examples, [WindowSpec("1d", D)])
    assert sum(b["events"] for b in out["all=all"]["windows"].values()) == len(examples)
    pain = Counter()
    for b in out["all=all"]["windows"].values():
        pain.update(b["pain"])
    assert pain["delivery"] == 1 and pain["billing_payment"] == 1 and "product_quality" not in pain  # 0.4842 < 0.5
    assert "category=utilidades_domesticas" in out and "seller=3504c0cb71d7fa48d967e0e4c94d59d9" in out


# --------------------------------------------------------------------------- state
def test_merge_of_several_batches_equals_one_batch():
    events = window_events("a", T0, orders=7, feedback=9, pain=4) + window_events("b", T0 + H, orders=3, feedback=5, pain=2, pain_id="refund_return")
    whole = new_state("all", "all")
    whole, _ = merge_partial(whole, partials_from(events, HOUR)["all=all"])
    pieces = new_state("all", "all")
    for i in range(0, len(events), 5):
        pieces, late = merge_partial(pieces, partials_from(events[i:i + 5], HOUR)["all=all"])
        assert late == Late()
    strip = lambda s: {k: {f: v for f, v in b.items() if f != "evidence"} for k, b in s["windows"].items()}  # noqa: E731
    assert strip(pieces) == strip(whole)
    assert pieces["windows"][f"1h:{T0}"]["pain"] == {"delivery": 4}
    assert pieces["max_event_time"] == whole["max_event_time"]


def test_close_emits_exactly_once_per_window_dimension_value_pain_point():
    st = Stage2()
    st.feed(partials_from(
        window_events("a", T0, orders=10, feedback=8, pain=3)
        + [ev("x1", T0 + 100, pains={"refund_return": 0.9, "delivery": 0.9}, sentiment="negative")]
        + window_events("b", T0 + H, orders=4, feedback=2, pain=0), HOUR))
    assert st.finals == []  # watermark = T0+H+25-300: nothing closed yet
    st.feed(partials_from([ev("z", T0 + 2 * H + 400)], HOUR))
    keys = [f["record_id"] for f in st.finals]
    assert len(keys) == len(set(keys))
    by = {(f["window_start"], f["dimension"], f["value"], f["pain_point"]): f for f in st.finals}
    first = by[(format_timestamp(T0), "tier", "regular", "delivery")]
    assert first["count"] == 4 and first["orders"] == 10 and first["feedback"] == 9
    assert first["window_end"] == format_timestamp(T0 + H) and first["window"] == "1h"
    assert first["rate_per_100_orders"] == 40.0 and first["share_of_feedback"] == round(4 / 9, 4)
    assert first["negative_share"] == round(4 / 9, 4) and first["rate_per_100_events"] == round(400 / 19, 4)
    assert first["evidence"][:3] == ["a-f0", "a-f1", "a-f2"]
    assert by[(format_timestamp(T0), "all", "all", "refund_return")]["count"] == 1
    empty = by[(format_timestamp(T0 + H), "all", "all", None)]  # no pain point: one totals record
    assert (empty["count"], empty["orders"], empty["feedback"], empty["evidence"]) == (0, 4, 2, [])
    # closing again, with the same or a later watermark, emits nothing new
    for state in st.states.values():
        assert close_windows(state, st.wm.value)[1] == []
        assert close_windows(state, None)[1] == []  # e.g. after a restart: the state keeps the watermark
    assert st.close() == []
    # a restarted worker (fresh Watermark) replaying a partial of a closed window re-emits nothing
    st.wm = Watermark(300)
    st.feed(partials_from(window_events("a", T0, orders=1, feedback=0, pain=0), HOUR))
    assert len(st.finals) == len(keys) and st.late["after_close"] > 0


def test_late_within_grace_is_counted_in_open_window():
    st = Stage2(grace=300)
    st.feed(partials_from([ev("f1", T0 + H + 200)], HOUR))  # watermark T0+H-100: hour 0 still open
    st.feed(partials_from([ev("late", T0 + H - 1, pains={"delivery": 0.9})], HOUR))
    assert st.late == Counter(held=0, after_close=0, dropped=0)
    st.feed(partials_from([ev("f2", T0 + 3 * H)], HOUR))
    rec = [f for f in st.finals if f["dimension"] == "all" and f["window_start"] == format_timestamp(T0)]
    assert [(r["pain_point"], r["count"], r["late_events"]) for r in rec] == [("delivery", 1, 0)]


def test_late_after_close_is_held_and_counted():
    st = Stage2(grace=300)
    st.feed(partials_from([ev("f1", T0 + 10, pains={"delivery": 0.9})], HOUR))
    st.feed(partials_from([ev("f2", T0 + 2 * H)], HOUR))  # closes hour 0
    n_finals = len(st.finals)
    key = "all=all"
    state, late = merge_partial(st.states[key], partials_from([ev("late", T0 + 50, pains={"delivery": 0.9})], HOUR)[key], 300, st.wm.value)
    assert late == Late(held=1, after_close=1, dropped=0)
    held = state["windows"][f"1h:{T0}"]
    assert held["closed"] and held["pain"]["delivery"] == 2 and held["late_events"] == 1
    assert close_windows(state, st.wm.value)[1] == [] and len(st.finals) == n_finals  # no second final
    # visible in the live query's last closed window
    top = top_pain_points(state, "1h", st.wm.value)
    assert top["last_closed"][0]["count"] == 2 and top["last_closed_window"]["late_events"] == 1


def test_late_for_unseen_window_within_retention_gets_its_one_final():
    st = Stage2(grace=300)
    st.feed(partials_from([ev("f1", T0 + 5 * H)], HOUR))
    st.feed(partials_from([ev("seller-late", T0 + 10, pains={"delivery": 0.9}, event_extra={"seller_id": "s9"})], HOUR))
    # late counts are per key: the event is late once for each of its 7 dimension=value keys
    assert st.late["held"] == 7 and st.late["after_close"] == 0
    recs = [f for f in st.finals if f["dimension"] == "seller"]
    assert [(r["value"], r["count"], r["late_events"]) for r in recs] == [("s9", 1, 1)]


def test_late_after_retention_is_dropped_not_silent():
    st = Stage2(grace=300, retention=2)
    st.feed(partials_from([ev("f1", T0 + 10, pains={"delivery": 0.9})], HOUR))
    st.feed(partials_from([ev("f2", T0 + 4 * H)], HOUR))  # wm T0+4h-300: hour 0 end + 2h <= wm → purged
    state = st.states["all=all"]
    assert f"1h:{T0}" not in state["windows"]
    state, late = merge_partial(state, partials_from([ev("late", T0 + 20), ev("late2", T0 + 30)], HOUR)["all=all"], 300, st.wm.value, retention_windows=2)
    assert late == Late(held=0, after_close=0, dropped=2, dropped_windows=(f"1h:{T0}",))
    assert f"1h:{T0}" not in state["windows"]
    # hour 1 is still held (end + 2h > wm): added, late
    state, late = merge_partial(state, partials_from([ev("late3", T0 + H + 5)], HOUR)["all=all"], 300, st.wm.value, retention_windows=2)
    assert (late.held, late.dropped) == (1, 0)


def test_watermark_and_env():
    wm = Watermark(300)
    assert wm.value is None
    assert wm.observe(T0 + 1000) == T0 + 700
    assert wm.observe(T0) == T0 + 700  # never moves back
    assert Watermark.from_dict(wm.to_dict()) == wm
    assert grace_from_env({}) == 300 and grace_from_env({"PIPELINE_WATERMARK_GRACE_SECONDS": "60"}) == 60


def test_top_pain_points_current_and_last_closed():
    st = Stage2()
    st.feed(partials_from(window_events("a", T0, orders=5, feedback=6, pain=2)
                          + [ev("q", T0 + 30, pains={"refund_return": 0.9})], HOUR))
    st.feed(partials_from(window_events("b", T0 + H + 400, orders=2, feedback=4, pain=3, pain_id="price_value"), HOUR))
    top = top_pain_points(st.states["all=all"], "1h", st.wm.value)
    assert [(r["pain_point"], r["count"]) for r in top["last_closed"]] == [("delivery", 2), ("refund_return", 1)]
    assert top["last_closed_window"]["closed"] and top["last_closed_window"]["orders"] == 5
    assert [(r["pain_point"], r["count"], r["rate_per_100_orders"]) for r in top["current"]] == [("price_value", 3, 150.0)]
    assert top["current_window"]["window_start"] == format_timestamp(T0 + H)
    assert top_pain_points(new_state("tier", "key"), "1h")["current"] == []
    assert json.loads(json.dumps(top)) == top


# --------------------------------------------------------------------------- surge
def run_series(series: list[tuple[int, int, int]], segment: dict[str, str] | None = None, cfg: SurgeConfig | None = None) -> Stage2:
    """One hour per (orders, feedback, pain) tuple, fed and closed in order."""
    st = Stage2(cfg=cfg)
    for i, (orders, feedback, pain) in enumerate(series):
        st.feed(partials_from(window_events(f"w{i}", T0 + i * H, orders, feedback, pain, **(segment or {})), HOUR))
    st.feed(partials_from([ev("flush", T0 + (len(series) + 1) * H)], HOUR))
    return st


def alerts_for(st: Stage2, dimension: str, value: str) -> list[tuple[dict, Any]]:
    return [(f, s) for f, s in st.alerts if f["dimension"] == dimension and f["value"] == value]


STABLE = [(60, 40, 4), (60, 40, 5), (60, 40, 3), (60, 40, 4), (60, 40, 6), (60, 40, 4)]


def test_surge_fires_on_spike_after_stable_baseline():
    st = run_series(STABLE + [(60, 40, 18)])
    found = alerts_for(st, "all", "all")
    assert len(found) == 1
    final, surge = found[0]
    assert final["window_start"] == format_timestamp(T0 + 6 * H) and final["pain_point"] == "delivery"
    assert surge.rule == "ewma_z" and surge.count == 18 and surge.rate == 18.0
    assert surge.windows_observed == 6 and surge.ratio > 3 and surge.z >= 3
    # one alert per segment of the events (all, tier, lifecycle, region, channel, relationship)
    assert Counter((f["dimension"], f["window_start"]) for f, _ in st.alerts)[("tier", final["window_start"])] == 1


def test_no_surge_on_stable_series_or_even_spread():
    assert run_series(STABLE * 2).alerts == []
    # the spike's total volume of pain (18 + 6*4) spread evenly over the 7 windows
    assert run_series([(60, 40, 6)] * 7).alerts == []


def test_no_surge_below_min_support():
    # 4 pain points in a small segment is a big rate jump but below min_support 5
    st = run_series([(15, 10, 0), (15, 10, 1), (15, 10, 0), (15, 10, 0), (15, 10, 4)])
    assert st.alerts == []
    assert run_series([(15, 10, 0), (15, 10, 1), (15, 10, 0), (15, 10, 0), (15, 10, 5)]).alerts != []


def test_cooldown_suppresses_repeat_unless_severity_rises():
    st = run_series(STABLE + [(60, 40, 18), (60, 40, 40)])
    assert [(f["window_start"], s.severity) for f, s in alerts_for(st, "all", "all")] == [(format_timestamp(T0 + 6 * H), "low")]
    # the next hour surges again at the same severity: held back by the cool-down, but reported
    assert [(f["window_start"], s.severity) for f, s in st.suppressed if f["dimension"] == "all"] == [(format_timestamp(T0 + 7 * H), "low")]

    # with the baseline held fixed: quiet for 3 windows after each alert, unless the severity rises
    cfg = SurgeConfig()
    state = new_state("region", "SP")

    def final(i: int, count: int) -> dict:
        return {"window": "1h", "window_size_seconds": H, "window_start": format_timestamp(T0 + i * H),
                "window_end": format_timestamp(T0 + (i + 1) * H), "dimension": "region", "value": "SP",
                "pain_point": "delivery", "count": count, "orders": 60, "feedback": 40}

    emitted = []
    for i, count in enumerate([12, 12, 12, 12, 12, 12, 40, 40]):
        state.setdefault("surge", {}).setdefault("1h", {"baselines": {}, "alerts": {}})
        state["surge"]["1h"]["baselines"]["delivery"] = {"mean": 4.0, "var": 1.0, "n": 6}
        state, result = process_finals(state, [final(i, count)], cfg)
        emitted.append(("alert", result.alerts[0][1].severity) if result.alerts else ("quiet", result.suppressed[0][1].severity))
    assert emitted == [
        ("alert", "low"), ("quiet", "low"), ("quiet", "low"), ("quiet", "low"),
        ("alert", "low"), ("quiet", "low"),
        ("alert", "high"),  # severity rose: alert within the cool-down
        ("quiet", "high"),
    ]


def test_severity_higher_for_key_tier_and_at_risk():
    regular = run_series(STABLE + [(60, 40, 18)], {"tier": "regular", "lifecycle": "active"})
    key = run_series(STABLE + [(60, 40, 18)], {"tier": "key", "lifecycle": "at_risk"})
    order = ("info", "low", "medium", "high", "critical")
    s_regular = alerts_for(regular, "tier", "regular")[0][1]
    s_key = alerts_for(key, "tier", "key")[0][1]
    s_risk = alerts_for(key, "lifecycle", "at_risk")[0][1]
    s_all = alerts_for(key, "all", "all")[0][1]
    assert order.index(s_key.severity) == order.index(s_regular.severity) + 1
    assert order.index(s_risk.severity) == order.index(s_all.severity) + 1


def test_detect_rules_directly():
    cfg = SurgeConfig()
    rec = {"pain_point": "delivery", "dimension": "all", "value": "all", "count": 20, "orders": 50, "feedback": 50}
    assert detect(rec, None, cfg) is None  # no history at all
    assert detect({**rec, "pain_point": None}, Baseline(1, 1, 9), cfg) is None
    s = detect(rec, Baseline(mean=5.0, var=2.0, n=2), cfg)  # short history: Poisson rule
    assert s is not None and s.rule == "poisson" and s.p_value < 0.001 and s.severity in ("low", "medium")
    assert detect({**rec, "count": 9}, Baseline(mean=5.0, var=2.0, n=2), cfg) is None  # P(X>=9|5) ≈ 0.068
    s = detect(rec, Baseline(mean=5.0, var=2.0, n=5), cfg)
    assert s.rule == "ewma_z" and s.z == pytest.approx(15 / (2 + 5 + 1) ** 0.5) and s.ratio == 4.0
    assert detect(rec, Baseline(mean=11.0, var=0.0, n=5), cfg) is None  # ratio < 2
    assert detect(rec, Baseline(mean=5.0, var=30.0, n=5), cfg) is None  # z < 3
    s = detect(rec, Baseline(mean=0.0, var=0.0, n=4), cfg)  # never seen before in 4 windows
    assert s is not None and s.ratio is None and s.severity == "high"
    small = detect({**rec, "count": 6}, Baseline(mean=0.0, var=0.0, n=4), cfg)  # extreme but only 6 events
    assert small is not None and small.severity == "medium"
    assert detect({**rec, "dimension": "tier", "value": "unknown"}, Baseline(mean=0.0, var=0.0, n=4), cfg) is None
    assert detect({**rec, "value": "unknown"}, Baseline(0.0, 0.0, 4), SurgeConfig(skip_values=frozenset())) is not None
    assert poisson_sf(0, 3) == 1.0 and poisson_sf(5, 0) == 0.0
    assert poisson_sf(9, 5.0) == pytest.approx(0.0680936, rel=1e-5)
    assert poisson_sf(200, 10.0) < 1e-100 and 0 < poisson_sf(200, 10.0)
    b = Baseline()
    b.update(4, 0.3).update(6, 0.3)
    assert (b.n, b.mean) == (2, pytest.approx(4.6)) and b.var == pytest.approx(0.7 * (0.3 * 4))


def test_surge_config_from_env():
    assert SurgeConfig.from_env({}) == SurgeConfig()
    cfg = SurgeConfig.from_env({"PIPELINE_SURGE_MIN_SUPPORT": "10", "PIPELINE_SURGE_ALPHA": "0.5",
                                "PIPELINE_SURGE_ESCALATE": "tier=key, region=SP", "PIPELINE_SURGE_MIN_Z": ""})
    assert (cfg.min_support, cfg.alpha, cfg.min_z) == (10, 0.5, 3.0)
    assert cfg.escalate == frozenset({"tier=key", "region=SP"})
    assert SurgeConfig.from_env({"PIPELINE_SURGE_SKIP_VALUES": ""}).skip_values == frozenset()
    with pytest.raises(ValueError):
        SurgeConfig.from_env({"PIPELINE_SURGE_ALPHA": "0"})


# --------------------------------------------------------------------------- alerts
@pytest.fixture(scope="module")
def alert_validator():
    schema = json.loads((SCHEMAS / "alert.schema.json").read_text())
    return jsonschema_rs.validator_for(schema, validate_formats=True)


def test_surge_alert_validates(alert_validator):
    st = run_series(STABLE + [(60, 40, 18)], {"tier": "key"})
    playbook = load_playbook()
    for final, surge in st.alerts:
        alert = surge_alert(final, surge, playbook, emitted_at=T0 + 8 * H + 0.5)
        errors = [e.message for e in alert_validator.iter_errors(alert)]
        assert errors == [], errors
    final, surge = alerts_for(st, "tier", "key")[0]
    alert = surge_alert(final, surge, playbook, emitted_at="2024-03-19T08:00:00+09:00")
    assert alert["alert_id"] == f"pain_point_surge:1h:{T0 + 6 * H}:tier=key:delivery" == alert_id(final)
    assert alert["subject"] == {"kind": "segment", "dimension": "tier", "value": "key"}
    assert alert["reason"].startswith("delivery pain points among tier=key rose to 18.0 per 100 events in the hour from 2024-03-19 06:00Z")
    b = Baseline()
    for rate in (4, 5, 3, 4, 6, 4):
        b.update(rate, 0.3)
    assert alert["reason"].endswith(f"(18 of 100 orders and feedback events; baseline {b.mean:.1f} ± {b.std:.1f}, 6 windows).")
    assert alert["event_time"] == format_timestamp(T0 + 7 * H) and alert["emitted_at"] == "2024-03-18T23:00:00.000Z"
    assert alert["evidence"] == final["evidence"] and len(alert["evidence"]) == 5
    assert alert["suggested_actions"][0].startswith("Check the carrier's tracking")
    assert any("key-account manager" in a for a in alert["suggested_actions"])
    assert all("{" not in a for a in alert["suggested_actions"])
    d = alert["details"]
    assert (d["count"], d["orders"], d["feedback"], d["windows_observed"]) == (18, 60, 40, 6)
    assert d["current_rate"] == 18.0 and d["ratio"] > 3 and d["z"] >= 3
    assert surge_alert(final, surge, playbook, T0) == surge_alert(final, surge, playbook, T0)  # deterministic


def test_playbook_covers_taxonomy_and_is_replaceable(tmp_path):
    playbook = load_playbook()
    for pid in ("delivery", "product_quality", "product_design", "price_value", "billing_payment",
                "refund_return", "wrong_or_missing_item", "customer_service"):
        assert playbook.pain_points[pid], pid
    assert playbook.actions("made_up", "region", "SP")[0].startswith("Read the evidence events for made_up in region=SP")
    custom = tmp_path / "pb.yaml"
    custom.write_text('default: ["Call {value} ops about {pain_point} {unknown}"]\npain_points:\n  late: []\n')
    pb = load_playbook(env={"PIPELINE_PAIN_PLAYBOOK_FILE": str(custom)})
    assert pb.actions("late", "region", "SP") == ["Call SP ops about late {unknown}"]
    for bad in ("default: 3\n", "default: [a, {b\n", "pain_points: {x: [a]}\n"):
        custom.write_text(bad)
        with pytest.raises(ValueError, match="pb.yaml"):
            load_playbook(custom)


# --------------------------------------------------------------------------- Olist replay
def olist_enriched(data_dir: Path) -> list[dict]:
    """Olist events as enriched-like dicts: real segments, structured delivery pain points, review sentiment."""
    from pipeline.config import SegmentThresholds
    from pipeline.ingest.normalise import normalise
    from pipeline.producers.olist import iter_olist_events
    from pipeline.segment.customer import apply_event
    from pipeline.segment.segments import derive_segment

    thresholds = SegmentThresholds()
    customers: dict[str, dict] = {}
    promised: dict[str, float] = {}
    out = []
    for kind, raw in iter_olist_events(data_dir):
        norm = normalise(kind, raw)
        customers[norm.customer_id], _ = apply_event(customers.get(norm.customer_id), norm, thresholds.fx_rates)
        if kind == "customer_profile":
            continue
        pains, sentiment = [], "neutral"
        if kind == "order" and raw["type"] == "placed":
            promised[raw["order_id"]] = parse_timestamp(raw["promised_delivery_at"])
        if kind == "order" and raw["type"] == "delivered" and norm.occurred_at > promised.get(raw["order_id"], float("inf")):
            pains = [{"id": "delivery", "confidence": 0.9, "evidence": [{"text": "delivered_at", "source": "delivered_at"}]}]
        if kind == "feedback":
            sentiment = "negative" if raw["score"] <= 2 else "positive" if raw["score"] >= 4 else "neutral"
        out.append({
            "event_id": norm.event_id, "kind": kind, "customer_id": norm.customer_id,
            "occurred_at": format_timestamp(norm.occurred_at), "event": raw,
            "segment": derive_segment(customers[norm.customer_id], norm.occurred_at, thresholds),
            "classification": {"sentiment": {"label": sentiment, "score": 0.0}, "pain_points": pains},
        })
    return out


def test_olist_replay_daily_windows(alert_validator):
    if not OLIST_DIR.is_dir():
        pytest.skip(f"{OLIST_DIR} missing")
    events = olist_enriched(OLIST_DIR)
    day = [WindowSpec("1d", D)]
    st = Stage2(grace=300)
    for i in range(0, len(events), 50):  # stage-1 batches of 50 events, in event-time order
        st.feed(partials_from(events[i:i + 50], day))
    st.feed(partials_from([ev("flush", parse_timestamp(events[-1]["occurred_at"]) + 2 * D)], day))

    keys = [f["record_id"] for f in st.finals]
    assert len(keys) == len(set(keys)), "final records must be unique per (window, dimension, value, pain point)"
    assert st.late == Counter(held=0, after_close=0, dropped=0)
    glob = [f for f in st.finals if f["dimension"] == "all" and f["value"] != "flush"]
    late_deliveries = sum(1 for e in events if e["classification"]["pain_points"])
    placed = sum(1 for e in events if e["kind"] == "order" and e["event"]["type"] == "placed")
    assert sum(f["count"] for f in glob) == late_deliveries
    assert sum(f["orders"] for f in {f["window_start"]: f for f in glob}.values()) == placed
    for final, surge in st.alerts:
        errors = [e.message for e in alert_validator.iter_errors(surge_alert(final, surge, load_playbook(), T0))]
        assert errors == []
    by_dim = Counter(f["dimension"] for f, _ in st.alerts)
    by_sev = Counter(s.severity for _, s in st.alerts)
    print(
        f"\n[olist] {len(events)} enriched events, {placed} placed orders, {late_deliveries} late deliveries -> "
        f"{len(st.finals)} final records ({len(st.states)} dimension=value keys), "
        f"{len(st.alerts)} surge alerts ({len(st.suppressed)} suppressed by cool-down); "
        f"by dimension {dict(by_dim)}; by severity {dict(by_sev)}"
    )
    for final, surge in st.alerts[:5]:
        print("   ", surge_alert(final, surge, load_playbook(), T0)["reason"])
