"""Read output topics from the beginning and summarise what came out."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

import orjson

from .config import Settings


def read_topic(settings: Settings, topic: str, timeout: float = 60.0) -> Iterator[tuple[bytes | None, bytes]]:
    """Yield (key, value) of every record currently in ``topic`` (up to its end offsets)."""
    from kafka import TopicPartition

    from .kafka_security import consumer as make_consumer

    consumer = make_consumer(
        settings, enable_auto_commit=False,
        auto_offset_reset="earliest", isolation_level="read_committed",
        fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    try:
        tps = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        import time

        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500, max_records=5000).items():
                for r in records:
                    if r.offset < ends[tp]:
                        yield r.key, r.value
                if consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            for tp in list(remaining):
                if consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        consumer.close()


@dataclass
class Summary:
    enriched: int = 0
    by_kind: Counter = field(default_factory=Counter)
    by_tier: Counter = field(default_factory=Counter)
    by_lifecycle: Counter = field(default_factory=Counter)
    by_region: Counter = field(default_factory=Counter)
    deadletters: int = 0
    dead_reasons: Counter = field(default_factory=Counter)
    alerts: Counter = field(default_factory=Counter)
    alert_severity: Counter = field(default_factory=Counter)
    pain_points: Counter = field(default_factory=Counter)
    aggregates: int = 0
    risk_levels: Counter = field(default_factory=Counter)

    def render(self) -> str:
        def top(c: Counter, n: int = 6) -> str:
            return ", ".join(f"{k}={v}" for k, v in c.most_common(n)) or "-"

        lines = [
            f"enriched events : {self.enriched}  ({top(self.by_kind)})",
            f"  value tier    : {top(self.by_tier)}",
            f"  lifecycle     : {top(self.by_lifecycle)}",
            f"  top regions   : {top(self.by_region)}",
            f"  pain points   : {top(self.pain_points, 8)}",
            f"  churn risk    : {top(self.risk_levels)}",
            f"dead letters    : {self.deadletters}  ({top(self.dead_reasons, 10)})",
            f"aggregates      : {self.aggregates} final window records",
            f"alerts          : {sum(self.alerts.values())}  ({top(self.alerts, 10)})",
            f"  severity      : {top(self.alert_severity)}",
        ]
        return "\n".join(lines)


def summarise(settings: Settings) -> Summary:
    s = Summary()
    for _, value in read_topic(settings, settings.topics.enriched):
        doc = orjson.loads(value)
        s.enriched += 1
        s.by_kind[doc["kind"]] += 1
        seg = doc["segment"]
        s.by_tier[seg["value_tier"]] += 1
        s.by_lifecycle[seg["lifecycle"]] += 1
        s.by_region[seg["region"]] += 1
        for pp in (doc.get("classification") or {}).get("pain_points", []):
            s.pain_points[pp["id"]] += 1
        if doc.get("risk"):
            s.risk_levels[doc["risk"]["level"]] += 1
    for _, value in read_topic(settings, settings.topics.deadletter):
        doc = orjson.loads(value)
        s.deadletters += 1
        for code in {e["code"] for e in doc["errors"]}:
            s.dead_reasons[code] += 1
    t = settings.topics
    s.aggregates = sum(1 for _ in read_topic(settings, t.aggregates))
    for topic in (t.alerts_commitments, t.alerts_churn, t.alerts_pain_points):
        for _, value in read_topic(settings, topic):
            doc = orjson.loads(value)
            s.alerts[doc["type"]] += 1
            s.alert_severity[doc["severity"]] += 1
    return s
