"""Numeric and time bounds shared by validation and the stage logic (issue 14).

The public schemas (``schemas/*.schema.json``) carry the same limits; these
constants are the single Python copy, used by :mod:`.validate` for checks a
schema cannot express exactly (time range after the UTC offset is applied) and
by the stage logic as a second line of defence (spend accumulation stays
finite whatever a stored state or an event holds).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

MAX_AMOUNT = 1e12  # order amount / unit price, in any currency unit
MAX_QTY = 1_000_000  # items of one order line
MAX_SCORE = 1e6  # |score|, |expectation_score|, |scale min/max| of feedback
MAX_SPEND = 1e15  # cumulative spend (reference currency) a state may hold

MIN_YEAR, MAX_YEAR = 1970, 2100
MIN_TIME = 0.0  # 1970-01-01T00:00:00Z
MAX_TIME = datetime(MAX_YEAR + 1, 1, 1, tzinfo=timezone.utc).timestamp()  # exclusive: 2101-01-01T00:00:00Z


def is_finite_number(value: Any) -> bool:
    """An int or float (not a bool) that is neither NaN nor ±infinity."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value)


def finite(value: Any, default: float = 0.0, lo: float = -math.inf, hi: float = math.inf) -> float:
    """``value`` as a float clamped to ``[lo, hi]``; ``default`` when it is not a finite number.

    For numbers read back from stored state, which an older version may have
    written as ``null`` (orjson writes ±inf and NaN as ``null``) or as ±inf.
    """
    if not is_finite_number(value):
        return default
    return float(min(hi, max(lo, value)))


def time_in_range(epoch: float) -> bool:
    """Whether ``epoch`` (UTC seconds) lies in years 1970..2100."""
    return is_finite_number(epoch) and MIN_TIME <= epoch < MAX_TIME
