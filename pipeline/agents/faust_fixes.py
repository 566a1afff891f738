"""Corrections to faust-streaming 0.15.3's consumer and producer, applied once at app build.

1. **A jump in offsets is never committable by itself** (:func:`verified_gaps`).
   Faust records any jump it sees in a partition's offsets as a "gap" that is
   committed as soon as a record past it is acknowledged — meant for compaction
   and transaction markers, it also commits a range Faust's fetch loop dropped
   (a seek undone by records fetched before it: docs/reliability.md).  The
   fetch loop's gaps are ignored here; :class:`~pipeline.agents.common.InputGuard`
   asks Kafka whether a range exists and registers it (``add_verified_gap``) only
   when it does not.

2. **Idempotent producer, ``acks=all``** (:func:`durable_producer`): Faust sets both
   only in its transactional mode.  With idempotence a retried batch is written
   once and in order, so a broker fail-over neither duplicates nor reorders
   outputs and changelog writes.

3. **aiokafka's metadata race on send** (:func:`metadata_race`).  ``AIOKafkaProducer.send``
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
from typing import Any, Awaitable, Callable

_APPLIED: set[str] = set()


def apply() -> None:
    """Idempotent: each correction is installed once per process."""
    for fix in (verified_gaps, durable_producer, metadata_race):
        if fix.__name__ not in _APPLIED:
            fix()
            _APPLIED.add(fix.__name__)


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
