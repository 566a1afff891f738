"""The console's Kafka edges: a reader that keeps the inbox and trends current, and the writer of
operator actions (issue 19).

* :class:`Feed` reads the three alert topics, ``alerts.actions`` and ``aggregates.pain-points``
  from the beginning of every partition (assigned, no consumer group: each console instance has
  its own complete view, and several can run side by side) and keeps following them.  A record
  that is not JSON or not an object is skipped and counted (``skipped``), never fatal.
* :class:`ActionWriter` writes one record per action to ``alerts.actions`` (``acks=all``,
  idempotent producer), keyed by ``alert_id``, on the partition of the alert's subject key
  (customer id, or ``dimension=value``) under the pipeline's partitioner, so the worker can read
  actions co-partitioned with its customers.  :meth:`ActionWriter.write` returns once the broker
  acknowledged the record: an action the console shows as done is in Kafka.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from ..cases.inbox import Inbox
from ..core.records import json_object
from ..cases.lifecycle import case_of
from ..cases.trends import Trends
from ..config import Settings
from ..core.keys import partition_of
from ..kafka_security import aiokafka_kwargs

log = logging.getLogger("pipeline.console")


class Feed:
    def __init__(self, settings: Settings, inbox: Inbox, trends: Trends) -> None:
        t = settings.topics
        self.settings, self.inbox, self.trends = settings, inbox, trends
        self.alert_topics = (t.alerts_churn, t.alerts_commitments, t.alerts_pain_points)
        self.topics = (*self.alert_topics, t.alert_actions, t.aggregates)
        self.skipped = 0
        self.records = 0
        self.ready = asyncio.Event()  # the ends seen at start were read
        self._task: asyncio.Task[None] | None = None
        self._consumer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        self._consumer = AIOKafkaConsumer(**aiokafka_kwargs(self.settings), enable_auto_commit=False,
                                          auto_offset_reset="earliest", client_id=f"{self.settings.app_id}-console")
        await self._consumer.start()
        parts = []
        for topic in self.topics:
            for p in sorted(await self._partitions(topic)):
                parts.append(TopicPartition(topic, p))
        self._consumer.assign(parts)
        await self._consumer.seek_to_beginning(*parts)
        ends = await self._consumer.end_offsets(parts)
        self._task = asyncio.ensure_future(self._run({tp: end for tp, end in ends.items() if end > 0}))

    async def _partitions(self, topic: str) -> set[int]:
        for _ in range(50):
            parts = self._consumer.partitions_for_topic(topic)
            if parts:
                return set(parts)
            await self._consumer._client.force_metadata_update()  # a topic created a moment ago
            await asyncio.sleep(0.1)
        raise RuntimeError(f"topic {topic} not found: create the pipeline's topics first (python -m pipeline topics)")

    async def _run(self, ends: dict[Any, int]) -> None:
        pending = dict(ends)
        if not pending:
            self.ready.set()
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=2000)
            for tp, records in batches.items():
                for rec in records:
                    self._apply(tp.topic, rec.value)
                if tp in pending and records[-1].offset + 1 >= pending[tp]:
                    del pending[tp]
            if pending:
                continue
            self.ready.set()

    def _apply(self, topic: str, value: bytes | None) -> None:
        doc = json_object(value)
        if doc is None:
            self.skipped += 1
            return
        self.records += 1
        try:
            if topic in self.alert_topics:
                self.inbox.add_alert(doc, topic)
            elif topic == self.settings.topics.alert_actions:
                self.inbox.add_case(case_of(doc))
            else:
                self.trends.add_final(doc)
        except (KeyError, TypeError, ValueError):
            self.skipped += 1

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()


class ActionWriter:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.topics.alert_actions
        self._producer: Any = None
        self._partitions = settings.partitions

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        self._producer = AIOKafkaProducer(**aiokafka_kwargs(self.settings), acks="all", enable_idempotence=True,
                                          client_id=f"{self.settings.app_id}-console-actions")
        await self._producer.start()
        parts = await self._producer.partitions_for(self.topic)
        self._partitions = len(parts) or self.settings.partitions

    async def write(self, alert_id: str, subject_key: str | None, doc: dict[str, Any]) -> None:
        partition = partition_of(subject_key or alert_id, self._partitions)
        fut = await self._producer.send(self.topic, orjson.dumps(doc), key=alert_id.encode(), partition=partition)
        await fut

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
