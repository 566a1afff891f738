"""The console's alert inbox: alerts and their cases, indexed and filtered (pure; issue 19).

Fed with the records of the alert topics (:meth:`Inbox.add_alert`) and of ``alerts.actions``
(:meth:`Inbox.add_case`), in any order: an action can be read before its alert (they are separate
topics), and the case waits for it.  An alert re-emitted with the same ``alert_id`` (the worker's
ids are deterministic) replaces the stored alert and keeps its case.

Bounded: beyond ``max_alerts`` the oldest *resolved* alerts go first, then the oldest of any status.

Filters (:class:`Filters`): type, severity (at least), segment (``dimension=value``: a segment
alert's subject, or the value a customer alert's segment had when it fired), owner
(``unassigned`` for none), status (as of now: a snooze that ran out reads ``acknowledged``; the
default ``active`` = not resolved and not snoozed), and text (alert id, customer id, reason).
Newest first (``emitted_at``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping


from ..core.timeparse import parse_timestamp
from .lifecycle import Case, new_case, status_at

SEVERITIES = ("info", "low", "medium", "high", "critical")
SEGMENT_KEYS = ("value_tier", "lifecycle", "region")  # of a customer alert's subject.segment
DEFAULT_MAX_ALERTS = 50_000


@dataclass(frozen=True)
class Entry:
    alert: dict[str, Any]
    case: Case
    topic: str
    emitted: float  # epoch seconds

    @property
    def alert_id(self) -> str:
        return str(self.alert["alert_id"])

    @property
    def customer_id(self) -> str | None:
        subject = self.alert.get("subject") or {}
        return subject.get("customer_id") if subject.get("kind") == "customer" else None

    def segments(self) -> list[str]:
        return alert_segments(self.alert)


def subject_key(alert: Mapping[str, Any]) -> str | None:
    """The key an alert's subject is partitioned by: the customer id, or ``dimension=value``."""
    subject = alert.get("subject") or {}
    if subject.get("kind") == "customer":
        return subject.get("customer_id")
    if subject.get("kind") == "segment":
        return f"{subject.get('dimension')}={subject.get('value')}"
    return None


def alert_segments(alert: dict[str, Any]) -> list[str]:
    """``dimension=value`` labels of an alert's subject: a segment alert's own, or the segment values a
    customer alert carried when it fired (``unknown`` left out)."""
    subject = alert.get("subject") or {}
    if subject.get("kind") == "segment":
        return [f"{subject.get('dimension')}={subject.get('value')}"]
    seg = subject.get("segment") or {}
    return [f"{k}={seg[k]}" for k in SEGMENT_KEYS if seg.get(k) not in (None, "", "unknown")]


@dataclass(frozen=True)
class Filters:
    type: str | None = None
    severity: str | None = None  # at least this severity
    segment: str | None = None
    owner: str | None = None  # "unassigned": none
    status: str = "active"  # active | all | open | acknowledged | snoozed | resolved
    text: str | None = None
    limit: int = 200

    @classmethod
    def of(cls, query: dict[str, str]) -> "Filters":
        """From URL query parameters (unknown or empty ones ignored)."""
        def get(name: str) -> str | None:
            value = (query.get(name) or "").strip()
            return value or None

        limit = get("limit")
        return cls(type=get("type"), severity=get("severity") if get("severity") in SEVERITIES else None,
                   segment=get("segment"), owner=get("owner"), status=get("status") or "active", text=get("q"),
                   limit=min(1000, max(1, int(limit))) if limit and limit.isdigit() else 200)


class Inbox:
    def __init__(self, max_alerts: int = DEFAULT_MAX_ALERTS) -> None:
        self.max_alerts = max_alerts
        self._alerts: OrderedDict[str, tuple[dict[str, Any], str, float]] = OrderedDict()
        self._cases: dict[str, Case] = {}

    def __len__(self) -> int:
        return len(self._alerts)

    # -- input -------------------------------------------------------------------------------------
    def add_alert(self, alert: dict[str, Any], topic: str) -> None:
        alert_id = alert.get("alert_id")
        if not isinstance(alert_id, str) or not alert_id:
            return
        emitted = _epoch(alert.get("emitted_at")) or _epoch(alert.get("event_time")) or 0.0
        self._alerts[alert_id] = (alert, topic, emitted)
        self._alerts.move_to_end(alert_id)
        if len(self._alerts) > self.max_alerts:
            self._evict()

    def add_case(self, case: Case) -> None:
        """The latest case of an alert (from ``alerts.actions``); an older version never replaces a newer one."""
        known = self._cases.get(case.alert_id)
        if known is None or case.version >= known.version:
            self._cases[case.alert_id] = case

    def _evict(self) -> None:
        excess = len(self._alerts) - self.max_alerts
        resolved = [a for a in self._alerts if self.case(a).status == "resolved"][:excess]
        for alert_id in resolved:
            self._forget(alert_id)
        while len(self._alerts) > self.max_alerts:
            self._forget(next(iter(self._alerts)))

    def _forget(self, alert_id: str) -> None:
        self._alerts.pop(alert_id, None)
        self._cases.pop(alert_id, None)

    # -- reads -------------------------------------------------------------------------------------
    def case(self, alert_id: str) -> Case:
        return self._cases.get(alert_id) or new_case(alert_id)

    def get(self, alert_id: str) -> Entry | None:
        got = self._alerts.get(alert_id)
        if got is None:
            return None
        alert, topic, emitted = got
        return Entry(alert, self.case(alert_id), topic, emitted)

    def entries(self) -> Iterable[Entry]:
        for alert_id, (alert, topic, emitted) in self._alerts.items():
            yield Entry(alert, self.case(alert_id), topic, emitted)

    def query(self, f: Filters, now: float) -> list[Entry]:
        floor = SEVERITIES.index(f.severity) if f.severity in SEVERITIES else 0
        text = (f.text or "").lower()
        out = []
        for e in self.entries():
            status = status_at(e.case, now)
            if f.status == "active" and status in ("resolved", "snoozed"):
                continue
            if f.status not in ("active", "all") and status != f.status:
                continue
            if f.type and e.alert.get("type") != f.type:
                continue
            if SEVERITIES.index(e.alert.get("severity", "info")) < floor:
                continue
            if f.segment and f.segment not in e.segments():
                continue
            if f.owner and (e.case.owner or "unassigned") != f.owner:
                continue
            if text and not any(text in str(v).lower() for v in (e.alert_id, e.customer_id, e.alert.get("reason"))):
                continue
            out.append(e)
        out.sort(key=lambda e: e.emitted, reverse=True)
        return out[: f.limit]

    def facets(self) -> dict[str, list[str]]:
        """The values the filters can take, for the inbox's drop-downs."""
        types, segments, owners = set(), set(), set()
        for e in self.entries():
            types.add(str(e.alert.get("type")))
            segments.update(e.segments())
            if e.case.owner:
                owners.add(e.case.owner)
        return {"type": sorted(types), "severity": list(SEVERITIES), "segment": sorted(segments),
                "owner": ["unassigned", *sorted(owners)],
                "status": ["active", "open", "acknowledged", "snoozed", "resolved", "all"]}

    def counts(self, now: float) -> dict[str, int]:
        out = {s: 0 for s in ("open", "acknowledged", "snoozed", "resolved")}
        for e in self.entries():
            out[status_at(e.case, now)] += 1
        return out


def _epoch(value: Any) -> float | None:
    try:
        return parse_timestamp(str(value)) if value else None
    except ValueError:
        return None
