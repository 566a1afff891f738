"""Prometheus metrics of one worker (served on ``/metrics`` by the worker's web server).

Every worker exposes its own registry; Prometheus scrapes each worker and
``sum by (…)`` adds them up.  Names follow the Prometheus conventions: counters
end in ``_total``, durations are ``_seconds`` (base unit), other gauges and
histograms count things (records, keys, commitments, score points).

Label values are bounded by construction and never carry customer data:

=================  ==========================================================================
label              values
=================  ==========================================================================
``topic``          the configured topic names (inputs, outputs, internal topics)
``kind``           :data:`RECORD_KINDS` (event kinds + ``unknown`` + ``internal``)
``reason``         :data:`DEADLETTER_REASONS` (dead-letter codes), else ``other``
``language``       :data:`LANGUAGES` (what the classifier can return), else ``other``
``pain_point``     the taxonomy's category ids (at most :data:`MAX_PAIN_POINTS`, then ``other``)
``dimension``      ``tier``, ``lifecycle``, ``channel``, ``relationship`` (closed value sets
                   :data:`SEGMENT_VALUES`; ``region``, ``category``, ``seller``, ``carrier``
                   are deliberately *not* labels: open-ended)
``type``           :data:`ALERT_TYPES`, else ``other``;  ``severity``: :data:`SEVERITIES`
``status``         ``open``, ``warned``, ``breached`` (commitment gauges)
``partition``      partition numbers of the topics this worker consumes
``table``          the Faust table names (``customers``, ``segment_windows``)
=================  ==========================================================================

No customer id, order id, complaint id or text ever becomes a label value.
Known label combinations are created at zero on start, so dashboards and alert
expressions see a series (value 0) before the first event of that kind.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter as Occurrences
from functools import partial, reduce
from operator import add
from typing import Any, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

# No ``*_created`` series: they would double the series count and no dashboard uses them.
disable_created_metrics()

# Ingest (Kafka record time) -> output: milliseconds to a minute.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# Event time -> output: includes producer delay and replay age (seconds to a year).
EVENT_LATENCY_BUCKETS = (0.1, 0.5, 1, 5, 30, 60, 300, 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400)
CHURN_SCORE_BUCKETS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
BATCH_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2000)
BATCH_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_STAGES = ("ingest", "aggregate", "commit", "cases")  # pipeline_batch_seconds{stage}

OTHER = "other"
UNKNOWN = "unknown"
EVENT_KINDS = ("order", "complaint", "feedback", "customer_profile")
# ``unknown``: the kind could not be determined (unreadable record); ``internal``: records the
# pipeline makes itself (partials, ticks, clock controls, aggregates, clock-driven alerts).
RECORD_KINDS = frozenset({*EVENT_KINDS, UNKNOWN, "internal"})
DEADLETTER_REASONS = (
    "not_utf8", "not_json", "not_an_object", "oversize", "unknown_schema_version", "missing_field",
    "wrong_type", "invalid_value", "invalid_format", "unknown_field", "out_of_range", "schema_violation",
    "processing_failed",
)
ALERT_TYPES = (
    "pain_point_surge", "commitment_at_risk", "unmet_commitment", "commitment_fulfilled_late",
    "commitment_breach_retracted", "churn_risk", "churn_risk_cleared", "alert_unacknowledged",
)
SEVERITIES = ("info", "low", "medium", "high", "critical")
LANGUAGES = frozenset({"ko", "en", "pt", "es", "fr", "de", "ja", "zh", "ru", "ar", "th", "el", "he", "hi", "und"})
COMMITMENT_KINDS = ("delivery", "response", "resolution", "callback", "refund")
COMMITMENT_STATUSES = ("open", "warned", "breached")
ERROR_STAGES = ("process", "process_retry", "produce", "tick", "aggregate", "duplicate_alert_suppressed",
                "duplicate_final_suppressed", "duplicate_enriched_suppressed", "duplicate_deadletter_suppressed",
                "replayed_record_skipped",
                "replayed_partial_skipped", "input_gap_restart",
                "input_gap_absent_offsets", "input_gap_held_back", "input_gap_rewind",
                "input_redelivered_skipped")
LATE_OUTCOMES = ("counted_in_held_window", "window_no_longer_held")
REORDER_RELEASES = ("after_wait", "wait_expired", "over_bound", "within_tolerance")  # pipeline_reorder_released_total{how}
MAX_PAIN_POINTS = 64
SENTIMENT_SOURCES = ("lexicon", "model")  # pipeline_sentiment_sources_total{source}: model = any learned version
LEARNED_MODEL_KINDS = ("sentiment", "pain_points")  # pipeline_learned_model_sequence{kind}

# metric label ``dimension`` -> (field of the enriched event's ``segment``, closed value set)
SEGMENT_VALUES: dict[str, tuple[str, frozenset[str]]] = {
    "tier": ("value_tier", frozenset({"key", "regular", "general", UNKNOWN})),
    "lifecycle": ("lifecycle", frozenset({"new", "active", "won_back", "at_risk", "lapsed", UNKNOWN})),
    "channel": ("channel", frozenset({"phone", "web", "app", "store", "marketplace", "email", "chat", "social",
                                      UNKNOWN})),
    "relationship": ("relationship_level", frozenset({"transactional", "preferred_supplier", "partner",
                                                      "strategic_alliance", UNKNOWN})),
}


def bounded(value: object, allowed: Iterable[str]) -> str:
    """``value`` if it is one of ``allowed``, else ``"other"``."""
    v = str(value)
    return v if v in allowed else OTHER


class _CappedLabel:
    """Label values taken as they come (e.g. taxonomy ids) up to ``cap`` distinct ones, then ``other``."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.seen: set[str] = set()

    def __call__(self, value: object) -> str:
        v = str(value)
        if v in self.seen:
            return v
        if len(self.seen) >= self.cap or len(v) > 64:
            return OTHER
        self.seen.add(v)
        return v


class _Observations:
    """Values waiting to be observed by one histogram child (``Histogram.labels(...)`` or an unlabelled
    ``Histogram``), applied by :meth:`apply` exactly as ``observe()`` per value would have:  the sum gets
    the same float additions in the same order, each bucket the number of values that ``observe()`` puts
    there (the first bound ``>=`` the value; a NaN in none).  prometheus_client has no public way to add
    many observations at once: this reads its ``_sum``, ``_buckets`` and ``_upper_bounds``
    (tests/unit/test_metrics_batched.py compares the exposition with ``observe()``'s)."""

    def __init__(self, histogram: Any) -> None:
        self.histogram = histogram
        self.values: list[float] = []

    def apply(self) -> None:
        values, h = self.values, self.histogram
        if not values:
            return
        # not sum(): from Python 3.12 on it compensates float rounding, observe() does not
        total = reduce(add, values, h._sum.get())
        h._sum.set(total)
        bucket_of = partial(bisect_left, h._upper_bounds)
        # bisect_left puts a NaN in the first bucket, observe() in none (a NaN makes the sum NaN)
        counts = (Occurrences(map(bucket_of, values)) if total == total
                  else Occurrences(bucket_of(v) for v in values if v == v))
        for i, n in counts.items():
            h._buckets[i].inc(n)
        values.clear()


class Metrics:
    """All metrics of the pipeline in one registry (one per worker process)."""

    def __init__(self, registry: CollectorRegistry | None = None, settings: Any = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        # registration order is exposition order: keep it
        self._init_record_counters(r)
        self._init_latency_histograms(r)
        self._init_state_gauges(r)
        self._init_churn_and_schedule(r)
        self._init_reorder(r)
        self._pain_point = _CappedLabel(MAX_PAIN_POINTS)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}  # see _of
        self._commitments_at = 0.0
        self._init_labels(settings)
        self._init_tallies()

    # -- metric definitions ------------------------------------------------------------------------
    def _init_record_counters(self, r: CollectorRegistry) -> None:
        """Counters of records consumed, produced, dead-lettered, classified, alerted and failed."""
        self.consumed = Counter("pipeline_events_consumed_total",
                                "Records consumed by the per-customer agent, by topic and event kind.",
                                ["topic", "kind"], registry=r)
        self.produced = Counter("pipeline_events_produced_total",
                                "Records produced, by topic and the kind of the input event that caused them "
                                "(internal: partials, ticks, aggregates, clock-driven alerts).",
                                ["topic", "kind"], registry=r)
        self.deadletters = Counter("pipeline_deadletters_total", "Records dead-lettered, by reason code.",
                                   ["reason"], registry=r)
        self.classified = Counter("pipeline_classifications_total", "Classified events by language.",
                                  ["language"], registry=r)
        self.sentiment_sources = Counter(
            "pipeline_sentiment_sources_total",
            "Classified texts by language and where their sentiment came from: lexicon, or model (a learned "
            "model, self-trained or PIPELINE_SENTIMENT_MODEL; the version is on the enriched event).",
            ["language", "source"], registry=r)
        self.learned_model_sequence = Gauge(
            "pipeline_learned_model_sequence",
            "Sequence number of the self-trained model this worker applies per language and kind "
            "(<language>-<n>, pain-<language>-<n>); 0 or absent: none (lexicon / rules).",
            ["language", "kind"], registry=r)
        self.pain_points = Counter("pipeline_pain_points_total",
                                   "Pain points found in enriched events, by taxonomy id and language.",
                                   ["pain_point", "language"], registry=r)
        self.segment_pain_points = Counter(
            "pipeline_segment_pain_points_total",
            "Pain points by segment dimension (tier, lifecycle, channel, relationship) and value.",
            ["dimension", "value", "pain_point"], registry=r,
        )
        self.alerts = Counter("pipeline_alerts_total", "Alerts emitted, by type and severity.", ["type", "severity"],
                              registry=r)
        self.errors = Counter("pipeline_errors_total", "Errors, by stage.", ["stage"], registry=r)
        self.rebalances = Counter("pipeline_rebalances_total", "Partition assignments received.", registry=r)
        self.late_events = Counter("pipeline_late_events_total", "Events behind the watermark, by outcome.",
                                   ["outcome"], registry=r)

    def _init_latency_histograms(self, r: CollectorRegistry) -> None:
        """Processing and event-time latency histograms, and the batch size."""
        self.latency = Histogram(
            "pipeline_processing_latency_seconds",
            "Ingest (Kafka record time of the input record) to output produced, by output.", ["output"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.event_latency = Histogram(
            "pipeline_event_latency_seconds",
            "Event time (occurred_at) to output produced, by output; includes replay age.", ["output"],
            buckets=EVENT_LATENCY_BUCKETS, registry=r,
        )
        self.batch_size = Histogram("pipeline_batch_records", "Records per processed batch.",
                                    buckets=BATCH_BUCKETS, registry=r)
        # the event loop is busy for this long: a record arriving meanwhile waits (latency's cause)
        self.batch_seconds = Histogram("pipeline_batch_seconds", "Time an agent spent on one batch, by stage "
                                       "(ingest, aggregate; commit: stage 1's commits within it).", ["stage"],
                                       buckets=BATCH_SECONDS_BUCKETS, registry=r)
        for stage in BATCH_STAGES:  # a closed label set, created at start (no series appear later)
            self.batch_seconds.labels(stage)

    def _init_state_gauges(self, r: CollectorRegistry) -> None:
        """Consumer lag, table and commitment gauges, churn scores and assigned partitions."""
        self.consumer_lag = Gauge(
            "pipeline_consumer_lag_records",
            "Records not yet processed and committed: end offset (high watermark) "
            "minus the consumer group's committed offset, per input partition assigned to this "
            "worker (sampled every 5 s and at every scrape). A stuck agent shows its whole backlog here.",
            ["topic", "partition"], registry=r)
        self.table_keys = Gauge("pipeline_table_keys", "Keys held in a table on this worker (at scrape time).",
                                ["table"], registry=r)
        self.commitments = Gauge("pipeline_commitments",
                                 "Active commitments on this worker's partitions, by kind and status "
                                 "(open, warned, breached; at scrape time).", ["kind", "status"], registry=r)
        self.churn_score = Histogram("pipeline_churn_risk_score",
                                     "Churn-risk score (0-100) of customers at update time.",
                                     buckets=CHURN_SCORE_BUCKETS, registry=r)
        self.assigned_partitions = Gauge("pipeline_assigned_partitions", "Partitions assigned to this worker.",
                                         registry=r)

    def _init_churn_and_schedule(self, r: CollectorRegistry) -> None:
        """Churn rescoring on silence and the per-partition schedule gauges."""
        self.churn_rescores = Counter(
            "pipeline_churn_rescores_total",
            "Churn scores re-evaluated on silence: a customer's rescoring came due with no new event of it "
            "(next expected order, follow-up after a resolved complaint, open complaint ageing).", registry=r)
        self.churn_rescore_lateness = Histogram(
            "pipeline_churn_rescore_lateness_seconds",
            "Event-time seconds between a churn rescoring's due time and the clock that ran it.",
            buckets=EVENT_LATENCY_BUCKETS, registry=r)
        self.schedule_keys = Gauge(
            "pipeline_schedule_keys",
            "Customers with a due time in the partition's schedule (commitment deadline or churn rescoring), "
            "per partition this worker owns.", ["partition"], registry=r)
        self.schedule_overdue = Gauge(
            "pipeline_schedule_overdue_keys",
            "Schedule entries due at or before the partition's clock after its last sweep (left for the next one).",
            ["partition"], registry=r)

    def _init_reorder(self, r: CollectorRegistry) -> None:
        """Event-time reordering across a partition's topics (its release series created at 0)."""
        self.reorder_held = Gauge(
            "pipeline_reorder_held_records",
            "Input records held back to be applied in event-time order across a partition's topics "
            "(during a backlog; 0 when live).", registry=r)
        self.reorder_released = Counter(
            "pipeline_reorder_released_total",
            "Held records released: after_wait (in order, after waiting for a slower topic), wait_expired "
            "(PIPELINE_REORDER_MAX_WAIT_SECONDS ran out: may be out of order), over_bound "
            "(PIPELINE_REORDER_MAX_RECORDS reached: may be out of order), within_tolerance (at most "
            "PIPELINE_REORDER_TOLERANCE_SECONDS ahead of a topic's next record).", ["how"], registry=r)
        for how in REORDER_RELEASES:
            self.reorder_released.labels(how)

    # -- label sets --------------------------------------------------------------------------------
    def _init_labels(self, settings: Any) -> None:
        """Create the known label combinations at 0 (a dashboard sees 0, not "no data")."""
        for reason in DEADLETTER_REASONS:
            self.deadletters.labels(reason)
        for typ in ALERT_TYPES:
            for sev in SEVERITIES:
                self.alerts.labels(typ, sev)
        for stage in ERROR_STAGES:
            self.errors.labels(stage)
        for outcome in LATE_OUTCOMES:
            self.late_events.labels(outcome)
        for kind in COMMITMENT_KINDS:
            for status in COMMITMENT_STATUSES:
                self.commitments.labels(kind, status).set(0)
        self.latency.labels("enriched")
        self.event_latency.labels("enriched")
        if settings is not None:
            t = settings.topics
            for topic in t.inputs:
                self.consumed.labels(topic, t.kind_of(topic))
            for kind in EVENT_KINDS[:3]:
                self.produced.labels(t.enriched, kind)
            for kind in (*EVENT_KINDS, UNKNOWN):
                self.produced.labels(t.deadletter, kind)

    def _init_tallies(self) -> None:
        """The per-event counts waiting for :meth:`flush`, keyed by their (bounded) label values, and the
        values waiting for the per-event histograms."""
        self._consumed_n: dict[tuple[str, str], int] = {}  # (topic, kind)
        self._deadletters_n: dict[str, int] = {}  # reason
        self._alerts_n: dict[tuple[str, str], int] = {}  # (type, severity)
        self._classified_n: dict[tuple[str, str | None], int] = {}  # (language, sentiment source; None: und)
        self._pains_n: dict[tuple[str, str, tuple[tuple[str, str], ...]], int] = {}  # (id, language, segment)
        self._churn_scores = _Observations(self.churn_score)
        self._latencies = _Observations(self._of(self.latency, "enriched"))
        self._event_latencies = _Observations(self._of(self.event_latency, "enriched"))

    def learned_models(self, versions: Mapping[str, str]) -> None:
        """The self-trained models applied now (:meth:`pipeline.classify.selftrain.ModelRegistry.versions`)."""
        from .classify.selftrain import PAIN_KEY_PREFIX, version_sequence

        self.learned_model_sequence.clear()
        for key, version in versions.items():
            kind = "pain_points" if key.startswith(PAIN_KEY_PREFIX) else "sentiment"
            lang = bounded(key.removeprefix(PAIN_KEY_PREFIX), LANGUAGES)
            self.learned_model_sequence.labels(lang, kind).set(version_sequence(version))

    def segment_labels(self, segment: Mapping[str, Any]) -> list[tuple[str, str]]:
        """``[(dimension, bounded value)]`` of an enriched event's segment."""
        return [(dim, bounded(segment.get(field) or UNKNOWN, allowed))
                for dim, (field, allowed) in SEGMENT_VALUES.items()]

    # -- updates -------------------------------------------------------------------------------------
    def _of(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, remembered: prometheus_client validates and locks on every
        ``labels()`` call (~10 µs), and the per-event metrics take a dozen of them per event.  Every
        label value here is bounded (``bounded``, ``_CappedLabel``), so the map is too."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def record_produced(self, topic: str, kind: str | None, n: int = 1) -> None:
        self._of(self.produced, topic, bounded(kind or "internal", RECORD_KINDS)).inc(n)

    def record_alert(self, alert: Mapping[str, Any]) -> None:
        """Count an alert (applied on :meth:`flush`)."""
        key = (bounded(alert.get("type"), ALERT_TYPES), bounded(alert.get("severity"), SEVERITIES))
        self._alerts_n[key] = self._alerts_n.get(key, 0) + 1

    def observe_step(self, step: Any, topic: str, topic_kind: str | None, record_time: float | None = None) -> None:
        """Everything one processed record (a :class:`pipeline.process.Step`) contributes.  Its counts are
        tallied and its histogram values kept; they reach the metrics on :meth:`flush` (the driver's end of
        batch; :meth:`render` flushes first, so a scrape sees every step observed so far)."""
        now = time.time()
        key = (topic, bounded(step.kind or topic_kind or UNKNOWN, RECORD_KINDS))
        self._consumed_n[key] = self._consumed_n.get(key, 0) + 1
        if step.problems:
            for code in {p.code for p in step.problems}:
                reason = bounded(code, DEADLETTER_REASONS)
                self._deadletters_n[reason] = self._deadletters_n.get(reason, 0) + 1
        for alert in step.alerts:
            self.record_alert(alert)
        if step.churn_score is not None:
            self._churn_scores.values.append(step.churn_score)
        self._observe_rescores(step)
        doc = step.enriched
        if doc is None:
            return
        ingested = getattr(step, "record_time", None) or record_time
        if ingested:
            self._latencies.values.append(max(0.0, now - ingested))
        if step.event_time is not None:
            self._event_latencies.values.append(max(0.0, now - step.event_time))
        c = doc.get("classification")
        if c:
            self._tally_classification(c, doc)

    def _tally_classification(self, c: Mapping[str, Any], doc: Mapping[str, Any]) -> None:
        """Count an enriched event's language, sentiment source and pain points (by segment)."""
        lang = bounded(c.get("language"), LANGUAGES)
        src = None
        if lang != "und":
            src = "lexicon" if (c.get("sentiment") or {}).get("source", "lexicon") == "lexicon" else "model"
        key = (lang, src)
        self._classified_n[key] = self._classified_n.get(key, 0) + 1
        pains = c.get("pain_points")
        if pains:
            seg = tuple(self.segment_labels(doc.get("segment") or {}))
            for pp in pains:
                # capped here, in event order: which ids become "other" depends on the order they came
                pkey = (self._pain_point(pp["id"]), lang, seg)
                self._pains_n[pkey] = self._pains_n.get(pkey, 0) + 1

    def flush(self) -> None:
        """Apply the tallied counts, one ``inc(n)`` per label set (exact: the counts are whole numbers).
        Each tally keeps its keys in first-seen order, so new series are created in the order the
        per-event ``inc()`` calls would have created them (the exposition order)."""
        for (topic, kind), n in self._consumed_n.items():
            self._of(self.consumed, topic, kind).inc(n)
        for reason, n in self._deadletters_n.items():
            self._of(self.deadletters, reason).inc(n)
        for (typ, severity), n in self._alerts_n.items():
            self._of(self.alerts, typ, severity).inc(n)
        self._flush_classified()
        for (pid, lang, seg), n in self._pains_n.items():
            self._of(self.pain_points, pid, lang).inc(n)
            for dim, value in seg:
                self._of(self.segment_pain_points, dim, value, pid).inc(n)
        for tally in (self._consumed_n, self._deadletters_n, self._alerts_n, self._pains_n):
            tally.clear()
        for observations in (self._churn_scores, self._latencies, self._event_latencies):
            observations.apply()

    def _flush_classified(self) -> None:
        for (lang, src), n in self._classified_n.items():
            self._of(self.classified, lang).inc(n)
            if src is not None:
                # both series of a language seen exist (a share needs both)
                children = [self._of(self.sentiment_sources, lang, other) for other in SENTIMENT_SOURCES]
                children[SENTIMENT_SOURCES.index(src)].inc(n)
        self._classified_n.clear()

    def observe_advance(self, step: Any) -> None:
        """What one clock-driven step (:meth:`pipeline.process.Processor.advance`) adds besides its alerts
        (those are counted with :meth:`record_alert`)."""
        self._observe_rescores(step)

    def _observe_rescores(self, step: Any) -> None:
        n = getattr(step, "rescored", 0)
        if n:
            self.churn_rescores.inc(n)
            late = getattr(step, "rescore_late", None)
            if late is not None:
                self.churn_rescore_lateness.observe(late)

    def set_schedule(self, partition: int, size: int, overdue: int) -> None:
        """The schedule gauges of one partition (``size``: keys with a due time; ``overdue``: due by its clock)."""
        self.schedule_keys.labels(str(partition)).set(size)
        self.schedule_overdue.labels(str(partition)).set(overdue)

    def drop_schedule(self, partition: int) -> None:
        """Forget a revoked partition's schedule gauges."""
        for gauge in (self.schedule_keys, self.schedule_overdue):
            try:
                gauge.remove(str(partition))
            except KeyError:
                pass

    def set_commitments(self, summaries: Iterable[Mapping[str, Mapping[str, int]]]) -> None:
        """Set the commitment gauges from per-customer ``tracker.summary`` dicts."""
        totals = {(k, s): 0 for k in COMMITMENT_KINDS for s in COMMITMENT_STATUSES}
        for summary in summaries:
            for kind, row in summary.items():
                for status, n in row.items():
                    key = (kind, status)
                    if key in totals:
                        totals[key] += n
        for (kind, status), n in totals.items():
            self.commitments.labels(kind, status).set(n)

    def render(self) -> bytes:
        self.flush()  # a scrape between two of a batch's records sees what they added so far
        return generate_latest(self.registry)
