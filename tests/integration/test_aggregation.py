"""Issue 4 acceptance on the real broker: exact final window records, surge alerts, live queries.

Every test gets fresh topics and app id (``settings`` fixture) and runs workers with
``PIPELINE_WINDOWS=1h=3600`` (one window size keeps the output small).  Events are
published one event-time hour at a time, waiting for the consumer group in between —
the way a live stream arrives — and the clock is then advanced past the last window
(``pipeline.control.advance_clock``) so every window closes.  Expected figures are
computed here from what the test sent, never read back from the pipeline.
"""

from __future__ import annotations

import random
import time
import urllib.request
from collections import Counter, defaultdict
from datetime import datetime, timezone

import orjson
import pytest

from pipeline.aggregate.surge import SurgeConfig, process_finals
from pipeline.classify import classify
from pipeline.control import advance_clock
from pipeline.core.timeparse import parse_timestamp
from pipeline.producers.publish import publish
from pipeline.runtime import end_offsets, wait_for_group
from pipeline.summary import read_topic

pytestmark = pytest.mark.integration

H = 3600
BASE = int(datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp())  # on the hour (UTC)
WORKER_ENV = {"PIPELINE_WINDOWS": "1h=3600"}

# text -> the pain points the classifier must give it (checked in `check_texts`)
TEXTS: dict[str, frozenset[str]] = {
    "The delivery was very late and the parcel never arrived": frozenset({"delivery"}),
    "배송이 너무 늦어요": frozenset({"delivery"}),
    "I was charged twice for my order and nobody answers the phone": frozenset({"billing_payment", "customer_service"}),
    "The price is great and delivery was fast": frozenset(),
}
DELIVERY_TEXTS = ["The delivery was very late and the parcel never arrived", "배송이 너무 늦어요"]
MIN_CONFIDENCE = 0.5  # PIPELINE_AGGREGATE_MIN_CONFIDENCE default


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ws(value: str) -> int:
    """A record's RFC 3339 window bound as epoch seconds (the format is the pipeline's business)."""
    return int(parse_timestamp(value))


def check_texts() -> None:
    """Precondition: the classifier tags each text exactly as the expected counts assume."""
    for text, want in TEXTS.items():
        got = {p.id for p in classify(text).pain_points if p.confidence >= MIN_CONFIDENCE}
        assert got == want, (text, got)


def profile(cid: str, tier: str) -> tuple[str, dict]:
    return ("customer_profile", {"schema_version": 1, "customer_id": cid, "event_id": f"prof-{cid}",
                                 "occurred_at": iso(BASE - 30 * 86400), "tier": tier, "region": "KR-Seoul",
                                 "relationship_level": "transactional", "preferred_channel": "app"})


def order(eid: str, cid: str, t: float) -> tuple[str, dict]:
    return ("order", {"schema_version": 1, "event_id": eid, "order_id": f"ord-{eid}", "customer_id": cid,
                      "type": "placed", "occurred_at": iso(t), "promised_delivery_at": iso(t + 30 * 86400),
                      "amount": 50, "currency": "USD", "channel": "app", "region": "KR-Seoul",
                      "items": [{"sku": "sku-1", "category": "books", "qty": 1, "unit_price": 50}]})


def complaint(eid: str, cid: str, t: float, text: str) -> tuple[str, dict]:
    return ("complaint", {"schema_version": 1, "event_id": eid, "complaint_id": f"cp-{eid}", "customer_id": cid,
                          "status": "opened", "channel": "app", "text": text, "occurred_at": iso(t)})


class Expected:
    """Independent model of the final records for dimensions ``all`` and ``tier``."""

    def __init__(self) -> None:
        self.buckets: dict[tuple[str, str, int], dict] = defaultdict(
            lambda: {"events": 0, "orders": 0, "feedback": 0, "complaints": 0, "pain": Counter()})

    def add(self, kind: str, event: dict, tier: str) -> None:
        t = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00")).timestamp()
        start = int(t // H * H)
        pains = TEXTS[event["text"]] if kind == "complaint" else frozenset()
        for dim, value in (("all", "all"), ("tier", tier)):
            b = self.buckets[(dim, value, start)]
            b["events"] += 1
            b["orders"] += kind == "order"
            b["feedback"] += kind == "complaint"
            b["complaints"] += kind == "complaint"
            b["pain"].update(pains)

    def finals(self) -> dict[tuple, dict]:
        """``(window, window_start, dimension, value, pain_point) -> {count, events, orders, feedback}``."""
        out = {}
        for (dim, value, start), b in self.buckets.items():
            for pid, n in (b["pain"].items() or [(None, 0)]):
                out[("1h", start, dim, value, pid)] = {
                    "count": n, "events": b["events"], "orders": b["orders"], "feedback": b["feedback"],
                    "complaints": b["complaints"]}
        return out


def wait_ready_all(workers, timeout: float = 90.0) -> None:
    """Every worker owns partitions, has recovered and is not rebalancing (after the last join)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hs = [w.health() for w in workers]
        if all(h and h.get("assigned_partitions", 0) > 0 and h.get("recovered") and not h.get("rebalancing")
               for h in hs):
            return
        time.sleep(0.5)
    raise TimeoutError(f"workers not ready: {[w.health() for w in workers]}")


def group_topics(s) -> list[str]:
    t = s.topics
    return [*t.inputs, t.rekeyed, t.ticks, s.partials_topic]


def publish_by_hour(s, events: list[tuple[str, dict]]) -> None:
    """Publish in event-time order, one hour at a time, waiting for the group after each hour."""
    by_hour: dict[int, list] = defaultdict(list)
    for kind, e in events:
        t = datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")).timestamp()
        by_hour[int(t // H)].append((t, kind, e))
    for hour in sorted(by_hour):
        chunk = [(k, e) for _, k, e in sorted(by_hour[hour], key=lambda x: x[0])]
        publish(chunk, s, progress=False)
        wait_for_group(s, s.app_id, group_topics(s), timeout=120)


def close_all(s, last_event_time: float, topic: str) -> float:
    """Advance the clock 2 h past the last event, wait for the group and for ``topic`` to stop growing."""
    t0 = time.monotonic()
    advance_clock(s, last_event_time + 2 * H)
    wait_for_group(s, s.app_id, group_topics(s), timeout=120)
    wait_stable(s, [s.topics.aggregates, topic])
    return time.monotonic() - t0


def wait_stable(s, topics: list[str], quiet: float = 3.0, timeout: float = 60.0) -> None:
    """Poll end offsets until they have not changed for ``quiet`` seconds (deadline ``timeout``)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        ends = end_offsets(s, topics)
        if ends != last:
            last, since = ends, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.5)
    raise TimeoutError(f"{topics} still growing after {timeout}s")


def read_json(s, topic: str) -> list[dict]:
    return [orjson.loads(v) for _, v in read_topic(s, topic)]


def set_profiles(s, tiers: dict[str, str]) -> None:
    publish([profile(cid, tier) for cid, tier in tiers.items()], s, progress=False)
    wait_for_group(s, s.app_id, group_topics(s), timeout=120)


# --------------------------------------------------------------------------- 1. exact final records


def test_final_records_equal_independent_counts(settings, worker_factory):
    s = settings
    check_texts()
    t_start = time.monotonic()
    worker_factory(s, **WORKER_ENV)
    t_ready = time.monotonic() - t_start
    tiers = {f"agg-{tier}-{i}": tier for tier in ("key", "regular", "general") for i in range(3)}
    set_profiles(s, tiers)

    rng = random.Random(4)
    texts = list(TEXTS)
    events: list[tuple[str, dict]] = []
    expected = Expected()
    n = 0
    hours = 6
    for h in range(hours):
        for cid, tier in tiers.items():
            for _ in range(rng.randint(0, 2)):
                n += 1
                events.append(order(f"o-{n}", cid, BASE + h * H + rng.randint(0, H - 1)))
            for _ in range(rng.randint(0, 3)):
                n += 1
                events.append(complaint(f"c-{n}", cid, BASE + h * H + rng.randint(0, H - 1), rng.choice(texts)))
    # the last hour's final second and the first second of an hour are window edges worth covering
    events.append(order("o-edge-1", "agg-key-0", BASE + 2 * H))  # exactly the start of hour 2
    events.append(complaint("c-edge-1", "agg-key-0", BASE + 2 * H - 1, DELIVERY_TEXTS[0]))  # last second of hour 1
    for kind, e in events:
        expected.add(kind, e, tiers[e["customer_id"]])
    last = max(datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")).timestamp() for _, e in events)

    t0 = time.monotonic()
    publish_by_hour(s, events)
    t_pub = time.monotonic() - t0
    t_close = close_all(s, last, s.topics.aggregates)

    finals = read_json(s, s.topics.aggregates)
    keys = Counter((r["window"], ws(r["window_start"]), r["dimension"], r["value"], r["pain_point"]) for r in finals)
    dupes = {k: c for k, c in keys.items() if c != 1}
    assert not dupes, f"more than one final record per key and window: {dupes}"

    got = {k: r for r in finals
           if (k := (r["window"], ws(r["window_start"]), r["dimension"], r["value"], r["pain_point"]))[2] in ("all", "tier")}
    want = expected.finals()
    assert set(got) == set(want), (sorted(set(want) - set(got), key=str), sorted(set(got) - set(want), key=str))
    for k, w in want.items():
        r = got[k]
        assert {f: r[f] for f in w} == w, (k, r)
        assert r["late_events"] == 0, r
    windows = {k[1] for k in want}
    values = {k[3] for k in want if k[2] == "tier"}
    assert len(windows) >= 5 and values == {"key", "regular", "general"}
    # no window beyond the data was closed, and every window in the data was
    assert {ws(r["window_start"]) for r in finals} == windows
    print(f"\n[aggregation] {len(events)} events, {len(windows)} windows, {len(values)} tiers; "
          f"{len(finals)} final records ({len(want)} for all/tier), exactly one per key; "
          f"worker ready {t_ready:.1f}s, publish+consume {t_pub:.1f}s, close+settle {t_close:.1f}s")


# --------------------------------------------------------------------------- 2. surge alerts


def run_surge_scenario(s, worker_factory, plan: list[tuple[int, int]], env: dict | None = None,
                       customers: int = 6) -> tuple[list[dict], list[dict]]:
    """``plan``: per hour ``(orders, delivery complaints)`` among tier=key customers.

    Returns (final records, alerts)."""
    check_texts()
    worker_factory(s, **WORKER_ENV, **(env or {}))
    tiers = {f"surge-key-{i}": "key" for i in range(customers)}
    set_profiles(s, tiers)
    cids = list(tiers)
    events = []
    n = 0
    for h, (orders, complaints) in enumerate(plan):
        for i in range(orders):
            n += 1
            events.append(order(f"o-{n}", cids[i % len(cids)], BASE + h * H + 60 + i * 30))
        for i in range(complaints):
            n += 1
            events.append(complaint(f"c-{n}", cids[(i + 1) % len(cids)], BASE + h * H + 90 + i * 30,
                                    DELIVERY_TEXTS[i % 2]))
    publish_by_hour(s, events)
    close_all(s, BASE + (len(plan) - 1) * H + H - 1, s.topics.alerts_pain_points)
    finals = read_json(s, s.topics.aggregates)
    alerts = read_json(s, s.topics.alerts_pain_points)
    return finals, alerts


def key_tier(alerts: list[dict]) -> list[dict]:
    return [a for a in alerts if a["subject"].get("dimension") == "tier" and a["subject"].get("value") == "key"]


def show(alerts: list[dict]) -> str:
    return "; ".join(f"{a['subject']['dimension']}={a['subject']['value']} {a['pain_point']} "
                     f"{a['details']['window_start']} {a['severity']} "
                     f"rate {a['details']['current_rate']} vs {a['details']['baseline_mean']}"
                     for a in alerts) or "none"


BASELINE_HOURS = 5
SURGE_PLAN = [(10, 2)] * BASELINE_HOURS + [(10, 12)]  # steady 2 delivery complaints / 12 events, then 12 / 22


def test_planted_surge_gives_exactly_one_alert(settings, worker_factory):
    finals, alerts = run_surge_scenario(settings, worker_factory, SURGE_PLAN)
    spike_start = BASE + BASELINE_HOURS * H
    print(f"\n[surge] alerts: {show(alerts)}")
    mine = key_tier(alerts)
    assert len(mine) == 1, show(mine)
    a = mine[0]
    assert a["type"] == "pain_point_surge" and a["pain_point"] == "delivery"
    assert a["details"]["window"] == "1h" and ws(a["details"]["window_start"]) == spike_start
    assert a["details"]["count"] == 12 and a["details"]["orders"] == 10
    assert a["alert_id"] == f"pain_point_surge:1h:{BASE + BASELINE_HOURS * H}:tier=key:delivery"
    assert a["evidence"] and a["suggested_actions"]
    # every alert on the topic is unique per (subject, pain point, window)
    ids = Counter(x["alert_id"] for x in alerts)
    assert all(c == 1 for c in ids.values()), ids
    # and the tier=key finals match the plan
    key_delivery = {ws(r["window_start"]): r["count"] for r in finals
                    if r["dimension"] == "tier" and r["value"] == "key" and r["pain_point"] == "delivery"}
    assert key_delivery == {BASE + h * H: c for h, (_, c) in enumerate(SURGE_PLAN)}


def test_same_volume_spread_evenly_gives_no_alert(settings, worker_factory):
    total_orders = sum(o for o, _ in SURGE_PLAN)
    total_complaints = sum(c for _, c in SURGE_PLAN)
    hours = len(SURGE_PLAN)
    per = [total_complaints // hours + (1 if h < total_complaints % hours else 0) for h in range(hours)]
    plan = [(total_orders // hours, c) for c in per]
    assert sum(c for _, c in plan) == total_complaints and sum(o for o, _ in plan) == total_orders
    finals, alerts = run_surge_scenario(settings, worker_factory, plan)
    print(f"\n[even] plan {plan}; alerts: {show(alerts)}")
    assert key_tier(alerts) == []
    key_delivery = {ws(r["window_start"]): r["count"] for r in finals
                    if r["dimension"] == "tier" and r["value"] == "key" and r["pain_point"] == "delivery"}
    assert sum(key_delivery.values()) == total_complaints


def test_spike_below_min_support_gives_no_alert(settings, worker_factory):
    min_support = SurgeConfig().min_support  # PIPELINE_SURGE_MIN_SUPPORT default 5
    plan = [(20, 1)] * BASELINE_HOURS + [(10, min_support - 1)]
    finals, alerts = run_surge_scenario(settings, worker_factory, plan)
    print(f"\n[min-support] plan {plan}; alerts: {show(alerts)}")
    assert key_tier(alerts) == []
    # the same final records *would* be a surge with min_support lowered: only support held it back
    key_finals = [r for r in finals if r["dimension"] == "tier" and r["value"] == "key"]
    state, result = process_finals({}, key_finals, SurgeConfig(min_support=min_support - 1))
    fired = [(ws(r["window_start"]), r["pain_point"]) for r, _ in result.alerts]
    assert fired == [(BASE + BASELINE_HOURS * H, "delivery")], fired


# --------------------------------------------------------------------------- 3. live query, two workers


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return orjson.loads(r.read())


def test_http_top_same_on_two_workers(settings, worker_factory):
    s = settings
    check_texts()
    w1 = worker_factory(s, **WORKER_ENV)
    w2 = worker_factory(s, **WORKER_ENV)
    wait_ready_all([w1, w2])
    tiers = {f"http-{tier}-{i}": tier for tier in ("key", "regular", "general") for i in range(4)}
    set_profiles(s, tiers)
    rng = random.Random(7)
    texts = list(TEXTS)
    events, expected, n = [], Expected(), 0
    for h in range(3):
        for cid, tier in tiers.items():
            for _ in range(rng.randint(1, 2)):
                n += 1
                events.append(order(f"o-{n}", cid, BASE + h * H + rng.randint(0, H - 1)))
            for _ in range(rng.randint(1, 3)):
                n += 1
                events.append(complaint(f"c-{n}", cid, BASE + h * H + rng.randint(0, H - 1), rng.choice(texts)))
    name_orders(events, {cid: f"seller-{i % 3}" for i, cid in enumerate(tiers)})
    for kind, e in events:
        expected.add(kind, e, tiers[e["customer_id"]])
    publish_by_hour(s, events)
    # close hours 0 and 1; hour 2 stays open (current)
    advance_clock(s, BASE + 2 * H + 600)
    wait_for_group(s, s.app_id, group_topics(s), timeout=120)
    wait_stable(s, [s.topics.aggregates])

    answers = [get_json(f"http://127.0.0.1:{w.web_port}/segments/tier=key/top?window=1h") for w in (w1, w2)]
    print(f"\n[http] worker ports {w1.web_port},{w2.web_port}; last_closed "
          f"{[(r['pain_point'], r['count']) for r in answers[0]['last_closed']]}; current "
          f"{[(r['pain_point'], r['count']) for r in answers[0]['current']]}")
    assert answers[0] == answers[1]
    a = answers[0]

    def rows(window_start: int) -> dict:
        return {k[4]: v["count"] for k, v in expected.finals().items()
                if k[1] == window_start and k[2] == "tier" and k[3] == "key" and k[4] is not None}

    assert ws(a["last_closed_window"]["window_start"]) == BASE + H
    assert {r["pain_point"]: r["count"] for r in a["last_closed"]} == rows(BASE + H)
    b = expected.buckets[("tier", "key", BASE + H)]
    assert {f: a["last_closed_window"][f] for f in ("events", "orders", "feedback")} == \
        {f: b[f] for f in ("events", "orders", "feedback")}
    assert ws(a["current_window"]["window_start"]) == BASE + 2 * H
    assert {r["pain_point"]: r["count"] for r in a["current"]} == rows(BASE + 2 * H)
    # the same numbers as the final records on the aggregates topic (the table's closed window)
    table = {r["pain_point"]: r["count"] for r in read_json(s, s.topics.aggregates)
             if r["dimension"] == "tier" and r["value"] == "key" and ws(r["window_start"]) == BASE + H
             and r["pain_point"] is not None}
    assert table == rows(BASE + H)
    check_customer_queries(s, [w1, w2], tiers, events)
    check_root_causes([w1, w2], events)


def name_orders(events: list[tuple[str, dict]], sellers: dict[str, str]) -> None:
    """Issue 18, scope 3: each order gets its customer's seller; each complaint names the customer's
    latest order before it (if any), so its pain points count under that seller."""
    at = {e["event_id"]: parse_timestamp(e["occurred_at"]) for _, e in events}
    for kind, e in events:
        if kind == "order":
            e["seller_id"] = sellers[e["customer_id"]]
    for kind, e in events:
        if kind == "complaint":
            before = [o for k, o in events if k == "order" and o["customer_id"] == e["customer_id"]
                      and at[o["event_id"]] < at[e["event_id"]]]
            if before:
                e["order_id"] = max(before, key=lambda o: at[o["event_id"]])["order_id"]


def check_root_causes(workers, events: list[tuple[str, dict]]) -> None:
    """Every worker gives the same ranking of sellers for the delivery pain point, and it equals
    the complaints naming each seller's orders in the last closed hour."""
    seller_of = {e["order_id"]: e["seller_id"] for k, e in events if k == "order"}
    want: Counter = Counter()
    for kind, e in events:
        t = parse_timestamp(e["occurred_at"])
        if kind == "complaint" and e.get("order_id") and BASE + H <= t < BASE + 2 * H and \
                "delivery" in TEXTS[e["text"]]:
            want[seller_of[e["order_id"]]] += 1
    answers = [get_json(f"http://127.0.0.1:{w.web_port}/root-causes/delivery?dimension=seller&window=1h")
               for w in workers]
    print(f"[root causes] delivery by seller, last closed hour: {answers[0]['last_closed']}")
    assert answers[0] == answers[1] and answers[0]["workers"] == 2
    assert {r["value"]: r["count"] for r in answers[0]["last_closed"]} == dict(want) and want

def check_customer_queries(s, workers, tiers: dict[str, str], events: list[tuple[str, dict]]) -> None:
    """Issue 18, scope 4: any worker answers for any customer (routed to its owner), the same answer;
    an unknown customer is a 404; the CLI prints it as tables."""
    import urllib.error

    from pipeline import cli

    orders = Counter(e["customer_id"] for kind, e in events if kind == "order")
    complaints = Counter(e["customer_id"] for kind, e in events if kind == "complaint")
    for cid, tier in tiers.items():
        docs = [get_json(f"http://127.0.0.1:{w.web_port}/customers/{cid}") for w in workers]
        assert docs[0] == docs[1]
        doc = docs[0]
        assert doc["customer_id"] == cid and doc["segment"]["value_tier"] == tier
        assert doc["segment"]["orders_count"] == orders[cid]
        # each order is a delivery promise 30 days out (still open); complaints open response commitments
        kinds = Counter(c["kind"] for c in doc["commitments"])
        assert kinds["delivery"] == orders[cid], kinds
        assert doc["churn"]["score"] >= 0 and all("contribution" in f for f in doc["churn"]["factors"])
        assert complaints[cid] > 0 and any(f["evidence"] for f in doc["churn"]["factors"])
    for w in workers:
        try:
            get_json(f"http://127.0.0.1:{w.web_port}/customers/nobody-{w.web_port}")
            raise AssertionError("an unknown customer must be a 404")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
    cid = next(iter(tiers))
    first = get_json(f"http://127.0.0.1:{workers[0].web_port}/customers/{cid}")["commitments"][0]["commitment_id"]
    docs = [get_json(f"http://127.0.0.1:{w.web_port}/customers/{cid}/commitments/{first}") for w in workers]
    assert docs[0] == docs[1] and docs[0]["commitment_id"] == first and docs[0]["kind"] == "delivery"
    out = cli.render_customer(cli.query_worker(f"http://127.0.0.1:{workers[1].web_port}", f"/customers/{cid}", None))
    print(out)
    assert out.startswith(f"customer {cid}") and "open commitment" in out
