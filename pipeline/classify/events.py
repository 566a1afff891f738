"""Classification of one pipeline event (text + structured signals), as plain data.

* complaint — text classified (language given or detected) + ``reopened`` → customer_service;
* feedback  — text and numeric score blended; satisfaction gap when an expectation score exists;
* order     — structured only: delivered (or still undelivered) after the promised delivery
  time → delivery; returned / refunded → refund_return.

Pain points found by both text and structure are merged: the higher confidence wins and the
evidence lists are concatenated.
"""

from __future__ import annotations

from typing import Any

from ..ingest.normalise import Event
from ..core.timeparse import format_timestamp
from .classifier import classify
from .learned import ModelLookup
from .model import Classification, PainPoint, Sentiment
from .structured import structured_pain_points
from .taxonomy import Taxonomy


# order event types that cannot make an undelivered order overdue
_NO_OVERDUE = ("delivered", "placed", "delivery_rescheduled", "cancelled")
_NEUTRAL = Sentiment("neutral", 0.0)  # an order's sentiment: never changed, only read by to_dict


def _merge(a: list[PainPoint], b: list[PainPoint]) -> list[PainPoint]:
    by_id: dict[str, PainPoint] = {p.id: PainPoint(p.id, p.confidence, list(p.evidence)) for p in a}
    for p in b:
        if p.id in by_id:
            cur = by_id[p.id]
            by_id[p.id] = PainPoint(p.id, max(cur.confidence, p.confidence), cur.evidence + list(p.evidence))
        else:
            by_id[p.id] = PainPoint(p.id, p.confidence, list(p.evidence))
    return sorted(by_id.values(), key=lambda p: (-p.confidence, p.id))


def classify_event(ev: Event, taxonomy: Taxonomy, promised_delivery_at: float | None = None,
                   sentiment_model: ModelLookup | None = None) -> dict[str, Any]:
    """``promised_delivery_at``: the order's open promise (epoch s) known before this event;
    ``sentiment_model``: optional learned text sentiment (:mod:`.learned`)."""
    e = ev.event
    if ev.kind == "feedback":
        scale = e["scale"]
        c = classify(ev.text, language=ev.language, score=e["score"], scale=(scale["min"], scale["max"]),
                     expectation_score=e.get("expectation_score"), taxonomy=taxonomy,
                     sentiment_model=sentiment_model)
        return c.to_dict()
    if ev.kind == "complaint":
        c = classify(ev.text, language=ev.language, taxonomy=taxonomy, sentiment_model=sentiment_model)
        c.pain_points = _merge(c.pain_points, structured_pain_points("complaint", e, taxonomy=taxonomy))
        return c.to_dict()
    # order: structured signals only
    kind = e["type"]
    context: dict[str, Any] = {}
    if kind not in _NO_OVERDUE:  # only in-transit events flag an overdue, undelivered order
        context["now"] = format_timestamp(ev.occurred_at)
    if promised_delivery_at is not None:
        context["promised_delivery_at"] = format_timestamp(promised_delivery_at)
    view = e
    if kind == "delivered":
        view = {**e, "delivered_at": e["occurred_at"]}
    pains = structured_pain_points("order", view, context, taxonomy=taxonomy)
    if kind in ("placed", "delivery_rescheduled"):
        pains = [p for p in pains if p.id != "delivery"]
    return Classification(
        language="und", sentiment=_NEUTRAL, satisfaction_gap=None,
        pain_points=pains, taxonomy_version=taxonomy.version,
    ).to_dict()
