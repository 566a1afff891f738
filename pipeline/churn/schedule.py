"""Silence as a signal (issue 15): when a customer's churn score must be looked at again
although none of its events arrives.  Pure, no Faust.

Three factors of :mod:`.score` rise with time alone:

* ``recency_vs_cadence`` — from ``start_ratio`` to ``full`` times the usual days between
  orders after the last order;
* ``follow_up`` (silence part) — from one to ``1 + silence_ramp`` cadences after the latest
  resolved complaint, when no order came since;
* ``open_complaints`` — each open complaint weighs more until it is ``age_full_days`` old.

Each is a **ramp** (a start and an end time in event time).  :func:`next_rescore` looks at
:data:`RAMP_POINTS` evenly spaced points of every ramp (so rescoring is never more frequent
than a ramp's length / ``RAMP_POINTS``: an eighth of 1.5 cadences for recency) after the
customer's last evaluation, and returns the first point at which the score (with no new
event) reaches the alert threshold — the only thing a rescoring can change is an alert.
It returns ``None`` (nothing to schedule) when

* the customer is disarmed (it already has its ``churn_risk`` of this episode: a rising
  score cannot alert again; the next event re-evaluates it as before);
* no ramp remains (no orders, no resolved complaint in silence, no open complaint), or
  every remaining ramp is saturated: after its last ramp the score only falls;
* an upper bound of the score at a point — the rising factors at their most, the decaying
  ones as they are at that point (they only decay further) — stays below the threshold:
  no later point can reach it either.  Most customers stop here at the first point.

At most :data:`MAX_POINTS` points are examined per call; when all of them stay below the
threshold but the bound does not rule the rest out, the last one is returned as a
checkpoint (rescored without an alert; the next call starts from there).  So work per
call and the number of rescorings are bounded.

The due time is a function of the stored state only (``alert["last_at"]``, the time of the
last evaluation, is the starting point), and the rescoring is evaluated *at* the due time,
not at the clock that passed it: a replay, a batch boundary or a re-run after a crash
rescore at the same time with the same result and the same alert id.

Not covered: ``satisfaction_gap_trend`` can step up when an old gap decays out of the
window; it has no ramp of its own (the bound accounts for it, a crossing it causes is
found at the next point of another ramp or at the customer's next event).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .alerts import AlertState, ChurnPolicy
from .score import FACTORS, MAX_PRESSURE, RELEVANT, Weights, decay
from .state import DAY, State, cadence_days

RAMP_POINTS = 8  # points examined per ramp: a ramp's rescoring step is its length / RAMP_POINTS
MAX_POINTS = 32  # points examined per call (then a checkpoint)


@dataclass(frozen=True)
class Ramp:
    """A factor whose pressure rises from ``start`` to ``end`` (event time, epoch s) with no new event."""

    factor: str
    start: float
    end: float

    def first(self) -> float:
        """The earliest of :meth:`points`."""
        return _first(self.start, self.end)

    def points(self) -> list[float]:
        """The ramp's :data:`RAMP_POINTS` evenly spaced points after ``start`` (``end`` included)."""
        return _points(self.start, self.end)


def _first(start: float, end: float) -> float:
    return start if end <= start else start + (end - start) / RAMP_POINTS


def _points(start: float, end: float) -> list[float]:
    if end <= start:
        return [start]
    step = (end - start) / RAMP_POINTS
    return [start + step * k for k in range(1, RAMP_POINTS + 1)]


def ramps(state: State | None, weights: Weights) -> list[Ramp]:
    """The rising ramps of ``state`` (see the module docstring); empty for a customer without any."""
    return [Ramp(*span) for span in _spans(state, weights)]


def _spans(state: State | None, weights: Weights) -> list[tuple[str, float, float]]:
    """:func:`ramps` as ``(factor, start, end)``: most searches end before they need a :class:`Ramp`."""
    s = state or {}
    out: list[tuple[str, float, float]] = []
    cadence = cadence_days(s, weights.default_cadence_days, weights.min_cadence_days) * DAY
    last_order = _time(s.get("last_order_at"))
    positive = weights.positive
    fw = positive.get("recency_vs_cadence")
    if fw is not None and s.get("orders") and last_order is not None:
        start, full = fw.get("start_ratio"), fw.get("full")
        out.append(("recency_vs_cadence", last_order + start * cadence, last_order + max(start, full) * cadence))
    fw = positive.get("follow_up")
    resolved = s.get("last_resolved")
    is_mapping = resolved is not None and (type(resolved) is dict or isinstance(resolved, Mapping))  # ABC check last
    if fw is not None and is_mapping and _time(resolved.get("at")) is not None:
        at = float(resolved["at"])
        complaint = (s.get("complaints") or {}).get(resolved.get("complaint_id"))
        still_resolved = complaint is None or complaint.get("status") == "resolved"
        if still_resolved and s.get("orders") and last_order is not None and last_order <= at:
            out.append(("follow_up", at + cadence, at + cadence * (1.0 + fw.get("silence_ramp"))))
    fw = positive.get("open_complaints")
    if fw is not None:
        age_full = fw.get("age_full_days") * DAY
        for c in (s.get("complaints") or {}).values():
            if c.get("status") == "open":
                since = _time(c.get("reopened_at")) or _time(c.get("opened_at"))
                if since is not None:
                    out.append(("open_complaints", since, since + age_full))
    return out


def next_rescore(churn: State | None, alert: AlertState | None, weights: Weights,
                 policy: ChurnPolicy, until: float | None = None) -> float | None:
    """Event time at which the customer must be rescored with no new event, or ``None``.

    ``churn`` is the customer's churn state, ``alert`` its churn-alert state (``last_at`` is
    the time of its last evaluation).  With ``until``, only a time ``<= until`` is returned
    (cheap when nothing can be due yet: "is a rescoring due by now?").  See the module
    docstring for the rules and bounds.
    """
    plan = _plan(churn, alert, weights, policy, until)
    if plan is None:
        return None
    spans, points = plan
    rising = [Ramp(*span) for span in spans]
    assert churn is not None  # a plan needs a state
    examined = sorted(points)[:MAX_POINTS]
    for t in examined:
        if until is not None and t > until:
            return None
        reaches = _reaches(churn, t, weights, rising, policy.threshold)
        if reaches is None:
            return None  # the bound only falls with time: no later point can reach the threshold
        if reaches:
            return t
    return examined[-1] if len(points) > MAX_POINTS else None


def earliest_rescore(churn: State | None, alert: AlertState | None, weights: Weights,
                     policy: ChurnPolicy) -> float | None:
    """A lower bound of :func:`next_rescore` that evaluates no factor: the earliest point it would
    examine, or ``None`` when it certainly returns ``None`` (disarmed, no ramp, no point left).
    Whenever ``next_rescore`` returns a time, this returns one at or before it.  The stage-1 due
    index holds this bound after an event and asks for the exact time only when the clock reaches
    it (most customers send their next event first)."""
    search = _search(churn, alert, weights)
    if search is None:
        return None
    spans, after, last_alert = search
    if last_alert is not None and last_alert + policy.cooldown_days * DAY > after:
        return last_alert + policy.cooldown_days * DAY  # :func:`_plan` adds the cool-down's end, nothing before
    # the minimum of _plan's points without building them all: a ramp's points rise, its first one after
    # ``after`` is its earliest
    earliest = None
    for _, start, end in spans:
        t = _first_after(start, end, after)
        if t is not None and (earliest is None or t < earliest):  # min's comparisons: the first of equals
            earliest = t
    return earliest


def _first_after(start: float, end: float, after: float) -> float | None:
    """The first of :func:`_points` ``(start, end)`` later than ``after`` (``None``: none is), the
    same float, without building the list (this runs on every event: :func:`earliest_rescore`)."""
    if end <= start:
        return start if start > after else None
    step = (end - start) / RAMP_POINTS
    for k in range(1, RAMP_POINTS + 1):
        t = start + step * k
        if t > after:
            return t
    return None


def _search(churn: State | None, alert: AlertState | None,
            weights: Weights) -> tuple[list[tuple[str, float, float]], float, float | None] | None:
    """(ramp spans, the time the search starts after, the last alert's time) of a rescoring search,
    or ``None`` when there is none (no state, disarmed, no time to start from, no ramp)."""
    if not churn:
        return None
    a = alert or {}
    if a.get("armed", True) is False:
        return None
    after = _time(a.get("last_at"))
    if after is None:
        after = _time(churn.get("last_event_at"))
    if after is None:
        return None
    last_alert = _time(a.get("last_alert_at"))
    spans = _spans(churn, weights)
    return (spans, after, last_alert) if spans else None


def _plan(churn: State | None, alert: AlertState | None, weights: Weights, policy: ChurnPolicy,
          until: float | None = None) -> tuple[list[tuple[str, float, float]], set[float]] | None:
    """(rising ramps' spans, the points to examine) of a rescoring search, or ``None`` when there is
    none (with ``until``: also when no point can be due by then, the cheap "anything due yet?" case)."""
    search = _search(churn, alert, weights)
    if search is None:
        return None
    spans, after, last_alert = search
    if until is not None and last_alert is None:
        for _, start, end in spans:
            if not _first(start, end) > until:
                break
        else:
            return None  # the common case of "anything due by this event?": nothing yet, no scoring
    points = {t for _, start, end in spans for t in _points(start, end) if t > after}
    if last_alert is not None and last_alert + policy.cooldown_days * DAY > after:
        not_before = last_alert + policy.cooldown_days * DAY  # no alert before the cool-down ends
        # a crossing during the cool-down (or a score still up after the last ramp) alerts when it ends
        points = {t for t in points if t >= not_before} | {not_before}
    return spans, points


def upper_bound(churn: State, t: float, weights: Weights, rising: list[Ramp] | None = None,
                raws: dict[str, Any] | None = None) -> float:
    """A score no evaluation at or after ``t`` can exceed if no event arrives (0..100).

    Rising factors count at their most from ``t`` on, decaying ones at their value at ``t``,
    ``satisfaction_gap_trend`` at its most over the gaps still counted at ``t``.  ``rising``:
    ``ramps(churn, weights)`` if already known.  ``raws``: filled with the factors evaluated at
    ``t`` on the way (name -> the factor's raw result), for a score at ``t`` to reuse.
    """
    rising = ramps(churn, weights) if rising is None else rising
    raws = {} if raws is None else raws
    total = 0.0
    for name, fw, _ in weights.active:
        p = _pressure_bound(name, churn, t, weights, rising, raws)
        if p > 0:
            total += -math.log1p(-min(MAX_PRESSURE, fw.weight * p))
    return round(100.0 * (1.0 - math.exp(-total)), 2)


def _reaches(churn: State, t: float, weights: Weights, rising: list[Ramp], threshold: float) -> bool | None:
    """At point ``t``: ``None`` when :func:`upper_bound` is below ``threshold`` (no point from ``t``
    on can reach it), else whether ``score(churn, t, weights).score`` reaches it.  The factors the
    bound evaluated at ``t`` are not evaluated again, and the score's explanation (factors,
    evidence, order) is not built: only its total, by the same arithmetic as :func:`score`."""
    raws: dict[str, Any] = {}
    if upper_bound(churn, t, weights, rising, raws) < threshold:
        return None
    logs = []
    for name, fw, measure in weights.active:
        raw = raws[name] if name in raws else measure(churn, t, fw, weights, False)
        if raw is not None and raw.pressure > 0:
            logs.append(-math.log1p(-min(MAX_PRESSURE, fw.weight * raw.pressure)))
    total_log = sum(logs)
    return round(100.0 * (1.0 - math.exp(-total_log)), 2) >= threshold


def _pressure_bound(name: str, s: State, t: float, weights: Weights, rising: list[Ramp],
                    raws: dict[str, Any]) -> float:
    fw = weights.factors[name]
    if name == "recency_vs_cadence":
        return 1.0 if s.get("orders") and s.get("last_order_at") is not None else 0.0
    if name == "open_complaints":
        n = sum(1 for c in (s.get("complaints") or {}).values() if c.get("status") == "open")
        return min(1.0, n / fw.get("full"))
    if name == "follow_up":
        raw = raws[name] = FACTORS[name](s, t, fw, weights, False)
        now = raw.pressure if raw is not None else 0.0
        silence = next((r for r in rising if r.factor == "follow_up"), None)
        if silence is None:
            return now  # no silence part: only negative feedback after the resolution, which decays
        # ramp <= 1 and the decay (from the end of the cadence) only falls
        hl = fw.get("half_life_days")
        return max(now, 0.5 ** (max(0.0, t - silence.start) / (hl * DAY)))
    if name == "satisfaction_gap_trend":
        return gap_trend_bound(s.get("gaps") or [], t, fw)
    raw = raws[name] = FACTORS[name](s, t, fw, weights, False)  # decays with time
    return raw.pressure if raw is not None else 0.0


def gap_trend_bound(gaps: list[Any], t: float, fw: Any) -> float:
    """The highest ``satisfaction_gap_trend`` pressure at ``t`` over every suffix of ``gaps`` (gaps
    leave the window oldest first: every suffix may come).  The same arithmetic, term by term and in
    the same order, as the factor applied to each suffix, in one pass: an item's decay depends on its
    own time only, and the items still counted at ``t`` are the newest ones, so a suffix's items are
    a suffix of the counted ones and its sums are sums of list tails."""
    items = sorted(gaps, key=lambda g: g[0])
    hl = fw.get("half_life_days")
    weights = [decay(t - it[0], hl) for it in items]
    first = next((i for i, d in enumerate(weights) if d >= RELEVANT), len(items))
    if first == len(items):
        return 0.0
    gd = [it[1] * d for it, d in zip(items, weights)]
    level_full, fall_full = fw.get("level_full"), fw.get("fall_full")
    newest_gap = items[-1][1]
    best = 0.0
    for j in range(first, len(items)):
        mean = sum(gd[j:]) / sum(weights[j:])
        level = max(0.0, -mean) / level_full
        drop = 0.0
        if len(items) - j >= 2:
            drop = max(0.0, sum(gd[j:-1]) / sum(weights[j:-1]) - newest_gap)
        pressure = min(1.0, max(level, drop / fall_full))
        best = max(best, pressure if pressure > 0 else 0.0)
    return best


def _time(value: Any) -> float | None:
    if type(value) is float:  # how times are stored: the common case first
        return value if math.isfinite(value) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


__all__ = ["MAX_POINTS", "RAMP_POINTS", "Ramp", "earliest_rescore", "next_rescore", "ramps", "upper_bound"]
