"""What a stage-1 partition has already sent to the partials topic (exact aggregates after a crash).

Stage 1 pre-aggregates a batch into one *partial* per ``"dimension=value"`` key
and sends it to the partials topic before it commits the batch's input offsets.
A worker killed in between re-processes those inputs after the restart; without
care their counts would reach stage 2 twice.

Every partial carries ``"src"`` (the stage-1 partition) and ``"upto"``: for each
input topic, the last offset of that partition the sender had processed when it
sent the partial.  Partials of one key from one source land on one partials
partition in the order they were sent, so the *last* partial of key ``k`` from
source ``p`` is a frontier: every event of ``p`` at or below ``upto[topic]``
that touches ``k`` is already counted.  Before a worker processes a partition
for the first time it reads that frontier back (:func:`load_frontier`) and
leaves out of its partials every event at or below it.

The read goes backwards from the end of each partials partition and stops at the
first partial of ``p`` sent before any uncommitted input was processed (all its
``upto`` below the committed offsets): everything older is covered by the
committed offsets already.  So its cost is bounded by the uncommitted window,
not by the topic's history.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from ..config import Settings

Frontier = dict[str, dict[str, int]]  # key -> topic -> last offset counted
CHUNK = 2000


def committed_offsets(settings: Settings, topics: list[str], partition: int) -> dict[str, int]:
    """The consumer group's committed offsets of ``partition`` of each topic (0 if none).

    Read with the admin API (OffsetFetch), never by a consumer in the group.
    """
    done = group_offsets(settings)
    return {topic: done.get((topic, partition), 0) for topic in topics}


def group_offsets(settings: Settings) -> dict[tuple[str, int], int]:
    """Every committed offset of the consumer group, by (topic, partition) (admin API)."""
    from ..kafka_security import admin_client

    admin = admin_client(settings)
    try:
        committed = admin.list_group_offsets(settings.app_id).get(settings.app_id, {})
    finally:
        admin.close()
    return {(tp.topic, tp.partition): max(0, int(meta.offset or 0)) for tp, meta in committed.items()}


def _is_older(upto: Mapping[str, int] | None, committed: Mapping[str, int]) -> bool:
    """True when a partial was sent before any input past ``committed`` was processed."""
    if not isinstance(upto, Mapping):
        return True  # a partial without offsets predates this scheme
    return all(int(upto.get(topic, -1)) < offset for topic, offset in committed.items())


def read_backwards(consumer: Any, tp: Any, floor: int, hi: int, chunk: int, deadline: float) -> Iterator[Any]:
    """Records of ``tp`` in ``[floor, hi)``, newest first, fetched ``chunk`` at a time (stop early by
    leaving the loop).  ``consumer`` is a kafka-python consumer; ``deadline`` a ``time.monotonic()``."""
    import time

    while hi > floor:
        lo = max(floor, hi - chunk)
        consumer.assign([tp])
        consumer.seek(tp, lo)
        records = []
        while consumer.position(tp) < hi:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading back {tp.topic} took longer than its deadline")
            for batch in consumer.poll(timeout_ms=500, max_records=chunk).values():
                records.extend(r for r in batch if r.offset < hi)
        yield from reversed(records)
        hi = lo


def load_frontier(settings: Settings, partials_topic: str, source: int, committed: Mapping[str, int],
                  chunk: int = CHUNK, timeout: float = 120.0) -> Frontier:
    """``{key: {topic: offset}}``: the newest ``upto`` of every key source ``source`` sent after ``committed``."""
    import time

    from kafka import TopicPartition

    from ..kafka_security import consumer as make_consumer

    consumer = make_consumer(settings, enable_auto_commit=False, isolation_level="read_committed")
    frontier: Frontier = {}
    deadline = time.monotonic() + timeout
    try:
        parts = consumer.partitions_for_topic(partials_topic) or set()
        tps = [TopicPartition(partials_topic, q) for q in sorted(parts)]
        if not tps:
            return frontier
        begins, ends = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        for tp in tps:
            for r in read_backwards(consumer, tp, begins[tp], ends[tp], chunk, deadline):
                try:
                    doc = orjson.loads(r.value)
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(doc, dict) or doc.get("src") != source:
                    continue
                upto = doc.get("upto")
                if _is_older(upto, committed):
                    break
                key = r.key.decode() if r.key else ""
                if key not in frontier:
                    frontier[key] = {str(t): int(o) for t, o in upto.items()}
    finally:
        consumer.close()
    return frontier


def first_offset_from(settings: Settings, topic: str, partition: int, offset: int,
                      timeout: float = 30.0) -> int | None:
    """The offset of the first record of ``topic``/``partition`` at or after ``offset`` (None: none yet).

    Answers whether a range an agent never saw exists (see :mod:`pipeline.delivery`):
    compaction, retention and transaction markers leave offsets that never come.
    Read by a consumer outside the group, never by the worker's own consumer.
    """
    import time

    from kafka import TopicPartition

    from ..kafka_security import consumer as make_consumer

    tp = TopicPartition(topic, partition)
    consumer = make_consumer(settings, enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        consumer.assign([tp])
        begin, end = consumer.beginning_offsets([tp])[tp], consumer.end_offsets([tp])[tp]
        start = max(offset, begin)
        if start >= end:
            return None
        consumer.seek(tp, start)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500, max_records=1).values():
                for r in batch:
                    if r.offset >= offset:
                        return int(r.offset)
            if consumer.position(tp) >= end:
                return None
        raise TimeoutError(f"reading {topic} from offset {offset} took longer than {timeout}s")
    finally:
        consumer.close()
