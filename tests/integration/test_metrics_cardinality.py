"""/metrics on a real worker: no customer data, and a series count that does not grow with customers.

A warm-up of 1,000 simulated customers, then 10,000 *other* customers (two halves of 5,000 with
other simulator seeds, so other ids) flow through the worker on the session's real Kafka broker.
The series (sample lines of the exposition) are counted after the warm-up, after the first half
and after the second: families with fixed label sets must not change at all; families labelled
from data (pain point x language, segment value x pain point, kinds) may gain combinations the
earlier traffic happened not to produce (e.g. more customers become ``at_risk`` as event time
moves on), but must stay within the bound of their closed label sets, so the whole exposition
stays under a ceiling computed from those sets, whatever the number of customers.  Every label
value must come from a closed vocabulary, and no customer id, order id, complaint id, event id
or text may appear anywhere in the body.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline import metrics as m
from pipeline.classify.taxonomy import load_taxonomy
from pipeline.producers.publish import publish
from pipeline.producers.simulator import iter_simulated_events
from pipeline.runtime import wait_for_group

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WARM_CUSTOMERS, WARM_ACTIVITY = 1_000, 2_000
CUSTOMERS, ACTIVITY = 10_000, 15_000  # in two halves: 10,000 profiles + 15,000 orders / feedback / complaints
# Families whose label values come from the data (pain point, language, segment, kind): bounded
# by closed label sets, but the warm-up need not have hit every combination.
DATA_LABELLED = {"pipeline_pain_points_total", "pipeline_segment_pain_points_total",
                 "pipeline_classifications_total", "pipeline_sentiment_sources_total", "pipeline_events_produced_total", "pipeline_events_consumed_total"}


def scrape(port: int) -> tuple[str, list]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    return body, [smp for fam in text_string_to_metric_families(body) for smp in fam.samples]


def vocabulary(settings) -> set[str]:
    words = {*m.RECORD_KINDS, *m.DEADLETTER_REASONS, *m.ALERT_TYPES, *m.SEVERITIES, *m.LANGUAGES,
             *m.COMMITMENT_KINDS, *m.COMMITMENT_STATUSES, *m.ERROR_STAGES, *m.LATE_OUTCOMES, *m.REORDER_RELEASES, *m.BATCH_STAGES, m.OTHER,
             *m.SENTIMENT_SOURCES, *m.LEARNED_MODEL_KINDS,
             "enriched", "customers", "segment_windows", *m.SEGMENT_VALUES}
    for _, allowed in m.SEGMENT_VALUES.values():
        words |= allowed
    words |= {c.id for c in load_taxonomy(settings.taxonomy_file).categories}
    t = settings.topics
    words |= {getattr(t, f) for f in t.__dataclass_fields__} | {settings.partials_topic, settings.case_ticks_topic}
    return words


def family_bounds(settings) -> dict[str, int]:
    """Upper bounds of series per metric name, from the closed label sets."""
    n_pp = len(load_taxonomy(settings.taxonomy_file).categories) + 1  # + other
    n_lang = len(m.LANGUAGES) + 1
    n_seg = sum(len(v) + 1 for _, v in m.SEGMENT_VALUES.values())
    return {
        "pipeline_pain_points_total": n_pp * n_lang,
        "pipeline_segment_pain_points_total": n_seg * n_pp,
        "pipeline_classifications_total": n_lang,
        "pipeline_sentiment_sources_total": n_lang * len(m.SENTIMENT_SOURCES),
        "pipeline_learned_model_sequence": n_lang * len(m.LEARNED_MODEL_KINDS),
        "pipeline_alerts_total": (len(m.ALERT_TYPES) + 1) * (len(m.SEVERITIES) + 1),
        "pipeline_deadletters_total": len(m.DEADLETTER_REASONS) + 1,
        "pipeline_consumer_lag_records": 8 * settings.partitions,  # topics consumed × partitions
        "pipeline_events_produced_total": 13 * len(m.RECORD_KINDS),  # topics × kinds
        "pipeline_events_consumed_total": 6 * len(m.RECORD_KINDS),
    }


def test_metrics_carry_no_customer_data_and_stay_bounded(settings, worker_factory):
    s = settings
    t = s.topics
    worker = worker_factory(s)
    sources = [*t.inputs, t.rekeyed]

    def run(seed: int, customers: int, activity: int) -> tuple[list, float]:
        t0 = time.monotonic()
        events = list(iter_simulated_events(customers + activity, seed=seed, data_dir=s.data_dir,
                                            customers=customers))
        publish(events, s, progress=False)
        wait_for_group(s, s.app_id, sources, timeout=900)
        return events, time.monotonic() - t0

    warm, t_warm = run(301, WARM_CUSTOMERS, WARM_ACTIVITY)
    _, before = scrape(worker.web_port)
    half1, t_half1 = run(302, CUSTOMERS // 2, ACTIVITY // 2)
    _, middle = scrape(worker.web_port)
    half2, t_half2 = run(303, CUSTOMERS // 2, ACTIVITY // 2)
    body, after = scrape(worker.web_port)

    big = half1 + half2
    customers = {ev["customer_id"] for _, ev in big}
    assert len(customers) == CUSTOMERS and not customers & {ev["customer_id"] for _, ev in warm}
    enriched_customers = len({ev["customer_id"] for kind, ev in big if kind != "customer_profile"})
    consumed = sum(smp.value for smp in after if smp.name == "pipeline_events_consumed_total")
    counts = [Counter(smp.name for smp in x) for x in (before, middle, after)]
    changed = {k: tuple(c[k] for c in counts) for k in counts[2] if len({c[k] for c in counts}) > 1}
    print(f"\nseries: {len(before)} after the warm-up ({WARM_CUSTOMERS:,} customers, {t_warm:.0f}s), "
          f"{len(middle)} after {CUSTOMERS // 2:,} more customers ({t_half1:.0f}s), {len(after)} after "
          f"{CUSTOMERS:,} more ({t_half2:.0f}s); {enriched_customers:,} of the {CUSTOMERS:,} with orders/feedback/"
          f"complaints; records consumed {consumed:,.0f}; families that changed (before, middle, after): {changed}")

    assert consumed >= len(warm) + len(big)
    # Families with fixed label sets (created at start or per assigned partition) do not change at all.
    for name in counts[2].keys() | counts[0].keys():
        if name not in DATA_LABELLED:
            assert counts[0][name] == counts[2][name], (name, counts[0][name], counts[2][name])
    # Families labelled from data stay within the bounds of their closed label sets ...
    for name, bound in family_bounds(s).items():
        assert counts[2][name] <= bound, (name, counts[2][name], bound)
    # So the whole exposition has a ceiling that does not depend on the number of customers.
    bounds = family_bounds(s)
    ceiling = sum(n for name, n in counts[0].items() if name not in DATA_LABELLED) + \
        sum(bounds[name] for name in DATA_LABELLED)
    print(f"ceiling from the closed label sets: {ceiling} series")
    assert len(before) <= len(middle) <= len(after) <= ceiling
    assert len(after) - len(before) < CUSTOMERS // 100  # far from one series per customer

    # Closed vocabulary of label values; nothing customer-specific anywhere in the body.
    words = vocabulary(s)
    for smp in after:
        for label, value in smp.labels.items():
            assert value in words or re.fullmatch(r"[0-9.e+]+|\+Inf", value), (smp.name, label, value)
    ids = set()
    for _, ev in warm + big:
        ids |= {ev[f] for f in ("customer_id", "order_id", "complaint_id", "event_id") if ev.get(f)}
    leaked = [i for i in ids if i in body]
    assert not leaked, leaked[:10]
    texts = {ev["text"][:24] for _, ev in warm + big if len(ev.get("text") or "") >= 24}
    assert texts and not [x for x in texts if x in body]
