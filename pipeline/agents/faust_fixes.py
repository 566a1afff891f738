"""Three corrections to faust-streaming 0.15.3's consumer and producer, applied once at app build.

1. **A seek is not undone by records fetched before it** (:func:`seek_epochs`).
   Faust's fetch loop (``Consumer._drain_messages``) hands over a fetched batch
   record by record while other coroutines run; ``perform_seek`` (after table
   recovery, and whenever the fetch loop finds the flow stopped) moves aiokafka's
   position back to the committed offsets and sets Faust's read offset to them.
   Records of a batch fetched *before* the seek but handed over *after* it then
   move the read offset forward again, and the re-fetched range that follows is
   dropped as "already read".  Seen here after every few ``kill -9`` restarts:
   right after "Seek stream partitions to committed offsets" the next record on
   every partition was 4 to 16 offsets past the committed one, and that range
   never reached an agent.  The fix counts seeks; a batch fetched under an older
   count is abandoned (its records are fetched again from the new position).

2. **A jump in offsets is never committable by itself** (:func:`verified_gaps`).
   Faust records any jump it sees in a partition's offsets as a "gap" that is
   committed as soon as a record past it is acknowledged — meant for compaction
   and transaction markers, it also commits a range that was dropped by (1).  The
   fetch loop's gaps are ignored here; :class:`~pipeline.agents.common.InputGuard`
   asks Kafka whether a range exists and registers it (``add_verified_gap``) only
   when it does not.

3. **Idempotent producer, ``acks=all``** (:func:`durable_producer`): Faust sets both
   only in its transactional mode.  With idempotence a retried batch is written
   once and in order, so a broker fail-over neither duplicates nor reorders
   outputs and changelog writes.

4. **aiokafka's metadata race on send** (:func:`metadata_race`).  ``AIOKafkaProducer.send``
   waits for the topic's metadata, then looks the partitions up again; a metadata
   refresh in between can leave the topic out, and ``send`` raises ``TypeError``
   (``list(None)``) before the record is queued.  Seen in CI on a worker's first
   batch right after start (a changelog write flushed by the agent).  The send is
   retried while the topic's partitions are missing — safe, nothing was queued — and
   a topic that stays missing still fails (``UnknownTopicOrPartitionError`` after the
   request timeout: a deleted topic stops the worker).
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Awaitable, Callable

_APPLIED: set[str] = set()


def apply() -> None:
    """Idempotent: each correction is installed once per process."""
    for fix in (seek_epochs, verified_gaps, durable_producer, metadata_race):
        if fix.__name__ not in _APPLIED:
            fix()
            _APPLIED.add(fix.__name__)


def seek_epochs() -> None:
    from faust.transport.consumer import Consumer

    original_getmany = Consumer.getmany
    original_perform_seek = Consumer.perform_seek

    def getmany(self: Any, timeout: float) -> AsyncIterator[Any]:
        return until_next_seek(lambda: original_getmany(self, timeout),
                               lambda: getattr(self, "_pipeline_seek_epoch", 0))

    async def perform_seek(self: Any) -> None:
        # counted before and after: a fetch that started in between may predate the seek too
        self._pipeline_seek_epoch = getattr(self, "_pipeline_seek_epoch", 0) + 1
        try:
            await original_perform_seek(self)
        finally:
            self._pipeline_seek_epoch += 1

    Consumer.getmany = getmany  # type: ignore[method-assign]
    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]


async def until_next_seek(fetch: Callable[[], AsyncIterator[Any]], epoch: Callable[[], int]) -> AsyncIterator[Any]:
    """The records of one fetch, cut off at the first seek that happens while they are handed over.

    The count is taken when the fetch returns its first record: a seek that ran
    while the fetch was waiting on the consumer thread came before these records
    (aiokafka itself discards data fetched from a position a seek replaced), but
    a seek while they are handed over makes the rest stale — it rewound the
    position they came from, and they are fetched again.
    """
    start: int | None = None
    async for item in fetch():
        now = epoch()
        if start is None:
            start = now
        elif now != start:
            break  # fetched before a seek: fetched again from the new position
        yield item


def verified_gaps() -> None:
    from faust.transport.consumer import Consumer

    original_add_gap = Consumer._add_gap

    async def ignore_unverified_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
        return None

    async def add_verified_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
        """Offsets ``offset_from..offset_to`` (inclusive) do not exist: let commits pass over them."""
        await original_add_gap(self, tp, offset_from, offset_to)

    Consumer._add_gap = ignore_unverified_gap  # type: ignore[method-assign]
    Consumer.add_verified_gap = add_verified_gap  # type: ignore[attr-defined]


def durable_producer() -> None:
    from faust.transport.drivers import aiokafka as driver

    def settings_extra(self: Any) -> Any:
        return {"acks": "all", "enable_idempotence": True}

    driver.Producer._settings_extra = settings_extra  # type: ignore[method-assign]


async def retry_metadata_race(send: Callable[[], Awaitable[Any]], partitions_known: Callable[[], bool],
                              attempts: int = 5, backoff: float = 0.2) -> Any:
    """``send()``, again when it raised ``TypeError`` while the topic's partitions were unknown."""
    for attempt in range(attempts):
        try:
            return await send()
        except TypeError:
            if partitions_known() or attempt == attempts - 1:
                raise
            await asyncio.sleep(backoff * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def metadata_race() -> None:
    from aiokafka import AIOKafkaProducer

    original_send = AIOKafkaProducer.send

    async def send(self: Any, topic: str, *args: Any, **kwargs: Any) -> Any:
        return await retry_metadata_race(lambda: original_send(self, topic, *args, **kwargs),
                                         lambda: self.client.cluster.partitions_for_topic(topic) is not None)

    AIOKafkaProducer.send = send  # type: ignore[method-assign]
