"""Issue 5 acceptance on the real broker: an Olist replay's delivery alerts equal the CSV truth,
also when the worker is killed with SIGKILL in the middle of the replay and restarted."""

from __future__ import annotations

import os
import time

import pytest

from pipeline.commitments.model import CommitmentConfig
from pipeline.control import advance_clock
from pipeline.producers.olist import iter_olist_events, last_due
from pipeline.producers.publish import publish
from pipeline.runtime import group_lag, wait_for_group
from pipeline.verify_olist import alerted_orders, truth_from_csv

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# A stall bound, not a speed target: a healthy restart catches up in well under a minute on 2 cores
# (docs/reliability.md has the measured times); the stall seen in CI lasted many minutes.
STALL_SECONDS = 120


def _wait_progress(s, topics, fraction, timeout=120):
    """Poll until the group has consumed at least ``fraction`` of what is in ``topics``."""
    from pipeline.runtime import end_offsets

    total = sum(end_offsets(s, topics).values())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if group_lag(s, s.app_id, topics) <= total * (1 - fraction):
            return
        time.sleep(0.2)
    raise TimeoutError("no progress")


def _explain_order_errors(s, errors, killed_at, port):
    """Print, for a few reviews counted wrong, every enriched copy of the review and of the
    customer's orders: when and from which offset each was processed (debugging aid)."""
    import orjson

    from pipeline.summary import read_topic

    wrong = {e[0] for e in errors}
    docs = [orjson.loads(v) for _, v in read_topic(s, s.topics.enriched)]
    customers = {d["customer_id"] for d in docs if d["event_id"] in wrong}
    print(f"killed at {killed_at}")
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if "reorder" in line and not line.startswith("#"):
                print(line)
    for d in docs:
        if d["customer_id"] in customers:
            pr = d["processing"]
            print(d["customer_id"][-6:], d["kind"], d["event"].get("type"), d["event_id"], d["occurred_at"],
                  pr["source_topic"], pr["partition"], pr["offset"], pr["processed_at"], pr.get("rekeyed"),
                  d["segment"]["orders_count"])


def olist_events(olist, via_import: bool):
    """The built-in adapter's events, or (issue 18) the same data through the generic importer and
    ``deploy/import/olist.yaml``."""
    if not via_import:
        return iter_olist_events(olist)
    from pathlib import Path

    from pipeline.config import load_settings
    from pipeline.producers.importer import import_rows, load_mapping

    mapping = load_mapping(Path(__file__).resolve().parents[2] / "deploy" / "import" / "olist.yaml", olist)
    got = import_rows(mapping, load_settings({}).time_limits, time.time())
    assert not got.rejects
    return iter(got.events)


@pytest.mark.parametrize("crash,via_import", [(False, False), (True, False), (False, True)],
                         ids=["clean", "kill-9-mid-replay", "generic-importer"])
def test_olist_delivery_alerts_equal_csv_truth(settings, worker_factory, crash, via_import):
    s = settings
    olist = s.data_dir / "olist_subset_5k"
    if not olist.exists():
        pytest.skip("Olist data missing")
    # a worker restarted in place (same host and port, a StatefulSet pod or a systemd unit) with
    # static membership (PIPELINE_GROUP_INSTANCE_ID=auto): it takes its partitions back without
    # waiting for the session timeout (docs/reliability.md)
    member = {"PIPELINE_GROUP_INSTANCE_ID": "auto"} if crash else {}
    w = worker_factory(s, **member)
    t = s.topics
    inputs = [*t.inputs, t.rekeyed]
    sent = publish(olist_events(olist, via_import), s, progress=False)
    if crash:
        _wait_progress(s, inputs, 0.4)
        w.kill()
        killed_at = time.time()
        print(f"\nkilled worker (SIGKILL) with {group_lag(s, s.app_id, inputs)} records not yet committed")
        restarted = time.monotonic()
        worker_factory(s, port=w.web_port, **member)
        ready = time.monotonic() - restarted
        left = group_lag(s, s.app_id, inputs)
        # a restarted worker that stalls while reporting itself healthy is a silent outage (issue 14):
        # from the restart to every input record processed and committed
        wait_for_group(s, s.app_id, inputs, timeout=STALL_SECONDS)
        print(f"restart to caught up: {time.monotonic() - restarted:.1f} s (bound {STALL_SECONDS} s; "
              f"ready after {ready:.1f} s with {left} records to go)")
    advance_clock(s, last_due(olist) + 7 * 86400)
    wait_for_group(s, s.app_id, [*inputs, t.ticks, s.partials_topic], timeout=600)
    truth = truth_from_csv(olist, CommitmentConfig.from_env(os.environ).warn_delivery_seconds)
    by_type, total, dupes = alerted_orders(s)
    unmet = by_type.get("unmet_commitment", set())
    at_risk = by_type.get("commitment_at_risk", set())
    print(f"sent {sent}; commitment alerts {total}, duplicate ids {dupes}")
    print(f"unmet: CSV {len(truth.unmet)} alerted {len(unmet)} diff {sorted(truth.unmet ^ unmet)[:5]}")
    print(f"at risk: CSV {len(truth.at_risk)} alerted {len(at_risk)} diff {sorted(truth.at_risk ^ at_risk)[:5]}")
    assert unmet == truth.unmet
    assert at_risk == truth.at_risk
    assert dupes == 0
    # Issue 15: every review counts exactly the customer's orders placed before it (event-time order)
    from tests.integration.test_event_order import segment_errors

    checked, errors = segment_errors(s)
    print(f"reviews checked for their order count: {checked}, wrong: {len(errors)} {errors[:5]}")
    if errors:
        _explain_order_errors(s, errors[:8], killed_at if crash else None, w.web_port)
    assert checked > 0 and not errors
    # Issue 18: value tiers by rank hold the 80/20 rule on real data
    from pipeline.verify_olist import tier_figures

    tiers = tier_figures(s)
    print(tiers.table())
    assert 0.15 <= tiers.share("key") <= 0.25
    assert tiers.spend_share("key") >= 0.5
    # Issue 18: a 1-star review of a late order counts under that order's seller and categories
    import orjson

    from pipeline.aggregate.dimensions import dimensions_of
    from pipeline.summary import read_topic
    from pipeline.verify_olist import late_one_star_reviews

    wanted = late_one_star_reviews(olist)
    joined = 0
    for _, value in read_topic(s, t.enriched):
        doc = orjson.loads(value)
        if doc["event_id"] in wanted:
            order_id, seller, _ = wanted[doc["event_id"]]
            assert doc["order"]["order_id"] == order_id and doc["order"]["seller_id"] == seller
            assert ("seller", seller) in dimensions_of(doc)
            assert any(d == "category" for d, _ in dimensions_of(doc))
            joined += 1
    print(f"1-star reviews of late orders: {len(wanted)} in the CSV, {joined} counted under their order's seller")
    assert joined == len(wanted) > 0
    # Issue 6: customers crossing the churn threshold vs everyone else.
    from pipeline.verify_olist import churn_table

    table, rows = churn_table(s)
    print(table)
    crossed, rest = rows["crossed threshold"], rows["everyone else"]
    assert crossed["customers"] > 0
    assert crossed["late_share"] > rest["late_share"] and crossed["mean_review"] < rest["mean_review"]
