"""Per-customer churn state: a bounded, JSON-serialisable dict (one Faust table row).

Two pure update functions, both returning a **new** dict (the input is never mutated):

:func:`apply_event`
    folds one normalised :class:`~pipeline.ingest.normalise.Event` (plus its
    classification and the customer's segment) into the state.  Idempotent per
    ``event_id``: the ids of the last :data:`RECENT_IDS` applied events are kept
    and a repeated id changes nothing, so at-least-once redelivery and replays
    are safe (negative feedback, gaps and pain-point mentions are also
    de-duplicated by event id within their own bounded lists).
:func:`apply_commitment_transition`
    folds one transition of the commitment tracker (``breached``,
    ``fulfilled_late``, ...) into the state.  Idempotent per ``commitment_id``:
    one broken commitment is counted once however many transitions report it.

Numbers stay finite (issue 14): ``spend`` is clamped to
``0..MAX_SPEND``, and a stored state is repaired on load (:func:`repair`) — an
older version could store an infinite spend, which the table's JSON serialiser
wrote as ``null``; it counts as 0 instead of failing every later event.

All times are **event time** (UTC epoch seconds), never wall-clock, so a replay
rebuilds exactly the same state.  Every list/map is bounded (newest kept), so a
row never grows without limit.

What is recorded
----------------
* ``order`` ``placed`` → ``orders`` count, ``spend`` (the segment's ``spend``
  when it has one — reference currency after FX — else the running sum of raw
  ``amount``), ``first_order_at``, ``last_order_at`` (+ its ``last_order_event``
  id) and ``gap_mean_days`` (mean days between consecutive orders).  Other order
  types do not change the counters; late deliveries reach this state as
  commitment transitions, not as order events.
* ``complaint`` → ``complaints[complaint_id]`` = ``{status: "open"|"resolved",
  opened_at, reopened, reopened_at, resolved_at, event_ids}``.  ``opened`` and
  ``updated`` of an unknown complaint open it; ``reopened`` sets it open again
  and increments ``reopened``; ``resolved`` closes it and sets
  ``last_resolved = {at, complaint_id, event_id}`` (for the follow-up rule).
* ``feedback`` → a **negative** entry ``[t, event_id, magnitude]`` when the
  classification's sentiment label is ``negative`` (magnitude = −sentiment
  score, at least :data:`MIN_MAGNITUDE`); without a classification the numeric
  score on its scale is used (normalised to −1..1, negative at ≤ −0.2).  Its
  ``satisfaction_gap`` (when not null) goes to ``gaps`` as ``[t, gap, event_id]``.
* pain points of **customer-voiced** events (complaints and feedback) →
  ``pain_points[id] = {last, count, seen: [[t, event_id], ...]}``.  Pain points
  the classifier derives from order fields (late delivery) are not counted here:
  those arrive as broken commitments and would otherwise count twice.
* commitment transitions ``breached`` / ``fulfilled_late`` →
  ``breaches[commitment_id(#generation)] = {at, last, kind, type, evidence}`` (``at`` / ``last``
  = earliest / latest reported time, ``type`` = the latest one's).  Other types
  (``fulfilled``, ``at_risk``, ``cancelled``...) are ignored.
* ``segment`` — the latest segment passed in (copied as is);
  ``last_event_at`` — the latest event time seen.
"""

from __future__ import annotations

import math
from typing import Any

from ..core.bounds import MAX_AMOUNT, MAX_SPEND, finite, is_finite_number
from ..ingest.normalise import Event

State = dict[str, Any]

VERSION = 1
DAY = 86400.0
RECENT_IDS = 128  # applied event ids remembered for idempotency
MAX_COMPLAINTS = 32  # complaints remembered (resolved ones evicted first, oldest first)
MAX_NEGATIVE = 32  # negative feedback entries (newest kept)
MAX_GAPS = 32  # satisfaction-gap entries (newest kept)
MAX_BREACHES = 32  # broken commitments (newest kept)
MAX_PAIN_POINTS = 32  # distinct pain-point ids (least recently seen evicted)
MAX_PAIN_SEEN = 8  # observations kept per pain-point id
MAX_EVIDENCE = 10  # event ids kept per complaint / commitment
MIN_MAGNITUDE = 0.25  # floor of a negative feedback's magnitude
NEGATIVE_AT = -0.2  # normalised score at or below which unclassified feedback is negative
BROKEN_TYPES = frozenset({"breached", "fulfilled_late"})
VOICED_KINDS = frozenset({"complaint", "feedback"})


def new_state() -> State:
    """An empty churn state."""
    return {
        "v": VERSION,
        "orders": 0,
        "spend": 0.0,
        "first_order_at": None,
        "last_order_at": None,
        "last_order_event": None,
        "gap_mean_days": None,
        "complaints": {},
        "last_resolved": None,
        "negative": [],
        "gaps": [],
        "breaches": {},
        "pain_points": {},
        "segment": None,
        "last_event_at": None,
        "recent_ids": [],
    }


# (key, the container type its value must have, or None): what :func:`repair` checks, without
# building a new state for every call
_SHAPE: tuple[tuple[str, type | None], ...] = tuple(
    (key, type(value) if isinstance(value, (list, dict)) else None) for key, value in new_state().items())
_KEYS = frozenset(key for key, _ in _SHAPE)
_CONTAINERS = tuple((key, kind) for key, kind in _SHAPE if kind is not None)


def apply_event(
    state: State | None, ev: Event, classification: dict[str, Any] | None, segment: dict[str, Any] | None
) -> State:
    """Return the state after ``ev``; an already-applied ``ev.event_id`` returns an unchanged copy.

    ``classification`` is the enriched event's ``classification`` object (or
    ``None``); ``segment`` is the customer's segment at this event (or ``None``).
    """
    s = repair(dict(state)) if state else new_state()  # copy on write: nested values are replaced, never changed
    if ev.event_id in s["recent_ids"]:
        return s
    s["recent_ids"] = s["recent_ids"][-(RECENT_IDS - 1):] + [ev.event_id]  # the newest RECENT_IDS, one copy
    t = ev.occurred_at
    s["last_event_at"] = t if s["last_event_at"] is None else max(s["last_event_at"], t)
    if segment is not None:
        s["segment"] = dict(segment)
    e = ev.event
    if ev.kind == "order" and e.get("type") == "placed":
        _apply_order(s, ev, segment)
    elif ev.kind == "complaint":
        _apply_complaint(s, ev)
    elif ev.kind == "feedback":
        _apply_feedback(s, ev, classification)
    if ev.kind in VOICED_KINDS and classification:
        _apply_pain_points(s, ev, classification)
    return s


def apply_commitment_transition(state: State | None, transition: dict[str, Any]) -> State:
    """Return the state after one commitment-tracker transition.

    ``transition`` = ``{type, kind, commitment_id, at (epoch s), evidence: [event ids]}``;
    the tracker's own ``Transition.to_dict()`` works as is (evidence is then taken
    from ``commitment.evidence`` plus ``event_id``; ``generation`` > 0 — a new
    promise after a reschedule — counts as a separate commitment).

    ``breached`` and ``fulfilled_late`` record the commitment as broken, once per
    commitment (and generation): ``at`` keeps the earliest reported time, ``last``
    the latest (decay counts from ``last``: a delivery fulfilled late weeks after
    its due date is fresh trouble at delivery), evidence ids are merged.  A
    transition with ``detail.breach_retracted`` (the fulfilling event proved the
    breach wrong) removes the record.  Any other type changes nothing: ``state`` is returned as
    it is (never changed in place; a new state when it is ``None``).
    """
    retracted = (transition.get("detail") or {}).get("breach_retracted")
    if not changes_churn(transition.get("type"), transition.get("detail")):
        return state if state else new_state()
    s = repair(dict(state)) if state else new_state()
    key = str(transition["commitment_id"])
    generation = transition.get("generation")
    if isinstance(generation, int) and generation > 0:
        key = f"{key}#{generation}"
    breaches: dict[str, Any] = dict(s["breaches"])
    s["breaches"] = breaches
    if retracted:
        breaches.pop(key, None)
        return s
    at = float(transition["at"])
    evidence = transition.get("evidence")
    if evidence is None:
        evidence = list((transition.get("commitment") or {}).get("evidence") or [])
        if transition.get("event_id"):
            evidence.append(transition["event_id"])
    evidence = [str(x) for x in evidence if x]
    cur = breaches.get(key)
    if cur is not None:
        cur = breaches[key] = dict(cur)
    if cur is None:
        breaches[key] = {
            "at": at,
            "last": at,
            "kind": str(transition.get("kind") or "commitment"),
            "type": transition["type"],
            "evidence": _unique(evidence)[-MAX_EVIDENCE:],
        }
    else:
        cur["at"] = min(cur["at"], at)
        if at >= cur["last"]:
            cur["last"], cur["type"] = at, transition["type"]
        cur["evidence"] = _unique(cur["evidence"] + evidence)[-MAX_EVIDENCE:]
    if len(breaches) > MAX_BREACHES:
        for old in sorted(breaches, key=lambda k: breaches[k]["last"])[: len(breaches) - MAX_BREACHES]:
            del breaches[old]
    return s


def changes_churn(transition_type: Any, detail: dict[str, Any] | None) -> bool:
    """Whether a commitment transition of this type and ``detail`` changes a churn state in
    :func:`apply_commitment_transition` (a broken commitment or a retracted breach)."""
    return bool((detail or {}).get("breach_retracted")) or transition_type in BROKEN_TYPES


def repair(state: State) -> State:
    """``state`` (a fresh copy, changed in place) with usable top-level numbers: missing keys get
    their defaults, a non-finite / non-numeric ``spend`` becomes 0 (clamped to ``0..MAX_SPEND``),
    non-finite times and cadence become ``None``; never raises on a state of an older version."""
    if not isinstance(state, dict):
        return new_state()
    # runs on every event: the checks below pass a state of this version without a change, and
    # take the general path for anything else
    if _KEYS <= state.keys():
        for key, kind in _CONTAINERS:
            if not isinstance(state[key], kind):
                state[key] = new_state()[key]
    else:
        _add_missing(state)
    spend = state["spend"]
    if not (type(spend) is float and 0.0 < spend < MAX_SPEND):
        state["spend"] = finite(spend, 0.0, 0.0, MAX_SPEND)
    orders = state["orders"]
    if isinstance(orders, bool) or not isinstance(orders, int) or orders < 0:
        state["orders"] = int(finite(orders, 0.0, 0.0))
    for name in ("first_order_at", "last_order_at", "last_event_at"):
        value = state[name]
        if value is not None and not _finite_float(value) and not is_finite_number(value):
            state[name] = None
    gap = state["gap_mean_days"]
    if gap is not None and not (_finite_float(gap) and gap >= 0):
        state["gap_mean_days"] = float(gap) if is_finite_number(gap) and gap >= 0 else None
    return state


def _add_missing(state: State) -> None:
    """Give ``state`` the default of every missing or mistyped key, in :func:`new_state`'s order."""
    defaults = new_state()
    for key, kind in _SHAPE:
        if key not in state or (kind is not None and not isinstance(state[key], kind)):
            state[key] = defaults[key]


def _finite_float(value: Any) -> bool:
    return type(value) is float and math.isfinite(value)


def cadence_days(state: State, default_days: float, min_days: float) -> float:
    """The customer's usual days between orders: own mean gap with ≥ 2 orders, else the
    segment's ``cadence_days``, else ``default_days``; never below ``min_days``."""
    own = state.get("gap_mean_days") if state.get("orders", 0) >= 2 else None
    seg = (state.get("segment") or {}).get("cadence_days")
    value = own if own else (seg if isinstance(seg, (int, float)) and seg > 0 else default_days)
    return max(float(value), min_days)


def _unique(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def _apply_order(s: State, ev: Event, segment: dict[str, Any] | None) -> None:
    t = ev.occurred_at
    last = s["last_order_at"]
    if last is not None and t > last:
        gap = (t - last) / DAY
        n_gaps = s["orders"] - 1
        mean = s["gap_mean_days"]
        s["gap_mean_days"] = gap if mean is None or n_gaps < 1 else (mean * n_gaps + gap) / (n_gaps + 1)
    s["orders"] += 1
    seg_spend = (segment or {}).get("spend")
    if is_finite_number(seg_spend):
        s["spend"] = finite(seg_spend, 0.0, 0.0, MAX_SPEND)
    else:
        amount = finite(ev.event.get("amount"), 0.0, 0.0, MAX_AMOUNT)
        s["spend"] = round(min(MAX_SPEND, s["spend"] + amount), 4)
    s["first_order_at"] = t if s["first_order_at"] is None else min(s["first_order_at"], t)
    if last is None or t >= last:
        s["last_order_at"] = t
        s["last_order_event"] = ev.event_id


def _apply_complaint(s: State, ev: Event) -> None:
    t, e = ev.occurred_at, ev.event
    cid, status = str(e["complaint_id"]), e["status"]
    complaints: dict[str, Any] = dict(s["complaints"])
    s["complaints"] = complaints
    c = complaints.get(cid)
    if c is not None:
        c = complaints[cid] = dict(c)
    if c is None:
        c = complaints[cid] = {
            "status": "open", "opened_at": t, "reopened": 0, "reopened_at": None,
            "resolved_at": None, "event_ids": [],
        }
    c["event_ids"] = _unique(c["event_ids"] + [ev.event_id])[-MAX_EVIDENCE:]
    if status == "opened":
        c["opened_at"] = min(c["opened_at"], t)
    elif status == "reopened":
        c["status"] = "open"
        c["reopened"] += 1
        c["reopened_at"] = t if c["reopened_at"] is None else max(c["reopened_at"], t)
    elif status == "resolved":
        c["status"] = "resolved"
        c["resolved_at"] = t
        prev = s["last_resolved"]
        if prev is None or t >= prev["at"]:
            s["last_resolved"] = {"at": t, "complaint_id": cid, "event_id": ev.event_id}
    if len(complaints) > MAX_COMPLAINTS:
        order = sorted(complaints, key=lambda k: (complaints[k]["status"] == "open", complaints[k]["opened_at"]))
        for old in order[: len(complaints) - MAX_COMPLAINTS]:
            del complaints[old]


def feedback_magnitude(ev: Event, classification: dict[str, Any] | None) -> float | None:
    """How negative a feedback event is (``MIN_MAGNITUDE``..1), or ``None`` if it is not negative."""
    sentiment = (classification or {}).get("sentiment")
    if sentiment:
        if sentiment.get("label") != "negative":
            return None
        return max(MIN_MAGNITUDE, min(1.0, -float(sentiment.get("score") or 0.0)))
    e = ev.event
    scale = e.get("scale") or {}
    lo, hi = float(scale.get("min", 1)), float(scale.get("max", 5))
    if hi <= lo or not isinstance(e.get("score"), (int, float)):
        return None
    norm = max(-1.0, min(1.0, 2.0 * (float(e["score"]) - lo) / (hi - lo) - 1.0))
    return max(MIN_MAGNITUDE, -norm) if norm <= NEGATIVE_AT else None


def _apply_feedback(s: State, ev: Event, classification: dict[str, Any] | None) -> None:
    t = ev.occurred_at
    magnitude = feedback_magnitude(ev, classification)
    if magnitude is not None and all(x[1] != ev.event_id for x in s["negative"]):
        s["negative"] = sorted(s["negative"] + [[t, ev.event_id, round(magnitude, 4)]])[-MAX_NEGATIVE:]
    gap = (classification or {}).get("satisfaction_gap")
    if isinstance(gap, (int, float)) and all(x[2] != ev.event_id for x in s["gaps"]):
        s["gaps"] = sorted(s["gaps"] + [[t, float(gap), ev.event_id]])[-MAX_GAPS:]


def _apply_pain_points(s: State, ev: Event, classification: dict[str, Any]) -> None:
    t = ev.occurred_at
    ids = list(dict.fromkeys(p["id"] for p in classification.get("pain_points") or []))
    if not ids:
        return
    pains: dict[str, Any] = dict(s["pain_points"])
    s["pain_points"] = pains
    for pid in ids:
        p = pains.get(pid) or {"last": t, "count": 0, "seen": []}
        if any(eid == ev.event_id for _, eid in p["seen"]):
            continue
        p = pains[pid] = dict(p)
        p["count"] += 1
        p["last"] = max(p["last"], t)
        p["seen"] = sorted(p["seen"] + [[t, ev.event_id]])[-MAX_PAIN_SEEN:]
    if len(pains) > MAX_PAIN_POINTS:
        for old in sorted(pains, key=lambda k: pains[k]["last"])[: len(pains) - MAX_PAIN_POINTS]:
            del pains[old]
