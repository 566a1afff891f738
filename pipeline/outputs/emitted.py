"""Which output ids are already on a topic partition (idempotent output after a crash).

Under at-least-once processing, a worker killed after producing an alert but
before committing its input offsets re-processes those inputs after the restart
and would emit the same (deterministic) ``alert_id`` again.  Before a worker
emits on a partition for the first time, it reads the ids already written to
that partition of the output topic and skips them.  Output topics are keyed
like their source, so the partition numbers match.
"""

from __future__ import annotations

import orjson

from ..config import Settings


def load_ids(settings: Settings, topic: str, partition: int, field: str, timeout: float = 60.0,
             tail: int | None = None) -> set[str]:
    """Ids (``field``) on one partition of ``topic``; only the last ``tail`` records if given."""
    from kafka import TopicPartition

    from ..kafka_security import consumer as make_consumer

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
