"""Enriched events: the original event + kind, segment, processing metadata.

Personal data in the free-text fields (the event's text, the classification's
evidence) is masked on the way out (:mod:`pipeline.core.redact`, on by
default); the classification itself ran on the original text.
"""

from __future__ import annotations

import math
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
        "processed_at": processing_timestamp(processed_at),
        "rekeyed": rekeyed,
    }
    if ingested_at is not None:
        processing["ingested_at"] = processing_timestamp(ingested_at)  # the record's time: also new per event
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


def processing_timestamp(epoch: float) -> str:
    """``format_timestamp(epoch)`` of a wall-clock or record time: a new one for nearly every event, so not put in
    ``format_timestamp``'s cache (it would push out the event times kept there); its second is remembered.

    As ``datetime.fromtimestamp``: the fraction of the second rounded half-even to microseconds, a
    rounding up to a whole second carried; then truncated to milliseconds.  The last few are remembered
    (a clock that stands still, as in replays and tests).
    """
    last = _LAST.get(epoch)
    if last is not None:
        return last
    text = _format_wall_clock(epoch)
    if len(_LAST) >= 4:
        _LAST.clear()
    _LAST[epoch] = text
    return text


def _format_wall_clock(epoch: float) -> str:
    """:func:`processing_timestamp` without the last ones remembered."""
    if type(epoch) is float and 0.0 <= epoch < _LATEST:
        fraction, whole = math.modf(epoch)
        micros = round(fraction * 1e6)
        if micros >= 1_000_000:
            whole, micros = whole + 1.0, micros - 1_000_000
        second = _SECONDS.get(whole)
        if second is None:
            if len(_SECONDS) >= 64:
                _SECONDS.clear()
            second = _SECONDS[whole] = format_timestamp(whole)[:-5]
        return f"{second}.{micros // 1000:03d}Z"
    return format_timestamp(epoch)


_LATEST = 253402300799.0  # 9999-12-31T23:59:59Z: later times are left to format_timestamp
_LAST: dict[float, str] = {}  # the last epochs formatted (up to 4) -> their texts
_SECONDS: dict[float, str] = {}  # whole epoch second -> "YYYY-MM-DDTHH:MM:SS"; cleared when full
