"""The per-event metrics are tallied and applied once per batch (``Metrics.flush``): the exposition
must be what the per-event ``inc()`` / ``observe()`` calls made, at every render (a scrape)."""

from __future__ import annotations

import itertools
import math
import random
import time
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Histogram

from pipeline import metrics as mm
from pipeline.config import load_settings
from pipeline.metrics import Metrics, _Observations
from pipeline.process import Problem, Processor, Record, Step

S = load_settings({})
T = S.topics
NOW = 1_800_000_000.0


def per_event(m: Metrics, step: Any, topic: str, topic_kind: str | None, record_time: float | None = None) -> None:
    """What ``observe_step`` did before the tallies: every count and observation at once, public API only."""
    m.consumed.labels(topic, mm.bounded(step.kind or topic_kind or mm.UNKNOWN, mm.RECORD_KINDS)).inc()
    for code in {p.code for p in step.problems}:
        m.deadletters.labels(mm.bounded(code, mm.DEADLETTER_REASONS)).inc()
    for alert in step.alerts:
        m.alerts.labels(mm.bounded(alert.get("type"), mm.ALERT_TYPES),
                        mm.bounded(alert.get("severity"), mm.SEVERITIES)).inc()
    if step.churn_score is not None:
        m.churn_score.observe(step.churn_score)
    m.observe_advance(step)
    doc = step.enriched
    if doc is None:
        return
    ingested = step.record_time or record_time
    if ingested:
        m.latency.labels("enriched").observe(max(0.0, time.time() - ingested))
    if step.event_time is not None:
        m.event_latency.labels("enriched").observe(max(0.0, time.time() - step.event_time))
    c = doc.get("classification")
    if c:
        lang = mm.bounded(c.get("language"), mm.LANGUAGES)
        m.classified.labels(lang).inc()
        if lang != "und":
            src = "lexicon" if (c.get("sentiment") or {}).get("source", "lexicon") == "lexicon" else "model"
            children = [m.sentiment_sources.labels(lang, other) for other in mm.SENTIMENT_SOURCES]
            children[mm.SENTIMENT_SOURCES.index(src)].inc()
        if c.get("pain_points"):
            seg = m.segment_labels(doc.get("segment") or {})
            for pp in c["pain_points"]:
                pid = m._pain_point(pp["id"])
                m.pain_points.labels(pid, lang).inc()
                for dim, value in seg:
                    m.segment_pain_points.labels(dim, value, pid).inc()


def real_steps() -> list[tuple[Step, str]]:
    from pipeline.producers.publish import topic_for
    from pipeline.producers.simulator import iter_simulated_events

    p, store, out = Processor(S), {}, []
    events = iter_simulated_events(None, seed=11, data_dir=S.data_dir, customers=40)
    for n, (kind, ev) in enumerate(itertools.islice(events, 700)):
        topic = topic_for(kind, S)
        rec = Record(topic, 0, n, str(ev["customer_id"]).encode(), orjson.dumps(ev), NOW - 3600 + n)
        step = p.process(rec, store.get, now=NOW)
        if step.state is not None:
            store[step.state_key] = step.state
        out.append((step, topic))
    return out


def odd_steps() -> list[tuple[Step, str]]:
    """Unbounded labels (new ``other`` series mid-run), pain ids past the cap, dead letters, odd scores."""
    doc = {"segment": {"value_tier": "platinum", "lifecycle": "active", "channel": None},
           "classification": {"language": "tlh", "sentiment": {"source": "model-3"},
                              "pain_points": [{"id": f"pp{i}"} for i in range(mm.MAX_PAIN_POINTS + 3)]}}
    return [
        (Step(kind="weird", enriched=doc, alerts=[{"type": "made_up", "severity": "low"}], churn_score=math.nan,
              event_time=NOW - 5, record_time=NOW - 1), "events.feedback"),
        (Step(kind=None, problems=[Problem("not_json", "x"), Problem("bogus", "y"), Problem("bogus", "z")],
              alerts=[{"type": "churn_risk", "severity": "apocalyptic"}], churn_score=150), "events.orders"),
        (Step(kind="order", churn_score=math.inf, rescored=2, rescore_late=3.5), "events.orders"),
        (Step(kind="unknown"), "events.orders"),
        (Step(kind="order", churn_score=-2.0, enriched={"classification": {"language": "und"}}, event_time=NOW + 9),
         "events.orders"),
    ]


def test_tallied_exposition_equals_the_per_event_one_at_every_render(monkeypatch):
    monkeypatch.setattr(time, "time", lambda: NOW)
    steps = real_steps()
    steps[350:350] = odd_steps()
    assert any(s.enriched and s.enriched["classification"].get("pain_points") for s, _ in steps)
    assert any(s.alerts for s, _ in steps)
    batched, reference = Metrics(settings=S), Metrics(settings=S)
    rnd = random.Random(3)
    for i, (step, topic) in enumerate(steps):
        batched.observe_step(step, topic, T.kind_of(topic), NOW - 60)
        per_event(reference, step, topic, T.kind_of(topic), NOW - 60)
        if i % 97 == 0:
            batched.flush()  # the driver's end of a batch
        if rnd.random() < 0.05:  # a scrape mid-batch flushes first
            assert batched.render() == reference.render(), i
    assert batched.render() == reference.render()
    assert b'pipeline_segment_pain_points_total{dimension="tier"' in reference.render()


def test_observations_apply_as_observe_per_value():
    values = [0.3, 5.0, 5, 0.0, -1.0, 1e9, 0.1 + 0.2, 7.000001, math.inf, 2.5] * 3
    for extra in ([], [math.nan, 1.0], [math.inf, -math.inf]):
        for start in ([], [0.7, 1e-9]):
            r1, r2 = CollectorRegistry(), CollectorRegistry()
            h1 = Histogram("h", "h", buckets=(0.1, 1, 5, 10), registry=r1)
            h2 = Histogram("h", "h", buckets=(0.1, 1, 5, 10), registry=r2)
            tally = _Observations(h2)
            for v in start:
                h1.observe(v)
                h2.observe(v)
            for v in values + extra + values:
                h1.observe(v)
                tally.values.append(v)
            tally.apply()
            assert not tally.values
            s1 = {(s.name, s.labels.get("le")): s.value for s in r1.collect().__next__().samples}
            s2 = {(s.name, s.labels.get("le")): s.value for s in r2.collect().__next__().samples}
            assert repr(s1) == repr(s2), (extra, start)  # repr: NaN sums compare equal too
