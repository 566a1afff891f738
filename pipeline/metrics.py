"""Prometheus metrics of one worker (served on ``/metrics`` by the worker's web server).

Label values are bounded by construction: topic labels are the configured topic
names, ``kind`` the four event kinds, ``reason`` the dead-letter codes,
``pain_point`` the taxonomy ids, and segment labels only the dimensions with a
closed value set (value tier, lifecycle, channel, relationship level); anything
else becomes ``other``.  No customer id, order id or text ever becomes a label.
"""

from __future__ import annotations

from typing import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
EVENT_AGE_BUCKETS = (0.1, 0.5, 1, 5, 30, 60, 300, 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400)

BOUNDED_SEGMENT_VALUES = {
    "value_tier": {"key", "regular", "general", "unknown"},
    "lifecycle": {"new", "active", "at_risk", "lapsed", "unknown"},
    "channel": {"phone", "web", "app", "store", "marketplace", "email", "chat", "social", "other", "unknown"},
    "relationship_level": {"transactional", "preferred_supplier", "partner", "strategic_alliance", "unknown"},
}
KINDS = {"order", "complaint", "feedback", "customer_profile"}


def bounded(value: object, allowed: Iterable[str]) -> str:
    v = str(value)
    return v if v in allowed else "other"


class Metrics:
    """All metrics of the pipeline in one registry (one per worker process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.consumed = Counter("pipeline_events_consumed_total", "Records consumed, by topic and event kind.",
                                ["topic", "kind"], registry=r)
        self.produced = Counter("pipeline_events_produced_total", "Records produced, by topic.", ["topic"],
                                registry=r)
        self.deadletters = Counter("pipeline_deadletters_total", "Records dead-lettered, by reason code.",
                                   ["reason"], registry=r)
        self.classified = Counter("pipeline_classifications_total", "Classified events by language.",
                                  ["language"], registry=r)
        self.pain_points = Counter("pipeline_pain_points_total", "Pain points found, by id.", ["pain_point"],
                                   registry=r)
        self.segment_pain_points = Counter(
            "pipeline_segment_pain_points_total",
            "Pain points by bounded segment dimension and value.",
            ["dimension", "value", "pain_point"], registry=r,
        )
        self.alerts = Counter("pipeline_alerts_total", "Alerts emitted, by type and severity.", ["type", "severity"],
                              registry=r)
        self.errors = Counter("pipeline_errors_total", "Errors, by stage.", ["stage"], registry=r)
        self.rebalances = Counter("pipeline_rebalances_total", "Partition assignments received.", registry=r)
        self.late_events = Counter("pipeline_late_events_total", "Events behind the watermark, by outcome.",
                                   ["outcome"], registry=r)
        self.latency = Histogram(
            "pipeline_processing_latency_seconds",
            "Ingest (Kafka record time) to output produced.", ["output"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.event_age = Histogram(
            "pipeline_event_age_seconds", "Event time to output produced (includes replay age).",
            buckets=EVENT_AGE_BUCKETS, registry=r,
        )
        self.batch_size = Histogram("pipeline_batch_size", "Records per processed batch.",
                                    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2000), registry=r)
        self.consumer_lag = Gauge("pipeline_consumer_lag", "Records behind the end of the partition.",
                                  ["topic", "partition"], registry=r)
        self.table_keys = Gauge("pipeline_table_keys", "Keys held in a table on this worker.", ["table"], registry=r)
        self.commitments = Gauge("pipeline_commitments", "Commitments by kind and status on this worker.",
                                 ["kind", "status"], registry=r)
        self.churn_score = Histogram("pipeline_churn_risk_score", "Churn-risk score of customers at update time.",
                                     buckets=(10, 20, 30, 40, 50, 60, 70, 80, 90, 100), registry=r)
        self.assigned_partitions = Gauge("pipeline_assigned_partitions", "Partitions assigned to this worker.",
                                         registry=r)

    def segment_labels(self, segment: dict) -> list[tuple[str, str]]:
        return [(dim, bounded(segment.get(dim, "unknown"), allowed))
                for dim, allowed in BOUNDED_SEGMENT_VALUES.items()]

    def render(self) -> bytes:
        return generate_latest(self.registry)
