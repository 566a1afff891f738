"""Create the pipeline's topics idempotently (kafka-python admin client).

Input topics, the re-key topic and the profile topic share one partition count
so that partition *p* of each holds the same customers (co-partitioning).
``customers.profiles`` is compacted: the latest profile per customer is kept.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from .config import Settings
from .kafka_security import admin_client as _secure_admin

log = logging.getLogger(__name__)

DEADLETTER_MAX_BYTES = 8 * 1024 * 1024
MODEL_MAX_BYTES = 16 * 1024 * 1024  # a self-trained sentiment model (JSON, compressed on the wire)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    t, n = settings.topics, settings.partitions
    return [
        TopicSpec(t.orders, n, {}),
        TopicSpec(t.complaints, n, {}),
        TopicSpec(t.feedback, n, {}),
        TopicSpec(t.profiles, n, {"cleanup.policy": "compact"}),
        TopicSpec(t.rekeyed, n, {}),
        TopicSpec(t.enriched, n, {}),
        TopicSpec(t.deadletter, n, {"max.message.bytes": str(DEADLETTER_MAX_BYTES)}),
        TopicSpec(t.ticks, n, {"retention.ms": str(6 * 3600 * 1000)}),
        TopicSpec(settings.partials_topic, n, {}),
        TopicSpec(settings.case_ticks_topic, n, {"retention.ms": str(6 * 3600 * 1000)}),
        TopicSpec(t.aggregates, n, {}),
        TopicSpec(t.alerts_pain_points, n, {}),
        TopicSpec(t.alerts_commitments, n, {}),
        TopicSpec(t.alerts_churn, n, {}),
        TopicSpec(t.alert_actions, n, {"cleanup.policy": "compact"}),  # the latest record per alert is its case
        TopicSpec(t.notifications_deadletter, n, {}),
        # self-trained sentiment (issue 20): the samples by event id, the newest model per language
        TopicSpec(settings.sentiment_samples_topic, n, {"cleanup.policy": "compact"}),
        TopicSpec(settings.sentiment_models_topic, 1, {"cleanup.policy": "compact",
                                                       "max.message.bytes": str(MODEL_MAX_BYTES)}),
    ]


def admin_client(settings: Settings) -> KafkaAdminClient:
    return _secure_admin(settings, request_timeout_ms=15000)


def ensure_topics(settings: Settings, specs: list[TopicSpec] | None = None, timeout: float = 30.0) -> list[str]:
    """Create missing topics; return the names created.  Waits until all are visible."""
    specs = topic_specs(settings) if specs is None else specs
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(s.name, s.partitions, settings.replication_factor, topic_configs=s.config)
            for s in specs
            if s.name not in existing
        ]
        created: list[str] = []
        for topic in new:
            try:
                admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
        wanted = {s.name for s in specs}
        deadline = time.monotonic() + timeout
        while not wanted <= set(admin.list_topics()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics not visible: {sorted(wanted - set(admin.list_topics()))}")
            time.sleep(0.1)
        for spec in specs:
            parts = partition_count(admin, spec.name)
            if parts != spec.partitions:
                log.warning(
                    "topic partition count differs from configuration",
                    extra={"topic": spec.name, "actual": parts, "configured": spec.partitions},
                )
        return created
    finally:
        admin.close()


def partition_count(admin: KafkaAdminClient, topic: str) -> int:
    desc = admin.describe_topics([topic])
    return len(desc[0]["partitions"]) if desc else 0
