"""The team's own promise: a serious alert is acknowledged within ``PIPELINE_ACK_SLA_SECONDS``
(issue 19, scope 2).  Pure: state in, state and escalation alerts out; the clock is passed in.

Each alert of at least ``PIPELINE_ACK_SLA_SEVERITY`` (default ``critical``) opens an
**acknowledgement commitment** due at its ``emitted_at`` + the SLA (wall clock: people answer in
real time, whatever the event time of a replay).  An operator action that acknowledges it
(``acknowledge``, ``assign``, ``snooze`` or ``resolve``: every case whose ``acknowledged_at`` is set)
meets it.  At the due time an unmet one is **broken**: one escalation alert, type
``alert_unacknowledged``, severity ``critical``, about the same subject, id
``alert_unacknowledged:<alert id>`` (so a re-emitted escalation is recognisable), never escalated
itself.  An acknowledgement read before its alert (they are different topics) is remembered, so the
alert then opens nothing.

State per partition (one table value): ``open`` (alert id → due, subject, type, severity, reason),
``met`` and ``broken`` (alert id → when), the last two pruned after :data:`KEEP_SECONDS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..core.timeparse import format_timestamp, parse_timestamp
from .inbox import SEVERITIES

ESCALATION = "alert_unacknowledged"
KEEP_SECONDS = 7 * 86400.0


@dataclass(frozen=True)
class AckSla:
    seconds: float = 900.0  # PIPELINE_ACK_SLA_SECONDS (0, the setting's default: off)
    severity: str = "critical"  # PIPELINE_ACK_SLA_SEVERITY: alerts of at least this severity

    def applies(self, alert: Mapping[str, Any]) -> bool:
        sev = alert.get("severity")
        return (self.seconds > 0 and alert.get("type") != ESCALATION and sev in SEVERITIES
                and SEVERITIES.index(sev) >= SEVERITIES.index(self.severity))


def new_state() -> dict[str, Any]:
    return {"open": {}, "met": {}, "broken": {}}


def on_alert(state: dict[str, Any], alert: Mapping[str, Any], sla: AckSla, now: float) -> bool:
    """Open the alert's commitment if it needs one; True when ``state`` changed."""
    alert_id = alert.get("alert_id")
    if not isinstance(alert_id, str) or not sla.applies(alert):
        return False
    if alert_id in state["open"] or alert_id in state["met"] or alert_id in state["broken"]:
        return False
    try:
        emitted = parse_timestamp(str(alert.get("emitted_at")))
    except ValueError:
        emitted = now
    state["open"][alert_id] = {"due": emitted + sla.seconds, "subject": alert.get("subject"),
                               "type": alert.get("type"), "severity": alert.get("severity"),
                               "reason": str(alert.get("reason", ""))[:500]}
    return True


def on_case(state: dict[str, Any], case_doc: Mapping[str, Any], now: float) -> bool:
    """An ``alerts.actions`` record: an acknowledged case meets its alert's commitment."""
    alert_id, case = case_doc.get("alert_id"), case_doc.get("case") or {}
    if not isinstance(alert_id, str) or not case.get("acknowledged_at") or alert_id in state["met"]:
        return False
    state["open"].pop(alert_id, None)
    state["met"][alert_id] = now
    return True


def sweep(state: dict[str, Any], sla: AckSla, now: float) -> list[dict[str, Any]]:
    """The escalation alerts of every commitment due by ``now`` (and forget old outcomes)."""
    out = []
    for alert_id, c in sorted(state["open"].items(), key=lambda kv: kv[1]["due"]):
        if c["due"] > now:
            break
        out.append(escalation(alert_id, c, sla, now))
        state["broken"][alert_id] = now
        del state["open"][alert_id]
    for outcome in ("met", "broken"):
        for alert_id in [a for a, t in state[outcome].items() if t < now - KEEP_SECONDS]:
            del state[outcome][alert_id]
    return out


def escalation(alert_id: str, c: Mapping[str, Any], sla: AckSla, now: float) -> dict[str, Any]:
    """The ``alert_unacknowledged`` alert (schema ``alert``, version 1)."""
    minutes = sla.seconds / 60
    limit = f"{minutes:g} min" if sla.seconds >= 60 else f"{sla.seconds:g} s"
    return {
        "schema_version": 1,
        "alert_id": f"{ESCALATION}:{alert_id}"[:256],
        "type": ESCALATION,
        "severity": "critical",
        "subject": c.get("subject") or {"kind": "segment", "dimension": "all", "value": "all"},
        "reason": f"No one acknowledged the {c.get('severity')} alert {c.get('type')} within {limit}: "
                  f"{c.get('reason', '')}"[:2000],
        "evidence": [],
        "event_time": format_timestamp(c["due"]),
        "emitted_at": format_timestamp(now),
        "suggested_actions": [f"Acknowledge or assign alert {alert_id} in the console",
                              "Check who is on call for these alerts"],
        "details": {"escalates": alert_id, "due": format_timestamp(c["due"]), "sla_seconds": sla.seconds},
        "commitment": {"kind": "acknowledgement", "alert_id": alert_id, "due": format_timestamp(c["due"])},
    }
