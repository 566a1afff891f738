"""The Faust application: build one worker's app, agents, tables and web pages.

Topology::

    events.orders ──────┐
    events.complaints ──┤                      ┌─> events.enriched        (keyed by customer id)
    events.feedback ────┤  agent ``ingest``    ├─> events.deadletter
    customers.profiles ─┼─> table customers ───┼─> alerts.commitments, alerts.churn-risk
    pipeline.events-rekeyed ┤ (segment, commitments, ├─> pipeline.events-rekeyed (wrongly keyed records)
    pipeline.ticks ─────┘   churn)             └─> <app_id>-segment-partials (one partial per dimension=value)
                                                            │
                          agent ``aggregate`` <─────────────┘   table segment_windows (dimension=value)
                               ├─> aggregates.pain-points  (one final record per window, segment, pain point)
                               └─> alerts.pain-points      (pain_point_surge)

Input topics, the re-key and tick topics share one partition count and are keyed
by customer id, so partition *p* of each (and of the ``customers`` changelog)
holds the same customers: one worker owns a customer.  The partials topic is
keyed by ``dimension=value`` and owned by the ``aggregate`` agent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import faust

from . import codec, web
from .agents import aggregate, cases, failstop, faust_fixes, ingest, models
from .agents.partitioner import KeyHashPartitioner
from .config import Settings
from .metrics import Metrics
from .process import Processor
from .stage_settings import StageSettings, load_stage_settings


@dataclass
class Pipeline:
    app: faust.App
    processor: Processor
    customers: Any
    aggregate: aggregate.AggregateParts
    metrics: Metrics
    counters: dict[str, int] = field(default_factory=dict)


def make_faust_app(settings: Settings) -> faust.App:
    codec.register()
    faust_fixes.apply()  # seeks not undone, no unverified gaps committed, idempotent acks=all producer
    return faust.App(
        settings.app_id,
        broker=settings.faust_broker,
        store=settings.store,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        processing_guarantee="at_least_once",  # exactly_once is refused by config (docs/reliability.md)
        producer_acks=-1,
        # Faust's default is 20 minutes: an outage (or a deleted topic) that long before a send fails
        producer_request_timeout=settings.producer_timeout_seconds,
        # Static group membership (KIP-345): a worker restarted under the same instance id takes its
        # partitions back at once, without the two rebalances a kill -9 restart otherwise causes.
        consumer_group_instance_id=settings.instance_id,
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=8 * 1024 * 1024,
        producer_linger_ms=settings.producer_linger_ms,
        producer_max_batch_size=settings.producer_batch_bytes,
        producer_compression_type=None if settings.producer_compression == "none" else settings.producer_compression,
        producer_partitioner=KeyHashPartitioner(),  # the default key hash, remembered per key
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_host=settings.advertised_host,  # the URL other workers route table queries to
        web_tables_enabled=False,  # Faust's /table/{name}/{key}/ pages would serve any customer's state
        web_in_thread=False,
        table_cleanup_interval=30.0,
        # A killed worker's partitions move after this long (Kafka's group session timeout).
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_seconds / 4),
        # KAFKA_SECURITY_PROTOCOL / KAFKA_SASL_* / KAFKA_SSL_* (None = PLAINTEXT)
        broker_credentials=settings.security.faust_credentials(),
    )


def build(settings: Settings, stages: StageSettings | None = None) -> Pipeline:
    """The worker's app.  ``stages``: the stages' part of the settings tree, read from the process
    environment once here when not given."""
    stages = load_stage_settings(os.environ) if stages is None else stages
    app = make_faust_app(settings)

    @app.task
    async def size_producer_buffer() -> None:
        """Faust pauses every stream while more than this many changelog writes wait in its producer
        buffer (default 100, fewer than one batch's table writes: "producer buffer full").  Set on
        start, not at build time: touching ``app.producer`` early binds it before the worker's loop."""
        app.producer.buffer.max_messages = settings.producer_buffer_messages

    freeze_watch = {"installed": False}

    @app.timer(1.0)
    async def watch_for_freezes() -> None:
        """Once the consumer's thread runs: tick the freeze watch from it (see ``failstop.check_not_frozen``)."""
        if not freeze_watch["installed"]:
            freeze_watch["installed"] = failstop.watch_for_freezes(app, settings.session_timeout_seconds)
    metrics = Metrics(settings=settings)
    counters: dict[str, int] = {}
    customers, processor, lookup = ingest.register(app, settings, stages, metrics, counters)
    agg = aggregate.register(app, settings, stages, metrics, counters)
    models.register(app, settings, processor.sentiment_models, metrics)  # self-trained sentiment (issue 20)
    if settings.ack_sla_seconds > 0:
        cases.register(app, settings, metrics, counters)
    web.register(app, metrics, counters, agg, customers, lookup)
    return Pipeline(app=app, processor=processor, customers=customers, aggregate=agg, metrics=metrics,
                    counters=counters)
