"""Segment derivation (pure).

value tier
    The profile's ``tier`` when given (``tier_source="profile"``); otherwise the customer's tier by
    rank of decayed spend among the customers of its partition (``tier_source="rank"``, set at each
    of its events: :mod:`pipeline.segment.tiers`); while the partition has too few customers for
    ranks, from cumulative spend in the reference currency: ``key`` at or above ``key_spend``,
    ``regular`` at or above ``regular_spend``, else ``general`` (``tier_source="spend"``);
    ``unknown`` with no profile tier and no order.
lifecycle (at event time ``now``)
    ``unknown`` — no order and no signup date;
    ``new`` — first order (or signup) less than ``new_customer_days`` ago and at most one order;
    otherwise, with ``cadence`` = the customer's mean days between orders
    (``default_cadence_days`` below two orders) and ``d`` = days since last order:
    ``active`` if d <= at_risk_factor * cadence, ``at_risk`` if d <= lapsed_factor * cadence,
    else ``lapsed``; an ``active`` customer is ``won_back`` while its last order ended a gap longer
    than at_risk_factor times its cadence before that order (it had become at risk or lapsed, and
    ordered again), until its next order.
region / relationship_level / channel
    From the profile, else from the latest event carrying one, else ``unknown``.
"""

from __future__ import annotations

from typing import Any

from ..config import SegmentThresholds
from ..core.timeparse import parse_timestamp
from .customer import DAY, repair

UNKNOWN = "unknown"


def value_tier(spend: float, orders: int, t: SegmentThresholds) -> str:
    if orders <= 0:
        return UNKNOWN
    if spend >= t.key_spend:
        return "key"
    if spend >= t.regular_spend:
        return "regular"
    return "general"


def lifecycle(state: dict[str, Any], now: float, t: SegmentThresholds) -> tuple[str, float | None, float | None]:
    """Return ``(stage, cadence_days, days_since_last_order)``."""
    profile = state.get("profile") or {}
    signup = _signup(profile.get("signup_at"))
    orders = state.get("orders", 0)
    last = state.get("last_order_at")
    if orders == 0 or last is None:
        if signup is None:
            return UNKNOWN, None, None
        return ("new" if (now - signup) / DAY < t.new_customer_days else "lapsed"), None, None
    first = state.get("first_order_at")
    first = last if first is None else first
    since = max(0.0, (now - last) / DAY)
    cadence = state.get("gap_mean_days") if orders >= 2 else None
    effective = cadence if cadence and cadence > 0 else t.default_cadence_days
    if orders <= 1 and (now - first) / DAY < t.new_customer_days:
        return "new", cadence, round(since, 3)
    if since <= t.at_risk_factor * effective:
        stage = "won_back" if _won_back(state, t) else "active"
    elif since <= t.lapsed_factor * effective:
        stage = "at_risk"
    else:
        stage = "lapsed"
    return stage, cadence, round(since, 3)


def _won_back(state: dict[str, Any], t: SegmentThresholds) -> bool:
    gap = state.get("last_gap_days")
    if gap is None:
        return False
    before = state.get("cadence_before_last")
    return gap > t.at_risk_factor * (before if before and before > 0 else t.default_cadence_days)


def _signup(value: Any) -> float | None:
    """A stored profile's ``signup_at`` as epoch seconds; ``None`` when absent or unparseable."""
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value)
    except (ValueError, OverflowError, OSError):
        return None


def derive_segment(state: dict[str, Any] | None, now: float, t: SegmentThresholds,
                   repaired: bool = False) -> dict[str, Any]:
    """``repaired``: ``state`` comes from :func:`~pipeline.segment.customer.apply_event` (already
    repaired), so it is not repaired again."""
    if not repaired:
        state = repair(state)  # a stored state of an older version may hold null / non-finite numbers
    profile = state.get("profile")
    p = profile if isinstance(profile, dict) else {}
    orders = state["orders"]
    spend = state["spend"]
    if p.get("tier"):
        tier, source = p["tier"], "profile"
    elif orders > 0 and state.get("rank_tier"):
        tier, source = state["rank_tier"], "rank"
    else:
        tier = value_tier(spend, orders, t)
        source = "none" if tier == UNKNOWN else "spend"
    stage, cadence, since = lifecycle(state, now, t)
    return {
        "value_tier": tier,
        "tier_source": source,
        "lifecycle": stage,
        "region": p.get("region") or state.get("last_region") or UNKNOWN,
        "relationship_level": p.get("relationship_level") or UNKNOWN,
        "channel": p.get("preferred_channel") or state.get("last_channel") or UNKNOWN,
        "profile_known": profile is not None,
        "orders_count": orders,
        "spend": round(spend, 2),
        "cadence_days": None if cadence is None else round(cadence, 3),
        "days_since_last_order": since,
    }
