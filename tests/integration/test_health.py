"""/health and the lag gauge tell the truth: a stuck agent is 503 with its backlog in /metrics.

The stuck worker runs with ``tests/integration/faulty_handler`` on ``PYTHONPATH``;
its ``sitecustomize`` makes the agent's coroutine wait forever after the record
carrying ``__block_forever__`` (the event loop, hence the web server, keeps
running).  All records go to one customer, so they share a partition and the
records behind the blocked one are the backlog.

The healthy worker runs with ``PIPELINE_WEB_TOKEN`` and ``PIPELINE_DEBUG=1``: the
query endpoints need the bearer token, ``/health`` and ``/metrics`` do not, and
Faust's ``/table/…`` pages are not served at all.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.agents.common import partition_of
from pipeline.producers.publish import publish_raw
from pipeline.runtime import wait_for_group

pytestmark = pytest.mark.integration

HOOK = Path(__file__).parent / "faulty_handler"
CUSTOMER = "health-customer"
TOKEN = "s3cret-token-for-the-test"


def _feedback(i: int, text: str, customer: str = CUSTOMER) -> dict:
    return {
        "schema_version": 1, "event_id": f"health-fb-{customer}-{i}", "feedback_id": f"health-fb-{customer}-{i}",
        "customer_id": customer, "source": "review", "score": 2, "scale": {"min": 1, "max": 5},
        "occurred_at": f"2026-11-01T10:{i % 60:02d}:{i // 60 % 60:02d}Z", "text": text, "channel": "app",
    }


def _get(port: int, path: str, token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _lag(port: int) -> dict[tuple[str, str], float]:
    status, body = _get(port, "/metrics")
    assert status == 200
    return {(s.labels["topic"], s.labels["partition"]): s.value
            for fam in text_string_to_metric_families(body.decode()) for s in fam.samples
            if s.name == "pipeline_consumer_lag_records"}


def test_stuck_agent_makes_health_503_and_lag_shows_the_backlog(settings, worker_factory):
    s = settings
    env_path = os.pathsep.join(p for p in (str(HOOK), os.environ.get("PYTHONPATH", "")) if p)
    worker = worker_factory(s, PYTHONPATH=env_path)
    port = worker.web_port
    p = str(partition_of(CUSTOMER, s.partitions))

    warm = [(CUSTOMER.encode(), orjson.dumps(_feedback(i, "The delivery was late"))) for i in range(5)]
    publish_raw(s.topics.feedback, warm, s)
    wait_for_group(s, s.app_id, [s.topics.feedback], timeout=120)
    deadline = time.monotonic() + 15
    while (status := _get(port, "/health")[0]) != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert status == 200
    assert _lag(port).get((s.topics.feedback, p)) == 0

    behind = 300
    records = [(CUSTOMER.encode(), orjson.dumps(_feedback(100, "stuck here __block_forever__")))]
    records += [(CUSTOMER.encode(), orjson.dumps(_feedback(101 + i, "Support never called me back")))
                for i in range(behind)]
    sent = len(records)
    t0 = time.monotonic()
    publish_raw(s.topics.feedback, records, s)

    doc: dict = {}
    status = 0
    while time.monotonic() - t0 < 30:
        status, body = _get(port, "/health")
        doc = orjson.loads(body)
        if status == 503:
            break
        time.sleep(0.5)
    detected = time.monotonic() - t0
    lag = _lag(port)
    part = next((x for x in doc.get("partitions", ()) if x["topic"] == s.topics.feedback
                 and str(x["partition"]) == p), {})
    print(f"\nstuck agent: /health {status} after {detected:.1f}s (PIPELINE_STUCK_SECONDS default 20); "
          f"lag gauge {lag.get((s.topics.feedback, p))} of {sent} sent; partition {part}; reasons {doc.get('reasons')}")
    assert status == 503, doc
    assert doc["status"] == "stuck" and doc["reasons"]
    assert part["stuck"] and part["backlog"] == part["end"] - part["committed"] >= sent * 0.9
    assert part["committed_moved_seconds_ago"] >= 20
    assert sent * 0.9 <= lag[(s.topics.feedback, p)] <= sent
    assert worker.proc.poll() is None  # stuck, not dead: the web server kept answering
    # no token configured: the query endpoints are open, but Faust's table pages and /debug are not served
    assert _get(port, f"/table/customers/{CUSTOMER}/")[0] == 404
    assert _get(port, "/debug/tasks")[0] == 404
    worker.kill()  # a stuck agent does not finish a graceful stop (SIGTERM waits 30 s for it, then kill)


def test_healthy_worker_after_catching_up_token_and_no_table_pages(settings, worker_factory):
    s = settings
    worker = worker_factory(s, PIPELINE_WEB_TOKEN=TOKEN, PIPELINE_DEBUG="1")
    port = worker.web_port
    customers = [f"healthy-{c}" for c in range(12)]
    records = [(c.encode(), orjson.dumps(_feedback(i, "Great product, arrived on time", c)))
               for c in customers for i in range(10)]
    t0 = time.monotonic()
    publish_raw(s.topics.feedback, records, s)
    wait_for_group(s, s.app_id, [s.topics.feedback], timeout=120)
    caught_up = time.monotonic() - t0

    def caught_up_in_health(doc: dict) -> bool:  # /health shows the timer's sample (at most a second old)
        fb = [x for x in doc.get("partitions", ()) if x["topic"] == s.topics.feedback]
        return len(fb) == s.partitions and all(x["backlog"] == 0 for x in fb)

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        health = _get(port, "/health")
        doc = orjson.loads(health[1])
        if health[0] == 200 and caught_up_in_health(doc):
            break
        time.sleep(0.5)
    lag = _lag(port)
    print(f"\nhealthy worker: caught up in {caught_up:.1f}s; /health {health[0]} {doc['status']}; "
          f"lag {sum(lag.values()):.0f} over {len(lag)} partitions")
    assert health[0] == 200 and doc["status"] == "ok" and doc["reasons"] == []
    assert doc["agents"] and all(doc["agents"].values())
    assert doc["assigned_partitions"] > 0 and doc["recovered"] and not doc["rebalancing"]
    fb = [x for x in doc["partitions"] if x["topic"] == s.topics.feedback]
    assert len(fb) == s.partitions and all(x["backlog"] == 0 and x["committed"] == x["end"] for x in fb)
    assert sum(x["end"] for x in fb) == len(records)
    assert all(v == 0 for (topic, _), v in lag.items() if topic in s.topics.inputs)
    assert len([k for k in lag if k[0] == s.topics.feedback]) == s.partitions

    # /health and /metrics are open; everything else needs the bearer token
    assert _get(port, "/metrics")[0] == 200
    seg = "/segments/tier=general/top?window=1h"
    assert _get(port, seg)[0] == 401
    assert _get(port, seg, token="wrong")[0] == 401
    assert _get(port, seg, token=TOKEN)[0] == 200
    assert _get(port, "/router/")[0] == 401  # Faust's own pages too
    assert _get(port, "/debug/tasks", token=TOKEN)[0] == 200  # PIPELINE_DEBUG=1
    # Faust's table pages would serve a customer's state to anyone: not served, even with the token
    customer = customers[0]
    assert _get(port, f"/table/customers/{customer}/", token=TOKEN)[0] == 404
    assert _get(port, "/table/customers/", token=TOKEN)[0] == 404
