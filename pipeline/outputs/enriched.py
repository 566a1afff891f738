"""Enriched events: the original event + kind, segment, processing metadata."""

from __future__ import annotations

from typing import Any

from ..ingest.normalise import Event
from ..ingest.timeparse import format_timestamp

SCHEMA_VERSION = 1


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
) -> dict[str, Any]:
    processing: dict[str, Any] = {
        "source_topic": source_topic,
        "partition": partition,
        "offset": offset,
        "processed_at": format_timestamp(processed_at),
        "rekeyed": rekeyed,
    }
    if ingested_at is not None:
        processing["ingested_at"] = format_timestamp(ingested_at)
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": ev.event_id,
        "kind": ev.kind,
        "customer_id": ev.customer_id,
        "occurred_at": format_timestamp(ev.occurred_at),
        "event": ev.event,
        "segment": segment,
        "processing": processing,
        "classification": classification,
        "risk": risk,
    }
