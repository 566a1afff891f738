"""Silence as a signal (issue 15) on the real broker: a customer who goes quiet gets a ``churn_risk``
alert from the clock alone, with no new event of its own.

Event time in a replay: the customer's history is published, then only *other* customers' events
(on the same partition, on every input topic the customer used) move that partition's event-time
clock forward; the silent customer's rescoring comes due and alerts.  Default settings.
"""

from __future__ import annotations

import time

import pytest

from pipeline.agents.common import partition_of
from pipeline.core.timeparse import format_timestamp, parse_timestamp

from .test_churn_pipeline import caught_up, churn_alerts, complaint, docs, order, placed, poll_docs, run_phases

pytestmark = pytest.mark.integration

DAY = 86400.0
T0 = parse_timestamp("2026-01-05T10:00:00Z")
WEEKS = 8
LAST_ORDER = T0 + (WEEKS - 1) * 7 * DAY
SILENCE_FACTORS = {"recency_vs_cadence", "follow_up"}


def ts(t: float) -> str:
    return format_timestamp(t).replace(".000Z", "Z")


def silent_history(c: str) -> tuple[list, list]:
    """Weekly orders for eight weeks, delivered on time but the last, which never arrives; a complaint
    about it opened and resolved.  (orders phase, complaints phase)"""
    orders = []
    for n in range(WEEKS):
        t = T0 + n * 7 * DAY
        orders.append(placed(c, n, ts(t), ts(t + 3 * DAY)))
        if n < WEEKS - 1:
            orders.append(order(c, n, "delivered", ts(t + 2 * DAY)))
    complaints = [complaint(c, 1, "opened", ts(LAST_ORDER + 4 * DAY), "My last order never arrived."),
                  complaint(c, 1, "resolved", ts(LAST_ORDER + 5 * DAY))]
    return orders, complaints


def busy_days(cid: str, first_day: int, last_day: int) -> list:
    """Another customer's day-by-day orders and complaints (both input topics move on)."""
    out = []
    for d in range(first_day, last_day + 1):
        t = LAST_ORDER + d * DAY
        n = 1000 + d
        out += [placed(cid, n, ts(t), ts(t + 3 * DAY)), order(cid, n, "delivered", ts(t + DAY / 2)),
                complaint(cid, n, "opened", ts(t + DAY / 4), "Where is my parcel?"),
                complaint(cid, n, "resolved", ts(t + DAY / 3))]
    return out


def test_silent_customer_gets_churn_risk_without_a_new_event(settings, worker_factory):
    s = settings
    worker_factory(s)
    c = "cust-silent-1"
    part = partition_of(c, s.partitions)
    busy = next(f"cust-busy-{i}" for i in range(1000) if partition_of(f"cust-busy-{i}", s.partitions) == part)
    orders, complaints = silent_history(c)
    run_phases(s, [orders, complaints])
    assert churn_alerts(docs(s, s.topics.alerts_churn), c) == []  # nothing yet: the clock is at its history

    # only the other customer from now on, in three stretches of event time
    published: list[tuple[float, float]] = []  # (event time reached, wall time published)
    for first, last in ((6, 12), (13, 20), (21, 30)):
        published.append((LAST_ORDER + (last + 1) * DAY, time.time()))
        run_phases(s, [busy_days(busy, first, last)])

    out = poll_docs(s, s.topics.alerts_churn, lambda d: bool(churn_alerts(d, c)), timeout=60.0)
    caught_up(s)
    mine = churn_alerts(docs(s, s.topics.alerts_churn), c, None)
    assert [a["type"] for a in mine] == ["churn_risk"], [a["alert_id"] for a in out]
    alert = mine[0]
    assert alert["alert_id"] == f"churn_risk:{c}:1"
    names = [f["name"] for f in alert["details"]["factors"]]
    assert SILENCE_FACTORS & set(names), names
    assert alert["details"]["score"] >= 60
    assert f"{c}-cp1-resolved-{ts(LAST_ORDER + 5 * DAY)}" in alert["evidence"], alert["evidence"]

    # no event of this customer after the resolution: the alert came from the clock alone
    mine_enriched = [d for d in docs(s, s.topics.enriched) if d["customer_id"] == c]
    assert len(mine_enriched) == len(orders) + len(complaints)
    last_own = max(parse_timestamp(d["occurred_at"]) for d in mine_enriched)
    assert last_own == LAST_ORDER + 5 * DAY
    at = parse_timestamp(alert["event_time"])
    assert at > last_own + 7 * DAY  # after the customer's usual cadence ran out

    # the delay: event time after the last order, and wall time from the stretch that moved the clock past it
    reached, sent = next((r, w) for r, w in published if r >= at)
    wall = parse_timestamp(alert["emitted_at"]) - sent
    print(f"\n[silence] churn_risk at event time last order + {(at - LAST_ORDER) / DAY:.2f} days "
          f"(resolution + {(at - last_own) / DAY:.2f} days), score {alert['details']['score']}, factors {names}; "
          f"emitted {wall:.1f} s after the other customer's events that moved the clock past it were published")
    # the commitment side: the undelivered last order is an unmet commitment (the clock passed its promise)
    unmet = [a["alert_id"] for a in docs(s, s.topics.alerts_commitments)
             if a["subject"]["customer_id"] == c and a["type"] == "unmet_commitment"]
    assert unmet == [f"unmet_commitment:delivery:{c}-ord-{WEEKS - 1}:0"], unmet
