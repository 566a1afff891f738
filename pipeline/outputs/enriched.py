"""Enriched events: the original event + kind, segment, processing metadata.

Personal data in the free-text fields (the event's text, the classification's
evidence) is masked on the way out (:mod:`pipeline.core.redact`, on by
default); the classification itself ran on the original text.
"""

from __future__ import annotations

from typing import Any

from ..ingest.normalise import Event
from ..core.timeparse import format_timestamp
from ..core.redact import Redactor, default_redactor

SCHEMA_VERSION = 2  # issue 20: classification.sentiment.source (schemas/v1 holds version 1)


def enriched_event(
    ev: Event,
    *,
    segment: dict[str, Any],
    source_topic: str,
    partition: int,
    offset: int,
    ingested_at: float | None,
    processed_at: float,
    rekeyed: bool = False,
    classification: dict[str, Any] | None = None,
    risk: dict[str, Any] | None = None,
    redactor: Redactor | None = None,
    order: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``order``: for a feedback or complaint naming an order the customer's state remembers, that
    order's seller, categories, carrier and region (:func:`~pipeline.segment.customer.order_context`),
    so its pain points count under them (:mod:`pipeline.aggregate.dimensions`); omitted otherwise."""
    processing: dict[str, Any] = {
        "source_topic": source_topic,
        "partition": partition,
        "offset": offset,
        "processed_at": format_timestamp(processed_at),
        "rekeyed": rekeyed,
    }
    if ingested_at is not None:
        processing["ingested_at"] = format_timestamp(ingested_at)
    redactor = redactor or default_redactor()
    event = ev.event
    if redactor.enabled:
        event = redactor.event(ev.event)
        classification = redactor.classification(classification, ev.text)
    doc = {
        "schema_version": SCHEMA_VERSION,
        "event_id": ev.event_id,
        "kind": ev.kind,
        "customer_id": ev.customer_id,
        "occurred_at": format_timestamp(ev.occurred_at),
        "event": event,
        "segment": segment,
        "processing": processing,
        "classification": classification,
        "risk": risk,
    }
    if order is not None:
        doc["order"] = order
    return doc
