"""The consumed record as the pure stage logic sees it: no Faust, no Kafka client types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class Record:
    """One record as consumed: its topic, partition and offset, its raw key and value, and its Kafka
    record time (epoch seconds; ``None`` when there is none).  Stage 1's processor
    (:class:`pipeline.process.Processor`) and the stage-2 driver (:mod:`pipeline.drivers.stage2`,
    as ``In``) take it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None  # Kafka record time, epoch seconds


def json_object(value: bytes | None) -> dict[str, Any] | None:
    """A record value decoded as a JSON object, or ``None`` (empty, not JSON, not an object)."""
    try:
        doc = orjson.loads(value) if value else None
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None
