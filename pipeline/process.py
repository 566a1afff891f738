"""The per-customer processing step, free of Faust and Kafka.

:meth:`Processor.process` turns one consumed :class:`Record` plus the customer's
current state into a :class:`Step`: the records to produce and the new state to
write; :meth:`Processor.advance` moves one customer's commitment clock and rescores its
churn risk when its silence schedule is due (:mod:`pipeline.churn.schedule`).  The
Faust agent (``pipeline.agents.ingest``) only moves bytes between Kafka and
these functions, so everything here is unit-testable without a broker.

Per-customer state (one table value, written once per batch)::

    {"seg": segment state, "cm": commitments, "churn": churn state, "ca": churn-alert state}

Routing rules
-------------
* invalid record → one dead letter (original bytes, coordinates, reasons);
* valid record whose Kafka key is not its ``customer_id`` → re-sent once to the
  internal re-key topic keyed by ``customer_id`` (so per-customer state stays
  co-partitioned) and processed when it arrives there;
* valid profile → state update only (profiles are state, not events);
* valid order / complaint / feedback → classification, segment, commitments,
  churn risk; one enriched event, plus commitment and churn alerts when due.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping

import orjson

from .churn import alerts as churn_alerts
from .churn.schedule import earliest_rescore, next_rescore
from .churn.score import score as churn_score
from .churn.snapshot import risk_snapshot
from .churn.state import apply_commitment_transition, apply_event as churn_apply, changes_churn
from .classify.classifier import prefetch as prefetch_texts
from .classify.events import classify_event
from .classify.learned import SentimentModel
from .classify.selftrain import ModelRegistry
from .classify.taxonomy import load_taxonomy
from .commitments import tracker
from .commitments.alerts import alerts_for
from .commitments.model import Transition
from .config import Settings
from .ingest.normalise import Event, normalise, text_and_language
from .core.bounds import time_in_range
from .core.records import Record
from .ingest.validate import INPUT_KINDS, Problem, decode, validate_event
from .outputs.deadletter import dead_letter
from .outputs.enriched import enriched_event
from .segment.customer import apply_event as segment_apply
from .segment.customer import order_context, promised_delivery
from .outputs.customer_view import remember_alerts
from .segment.segments import derive_segment
from .segment.tiers import Ranks, assign_tier, tier_value
from .stage_settings import StageSettings, load_stage_settings

COMMITMENT_KINDS = ("order", "complaint")
MAX_RESCORES_PER_STEP = 4  # silence rescorings of one customer per step (the rest at the next sweep)


@dataclass(frozen=True)
class Output:
    topic: str
    key: bytes
    value: bytes
    dedup_id: str | None = None  # deterministic id; emitted at most once per id (alerts, dead letters)
    kind: str | None = None  # kind of the input event that caused it (metrics label); None: internal


@dataclass
class Step:
    outputs: list[Output] = field(default_factory=list)
    state_key: str | None = None
    state: dict[str, Any] | None = None
    outcome: str = "enriched"  # enriched | deadletter | rekeyed | state | advanced
    kind: str | None = None
    problems: list[Problem] = field(default_factory=list)
    enriched: dict[str, Any] | None = None  # the enriched document (for metrics), when one was produced
    alerts: list[dict[str, Any]] = field(default_factory=list)
    churn_score: float | None = None
    next_due: float | None = None  # for the due index: the exact next due time after advance(), a lower bound
    # of it (Processor.due_hint) after process()
    rescored: int = 0  # churn rescorings on silence done in this step (pipeline.churn.schedule)
    rescore_late: float | None = None  # event-time seconds between the last one's due time and the clock
    event_time: float | None = None  # the event's time (epoch s), for the event-time clock
    record_time: float | None = None  # Kafka record time of the original input record (latency metric)


# UTF-8 lead bytes of the Hangul syllables and jamo (U+1100-11FF, U+3130-318F, U+A960-A97F, U+AC00-D7A3)
_HANGUL_LEAD = re.compile(rb"[\xe1\xe3\xea-\xed]")


class Processor:
    """Stateless apart from configuration; state is passed in and returned."""

    def __init__(self, settings: Settings, env: Mapping[str, str] | None = None,
                 stages: StageSettings | None = None) -> None:
        """``stages``: the settings tree's stage part (:func:`~pipeline.stage_settings.load_stage_settings`,
        built once by the app); without it, read from ``env`` (default: none, every default)."""
        if stages is None:
            stages = load_stage_settings({} if env is None else env)
        self.settings, self.stages = settings, stages
        self.topics = settings.topics
        self.taxonomy = load_taxonomy(settings.taxonomy_file)
        # learned text sentiment: the self-trained model of each language (issue 20; the worker's
        # model follower fills the registry from the models topic), else the optional model file
        # (a bad file fails here, at start-up, with its reason), else the lexicon
        self.sentiment_models = ModelRegistry(SentimentModel.load(settings.sentiment_model_file)
                                              if settings.sentiment_model_file else None)
        self.cm_cfg = stages.commitments.config
        self.cm_playbook = stages.commitments.playbook
        self.churn_weights = stages.churn.weights
        self.churn_policy = stages.churn.policy
        self.churn_playbook = stages.churn.playbook
        self.redactor = stages.redactor  # PIPELINE_REDACT, PIPELINE_REDACT_KINDS

    def warm(self) -> float:
        """Build the lazy parts of the classifier now (Kiwi and the Korean matcher: ~3 s); seconds spent.

        The worker calls this before it joins the group, so "ready" means the first
        Korean record does not stall its partition.
        """
        from .classify import classify

        t0 = time.perf_counter()
        for text in ("배송이 늦었어요", "The delivery was late", "A entrega atrasou"):
            classify(text, taxonomy=self.taxonomy, sentiment_model=self.sentiment_models)
        return time.perf_counter() - t0

    # -- records ---------------------------------------------------------------------------------
    def prefetch(self, records: Iterable[tuple[str, bytes | None]]) -> None:
        """Start the Korean analysis of the texts of ``records`` (``(topic, value)`` of the records
        about to be processed, in this order) on the analyser's worker threads (:func:`pipeline.classify.classifier.prefetch`).
        A speed-up only: :meth:`process` gives the same results with or without it."""
        texts = []
        for topic, value in records:
            found = self._text_of(topic, value)
            if found is not None:
                texts.append(found)
        if texts:
            prefetch_texts(texts, self.taxonomy)

    def _text_of(self, topic: str, value: bytes | None) -> tuple[str, str | None] | None:
        """(text, language) of a feedback or complaint record with Hangul bytes in it, as
        :func:`~pipeline.ingest.normalise.normalise` will give them to the classifier; else ``None``."""
        if type(value) is not bytes or _HANGUL_LEAD.search(value) is None:
            return None
        if topic != self.topics.rekeyed and self.topics.kind_of(topic) not in ("feedback", "complaint"):
            return None
        try:
            event = orjson.loads(value)
            if topic == self.topics.rekeyed:
                event = event["event"]
            text, language = text_and_language(event)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return None  # dead-lettered when its turn comes
        return None if text is None else (text, language)

    def process(
        self, rec: Record, get_state: Callable[[str], dict[str, Any] | None], now: float | None = None,
        ranks: Ranks | None = None, due_of: Callable[[str], float | None] | None = None,
    ) -> Step:
        """``ranks``: the sketch of decayed spend of the record's partition (value tiers by rank:
        :mod:`pipeline.segment.tiers`); without it tiers come from the fixed spend thresholds.
        ``due_of``: the customer's time in the driver's due index, a lower bound of its state's
        :meth:`next_due` (``None``: not known); an event before it has no rescoring due first."""
        now = time.time() if now is None else now
        if rec.timestamp is not None and not time_in_range(rec.timestamp):
            rec = replace(rec, timestamp=None)  # a producer-set record time beyond 1970..2100 is not a time
        if rec.topic == self.topics.rekeyed:
            return self._process_rekeyed(rec, get_state, now, ranks, due_of)
        kind = self.topics.kind_of(rec.topic)
        if kind is None:
            return self.dead(rec, [Problem("invalid_value", f"no event kind for topic {rec.topic}")], None, now)
        decoded = decode(rec.value, kind, self.settings.max_event_bytes, self.settings.time_limits, now)
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
            out = Output(self.topics.rekeyed, cid.encode(), orjson.dumps(wrapper), kind=kind)
            return Step(outputs=[out], outcome="rekeyed", kind=kind)
        return self._apply(kind, decoded.event, rec.topic, rec.partition, rec.offset, rec.timestamp, False,
                           get_state, now, ranks, due_of)

    def _process_rekeyed(
        self, rec: Record, get_state: Callable[[str], dict[str, Any] | None], now: float, ranks: Ranks | None,
        due_of: Callable[[str], float | None] | None = None,
    ) -> Step:
        try:
            wrapper = orjson.loads(rec.value or b"")
            kind, src, event = wrapper["kind"], wrapper["source"], wrapper["event"]
            topic, partition, offset, ts = src["topic"], src["partition"], src["offset"], src.get("timestamp")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            return self.dead(rec, [Problem("invalid_value", f"malformed re-key record: {exc!r}"[:300])], None, now)
        bad = _bad_rekey_source(kind, topic, partition, offset, ts)
        if bad is not None:
            return self.dead(rec, [Problem("invalid_value", f"malformed re-key record: {bad}")], None, now)
        # an internal topic is validated like an input: the wrapped event passes the same checks again
        decoded = validate_event(event, kind, limits=self.settings.time_limits, now=now)
        if not decoded.ok:
            return self.dead(rec, decoded.problems, kind, now)
        if rec.key != event["customer_id"].encode():
            return self.dead(rec, [Problem("invalid_value", "re-key record key is not its customer_id")], kind, now)
        return self._apply(kind, event, topic, partition, offset, ts, True, get_state, now, ranks, due_of)

    def _apply(
        self, kind: str, event: dict[str, Any], topic: str, partition: int, offset: int,
        timestamp: float | None, rekeyed: bool, get_state: Callable[[str], dict[str, Any] | None], now: float,
        ranks: Ranks | None = None, due_of: Callable[[str], float | None] | None = None,
    ) -> Step:
        ev = normalise(kind, event, fallback_time=timestamp)
        prior = get_state(ev.customer_id) or {}
        t = self.settings.segment
        seg, changed = segment_apply(prior.get("seg"), ev, t.fx_rates, t.tiers.half_life_days)
        if changed and kind != "customer_profile":
            seg = assign_tier(seg, tier_value(prior.get("seg")), ranks, t.tiers)
        step = Step(state_key=ev.customer_id, kind=kind)
        if kind == "customer_profile":
            step.outcome = "state"
            step.state = {**prior, "seg": seg} if changed else None
            step.next_due = self.due_hint(prior)
            return step
        # silence first: a rescoring due before this event happens at its own time (as a sweep would);
        # none can be when the due index's lower bound is later than the event (most events)
        due = None if due_of is None else due_of(ev.customer_id)
        if due is None or due <= ev.occurred_at:
            prior = self._rescore_silence(step, ev.customer_id, prior, ev.occurred_at, ev.occurred_at, now)
        segment = derive_segment(seg, ev.occurred_at, self.settings.segment, repaired=True)
        promised = promised_delivery(prior.get("seg"), event["order_id"]) if kind == "order" else None
        classification = classify_event(ev, self.taxonomy, promised, self.sentiment_models)
        cm, transitions = prior.get("cm"), []
        if kind in COMMITMENT_KINDS:
            cm, transitions = tracker.apply_event(cm, ev, self.cm_cfg)
        churn = churn_apply(prior.get("churn"), ev, classification, segment)
        state, risk = self._consequences(
            step, ev.customer_id, {**prior, "seg": seg, "cm": cm, "churn": churn}, transitions, segment,
            ev.occurred_at, now, hint=True,
        )
        doc = enriched_event(
            ev, segment=segment, source_topic=topic, partition=partition, offset=offset,
            ingested_at=timestamp, processed_at=now, rekeyed=rekeyed, classification=classification, risk=risk,
            redactor=self.redactor,
            order=order_context(prior.get("seg"), event.get("order_id")) if kind != "order" else None,
        )
        step.outputs.insert(0, Output(self.topics.enriched, ev.customer_id.encode(), orjson.dumps(doc), kind=kind))
        step.enriched = doc
        step.event_time = ev.occurred_at
        step.record_time = timestamp
        step.state = state
        return step

    # -- time ------------------------------------------------------------------------------------
    def advance(self, customer_id: str, state: dict[str, Any] | None, clock: float,
                now: float | None = None) -> Step:
        """Move the customer's commitments to ``clock`` (alerts for warnings and breaches) and rescore
        its churn risk if the silence schedule is due (:mod:`pipeline.churn.schedule`)."""
        now = time.time() if now is None else now
        step = Step(state_key=customer_id, outcome="advanced")
        state = state or {}
        cm, transitions = tracker.advance(state.get("cm"), clock, self.cm_cfg)
        # silence rescorings due before the first commitment transition, each at its own due time
        upto = min([clock, *(tr.at for tr in transitions)])
        silent = self._rescore_silence(step, customer_id, state, upto, clock, now)
        if not transitions:  # at most housekeeping of the commitments (purge): no churn evaluation of its own
            if cm is not state.get("cm"):
                silent = {**silent, "cm": cm}
            step.state = silent if silent is not state else None
            step.next_due = self.next_due(silent)
            return step
        state = silent
        segment = derive_segment(state.get("seg"), clock, self.settings.segment)
        step.state, _ = self._consequences(step, customer_id, {**state, "cm": cm}, transitions, segment, clock, now)
        return step

    def _consequences(
        self, step: Step, customer_id: str, state: dict[str, Any], transitions: list[Transition],
        segment: dict[str, Any], clock: float, now: float, hint: bool = False,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Commitment alerts, churn update and churn alerts; returns (state, risk snapshot).
        ``hint``: ``step.next_due`` is :meth:`due_hint` (an event), else :meth:`next_due` (advance)."""
        key = customer_id.encode()
        first = len(step.alerts)  # alerts of earlier rescorings in this step are remembered already
        for alert in alerts_for(transitions, segment, self.cm_playbook, now, self.redactor):
            step.outputs.append(Output(self.topics.alerts_commitments, key, orjson.dumps(alert), alert["alert_id"],
                                       step.kind))
            step.alerts.append(alert)
        churn = state.get("churn")
        for tr in transitions:
            if churn and not changes_churn(tr.type, tr.detail):
                continue  # apply_commitment_transition returns the state as it is: no copy of the transition
            churn = apply_commitment_transition(churn, tr.to_dict())
        rs = churn_score(churn, clock, self.churn_weights, explain=False)  # explained only for an alert
        ca, churn_alert_docs = churn_alerts.evaluate(
            state.get("ca"), rs, clock, customer_id, segment, self.churn_policy, self.churn_playbook, now, self.redactor,
        )
        for alert in churn_alert_docs:
            step.outputs.append(Output(self.topics.alerts_churn, key, orjson.dumps(alert), alert["alert_id"],
                                       step.kind))
            step.alerts.append(alert)
        step.churn_score = rs.score
        new_state = {**state, "churn": churn, "ca": ca}
        if len(step.alerts) > first:
            new_state["alerts"] = remember_alerts(state.get("alerts"), step.alerts[first:])
        step.next_due = self.due_hint(new_state) if hint else self.next_due(new_state)
        policy = self.churn_policy
        risk = risk_snapshot(rs, policy.top_n, policy.lower_threshold, policy.threshold)
        return new_state, risk

    # -- schedule --------------------------------------------------------------------------------
    def next_due(self, state: Mapping[str, Any] | None) -> float | None:
        """When the customer's stored ``state`` next needs :meth:`advance` (event time), or ``None``:
        the earlier of its next commitment deadline and its next churn rescoring on silence."""
        s = state or {}
        deadline = tracker.due_soonest(s.get("cm"))
        # only a rescoring at or before the deadline can be the earlier one: the search stops at it
        # (``next_rescore`` with ``until`` is the full result when that is <= ``until``, else None)
        return _earlier(deadline, next_rescore(s.get("churn"), s.get("ca"), self.churn_weights,
                                               self.churn_policy, deadline))

    def due_hint(self, state: Mapping[str, Any] | None) -> float | None:
        """A lower bound of :meth:`next_due` that scores nothing (``None`` only when ``next_due`` is
        ``None``): the due index holds it after an event, and the driver asks :meth:`next_due` when
        the clock reaches it.  The exact rescoring search cost a sixth of stage 1's time per event
        (issue 17); most customers send their next event before the bound comes."""
        s = state or {}
        return _earlier(tracker.due_soonest(s.get("cm")),
                        earliest_rescore(s.get("churn"), s.get("ca"), self.churn_weights, self.churn_policy))

    def _rescore_silence(self, step: Step, customer_id: str, state: dict[str, Any], upto: float, clock: float,
                         now: float) -> dict[str, Any]:
        """Churn rescorings whose due time is ``<= upto``, each evaluated at its due time; the new state.

        Alerts go to ``step`` (clock-driven: no input kind); ``state`` is returned as is when none is due.
        """
        for _ in range(MAX_RESCORES_PER_STEP):
            due = next_rescore(state.get("churn"), state.get("ca"), self.churn_weights, self.churn_policy, upto)
            if due is None or due > upto:
                break
            segment = derive_segment(state.get("seg"), due, self.settings.segment)
            rs = churn_score(state.get("churn"), due, self.churn_weights, explain=False)
            ca, docs = churn_alerts.evaluate(state.get("ca"), rs, due, customer_id, segment, self.churn_policy,
                                             self.churn_playbook, now, self.redactor)
            for alert in docs:
                step.outputs.append(Output(self.topics.alerts_churn, customer_id.encode(), orjson.dumps(alert),
                                           alert["alert_id"]))
                step.alerts.append(alert)
            step.rescored += 1
            step.rescore_late = max(0.0, clock - due)
            step.churn_score = rs.score
            state = {**state, "ca": ca}
            if docs:
                state["alerts"] = remember_alerts(state.get("alerts"), docs)
        return state

    # -- errors ----------------------------------------------------------------------------------
    def dead(self, rec: Record, problems: list[Problem], kind: str | None, now: float) -> Step:
        doc = dead_letter(
            topic=rec.topic, partition=rec.partition, offset=rec.offset, key=rec.key,
            timestamp_ms=None if rec.timestamp is None else int(rec.timestamp * 1000),
            raw=rec.value, problems=problems, expected_kind=kind, now=now,
        )
        key = rec.key if rec.key is not None else doc["dead_letter_id"].encode()
        return Step(
            outputs=[Output(self.topics.deadletter, key, orjson.dumps(doc), doc["dead_letter_id"],
                            kind=kind or "unknown")],
            outcome="deadletter", kind=kind, problems=list(problems),
        )


def _earlier(a: float | None, b: float | None) -> float | None:
    """``min(a, b)`` of the ones that are not ``None`` (``None`` when neither is a time)."""
    if a is None:
        return b
    return a if b is None else min(a, b)


def _bad_rekey_source(kind: Any, topic: Any, partition: Any, offset: Any, timestamp: Any) -> str | None:
    """Why the envelope of a re-key record is unusable, or ``None``."""
    if kind not in INPUT_KINDS:
        return "unknown kind"
    if not isinstance(topic, str) or not 0 < len(topic) <= 249:
        return "source.topic is not a topic name"
    for name, n in (("partition", partition), ("offset", offset)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            return f"source.{name} is not a non-negative integer"
    if timestamp is not None and not time_in_range(timestamp):
        return "source.timestamp is not a time in years 1970..2100"
    return None


__all__ = ["Event", "Output", "Processor", "Record", "Step"]
