"""The stage-2 driver (pipeline/drivers/stage2.py) without a broker: windows close once, a crash's
re-read is skipped, finals and alerts are not sent twice, the watermark is restored from the
table, malformed records are dead-lettered without touching state or time."""

from __future__ import annotations

import orjson

from pipeline.aggregate.alerts import load_playbook
from pipeline.aggregate.partials import partials_from
from pipeline.aggregate.surge import SurgeConfig
from pipeline.aggregate.windows import WindowSpec
from pipeline.core.keys import partition_of
from pipeline.core.timeparse import format_timestamp
from pipeline.drivers.stage2 import In, Stage2, Stage2Config

H = 3600
T0 = 1_710_806_400  # 2024-03-19T00:00:00Z
PARTS = 1  # one stage-2 partition: every key lands on it
TOPIC = "partials"


def cfg(**kw) -> Stage2Config:
    base = dict(partitions=PARTS, grace=60.0, retention=24, surge=SurgeConfig(), playbook=load_playbook(None, {}),
                wall_clock=False, aggregates_topic="aggregates", alerts_topic="alerts", deadletter_topic="dead")
    return Stage2Config(**{**base, **kw})


def enriched(event_id: str, t: float, pain: str | None = "delivery") -> dict:
    return {
        "event_id": event_id, "kind": "feedback", "customer_id": "c-" + event_id, "occurred_at": format_timestamp(t),
        "event": {"event_id": event_id},
        "segment": {"value_tier": "regular", "lifecycle": "active", "region": "SP", "relationship_level": "unknown",
                    "channel": "web"},
        "classification": {"sentiment": {"label": "negative", "score": -0.5},
                           "pain_points": [{"id": pain, "confidence": 0.9, "evidence": []}] if pain else []},
    }


class Log:
    """Partials as stage 1 sends them (src 0, ``upto`` growing), as records of one partition."""

    def __init__(self) -> None:
        self.records: list[In] = []
        self.upto = -1

    def partials(self, events: list[dict]) -> list[In]:
        self.upto += len(events)
        out = []
        for key, partial in partials_from(events, [WindowSpec("1h", H)]).items():
            if not key.startswith("all="):
                continue
            partial = {**partial, "src": 0, "upto": {"events.feedback": self.upto}}
            out.append(In(TOPIC, 0, len(self.records) + len(out), key.encode(), orjson.dumps(partial), None))
        self.records += out
        return out

    def control(self, doc: dict, key: bytes = b"clock") -> In:
        rec = In(TOPIC, 0, len(self.records), key, orjson.dumps(doc), None)
        self.records.append(rec)
        return rec


def run(driver: Stage2, table: dict, records: list[In], store: bool = True):
    """One batch the way the edge runs it: sends first, then (unless a crash comes first) writes."""
    for p in {r.partition for r in records}:
        if driver.needs_emitted(p):
            driver.set_emitted(p, [])
    fx = driver.batch(records, now=T0 + 10 * H)
    if store:
        table.update(fx.writes)
    return fx


def sent_ids(fx) -> list[str]:
    out = []
    for s in fx.sends:
        doc = orjson.loads(s.value)
        out.append(doc.get("record_id") or doc.get("alert_id") or doc.get("dead_letter_id"))
    return out


def test_a_window_closes_once_when_the_watermark_passes_its_end():
    table: dict = {}
    d, log = Stage2(cfg(), table), Log()
    fx1 = run(d, table, log.partials([enriched(f"e{i}", T0 + 60 + i) for i in range(5)]))
    assert [s for s in fx1.sends if s.topic == "aggregates"] == []  # the hour is still open
    fx2 = run(d, table, log.partials([enriched("late-hour", T0 + H + 120)]))  # watermark past T0 + 1h + grace
    finals = [orjson.loads(s.value) for s in fx2.sends if s.topic == "aggregates"]
    assert finals and {f["window_start"] for f in finals} == {format_timestamp(T0)}
    assert any(f.get("pain_point") == "delivery" and f.get("count") == 5 for f in finals)
    fx3 = run(d, table, log.partials([enriched("later", T0 + 2 * H + 120)]))
    assert not {f["record_id"] for f in finals} & set(sent_ids(fx3))  # never again


def test_a_re_read_after_a_crash_is_skipped_and_finals_are_not_sent_twice():
    """The state of a batch was stored; the crash came before the input offsets were committed:
    a new owner reads the same partials again."""
    table: dict = {}
    d, log = Stage2(cfg(), table), Log()
    run(d, table, log.partials([enriched(f"e{i}", T0 + 60 + i) for i in range(5)]))
    closing = log.partials([enriched("next-hour", T0 + H + 120)])
    first = run(d, table, closing)
    assert first.sends
    again = Stage2(cfg(), table)  # restarted: watermark and index from the table
    again.set_emitted(0, sent_ids(first))
    fx = again.batch(closing, now=T0 + 10 * H)
    assert fx.sends == []
    assert fx.counts[("errors", "replayed_partial_skipped")] == len(closing)


def test_finals_and_alerts_sent_before_a_crash_are_not_sent_again():
    """Sent and confirmed, but the state (window flagged closed) never stored: the window closes
    again after the restart, and the ids read back from the output topics keep it from being sent."""
    table: dict = {}
    d, log = Stage2(cfg(), table), Log()
    run(d, table, log.partials([enriched(f"e{i}", T0 + 60 + i) for i in range(5)]))
    closing = log.partials([enriched("next-hour", T0 + H + 120)])
    stored = orjson.loads(orjson.dumps(table))  # what the changelog holds
    lost = run(d, table, closing, store=False)  # crash between confirm and store
    assert lost.sends and table == stored  # the driver never changed a stored value in place
    again = Stage2(cfg(), stored)
    again.set_emitted(0, sent_ids(lost))
    fx = again.batch(closing, now=T0 + 10 * H)
    assert [s for s in fx.sends if s.topic in ("aggregates", "alerts")] == []
    assert fx.counts[("errors", "duplicate_final_suppressed")] == len([s for s in lost.sends if s.topic == "aggregates"])
    assert set(fx.writes) >= {"all=all"}  # the closed flag is stored this time


def test_the_watermark_is_restored_from_the_table():
    table: dict = {}
    d, log = Stage2(cfg(), table), Log()
    run(d, table, log.partials([enriched("a", T0 + 2 * H)]))
    wm = d.watermark(0).value
    again = Stage2(cfg(), table)
    again.batch([log.control({"control": "tick", "now": T0}, key=b"tick")], now=T0)  # any record: partition seen
    assert wm is not None and again.watermark(0).value == wm


def test_an_advance_moves_the_watermark_only_when_every_stage1_partition_sent_it():
    table: dict = {}
    d, log = Stage2(cfg(), table), Log()
    run(d, table, log.partials([enriched("a", T0 + 60)]))
    before = d.watermark(0).value
    run(d, table, [log.control({"control": "advance", "to": T0 + 5 * H, "from": 0, "of": 2}, key=b"advance")])
    assert d.watermark(0).value == before
    restarted = Stage2(cfg(), table)  # the pending advance survives a restart
    fx = run(restarted, table, [log.control({"control": "advance", "to": T0 + 5 * H, "from": 1, "of": 2},
                                            key=b"advance")])
    assert restarted.watermark(0).value >= T0 + 5 * H - 60
    assert any(s.topic == "aggregates" for s in fx.sends)  # the hour closed


def test_a_malformed_record_is_dead_lettered_and_moves_nothing():
    table: dict = {}
    d, log = Stage2(cfg(), table), Log()
    run(d, table, log.partials([enriched("a", T0 + 60)]))
    before, state = d.watermark(0).value, orjson.dumps(table["all=all"])
    bad = [In(TOPIC, 0, 10, b"all=all", b'{"dimension": "all", "value": "all", "windows": {}, "max_event_time": 1e300}'),
           In(TOPIC, 0, 11, None, orjson.dumps(orjson.loads(log.partials([enriched("b", T0 + 9 * H)])[0].value))),
           In(TOPIC, 0, 12, b"all=all", b"not json")]
    fx = run(d, table, bad)
    dead = [orjson.loads(s.value) for s in fx.sends if s.topic == "dead"]
    assert len(dead) == 3 and [m[1] for m in fx.malformed] == [10, 11, 12]
    assert {m[2] for m in fx.malformed} >= {"out_of_range", "missing_field", "not_json"}
    assert d.watermark(0).value == before and orjson.dumps(table["all=all"]) == state


def test_queries_read_the_table_and_the_partition_watermark():
    table: dict = {}
    d, log = Stage2(cfg(), table), Log()
    run(d, table, log.partials([enriched(f"e{i}", T0 + 60 + i) for i in range(3)]))
    assert partition_of("all=all", PARTS) == 0
    out = d.query("all", "all", "1h")
    assert out["current"] and out["current"][0]["pain_point"] == "delivery"
    assert d.query("region", "nowhere", "1h")["current"] == []


def test_a_batch_never_changes_a_stored_value_in_place():
    """Stage 2 works on copies that share what they do not change (``working_copy``): merging into a
    stored window, closing it and updating surge baselines leave every stored value as it was
    until the edge writes the batch's new values — through a surge alert."""
    import copy

    table: dict = {}
    d, log = Stage2(cfg(), table), Log()
    alerts = 0
    for hour in range(30):
        per_hour = 40 if hour == 27 else 4  # a spike of the same pain point late on
        events = [enriched(f"h{hour}-{i}", T0 + hour * H + 60 + i) for i in range(per_hour)]
        events += [enriched(f"h{hour}-q{i}", T0 + hour * H + 90 + i, pain=None) for i in range(10)]
        for half in (events[: len(events) // 2], events[len(events) // 2:]):  # two batches touch the same window
            before = copy.deepcopy(table)
            fx = run(d, table, log.partials(half), store=False)
            assert table == before
            table.update(fx.writes)
            alerts += len([s for s in fx.sends if s.topic == "alerts"])
    assert alerts >= 1
    assert any(w.get("closed") for w in table["all=all"]["windows"].values())
    assert table["all=all"].get("surge")


def test_finals_are_held_in_buffers_of_their_own_size():
    """orjson returns its 4 KB working buffer: a batch closing thousands of windows held 88 MB of finals
    (the worker's peak RSS).  ``dumps_held`` gives the same bytes in a buffer of their size."""
    import tracemalloc

    import orjson

    from pipeline.drivers.stage2 import dumps_held

    doc = {"record_id": "r" * 40, "window": "1h", "counts": {f"pain-{i}": i for i in range(20)}}
    assert dumps_held(doc) == orjson.dumps(doc)
    tracemalloc.start()
    try:
        held = [dumps_held(doc) for _ in range(1000)]
        size, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(held) == 1000 and size < 1000 * (len(held[0]) + 200)
