"""Numeric and time bounds shared by validation and the stage logic (issue 14).

The public schemas (``schemas/*.schema.json``) carry the same limits; these
constants are the single Python copy, used by :mod:`.validate` for checks a
schema cannot express exactly (time range after the UTC offset is applied) and
by the stage logic as a second line of defence (spend accumulation stays
finite whatever a stored state or an event holds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
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


# -- bounds relative to the wall clock (issue 15) ------------------------------------------------
DEFAULT_MIN_EVENT_YEAR = 2000
DEFAULT_MAX_FUTURE_SECONDS = 86_400.0  # one day
DEFAULT_MAX_PROMISE_DAYS = 366.0


@dataclass(frozen=True)
class TimeLimits:
    """How far producer times may stray: set from ``Settings`` (``PIPELINE_MIN_EVENT_YEAR``,
    ``PIPELINE_MAX_FUTURE_SECONDS``, ``PIPELINE_MAX_PROMISE_DAYS``), applied with the wall clock.

    * an event time (``occurred_at``) before January 1st of ``min_event_year`` (UTC) or more than
      ``max_future_seconds`` ahead of the wall clock is ``out_of_range``;
    * a promise (``promised_*``) before ``min_event_year`` or more than ``max_promise_days`` after
      the event's own ``occurred_at`` is ``out_of_range``;
    * ``signup_at`` may not be ahead of the wall clock by more than ``max_future_seconds`` either;
      its lower bound stays the static 1970 (a customer since the 1990s is no absurd past, and a
      signup date moves no clock).
    """

    min_event_year: int = DEFAULT_MIN_EVENT_YEAR
    max_future_seconds: float = DEFAULT_MAX_FUTURE_SECONDS
    max_promise_days: float = DEFAULT_MAX_PROMISE_DAYS

    def __post_init__(self) -> None:
        if not MIN_YEAR <= self.min_event_year <= MAX_YEAR:
            raise ValueError(f"min_event_year must lie in {MIN_YEAR}..{MAX_YEAR}; got {self.min_event_year}")
        for name in ("max_future_seconds", "max_promise_days"):
            value = getattr(self, name)
            if not is_finite_number(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")

    @cached_property
    def min_time(self) -> float:
        """Epoch seconds of January 1st of ``min_event_year``, 00:00 UTC."""
        return datetime(self.min_event_year, 1, 1, tzinfo=timezone.utc).timestamp()

    @cached_property
    def max_promise_seconds(self) -> float:
        return self.max_promise_days * 86_400.0

    def latest(self, now: float) -> float:
        """The latest event time accepted when the wall clock reads ``now``."""
        return now + self.max_future_seconds
