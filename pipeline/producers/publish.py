"""Publish ``(kind, event)`` pairs to the input topics with kafka-python.

The only module under :mod:`pipeline.producers` with a side effect.  Each
event goes to its kind's topic (``order`` -> ``settings.topics.orders``,
``complaint`` -> ``complaints``, ``feedback`` -> ``feedback``,
``customer_profile`` -> ``profiles``), keyed by its ``customer_id`` (UTF-8) so
all of a customer's events share a partition, serialised with orjson.  The
producer uses ``acks="all"`` (idempotent, kafka-python's default), ``linger_ms``
20 (1 when the rate is capped: a live feed), 256 KiB batches and no compression.  Sends are asynchronous; the
producer is flushed and closed at the end, and a failed delivery raises
:class:`PublishError` then (after everything else was flushed).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

import orjson
from kafka import KafkaProducer
from tqdm import tqdm

from pipeline.config import Settings
from pipeline.kafka_security import guarded, kafka_kwargs

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


class PublishError(RuntimeError):
    """At least one record was not acknowledged by the broker."""


def topic_for(kind: str, settings: Settings) -> str:
    """Input topic of an event kind; ``ValueError`` for an unknown kind."""
    topics = settings.topics
    mapping = {
        "order": topics.orders,
        "complaint": topics.complaints,
        "feedback": topics.feedback,
        "customer_profile": topics.profiles,
    }
    try:
        return mapping[kind]
    except KeyError:
        raise ValueError(f"unknown event kind {kind!r}") from None


PACED_LINGER_MS = 5
"""``publish(rate=...)``'s linger.  At 1 ms nearly every record was a request of its own: on a slow
2-core machine (2026-12-06) the paced publisher took 0.65 of a core and the broker 0.4 at 720
events/s, beside the worker it measures, and the bench's latency run fell behind (p99 0.3-5.9 s).
At 5 ms (what ``make bench``'s baseline and ``bench/peers.py`` use) the publisher took ~0.4 and the
broker ~0.3, p99 0.2-0.5 s.  The linger is inside the measured latency (a record's Kafka timestamp
is taken when it is sent)."""


def make_producer(settings: Settings, linger_ms: int = 20) -> Any:
    """A KafkaProducer for ``settings`` (bytes in, bytes out); ``linger_ms`` 20 batches bulk sends."""
    return guarded(settings, lambda: KafkaProducer(
        **kafka_kwargs(settings),  # bootstrap servers + KAFKA_SECURITY_PROTOCOL / SASL / TLS
        client_id=f"{settings.app_id}-producer",
        acks="all",
        linger_ms=linger_ms,
        batch_size=256 * 1024,
        compression_type=None,
        max_request_size=max(1024 * 1024, settings.max_event_bytes * 2),
    ), fail_fast=True)


class _Pacer:
    """Sleep so that the i-th send happens no earlier than ``i / rate`` s after start.

    A cap, not a schedule to catch up with: a sender that fell more than :data:`PACER_SLACK_SECONDS`
    behind (a send blocked on metadata, a pause of the process) resumes at ``rate`` from where it
    is instead of sending the missed records in one burst."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be > 0 events/s")
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self.start = clock()
        self.sent = 0

    def wait(self) -> None:
        if self.rate is not None:
            ahead = self.start + self.sent / self.rate - self.clock()
            if ahead > 0:
                self.sleep(ahead)
            elif ahead < -PACER_SLACK_SECONDS:
                self.start -= ahead + PACER_SLACK_SECONDS  # behind: the schedule moves, no burst
        self.sent += 1


PACER_SLACK_SECONDS = 0.2
"""How far a paced sender may fall behind its schedule and still catch up (sleep and scheduling jitter)."""


class _Errors:
    def __init__(self) -> None:
        self.count = 0
        self.first: BaseException | None = None

    def __call__(self, exc: BaseException) -> None:
        self.count += 1
        if self.first is None:
            self.first = exc


def _finish(producer: Any, errors: _Errors) -> None:
    try:
        producer.flush()
    finally:
        producer.close()
    if errors.count:
        raise PublishError(f"{errors.count} record(s) failed, first: {errors.first!r}") from errors.first


def publish(
    events: Iterable[tuple[str, dict]],
    settings: Settings,
    *,
    rate: float | None = None,
    total: int | None = None,
    progress: bool = True,
    desc: str = "",
) -> dict[str, int]:
    """Send every event to its kind's topic; return the number sent per kind.

    ``rate`` caps the send rate in events/s (sleeping, not spinning);
    ``total`` sizes the progress bar.  Raises ``ValueError`` for an unknown
    kind (events before it were sent and are flushed) and
    :class:`PublishError` if the broker rejected any record.
    """
    # paced: a short linger (PACED_LINGER_MS); at a capped rate there is little to batch, but one request per record costs
    producer = make_producer(settings) if rate is None else make_producer(settings, linger_ms=PACED_LINGER_MS)
    errors = _Errors()
    counts: dict[str, int] = {}
    if rate is not None:  # each topic's first send would wait for its metadata, behind the pace
        for topic in settings.topics.inputs:
            producer.partitions_for(topic)
    pacer = _Pacer(rate)
    try:
        with tqdm(total=total, desc=desc or "publish", unit="ev", disable=not progress) as bar:
            for kind, event in events:
                topic = topic_for(kind, settings)
                key = str(event["customer_id"]).encode("utf-8")
                pacer.wait()
                producer.send(topic, key=key, value=orjson.dumps(event)).add_errback(errors)
                counts[kind] = counts.get(kind, 0) + 1
                bar.update(1)
    finally:
        _finish(producer, errors)
    return counts


def publish_raw(topic: str, records: Iterable[tuple[bytes | None, bytes]], settings: Settings) -> int:
    """Send arbitrary ``(key, value)`` bytes to ``topic`` (e.g. invalid records); return the count."""
    producer = make_producer(settings)
    errors = _Errors()
    sent = 0
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value).add_errback(errors)
            sent += 1
    finally:
        _finish(producer, errors)
    return sent
