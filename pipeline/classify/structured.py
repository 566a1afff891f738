"""Pain points from structured event fields (no text needed).

* order delivered later than promised (or overdue and not delivered) -> ``delivery``
* order return / refund events                                      -> ``refund_return``
* complaint reopened                                                -> ``customer_service``

Field names are read leniently so the same helper serves our event schema and
raw exports (Olist ``order_delivered_customer_date`` / ``order_estimated_delivery_date``).
Evidence items carry ``start``/``end`` = None (they point at fields, not text)
and a ``source`` naming the field.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Mapping

from .model import PainPoint
from .taxonomy import Taxonomy

DELIVERY = "delivery"
REFUND_RETURN = "refund_return"
CUSTOMER_SERVICE = "customer_service"

_STATUS_KEYS = ("event_type", "status", "type", "event", "order_status", "action")
_DELIVERED_KEYS = ("delivered_at", "order_delivered_customer_date", "delivery_date", "actual_delivery_at")
_PROMISED_KEYS = (
    "promised_delivery_at",
    "estimated_delivery_at",
    "order_estimated_delivery_date",
    "promised_at",
    "expected_delivery_at",
)
_RETURN_STATES = {
    "return", "returned", "return_requested", "return_request", "return_started",
    "refund", "refunded", "refund_requested", "refund_request", "refund_issued",
    "refund_failed", "refund_rejected", "return_rejected", "chargeback",
}
_REOPEN_STATES = {"reopened", "reopen", "re_opened", "re-opened"}
_DATE_FORMATS = ("%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d")


def parse_time(value: Any) -> datetime | None:
    """datetime | ISO-8601 | epoch seconds/ms | 'M/D/YYYY H:MM' -> aware datetime (naive = UTC)."""
    if value is None or value == "":
        return None
    dt: datetime | None = None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            return None
        secs = value / 1000.0 if value > 1e11 else float(value)
        dt = datetime.fromtimestamp(secs, tz=timezone.utc)
    elif isinstance(value, str):
        s = value.strip()
        try:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            for fmt in _DATE_FORMATS:
                try:
                    dt = datetime.strptime(s, fmt)
                    break
                except ValueError:
                    continue
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def _first(mapping: Mapping[str, Any] | None, keys: tuple[str, ...]) -> tuple[str | None, Any]:
    if not mapping:
        return None, None
    for k in keys:
        v = mapping.get(k)
        if v not in (None, ""):
            return k, v
    return None, None


def _state(event: Mapping[str, Any]) -> str:
    _, v = _first(event, _STATUS_KEYS)
    return str(v).strip().lower().replace(" ", "_") if v is not None else ""


def _late_confidence(days_late: float) -> float:
    # a few hours late is a weak signal; three days or more is near certain
    return round(min(0.95, 0.55 + 0.15 * days_late), 4) if days_late > 0 else 0.0


def _ev(text: str, source: str) -> dict[str, Any]:
    return {"text": text, "start": None, "end": None, "source": source}


def structured_pain_points(
    kind: str,
    event: Mapping[str, Any],
    context: Mapping[str, Any] | None = None,
    *,
    taxonomy: Taxonomy | None = None,
) -> list[PainPoint]:
    """Pain points implied by an event's structured fields.

    ``kind`` is the event kind ("order", "complaint", "feedback", ...).
    ``context`` may carry ``promised_delivery_at`` (the order's commitment, if
    the event itself lacks it) and ``now`` (to flag an overdue undelivered order).
    With a ``taxonomy``, ids it does not define are dropped.
    """
    context = context or {}
    out: list[PainPoint] = []
    state = _state(event)
    if kind == "order":
        dkey, delivered_raw = _first(event, _DELIVERED_KEYS)
        pkey, promised_raw = _first(event, _PROMISED_KEYS)
        psrc = f"order.{pkey}"
        if promised_raw is None:
            pkey, promised_raw = _first(context, _PROMISED_KEYS)
            psrc = f"context.{pkey}"
        promised = parse_time(promised_raw)
        delivered = parse_time(delivered_raw)
        if promised is not None and delivered is not None and delivered > promised:
            days = (delivered - promised).total_seconds() / 86400.0
            out.append(PainPoint(DELIVERY, _late_confidence(days), [
                _ev(f"delivered {days:.1f} days after the promised date", f"order.{dkey}"),
                _ev(f"promised {promised.isoformat()}", psrc),
            ]))
        elif promised is not None and delivered is None and state not in ("canceled", "cancelled"):
            now = parse_time(context.get("now"))
            if now is not None and now > promised:
                days = (now - promised).total_seconds() / 86400.0
                out.append(PainPoint(DELIVERY, _late_confidence(days), [
                    _ev(f"not delivered {days:.1f} days after the promised date", "context.now"),
                    _ev(f"promised {promised.isoformat()}", psrc),
                ]))
        if state in _RETURN_STATES:
            conf = 0.8 if ("fail" in state or "reject" in state or state == "chargeback") else 0.6
            out.append(PainPoint(REFUND_RETURN, conf, [_ev(f"order event {state}", "order.status")]))
    elif kind == "complaint":
        reopened = state in _REOPEN_STATES or bool(event.get("reopened"))
        try:
            reopen_count = int(event.get("reopen_count") or 0)
        except (TypeError, ValueError):
            reopen_count = 0
        if reopened or reopen_count > 0:
            conf = min(0.95, 0.7 + 0.1 * max(0, reopen_count - 1))
            detail = f"complaint reopened ({reopen_count}x)" if reopen_count else "complaint reopened"
            out.append(PainPoint(CUSTOMER_SERVICE, conf, [_ev(detail, "complaint.status")]))
    if taxonomy is not None:
        out = [p for p in out if taxonomy.has_category(p.id)]
    return out
