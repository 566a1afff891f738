"""The consumed record as the pure stage logic sees it: no Faust, no Kafka client types."""

from __future__ import annotations

from dataclasses import dataclass


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
