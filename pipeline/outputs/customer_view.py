"""One customer as an operator asks for it (issue 18, scope 4): pure, from the stored state.

``GET /customers/<id>`` and ``python -m pipeline customer <id>`` return :func:`customer_view`:

* ``segment``: the segment at ``clock`` (:func:`~pipeline.segment.segments.derive_segment`);
* ``churn``: the score at ``clock`` with every factor's value, contribution (points of the score)
  and evidence (event ids, newest first), largest contribution first;
* ``commitments``: the open, warned and breached commitments with their due and warning times,
  soonest due first;
* ``alerts``: the customer's last alerts (id, type, severity, event time), newest first
  (:data:`RECENT_ALERTS` are kept in the state);
* ``clock``: the event time the view is computed at (the partition's clock, or the customer's
  latest event when the partition has none).

``GET /customers/<id>/commitments/<commitment_id>`` returns :func:`commitment_view`: one commitment
with every field (also a closed one while the state keeps it; a purged one as its tombstone).

Times are ISO 8601 UTC.  Nothing here reads Kafka or a table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..churn.score import Weights
from ..churn.score import score as churn_score
from ..commitments.model import ACTIVE
from ..config import SegmentThresholds
from ..segment.segments import derive_segment

RECENT_ALERTS = 5  # alerts remembered per customer for this view


@dataclass(frozen=True)
class ViewConfig:
    thresholds: SegmentThresholds
    weights: Weights


def iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


def remember_alerts(recent: list[dict[str, Any]] | None, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The state's ``alerts`` after ``alerts`` were sent: the newest :data:`RECENT_ALERTS`, small."""
    out = list(recent or [])
    for a in alerts:
        out.append({"alert_id": a["alert_id"], "type": a["type"], "severity": a["severity"],
                    "event_time": a.get("event_time")})
    return out[-RECENT_ALERTS:]


def latest_time(state: dict[str, Any]) -> float | None:
    """The customer's latest known event time (a fallback clock)."""
    seg, cm = state.get("seg") or {}, state.get("cm") or {}
    times = [t for t in (seg.get("last_order_at"), cm.get("last_event_at"), (state.get("churn") or {}).get("last_event_at"))
             if isinstance(t, (int, float))]
    return max(times) if times else None


def customer_view(customer_id: str, state: dict[str, Any], clock: float | None, cfg: ViewConfig) -> dict[str, Any]:
    at = clock if clock is not None else latest_time(state)
    if at is None:
        at = 0.0
    risk = churn_score(state.get("churn"), at, cfg.weights, explain=True)
    commitments = sorted(
        ({"commitment_id": c.get("id") or cid, "kind": c.get("kind"), "status": c.get("status"),
          "order_id": c.get("order_id"), "complaint_id": c.get("complaint_id"),
          "due_at": iso(c.get("due_at")), "warn_at": iso(c.get("warn_at")), "made_at": iso(c.get("made_at")),
          "reschedules": c.get("reschedules", 0)}
         for cid, c in ((state.get("cm") or {}).get("commitments") or {}).items() if c.get("status") in ACTIVE),
        key=lambda c: c["due_at"] or "")
    return {
        "customer_id": customer_id,
        "clock": iso(at),
        "segment": derive_segment(state.get("seg"), at, cfg.thresholds),
        "churn": {
            "score": round(risk.score, 1),
            "factors": [{"name": f.name, "value": round(f.value, 4), "contribution": round(f.contribution, 2),
                         "description": f.description, "evidence": list(f.evidence)} for f in risk.factors],
        },
        "commitments": commitments,
        "alerts": list(reversed(state.get("alerts") or [])),
    }


def commitment_view(customer_id: str, state: dict[str, Any], commitment_id: str) -> dict[str, Any] | None:
    """One commitment of the customer, every field (``*_at`` as ISO 8601); ``None`` when unknown."""
    cm = state.get("cm") or {}
    c = (cm.get("commitments") or {}).get(commitment_id)
    purged = c is None
    if purged:
        c = (cm.get("tombstones") or {}).get(commitment_id)
        if c is None:
            return None
    doc = {k: iso(v) if k.endswith("_at") and isinstance(v, (int, float)) else v for k, v in c.items()}
    return {"customer_id": customer_id, "commitment_id": commitment_id, "purged": purged, **doc}
