"""Per-customer behaviour state (plain dicts, JSON-serialisable for the table).

The state is updated by :func:`apply_event` (pure: returns a new dict) and read
by :func:`pipeline.segment.segments.derive_segment`.  Replays are idempotent:
the ids of the last ``RECENT_IDS`` applied events are kept and a repeated id
changes nothing, so an at-least-once redelivery never double-counts spend.
"""

from __future__ import annotations

from typing import Any

from ..ingest.normalise import Event

RECENT_IDS = 64
OPEN_PROMISES = 32  # promised delivery times remembered per customer (newest kept)
DAY = 86400.0

# Profile fields copied into the state (anything else in a profile is ignored).
PROFILE_FIELDS = ("tier", "region", "relationship_level", "preferred_channel", "signup_at")


def new_state() -> dict[str, Any]:
    return {
        "profile": None,
        "orders": 0,
        "spend": 0.0,
        "first_order_at": None,
        "last_order_at": None,
        "gap_mean_days": None,
        "last_region": None,
        "last_channel": None,
        "recent_ids": [],
        "promises": {},
    }


def apply_event(state: dict[str, Any] | None, ev: Event, fx: dict[str, float]) -> tuple[dict[str, Any], bool]:
    """Return ``(new_state, changed)``; ``changed`` is False for an already-applied event id."""
    s = dict(state) if state else new_state()
    if ev.event_id in s["recent_ids"]:
        return s, False
    s["recent_ids"] = (s["recent_ids"] + [ev.event_id])[-RECENT_IDS:]
    e = ev.event
    if ev.kind == "customer_profile":
        s["profile"] = {f: e[f] for f in PROFILE_FIELDS if e.get(f) is not None}
    elif ev.kind == "order":
        if e["type"] == "placed":
            _apply_order(s, ev, fx)
        _track_promise(s, ev)
    if e.get("channel"):
        s["last_channel"] = e["channel"]
    if e.get("region"):
        s["last_region"] = e["region"]
    return s, True


def _apply_order(s: dict[str, Any], ev: Event, fx: dict[str, float]) -> None:
    e = ev.event
    rate = fx.get(e.get("currency", ""), 1.0)
    s["spend"] = round(s["spend"] + float(e.get("amount", 0.0)) * rate, 4)
    t = ev.occurred_at
    last = s["last_order_at"]
    if last is not None and t > last:
        gap = (t - last) / DAY
        n_gaps = s["orders"] - 1  # gaps already averaged
        mean = s["gap_mean_days"]
        s["gap_mean_days"] = gap if mean is None or n_gaps < 1 else (mean * n_gaps + gap) / (n_gaps + 1)
    s["orders"] += 1
    s["first_order_at"] = t if s["first_order_at"] is None else min(s["first_order_at"], t)
    s["last_order_at"] = t if last is None else max(last, t)


def _track_promise(s: dict[str, Any], ev: Event) -> None:
    """Remember each order's promised delivery time until it is delivered or cancelled."""
    promises = dict(s.get("promises") or {})
    order_id, kind = ev.event["order_id"], ev.event["type"]
    if "promised_delivery_at" in ev.times:
        promises[order_id] = ev.times["promised_delivery_at"]
        if len(promises) > OPEN_PROMISES:
            for old in sorted(promises, key=promises.get)[: len(promises) - OPEN_PROMISES]:
                del promises[old]
    elif kind in ("delivered", "cancelled"):
        promises.pop(order_id, None)
    s["promises"] = promises


def promised_delivery(state: dict[str, Any] | None, order_id: str) -> float | None:
    """The open promised delivery time of ``order_id`` (before this event was applied)."""
    return ((state or {}).get("promises") or {}).get(order_id)
