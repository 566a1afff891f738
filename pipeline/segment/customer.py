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
    elif ev.kind == "order" and e["type"] == "placed":
        _apply_order(s, ev, fx)
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
