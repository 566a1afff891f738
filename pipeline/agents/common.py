"""Small helpers shared by the agents (Faust-facing, no business logic)."""

from __future__ import annotations

import logging
from typing import Any, Callable

from aiokafka.partitioner import murmur2

from ..metrics import Metrics

log = logging.getLogger("pipeline.agent")


def partition_of(key: str, partitions: int) -> int:
    """The partition the default Kafka partitioner (murmur2) gives ``key``: as for producers and changelogs."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def send_callback(metrics: Metrics, counters: dict[str, int]) -> Callable[[Any], None]:
    def on_sent(fut: Any) -> None:
        if fut.cancelled() or fut.exception() is not None:
            counters["send_failed"] = counters.get("send_failed", 0) + 1
            metrics.errors.labels("produce").inc()
            log.error("produce failed", extra={"error": "cancelled" if fut.cancelled() else repr(fut.exception())})

    return on_sent


class Sender:
    """Produces raw records through the app's producer; offsets commit only after a flush.

    With ``processing_guarantee="exactly_once"`` the app's producer is Faust's
    transaction manager: records, changelog writes and offsets commit atomically.
    """

    def __init__(self, app: Any, metrics: Metrics, counters: dict[str, int]) -> None:
        self.app = app
        self.metrics = metrics
        self.on_sent = send_callback(metrics, counters)

    async def send(self, topic: str, key: bytes, value: bytes, partition: int | None = None,
                   kind: str | None = None) -> None:
        """``kind``: the input event kind that caused the record (metrics label; None = internal)."""
        producer = await self.app.maybe_start_producer()
        fut = await producer.send(topic, key, value, partition, None, None)
        fut.add_done_callback(self.on_sent)
        self.metrics.record_produced(topic, kind)


def json_table(app: Any, name: str, partitions: int, help: str) -> Any:
    """A table keyed by ``str`` with orjson values, its changelog partitioned by the key partitioner.

    ``use_partitioner``: the changelog partition is chosen by the producer's key
    partitioner (murmur2, as for the keyed source topics), so a table write is
    correct outside the per-event stream context (batched writes).  Faust derives
    serializers from the types and builds the changelog topic eagerly, so both the
    table's and the changelog topic's serializers are set here (reading the
    changelog back with other codecs than it was written with breaks recovery).
    """
    table = app.Table(name, key_type=str, partitions=partitions, use_partitioner=True, help=help)
    table.key_serializer, table.value_serializer = "raw", "orjson"
    topic = table.changelog_topic
    for obj in (topic, topic.schema):
        obj.key_serializer, obj.value_serializer = "raw", "orjson"
    return table


def partition_meta_key(partition: int, partitions: int) -> str:
    """A table key that the murmur2 partitioner maps to ``partition``: the partition's own metadata.

    Agents keep per-partition bookkeeping (clocks, watermarks) in their table under
    this key, so it is restored from the changelog with the partition's other keys.
    Keys start with ``"\\x00"``, never a customer id or a ``dimension=value`` key.
    """
    i = 0
    while True:
        key = f"\x00partition/{partition}/{i}"
        if partition_of(key, partitions) == partition:
            return key
        i += 1


def is_meta_key(key: str) -> bool:
    return key.startswith("\x00")


async def flush(app: Any) -> None:
    """Wait until every record produced so far is acknowledged by the broker.

    Called before a batch's table writes: a table value in the changelog then
    implies the batch's outputs are in Kafka too, which is what lets a restarted
    worker skip records whose state it finds already applied.
    """
    producer = await app.maybe_start_producer()
    await producer.flush()


class StallGuard:
    """Re-seeks input partitions whose fetched records never reach the agent (a Faust rebalance bug).

    Seen on faust-streaming with two rebalances in quick succession (a worker
    restarted right after a ``kill -9``, before the dead member's session
    expired): records fetched around the second rebalance are dropped with the
    cleared stream queues and the fetch position is not moved back, so the
    partition stalls — nothing processed, nothing committed, the consumer
    position at the end of the log, the worker healthy and idle.

    :meth:`check` (called from a timer) looks, per assigned partition of
    ``topics``, at the agent's next offset to process: if records exist beyond
    it (high watermark) and it has not moved for ``checks`` consecutive calls,
    the partition is sought back to it, which re-delivers the records.  Records
    delivered twice this way are recognised by the agents' idempotence checks.
    """

    def __init__(self, app: Any, topics: set[str], processed: dict[tuple[str, int], int], metrics: Metrics,
                 checks: int = 6) -> None:
        self.app, self.topics, self.processed, self.metrics, self.checks = app, topics, processed, metrics, checks
        self._seen: dict[Any, tuple[int, int]] = {}  # tp -> (next offset, consecutive checks)

    def next_offset(self, tp: Any) -> int | None:
        nxt = self.processed.get((tp.topic, tp.partition))
        if nxt is None:
            nxt = self.app.consumer._committed_offset.get(tp)
        return nxt

    async def check(self) -> None:
        consumer = self.app.consumer
        try:
            assigned = list(consumer.assignment())
        except Exception:  # not started / rebalancing
            return
        for tp in assigned:
            if tp.topic not in self.topics:
                continue
            nxt = self.next_offset(tp)
            try:
                high = consumer.highwater(tp)
            except Exception:
                high = None
            if nxt is None or high is None or high <= nxt:
                self._seen.pop(tp, None)
                continue
            last, count = self._seen.get(tp, (None, 0))
            count = count + 1 if last == nxt else 1
            if count < self.checks:
                self._seen[tp] = (nxt, count)
                continue
            self._seen.pop(tp, None)
            log.warning("re-seeking a stalled partition", extra={"topic": tp.topic, "partition": tp.partition,
                                                                 "offset": nxt})
            self.metrics.errors.labels("stalled_partition_reseek").inc()
            await consumer.seek(tp, nxt)
