"""What the stage-1 edge reads of Kafka for its driver (:mod:`pipeline.drivers.stage1`): the
consumer's view (end offsets, committed offsets, the gap guard's next expected offsets) and, for a
partition new to this worker, what a previous owner already sent."""

from __future__ import annotations

import faust
from faust.types import TP

from ..config import Settings
from ..drivers.stage1 import Recovery
from ..outputs.emitted import load_ids, recent_event_ids
from ..outputs.frontier import committed_offsets, load_frontier
from .common import InputGuard
from .faust_fixes import partition_state


class ConsumerView:
    """:class:`~pipeline.drivers.stage1.KafkaView` over Faust's consumer and the gap guard."""

    def __init__(self, app: faust.App, gaps: InputGuard) -> None:
        self.app, self.gaps = app, gaps

    def highwater(self, topic: str, partition: int) -> int | None:
        return self.app.consumer.highwater(TP(topic, partition))

    def committed(self, topic: str, partition: int) -> int:
        return self.app.consumer._committed_offset.get(TP(topic, partition)) or 0

    def expected(self, topic: str, partition: int) -> int | None:
        return self.gaps.check.expected.get((topic, partition))

    def fetched(self, topic: str, partition: int) -> tuple[int | None, int | None]:
        """aiokafka's position (the next offset to fetch, past control records) and the offset of the
        last record Faust put on the stream; ``None`` where unknown."""
        tp = TP(topic, partition)
        try:
            state = partition_state(self.app.consumer._thread._ensure_consumer(), tp)  # type: ignore[attr-defined]
            position = None if state is None else state.position
        except Exception:  # consumer not started, no position yet
            position = None
        return position, self.app.consumer._read_offset.get(tp)


def read_back(settings: Settings, record_topics: list[str], p: int) -> Recovery:
    """Blocking reads (run in an executor): the committed input offsets of partition ``p``, what the
    partials topic already counted past them, the enriched event ids, the alert ids and the dead-letter
    ids already sent."""
    t = settings.topics
    offsets = committed_offsets(settings, record_topics, p)
    frontier = load_frontier(settings, settings.partials_topic, p, offsets)
    tail = settings.recovery_tail_records
    written = recent_event_ids(settings, t.enriched, p, offsets, 2000, 120.0, tail)
    alert_ids: set[str] = set()
    for topic in (t.alerts_commitments, t.alerts_churn):
        alert_ids |= load_ids(settings, topic, p, "alert_id", 60.0, tail)
    # a dead letter is keyed like its record: on partition p where the producer used Kafka's default
    # partitioner and the topics have the same partition count (else a re-read may send it twice)
    alert_ids |= load_ids(settings, t.deadletter, p, "dead_letter_id", 60.0, tail)
    return Recovery(offsets, frontier, set(written or ()), alert_ids)
