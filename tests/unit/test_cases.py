"""Issue 19: alert cases folded from operator actions, and the console's inbox (pure, no broker)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs
import pytest

from pipeline.cases.inbox import Filters, Inbox
from pipeline.cases.lifecycle import Action, ActionRefused, apply, case_of, new_case, record, status_at

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = jsonschema_rs.validator_for(json.loads((ROOT / "schemas" / "alert_action.schema.json").read_text()),
                                        validate_formats=True)
T = 1_800_000_000.0
A = "churn_risk:c1:2027-01-15"


def act(kind: str, at: float = T, actor: str = "mina", **kw) -> Action:
    return Action(f"{kind}-{at}", A, kind, actor, at, **kw)


def test_acknowledge_assign_resolve_reopen_and_every_record_is_valid() -> None:
    c = new_case(A)
    steps = [act("acknowledge", T + 60), act("assign", T + 70, owner="jun"),
             act("resolve", T + 3600, actor="jun", resolution_code="contacted_customer", note="called"),
             act("reopen", T + 7200), act("comment", T + 7300, note="customer wrote again")]
    for i, a in enumerate(steps, 1):
        c = apply(c, a)
        doc = record(c, "c1")
        VALIDATOR.validate(doc)
        assert case_of(doc) == c and c.version == i
    assert c.status == "open" and c.owner == "jun" and c.resolution_code is None
    assert c.acknowledged_at == T + 60 and c.responder == "mina"  # the first response, kept across a reopen
    assert [a.kind for a in c.history] == ["acknowledge", "assign", "resolve", "reopen", "comment"]


def test_assign_and_snooze_acknowledge_an_open_alert_and_a_snooze_runs_out() -> None:
    c = apply(new_case(A), act("assign", T, owner="jun"))
    assert c.status == "acknowledged" and c.acknowledged_at == T
    c = apply(new_case(A), act("snooze", T, until=T + 600))
    assert c.status == "snoozed" and c.acknowledged_at == T
    assert status_at(c, T + 599) == "snoozed" and status_at(c, T + 600) == "acknowledged"
    c = apply(c, act("acknowledge", T + 10))  # ends the snooze early
    assert c.status == "acknowledged" and c.snoozed_until is None


@pytest.mark.parametrize("first,then,why", [
    (["acknowledge"], act("acknowledge"), "already acknowledged"),
    ([], act("reopen"), "only a resolved"),
    ([], act("resolve", resolution_code="because"), "resolution code"),
    ([], act("resolve"), "resolution code"),
    ([], act("assign"), "owner"),
    ([], act("snooze", until=T - 1), "future"),
    ([], act("comment"), "note"),
    ([], act("resolve", resolution_code="duplicate", note="x" * 2001), "longer"),
    ([], act("frobnicate"), "unknown action"),
    ([], act("acknowledge", actor=""), "actor"),
    (["resolve"], act("acknowledge"), "reopen it"),
    (["resolve"], act("assign", owner="jun"), "reopen it"),
])
def test_refused_actions_say_why(first: list[str], then: Action, why: str) -> None:
    c = new_case(A)
    for kind in first:
        c = apply(c, act(kind, resolution_code="duplicate") if kind == "resolve" else act(kind))
    with pytest.raises(ActionRefused, match=why):
        apply(c, then)


def test_a_stale_version_is_refused_and_another_alert_too() -> None:
    c = apply(new_case(A), act("acknowledge"))
    with pytest.raises(ActionRefused, match="someone else"):
        apply(c, act("assign", owner="jun", expected_version=0))
    assert apply(c, act("assign", owner="jun", expected_version=1)).owner == "jun"
    with pytest.raises(ActionRefused, match="another alert"):
        apply(c, Action("x", "other", "comment", "mina", T, note="n"))


def test_history_is_bounded() -> None:
    c = new_case(A)
    for i in range(60):
        c = apply(c, act("comment", T + i, note=f"n{i}"))
    assert len(c.history) == 50 and c.history[0].note == "n10" and c.version == 60
    VALIDATOR.validate(record(c))


# -- inbox ---------------------------------------------------------------------------------------
def alert(alert_id: str, typ: str = "churn_risk", severity: str = "high", minute: int = 0, **subject) -> dict:
    subj = subject or {"kind": "customer", "customer_id": alert_id.split(":")[1],
                       "segment": {"value_tier": "key", "lifecycle": "active", "region": "unknown"}}
    return {"alert_id": alert_id, "type": typ, "severity": severity, "subject": subj, "reason": f"why {alert_id}",
            "emitted_at": f"2027-01-15T10:{minute:02d}:00Z"}


def test_inbox_filters_newest_first_and_an_action_before_its_alert_waits_for_it() -> None:
    box = Inbox()
    box.add_case(apply(new_case("churn_risk:c2:d"), Action("a1", "churn_risk:c2:d", "assign", "mina", T, owner="jun")))
    box.add_alert(alert("churn_risk:c1:d", minute=1), "alerts.churn-risk")
    box.add_alert(alert("churn_risk:c2:d", severity="critical", minute=2), "alerts.churn-risk")
    box.add_alert(alert("pain_point_surge:x", typ="pain_point_surge", severity="medium", minute=3,
                        kind="segment", dimension="region", value="SP"), "alerts.pain-points")
    ids = lambda f: [e.alert_id for e in box.query(f, T)]  # noqa: E731
    assert ids(Filters()) == ["pain_point_surge:x", "churn_risk:c2:d", "churn_risk:c1:d"]
    assert ids(Filters(severity="high")) == ["churn_risk:c2:d", "churn_risk:c1:d"]
    assert ids(Filters(segment="region=SP")) == ["pain_point_surge:x"]
    assert ids(Filters(segment="value_tier=key", owner="jun")) == ["churn_risk:c2:d"]
    assert ids(Filters(owner="unassigned", type="churn_risk")) == ["churn_risk:c1:d"]
    assert ids(Filters(status="acknowledged")) == ["churn_risk:c2:d"]
    assert ids(Filters(text="C1")) == ["churn_risk:c1:d"]
    assert box.facets()["segment"] == ["lifecycle=active", "region=SP", "value_tier=key"]
    assert box.counts(T) == {"open": 2, "acknowledged": 1, "snoozed": 0, "resolved": 0}


def test_inbox_keeps_the_newest_case_and_evicts_resolved_first() -> None:
    box = Inbox(max_alerts=2)
    a1, a2 = "churn_risk:c1:d", "churn_risk:c2:d"
    box.add_alert(alert(a1, minute=1), "t")
    resolved = apply(new_case(a1), Action("r", a1, "resolve", "mina", T, resolution_code="duplicate"))
    box.add_case(resolved)
    box.add_case(new_case(a1))  # an older version read late does not win
    assert box.case(a1).status == "resolved"
    box.add_alert(alert(a2, minute=2), "t")
    box.add_alert(alert("churn_risk:c3:d", minute=3), "t")
    assert box.get(a1) is None and box.get(a2) is not None and len(box) == 2
    assert box.query(Filters(status="all"), T)[0].alert_id == "churn_risk:c3:d"
    assert Filters.of({"severity": "bogus", "limit": "5000", "status": ""}) == Filters(limit=1000)


# -- trends ----------------------------------------------------------------------------------------
def final(start_hour: int, pain: str | None, count: int, events: int = 10, value: str = "SP") -> dict:
    return {"record_id": f"1h:{start_hour}:region={value}:{pain or '-'}", "window": "1h", "dimension": "region",
            "value": value, "window_start": f"2027-01-15T{start_hour:02d}:00:00.000Z", "pain_point": pain,
            "count": count, "events": events}


def test_trends_keep_the_latest_windows_and_chart_the_top_pain_points() -> None:
    from pipeline.cases.trends import Trends, svg_chart, top_pain_points

    tr = Trends(keep=3)
    for h in range(5):
        tr.add_final(final(h, "delivery", h + 1))
        tr.add_final(final(h, "price", 1))
    tr.add_final(final(4, "delivery", 9))  # re-sent after a restart with a new count: overwritten
    tr.add_final(final(0, "delivery", 1))  # older than everything kept: ignored
    tr.add_final({"window": "1h"})  # not a final record: ignored
    series = tr.series("region=SP", "1h")
    assert [int(w.start) % 86400 // 3600 for w in series] == [2, 3, 4]
    assert [w.pain["delivery"] for w in series] == [3, 4, 9]
    assert tr.segments() == ["region=SP"] and tr.windows_of("region=SP") == ["1h"]
    assert top_pain_points(series, 1) == ["delivery"]
    svg = svg_chart(series)
    assert svg.count("<polyline") == 2 and svg.count("<circle") == 6 and "delivery" in svg
    assert "No closed windows" in svg_chart([])
    tr.add_final(final(1, "<script>", 2, value="x"))
    assert "<script>" not in svg_chart(tr.series("region=x", "1h"))  # pain-point ids are escaped


# -- the acknowledgement SLA -------------------------------------------------------------------------
def test_ack_sla_escalates_once_what_nobody_acknowledged_and_never_an_escalation() -> None:
    from pipeline.cases.sla import AckSla, new_state, on_alert, on_case, sweep

    sla = AckSla(seconds=600, severity="high")
    st = new_state()
    emitted = "2027-01-15T10:00:00Z"
    base = {"subject": {"kind": "customer", "customer_id": "c1"}, "reason": "r", "emitted_at": emitted}
    t0 = 1_800_000_000.0
    from pipeline.core.timeparse import parse_timestamp

    e = parse_timestamp(emitted)
    assert on_alert(st, {**base, "alert_id": "a1", "type": "churn_risk", "severity": "critical"}, sla, t0)
    assert on_alert(st, {**base, "alert_id": "a2", "type": "churn_risk", "severity": "high"}, sla, t0)
    assert not on_alert(st, {**base, "alert_id": "a3", "type": "churn_risk", "severity": "medium"}, sla, t0)
    assert not on_alert(st, {**base, "alert_id": "a1", "type": "churn_risk", "severity": "critical"}, sla, t0)
    # a2 acknowledged in the console (any action that sets acknowledged_at); a4's ack read before a4
    assert on_case(st, {"alert_id": "a2", "case": {"status": "acknowledged", "acknowledged_at": emitted}}, e + 5)
    assert not on_case(st, {"alert_id": "a1", "case": {"status": "open"}}, e + 5)
    on_case(st, {"alert_id": "a4", "case": {"status": "resolved", "acknowledged_at": emitted}}, e + 6)
    assert not on_alert(st, {**base, "alert_id": "a4", "type": "churn_risk", "severity": "critical"}, sla, e + 7)
    assert sweep(st, sla, e + 599) == []
    out = sweep(st, sla, e + 600)
    assert [a["alert_id"] for a in out] == ["alert_unacknowledged:a1"]
    esc = out[0]
    assert esc["type"] == "alert_unacknowledged" and esc["severity"] == "critical" and esc["subject"] == base["subject"]
    assert esc["details"]["escalates"] == "a1" and "within 10 min" in esc["reason"]
    assert sweep(st, sla, e + 700) == []  # once
    assert not on_alert(st, esc, sla, e + 700)  # an escalation is never escalated
    assert not on_alert(st, {**base, "alert_id": "a1", "type": "churn_risk", "severity": "critical"}, sla, e + 700)
    sweep(st, sla, e + 8 * 86400)
    assert st == {"open": {}, "met": {}, "broken": {}}  # outcomes forgotten after a week
    assert not AckSla(seconds=0).applies({"type": "churn_risk", "severity": "critical"})


def test_escalations_are_valid_alerts() -> None:
    import json as _json

    from pipeline.cases.sla import AckSla, escalation

    validator = jsonschema_rs.validator_for(_json.loads((ROOT / "schemas" / "alert.schema.json").read_text()),
                                            validate_formats=True)
    esc = escalation("unmet_commitment:response:cp-1:0", {"due": T, "subject": {"kind": "customer", "customer_id": "c"},
                                                          "type": "unmet_commitment", "severity": "high",
                                                          "reason": "late"}, AckSla(30), T + 1)
    validator.validate(esc)
    assert "within 30 s" in esc["reason"]
