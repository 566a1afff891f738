"""The per-record processing step, free of Faust and Kafka.

:meth:`Processor.process` turns one consumed :class:`Record` plus the customer's
current state into a :class:`Step`: the records to produce and the new state to
write.  The Faust agent (``pipeline.agents``) only moves bytes between Kafka and
this function, so everything here is unit-testable without a broker.

Routing rules
-------------
* invalid record → one dead letter (original bytes, coordinates, reasons);
* valid record whose Kafka key is not its ``customer_id`` → re-sent once to the
  internal re-key topic keyed by ``customer_id`` (so per-customer state stays
  co-partitioned) and processed when it arrives there;
* valid profile → state update only (profiles are state, not events);
* valid order / complaint / feedback → state update + one enriched event.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson

from .classify.events import classify_event
from .classify.taxonomy import load_taxonomy
from .config import Settings
from .ingest.normalise import Event, normalise
from .ingest.validate import Problem, decode
from .outputs.deadletter import dead_letter
from .outputs.enriched import enriched_event
from .segment.customer import apply_event, promised_delivery
from .segment.segments import derive_segment


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None  # Kafka record time, epoch seconds


@dataclass(frozen=True)
class Output:
    topic: str
    key: bytes
    value: bytes


@dataclass
class Step:
    outputs: list[Output] = field(default_factory=list)
    state_key: str | None = None
    state: dict[str, Any] | None = None
    outcome: str = "enriched"  # enriched | deadletter | rekeyed | state | duplicate
    kind: str | None = None
    problems: list[Problem] = field(default_factory=list)
    enriched: dict[str, Any] | None = None  # the enriched document (for metrics), when one was produced


EnrichHook = Callable[[Event, dict[str, Any], dict[str, Any]], dict[str, Any]]


class Processor:
    """Stateless apart from configuration; state is passed in and returned."""

    def __init__(self, settings: Settings, enrich_hooks: list[EnrichHook] | None = None) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.enrich_hooks = enrich_hooks or []
        self.taxonomy = load_taxonomy(settings.taxonomy_file)

    def process(
        self, rec: Record, get_state: Callable[[str], dict[str, Any] | None], now: float | None = None
    ) -> Step:
        now = time.time() if now is None else now
        if rec.topic == self.topics.rekeyed:
            return self._process_rekeyed(rec, get_state, now)
        kind = self.topics.kind_of(rec.topic)
        if kind is None:
            return self.dead(rec, [Problem("invalid_value", f"no event kind for topic {rec.topic}")], None, now)
        decoded = decode(rec.value, kind, self.settings.max_event_bytes)
        if not decoded.ok:
            return self.dead(rec, decoded.problems, kind, now)
        assert decoded.event is not None
        cid = decoded.event["customer_id"]
        if rec.key != cid.encode():
            wrapper = {
                "kind": kind,
                "source": {
                    "topic": rec.topic, "partition": rec.partition, "offset": rec.offset,
                    "timestamp": rec.timestamp,
                },
                "event": decoded.event,
            }
            out = Output(self.topics.rekeyed, cid.encode(), orjson.dumps(wrapper))
            return Step(outputs=[out], outcome="rekeyed", kind=kind)
        return self._apply(kind, decoded.event, rec.topic, rec.partition, rec.offset, rec.timestamp, False,
                           get_state, now)

    def _process_rekeyed(
        self, rec: Record, get_state: Callable[[str], dict[str, Any] | None], now: float
    ) -> Step:
        try:
            wrapper = orjson.loads(rec.value or b"")
            kind, src, event = wrapper["kind"], wrapper["source"], wrapper["event"]
            cid = event["customer_id"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            return self.dead(rec, [Problem("invalid_value", f"malformed re-key record: {exc!r}"[:300])], None, now)
        if rec.key != cid.encode():
            return self.dead(rec, [Problem("invalid_value", "re-key record key is not its customer_id")], kind, now)
        return self._apply(kind, event, src["topic"], src["partition"], src["offset"], src.get("timestamp"), True,
                           get_state, now)

    def _apply(
        self, kind: str, event: dict[str, Any], topic: str, partition: int, offset: int,
        timestamp: float | None, rekeyed: bool, get_state: Callable[[str], dict[str, Any] | None], now: float,
    ) -> Step:
        ev = normalise(kind, event, fallback_time=timestamp)
        prior = get_state(ev.customer_id)
        state, changed = apply_event(prior, ev, self.settings.segment.fx_rates)
        step = Step(state_key=ev.customer_id, state=state if changed else None, kind=kind)
        if kind == "customer_profile":
            step.outcome = "state"
            return step
        segment = derive_segment(state, ev.occurred_at, self.settings.segment)
        promised = promised_delivery(prior, event["order_id"]) if kind == "order" else None
        doc = enriched_event(
            ev, segment=segment, source_topic=topic, partition=partition, offset=offset,
            ingested_at=timestamp, processed_at=now, rekeyed=rekeyed,
            classification=classify_event(ev, self.taxonomy, promised),
        )
        for hook in self.enrich_hooks:
            doc = hook(ev, state, doc)
        step.outputs.append(Output(self.topics.enriched, ev.customer_id.encode(), orjson.dumps(doc)))
        step.enriched = doc
        return step

    def dead(self, rec: Record, problems: list[Problem], kind: str | None, now: float) -> Step:
        doc = dead_letter(
            topic=rec.topic, partition=rec.partition, offset=rec.offset, key=rec.key,
            timestamp_ms=None if rec.timestamp is None else int(rec.timestamp * 1000),
            raw=rec.value, problems=problems, expected_kind=kind, now=now,
        )
        key = rec.key if rec.key is not None else doc["dead_letter_id"].encode()
        return Step(
            outputs=[Output(self.topics.deadletter, key, orjson.dumps(doc))],
            outcome="deadletter", kind=kind, problems=list(problems),
        )
