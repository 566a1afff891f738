"""Metrics: names follow Prometheus conventions, labels are bounded, no customer data leaks."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
from prometheus_client.parser import text_string_to_metric_families

from pipeline.config import load_settings
from pipeline.metrics import (
    ALERT_TYPES,
    DEADLETTER_REASONS,
    MAX_PAIN_POINTS,
    SEVERITIES,
    Metrics,
)
from pipeline.process import Processor, Record, Step

ROOT = Path(__file__).resolve().parents[2]
S = load_settings({})
T = S.topics


def example(name: str) -> dict:
    return orjson.loads((ROOT / "schemas/examples" / name).read_bytes())


def samples(m: Metrics) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(m.render().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: Metrics, name: str, **labels: str) -> float:
    return samples(m).get((name, tuple(sorted(labels.items()))), 0.0)


def test_names_follow_prometheus_conventions():
    m = Metrics(settings=S)
    for fam in text_string_to_metric_families(m.render().decode()):
        assert fam.name.startswith("pipeline_"), fam.name
        assert re.fullmatch(r"[a-z_]+", fam.name)
        if fam.type == "counter":
            assert any(s.name == fam.name + "_total" for s in fam.samples) or not fam.samples, fam.name
        if "latency" in fam.name:
            assert fam.name.endswith("_seconds"), fam.name
        assert not fam.name.endswith("_milliseconds")


def test_known_label_sets_exist_at_zero_before_any_event():
    m = Metrics(settings=S)
    for reason in DEADLETTER_REASONS:
        assert ("pipeline_deadletters_total", (("reason", reason),)) in samples(m)
    for typ in ALERT_TYPES:
        for sev in SEVERITIES:
            assert value(m, "pipeline_alerts_total", type=typ, severity=sev) == 0
    assert value(m, "pipeline_commitments", kind="delivery", status="breached") == 0
    assert ("pipeline_events_consumed_total", (("kind", "order"), ("topic", T.orders))) in samples(m)


def run(p: Processor, store: dict, rec: Record) -> Step:
    step = p.process(rec, store.get, now=1_800_000_000.0)
    if step.state is not None:
        store[step.state_key] = step.state
    return step


def test_observe_real_steps_counts_and_never_leaks_ids_or_text():
    p, store, m = Processor(S), {}, Metrics(settings=S)
    events = [
        (T.profiles, example("customer_profile/key_strategic_ko.json")),
        (T.orders, example("order_event/placed.json")),
        (T.complaints, example("complaint_event/opened_ko.json")),
        (T.complaints, example("complaint_event/opened_en.json")),
        (T.feedback, example("feedback_event/review_olist_pt.json")),
    ]
    steps = []
    for i, (topic, ev) in enumerate(events):
        step = run(p, store, Record(topic, 0, i, ev["customer_id"].encode(), orjson.dumps(ev), 1.7e9))
        m.observe_step(step, topic, T.kind_of(topic))
        for out in step.outputs:
            m.record_produced(out.topic, out.kind)
        steps.append(step)
    bad = Record(T.orders, 0, 99, b"k", b"{not json", 1.7e9)
    dead = run(p, store, bad)
    m.observe_step(dead, T.orders, "order")
    for out in dead.outputs:
        m.record_produced(out.topic, out.kind)

    assert value(m, "pipeline_events_consumed_total", topic=T.orders, kind="order") == 2
    assert value(m, "pipeline_events_consumed_total", topic=T.complaints, kind="complaint") == 2
    assert value(m, "pipeline_events_produced_total", topic=T.enriched, kind="complaint") == 2
    assert value(m, "pipeline_events_produced_total", topic=T.deadletter, kind="order") == 1
    assert value(m, "pipeline_deadletters_total", reason="not_json") == 1
    assert value(m, "pipeline_processing_latency_seconds_count", output="enriched") == 4
    assert value(m, "pipeline_event_latency_seconds_count", output="enriched") == 4
    langs = {lab[1] for (name, labels) in samples(m) for lab in labels
             if name == "pipeline_classifications_total" and lab[0] == "language"}
    assert {"ko", "en"} <= langs
    found = [(dict(labels), v) for (name, labels), v in samples(m).items() if name == "pipeline_pain_points_total"]
    assert found and all(set(d) == {"pain_point", "language"} for d, _ in found)
    seg = [dict(labels) for (name, labels), v in samples(m).items()
           if name == "pipeline_segment_pain_points_total"]
    assert {d["dimension"] for d in seg} == {"tier", "lifecycle", "channel", "relationship"}

    body = m.render().decode()
    for _, ev in events:
        for field in ("customer_id", "order_id", "complaint_id", "event_id"):
            if ev.get(field):
                assert ev[field] not in body
        if ev.get("text"):
            assert ev["text"][:20] not in body
    # Every label value comes from a closed vocabulary (or is a number / a configured topic name).
    vocabulary = label_vocabulary(p)
    for fam in text_string_to_metric_families(body):
        for smp in fam.samples:
            for label, v in smp.labels.items():
                assert v in vocabulary or re.fullmatch(r"[0-9.e+]+|\+Inf", v), (smp.name, label, v)


def label_vocabulary(p: Processor) -> set[str]:
    from pipeline import metrics as mm

    words = {*mm.RECORD_KINDS, *mm.DEADLETTER_REASONS, *mm.ALERT_TYPES, *mm.SEVERITIES, *mm.LANGUAGES,
             *mm.COMMITMENT_KINDS, *mm.COMMITMENT_STATUSES, *mm.ERROR_STAGES, *mm.LATE_OUTCOMES, *mm.REORDER_RELEASES, *mm.BATCH_STAGES, mm.OTHER,
             *mm.SENTIMENT_SOURCES, *mm.LEARNED_MODEL_KINDS,
             "enriched", "customers", "segment_windows", *mm.SEGMENT_VALUES}
    for _, allowed in mm.SEGMENT_VALUES.values():
        words |= allowed
    words |= {c.id for c in p.taxonomy.categories}
    words |= {getattr(T, f) for f in T.__dataclass_fields__}
    return words


def test_unbounded_values_become_other():
    m = Metrics()
    doc = {
        "segment": {"value_tier": "platinum-customer-42", "lifecycle": "active", "channel": "carrier pigeon",
                    "relationship_level": None, "region": "KR-Seoul"},
        "classification": {"language": "tlh", "pain_points": [{"id": f"pp{i}"} for i in range(MAX_PAIN_POINTS + 10)]},
    }
    step = Step(kind="weird-kind", enriched=doc, alerts=[{"type": "made_up", "severity": "apocalyptic"}])
    m.observe_step(step, "events.feedback", "feedback")
    s = samples(m)
    assert value(m, "pipeline_events_consumed_total", topic="events.feedback", kind="other") == 1
    assert value(m, "pipeline_classifications_total", language="other") == 1
    assert value(m, "pipeline_alerts_total", type="other", severity="other") == 1
    pids = {dict(lab)["pain_point"] for (name, lab) in s if name == "pipeline_pain_points_total"}
    assert len(pids) == MAX_PAIN_POINTS + 1 and "other" in pids
    segs = {(dict(lab)["dimension"], dict(lab)["value"]) for (name, lab) in s
            if name == "pipeline_segment_pain_points_total"}
    assert segs == {("tier", "other"), ("lifecycle", "active"), ("channel", "other"), ("relationship", "unknown")}
    assert "KR-Seoul" not in m.render().decode()  # region is never a label


def test_commitment_gauges_sum_customer_summaries():
    m = Metrics()
    m.set_commitments([{"delivery": {"open": 2, "warned": 1, "breached": 0}},
                       {"delivery": {"open": 1, "warned": 0, "breached": 3}, "refund": {"open": 1}}])
    assert value(m, "pipeline_commitments", kind="delivery", status="open") == 3
    assert value(m, "pipeline_commitments", kind="delivery", status="breached") == 3
    assert value(m, "pipeline_commitments", kind="refund", status="open") == 1
    m.set_commitments([])
    assert value(m, "pipeline_commitments", kind="delivery", status="open") == 0
