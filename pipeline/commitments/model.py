"""Commitment model: kinds, statuses, configuration and transitions (plain data).

A *commitment* is a promise made to a customer with a due time.  The tracker
(:mod:`pipeline.commitments.tracker`) keeps them per customer in a
JSON-serialisable dict, so the state can live in a Faust table keyed by
customer id.

Kinds
-----
========== ============================ ====================================================
kind       made by                      fulfilled by
========== ============================ ====================================================
delivery   order ``placed`` /           order ``delivered`` (voided by ``cancelled``);
           ``delivery_rescheduled``     a reschedule moves the due time
           with ``promised_delivery_at``
response   complaint event with         the next event of that complaint with status
           ``promised_response_by``     ``updated`` or ``resolved`` (not the one that made it)
resolution complaint event with         complaint ``resolved``; ``reopened`` re-opens it
           ``promised_resolution_by``   (a new *generation*, see below)
callback   complaint event with         a later event of that complaint with
           ``promised_callback_at``     ``attributes.callback_done == true``, or with status
                                        ``updated``/``resolved`` on the ``phone`` channel
                                        (an update recorded on the phone *is* the call)
                                        unless ``attributes.callback_done == false``
refund     complaint event with         an order ``refunded`` event for the complaint's
           ``promised_refund_by``       ``order_id``; for a complaint without ``order_id``, any
                                        ``refunded`` order event of the customer (the open
                                        refund commitment due soonest takes it)
========== ============================ ====================================================

Commitment id: ``f"{kind}:{subject_id}"`` (``subject_id`` = order id for
deliveries, complaint id otherwise).  A commitment also carries a
``generation`` (0 first): it is incremented whenever the commitment goes back
to ``open`` after it was warned, breached or closed (a reschedule after a
warning/breach, a reopened resolution, a new promise of the same kind on a
closed complaint commitment).  Within one generation every stage is reached at
most once, so ``(stage, commitment id, generation)`` identifies an alert.

Statuses
--------
::

    open ──► warned ──► breached ──► fulfilled_late   (records delay_seconds)
      │        │  │         │   └──► voided / expired
      │        │  └► fulfilled, voided
      └────────┴───► fulfilled, voided

* ``warned`` at ``max(due − warning offset, made_at)`` while still open;
* ``breached`` at ``due`` (when the clock reaches it: ``due <= now``);
* a fulfilling event at time ``t`` is on time iff ``t <= due``; an event that
  arrives after the clock already breached the commitment but says it happened
  on time turns the breach into ``fulfilled`` with ``breach_retracted = true``;
* ``expired``: a breached commitment never fulfilled is dropped
  ``breached_retention_seconds`` after the breach (counters keep it).

Configuration (:class:`CommitmentConfig`, environment variables)
----------------------------------------------------------------
``PIPELINE_WARN_<KIND>_SECONDS`` (``DELIVERY`` 86400, ``RESPONSE`` 3600,
``RESOLUTION`` 14400, ``CALLBACK`` 1800, ``REFUND`` 86400): warning offsets;
``PIPELINE_RESOLUTION_WINDOW_SECONDS`` (172800): due of a reopened resolution
when neither the reopen nor the old due gives a future time;
``PIPELINE_COMMITMENT_RETENTION_SECONDS`` (604800): closed commitments are
dropped this long after closing (event time);
``PIPELINE_COMMITMENT_BREACHED_RETENTION_SECONDS`` (7776000): breached and
never fulfilled commitments are dropped this long after the breach;
``PIPELINE_COMMITMENT_TOMBSTONE_SECONDS`` (7776000): how long the id,
generation and due of a dropped commitment are remembered (so a redelivered or
late event does not re-create it and a reopen continues its generations).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

KINDS = ("delivery", "response", "resolution", "callback", "refund")

# promise field of each kind
PROMISE_FIELDS = {
    "delivery": "promised_delivery_at",
    "response": "promised_response_by",
    "resolution": "promised_resolution_by",
    "callback": "promised_callback_at",
    "refund": "promised_refund_by",
}

# statuses
OPEN, WARNED, BREACHED = "open", "warned", "breached"
FULFILLED, FULFILLED_LATE, VOIDED = "fulfilled", "fulfilled_late", "voided"
ACTIVE = frozenset({OPEN, WARNED, BREACHED})  # not closed: can still change
CLOSED = frozenset({FULFILLED, FULFILLED_LATE, VOIDED})

# transition types
MADE, RESCHEDULED, REOPENED = "made", "rescheduled", "reopened"
EXPIRED = "expired"  # breached, never fulfilled, dropped after breached_retention_seconds
TRANSITION_TYPES = (MADE, RESCHEDULED, REOPENED, WARNED, BREACHED, FULFILLED, FULFILLED_LATE, VOIDED, EXPIRED)

HOUR = 3600.0
DAY = 86400.0


def commitment_id(kind: str, subject_id: str) -> str:
    return f"{kind}:{subject_id}"


@dataclass(frozen=True)
class CommitmentConfig:
    """Warning offsets per kind and the bounds of the per-customer state (seconds)."""

    warn_delivery_seconds: float = 24 * HOUR
    warn_response_seconds: float = 1 * HOUR
    warn_resolution_seconds: float = 4 * HOUR
    warn_callback_seconds: float = 30 * 60.0
    warn_refund_seconds: float = 24 * HOUR
    resolution_window_seconds: float = 2 * DAY
    retention_seconds: float = 7 * DAY
    breached_retention_seconds: float = 90 * DAY
    tombstone_retention_seconds: float = 90 * DAY
    max_evidence: int = 20  # event ids kept per commitment (the first + the latest)

    def warn_offset(self, kind: str) -> float:
        return float(getattr(self, f"warn_{kind}_seconds"))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "CommitmentConfig":
        """Read ``PIPELINE_WARN_<KIND>_SECONDS`` and the retention variables (module doc)."""
        env = {} if env is None else env  # the environment only when given (pipeline.stage_settings)
        d = cls()
        names = {f"warn_{k}_seconds": f"PIPELINE_WARN_{k.upper()}_SECONDS" for k in KINDS}
        names.update(
            resolution_window_seconds="PIPELINE_RESOLUTION_WINDOW_SECONDS",
            retention_seconds="PIPELINE_COMMITMENT_RETENTION_SECONDS",
            breached_retention_seconds="PIPELINE_COMMITMENT_BREACHED_RETENTION_SECONDS",
            tombstone_retention_seconds="PIPELINE_COMMITMENT_TOMBSTONE_SECONDS",
        )
        values: dict[str, Any] = {}
        for attr, var in names.items():
            raw = env.get(var)
            if raw is None or raw.strip() == "":
                continue
            value = float(raw)
            if value < 0:
                raise ValueError(f"{var} must be >= 0, got {raw!r}")
            values[attr] = value
        return cls(**{**asdict(d), **values})


@dataclass(frozen=True)
class Transition:
    """One change of one commitment.

    ``at`` is the event time the change belongs to: the event's time for
    made/rescheduled/reopened/fulfilled/voided, the warning time or the due
    time for warned/breached (whenever the clock noticed), the expiry time for
    expired - so the same input always gives the same transitions.
    ``commitment`` is a snapshot of the commitment right after the change;
    ``customer_breaches`` the number of breaches (all kinds) the customer had
    before this transition, not counting the current breach of this very
    commitment (a fulfilled_late does not count its own breach as a repeat);
    ``event_id`` the event that caused it (``None`` for clock-driven
    transitions); ``previous_due_at`` the due before a reschedule/reopen;
    ``detail`` e.g. ``{"rearmed": true}`` (reschedule put a warned/breached
    commitment back to open) or ``{"breach_retracted": true}``.
    """

    type: str
    customer_id: str
    commitment_id: str
    kind: str
    generation: int
    at: float
    commitment: dict[str, Any]
    customer_breaches: int = 0
    event_id: str | None = None
    previous_due_at: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data; ``commitment`` and ``detail`` are copied one level deep (the commitment's
        evidence list too), which is all ``asdict``'s recursive deep copy bought at 20× the cost."""
        commitment = dict(self.commitment)
        if isinstance(commitment.get("evidence"), list):
            commitment["evidence"] = list(commitment["evidence"])
        return {
            "type": self.type, "customer_id": self.customer_id, "commitment_id": self.commitment_id,
            "kind": self.kind, "generation": self.generation, "at": self.at, "commitment": commitment,
            "customer_breaches": self.customer_breaches, "event_id": self.event_id,
            "previous_due_at": self.previous_due_at, "detail": dict(self.detail),
        }
