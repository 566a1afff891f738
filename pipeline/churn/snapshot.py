"""The churn-risk snapshot carried by enriched events (their ``risk`` field)."""

from __future__ import annotations

from typing import Any

from .score import RiskScore

MEDIUM_AT = 45.0  # default lower alert threshold
HIGH_AT = 60.0  # default alert threshold


def risk_level(score: float, medium_at: float = MEDIUM_AT, high_at: float = HIGH_AT) -> str:
    """``low`` below ``medium_at``, ``high`` at or above ``high_at``, else ``medium``."""
    return "high" if score >= high_at else "medium" if score >= medium_at else "low"


def risk_snapshot(
    score: RiskScore, n: int = 3, medium_at: float = MEDIUM_AT, high_at: float = HIGH_AT
) -> dict[str, Any]:
    """``{score, level, top_factors: [{name, value, contribution}]}`` for the enriched event.

    Pass the policy's ``lower_threshold`` / ``threshold`` as ``medium_at`` / ``high_at``
    so the level matches the alerting thresholds when they are tuned.
    """
    value = score.score
    factors = score.top_factors(n)
    return {
        "score": value,
        "level": risk_level(value, medium_at, high_at),
        # a customer without risk factors (most events): the empty list without running a comprehension
        "top_factors": [f.brief() for f in factors] if factors else [],
    }
