"""Which output ids are already on a topic partition (idempotent output after a crash).

Under at-least-once processing, a worker killed after producing an alert but
before committing its input offsets re-processes those inputs after the restart
and would emit the same (deterministic) ``alert_id`` again.  Before a worker
emits on a partition for the first time, it reads the ids already written to
that partition of the output topic and skips them.  Output topics are keyed
like their source, so the partition numbers match.
"""

from __future__ import annotations

from typing import Mapping

import orjson

from ..config import Settings


def load_ids(settings: Settings, topic: str, partition: int, field: str, timeout: float = 60.0,
             tail: int | None = None) -> set[str]:
    """Ids (``field``) on one partition of ``topic``; only the last ``tail`` records if given."""
    from kafka import TopicPartition

    from ..kafka_security import consumer as make_consumer
    from .frontier import read_backwards

    tp = TopicPartition(topic, partition)
    consumer = make_consumer(settings, enable_auto_commit=False, isolation_level="read_committed")
    ids: set[str] = set()
    try:
        consumer.assign([tp])
        begin, end = consumer.beginning_offsets([tp])[tp], consumer.end_offsets([tp])[tp]
        consumer.seek(tp, begin if tail is None else max(begin, end - tail))
        import time

        deadline = time.monotonic() + timeout
        while consumer.position(tp) < end and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500, max_records=5000).values():
                for r in records:
                    try:
                        value = orjson.loads(r.value)[field]
                    except (orjson.JSONDecodeError, KeyError, TypeError):
                        continue
                    ids.add(str(value))
    finally:
        consumer.close()
    return ids


def recent_event_ids(settings: Settings, topic: str, partition: int, committed: Mapping[str, int],
                     chunk: int = 2000, timeout: float = 120.0, limit: int | None = None) -> set[str]:
    """``event_id``s of the enriched records written after the last commit of ``committed`` offsets.

    Reads ``topic``/``partition`` backwards in chunks and stops at the first
    record (newest first) processed before that commit: one whose source offset
    (``processing.offset`` of ``processing.source_topic``) is below the committed
    offset of its topic.  Records of re-keyed events carry their original
    coordinates and do not decide the stop; ``limit`` bounds the read anyway.
    Everything older is covered by the committed offsets, so the cost is bounded
    by the uncommitted window, not by the topic's history.
    """
    import time

    from kafka import TopicPartition

    from ..kafka_security import consumer as make_consumer
    from .frontier import read_backwards

    tp = TopicPartition(topic, partition)
    consumer = make_consumer(settings, enable_auto_commit=False, isolation_level="read_committed")
    ids: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        begin, hi = consumer.beginning_offsets([tp])[tp], consumer.end_offsets([tp])[tp]
        floor = begin if limit is None else max(begin, hi - limit)
        for r in read_backwards(consumer, tp, floor, hi, chunk, deadline):
            try:
                doc = orjson.loads(r.value)
                proc = doc["processing"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
            if not proc.get("rekeyed"):
                source, offset = proc.get("source_topic"), proc.get("offset")
                if source in committed and isinstance(offset, int) and offset < committed[source]:
                    break
            if isinstance(doc.get("event_id"), str):
                ids.add(doc["event_id"])
    finally:
        consumer.close()
    return ids
