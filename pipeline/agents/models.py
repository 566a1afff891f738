"""Every worker follows the self-trained sentiment models (issue 20; :mod:`pipeline.classify.selftrain`).

The trainer (``python -m pipeline self-train``) publishes the newest accepted model of each
language to the compacted topic ``<app_id>-sentiment-models`` (key: language). A worker reads the
whole topic before it joins the group (:func:`load_models`), so its first record is classified with
the current models, then follows the topic outside the consumer group (every worker reads every
record: this is a broadcast, not a partitioned stream) and swaps a language's model between two
records of a batch. The registry keeps a version only if it is newer than the one held, so a
re-read, a duplicate or a reordered delivery never goes back to an older model. A broken record is
skipped with a warning; a broker outage only delays updates (the follower retries every few
seconds) and never stops the worker.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from ..classify.selftrain import ModelRegistry
from ..config import Settings
from ..kafka_security import aiokafka_kwargs
from ..metrics import Metrics
from ..summary import read_topic
from ..topics import MODEL_MAX_BYTES

log = logging.getLogger("pipeline.models")
RETRY_SECONDS = 5.0


def apply_record(registry: ModelRegistry, key: bytes | None, value: bytes | None, metrics: Metrics | None = None) -> None:
    language = registry.apply(key, value)
    if language is not None and metrics is not None:
        metrics.learned_models(registry.versions())
    if language is not None:
        log.info("sentiment model applied", extra={"language": language,
                                                   "version": registry.versions().get(language, "withdrawn")})
    elif value is not None:
        log.debug("sentiment model record skipped (stale, duplicate or invalid)")


def load_models(settings: Settings, registry: ModelRegistry, metrics: Metrics | None = None) -> None:
    """Blocking: every model on the topic now (the worker calls it before it joins the group)."""
    for key, value in read_topic(settings, settings.sentiment_models_topic):
        apply_record(registry, key, value, metrics)


async def follow(settings: Settings, registry: ModelRegistry, stop: asyncio.Event | None = None,
                 metrics: Metrics | None = None) -> None:
    """Apply every later model record until ``stop`` (or the task is cancelled)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    while stop is None or not stop.is_set():
        consumer: Any = AIOKafkaConsumer(**aiokafka_kwargs(settings), group_id=None, enable_auto_commit=False,
                                         auto_offset_reset="earliest", max_partition_fetch_bytes=MODEL_MAX_BYTES,
                                         fetch_max_bytes=MODEL_MAX_BYTES)
        try:
            await consumer.start()
            parts = consumer.partitions_for_topic(settings.sentiment_models_topic) or {0}
            consumer.assign([TopicPartition(settings.sentiment_models_topic, p) for p in sorted(parts)])
            await consumer.seek_to_beginning()
            while stop is None or not stop.is_set():
                batches = await consumer.getmany(timeout_ms=1000, max_records=100)
                for records in batches.values():
                    for rec in records:
                        apply_record(registry, rec.key, rec.value, metrics)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the broker is away: models only wait, records keep being classified
            log.warning("sentiment model follower retrying", extra={"error": type(exc).__name__})
            await asyncio.sleep(RETRY_SECONDS)
        finally:
            await consumer.stop()


def register(app: faust.App, settings: Settings, registry: ModelRegistry, metrics: Metrics) -> None:
    @app.task
    async def follow_sentiment_models() -> None:
        """The self-trained sentiment models, on every worker (module docstring)."""
        await follow(settings, registry, metrics=metrics)
