"""Commitment tracking, pure functions over a per-customer state dict.

The state (one per customer, JSON-serialisable, for a Faust table keyed by
customer id)::

    {
      "v": 1,
      "customer_id": str,                             # set by apply_event (advance labels with it)
      "commitments": {commitment_id: commitment},   # active + recently closed
      "tombstones":  {commitment_id: {"generation", "due_at", "status", "closed_at"}},
      "counters":    {kind: {"made": n, "warned": n, "breached": n, ...}},
      "last_event_at": epoch seconds | None,          # greatest event time seen
      "recent_ids": [event ids],                      # last RECENT_IDS order/complaint events
    }

A commitment (plain dict)::

    id, kind, subject_id, order_id, complaint_id, field, status, generation,
    made_at, due_at, original_due_at, warn_at, warned_at, breached_at,
    closed_at, delay_seconds, reschedules, reopens, breaches, breach_retracted,
    evidence (event ids: the one that made it + the latest that changed it)

Functions
---------
* :func:`apply_event` — one order/complaint event: make, reschedule, reopen,
  fulfil, void.  First the customer's commitments are brought up to the
  event's time (warned if their warning time, breached if their due time is
  *strictly* before the event): lateness is decided by event time alone, never
  by when ticks happened to arrive, and a customer's transitions always come
  in time order (so ``customer_breaches`` and hence severity do not depend on
  tick timing either).  So ``apply_event`` can return ``warned``/``breached``
  transitions too.
* :func:`advance` — the clock (event time or wall clock, the caller decides):
  warn at ``max(due - offset, made_at) <= now``, breach at ``due <= now``,
  expire breached commitments never fulfilled after
  ``breached_retention_seconds``, drop closed ones after ``retention_seconds``.
  Idempotent: with nothing to do it returns the *same* state object and no
  transitions (the caller can skip the table write), so calling it again with
  the same or an earlier ``now`` does nothing.
* :func:`due_soonest` — when :func:`advance` will next have something to do.

Rules (see also :mod:`pipeline.commitments.model`)
--------------------------------------------------
* Fulfilment at event time ``t`` is on time iff ``t <= due``.  A commitment
  already breached by the clock (e.g. wall clock, the event arrived late) whose
  fulfilling/voiding event says ``t <= due`` becomes ``fulfilled``/``voided``
  with ``breach_retracted = true``; the breach counter is decremented.
* Reschedule (a new due for an active commitment: ``delivery_rescheduled``, or
  a complaint event repeating a promise field with another time): the due
  moves, ``reschedules`` += 1, ``original_due_at`` keeps the first promise.
  A *warned* commitment whose new warning time is still in the future (after
  the event) goes back to ``open`` in a new generation, so it can be warned
  again with a new alert id; if the new warning time has already passed it
  stays ``warned`` (no second warning).  A *breached* commitment that gets a
  new due goes back to ``open`` in a new generation (the old breach stays
  counted; the new promise is tracked afresh).
* A promise field equal to the current (or dropped) commitment's due is not a
  new promise (systems often repeat SLA fields on every update).
* A new promise of a complaint kind on a *closed* commitment starts a new
  generation (for delivery it is ignored: a delivered/cancelled order is done).
* Reopened resolution: new due = the reopen's ``promised_resolution_by`` if
  present, else the old due if still after the reopen, else reopen time +
  ``resolution_window_seconds``; new generation.  Works on a dropped
  (tombstoned) resolution too.
* Cancelled order voids an active delivery commitment (a breached one too:
  the breach stays counted).
* Idempotent per event: the last ``RECENT_IDS`` event ids are remembered and
  each commitment keeps the ids that made/changed it; a redelivered event
  changes nothing.  Tombstones keep a dropped commitment from being re-made by a
  late duplicate.
* Bounded: closed commitments are dropped ``retention_seconds`` after closing,
  breached never-fulfilled ones ``breached_retention_seconds`` after the breach
  (transition ``expired``), tombstones after ``tombstone_retention_seconds``;
  counters stay.

Wiring (for the agent)
----------------------
After every ``apply_event``/``advance`` put ``due_soonest(state)`` into the
partition's :class:`pipeline.scheduling.DueIndex` under the customer id; on a
tick, ``advance`` the keys it pops.  Skip the table write when the returned
state ``is`` the input.  With the event-time clock, the clock should not run
ahead of any input topic of the partition (e.g. the minimum over topics of the
greatest event time seen), otherwise a commitment can be breached before its
fulfilling event is consumed (that is then reported as
``commitment_breach_retracted``, but the ``unmet_commitment`` alert is out).
"""

from __future__ import annotations

from typing import Any

from ..ingest.normalise import Event
from .model import (
    ACTIVE,
    BREACHED,
    CLOSED,
    EXPIRED,
    FULFILLED,
    FULFILLED_LATE,
    KINDS,
    MADE,
    OPEN,
    PROMISE_FIELDS,
    REOPENED,
    RESCHEDULED,
    VOIDED,
    WARNED,
    CommitmentConfig,
    Transition,
    commitment_id,
)

STATE_VERSION = 1
RECENT_IDS = 64
COMPLAINT_KINDS = ("response", "resolution", "callback", "refund")
_DEFAULT_CFG = CommitmentConfig()

State = dict[str, Any]


# -- state ---------------------------------------------------------------------------------
def new_state(customer_id: str = "") -> State:
    return {
        "v": STATE_VERSION,
        "customer_id": customer_id,
        "commitments": {},
        "tombstones": {},
        "counters": {},
        "last_event_at": None,
        "recent_ids": [],
    }


def _shell(state: State) -> State:
    """A copy of ``state`` to change copy-on-write, so the input is never mutated.

    The top-level dict and the containers of commitments, tombstones and counters are new; the
    commitments and counter rows in them are the input's until changed (:meth:`_Ctx.own` and
    :meth:`_Ctx.count` copy one first).  Tombstones and ``recent_ids`` are only ever replaced.
    Copying every commitment on every event was a quarter of ``apply_event``'s time (issue 17).
    """
    return {
        "v": state.get("v", STATE_VERSION),
        "customer_id": state.get("customer_id", ""),
        "commitments": dict(state.get("commitments", {})),
        "tombstones": dict(state.get("tombstones", {})),
        "counters": dict(state.get("counters", {})),
        "last_event_at": state.get("last_event_at"),
        "recent_ids": list(state.get("recent_ids", [])),
    }


def warn_time(c: dict[str, Any]) -> float:
    """When an open commitment gets warned: due - offset, not before it was made, not after due."""
    return min(max(c["warn_at"], c["made_at"]), c["due_at"])


def next_time(c: dict[str, Any]) -> float | None:
    """Time of the next clock-driven transition of ``c`` (None: none pending)."""
    if c["status"] == OPEN:
        return warn_time(c)
    if c["status"] == WARNED:
        return c["due_at"]
    return None


def due_soonest(state: State | None) -> float | None:
    """The earliest time at which :func:`advance` would warn or breach something.

    ``None`` when no commitment is open or warned.  (Expiry of breached and
    purge of closed commitments happen on any later advance/event; they are
    housekeeping and need no tick of their own.)
    """
    if not state:
        return None
    # one loop, no list, with min's comparisons (the first of equal times): this runs on every event
    # (Processor.due_hint)
    soonest = None
    for c in state.get("commitments", {}).values():
        t = next_time(c)
        if t is not None and (soonest is None or t < soonest):
            soonest = t
    return soonest


def breaches(state: State | None) -> int:
    """Number of breaches of this customer, all kinds (retracted ones excluded)."""
    if not state:
        return 0
    return sum(v.get(BREACHED, 0) for v in state.get("counters", {}).values())


def summary(state: State | None) -> dict[str, dict[str, int]]:
    """Per kind: commitments currently open / warned / breached (for gauges)."""
    out: dict[str, dict[str, int]] = {}
    for c in (state or {}).get("commitments", {}).values():
        if c["status"] in ACTIVE:
            row = out.setdefault(c["kind"], {OPEN: 0, WARNED: 0, BREACHED: 0})
            row[c["status"]] += 1
    return out


# -- transitions ---------------------------------------------------------------------------
class _Ctx:
    def __init__(self, state: State, customer_id: str, cfg: CommitmentConfig) -> None:
        self.s = state
        self.customer_id = customer_id
        self.cfg = cfg
        self.out: list[Transition] = []
        self.owned: set[str] = set()  # ids of the commitments already copied into ``s`` (``own``)

    def own(self, cid: str) -> dict[str, Any]:
        """The commitment ``cid`` of the state, ready to change: copied at its first change, since
        until then it is the input state's (:func:`_shell`)."""
        commitments = self.s["commitments"]
        if cid in self.owned:
            return commitments[cid]
        c = commitments[cid] = dict(commitments[cid])
        self.owned.add(cid)
        return c

    def add(self, c: dict[str, Any]) -> None:
        """Put a new commitment into the state (it is ``s``'s own)."""
        self.s["commitments"][c["id"]] = c
        self.owned.add(c["id"])

    def count(self, kind: str, name: str, delta: int = 1) -> None:
        counters = self.s["counters"]
        row = dict(counters.get(kind, {}))  # the row may be the input state's: replaced, never changed
        row[name] = row.get(name, 0) + delta
        counters[kind] = row

    def emit(
        self, typ: str, c: dict[str, Any], at: float, *, event_id: str | None = None,
        previous_due_at: float | None = None, detail: dict[str, Any] | None = None,
        breaches_before: int | None = None,
    ) -> None:
        self.out.append(
            Transition(
                type=typ, customer_id=self.customer_id, commitment_id=c["id"], kind=c["kind"],
                generation=c["generation"], at=at, commitment=_snapshot(c),
                customer_breaches=self._before(typ) if breaches_before is None else breaches_before,
                event_id=event_id, previous_due_at=previous_due_at, detail=detail or {},
            )
        )
        self.count(c["kind"], typ)

    def _before(self, typ: str) -> int:
        # breaches before this transition, not counting the current breach of this commitment
        return breaches(self.s) - (1 if typ == FULFILLED_LATE else 0)

    def evidence(self, c: dict[str, Any], event_id: str) -> None:
        ev = c["evidence"]
        if event_id in ev:
            return
        ev = ev + [event_id]
        keep = max(2, self.cfg.max_evidence)
        if len(ev) > keep:
            ev = ev[:1] + ev[-(keep - 1):]
        c["evidence"] = ev


def _snapshot(c: dict[str, Any]) -> dict[str, Any]:
    out = dict(c)
    out["evidence"] = list(c["evidence"])
    return out


def _warn(ctx: _Ctx, c: dict[str, Any]) -> None:
    at = warn_time(c)
    c["status"] = WARNED
    c["warned_at"] = at
    ctx.emit(WARNED, c, at)


def _breach(ctx: _Ctx, c: dict[str, Any]) -> None:
    before = breaches(ctx.s)
    c["status"] = BREACHED
    c["breached_at"] = c["due_at"]
    c["breaches"] += 1
    ctx.emit(BREACHED, c, c["due_at"], breaches_before=before)


def _close(ctx: _Ctx, c: dict[str, Any], ev: Event, void: bool) -> None:
    t = ev.occurred_at
    ctx.evidence(c, ev.event_id)
    detail: dict[str, Any] = {}
    if c["status"] == BREACHED and t <= c["due_at"]:
        # breached by the clock, but the event says it happened in time
        c["breach_retracted"] = True
        c["breaches"] -= 1
        ctx.count(c["kind"], BREACHED, -1)
        ctx.count(c["kind"], "breach_retracted")
        detail["breach_retracted"] = True
        c["breached_at"] = None
        c["status"] = WARNED
    if void:
        typ = VOIDED
    elif c["status"] == BREACHED:
        typ = FULFILLED_LATE
        c["delay_seconds"] = t - c["due_at"]
    else:
        typ = FULFILLED
    c["status"] = typ
    c["closed_at"] = t
    ctx.emit(typ, c, t, event_id=ev.event_id, detail=detail)


def _new(
    kind: str, subject_id: str, due: float, ev: Event, cfg: CommitmentConfig, *, generation: int = 0,
    order_id: str | None = None, complaint_id: str | None = None, reschedules: int = 0,
    original_due_at: float | None = None, reopens: int = 0, breaches_: int = 0,
) -> dict[str, Any]:
    return {
        "id": commitment_id(kind, subject_id),
        "kind": kind,
        "subject_id": subject_id,
        "order_id": order_id,
        "complaint_id": complaint_id,
        "field": PROMISE_FIELDS[kind],
        "status": OPEN,
        "generation": generation,
        "made_at": ev.occurred_at,
        "due_at": due,
        "original_due_at": due if original_due_at is None else original_due_at,
        "warn_at": due - cfg.warn_offset(kind),
        "warned_at": None,
        "breached_at": None,
        "closed_at": None,
        "delay_seconds": None,
        "reschedules": reschedules,
        "reopens": reopens,
        "breaches": breaches_,
        "breach_retracted": False,
        "evidence": [ev.event_id],
    }


def _make(
    ctx: _Ctx, kind: str, subject_id: str, due: float, ev: Event, *, generation: int = 0,
    order_id: str | None = None, complaint_id: str | None = None, reschedules: int = 0,
) -> None:
    c = _new(kind, subject_id, due, ev, ctx.cfg, generation=generation, order_id=order_id,
             complaint_id=complaint_id, reschedules=reschedules)
    ctx.add(c)
    ctx.s["tombstones"].pop(c["id"], None)
    ctx.emit(MADE, c, ev.occurred_at, event_id=ev.event_id)


def _restart(ctx: _Ctx, c: dict[str, Any]) -> None:
    """Back to open in a new generation (per-generation fields reset)."""
    c["status"] = OPEN
    c["generation"] += 1
    c["warned_at"] = c["breached_at"] = c["closed_at"] = c["delay_seconds"] = None
    c["breach_retracted"] = False


def _reschedule(ctx: _Ctx, c: dict[str, Any], due: float, ev: Event) -> None:
    t = ev.occurred_at
    previous = c["due_at"]
    c["due_at"] = due
    c["warn_at"] = due - ctx.cfg.warn_offset(c["kind"])
    c["reschedules"] += 1
    ctx.evidence(c, ev.event_id)
    rearmed = False
    if c["status"] == BREACHED or (c["status"] == WARNED and warn_time(c) > t):
        _restart(ctx, c)
        rearmed = True
    ctx.emit(RESCHEDULED, c, t, event_id=ev.event_id, previous_due_at=previous, detail={"rearmed": rearmed})


def _promise(
    ctx: _Ctx, kind: str, subject_id: str, due: float, ev: Event, *, order_id: str | None = None,
    complaint_id: str | None = None, reschedules: int = 0,
) -> None:
    cid = commitment_id(kind, subject_id)
    c = ctx.s["commitments"].get(cid)
    if c is None:
        tomb = ctx.s["tombstones"].get(cid)
        if tomb is not None and (kind == "delivery" or tomb["due_at"] == due):
            return  # a late duplicate of a dropped commitment / a dropped order
        gen = tomb["generation"] + 1 if tomb is not None else 0
        _make(ctx, kind, subject_id, due, ev, generation=gen, order_id=order_id, complaint_id=complaint_id,
              reschedules=reschedules)
    elif due == c["due_at"] or (ev.event_id in c["evidence"] and c["status"] in ACTIVE):
        return  # a repeated promise (or a redelivered event), not a new one
    elif c["status"] in ACTIVE:
        _reschedule(ctx, ctx.own(cid), due, ev)
    elif kind != "delivery":
        # a new promise of the same kind on a closed complaint commitment
        c = ctx.own(cid)
        _restart(ctx, c)
        c.update(made_at=ev.occurred_at, due_at=due, original_due_at=due, reschedules=0,
                 warn_at=due - ctx.cfg.warn_offset(kind), evidence=[ev.event_id])
        if order_id is not None:
            c["order_id"] = order_id
        ctx.emit(MADE, c, ev.occurred_at, event_id=ev.event_id)


def _reopen(ctx: _Ctx, complaint_id: str, ev: Event) -> None:
    cid = commitment_id("resolution", complaint_id)
    t = ev.occurred_at
    promised = ev.times.get(PROMISE_FIELDS["resolution"])
    c = ctx.s["commitments"].get(cid)
    tomb = ctx.s["tombstones"].get(cid)
    if c is None and tomb is None:
        if promised is not None:
            _make(ctx, "resolution", complaint_id, promised, ev, complaint_id=complaint_id,
                  order_id=ev.event.get("order_id"))
        return
    if c is not None and ev.event_id in c["evidence"]:
        return
    if c is not None and c["status"] in ACTIVE:
        # reopened although never resolved: only a new promise changes anything
        if promised is not None and promised != c["due_at"]:
            _reschedule(ctx, ctx.own(cid), promised, ev)
        return
    old_due = c["due_at"] if c is not None else tomb["due_at"]
    if promised is not None:
        due = promised
    elif old_due > t:
        due = old_due
    else:
        due = t + ctx.cfg.resolution_window_seconds
    if c is None:
        c = _new("resolution", complaint_id, due, ev, ctx.cfg, generation=tomb["generation"],
                 complaint_id=complaint_id, order_id=ev.event.get("order_id"))
        ctx.add(c)
        ctx.s["tombstones"].pop(cid, None)
    else:
        c = ctx.own(cid)
    _restart(ctx, c)
    c.update(made_at=t, due_at=due, warn_at=due - ctx.cfg.warn_offset("resolution"), reopens=c["reopens"] + 1)
    ctx.evidence(c, ev.event_id)
    ctx.emit(REOPENED, c, t, event_id=ev.event_id, previous_due_at=old_due)


def _callback_done(e: dict[str, Any]) -> bool:
    attrs = e.get("attributes") or {}
    flag = attrs.get("callback_done")
    if flag is not None:
        return flag is True
    return e.get("status") in ("updated", "resolved") and e.get("channel") == "phone"


def _fulfillable(c: dict[str, Any] | None, ev: Event) -> bool:
    return (
        c is not None and c["status"] in ACTIVE and ev.event_id not in c["evidence"]
        and ev.occurred_at >= c["made_at"]
    )


def _apply_complaint(ctx: _Ctx, ev: Event) -> None:
    e = ev.event
    comp, status = e["complaint_id"], e["status"]
    order_id = e.get("order_id")
    commitments = ctx.s["commitments"]
    resp_id, res_id, cb_id = (commitment_id(kind, comp) for kind in ("response", "resolution", "callback"))
    if status in ("updated", "resolved") and _fulfillable(commitments.get(resp_id), ev):
        _close(ctx, ctx.own(resp_id), ev, void=False)
    if status == "resolved" and _fulfillable(commitments.get(res_id), ev):
        _close(ctx, ctx.own(res_id), ev, void=False)
    if _fulfillable(commitments.get(cb_id), ev) and _callback_done(e):
        _close(ctx, ctx.own(cb_id), ev, void=False)
    if status == "reopened":
        _reopen(ctx, comp, ev)
    for kind in COMPLAINT_KINDS:
        due = ev.times.get(PROMISE_FIELDS[kind])
        if due is None or (kind == "resolution" and status in ("resolved", "reopened")):
            continue
        _promise(ctx, kind, comp, due, ev, complaint_id=comp,
                 order_id=order_id)


def _apply_order(ctx: _Ctx, ev: Event) -> None:
    e = ev.event
    typ, oid = e["type"], e["order_id"]
    commitments = ctx.s["commitments"]
    cid = commitment_id("delivery", oid)
    c = commitments.get(cid)
    if typ in ("placed", "delivery_rescheduled"):
        due = ev.times.get(PROMISE_FIELDS["delivery"])
        if due is not None:
            _promise(ctx, "delivery", oid, due, ev, order_id=oid,
                     reschedules=1 if typ == "delivery_rescheduled" else 0)
    elif typ in ("delivered", "cancelled"):
        if c is not None and c["status"] in ACTIVE and ev.event_id not in c["evidence"]:
            _close(ctx, ctx.own(cid), ev, void=typ == "cancelled")
    elif typ == "refunded":
        refunds = [
            (k, r) for k, r in commitments.items()
            if r["kind"] == "refund" and r["status"] in ACTIVE and r["made_at"] <= ev.occurred_at
        ]
        matches = [(k, r) for k, r in refunds if r["order_id"] == oid]
        if not matches:
            loose = sorted(((k, r) for k, r in refunds if r["order_id"] is None),
                           key=lambda kr: (kr[1]["due_at"], kr[1]["id"]))
            matches = loose[:1]
        for k, _ in sorted(matches, key=lambda kr: kr[1]["id"]):
            _close(ctx, ctx.own(k), ev, void=False)


def _purge(s: State, ref: float, cfg: CommitmentConfig) -> None:
    for cid in [k for k, c in s["commitments"].items()
                if c["status"] in CLOSED and c["closed_at"] + cfg.retention_seconds <= ref]:
        c = s["commitments"].pop(cid)
        s["tombstones"][cid] = {"generation": c["generation"], "due_at": c["due_at"], "status": c["status"],
                                "closed_at": c["closed_at"]}
    for cid in [k for k, t in s["tombstones"].items() if t["closed_at"] + cfg.tombstone_retention_seconds <= ref]:
        del s["tombstones"][cid]


def _purge_due(s: State, ref: float, cfg: CommitmentConfig) -> bool:
    """Whether :func:`_purge` has anything to drop at ``ref`` (loops: this runs on every event)."""
    retention = cfg.retention_seconds
    for c in s.get("commitments", {}).values():
        if c["status"] in CLOSED and c["closed_at"] + retention <= ref:
            return True
    retention = cfg.tombstone_retention_seconds
    for t in s.get("tombstones", {}).values():
        if t["closed_at"] + retention <= ref:
            return True
    return False


# -- public API ----------------------------------------------------------------------------
def apply_event(
    state: State | None, ev: Event, cfg: CommitmentConfig | None = None
) -> tuple[State, list[Transition]]:
    """Apply one event to the customer's commitments; return ``(new_state, transitions)``.

    The input state is never mutated.  Orders and complaints change
    commitments; any other kind only moves ``last_event_at``.  A redelivered
    event (id already applied) returns the input state unchanged (same object)
    and no transitions.
    """
    cfg = cfg or _DEFAULT_CFG
    if state and ev.event_id in state.get("recent_ids", ()):
        return state, []
    changes = ev.kind in ("order", "complaint")
    # any other kind only moves ``last_event_at``: a shallow copy shares the untouched parts (never mutated)
    s = new_state(ev.customer_id) if not state else (_shell(state) if changes else dict(state))
    s["customer_id"] = ev.customer_id
    last = s.get("last_event_at")
    s["last_event_at"] = ev.occurred_at if last is None else max(last, ev.occurred_at)
    ctx = _Ctx(s, ev.customer_id, cfg)
    if changes:
        # everything that fell due strictly before this event happened first
        _run(ctx, _timeline(s, ev.occurred_at, True, cfg, expire=False))
        s["recent_ids"] = (s["recent_ids"] + [ev.event_id])[-RECENT_IDS:]
        (_apply_order if ev.kind == "order" else _apply_complaint)(ctx, ev)
    if _purge_due(s, s["last_event_at"], cfg):
        if state and not changes:
            s = _shell(s)  # the shallow copy's parts are the input's: purge a copy of them
        _purge(s, s["last_event_at"], cfg)
    return s, ctx.out


def _timeline(
    state: State, now: float, strict: bool, cfg: CommitmentConfig, expire: bool
) -> list[tuple[float, int, str]]:
    """Clock-driven transitions up to ``now`` (``< now`` if strict): (time, stage, id), sorted."""
    lenient = not strict  # ``x < now or (lenient and x == now)`` is ``x <= now`` unless strict
    out: list[tuple[float, int, str]] = []
    for cid, c in state.get("commitments", {}).items():
        status = c["status"]
        if status == OPEN:
            warn, due = warn_time(c), c["due_at"]
            if warn < now or (lenient and warn == now):
                out.append((warn, 0, cid))
            if due < now or (lenient and due == now):
                out.append((due, 1, cid))
        elif status == WARNED:
            due = c["due_at"]
            if due < now or (lenient and due == now):
                out.append((due, 1, cid))
        elif expire and status == BREACHED:
            end = c["breached_at"] + cfg.breached_retention_seconds
            if end < now or (lenient and end == now):
                out.append((end, 2, cid))
    out.sort()
    return out


def _run(ctx: _Ctx, timeline: list[tuple[float, int, str]]) -> None:
    s = ctx.s
    for at, stage, cid in timeline:
        status = s["commitments"][cid]["status"]
        if stage == 0 and status == OPEN:
            _warn(ctx, ctx.own(cid))
        elif stage == 1 and status in (OPEN, WARNED):
            _breach(ctx, ctx.own(cid))
        elif stage == 2 and status == BREACHED:
            c = ctx.own(cid)
            c["closed_at"] = at
            ctx.emit(EXPIRED, c, at)
            del s["commitments"][cid]
            s["tombstones"][cid] = {"generation": c["generation"], "due_at": c["due_at"], "status": EXPIRED,
                                    "closed_at": at}


def advance(
    state: State | None, now: float, cfg: CommitmentConfig | None = None
) -> tuple[State, list[Transition]]:
    """Move the clock to ``now``: warnings, breaches, expiry, purge.

    Returns the same state object and ``[]`` when there is nothing to do.
    Transitions come in time order; ``at`` is the warning/due/expiry time,
    not ``now``.
    """
    cfg = cfg or _DEFAULT_CFG
    if not state:
        return (state if state is not None else new_state()), []
    timeline = _timeline(state, now, False, cfg, expire=True)
    if not timeline and not _purge_due(state, now, cfg):
        return state, []
    s = _shell(state)
    ctx = _Ctx(s, s["customer_id"], cfg)
    _run(ctx, timeline)
    _purge(s, now, cfg)
    return s, ctx.out


__all__ = [
    "KINDS",
    "CommitmentConfig",
    "Transition",
    "advance",
    "apply_event",
    "breaches",
    "due_soonest",
    "new_state",
    "summary",
]
