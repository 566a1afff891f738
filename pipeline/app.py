"""The Faust application: topics, tables, the ingest agent and web pages.

``build(settings)`` creates everything for one worker process.  Topology::

    events.orders ─┐
    events.complaints ─┤                    ┌─> events.enriched   (keyed by customer id)
    events.feedback ─┼─> agent ``ingest`` ──┼─> events.deadletter (invalid records)
    customers.profiles ─┤   table customers  └─> pipeline.events-rekeyed (wrongly keyed; consumed again)
    pipeline.events-rekeyed ─┘

All five source topics share one partition count and are keyed by customer id,
so partition *p* of every topic and of the ``customers`` table changelog holds
the same customers (co-partitioning); one worker owns all of them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import faust

from . import codec
from .config import Settings
from .metrics import Metrics
from .process import Processor, Record, Step
from .ingest.validate import Problem

log = logging.getLogger("pipeline.agent")


@dataclass
class Pipeline:
    app: faust.App
    processor: Processor
    customers: Any
    metrics: Metrics
    counters: dict[str, int] = field(default_factory=dict)


def make_faust_app(settings: Settings) -> faust.App:
    codec.register()
    return faust.App(
        settings.app_id,
        broker=settings.faust_broker,
        store=settings.store,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        processing_guarantee=settings.processing_guarantee,
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=8 * 1024 * 1024,
        producer_linger_ms=5,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_in_thread=False,
        table_cleanup_interval=30.0,
    )


def build(settings: Settings) -> Pipeline:
    app = make_faust_app(settings)
    t = settings.topics
    source = app.topic(
        *t.inputs, t.rekeyed, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
    )
    # use_partitioner: the changelog partition is chosen by the producer's key
    # partitioner (murmur2, as for the keyed input topics), so a table write is
    # correct outside the per-event stream context (batched writes).
    customers = app.Table(
        "customers", key_type=str, partitions=settings.partitions, use_partitioner=True,
        help="Per-customer profile and behaviour state.",
    )
    # Faust derives table serializers from the types; set ours before the
    # (lazily created) store and changelog topic are built.
    customers.key_serializer, customers.value_serializer = "raw", "orjson"
    processor = Processor(settings)
    metrics = Metrics()
    pipe = Pipeline(app=app, processor=processor, customers=customers, metrics=metrics)
    kind_of = {name: t.kind_of(name) or "internal" for name in (*t.inputs, t.rekeyed)}

    def observe(step: Step, topic: str, record_time: float | None, now: float) -> None:
        metrics.consumed.labels(topic, step.kind or kind_of.get(topic, "unknown")).inc()
        for out in step.outputs:
            metrics.produced.labels(out.topic).inc()
        for code in {p.code for p in step.problems}:
            metrics.deadletters.labels(code).inc()
        doc = step.enriched
        if doc is None:
            return
        if record_time:
            metrics.latency.labels("enriched").observe(max(0.0, now - record_time))
        c = doc.get("classification")
        if c:
            metrics.classified.labels(c["language"]).inc()
            seg = metrics.segment_labels(doc["segment"])
            for pp in c["pain_points"]:
                metrics.pain_points.labels(pp["id"]).inc()
                for dim, value in seg:
                    metrics.segment_pain_points.labels(dim, value, pp["id"]).inc()

    def run_step(rec: Record, get_state: Any) -> Step:
        try:
            return processor.process(rec, get_state)
        except Exception as exc:  # a bug must not stop the partition: dead-letter the record
            log.exception(
                "processing failed", extra={"topic": rec.topic, "partition": rec.partition, "offset": rec.offset}
            )
            metrics.errors.labels("process").inc()
            return processor.dead(rec, [Problem("processing_failed", repr(exc)[:500])], None, time.time())

    batch_size, batch_within = settings.batch_size, settings.batch_within_seconds

    def on_sent(fut: Any) -> None:
        if fut.cancelled() or fut.exception() is not None:
            pipe.counters["send_failed"] = pipe.counters.get("send_failed", 0) + 1
            metrics.errors.labels("produce").inc()
            log.error("produce failed", extra={"error": repr(fut.exception()) if not fut.cancelled() else "cancelled"})

    @app.agent(source, concurrency=1, name="ingest")
    async def ingest(stream: faust.StreamT) -> None:
        """Batches of records → steps; each customer's state is written once per batch."""
        producer = app.producer
        async for events in stream.take_events(batch_size, within=batch_within):
            pending: dict[str, Any] = {}

            def get_state(key: str) -> Any:
                return pending[key] if key in pending else customers.get(key)

            for event in events:
                msg = event.message
                step = run_step(
                    Record(msg.topic, msg.partition, msg.offset, msg.key, msg.value, msg.timestamp), get_state
                )
                if step.state is not None:
                    pending[step.state_key] = step.state
                for out in step.outputs:
                    fut = await producer.send(out.topic, out.key, out.value, None, None, None)
                    fut.add_done_callback(on_sent)
                pipe.counters[step.outcome] = pipe.counters.get(step.outcome, 0) + 1
                observe(step, msg.topic, msg.timestamp, time.time())
            for key, value in pending.items():
                customers[key] = value
            metrics.batch_size.observe(len(events))

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        try:
            assigned = len(app.consumer.assignment())
            recovered = app.tables.recovery.completed.is_set()
        except Exception:  # not started yet
            assigned, recovered = 0, False
        return web.json(
            {
                "status": "ok",
                "assigned_partitions": assigned,
                "recovered": recovered,
                "rebalancing": bool(app.rebalancing),
                "counters": pipe.counters,
            }
        )

    @app.page("/metrics")
    async def prometheus_metrics(web: Any, request: Any) -> Any:
        refresh_gauges()
        return web.bytes(metrics.render(), content_type="text/plain")

    def refresh_gauges() -> None:
        try:
            consumer = app.consumer
            assignment = consumer.assignment()
        except Exception:
            return
        metrics.assigned_partitions.set(len(assignment))
        metrics.consumer_lag.clear()
        for tp in assignment:
            high = consumer.highwater(tp)
            read = consumer._read_offset.get(tp)
            if high is not None:
                metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, high - ((read or -1) + 1)))
        for table in app.tables.values():
            metrics.table_keys.labels(table.name).set(len(table.data))

    @app.on_partitions_assigned.connect
    async def on_assigned(app_: Any, assigned: Any, **kwargs: Any) -> None:
        metrics.rebalances.inc()

    return pipe
