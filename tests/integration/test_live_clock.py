"""Live operation with the default clock (issue 15): deadlines fire on time when an input topic goes
quiet, and when every input is quiet.  Default settings: ``PIPELINE_CLOCK=event`` with
``PIPELINE_IDLE_SECONDS`` (5) idleness, ticks every ``PIPELINE_TICK_INTERVAL_SECONDS`` (2)."""

from __future__ import annotations

import base64
import threading
import time
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from pipeline.core.timeparse import parse_timestamp
from pipeline.producers.publish import publish
from pipeline.summary import read_topic

pytestmark = pytest.mark.integration

UNMET = "unmet_commitment"
BOUND = 15.0  # seconds after the due time (issue 15's acceptance)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def placed(cid: str, oid: str, at: float, promise: float | None = None) -> tuple[str, dict]:
    """A placed order; without ``promise`` it promises delivery in ten days (never due in a test)."""
    return ("order", {"schema_version": 1, "event_id": f"{oid}-placed", "order_id": oid, "customer_id": cid,
                      "type": "placed", "occurred_at": iso(at),
                      "promised_delivery_at": iso(at + 10 * 86400 if promise is None else promise),
                      "amount": 40.0, "currency": "USD", "channel": "web", "region": "US-NY",
                      "items": [{"sku": "sku-1", "category": "toys", "qty": 1, "unit_price": 40.0}]})


def complaint(cid: str, comp: str, at: float) -> tuple[str, dict]:
    return ("complaint", {"schema_version": 1, "event_id": f"{comp}-opened", "complaint_id": comp,
                          "customer_id": cid, "status": "opened", "channel": "web",
                          "text": "The parcel arrived damaged.", "occurred_at": iso(at)})


def unmet_delays(s, due: dict[str, float], timeout: float) -> dict[str, float]:
    """order id -> seconds from its due time to the unmet alert's ``emitted_at``; polls until all came."""
    deadline = time.monotonic() + timeout
    got: dict[str, float] = {}
    while time.monotonic() < deadline and len(got) < len(due):
        for _, v in read_topic(s, s.topics.alerts_commitments):
            a = orjson.loads(v)
            oid = a["commitment"]["id"].split(":", 1)[-1]
            if a["type"] == UNMET and oid in due:
                got[oid] = parse_timestamp(a["emitted_at"]) - due[oid]
        time.sleep(1.0)
    return got


def report(name: str, delays: dict[str, float]) -> None:
    xs = sorted(delays.values())
    print(f"\n[live-clock] {name}: {len(xs)} unmet alerts, seconds after due: "
          f"min {xs[0]:.1f}, median {xs[len(xs) // 2]:.1f}, max {xs[-1]:.1f}" if xs else f"\n[live-clock] {name}: none")


def test_a_quiet_topic_does_not_stop_deadlines(settings, worker_factory):
    """8 complaints, then only orders: 20 orders promise delivery 40 s later and are never delivered,
    while other orders keep arriving.  Every unmet alert within 15 s of its due time."""
    s = settings
    assert s.clock == "event" and s.idle_seconds > 0  # the defaults, as compose and k8s use them
    worker_factory(s)
    now = time.time()
    publish([complaint(f"lc-c{i}", f"lc-cp{i}", now - 1) for i in range(8)], s, progress=False)
    stop = threading.Event()

    def keep_ordering() -> None:  # other customers go on ordering: orders never idle
        n = 0
        while not stop.is_set():
            n += 1
            publish([placed(f"lc-busy{n % 40}", f"lc-busy-{n}", time.time())], s, progress=False)
            stop.wait(0.5)

    busy = threading.Thread(target=keep_ordering, daemon=True)
    busy.start()
    try:
        t0 = time.time()
        due = {f"lc-o{i}": t0 + 40 for i in range(20)}
        publish([placed(f"lc-p{i}", oid, t0, due[oid]) for i, oid in enumerate(due)], s, progress=False)
        delays = unmet_delays(s, due, timeout=40 + 60)
    finally:
        stop.set()
        busy.join(5)
    report("one topic quiet", delays)
    assert set(delays) == set(due), f"{len(delays)} of {len(due)} unmet alerts"
    assert all(-0.5 <= d <= BOUND for d in delays.values()), delays


def test_every_input_quiet_a_commitment_still_breaches_on_time(settings, worker_factory):
    """A promise 20 s ahead, then nothing at all: only time passes."""
    s = settings
    worker_factory(s)
    t0 = time.time()
    due = {f"lq-o{i}": t0 + 20 for i in range(4)}
    publish([complaint("lq-c", "lq-cp", t0 - 1)] + [placed(f"lq-p{i}", oid, t0, due[oid])
                                                  for i, oid in enumerate(due)], s, progress=False)
    delays = unmet_delays(s, due, timeout=20 + 60)
    report("all inputs quiet", delays)
    assert set(delays) == set(due), f"{len(delays)} of {len(due)} unmet alerts"
    assert all(-0.5 <= d <= BOUND for d in delays.values()), delays


def test_far_future_and_far_past_times_are_dead_lettered_and_move_no_clock(settings, worker_factory):
    """A year-2099 order, a +14:00 year-0001 one and one a week ahead are dead-lettered ``out_of_range``;
    a normal promise on the same partition (same customer) afterwards breaches at its time, not early."""
    s = settings
    worker_factory(s)
    cid = "lf-c"
    t0 = time.time()
    far_future = placed(cid, "lf-future", t0)
    far_future[1]["occurred_at"] = "2099-01-01T00:00:00Z"
    far_future[1]["promised_delivery_at"] = "2099-01-05T00:00:00Z"
    far_past = placed(cid, "lf-past", t0)
    far_past[1]["occurred_at"] = "0001-01-01T00:00:00+14:00"
    week_ahead = placed(cid, "lf-week", t0 + 7 * 86400)
    due = {"lf-ok": t0 + 20}
    publish([far_future, far_past, week_ahead, placed(cid, "lf-ok", t0, due["lf-ok"])], s, progress=False)
    delays = unmet_delays(s, due, timeout=20 + 60)
    dead = [orjson.loads(v) for _, v in read_topic(s, s.topics.deadletter)]
    codes = {orjson.loads(base64.b64decode(d["original_b64"])).get("event_id"): {e["code"] for e in d["errors"]}
             for d in dead}
    report("after out-of-range times on the same partition", delays)
    print(f"[live-clock] dead-lettered: {codes}")
    for eid in ("lf-future-placed", "lf-past-placed", "lf-week-placed"):
        assert "out_of_range" in codes.get(eid, set()), (eid, codes)
    assert set(delays) == set(due) and all(-0.5 <= d <= BOUND for d in delays.values()), delays
