"""Normalise a validated event into plain data the rest of the pipeline uses."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any, Mapping

from ..core.timeparse import parse_timestamp

TIMESTAMP_FIELDS = (
    "occurred_at",
    "promised_delivery_at",
    "promised_response_by",
    "promised_resolution_by",
    "promised_callback_at",
    "promised_refund_by",
    "signup_at",
)


@dataclass(frozen=True)
class Event:
    """A validated event.

    ``event`` is the original object exactly as received; ``times`` holds every
    timestamp field present, as UTC epoch seconds; ``text`` is NFC-normalised
    and stripped (``None`` when absent or blank).
    """

    kind: str
    event_id: str
    customer_id: str
    occurred_at: float
    event: dict[str, Any]
    times: dict[str, float]
    text: str | None
    language: str | None


def normalise(kind: str, event: dict[str, Any], fallback_time: float | None = None) -> Event:
    times: dict[str, float] = {}
    for name in TIMESTAMP_FIELDS:  # a loop, not a comprehension: one lookup per field
        value = event.get(name)
        if isinstance(value, str):
            times[name] = parse_timestamp(value)
    occurred = times.get("occurred_at", fallback_time if fallback_time is not None else 0.0)
    text, language = text_and_language(event)
    return Event(
        kind=kind,
        event_id=str(event.get("event_id") or f"profile-{event['customer_id']}"),
        customer_id=event["customer_id"],
        occurred_at=occurred,
        event=event,
        times=times,
        text=text or None,
        language=language,
    )


def text_and_language(event: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The event's ``text`` NFC-normalised and stripped, and its ``language`` lower-cased (each
    ``None`` when not a string): what :func:`normalise` gives the classifier."""
    raw_text, language = event.get("text"), event.get("language")
    return (unicodedata.normalize("NFC", raw_text).strip() if isinstance(raw_text, str) else None,
            language.lower() if isinstance(language, str) else None)
