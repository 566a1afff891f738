"""Alerts for commitment transitions (``alerts.commitments``), per schemas/alert.schema.json.

================================ ===================== ==============================
transition                        alert type            base severity
================================ ===================== ==============================
warned                            commitment_at_risk    low
breached                          unmet_commitment      medium
fulfilled_late                    commitment_fulfilled_late  low
fulfilled/voided with             commitment_breach_retracted  info (fixed)
``breach_retracted`` (the clock
breached it, the event says it
was on time)
================================ ===================== ==============================

Other transitions (made, rescheduled, reopened, fulfilled, voided, expired)
raise no alert.

``alert_id = f"{type}:{commitment_id}:{generation}"`` (e.g.
``unmet_commitment:delivery:ORD-1:0``): a commitment reaches each stage at most
once per generation, so a restart or a rebalance that recomputes the same
transition produces the same id, and a new stage or generation a new one.
The content is deterministic too (``event_time`` is the transition's own time:
warning time, due time, event time), except ``emitted_at``.

Severity rule
-------------
Levels info < low < medium < high < critical; start from the base above, then
add (capped at critical):

* **segment**: +1 for a key customer (``value_tier == "key"``);
* **lateness**: +1 if the commitment was rescheduled at least once (the
  customer has already been let down), +1 if fulfilled >= 24 h late, +1 more
  if >= 72 h late (lateness adds at most 2);
* **repeats**: +1 if the customer already had a breached commitment (any
  kind) before this one, +2 if three or more.

E.g. a first missed delivery of a general customer is *medium*; of a key
customer *high*; a key customer's second broken promise is *critical*.  The
factors that applied are listed in ``details.severity_factors``.

``reason`` is built from ids, dates and counts only - never from customer
free text or personal data.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterable, Mapping

from ..core.timeparse import format_timestamp
from ..core.redact import Redactor, redact_alert
from .model import BREACHED, FULFILLED, FULFILLED_LATE, VOIDED, WARNED, Transition
from .playbook import Playbook

SCHEMA_VERSION = 1
SEVERITIES = ("info", "low", "medium", "high", "critical")
AT_RISK, UNMET, LATE, RETRACTED = (
    "commitment_at_risk", "unmet_commitment", "commitment_fulfilled_late", "commitment_breach_retracted",
)
BASE = {AT_RISK: 1, UNMET: 2, LATE: 1, RETRACTED: 0}
RAISED_BY = {WARNED: AT_RISK, BREACHED: UNMET, FULFILLED_LATE: LATE}  # transitions that always raise an alert
PAIN_POINT = {"delivery": "delivery", "refund": "refund_return"}  # others: customer_service
MAX_EVIDENCE = 100

_MISSING = {
    "delivery": "the order has not been delivered",
    "response": "no reply to the customer has been recorded",
    "resolution": "the complaint has not been resolved",
    "callback": "no call-back has been recorded",
    "refund": "no refund has been recorded",
}


def alert_type(t: Transition) -> str | None:
    """The alert type a transition raises, or None."""
    transition = t.type
    if transition in RAISED_BY:
        return RAISED_BY[transition]
    if (transition == FULFILLED or transition == VOIDED) and t.detail.get("breach_retracted"):
        return RETRACTED
    return None


def alert_id(typ: str, commitment_id: str, generation: int) -> str:
    return f"{typ}:{commitment_id}:{generation}"


def severity(typ: str, t: Transition, segment: Mapping[str, Any]) -> tuple[str, list[str]]:
    """``(severity, factors)`` by the rule in the module docstring."""
    level = BASE.get(typ, 1)
    factors: list[str] = []
    if typ == RETRACTED:
        return SEVERITIES[level], factors
    c = t.commitment
    if segment.get("value_tier") == "key":
        level += 1
        factors.append("key_customer")
    late = 0
    if c.get("reschedules", 0) >= 1:
        late += 1
        factors.append("rescheduled")
    delay = c.get("delay_seconds") or 0.0
    if typ == LATE and delay >= 24 * 3600:
        late += 1
        factors.append("late_24h")
    if typ == LATE and delay >= 72 * 3600:
        late += 1
        factors.append("late_72h")
    level += min(2, late)
    if t.customer_breaches >= 3:
        level += 2
        factors.append("repeat_breaches_3plus")
    elif t.customer_breaches >= 1:
        level += 1
        factors.append("repeat_breach")
    return SEVERITIES[min(level, len(SEVERITIES) - 1)], factors


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min"
    hours = seconds / 3600
    if hours < 48:
        return f"{hours:.0f}h" if hours >= 10 else f"{hours:.1f}h".replace(".0h", "h")
    days, rest = divmod(round(hours), 24)
    return f"{days}d {rest}h" if rest else f"{days}d"


def _label(c: Mapping[str, Any]) -> str:
    kind = c["kind"]
    if kind == "delivery":
        return f"Delivery of order {c['subject_id']}"
    comp = f"complaint {c['subject_id']}"
    if kind == "response":
        return f"First response to {comp}"
    if kind == "resolution":
        return f"Resolution of {comp}"
    if kind == "callback":
        return f"Call-back for {comp}"
    order = f" (order {c['order_id']})" if c.get("order_id") else ""
    return f"Refund for {comp}{order}"


def _history(c: Mapping[str, Any]) -> str:
    parts = []
    n = c.get("reschedules", 0)
    if n:
        parts.append("rescheduled once" if n == 1 else f"rescheduled {n} times")
    r = c.get("reopens", 0)
    if r:
        parts.append("reopened" if r == 1 else f"reopened {r} times")
    return f" ({', '.join(parts)})" if parts else ""


def reason(typ: str, t: Transition) -> str:
    c = t.commitment
    due = format_timestamp(c["due_at"])
    head = f"{_label(c)} promised by {due}{_history(c)}"
    if typ == AT_RISK:
        return f"{head} is due in {_duration(c['due_at'] - t.at)} and {_MISSING[c['kind']]}"
    if typ == UNMET:
        return f"{head} was not met: {_MISSING[c['kind']]} by the promised time"
    if typ == LATE:
        return f"{head} was fulfilled {_duration(c.get('delay_seconds') or 0)} late"
    return (f"{head} was met on time after all (the confirming event arrived late); "
            f"alert {alert_id(UNMET, c['id'], c['generation'])} is withdrawn")


def _commitment_doc(c: Mapping[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": c["id"],
        "kind": c["kind"],
        "field": c["field"],
        "due_at": format_timestamp(c["due_at"]),
        "status": c["status"],
        "made_at": format_timestamp(c["made_at"]),
        "reschedules": c["reschedules"],
        "generation": c["generation"],
    }
    if c.get("original_due_at") is not None and c["original_due_at"] != c["due_at"]:
        doc["original_due_at"] = format_timestamp(c["original_due_at"])
    for key in ("order_id", "complaint_id"):
        if c.get(key):
            doc[key] = c[key]
    if c.get("reopens"):
        doc["reopens"] = c["reopens"]
    if c.get("delay_seconds") is not None:
        doc["delay_seconds"] = round(c["delay_seconds"], 3)
    return doc


def _subject_segment(segment: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(segment.get(k) or "unknown") for k in ("value_tier", "lifecycle", "region")}


@lru_cache(maxsize=1024, typed=True)  # typed: a count of 2.0 read from an old state is not 2
def _redacted_parts(redactor: Redactor | None, actions: tuple[str, ...], transition: str, breaches: int,
                    factors: tuple[str, ...], version: str | None) -> tuple[tuple[str, ...], dict[str, Any]]:
    """``suggested_actions`` and ``details`` of an alert as :func:`redact_alert` makes them (it redacts
    each of an alert's fields on its own).  They are playbook lines, enumerations and counts, so few
    distinct ones recur: redacting each once saves most of an alert's redaction (issue 17)."""
    details = {"transition": transition, "customer_breaches_before": breaches, "severity_factors": list(factors),
               "playbook_version": version}
    doc = redact_alert({"suggested_actions": list(actions), "details": details}, redactor)
    return tuple(doc["suggested_actions"]), doc["details"]


def alerts_for(
    transitions: Iterable[Transition], segment: Mapping[str, Any] | None, playbook: Playbook | None,
    now_emitted: float, redactor: Redactor | None = None,
) -> list[dict[str, Any]]:
    """Alert dicts for the transitions that raise one (see module doc), in transition order.

    Every alert is redacted by :func:`redact_alert`: its ``suggested_actions`` and ``details``
    through :func:`_redacted_parts`, the rest here."""
    segment = segment or {}
    out: list[dict[str, Any]] = []
    for t in transitions:
        typ = alert_type(t)
        if typ is None:
            continue
        c = t.commitment
        level, factors = severity(typ, t, segment)
        evidence = list(c.get("evidence", []))
        if len(evidence) > MAX_EVIDENCE:
            evidence = evidence[:1] + evidence[-(MAX_EVIDENCE - 1):]
        alert = redact_alert({
            "schema_version": SCHEMA_VERSION,
            "alert_id": alert_id(typ, t.commitment_id, t.generation),
            "type": typ,
            "severity": level,
            "subject": {"kind": "customer", "customer_id": t.customer_id, "segment": _subject_segment(segment)},
            "reason": reason(typ, t),
            "evidence": evidence,
            "event_time": format_timestamp(t.at),
            "emitted_at": format_timestamp(now_emitted),
        }, redactor)
        actions, details = _redacted_parts(
            redactor, tuple(playbook.actions(typ, t.kind, segment)) if playbook is not None else (), t.type,
            t.customer_breaches, tuple(factors), playbook.version if playbook is not None else None)
        out.append({
            **alert,
            "suggested_actions": list(actions),
            "pain_point": PAIN_POINT.get(t.kind, "customer_service"),
            "commitment": _commitment_doc(c),
            "details": {**details, "severity_factors": list(details["severity_factors"])},
        })
    return out
