"""Producers without Kafka: Olist adapter, simulator, text loaders, publisher (fake producer).

Olist and text tests read the real data in ``settings.data_dir`` and skip when it is
absent.  Events are checked against the field contracts below and, when
``schemas/*.schema.json`` exist, against the JSON Schemas with ``jsonschema``.
"""

from __future__ import annotations

import collections
import json
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from pipeline.config import load_settings
from pipeline.producers import publish as pub
from pipeline.producers import texts
from pipeline.producers.olist import iter_olist_events, olist_stats, parse_olist_time
from pipeline.producers.simulator import iter_simulated_events

SETTINGS = load_settings()
DATA_DIR = SETTINGS.data_dir
OLIST_DIR = DATA_DIR / "olist_subset_5k"
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
START = datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
CHANNELS = {"phone", "web", "app", "store", "marketplace", "email", "chat", "social", "other"}

# kind -> (required fields, allowed fields), as in the event contracts
CONTRACT: dict[str, tuple[set[str], set[str]]] = {
    "order": (
        {"schema_version", "event_id", "order_id", "customer_id", "type", "occurred_at"},
        {"promised_delivery_at", "amount", "currency", "channel", "region", "items",
         "seller_id", "carrier", "reason", "attributes"},
    ),
    "complaint": (
        {"schema_version", "event_id", "complaint_id", "customer_id", "status", "channel", "occurred_at"},
        {"text", "order_id", "language", "promised_response_by", "promised_resolution_by",
         "promised_callback_at", "promised_refund_by", "owner", "attributes"},
    ),
    "feedback": (
        {"schema_version", "event_id", "feedback_id", "customer_id", "source", "score", "scale", "occurred_at"},
        {"expectation_score", "text", "language", "order_id", "channel", "attributes"},
    ),
    "customer_profile": (
        {"schema_version", "customer_id"},
        {"event_id", "occurred_at", "tier", "region", "relationship_level", "signup_at",
         "preferred_channel", "attributes"},
    ),
}
SCHEMA_FILES = {
    "order": "order_event",
    "complaint": "complaint_event",
    "feedback": "feedback_event",
    "customer_profile": "customer_profile",
}
ORDER_TYPES = {"placed", "confirmed", "shipped", "delivered", "delivery_rescheduled",
               "cancelled", "returned", "refunded"}


def ts(value: str) -> datetime:
    assert TIMESTAMP.match(value), value
    return datetime.fromisoformat(value)


def contract_errors(kind: str, ev: dict[str, Any]) -> list[str]:
    """Field-contract violations of one event (empty list: fine)."""
    required, optional = CONTRACT[kind]
    errors = [f"missing {f}" for f in required - ev.keys()]
    errors += [f"extra {f}" for f in ev.keys() - required - optional]
    if ev.get("schema_version") != 1:
        errors.append("schema_version")
    for key, value in ev.items():
        if (key == "occurred_at" or key.startswith("promised_") or key == "signup_at") and not TIMESTAMP.match(value):
            errors.append(f"bad timestamp {key}={value!r}")
    if "channel" in ev and ev["channel"] not in CHANNELS:
        errors.append("channel")
    if kind == "order":
        if ev["type"] not in ORDER_TYPES:
            errors.append("type")
        if ev["type"] in ("placed", "delivery_rescheduled") and "promised_delivery_at" not in ev:
            errors.append("promised_delivery_at")
        if ev["type"] == "placed":
            errors += [f"placed needs {f}" for f in ("amount", "currency", "channel", "region", "items") if f not in ev]
        if ("amount" in ev) != ("currency" in ev):
            errors.append("amount/currency go together")
        if "amount" in ev and not (isinstance(ev["amount"], (int, float)) and ev["amount"] >= 0):
            errors.append("amount")
        if "currency" in ev and not re.fullmatch(r"[A-Z]{3}", ev["currency"]):
            errors.append("currency")
        for item in ev.get("items", []):
            if set(item) != {"sku", "category", "qty", "unit_price"}:
                errors.append(f"item fields {sorted(item)}")
            elif not (isinstance(item["qty"], int) and item["qty"] >= 1 and item["unit_price"] >= 0):
                errors.append("item qty/unit_price")
        if "items" in ev and not ev["items"]:
            errors.append("empty items")
    if kind == "complaint":
        if ev["status"] not in {"opened", "updated", "resolved", "reopened"}:
            errors.append("status")
        if ev["status"] == "opened" and not ev.get("text"):
            errors.append("opened needs text")
    if kind == "feedback":
        if ev["source"] not in {"review", "survey", "nps", "csat"}:
            errors.append("source")
        if set(ev["scale"]) != {"min", "max"} or not ev["scale"]["min"] <= ev["score"] <= ev["scale"]["max"]:
            errors.append("score/scale")
    if kind == "customer_profile":
        if ev.get("tier", "key") not in {"key", "regular", "general"}:
            errors.append("tier")
        levels = {"transactional", "preferred_supplier", "partner", "strategic_alliance"}
        if ev.get("relationship_level", "partner") not in levels:
            errors.append("relationship_level")
    for name in ("attributes",):
        if name in ev and not all(isinstance(v, (str, int, float, bool, type(None))) for v in ev[name].values()):
            errors.append("attributes must be scalars")
    return errors


def assert_contract(events: list[tuple[str, dict]]) -> None:
    bad = [(k, e.get("event_id"), errs) for k, e in events if (errs := contract_errors(k, e))]
    assert not bad, bad[:5]


def validators() -> dict[str, Any]:
    """kind -> jsonschema validator; skips the test if the schemas are not there yet."""
    jsonschema = pytest.importorskip("jsonschema")
    out = {}
    for kind, name in SCHEMA_FILES.items():
        path = SCHEMA_DIR / f"{name}.schema.json"
        if not path.is_file():
            pytest.skip(f"{path.name} not written yet")
        schema = json.loads(path.read_text(encoding="utf-8"))
        out[kind] = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    return out


def assert_schemas(events: list[tuple[str, dict]]) -> None:
    checks = validators()
    bad = []
    for kind, ev in events:
        errors = [e.message for e in checks[kind].iter_errors(ev)]
        if errors:
            bad.append((kind, ev.get("event_id"), errors[:3]))
    assert not bad, bad[:5]


def sample(events: list[tuple[str, dict]], per_variant: int = 200) -> list[tuple[str, dict]]:
    """Up to ``per_variant`` events of every (kind, type/status/source) variant."""
    seen: collections.Counter[tuple[str, str]] = collections.Counter()
    out = []
    for kind, ev in events:
        variant = (kind, str(ev.get("type") or ev.get("status") or ev.get("source") or ""))
        if seen[variant] < per_variant:
            seen[variant] += 1
            out.append((kind, ev))
    return out


# ----------------------------------------------------------------------------- Olist

needs_olist = pytest.mark.skipif(not OLIST_DIR.is_dir(), reason="Olist data not available")


@pytest.fixture(scope="module")
def olist() -> list[tuple[str, dict]]:
    if not OLIST_DIR.is_dir():
        pytest.skip("Olist data not available")
    started = time.perf_counter()
    events = list(iter_olist_events(DATA_DIR))
    print(f"\nOlist: {len(events)} events in {time.perf_counter() - started:.3f}s")
    return events


def test_parse_olist_time_attaches_zone() -> None:
    assert parse_olist_time("10/2/2017 10:56", SAO_PAULO).isoformat() == "2017-10-02T10:56:00-03:00"
    assert parse_olist_time("1/15/2018 0:00", SAO_PAULO).isoformat() == "2018-01-15T00:00:00-02:00"  # DST
    assert parse_olist_time("", SAO_PAULO) is None
    with pytest.raises(ValueError):
        parse_olist_time("2017-10-02", SAO_PAULO)


def test_olist_event_time_order(olist: list[tuple[str, dict]]) -> None:
    times = [ts(ev["occurred_at"]) for _, ev in olist]
    assert all(a <= b for a, b in zip(times, times[1:]))
    offsets = collections.Counter(ev["occurred_at"][-6:] for _, ev in olist)
    assert set(offsets) <= {"-03:00", "-02:00"}, offsets


def test_olist_counts_are_plausible(olist: list[tuple[str, dict]]) -> None:
    kinds = collections.Counter(k for k, _ in olist)
    types = collections.Counter(ev["type"] for k, ev in olist if k == "order")
    assert 4900 <= types["placed"] <= 5000
    assert 4900 <= kinds["feedback"] <= 4988
    assert 4850 <= kinds["customer_profile"] <= types["placed"]
    assert 4800 <= types["delivered"] <= types["shipped"] <= types["placed"]
    assert 0 < types["cancelled"] < 100
    stats = olist_stats(DATA_DIR)
    assert stats.events == dict(kinds)
    assert stats.orders_read == 5000 and stats.reviews_read == 4988
    assert stats.orders_read - stats.orders_skipped == types["placed"]
    assert stats.reviews_read - stats.reviews_skipped == kinds["feedback"]


def test_olist_event_ids_unique(olist: list[tuple[str, dict]]) -> None:
    ids = [ev["event_id"] for _, ev in olist]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"olist-(order-\w+-[a-z_]+|review-\d+|profile-\w+)", i) for i in ids)


def test_olist_placed_promises_end_of_local_day(olist: list[tuple[str, dict]]) -> None:
    placed = [ev for k, ev in olist if k == "order" and ev["type"] == "placed"]
    assert placed
    for ev in placed:
        local = ts(ev["promised_delivery_at"]).astimezone(SAO_PAULO)
        assert (local.hour, local.minute, local.second) == (23, 59, 59), ev["promised_delivery_at"]
        assert ev["promised_delivery_at"].startswith(local.date().isoformat() + "T23:59:59")
        assert ev["currency"] == "BRL" and ev["channel"] == "marketplace" and ev["items"]
        assert ts(ev["promised_delivery_at"]) > ts(ev["occurred_at"])


def test_olist_known_order(olist: list[tuple[str, dict]]) -> None:
    by_id = {ev["event_id"]: ev for _, ev in olist}
    placed = by_id["olist-order-e481f51cbdc54678b7cc49136f2d6af7-placed"]
    assert placed["occurred_at"] == "2017-10-02T10:56:00-03:00"
    assert placed["promised_delivery_at"] == "2017-10-18T23:59:59-02:00"  # Brazil DST from 2017-10-15
    assert by_id["olist-order-e481f51cbdc54678b7cc49136f2d6af7-delivered"]["occurred_at"] == (
        "2017-10-10T21:25:00-03:00"  # before the DST switch
    )
    customer = placed["customer_id"]
    assert by_id[f"olist-profile-{customer}"]["customer_id"] == customer


def test_olist_orders_without_lines_keep_their_events(olist: list[tuple[str, dict]]) -> None:
    missing = [ev for k, ev in olist if k == "order" and ev.get("attributes", {}).get("items_missing")]
    assert len(missing) == olist_stats(DATA_DIR).orders_without_items > 0
    for ev in missing:
        assert ev["type"] == "placed" and ev["amount"] == 0
        assert ev["items"] == [{"sku": "unknown", "category": "unknown", "qty": 1, "unit_price": 0.0}]
    ids = {ev["order_id"] for ev in missing}
    cancelled = {ev["order_id"] for k, ev in olist if k == "order" and ev["type"] == "cancelled"}
    assert ids <= cancelled  # in the subset they are all unavailable/canceled


def test_olist_real_late_deliveries(olist: list[tuple[str, dict]]) -> None:
    promised: dict[str, datetime] = {}
    late = on_time = 0
    for kind, ev in olist:
        if kind == "order" and ev["type"] == "placed":
            promised[ev["order_id"]] = ts(ev["promised_delivery_at"])
        elif kind == "order" and ev["type"] == "delivered":
            if ts(ev["occurred_at"]) > promised[ev["order_id"]]:
                late += 1
            else:
                on_time += 1
    stats = olist_stats(DATA_DIR)
    print(f"\nOlist deliveries: {late} late, {on_time} on time")
    assert 100 < late < on_time
    assert (late, on_time) == (stats.late_deliveries, stats.on_time_deliveries)


def test_olist_lifecycle_consistency(olist: list[tuple[str, dict]]) -> None:
    """Profiles precede a customer's events; order events follow their placed; reviews follow it too."""
    profiled: set[str] = set()
    placed: set[str] = set()
    for kind, ev in olist:
        if kind == "customer_profile":
            profiled.add(ev["customer_id"])
            continue
        assert ev["customer_id"] in profiled, ev
        if kind == "order" and ev["type"] == "placed":
            placed.add(ev["order_id"])
        else:
            assert ev["order_id"] in placed, ev


def test_olist_events_follow_contract(olist: list[tuple[str, dict]]) -> None:
    assert_contract(olist)
    reviews = [ev for k, ev in olist if k == "feedback"]
    assert all(ev["source"] == "review" and ev["scale"] == {"min": 1, "max": 5} for ev in reviews)
    assert all("text" not in ev for ev in reviews)
    profile = next(ev for k, ev in olist if k == "customer_profile")
    assert set(profile["attributes"]) == {"city", "zip_prefix"} and len(profile["attributes"]["zip_prefix"]) == 5


def test_olist_events_match_json_schemas(olist: list[tuple[str, dict]]) -> None:
    assert_schemas(sample(olist, per_variant=1000))


def test_olist_yields_fresh_copies_and_accepts_subfolder(olist: list[tuple[str, dict]]) -> None:
    first = next(iter_olist_events(DATA_DIR))
    first[1]["customer_id"] = "mutated"
    again = next(iter_olist_events(OLIST_DIR))
    assert again == olist[0] and again[1]["customer_id"] != "mutated"


# ------------------------------------------------------------------------- simulator


@pytest.fixture(scope="module")
def simulated() -> list[tuple[str, dict]]:
    return list(iter_simulated_events(5000, seed=42, data_dir=DATA_DIR, start=START))


def test_simulator_is_deterministic_per_seed(simulated: list[tuple[str, dict]]) -> None:
    again = list(iter_simulated_events(5000, seed=42, data_dir=DATA_DIR, start=START))
    assert again == simulated
    other = list(iter_simulated_events(5000, seed=43, data_dir=DATA_DIR, start=START))
    assert other != simulated


def test_simulator_profiles_first_then_monotonic_time(simulated: list[tuple[str, dict]]) -> None:
    kinds = [k for k, _ in simulated]
    assert kinds[:500] == ["customer_profile"] * 500
    assert "customer_profile" not in kinds[500:]
    times = [ts(ev["occurred_at"]) for _, ev in simulated]
    assert times[0] == START and all(a <= b for a, b in zip(times, times[1:]))
    assert len(simulated) == 5000


def test_simulator_kind_mix(simulated: list[tuple[str, dict]]) -> None:
    activity = collections.Counter(k for k, _ in simulated if k != "customer_profile")
    total = sum(activity.values())
    shares = {k: activity[k] / total for k in ("order", "feedback", "complaint")}
    assert shares["order"] == pytest.approx(0.60, abs=0.04), shares
    assert shares["feedback"] == pytest.approx(0.25, abs=0.04), shares
    assert shares["complaint"] == pytest.approx(0.15, abs=0.03), shares


def test_simulator_population() -> None:
    events = list(iter_simulated_events(3000, seed=1, data_dir=DATA_DIR, customers=3000, start=START))
    tiers = collections.Counter(ev["tier"] for _, ev in events)
    assert tiers["key"] / 3000 == pytest.approx(0.10, abs=0.03)
    assert tiers["regular"] / 3000 == pytest.approx(0.30, abs=0.04)
    assert tiers["general"] / 3000 == pytest.approx(0.60, abs=0.04)
    assert {ev["region"][:2] for _, ev in events} == {"KR", "US", "BR"}
    assert all(ts(ev["signup_at"]) < START for _, ev in events)
    assert len({ev["relationship_level"] for _, ev in events}) == 4


def test_simulator_lifecycles_are_realistic() -> None:
    events = list(iter_simulated_events(20000, seed=7, data_dir=DATA_DIR, start=START))
    assert_contract(events)
    orders = collections.Counter(ev["type"] for k, ev in events if k == "order")
    assert {"placed", "shipped", "delivered", "delivery_rescheduled", "cancelled", "returned", "refunded"} <= set(orders)
    statuses = collections.Counter(ev["status"] for k, ev in events if k == "complaint")
    assert set(statuses) == {"opened", "updated", "resolved", "reopened"}
    sources = collections.Counter(ev["source"] for k, ev in events if k == "feedback")
    assert set(sources) == {"review", "nps", "csat"}
    assert {ev["currency"] for k, ev in events if k == "order" and ev["type"] == "placed"} == {"KRW", "USD", "BRL"}

    promise: dict[str, datetime] = {}
    opened: set[str] = set()
    late = on_time = 0
    for kind, ev in events:
        if kind == "order":
            if ev["type"] == "placed":
                promise[ev["order_id"]] = ts(ev["promised_delivery_at"])
                local = promise[ev["order_id"]]
                assert (local.hour, local.minute, local.second) == (23, 59, 59)
            else:
                assert ev["order_id"] in promise, ev  # follow-ups come after placed
                if ev["type"] == "delivery_rescheduled":
                    assert ts(ev["promised_delivery_at"]) > promise[ev["order_id"]]
                    promise[ev["order_id"]] = ts(ev["promised_delivery_at"])
                elif ev["type"] == "delivered":
                    late, on_time = (late + 1, on_time) if ts(ev["occurred_at"]) > promise[ev["order_id"]] else (late, on_time + 1)
        elif kind == "complaint":
            if ev["status"] == "opened":
                opened.add(ev["complaint_id"])
                assert ts(ev["promised_response_by"]) > ts(ev["occurred_at"])
                assert ts(ev["promised_resolution_by"]) > ts(ev["promised_response_by"])
            else:
                assert ev["complaint_id"] in opened
    assert 0.05 < late / (late + on_time) < 0.25, (late, on_time)

    complaints = [ev for k, ev in events if k == "complaint" and ev["status"] == "opened"]
    assert {ev["language"] for ev in complaints} == {"ko", "en"}
    assert any("promised_callback_at" in ev for ev in complaints)
    assert any("promised_refund_by" in ev for ev in complaints)
    feedback = [ev for k, ev in events if k == "feedback"]
    assert any("expectation_score" in ev for ev in feedback)
    assert any(ev.get("language") == "ko" for ev in feedback) and any(ev.get("language") == "en" for ev in feedback)
    nps = [ev for ev in feedback if ev["source"] == "nps"]
    assert all(ev["scale"] == {"min": 0, "max": 10} for ev in nps)
    ids = [ev["event_id"] for _, ev in events]
    assert len(ids) == len(set(ids))


def test_simulator_events_follow_contract(simulated: list[tuple[str, dict]]) -> None:
    assert_contract(simulated)


def test_simulator_events_match_json_schemas(simulated: list[tuple[str, dict]]) -> None:
    assert_schemas(simulated)


def test_simulator_without_data_uses_fallback_texts(tmp_path: Path) -> None:
    events = list(iter_simulated_events(1500, seed=3, data_dir=tmp_path / "missing", customers=100, start=START))
    assert_contract(events)
    assert any(k == "complaint" and ev.get("text") for k, ev in events)


def test_simulator_edges() -> None:
    assert list(iter_simulated_events(0, seed=1, data_dir=DATA_DIR, start=START)) == []
    few = list(iter_simulated_events(10, seed=1, data_dir=DATA_DIR, customers=50, start=START))
    assert [k for k, _ in few] == ["customer_profile"] * 10
    endless = iter_simulated_events(None, seed=1, data_dir=DATA_DIR, customers=5, start=START)
    assert sum(1 for _, _ in zip(range(1000), endless)) == 1000
    with pytest.raises(ValueError):
        iter_simulated_events(-1, seed=1, data_dir=DATA_DIR)
    naive = list(iter_simulated_events(1, seed=1, data_dir=DATA_DIR, start=START.replace(tzinfo=None)))
    assert naive[0][1]["occurred_at"] == "2025-03-01T09:00:00+00:00"


# ----------------------------------------------------------------------------- texts


@pytest.mark.skipif(not DATA_DIR.is_dir(), reason="data not available")
def test_text_loaders_read_real_data() -> None:
    ko = texts.korean_reviews(DATA_DIR)
    assert len(ko) == 315 and all(t.language == "ko" and t.rating is None for t in ko)
    assert 100 < sum(bool(t.negative) for t in ko) < 315
    alexa = texts.alexa_reviews(DATA_DIR)
    assert len(alexa) > 1500 and {t.rating for t in alexa} == {1, 2, 3, 4, 5}
    cfpb = texts.cfpb_narratives(DATA_DIR)
    assert len(cfpb) == 746
    bitext = texts.bitext_utterances(DATA_DIR)
    assert bitext and {t.topic for t in bitext} <= texts.COMPLAINT_INTENTS
    assert texts.english_complaints(DATA_DIR) == bitext + cfpb
    assert texts.korean_reviews(DATA_DIR) is ko  # cached


def test_text_loaders_tolerate_missing_dir(tmp_path: Path) -> None:
    for loader in (texts.korean_reviews, texts.cfpb_narratives, texts.bitext_utterances,
                   texts.english_complaints, texts.alexa_reviews):
        assert loader(tmp_path) == []


# --------------------------------------------------------------------------- publish


class FakeFuture:
    def __init__(self, fail: bool) -> None:
        self.fail = fail

    def add_errback(self, fn: Any) -> "FakeFuture":
        if self.fail:
            fn(RuntimeError("broker said no"))
        return self


class FakeProducer:
    def __init__(self, fail_topic: str | None = None) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.metadata: list[str] = []
        self.fail_topic = fail_topic
        self.flushed = self.closed = False

    def send(self, topic: str, key: bytes | None = None, value: bytes = b"") -> FakeFuture:
        self.sent.append((topic, key, value))
        return FakeFuture(topic == self.fail_topic)

    def partitions_for(self, topic: str) -> set[int]:
        self.metadata.append(topic)
        return {0}

    def flush(self) -> None:
        self.flushed = True

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeProducer:
    producer = FakeProducer()
    monkeypatch.setattr(pub, "make_producer", lambda settings, **kw: producer)
    return producer


def test_publish_routes_keys_and_counts(fake: FakeProducer, simulated: list[tuple[str, dict]]) -> None:
    events = simulated[:2000]
    counts = pub.publish(events, SETTINGS, progress=False)
    assert counts == dict(collections.Counter(k for k, _ in events))
    topics = SETTINGS.topics
    expected_topic = {"order": topics.orders, "complaint": topics.complaints,
                      "feedback": topics.feedback, "customer_profile": topics.profiles}
    for (kind, ev), (topic, key, value) in zip(events, fake.sent):
        assert topic == expected_topic[kind]
        assert key == ev["customer_id"].encode("utf-8")
        assert orjson.loads(value) == ev
    assert fake.flushed and fake.closed


def test_publish_rate_limit_sleeps(fake: FakeProducer, simulated: list[tuple[str, dict]]) -> None:
    started = time.monotonic()
    pub.publish(simulated[:21], SETTINGS, rate=200.0, progress=False)
    assert time.monotonic() - started >= 0.09  # 20 intervals of 5 ms
    assert set(fake.metadata) == set(SETTINGS.topics.inputs)  # metadata fetched before the pace starts
    with pytest.raises(ValueError):
        pub.publish([], SETTINGS, rate=0, progress=False)


def test_publish_unknown_kind_and_failures(monkeypatch: pytest.MonkeyPatch, simulated: list[tuple[str, dict]]) -> None:
    producer = FakeProducer()
    monkeypatch.setattr(pub, "make_producer", lambda settings, **kw: producer)
    with pytest.raises(ValueError, match="unknown event kind"):
        pub.publish([simulated[0], ("bogus", {"customer_id": "c"})], SETTINGS, progress=False)
    assert len(producer.sent) == 1 and producer.flushed and producer.closed

    failing = FakeProducer(fail_topic=SETTINGS.topics.profiles)
    monkeypatch.setattr(pub, "make_producer", lambda settings, **kw: failing)
    with pytest.raises(pub.PublishError, match="broker said no"):
        pub.publish(simulated[:3], SETTINGS, progress=False)
    assert failing.flushed and failing.closed


def test_publish_raw(fake: FakeProducer) -> None:
    assert pub.publish_raw("events.orders", [(b"k", b"not json"), (None, b"\xff")], SETTINGS) == 2
    assert fake.sent == [("events.orders", b"k", b"not json"), ("events.orders", None, b"\xff")]
    assert fake.flushed and fake.closed


def test_make_producer_config(monkeypatch: pytest.MonkeyPatch) -> None:
    captured: dict[str, Any] = {}
    monkeypatch.setattr(pub, "KafkaProducer", lambda **kw: captured.update(kw) or "producer")
    settings = load_settings({"KAFKA_BOOTSTRAP_SERVERS": "h1:9092,h2:9092"})
    assert pub.make_producer(settings) == "producer"
    from kafka import KafkaProducer

    assert set(captured) <= set(KafkaProducer.DEFAULT_CONFIG)
    assert captured["bootstrap_servers"] == ["h1:9092", "h2:9092"]
    assert (captured["acks"], captured["linger_ms"], captured["batch_size"], captured["compression_type"]) == (
        "all", 20, 256 * 1024, None)


def test_pacer_caps_the_rate_and_does_not_burst_after_a_stall() -> None:
    """A sender that fell behind (a send blocked 1 s) resumes at the rate: no burst of the missed sends."""
    now = [0.0]
    sends: list[float] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    pacer = pub._Pacer(100.0, clock=lambda: now[0], sleep=sleep)
    for i in range(300):
        if i == 50:
            now[0] += 1.0  # stalled
        pacer.wait()
        sends.append(now[0])
    after = sends[50:]
    window = [sum(1 for t in after if start <= t < start + 0.1) for start in after]
    assert max(window) <= 31  # 100 ev/s: 10 per 0.1 s, plus the 0.2 s slack caught up at most
    assert sends[-1] - sends[0] >= 2.9 + 1.0 - 0.2 - 0.01
