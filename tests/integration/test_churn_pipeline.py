"""Churn-risk alerts on the real broker (issue 6 acceptance scenarios).

Each test starts one worker on fresh topics and publishes a customer's history in
*phases*: a phase is published and the consumer group is waited for before the next
one, so events on different input topics (orders, complaints, feedback) are processed
in event-time order (Faust consumes the topics independently; the score is evaluated
at each event's own time).  Event times stay within a few days of each other.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import jsonschema_rs
import orjson
import pytest

from pipeline.control import advance_clock
from pipeline.core.timeparse import parse_timestamp
from pipeline.producers.publish import publish
from pipeline.runtime import wait_for_group
from pipeline.summary import read_topic

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ALERT_VALIDATOR = jsonschema_rs.validator_for(
    json.loads((ROOT / "schemas" / "alert.schema.json").read_text()), validate_formats=True)
RISK_FACTORS = {"broken_commitments", "open_complaints", "negative_feedback"}


# ----------------------------------------------------------------------------- event builders

def placed(cid: str, n: int, at: str, promise: str) -> tuple[str, dict]:
    return ("order", {
        "schema_version": 1, "event_id": f"{cid}-o{n}-placed", "order_id": f"{cid}-ord-{n}", "customer_id": cid,
        "type": "placed", "occurred_at": at, "promised_delivery_at": promise, "amount": 80.0, "currency": "USD",
        "channel": "web", "region": "US-CA", "items": [{"sku": "sku-1", "category": "home", "qty": 1, "unit_price": 80.0}],
    })


def order(cid: str, n: int, typ: str, at: str) -> tuple[str, dict]:
    return ("order", {"schema_version": 1, "event_id": f"{cid}-o{n}-{typ}", "order_id": f"{cid}-ord-{n}",
                      "customer_id": cid, "type": typ, "occurred_at": at})


def complaint(cid: str, n: int, status: str, at: str, text: str | None = None, **extra: Any) -> tuple[str, dict]:
    e = {"schema_version": 1, "event_id": f"{cid}-cp{n}-{status}-{at}", "complaint_id": f"{cid}-cp-{n}",
         "customer_id": cid, "status": status, "channel": "web", "occurred_at": at, **extra}
    if text is not None:
        e["text"] = text
    return ("complaint", e)


def review(cid: str, n: int, score: int, at: str, text: str) -> tuple[str, dict]:
    return ("feedback", {"schema_version": 1, "event_id": f"{cid}-fb{n}", "feedback_id": f"{cid}-fb{n}",
                         "customer_id": cid, "source": "review", "score": score, "scale": {"min": 1, "max": 5},
                         "text": text, "occurred_at": at})


# ----------------------------------------------------------------------------- helpers

def caught_up(s, timeout: float = 120.0) -> None:
    t = s.topics
    wait_for_group(s, s.app_id, [*t.inputs, t.rekeyed, t.ticks], timeout=timeout)


def run_phases(s, phases: list[list[tuple[str, dict]] | float]) -> None:
    """Publish each phase (a list of events, or an epoch time for ``advance_clock``) and wait for the group."""
    for phase in phases:
        if isinstance(phase, (int, float)):
            advance_clock(s, float(phase))
        else:
            publish(phase, s, progress=False)
        caught_up(s)


def docs(s, topic: str) -> list[dict]:
    return [orjson.loads(v) for _, v in read_topic(s, topic)]


def poll_docs(s, topic: str, done: Callable[[list[dict]], bool], timeout: float = 30.0) -> list[dict]:
    """Read ``topic`` until ``done(docs)`` holds (deadline ``timeout``); return the last read."""
    deadline = time.monotonic() + timeout
    while True:
        out = docs(s, topic)
        if done(out) or time.monotonic() > deadline:
            return out
        time.sleep(0.5)


def enriched_of(s, cid: str, expected: int) -> list[dict]:
    out = poll_docs(s, s.topics.enriched, lambda d: sum(x["customer_id"] == cid for x in d) >= expected)
    mine = [d for d in out if d["customer_id"] == cid]
    assert len(mine) == expected, [d["event_id"] for d in mine]
    return sorted(mine, key=lambda d: parse_timestamp(d["occurred_at"]))


def assert_risk_snapshot(doc: dict) -> None:
    risk = doc["risk"]
    assert set(risk) >= {"score", "level", "top_factors"}, risk
    assert 0 <= risk["score"] <= 100
    expected_level = "high" if risk["score"] >= 60 else "medium" if risk["score"] >= 45 else "low"
    assert risk["level"] == expected_level, risk
    assert len(risk["top_factors"]) <= 3
    for f in risk["top_factors"]:
        assert set(f) == {"name", "value", "contribution"}, f
    total = sum(f["contribution"] for f in risk["top_factors"])
    assert total <= risk["score"] + 0.05


def churn_alerts(all_alerts: list[dict], cid: str, typ: str | None = "churn_risk") -> list[dict]:
    return [a for a in all_alerts if a["subject"]["customer_id"] == cid and (typ is None or a["type"] == typ)]


# ----------------------------------------------------------------------------- tests

def test_broken_promises_complaint_and_one_star_review_alert_once(settings, worker_factory):
    """Two missed deliveries + an open complaint + a 1-star review: exactly one churn_risk naming them;
    a happy customer on the same worker never gets one."""
    s = settings
    worker_factory(s)
    c, h = "cust-churn-1", "cust-happy-1"
    happy_orders = []
    for n, day in enumerate((1, 8, 15)):
        happy_orders += [placed(h, n, f"2026-03-{day:02d}T10:00:00Z", f"2026-03-{day + 3:02d}T23:59:59Z"),
                         order(h, n, "delivered", f"2026-03-{day + 2:02d}T15:00:00Z")]
    happy_reviews = [review(h, n, 5, f"2026-03-{day + 2:02d}T18:00:00Z", "Great product, fast delivery, very happy!")
                     for n, day in enumerate((1, 8, 15))]
    run_phases(s, [
        # two orders promised for 3 March, never delivered; the happy customer's orders are on time
        [placed(c, 1, "2026-03-01T10:00:00Z", "2026-03-03T23:59:59Z"),
         placed(c, 2, "2026-03-01T11:00:00Z", "2026-03-03T23:59:59Z"), *happy_orders],
        # a complaint on 4 March: the customer's clock passes both due times (breaches), complaint stays open
        [complaint(c, 1, "opened", "2026-03-04T09:00:00Z",
                   "Both of my orders never arrived and nobody tells me anything.")],
        # a 1-star review; the happy customer's 5-star reviews
        [review(c, 1, 1, "2026-03-04T12:00:00Z", "Terrible. Very disappointed."), *happy_reviews],
        # more trouble the same day, then the clock moves on: still one alert (disarmed, cool-down)
        [complaint(c, 1, "updated", "2026-03-05T09:00:00Z", "Still nothing. This is unacceptable.")],
        parse_timestamp("2026-03-06T00:00:00Z"),
    ])

    alerts = poll_docs(s, s.topics.alerts_churn, lambda d: len(churn_alerts(d, c)) >= 1)
    caught_up(s)
    alerts = docs(s, s.topics.alerts_churn)
    mine = churn_alerts(alerts, c)
    assert len(mine) == 1, [a["alert_id"] for a in mine]
    assert churn_alerts(alerts, h, None) == []
    alert = mine[0]
    errors = [str(e) for e in ALERT_VALIDATOR.iter_errors(alert)]
    assert not errors, errors
    assert alert["alert_id"] == f"churn_risk:{c}:1"
    assert alert["details"]["score"] >= 60
    names = {f["name"] for f in alert["details"]["factors"]}
    assert names == RISK_FACTORS, alert["details"]["factors"]
    for name in RISK_FACTORS:
        assert name.replace("_", " ") in alert["reason"], alert["reason"]
    # evidence: the promises broken, the complaint, the review
    assert {f"{c}-o1-placed", f"{c}-o2-placed", f"{c}-fb1",
            f"{c}-cp1-opened-2026-03-04T09:00:00Z"} <= set(alert["evidence"]), alert["evidence"]
    assert alert["suggested_actions"]
    assert alert["event_time"].startswith("2026-03-04T12:00:00")  # the review pushed it over

    # the commitment side of the same story
    cm = [a for a in docs(s, s.topics.alerts_commitments) if a["subject"]["customer_id"] == c]
    unmet = sorted(a["alert_id"] for a in cm if a["type"] == "unmet_commitment")
    assert unmet == [f"unmet_commitment:delivery:{c}-ord-1:0", f"unmet_commitment:delivery:{c}-ord-2:0"]
    assert not [a for a in docs(s, s.topics.alerts_commitments) if a["subject"]["customer_id"] == h]

    # enriched events carry the risk snapshot
    ev = enriched_of(s, c, 5)
    for d in ev:
        assert_risk_snapshot(d)
    by_id = {d["event_id"]: d for d in ev}
    assert by_id[f"{c}-o1-placed"]["risk"]["score"] == 0
    fb = by_id[f"{c}-fb1"]["risk"]
    assert fb["level"] == "high" and fb["score"] == alert["details"]["score"]
    assert {f["name"] for f in fb["top_factors"]} == RISK_FACTORS
    opened = by_id[f"{c}-cp1-opened-2026-03-04T09:00:00Z"]["risk"]
    assert 45 <= opened["score"] < 60  # broken commitments + open complaint alone stay below the threshold
    assert {f["name"] for f in opened["top_factors"]} == {"broken_commitments", "open_complaints"}

    hv = enriched_of(s, h, 9)
    for d in hv:
        assert_risk_snapshot(d)
        assert d["risk"]["level"] == "low" and d["risk"]["score"] < 45, (d["event_id"], d["risk"])
    print(f"\n[churn] alert score {alert['details']['score']} severity {alert['severity']}; "
          f"happy max score {max(d['risk']['score'] for d in hv)}")


def test_happy_customer_never_alerts(settings, worker_factory):
    """Regular orders delivered on time and 5-star reviews: low risk on every event, no alert at all."""
    s = settings
    worker_factory(s)
    h = "cust-happy-2"
    phases: list[list[tuple[str, dict]] | float] = []
    for n, day in enumerate((2, 9, 16, 23)):
        phases.append([placed(h, n, f"2026-04-{day:02d}T09:00:00Z", f"2026-04-{day + 4:02d}T23:59:59Z")])
        phases.append([order(h, n, "shipped", f"2026-04-{day + 1:02d}T09:00:00Z"),
                       order(h, n, "delivered", f"2026-04-{day + 2:02d}T14:00:00Z")])
        phases.append([review(h, n, 5, f"2026-04-{day + 2:02d}T20:00:00Z", "Excellent, arrived early. Love it!")])
    phases.append(parse_timestamp("2026-04-30T00:00:00Z"))  # past every promise
    run_phases(s, phases)
    ev = enriched_of(s, h, 16)
    for d in ev:
        assert_risk_snapshot(d)
        assert d["risk"]["level"] == "low" and d["risk"]["score"] < 45, (d["event_id"], d["risk"])
    assert docs(s, s.topics.alerts_churn) == []
    assert [a["type"] for a in docs(s, s.topics.alerts_commitments)] == []


def test_score_oscillating_around_threshold_alerts_once(settings, worker_factory):
    """Complaints opened and resolved push the score above 60 three times, never below 45: one alert.

    The cool-down is switched off, so only hysteresis keeps the later crossings quiet.
    """
    s = settings
    worker_factory(s, PIPELINE_CHURN_COOLDOWN_DAYS="0")
    o = "cust-osc-1"
    text = "I would like to discuss my account."
    day = "2026-03-10T"
    run_phases(s, [
        [review(o, 1, 1, f"{day}08:00:00Z", "Terrible. Very disappointed."),
         review(o, 2, 1, f"{day}08:30:00Z", "Awful, would not recommend.")],   # ~50: negative feedback
        [complaint(o, 1, "opened", f"{day}10:00:00Z", text),   # ~54.5
         complaint(o, 2, "opened", f"{day}11:00:00Z", text),   # ~59
         complaint(o, 3, "opened", f"{day}12:00:00Z", text),   # ~63.6  crosses 60: alert
         complaint(o, 1, "resolved", f"{day}13:00:00Z"),       # ~59
         complaint(o, 2, "resolved", f"{day}14:00:00Z"),       # ~54.6 (still >= 45: stays disarmed)
         complaint(o, 4, "opened", f"{day}15:00:00Z", text),   # ~59
         complaint(o, 5, "opened", f"{day}16:00:00Z", text),   # ~63.7  crosses again: no alert
         complaint(o, 3, "resolved", f"{day}17:00:00Z"),       # ~59
         complaint(o, 6, "opened", f"{day}18:00:00Z", text)],  # ~63.7  and again: no alert
    ])
    ev = enriched_of(s, o, 11)
    scores = [d["risk"]["score"] for d in ev]
    for d in ev:
        assert_risk_snapshot(d)
    first_high = next(i for i, x in enumerate(scores) if x >= 60)
    upward = [i for i in range(1, len(scores)) if scores[i] >= 60 > scores[i - 1]]
    assert len(upward) == 3, scores
    assert min(scores[first_high:]) >= 45, scores  # never re-armed
    assert any(x < 60 for x in scores[first_high:]), scores  # it did go back down

    alerts = docs(s, s.topics.alerts_churn)
    assert [a["type"] for a in alerts] == ["churn_risk"], alerts
    a = alerts[0]
    assert not [str(e) for e in ALERT_VALIDATOR.iter_errors(a)]
    assert a["alert_id"] == f"churn_risk:{o}:1"
    assert a["event_time"].startswith(f"{day}12:00:00")
    assert a["details"]["score"] == scores[first_high]
    assert {f["name"] for f in a["details"]["factors"]} == {"negative_feedback", "open_complaints"}
    print(f"\n[churn] oscillating scores {scores}")
