"""Per-customer behaviour state (plain dicts, JSON-serialisable for the table).

The state is updated by :func:`apply_event` (pure: returns a new dict) and read
by :func:`pipeline.segment.segments.derive_segment`.  Replays are idempotent:
the ids of the last ``RECENT_IDS`` applied events are kept and a repeated id
changes nothing, so an at-least-once redelivery never double-counts spend.

Numbers stay finite whatever arrives (issue 14): an order adds at most
:data:`~pipeline.core.bounds.MAX_AMOUNT` (after FX) and ``spend`` never
exceeds :data:`~pipeline.core.bounds.MAX_SPEND`.  A stored state is repaired
by :func:`repair` before use: an older version could store an infinite spend,
which the table's JSON serialiser wrote as ``null``; such a value counts as 0
instead of failing every later event of the customer.
"""

from __future__ import annotations

import math
from typing import Any

from ..core.bounds import MAX_AMOUNT, MAX_SPEND, finite, is_finite_number
from ..ingest.normalise import Event
from .tiers import decay_weight

MAX_DECAYED = 1e300  # forward-decayed spend stays finite (weights are capped at 2 ** 1000 in tiers.py)

RECENT_IDS = 64
OPEN_PROMISES = 32  # promised delivery times remembered per customer (newest kept)
ORDER_CONTEXT = 8  # orders whose seller / categories / carrier / region are remembered (newest kept)
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
        "dspend": None,  # forward-decayed spend (pipeline.segment.tiers); None in a state of an older version
        "rank_tier": None,  # value tier by rank, set by pipeline.segment.tiers.assign_tier
        "last_gap_days": None,  # days between the last two orders
        "cadence_before_last": None,  # gap_mean_days before the last order (won_back: segments.lifecycle)
        "orders_ctx": {},  # order id -> root-cause fields, for feedback and complaints naming it
    }


STATE_KEYS = tuple(new_state())


def _time_or_none(value: Any) -> float | None:
    return float(value) if is_finite_number(value) else None


def repair(state: dict[str, Any] | None) -> dict[str, Any]:
    """A shallow copy of ``state`` whose numbers are usable: missing keys get their defaults,
    a non-finite or non-numeric ``spend`` becomes 0 (clamped to ``0..MAX_SPEND``), non-finite times
    and cadence become ``None``; never raises on a state written by an older version.

    This runs on every event, so a value that is already right (``None`` or a plain float in range,
    as this version writes them) is left as it is without the general checks."""
    if not isinstance(state, dict):
        return new_state()
    # a state this version wrote has every key, in new_state's order: a plain copy keeps that order
    s = dict(state) if tuple(state) == STATE_KEYS else {**new_state(), **state}
    spend = s["spend"]
    if not (type(spend) is float and 0.0 < spend < MAX_SPEND):
        # a customer without orders has 0.0 (or -0.0, which finite() makes 0.0 as well)
        s["spend"] = 0.0 if type(spend) is float and spend == 0.0 else finite(spend, 0.0, 0.0, MAX_SPEND)
    orders = s["orders"]
    if not isinstance(orders, int) or orders < 0:
        s["orders"] = int(finite(orders, 0.0, 0.0))
    for name in ("first_order_at", "last_order_at"):
        value = s[name]
        if value is not None and not (type(value) is float and math.isfinite(value)):
            s[name] = _time_or_none(value)
    if s["first_order_at"] is None:
        s["first_order_at"] = s["last_order_at"]
    if s["last_order_at"] is None:
        s["last_order_at"] = s["first_order_at"]
    for name in ("gap_mean_days", "last_gap_days", "cadence_before_last", "dspend"):
        value = s[name]
        if value is not None and not (type(value) is float and value >= 0 and math.isfinite(value)):
            s[name] = float(value) if is_finite_number(value) and value >= 0 else None
    if s["rank_tier"] not in ("key", "regular", "general"):
        s["rank_tier"] = None
    if not isinstance(s["orders_ctx"], dict):
        s["orders_ctx"] = {}
    if not isinstance(s["recent_ids"], list):
        s["recent_ids"] = []
    s["promises"] = _repair_promises(s["promises"])
    return s


def _repair_promises(promises: Any) -> dict[str, float]:
    """``promises`` without non-numeric or non-finite times (numbers as floats); ``{}`` if not a dict.

    Usually every time is already a finite float and the dict is returned as it is (callers replace
    it, never change it)."""
    if not isinstance(promises, dict):
        return {}
    if type(promises) is dict:
        for value in promises.values():
            if type(value) is not float or not math.isfinite(value):
                break
        else:
            return promises
    return {k: float(v) for k, v in promises.items() if is_finite_number(v)}


def apply_event(state: dict[str, Any] | None, ev: Event, fx: dict[str, float],
                half_life_days: float = 0.0) -> tuple[dict[str, Any], bool]:
    """Return ``(new_state, changed)``; ``changed`` is False for an already-applied event id.
    ``half_life_days``: the decay of ``dspend`` (:mod:`pipeline.segment.tiers`)."""
    s = repair(state)
    recent = s["recent_ids"]
    if ev.event_id in recent:
        return s, False
    recent = recent[-(RECENT_IDS - 1):]  # the newest RECENT_IDS with this one, one copy
    recent.append(ev.event_id)
    s["recent_ids"] = recent
    e, kind = ev.event, ev.kind
    if kind == "customer_profile":
        s["profile"] = {f: e[f] for f in PROFILE_FIELDS if e.get(f) is not None}
    elif kind == "order":
        if e["type"] == "placed":
            _apply_order(s, ev, fx, half_life_days)
        _track_promise(s, ev)
        _track_order_context(s, ev)
    channel, region = e.get("channel"), e.get("region")
    if channel:
        s["last_channel"] = channel
    if region:
        s["last_region"] = region
    return s, True


def _apply_order(s: dict[str, Any], ev: Event, fx: dict[str, float], half_life_days: float) -> None:
    e = ev.event
    rate = finite(fx.get(e.get("currency", ""), 1.0), 1.0, 0.0)
    amount = min(MAX_AMOUNT, finite(e.get("amount", 0.0), 0.0, 0.0, MAX_AMOUNT) * rate)
    t = ev.occurred_at
    last = s["last_order_at"]
    if s["dspend"] is None:  # a state of an older version: its spend as if spent at its last order
        s["dspend"] = s["spend"] * decay_weight(t if last is None else last, half_life_days)
    s["dspend"] = min(MAX_DECAYED, s["dspend"] + amount * decay_weight(t, half_life_days))
    s["spend"] = round(min(MAX_SPEND, s["spend"] + amount), 4)
    if last is not None and t > last:
        gap = (t - last) / DAY
        n_gaps = s["orders"] - 1  # gaps already averaged
        mean = s["gap_mean_days"]
        s["cadence_before_last"] = mean if n_gaps >= 1 else None
        s["last_gap_days"] = round(gap, 4)
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


ORDER_CONTEXT_FIELDS = ("seller_id", "carrier", "region")


def _track_order_context(s: dict[str, Any], ev: Event) -> None:
    """Remember an order's seller, categories, carrier and region (each order event may add some)."""
    e = ev.event
    order_id, at = e["order_id"], ev.occurred_at
    orders = dict(s.get("orders_ctx") or {})
    entry = dict(orders.get(order_id) or {})
    for name in ORDER_CONTEXT_FIELDS:
        value = e.get(name)
        if isinstance(value, str) and value.strip():
            entry[name] = value
    items = e.get("items")
    if items:
        categories = sorted({i["category"] for i in items if isinstance(i, dict)
                             and isinstance(i.get("category"), str) and i["category"].strip()})
        if categories:
            entry["categories"] = categories
    entry["at"] = max(float(entry.get("at") or at), at)
    orders[order_id] = entry
    if len(orders) > ORDER_CONTEXT:
        for old in sorted(orders, key=lambda k: orders[k]["at"])[: len(orders) - ORDER_CONTEXT]:
            del orders[old]
    s["orders_ctx"] = orders


def order_context(state: dict[str, Any] | None, order_id: Any) -> dict[str, Any] | None:
    """The remembered root-cause fields of ``order_id`` (``None``: not remembered), for the enriched
    event of a feedback or complaint that names the order."""
    orders = (state or {}).get("orders_ctx")
    entry = orders.get(order_id) if isinstance(orders, dict) and isinstance(order_id, str) else None
    if not isinstance(entry, dict):
        return None
    out: dict[str, Any] = {"order_id": order_id}
    out.update({k: entry[k] for k in (*ORDER_CONTEXT_FIELDS, "categories") if entry.get(k)})
    return out


def promised_delivery(state: dict[str, Any] | None, order_id: str) -> float | None:
    """The open promised delivery time of ``order_id`` (before this event was applied)."""
    promises = (state or {}).get("promises")
    value = promises.get(order_id) if isinstance(promises, dict) else None
    return float(value) if is_finite_number(value) else None
