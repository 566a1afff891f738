"""Commitment tracking (pipeline.commitments): model, tracker, alerts, playbook - no Kafka.

Every kind's make / fulfil / void / breach path, warnings before breaches,
reschedules and reopens (generations), retractions, idempotency, bounded
state, deterministic alerts that validate against schemas/alert.schema.json,
severity, the playbook, and a replay of the real Olist deliveries checked
against the truth computed straight from the events.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest

from pipeline.commitments import (
    CommitmentConfig,
    Transition,
    advance,
    alerts_for,
    apply_event,
    due_soonest,
    load_playbook,
    new_state,
)
from pipeline.commitments.alerts import severity
from pipeline.commitments.playbook import DEFAULT_PLAYBOOK_PATH, PlaybookError, parse_playbook
from pipeline.commitments.tracker import RECENT_IDS, breaches, summary
from pipeline.ingest.normalise import Event, normalise

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "schemas"
OLIST_DIR = Path("/work/shared/data/olist_subset_5k")

H = 3600.0
D = 86400.0
T0 = datetime(2024, 3, 1, tzinfo=timezone.utc).timestamp()
CFG = CommitmentConfig()
GENERAL = {"value_tier": "general", "lifecycle": "active", "region": "SP"}
KEY = {"value_tier": "key", "lifecycle": "active", "region": "SP"}


def _validator(name: str) -> Any:
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    return jsonschema_rs.validator_for(schema, validate_formats=True)


ALERT_V = _validator("alert")
ORDER_V = _validator("order_event")
COMPLAINT_V = _validator("complaint_event")
PLAYBOOK = load_playbook(DEFAULT_PLAYBOOK_PATH)


def assert_valid_alerts(alerts: list[dict]) -> None:
    for a in alerts:
        errors = [e.message for e in ALERT_V.iter_errors(a)]
        assert not errors, (a, errors)


def replay(events: list[Event], segment: dict = GENERAL, end: float | None = None
           ) -> tuple[dict[str, dict], list[Transition], list[dict]]:
    """Drive the pure functions like the agent: event-time clock, ticks when something is due.

    Customers whose next warning/breach (:func:`due_soonest`) has been passed by the
    clock are advanced before each event (a heap, as the agent would schedule ticks);
    then the event is applied; finally every customer is advanced to ``end``.
    Returns ``(states, transitions, alerts)``; fails on a repeated alert id.
    """
    states: dict[str, dict] = {}
    heap: list[tuple[float, str]] = []
    transitions: list[Transition] = []
    alerts: list[dict] = []
    seen: set[str] = set()

    def schedule(cid: str) -> None:
        d = due_soonest(states[cid])
        if d is not None:
            heapq.heappush(heap, (d, cid))

    def record(tr: list[Transition], now: float) -> None:
        transitions.extend(tr)
        for a in alerts_for(tr, segment, PLAYBOOK, now):
            assert a["alert_id"] not in seen, a["alert_id"]
            seen.add(a["alert_id"])
            alerts.append(a)

    for ev in events:
        now = ev.occurred_at
        while heap and heap[0][0] <= now:
            d, cid = heapq.heappop(heap)
            if due_soonest(states[cid]) != d:
                continue  # stale heap entry
            states[cid], tr = advance(states[cid], now, CFG)
            record(tr, now)
            schedule(cid)
        states[ev.customer_id], tr = apply_event(states.get(ev.customer_id), ev, CFG)
        record(tr, now)
        schedule(ev.customer_id)
    if end is not None:
        for cid in states:
            states[cid], tr = advance(states[cid], end, CFG)
            record(tr, end)
    return states, transitions, alerts


# -- event builders (validated against the input contracts) --------------------------------
_seq = itertools.count()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


def order(typ: str, at: float, oid: str = "O1", cust: str = "c1", promised: float | None = None,
          eid: str | None = None, **extra: Any) -> Event:
    e: dict[str, Any] = {"schema_version": 1, "event_id": eid or f"ord-{oid}-{typ}-{next(_seq)}", "order_id": oid,
                         "customer_id": cust, "type": typ, "occurred_at": iso(at)}
    if promised is not None:
        e["promised_delivery_at"] = iso(promised)
    if typ == "placed":
        e.update(amount=100.0, currency="BRL", channel="web", region="SP",
                 items=[{"sku": "s1", "category": "toys", "qty": 1, "unit_price": 100.0}])
    e.update(extra)
    assert ORDER_V.is_valid(e), [x.message for x in ORDER_V.iter_errors(e)]
    return normalise("order", e)


def complaint(status: str, at: float, comp: str = "C1", cust: str = "c1", eid: str | None = None,
              channel: str = "email", response: float | None = None, resolution: float | None = None,
              callback: float | None = None, refund: float | None = None, **extra: Any) -> Event:
    e: dict[str, Any] = {"schema_version": 1, "event_id": eid or f"cmp-{comp}-{status}-{next(_seq)}",
                         "complaint_id": comp, "customer_id": cust, "status": status, "channel": channel,
                         "occurred_at": iso(at)}
    if status == "opened":
        e["text"] = "My parcel never came and nobody answers. Call me at +55 11 5555-0100."
    for name, value in (("promised_response_by", response), ("promised_resolution_by", resolution),
                        ("promised_callback_at", callback), ("promised_refund_by", refund)):
        if value is not None:
            e[name] = iso(value)
    e.update(extra)
    assert COMPLAINT_V.is_valid(e), [x.message for x in COMPLAINT_V.iter_errors(e)]
    return normalise("complaint", e)


class Cust:
    """One customer's state + every transition, driven like the agent would."""

    def __init__(self, cfg: CommitmentConfig = CFG) -> None:
        self.cfg = cfg
        self.state: dict | None = None
        self.log: list[Transition] = []

    def apply(self, ev: Event) -> list[str]:
        self.state, tr = apply_event(self.state, ev, self.cfg)
        self.log += tr
        return [t.type for t in tr]

    def tick(self, now: float) -> list[str]:
        self.state, tr = advance(self.state, now, self.cfg)
        self.log += tr
        return [t.type for t in tr]

    def c(self, cid: str) -> dict:
        return self.state["commitments"][cid]

    def alerts(self, segment: dict = GENERAL, emitted: float = T0 + 100 * D) -> list[dict]:
        out = alerts_for(self.log, segment, PLAYBOOK, emitted)
        assert_valid_alerts(out)
        return out


# ------------------------------------------------------------------------------ config
def test_config_defaults_and_env() -> None:
    d = CommitmentConfig()
    assert [d.warn_offset(k) for k in ("delivery", "response", "resolution", "callback", "refund")] == [
        24 * H, 1 * H, 4 * H, 30 * 60, 24 * H]
    assert d.retention_seconds == 7 * D
    c = CommitmentConfig.from_env({
        "PIPELINE_WARN_DELIVERY_SECONDS": "7200", "PIPELINE_WARN_CALLBACK_SECONDS": "60",
        "PIPELINE_COMMITMENT_RETENTION_SECONDS": "86400", "PIPELINE_WARN_REFUND_SECONDS": ""})
    assert (c.warn_delivery_seconds, c.warn_callback_seconds, c.retention_seconds) == (7200, 60, 86400)
    assert c.warn_refund_seconds == d.warn_refund_seconds and c.warn_response_seconds == d.warn_response_seconds
    assert CommitmentConfig.from_env({}) == d
    with pytest.raises(ValueError):
        CommitmentConfig.from_env({"PIPELINE_WARN_RESPONSE_SECONDS": "-1"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.warn_delivery_seconds = 1  # type: ignore[misc]


# ------------------------------------------------------------------------------ delivery
def test_delivery_made_and_fulfilled_on_time() -> None:
    x = Cust()
    due = T0 + 5 * D
    assert x.apply(order("placed", T0, promised=due)) == ["made"]
    c = x.c("delivery:O1")
    assert (c["status"], c["due_at"], c["made_at"], c["generation"], c["reschedules"]) == ("open", due, T0, 0, 0)
    assert c["warn_at"] == due - 24 * H and c["field"] == "promised_delivery_at" and c["order_id"] == "O1"
    assert due_soonest(x.state) == due - 24 * H
    assert x.tick(T0 + 2 * D) == []
    assert x.apply(order("shipped", T0 + 2 * D)) == []
    assert x.apply(order("delivered", T0 + 3 * D)) == ["fulfilled"]
    c = x.c("delivery:O1")
    assert c["status"] == "fulfilled" and c["closed_at"] == T0 + 3 * D and c["delay_seconds"] is None
    assert due_soonest(x.state) is None
    assert x.tick(due + 10 * D) == []  # closed: nothing more (dropped only after retention)
    assert x.alerts() == []
    assert x.state["counters"]["delivery"] == {"made": 1, "fulfilled": 1}


def test_delivery_fulfilled_exactly_at_due_is_on_time() -> None:
    x = Cust()
    due = T0 + 5 * D
    x.apply(order("placed", T0, promised=due))
    assert x.apply(order("delivered", due)) == ["warned", "fulfilled"]
    assert x.c("delivery:O1")["status"] == "fulfilled"


def test_delivery_warning_before_breach_and_advance_idempotent() -> None:
    x = Cust()
    due = T0 + 5 * D
    x.apply(order("placed", T0, promised=due))
    assert x.tick(due - 24 * H - 1) == []
    before = x.state
    assert x.tick(due - 24 * H) == ["warned"]
    assert x.state is not before
    assert x.c("delivery:O1")["warned_at"] == due - 24 * H
    warned_state = x.state
    # same or earlier now: nothing, same object (the agent can skip the table write)
    assert x.tick(due - 24 * H) == [] and x.state is warned_state
    assert x.tick(due - 30 * H) == [] and x.state is warned_state
    assert due_soonest(x.state) == due
    assert x.tick(due - 1) == []
    assert x.tick(due) == ["breached"]
    c = x.c("delivery:O1")
    assert c["status"] == "breached" and c["breached_at"] == due and c["breaches"] == 1
    assert x.tick(due) == [] and x.tick(due + 5 * H) == [] and x.tick(due - D) == []
    assert due_soonest(x.state) is None
    assert breaches(x.state) == 1
    assert [a["type"] for a in x.alerts()] == ["commitment_at_risk", "unmet_commitment"]


def test_one_big_clock_jump_warns_then_breaches_at_their_own_times() -> None:
    x = Cust()
    due = T0 + 5 * D
    x.apply(order("placed", T0, promised=due))
    assert x.tick(due + 3 * D) == ["warned", "breached"]
    assert [t.at for t in x.log[1:]] == [due - 24 * H, due]
    alerts = x.alerts()
    assert [a["event_time"] for a in alerts] == [iso_ms(due - 24 * H), iso_ms(due)]


def iso_ms(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_breached_then_delivered_is_fulfilled_late_with_delay() -> None:
    x = Cust()
    due = T0 + 5 * D
    x.apply(order("placed", T0, promised=due))
    x.tick(due + H)
    assert x.apply(order("delivered", due + 30 * H, eid="dlv-1")) == ["fulfilled_late"]
    c = x.c("delivery:O1")
    assert c["status"] == "fulfilled_late" and c["delay_seconds"] == 30 * H and c["closed_at"] == due + 30 * H
    late = [a for a in x.alerts() if a["type"] == "commitment_fulfilled_late"]
    assert len(late) == 1
    a = late[0]
    assert a["commitment"]["delay_seconds"] == 30 * H and a["commitment"]["status"] == "fulfilled_late"
    assert "dlv-1" in a["evidence"] and a["event_time"] == iso_ms(due + 30 * H)
    assert "30h late" in a["reason"]
    assert x.state["counters"]["delivery"]["breached"] == 1  # counted once, stays counted


def test_late_delivery_without_ticks_catches_up_in_event_time() -> None:
    """Lateness is decided by event time, not by when ticks happened to arrive."""
    x = Cust()
    due = T0 + 5 * D
    x.apply(order("placed", T0, promised=due))
    assert x.apply(order("delivered", due + 2 * H)) == ["warned", "breached", "fulfilled_late"]
    assert [t.at for t in x.log[1:]] == [due - 24 * H, due, due + 2 * H]
    assert x.c("delivery:O1")["delay_seconds"] == 2 * H


def test_delivery_cancelled_is_voided() -> None:
    x = Cust()
    due = T0 + 5 * D
    x.apply(order("placed", T0, promised=due))
    assert x.apply(order("cancelled", T0 + H, reason="customer asked")) == ["voided"]
    assert x.c("delivery:O1")["status"] == "voided"
    assert x.tick(due + D) == []
    assert x.apply(order("delivered", due + D)) == []  # closed stays closed
    assert x.alerts() == []


def test_cancelled_after_breach_keeps_the_breach() -> None:
    x = Cust()
    due = T0 + 5 * D
    x.apply(order("placed", T0, promised=due))
    x.tick(due)
    assert x.apply(order("cancelled", due + D)) == ["voided"]
    assert x.c("delivery:O1")["breached_at"] == due and breaches(x.state) == 1


def test_events_for_unknown_orders_change_nothing() -> None:
    x = Cust()
    assert x.apply(order("delivered", T0, oid="nope")) == []
    assert x.apply(order("cancelled", T0, oid="nope")) == []
    assert x.state["commitments"] == {}


# ------------------------------------------------------------------------------ reschedules
def test_reschedule_moves_due_and_records_original() -> None:
    x = Cust()
    due, new_due = T0 + 5 * D, T0 + 8 * D
    x.apply(order("placed", T0, promised=due))
    assert x.apply(order("delivery_rescheduled", T0 + D, promised=new_due, reason="carrier")) == ["rescheduled"]
    c = x.c("delivery:O1")
    assert (c["due_at"], c["original_due_at"], c["reschedules"], c["status"], c["generation"]) == (
        new_due, due, 1, "open", 0)
    assert x.log[-1].previous_due_at == due
    assert due_soonest(x.state) == new_due - 24 * H
    assert x.tick(due) == []  # the old due no longer warns or breaches
    assert x.tick(new_due - 24 * H) == ["warned"]
    assert x.tick(new_due) == ["breached"]
    unmet = [a for a in x.alerts() if a["type"] == "unmet_commitment"][0]
    assert unmet["commitment"]["reschedules"] == 1
    assert unmet["commitment"]["original_due_at"] == iso_ms(due)
    assert "rescheduled once" in unmet["reason"]


def test_reschedule_after_warning_with_future_warn_time_goes_back_to_open_new_generation() -> None:
    x = Cust()
    due, new_due = T0 + 5 * D, T0 + 9 * D
    x.apply(order("placed", T0, promised=due))
    assert x.tick(due - 20 * H) == ["warned"]
    assert x.apply(order("delivery_rescheduled", due - 10 * H, promised=new_due)) == ["rescheduled"]
    c = x.c("delivery:O1")
    assert (c["status"], c["generation"], c["warned_at"]) == ("open", 1, None)
    assert x.log[-1].detail == {"rearmed": True}
    assert x.tick(new_due - 24 * H - 1) == []
    assert x.tick(new_due - 24 * H) == ["warned"]
    ids = [a["alert_id"] for a in x.alerts() if a["type"] == "commitment_at_risk"]
    assert ids == ["commitment_at_risk:delivery:O1:0", "commitment_at_risk:delivery:O1:1"]


def test_reschedule_after_warning_within_warning_window_stays_warned_no_second_warning() -> None:
    x = Cust()
    due, new_due = T0 + 5 * D, T0 + 5 * D + 6 * H  # new warn time is already past at the reschedule
    x.apply(order("placed", T0, promised=due))
    x.tick(due - 20 * H)
    assert x.apply(order("delivery_rescheduled", due - 10 * H, promised=new_due)) == ["rescheduled"]
    c = x.c("delivery:O1")
    assert (c["status"], c["generation"]) == ("warned", 0)
    assert x.tick(due) == []  # old due passes quietly
    assert x.tick(new_due) == ["breached"]
    assert [a["alert_id"] for a in x.alerts()] == [
        "commitment_at_risk:delivery:O1:0", "unmet_commitment:delivery:O1:0"]


def test_reschedule_after_breach_tracks_the_new_promise_in_a_new_generation() -> None:
    x = Cust()
    due, new_due = T0 + 5 * D, T0 + 10 * D
    x.apply(order("placed", T0, promised=due))
    x.tick(due + H)
    assert x.apply(order("delivery_rescheduled", due + 2 * H, promised=new_due)) == ["rescheduled"]
    c = x.c("delivery:O1")
    assert (c["status"], c["generation"], c["breaches"], c["breached_at"]) == ("open", 1, 1, None)
    assert breaches(x.state) == 1
    assert x.apply(order("delivered", new_due - 20 * H)) == ["warned", "fulfilled"]
    assert x.c("delivery:O1")["status"] == "fulfilled"
    types = [a["alert_id"] for a in x.alerts()]
    assert types == ["commitment_at_risk:delivery:O1:0", "unmet_commitment:delivery:O1:0",
                     "commitment_at_risk:delivery:O1:1"]


def test_rescheduled_event_without_placed_makes_the_commitment() -> None:
    x = Cust()
    assert x.apply(order("delivery_rescheduled", T0, promised=T0 + 3 * D)) == ["made"]
    assert x.c("delivery:O1")["reschedules"] == 1


def test_repeated_same_promise_is_not_a_reschedule() -> None:
    x = Cust()
    x.apply(order("placed", T0, promised=T0 + 5 * D))
    assert x.apply(order("delivery_rescheduled", T0 + D, promised=T0 + 5 * D)) == []
    assert x.c("delivery:O1")["reschedules"] == 0


# ------------------------------------------------------------------------------ response
def test_response_fulfilled_by_next_update_not_by_the_opening_event() -> None:
    x = Cust()
    x.apply(complaint("opened", T0, response=T0 + 4 * H))
    c = x.c("response:C1")
    assert (c["status"], c["complaint_id"], c["field"]) == ("open", "C1", "promised_response_by")
    assert x.apply(complaint("updated", T0 + 2 * H)) == ["fulfilled"]
    assert x.c("response:C1")["status"] == "fulfilled"


def test_response_fulfilled_by_resolved_and_not_by_other_complaints() -> None:
    x = Cust()
    x.apply(complaint("opened", T0, response=T0 + 4 * H))
    assert x.apply(complaint("updated", T0 + H, comp="C2")) == []
    assert x.apply(complaint("resolved", T0 + 2 * H)) == ["fulfilled"]


def test_response_update_before_the_promise_does_not_fulfil_it() -> None:
    x = Cust()
    x.apply(complaint("updated", T0 + 2 * H, response=T0 + 6 * H))  # promise made at T0+2h
    assert x.apply(complaint("updated", T0 + H, eid="older-update")) == []  # happened before it was made
    assert x.c("response:C1")["status"] == "open"


def test_response_breach_and_late_reply() -> None:
    x = Cust()
    x.apply(complaint("opened", T0, response=T0 + 4 * H))
    assert x.tick(T0 + 3 * H) == ["warned"]
    assert x.tick(T0 + 4 * H) == ["breached"]
    assert x.apply(complaint("updated", T0 + 5 * H)) == ["fulfilled_late"]
    assert x.c("response:C1")["delay_seconds"] == H
    alerts = x.alerts()
    assert [a["type"] for a in alerts] == ["commitment_at_risk", "unmet_commitment", "commitment_fulfilled_late"]
    assert all(a["pain_point"] == "customer_service" for a in alerts)


def test_repeated_promise_fields_on_updates_do_not_remake_the_response() -> None:
    x = Cust()
    x.apply(complaint("opened", T0, response=T0 + 4 * H, resolution=T0 + 3 * D))
    assert x.apply(complaint("updated", T0 + H, response=T0 + 4 * H, resolution=T0 + 3 * D)) == ["fulfilled"]
    assert x.c("response:C1")["status"] == "fulfilled"
    assert x.c("resolution:C1")["reschedules"] == 0


def test_new_response_promise_after_fulfilment_starts_a_new_generation() -> None:
    x = Cust()
    x.apply(complaint("opened", T0, response=T0 + 4 * H))
    assert x.apply(complaint("updated", T0 + H, response=T0 + 10 * H)) == ["fulfilled", "made"]
    c = x.c("response:C1")
    assert (c["status"], c["generation"], c["due_at"]) == ("open", 1, T0 + 10 * H)
    assert x.apply(complaint("updated", T0 + 5 * H)) == ["fulfilled"]


# ------------------------------------------------------------------------------ resolution
def test_resolution_fulfilled_by_resolved_only() -> None:
    x = Cust()
    x.apply(complaint("opened", T0, resolution=T0 + 3 * D))
    assert x.apply(complaint("updated", T0 + D)) == []
    assert x.apply(complaint("resolved", T0 + 2 * D)) == ["fulfilled"]


@pytest.mark.parametrize(
    "reopen_at, promised, expected_due",
    [
        (T0 + 2 * D, T0 + 6 * D, T0 + 6 * D),  # the reopen's own promise
        (T0 + 2 * D, None, T0 + 3 * D),  # old due still in the future
        (T0 + 4 * D, None, T0 + 4 * D + 2 * D),  # old due passed: now + resolution window
    ],
)
def test_reopened_resolution_new_due_rules(reopen_at: float, promised: float | None, expected_due: float) -> None:
    x = Cust()
    x.apply(complaint("opened", T0, resolution=T0 + 3 * D))
    x.apply(complaint("resolved", T0 + D))
    assert x.apply(complaint("reopened", reopen_at, resolution=promised)) == ["reopened"]
    c = x.c("resolution:C1")
    assert (c["status"], c["generation"], c["due_at"], c["reopens"], c["made_at"]) == (
        "open", 1, expected_due, 1, reopen_at)
    assert x.log[-1].previous_due_at == T0 + 3 * D
    assert x.tick(expected_due) == ["warned", "breached"]
    ids = [a["alert_id"] for a in x.alerts()]
    assert ids == ["commitment_at_risk:resolution:C1:1", "unmet_commitment:resolution:C1:1"]


def test_reopened_then_resolved_again() -> None:
    x = Cust()
    x.apply(complaint("opened", T0, resolution=T0 + 3 * D))
    x.tick(T0 + 3 * D)  # breached gen 0
    x.apply(complaint("resolved", T0 + 4 * D))  # fulfilled_late gen 0
    x.apply(complaint("reopened", T0 + 5 * D))  # due = now + 2d
    assert x.apply(complaint("resolved", T0 + 6 * D)) == ["fulfilled"]
    c = x.c("resolution:C1")
    assert (c["generation"], c["status"], c["breaches"]) == (1, "fulfilled", 1)
    ids = [a["alert_id"] for a in x.alerts()]
    assert ids == ["commitment_at_risk:resolution:C1:0", "unmet_commitment:resolution:C1:0",
                   "commitment_fulfilled_late:resolution:C1:0"]


def test_reopen_without_any_resolution_promise_does_nothing() -> None:
    x = Cust()
    x.apply(complaint("opened", T0))
    assert x.apply(complaint("reopened", T0 + D)) == []
    assert x.apply(complaint("reopened", T0 + D, comp="C9", resolution=T0 + 3 * D)) == ["made"]


def test_reopen_after_retention_continues_the_generation() -> None:
    x = Cust()
    x.apply(complaint("opened", T0, resolution=T0 + 3 * D))
    x.apply(complaint("resolved", T0 + D))
    x.tick(T0 + D + CFG.retention_seconds)
    assert "resolution:C1" not in x.state["commitments"]
    assert x.state["tombstones"]["resolution:C1"]["generation"] == 0
    assert x.apply(complaint("reopened", T0 + 10 * D)) == ["reopened"]
    c = x.c("resolution:C1")
    assert (c["generation"], c["due_at"]) == (1, T0 + 12 * D)
    assert "resolution:C1" not in x.state["tombstones"]


# ------------------------------------------------------------------------------ callback
def test_callback_fulfilled_by_callback_done_attribute() -> None:
    x = Cust()
    x.apply(complaint("opened", T0, callback=T0 + 3 * H))
    assert x.apply(complaint("updated", T0 + H, attributes={"callback_done": False})) == []
    assert x.apply(complaint("updated", T0 + 2 * H, attributes={"callback_done": True})) == ["fulfilled"]


def test_callback_fulfilled_by_an_update_on_the_phone_channel() -> None:
    x = Cust()
    x.apply(complaint("opened", T0, channel="phone", callback=T0 + 3 * H))
    assert x.apply(complaint("updated", T0 + H, channel="email")) == []
    assert x.apply(complaint("updated", T0 + H, channel="phone", attributes={"callback_done": False})) == []
    assert x.apply(complaint("updated", T0 + 2 * H, channel="phone")) == ["fulfilled"]


def test_callback_missed() -> None:
    x = Cust()
    x.apply(complaint("opened", T0, callback=T0 + 2 * H))
    assert x.tick(T0 + 90 * 60) == ["warned"]
    assert x.tick(T0 + 2 * H) == ["breached"]
    a = x.alerts()[-1]
    assert a["alert_id"] == "unmet_commitment:callback:C1:0" and "call-back" in a["reason"].lower()


# ------------------------------------------------------------------------------ refund
def test_refund_fulfilled_by_refunded_event_of_the_complaints_order() -> None:
    x = Cust()
    x.apply(complaint("opened", T0, order_id="O7", refund=T0 + 5 * D))
    assert x.c("refund:C1")["order_id"] == "O7"
    assert x.apply(order("refunded", T0 + D, oid="O8")) == []  # another order
    assert x.apply(order("refunded", T0 + 2 * D, oid="O7", amount=10.0, currency="BRL")) == ["fulfilled"]


def test_refund_before_the_promise_does_not_count() -> None:
    x = Cust()
    x.apply(complaint("opened", T0 + D, order_id="O7", refund=T0 + 5 * D))
    assert x.apply(order("refunded", T0, oid="O7")) == []


def test_refund_without_order_taken_by_any_refund_of_the_customer_earliest_due_first() -> None:
    x = Cust()
    x.apply(complaint("opened", T0, comp="C1", refund=T0 + 6 * D))
    x.apply(complaint("opened", T0, comp="C2", refund=T0 + 4 * D))
    assert x.c("refund:C1")["order_id"] is None
    assert x.apply(order("refunded", T0 + D, oid="anything")) == ["fulfilled"]
    assert x.c("refund:C2")["status"] == "fulfilled" and x.c("refund:C1")["status"] == "open"
    assert x.apply(order("refunded", T0 + 7 * D, oid="other")) == ["warned", "breached", "fulfilled_late"]
    alerts = x.alerts()
    assert {a["pain_point"] for a in alerts} == {"refund_return"}


def test_complaint_opening_makes_all_four_complaint_commitments() -> None:
    x = Cust()
    x.apply(complaint("opened", T0, order_id="O1", response=T0 + 2 * H, resolution=T0 + 2 * D,
                      callback=T0 + 3 * H, refund=T0 + 5 * D))
    assert sorted(x.state["commitments"]) == ["callback:C1", "refund:C1", "resolution:C1", "response:C1"]
    assert due_soonest(x.state) == T0 + H  # response: 2h - 1h warning
    assert summary(x.state) == {k: {"open": 1, "warned": 0, "breached": 0}
                                for k in ("response", "resolution", "callback", "refund")}


def test_short_promise_warns_at_once_when_made_inside_the_warning_window() -> None:
    x = Cust()
    x.apply(complaint("opened", T0, response=T0 + 30 * 60))  # 1h warning > 30 min promise
    assert due_soonest(x.state) == T0
    assert x.tick(T0) == ["warned"]
    assert x.log[-1].at == T0


# ------------------------------------------------------------------------------ retraction, idempotency
def test_breach_by_the_clock_retracted_when_the_event_says_it_was_on_time() -> None:
    x = Cust()
    due = T0 + 5 * D
    x.apply(order("placed", T0, promised=due))
    x.tick(due + H)  # wall clock ran past due before the (late-arriving) delivery event
    assert breaches(x.state) == 1
    assert x.apply(order("delivered", due - H)) == ["fulfilled"]
    c = x.c("delivery:O1")
    assert c["status"] == "fulfilled" and c["breach_retracted"] and c["breaches"] == 0
    assert breaches(x.state) == 0
    types = [a["type"] for a in x.alerts()]
    assert types == ["commitment_at_risk", "unmet_commitment", "commitment_breach_retracted"]
    retracted = x.alerts()[-1]
    assert retracted["severity"] == "info" and "unmet_commitment:delivery:O1:0" in retracted["reason"]


def test_redelivered_event_changes_nothing() -> None:
    x = Cust()
    placed = order("placed", T0, promised=T0 + 5 * D)
    x.apply(placed)
    delivered = order("delivered", T0 + D)
    x.apply(delivered)
    s = x.state
    for ev in (placed, delivered):
        new, tr = apply_event(s, ev, CFG)
        assert tr == [] and new is s


def test_duplicate_older_than_recent_ids_window_changes_nothing() -> None:
    x = Cust()
    opened = complaint("opened", T0, response=T0 + 4 * H, resolution=T0 + 3 * D)
    x.apply(opened)
    x.apply(complaint("updated", T0 + H))
    x.apply(complaint("resolved", T0 + D))
    reopened_ev = complaint("reopened", T0 + 2 * D)
    x.apply(reopened_ev)
    for i in range(RECENT_IDS + 5):  # push the ids out of the recent window
        x.apply(order("shipped", T0 + 2 * D + i, oid=f"X{i}"))
    assert opened.event_id not in x.state["recent_ids"]
    snapshot = orjson.dumps(x.state["commitments"])
    for ev in (opened, reopened_ev):
        _, tr = apply_event(x.state, ev, CFG)
        assert tr == []
    new, tr = apply_event(x.state, opened, CFG)
    assert orjson.dumps(new["commitments"]) == snapshot


def test_late_duplicate_of_a_dropped_delivery_does_not_remake_it() -> None:
    x = Cust()
    placed = order("placed", T0, promised=T0 + 5 * D)
    x.apply(placed)
    x.apply(order("delivered", T0 + D))
    x.tick(T0 + D + CFG.retention_seconds)
    assert x.state["commitments"] == {} and "delivery:O1" in x.state["tombstones"]
    x.state["recent_ids"] = []
    assert x.apply(placed) == []
    assert x.state["commitments"] == {}


def test_input_state_is_never_mutated() -> None:
    x = Cust()
    x.apply(order("placed", T0, promised=T0 + 5 * D))
    frozen = orjson.dumps(x.state)
    s = x.state
    apply_event(s, order("delivered", T0 + 6 * D), CFG)
    advance(s, T0 + 30 * D, CFG)
    assert orjson.dumps(s) == frozen


def test_state_and_transitions_are_json_serialisable() -> None:
    x = Cust()
    x.apply(complaint("opened", T0, order_id="O1", response=T0 + 2 * H, resolution=T0 + 2 * D,
                      callback=T0 + 3 * H, refund=T0 + 5 * D))
    x.apply(order("placed", T0, promised=T0 + 4 * D))
    x.tick(T0 + 10 * D)
    assert orjson.loads(orjson.dumps(x.state)) == x.state
    for t in x.log:
        assert orjson.loads(orjson.dumps(t.to_dict())) == t.to_dict()


def test_other_event_kinds_only_move_the_event_clock() -> None:
    fb = normalise("feedback", {"schema_version": 1, "event_id": "f1", "feedback_id": "f1", "customer_id": "c1",
                                "source": "review", "score": 2, "scale": {"min": 1, "max": 5},
                                "occurred_at": iso(T0 + D)})
    s, tr = apply_event(None, fb, CFG)
    assert tr == [] and s["commitments"] == {} and s["last_event_at"] == T0 + D and s["customer_id"] == "c1"
    assert new_state()["commitments"] == {}
    assert advance(None, T0)[1] == [] and due_soonest(None) is None


# ------------------------------------------------------------------------------ bounded state
def test_closed_commitments_dropped_after_retention_counters_kept() -> None:
    x = Cust()
    x.apply(order("placed", T0, oid="A", promised=T0 + 5 * D))
    x.apply(order("delivered", T0 + D, oid="A"))
    x.apply(order("placed", T0, oid="B", promised=T0 + 5 * D))
    x.apply(order("cancelled", T0 + 2 * D, oid="B"))
    x.tick(T0 + D + CFG.retention_seconds - 1)
    assert sorted(x.state["commitments"]) == ["delivery:A", "delivery:B"]
    x.tick(T0 + D + CFG.retention_seconds)
    assert sorted(x.state["commitments"]) == ["delivery:B"]
    # an event far later also purges (event-time retention, no tick needed)
    x.apply(order("shipped", T0 + 30 * D, oid="Z"))
    assert x.state["commitments"] == {}
    assert x.state["counters"]["delivery"] == {"made": 2, "fulfilled": 1, "voided": 1}
    x.tick(T0 + 2 * D + CFG.tombstone_retention_seconds)
    assert x.state["tombstones"] == {}


def test_breached_never_fulfilled_expires_after_breached_retention() -> None:
    x = Cust()
    due = T0 + 5 * D
    x.apply(order("placed", T0, promised=due))
    x.tick(due)
    assert x.tick(due + CFG.breached_retention_seconds - 1) == []
    assert x.tick(due + CFG.breached_retention_seconds) == ["expired"]
    assert x.state["commitments"] == {} and x.state["tombstones"]["delivery:O1"]["status"] == "expired"
    assert breaches(x.state) == 1
    assert [a["type"] for a in x.alerts()] == ["commitment_at_risk", "unmet_commitment"]


def test_state_stays_bounded_over_a_long_history() -> None:
    cfg = CommitmentConfig()
    x = Cust(cfg)
    sizes = []
    for i in range(400):  # an order a day for 400 days, a quarter delivered late, some never
        t = T0 + i * D
        due = t + 3 * D
        x.apply(order("placed", t, oid=f"O{i}", promised=due))
        if i % 10 != 9:
            x.apply(order("delivered", due + (D if i % 4 == 0 else -D), oid=f"O{i}"))
        x.tick(t + D)
        sizes.append(len(orjson.dumps(x.state)))
    live = len(x.state["commitments"]) + len(x.state["tombstones"])
    assert live < 200  # ~ 10 closed (7 days) + breached (90 days) + tombstones (90 days)
    assert max(sizes[200:]) < 1.2 * max(sizes[100:200])  # flat after the windows fill
    assert x.state["counters"]["delivery"]["made"] == 400


# ------------------------------------------------------------------------------ alerts
def _late_delivery(cust: str = "c1", oid: str = "O1") -> Cust:
    x = Cust()
    due = T0 + 5 * D
    x.apply(order("placed", T0, oid=oid, cust=cust, promised=due, eid=f"e-{oid}-placed"))
    x.tick(due - 24 * H)
    x.tick(due)
    x.apply(order("delivered", due + 4 * D, oid=oid, cust=cust, eid=f"e-{oid}-delivered"))
    return x


def test_alerts_validate_and_carry_the_contract_fields() -> None:
    x = _late_delivery()
    alerts = x.alerts(segment={**GENERAL, "region": "RJ", "channel": "web"})
    assert [a["alert_id"] for a in alerts] == [
        "commitment_at_risk:delivery:O1:0", "unmet_commitment:delivery:O1:0",
        "commitment_fulfilled_late:delivery:O1:0"]
    unmet = alerts[1]
    assert unmet["subject"] == {"kind": "customer", "customer_id": "c1",
                                "segment": {"value_tier": "general", "lifecycle": "active", "region": "RJ"}}
    assert unmet["evidence"] == ["e-O1-placed"]
    assert unmet["event_time"] == iso_ms(T0 + 5 * D) and unmet["emitted_at"] == iso_ms(T0 + 100 * D)
    assert unmet["commitment"] == {
        "id": "delivery:O1", "kind": "delivery", "field": "promised_delivery_at", "due_at": iso_ms(T0 + 5 * D),
        "status": "breached", "made_at": iso_ms(T0), "reschedules": 0, "generation": 0, "order_id": "O1"}
    assert unmet["suggested_actions"][0].startswith("Apologise")
    assert unmet["pain_point"] == "delivery"
    assert alerts[2]["evidence"] == ["e-O1-placed", "e-O1-delivered"]
    assert alerts[2]["commitment"]["delay_seconds"] == 4 * D
    assert alerts[0]["reason"].startswith("Delivery of order O1 promised by ") and "due in 24h" in alerts[0]["reason"]


def test_alert_reason_has_no_customer_free_text() -> None:
    x = Cust()
    x.apply(complaint("opened", T0, response=T0 + 2 * H, callback=T0 + 3 * H, refund=T0 + 2 * D,
                      resolution=T0 + 3 * D, order_id="O1"))
    x.tick(T0 + 10 * D)
    alerts = x.alerts()
    assert len(alerts) == 8
    blob = orjson.dumps(alerts).decode()
    for fragment in ("parcel", "nobody", "+55", "5555"):
        assert fragment not in blob


def test_alert_ids_deterministic_unique_per_stage_and_recomputed_identically() -> None:
    a1 = _late_delivery().alerts(emitted=T0 + 50 * D)
    a2 = _late_delivery().alerts(emitted=T0 + 99 * D)  # a restart recomputing the same transitions
    strip = [{k: v for k, v in a.items() if k != "emitted_at"} for a in a1]
    assert strip == [{k: v for k, v in a.items() if k != "emitted_at"} for a in a2]
    assert len({a["alert_id"] for a in a1}) == 3
    other = _late_delivery(oid="O2").alerts()
    assert not {a["alert_id"] for a in a1} & {a["alert_id"] for a in other}


def test_alerts_do_not_depend_on_tick_timing() -> None:
    """Ticks at every hour, at random moments or never (catch-up only) give the same alerts."""
    events = [
        order("placed", T0, oid="A", promised=T0 + 3 * D, eid="a1"),
        order("placed", T0 + H, oid="B", promised=T0 + 2 * D, eid="b1"),
        complaint("opened", T0 + 2 * H, response=T0 + 6 * H, resolution=T0 + 2 * D, eid="c1"),
        complaint("updated", T0 + 8 * H, eid="c2"),
        order("delivery_rescheduled", T0 + 30 * H, oid="B", promised=T0 + 4 * D, eid="b2"),
        order("delivered", T0 + 3 * D + 5 * H, oid="A", eid="a2"),
        complaint("resolved", T0 + 3 * D, eid="c3"),
        order("delivered", T0 + 5 * D, oid="B", eid="b3"),
    ]
    end = T0 + 10 * D

    def run(tick_every: float | None) -> list[dict]:
        x = Cust()
        now = T0
        for ev in events:
            while tick_every and now + tick_every < ev.occurred_at:
                now += tick_every
                x.tick(now)
            x.apply(ev)
        x.tick(end)
        return [{k: v for k, v in a.items() if k != "emitted_at"} for a in x.alerts(segment=KEY)]

    reference = run(None)
    assert len(reference) >= 6
    for every in (H, 7 * H, 2 * D):
        assert run(every) == reference


def test_severity_higher_for_key_customers_lateness_and_repeats() -> None:
    general = {a["type"]: a["severity"] for a in _late_delivery().alerts(segment=GENERAL)}
    key = {a["type"]: a["severity"] for a in _late_delivery().alerts(segment=KEY)}
    levels = ["info", "low", "medium", "high", "critical"]
    assert general == {"commitment_at_risk": "low", "unmet_commitment": "medium",
                       "commitment_fulfilled_late": "high"}  # 4 days late: +2 lateness
    for typ in general:
        assert levels.index(key[typ]) > levels.index(general[typ]) or key[typ] == "critical"
    assert key["unmet_commitment"] == "high"
    # repeats: the second broken promise of the same customer is more severe
    x = Cust()
    for oid, start in (("A", T0), ("B", T0 + 10 * D)):
        x.apply(order("placed", start, oid=oid, promised=start + 3 * D))
        x.tick(start + 4 * D)
    unmet = [a for a in x.alerts() if a["type"] == "unmet_commitment"]
    assert [a["severity"] for a in unmet] == ["medium", "high"]
    assert unmet[1]["details"]["severity_factors"] == ["repeat_breach"]
    assert unmet[1]["details"]["customer_breaches_before"] == 1
    # key customer, rescheduled, repeat offender -> critical
    t = x.log[-1]
    fake = Transition(**{**t.__dict__, "commitment": {**t.commitment, "reschedules": 2}, "customer_breaches": 3})
    assert severity("unmet_commitment", fake, KEY)[0] == "critical"


def test_playbook_key_customer_override_in_alert() -> None:
    general = [a for a in _late_delivery().alerts(segment=GENERAL) if a["type"] == "unmet_commitment"][0]
    key = [a for a in _late_delivery().alerts(segment=KEY) if a["type"] == "unmet_commitment"][0]
    assert any("compensation" in line for line in key["suggested_actions"])
    assert not any("compensation" in line for line in general["suggested_actions"])
    assert key["suggested_actions"][: len(general["suggested_actions"])] == general["suggested_actions"]
    assert any("informed" in line or "new" in line for line in general["suggested_actions"])
    assert alerts_for(_late_delivery().log, GENERAL, None, T0)[0]["suggested_actions"] == []


# ------------------------------------------------------------------------------ playbook
def test_default_playbook_covers_every_alert_type_and_kind() -> None:
    pb = load_playbook()
    assert pb.version
    for typ in ("commitment_at_risk", "unmet_commitment", "commitment_fulfilled_late",
                "commitment_breach_retracted"):
        for kind in ("delivery", "response", "resolution", "callback", "refund"):
            assert pb.actions(typ, kind, GENERAL), (typ, kind)
    assert pb.actions("churn_risk", "delivery", GENERAL) == []


def test_playbook_from_env_custom_file_replace_and_errors(tmp_path: Path) -> None:
    custom = tmp_path / "pb.yaml"
    custom.write_text(
        "version: x1\n"
        "alerts:\n"
        "  unmet_commitment:\n"
        "    delivery:\n"
        "      actions: [Say sorry]\n"
        "      segments:\n"
        "        value_tier=key: {replace: true, actions: [Call them]}\n"
        "        region=SP: [Use the SP hub]\n"
        "    '*':\n"
        "      actions: [Generic]\n",
        encoding="utf-8",
    )
    pb = load_playbook(env={"PIPELINE_PLAYBOOK_FILE": str(custom)})
    assert pb.version == "x1" and pb.source == str(custom)
    assert pb.actions("unmet_commitment", "delivery", {"value_tier": "general", "region": "RJ"}) == ["Say sorry"]
    assert pb.actions("unmet_commitment", "delivery", {"value_tier": "key", "region": "SP"}) == [
        "Call them", "Use the SP hub"]
    assert pb.actions("unmet_commitment", "refund", {}) == ["Generic"]
    assert load_playbook(custom).version == "x1"
    assert load_playbook(env={}).source == str(DEFAULT_PLAYBOOK_PATH)
    bad = tmp_path / "bad.yaml"
    for text in ("alerts: [1, 2]", "alerts:\n  x:\n    delivery:\n      actions: [1]",
                 "alerts:\n  x:\n    delivery:\n      segments: {nonsense: [a]}", "{{{",
                 "alerts:\n  x:\n    delivery:\n      action: [a]"):
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(PlaybookError):
            load_playbook(bad)
    with pytest.raises(PlaybookError):
        load_playbook(tmp_path / "missing.yaml")
    with pytest.raises(PlaybookError):
        parse_playbook(None)


# ------------------------------------------------------------------------------ simulator smoke
def test_simulated_stream_all_alerts_valid_and_unique() -> None:
    from pipeline.producers.simulator import iter_simulated_events

    data_dir = ROOT.parent / "shared" / "data"
    events = [normalise(kind, e) for kind, e in iter_simulated_events(
        8000, seed=7, data_dir=data_dir, customers=300, start=datetime(2024, 3, 1, tzinfo=timezone.utc))]
    _, transitions, alerts = replay(events, end=events[-1].occurred_at)
    assert_valid_alerts(alerts)
    kinds = Counter((a["type"], a["commitment"]["kind"]) for a in alerts)
    print("\nsimulated alerts:", dict(sorted(kinds.items())))
    assert kinds[("unmet_commitment", "delivery")] > 0 and kinds[("unmet_commitment", "response")] > 0
    assert kinds[("commitment_at_risk", "resolution")] > 0 and kinds[("commitment_fulfilled_late", "delivery")] > 0
    assert any(t.type == "reopened" for t in transitions)
    assert any(t.type == "rescheduled" for t in transitions)


# ------------------------------------------------------------------------------ Olist replay
@pytest.mark.skipif(not OLIST_DIR.is_dir(), reason="Olist subset not available")
def test_olist_replay_delivery_commitments_match_the_truth() -> None:
    """Replay the real Olist orders in event-time order through the pure functions.

    The clock is event time (the greatest event time seen); customers whose next
    warning/breach is due are advanced as it passes (a heap keyed by
    :func:`due_soonest`, as the agent would schedule ticks); at the end the clock
    is advanced past the last due date.  The truth is computed independently from
    the events: late = delivered after promised_delivery_at; never delivered and
    not cancelled = still open at the end.
    """
    from pipeline.producers.olist import iter_olist_events

    events = [normalise(kind, e) for kind, e in iter_olist_events(OLIST_DIR)]
    last_due = max(e.times["promised_delivery_at"] for e in events if "promised_delivery_at" in e.times)
    states, transitions, alerts = replay(events, end=last_due + 1)
    assert_valid_alerts(alerts)

    # truth, straight from the events
    promised, delivered, cancelled = {}, {}, set()
    for e in events:
        if e.kind != "order":
            continue
        oid, typ = e.event["order_id"], e.event["type"]
        if typ == "placed":
            promised[oid] = e.times["promised_delivery_at"]
        elif typ == "delivered":
            delivered[oid] = e.occurred_at
        elif typ == "cancelled":
            cancelled.add(oid)
    late = {o for o, t in delivered.items() if t > promised[o]}
    never = {o for o in promised if o not in delivered and o not in cancelled}
    at_risk_truth = {o for o, t in delivered.items() if t > promised[o] - CFG.warn_delivery_seconds} | never

    by = {typ: {t.commitment["subject_id"] for t in transitions if t.kind == "delivery" and t.type == typ}
          for typ in ("made", "fulfilled", "fulfilled_late", "breached", "warned", "voided", "expired")}
    on_time = by["fulfilled"]
    figures = {
        "orders": len(promised), "made": len(by["made"]), "fulfilled_on_time": len(on_time),
        "breached": len(by["breached"]), "fulfilled_late": len(by["fulfilled_late"]),
        "breached_never_fulfilled": len(by["breached"] - by["fulfilled_late"]), "voided": len(by["voided"]),
        "warned": len(by["warned"]), "truth_late": len(late), "truth_never_delivered_not_cancelled": len(never),
        "truth_at_risk": len(at_risk_truth), "alerts": len(alerts),
    }
    print("\nOlist delivery commitments:", figures)
    assert len(by["made"]) == len(promised) == 5000
    assert by["fulfilled_late"] == late
    assert by["breached"] - by["fulfilled_late"] == never
    assert by["breached"] == late | never
    assert len(by["breached"]) + 0 == len(late) + len(never)
    assert by["warned"] == at_risk_truth
    assert on_time == set(delivered) - late
    assert not on_time & by["breached"]
    counters = Counter()
    for s in states.values():
        counters.update(s["counters"].get("delivery", {}))
    assert counters["breached"] == len(late) + len(never) and counters["made"] == 5000
    # bounded: after the final advance only breached-and-never-delivered ones (within their
    # 90-day retention) remain
    remaining = [c for s in states.values() for c in s["commitments"].values()]
    assert all(c["status"] == "breached" for c in remaining)
