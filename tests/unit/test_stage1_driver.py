"""The stage-1 driver (pipeline/drivers/stage1.py) without a broker: event-time order across
topics, a re-read after a crash skipped, re-keyed copies applied once, enriched events and alerts
not written twice, the clock restored from the table."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timezone

import orjson
import pytest

from pipeline.aggregate.windows import WindowSpec
from pipeline.config import load_settings
from pipeline.drivers.stage1 import In, Recovery, Stage1, Stage1Config
from pipeline.metrics import Metrics
from pipeline.process import Processor, Record
from pipeline.retry import RetryPolicy

DAY = 86400.0
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc).timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def placed(cid: str, oid: str, at: float, promise_days: float = 5.0) -> dict:
    return {"schema_version": 1, "event_id": f"{oid}-placed", "order_id": oid, "customer_id": cid, "type": "placed",
            "occurred_at": iso(at), "promised_delivery_at": iso(at + promise_days * DAY), "amount": 30.0,
            "currency": "USD", "channel": "web", "region": "US-NY",
            "items": [{"sku": "s", "category": "books", "qty": 1, "unit_price": 30.0}]}


def review(cid: str, rid: str, at: float, score: int = 1, text: str = "Terrible, the parcel never came.") -> dict:
    return {"schema_version": 1, "event_id": rid, "feedback_id": rid, "customer_id": cid, "occurred_at": iso(at),
            "source": "review", "channel": "web", "score": score, "scale": {"min": 1, "max": 5}, "text": text}


@pytest.fixture(scope="module")
def settings():
    return dataclasses.replace(load_settings({}), partitions=1)


@pytest.fixture(scope="module")
def processor(settings):
    return Processor(settings, env={})


class View:
    """A consumer that has fetched everything given so far (nothing pending, every topic caught up)."""

    def __init__(self) -> None:
        self.ends: dict[str, int] = {}

    def highwater(self, topic, partition):
        return self.ends.get(topic, 0)

    def committed(self, topic, partition):
        return 0

    def expected(self, topic, partition):
        return None

    def fetched(self, topic, partition):
        return self.ends.get(topic, 0), None


class Log:
    """Records as a producer wrote them, per topic (offsets from 0), all on partition 0."""

    def __init__(self, settings, view: View) -> None:
        self.t, self.view = settings.topics, view

    def rec(self, topic: str, doc: dict, key: str | None = None) -> In:
        offset = self.view.ends.get(topic, 0)
        self.view.ends[topic] = offset + 1
        raw = orjson.dumps(doc)
        return In(topic, 0, offset, (key or doc["customer_id"]).encode(), raw, T0, token=(topic, offset))

    def order(self, doc: dict) -> In:
        return self.rec(self.t.orders, doc)

    def feedback(self, doc: dict) -> In:
        return self.rec(self.t.feedback, doc)


def driver(settings, processor, table) -> Stage1:
    cfg = Stage1Config(1, [WindowSpec("1d", int(DAY))], 0.5, RetryPolicy(attempts=1), settings)
    return Stage1(cfg, processor, table, Metrics(), {})


def run(d: Stage1, records, view, table=None, recovery: Recovery | None = None):
    if d.needs_recovery(0):
        d.recover(0, recovery or Recovery({}))
    fx = asyncio.run(d.batch(records, view, wall=T0 + 400 * DAY, seen={0}))
    if table is not None:
        table.update(fx.writes)
    return fx


def enriched(settings, fx) -> dict[str, dict]:
    return {orjson.loads(s.value)["event_id"]: orjson.loads(s.value) for s in fx.sends
            if s.topic == settings.topics.enriched}


def test_a_late_review_delivered_first_still_counts_every_earlier_order(settings, processor):
    view, table = View(), {}
    log = Log(settings, view)
    batch = [log.feedback(review("c1", "r1", T0 + 30 * DAY))]
    batch += [log.order(placed("c1", f"o{w}", T0 + w * 7 * DAY)) for w in range(3)]
    fx = run(driver(settings, processor, table), batch, view, table)
    docs = enriched(settings, fx)
    assert docs["r1"]["segment"]["orders_count"] == 3
    assert sorted(fx.done) == sorted(r.token for r in batch)  # every record released and applied


def test_a_re_read_after_a_crash_is_skipped(settings, processor):
    """States stored, input offsets not committed: the next owner reads the same records again."""
    view, table = View(), {}
    log = Log(settings, view)
    batch = [log.order(placed("c2", f"p{w}", T0 + w * DAY)) for w in range(3)]
    first = run(driver(settings, processor, table), batch, view, table)
    assert len(enriched(settings, first)) == 3
    stored = orjson.loads(orjson.dumps(table))
    again = driver(settings, processor, stored)
    fx = run(again, batch, view, stored)
    assert enriched(settings, fx) == {}
    assert again.metrics.errors.labels("replayed_record_skipped")._value.get() == 3
    assert stored["c2"]["seg"] == table["c2"]["seg"]


def test_enriched_events_written_before_a_crash_are_not_written_twice(settings, processor):
    """Sent and confirmed, state never stored: applied again, but the read-back ids keep the
    enriched events from being written a second time."""
    view, table = View(), {}
    log = Log(settings, view)
    batch = [log.order(placed("c3", f"q{w}", T0 + w * DAY)) for w in range(2)]
    lost = run(driver(settings, processor, table), batch, view)  # nothing stored
    ids = set(enriched(settings, lost))
    again = driver(settings, processor, table)
    fx = run(again, batch, view, table, Recovery({}, written=ids))
    assert enriched(settings, fx) == {}
    assert table["c3"]["seg"]["orders"] == 2  # the state is stored this time


def test_a_re_keyed_record_forwarded_twice_is_applied_once(settings, processor):
    view, table = View(), {}
    log = Log(settings, view)
    wrong_key = processor.process(Record(settings.topics.orders, 0, 0, b"not-the-customer",
                                         orjson.dumps(placed("c4", "k1", T0)), T0), lambda k: None)
    (fwd,) = wrong_key.outputs
    assert fwd.topic == settings.topics.rekeyed
    copies = [log.rec(settings.topics.rekeyed, orjson.loads(fwd.value), key="c4") for _ in range(2)]
    fx = run(driver(settings, processor, table), copies, view, table)
    assert len(enriched(settings, fx)) == 1 and table["c4"]["seg"]["orders"] == 1


def test_the_clock_is_restored_from_the_table(settings, processor):
    view, table = View(), {}
    log = Log(settings, view)
    d = driver(settings, processor, table)
    run(d, [log.order(placed("c5", "z1", T0 + 3 * DAY))], view, table)
    before = d.clocks.value(0)
    again = driver(settings, processor, orjson.loads(orjson.dumps(table)))
    run(again, [], view)
    assert before is not None and again.clocks.value(0) == before


def test_a_commitment_alert_sent_before_a_crash_is_not_sent_again(settings, processor):
    """An order promised in 5 days and never delivered; a later order of someone else moves the
    partition's event clock past the promise: one unmet-commitment alert, and after a crash that
    lost the state (not the alert) the read-back alert ids keep it from being sent twice."""
    view, table = View(), {}
    log = Log(settings, view)
    run(driver(settings, processor, table), [log.order(placed("c6", "late", T0))], view, table)
    stored = orjson.loads(orjson.dumps(table))
    later = [log.order(placed("c7", "later", T0 + 20 * DAY))]
    lost = run(driver(settings, processor, stored), later, view)  # alert sent, state not stored
    alerts = [orjson.loads(s.value) for s in lost.sends if s.topic == settings.topics.alerts_commitments]
    assert any(a["type"] == "unmet_commitment" for a in alerts)
    again = driver(settings, processor, stored)
    fx = run(again, later, view, None, Recovery({}, alert_ids={a["alert_id"] for a in alerts}))
    assert [s for s in fx.sends if s.topic == settings.topics.alerts_commitments] == []
    assert again.metrics.errors.labels("duplicate_alert_suppressed")._value.get() == len(alerts)


def test_an_invalid_tick_is_dead_lettered_and_moves_no_clock(settings, processor):
    view, table = View(), {}
    log = Log(settings, view)
    d = driver(settings, processor, table)
    run(d, [log.order(placed("c8", "t1", T0))], view, table)
    before = d.clocks.value(0)
    bad = In(settings.topics.ticks, 0, 0, b"tick", b'{"advance_to": "soon"}', None)
    fx = run(d, [bad], view, table)
    dead = [orjson.loads(s.value) for s in fx.sends if s.topic == settings.topics.deadletter]
    assert len(dead) == 1 and dead[0]["errors"]
    assert {s.topic for s in fx.sends} <= {settings.topics.deadletter, settings.partials_topic}  # + clock announcement
    assert d.clocks.value(0) == before


class Lagging(View):
    """A consumer that knows end offsets past what it delivered, and what it fetched of them."""

    def __init__(self, ends: dict[str, int], delivered: dict[str, int], fetched: dict[str, tuple]) -> None:
        super().__init__()
        self.ends, self.delivered, self._fetched = ends, delivered, fetched

    def expected(self, topic, partition):
        return self.delivered.get(topic)

    def fetched(self, topic, partition):
        return self._fetched.get(topic, (None, None))


def test_records_not_yet_fetched_or_still_queued_are_awaited_in_full_a_marker_gap_briefly(settings, processor):
    """Kafka Streams (KIP-695) waits for data known to be in Kafka; a gap the consumer fetched past with
    every record already on the stream (a transaction marker) gets only the short wait."""
    from pipeline.drivers.stage1 import HANDED_OVER_WAIT_SECONDS

    t = settings.topics
    d = driver(settings, processor, {})
    view = Lagging(ends={t.orders: 10, t.feedback: 10, t.complaints: 10},
                   delivered={t.orders: 4, t.feedback: 9, t.complaints: 10},
                   fetched={t.orders: (10, 8),  # fetched, records 4..8 queued on the stream
                            t.feedback: (10, 8),  # fetched; 9 is a marker, everything read was delivered
                            t.complaints: (10, 9)})
    pending = d.undelivered(0, view)
    assert pending[t.orders] is True
    assert pending[t.feedback] == HANDED_OVER_WAIT_SECONDS
    assert pending[t.complaints] is False
    view._fetched[t.orders] = (6, 5)  # not fetched to the end yet
    assert d.undelivered(0, view)[t.orders] is True


def test_a_due_index_of_lower_bounds_advances_the_same_customers_at_the_same_times(settings):
    """The index holds ``due_hint`` (a lower bound) after events; the sweep computes the exact time
    when the clock reaches it.  Against an index of exact times (the processor's ``due_hint``
    replaced by ``next_due``): the same sends in the same order and the same stored states."""
    import itertools

    from pipeline.producers.publish import topic_for
    from pipeline.producers.simulator import iter_simulated_events

    env = {"PIPELINE_CHURN_THRESHOLD": "30", "PIPELINE_CHURN_LOWER_THRESHOLD": "20"}  # many silence alerts
    lazy, exact = Processor(settings, env=env), Processor(settings, env=env)
    exact.due_hint = exact.next_due  # type: ignore[method-assign]
    events = list(itertools.islice(iter_simulated_events(None, seed=3, data_dir=settings.data_dir, customers=40), 1200))
    results = []
    for processor in (lazy, exact):
        view, table = View(), {}
        log = Log(settings, view)
        d = driver(settings, processor, table)
        sends = []
        for chunk in range(0, len(events), 100):
            batch = [log.rec(topic_for(kind, settings), ev) for kind, ev in events[chunk:chunk + 100]]
            fx = run(d, batch, view, table)
            for s in fx.sends:
                doc = orjson.loads(s.value)
                sends.append((s.topic, s.key, doc.get("alert_id") or doc.get("event_id") or doc.get("control")))
        last = max(ev["occurred_at"] for _, ev in events)
        late = datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp()
        clocked = []
        for step in range(1, 25):  # the clock moved on by advance ticks (a replay's end): the sweeps' work
            tick = orjson.dumps({"advance_to": late + step * 15 * DAY})
            fx = run(d, [In(settings.topics.ticks, 0, step, b"tick", tick, None)], view, table)
            clocked += [(s.topic, s.key, orjson.loads(s.value).get("alert_id")) for s in fx.sends
                        if s.topic != settings.partials_topic]
        states = {k: v for k, v in orjson.loads(orjson.dumps(table)).items() if not k.startswith("\x00")}
        results.append((sends, clocked, states))  # (the partition's clock record holds wall times)
    (lazy_sends, lazy_clocked, lazy_table), (exact_sends, exact_clocked, exact_table) = results
    assert lazy_sends == exact_sends
    assert lazy_clocked == exact_clocked
    assert lazy_table == exact_table
    assert {topic for topic, _, _ in lazy_clocked} >= {settings.topics.alerts_churn, settings.topics.alerts_commitments}


def interval_driver(settings, processor, table, interval: float = 1.0) -> Stage1:
    cfg = Stage1Config(1, [WindowSpec("1d", int(DAY))], 0.5, RetryPolicy(attempts=1), settings,
                       commit_interval=interval)
    d = Stage1(cfg, processor, table, Metrics(), {})
    d.recover(0, Recovery({}))
    return d


def at(d: Stage1, records, view, wall: float):
    return asyncio.run(d.batch(records, view, wall=wall, seen={0}))


def test_with_a_commit_interval_outputs_go_at_once_and_states_partials_and_offsets_together(settings, processor):
    """Kafka Streams' commit interval: enriched events leave with their batch; the states, the
    partials and the records to acknowledge wait for the commit, and a later batch reads the
    pending state (the second order counts the first)."""
    view, table = View(), {}
    log = Log(settings, view)
    d = interval_driver(settings, processor, table)
    wall = T0 + 400 * DAY
    first = [log.order(placed("c9", "m1", T0 + DAY))]
    fx1 = at(d, first, view, wall)
    assert not fx1.committing and fx1.writes == {} and fx1.done == []
    assert set(enriched(settings, fx1)) == {"m1-placed"}
    assert not any(s.topic == settings.partials_topic for s in fx1.sends)
    assert d.holds_earlier(0, settings.topics.orders, 0)  # a redelivered copy must not be acknowledged
    second = [log.order(placed("c9", "m2", T0 + 2 * DAY))]
    fx2 = at(d, second, view, wall + 0.5)
    assert not fx2.committing and enriched(settings, fx2)["m2-placed"]["segment"]["orders_count"] == 2
    fx3 = at(d, [], view, wall + 1.0)  # the interval has passed: everything pending is committed
    assert fx3.committing
    assert sorted(fx3.done) == sorted(r.token for r in first + second)
    assert fx3.writes["c9"]["seg"]["orders"] == 2
    partials = [orjson.loads(s.value) for s in fx3.sends if s.topic == settings.partials_topic and s.key != b"clock"]
    assert partials and all(p["upto"][settings.topics.orders] == 1 for p in partials)
    assert not d.holds_earlier(0, settings.topics.orders, 0)
    assert not at(d, [], view, wall + 5.0).committing  # nothing pending, nothing to commit


def test_a_revoked_partition_drops_what_it_had_not_committed(settings, processor):
    view, table = View(), {}
    log = Log(settings, view)
    d = interval_driver(settings, processor, table)
    wall = T0 + 400 * DAY
    at(d, [log.order(placed("c8", "n1", T0 + DAY))], view, wall)
    d.revoke(0)
    d.recover(0, Recovery({}))
    fx = at(d, [], view, wall + 2.0)
    assert "c8" not in fx.writes and fx.done == []  # the record is read again by the partition's next owner
    assert not any(s.topic == settings.partials_topic and s.key != b"clock" for s in fx.sends)


def test_a_dead_letter_sent_before_a_crash_is_not_sent_again(settings, processor):
    """Dead letters carry their record's coordinates as id: the ids read back from the dead-letter
    topic keep a re-read record from being dead-lettered twice (a crash before the commit)."""
    view, table = View(), {}
    log = Log(settings, view)
    bad = [log.order(placed("c7", "x1", T0, promise_days=5.0) | {"amount": 1e308})]
    first = run(driver(settings, processor, table), bad, view)
    (dead,) = [orjson.loads(s.value) for s in first.sends if s.topic == settings.topics.deadletter]
    assert dead["dead_letter_id"] == f"{settings.topics.orders}:0:0"
    again = driver(settings, processor, table)
    fx = run(again, bad, view, table, Recovery({}, alert_ids={dead["dead_letter_id"]}))
    assert not [s for s in fx.sends if s.topic == settings.topics.deadletter]
    assert again.metrics.errors.labels("duplicate_deadletter_suppressed")._value.get() == 1
    assert sorted(fx.done) == sorted(r.token for r in bad)  # still acknowledged


def test_a_tick_is_acknowledged_with_the_commit_that_sends_what_it_caused(settings, processor):
    """A tick is acknowledged by the commit that sends the clock controls it caused (after the
    partials), and it commits at once: a group caught up on the ticks topic then implies the
    controls are on the partials topic, and a quiet partition commits on its next tick."""
    view, table = View(), {}
    d = interval_driver(settings, processor, table)
    wall = T0 + 400 * DAY
    log = Log(settings, view)
    order = log.order(placed("c6", "t1", T0 + DAY))
    assert not at(d, [order], view, wall).committing
    tick = In(settings.topics.ticks, 0, 0, b"tick", orjson.dumps({"now": wall}), wall, token="tick-0")
    fx = at(d, [tick], view, wall + 0.1)  # a tick commits at once, with what was pending before it
    assert fx.committing and sorted(map(str, fx.done)) == sorted(map(str, [order.token, "tick-0"]))
    assert any(s.topic == settings.partials_topic and s.key != b"clock" for s in fx.sends)


def test_value_tiers_by_rank_and_the_sketch_rebuilt_from_the_table(settings, processor):
    """Issue 18: once the partition holds enough customers with orders, an order's enriched event
    carries its tier by rank; a driver that takes the partition over rebuilds the same sketch from
    the table, so the next events get the same tiers."""
    view, table = View(), {}
    log = Log(settings, view)

    def order(i: int, amount: float, n: int = 0) -> In:
        doc = placed(f"c{i:03d}", f"o{i}-{n}", T0 + i * 3600 + n * DAY)
        doc["amount"] = amount
        return log.order(doc)

    d = driver(settings, processor, table)
    docs = enriched(settings, run(d, [order(i, float(i + 1)) for i in range(100)], view, table))
    seg = {k: v["segment"] for k, v in docs.items()}
    first, last = seg["o0-0-placed"], seg["o99-0-placed"]
    assert first["tier_source"] == "spend"  # the first customers: too few to rank
    assert (last["value_tier"], last["tier_source"]) == ("key", "rank")
    assert seg["o55-0-placed"]["tier_source"] == "rank"
    # each customer is re-ranked at its own events: reviews once all 100 have ordered
    reviews = [log.feedback(review(f"c{i:03d}", f"r{i}", T0 + 5 * DAY)) for i in (10, 60, 90)]
    seg = {k: v["segment"] for k, v in enriched(settings, run(d, reviews, view, table)).items()}
    assert [seg[f"r{i}"]["value_tier"] for i in (10, 60, 90)] == ["general", "regular", "key"]
    sketch = d.sketches[0]
    # a new owner: the sketch from the table equals the one built event by event
    d2 = driver(settings, processor, table)
    d2._ensure_index(0)
    assert (d2.sketches[0].counts, d2.sketches[0].n) == (sketch.counts, sketch.n) and sketch.n == 100
    more = [order(5, 1000.0, 10)]  # customer 5 spends a lot: into the key tier
    a = enriched(settings, run(d, more, view, dict(table)))
    view2 = View()
    view2.ends = dict(view.ends)
    b = enriched(settings, run(d2, more, view2, dict(table)))
    assert a["o5-10-placed"]["segment"]["value_tier"] == b["o5-10-placed"]["segment"]["value_tier"] == "key"


def test_a_commit_in_flight_is_read_until_the_edge_stored_it(settings, processor):
    """The edge confirms a commit's outputs before it writes the states (pipeline/agents/commits.py),
    while the next batches run: they read the commit's states from the driver, not the older table."""
    view, table = View(), {}
    log = Log(settings, view)
    d = interval_driver(settings, processor, table)
    wall = T0 + 400 * DAY
    at(d, [log.order(placed("c9", "m1", T0 + DAY))], view, wall)
    fx = at(d, [], view, wall + 1.0)
    assert fx.committing and fx.writes["c9"]["seg"]["orders"] == 1 and "c9" not in table
    assert d.state("c9") is fx.writes["c9"]  # not stored yet: the driver answers
    fx2 = at(d, [log.order(placed("c9", "m2", T0 + 2 * DAY))], view, wall + 1.2)
    assert enriched(settings, fx2)["m2-placed"]["segment"]["orders_count"] == 2  # counted the first
    table.update(fx.writes)
    d.stored(fx.writes)
    assert "c9" not in d.committing  # the table answers now; the newer pending state still comes first
    assert d.state("c9")["seg"]["orders"] == 2


def test_a_long_batch_hands_its_outputs_over_as_it_goes_in_arrival_order(settings, processor):
    """``flush`` gets the enriched events every FLUSH_EVERY records, the partitions interleaved as
    the batch delivered them (a record does not wait for a whole other partition), and nothing is
    handed over twice or lost: flushed + returned = what one batch without ``flush`` returns."""
    from pipeline.core.keys import partition_of
    from pipeline.drivers.stage1 import FLUSH_EVERY

    two = dataclasses.replace(settings, partitions=2)
    customers = {0: [], 1: []}
    for i in range(200):
        customers[partition_of(f"c{i}", 2)].append(f"c{i}")

    def records(view: View) -> list[In]:
        out = []
        for i in range(3 * FLUSH_EVERY):
            p = i % 2
            cid = customers[p][i // 2 % len(customers[p])]
            offset = view.ends.get(f"{p}", 0)
            view.ends[f"{p}"] = offset + 1
            doc = placed(cid, f"o{i}", T0 + i)
            out.append(In(two.topics.orders, p, offset, cid.encode(), orjson.dumps(doc), T0, token=i))
        return out

    def batch(flush):
        view = View()
        view.highwater = lambda topic, partition: view.ends.get(f"{partition}", 0)  # nothing pending
        d = Stage1(Stage1Config(2, [WindowSpec("1d", int(DAY))], 0.5, RetryPolicy(attempts=1), two),
                   processor, {}, Metrics(), {})
        for p in (0, 1):
            d.recover(p, Recovery({}))
        return asyncio.run(d.batch(records(view), view, wall=T0 + 400 * DAY, seen={0, 1}, flush=flush))

    def ids(sends):
        return [orjson.loads(s.value)["event_id"] for s in sends if s.topic == two.topics.enriched]

    handed: list[list] = []

    async def flush(sends):
        handed.append(list(sends))

    fx = batch(flush)
    assert len(handed) >= 2 and all(handed)
    got = ids([s for sends in handed for s in sends] + fx.sends)
    assert got == [f"o{i}-placed" for i in range(3 * FLUSH_EVERY)]  # arrival order across partitions
    assert got == ids(batch(None).sends)
