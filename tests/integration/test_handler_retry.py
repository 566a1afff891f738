"""A handler that raises for one record: bounded retries, then a dead letter; the partition keeps moving.

The worker runs with ``tests/integration/faulty_handler`` on ``PYTHONPATH``; its
``sitecustomize`` makes the processor raise for records carrying a marker (on
every attempt, or on the first one only).  All records go to one customer, so
they share a partition and the records after the poisoned one prove it moves on.
"""

from __future__ import annotations

import base64
import os
import re
import urllib.request
from pathlib import Path

import orjson
import pytest

from pipeline.producers.publish import publish_raw
from pipeline.runtime import wait_for_group
from pipeline.summary import read_topic

pytestmark = pytest.mark.integration

HOOK = Path(__file__).parent / "faulty_handler"


def _feedback(i: int, text: str) -> dict:
    return {
        "schema_version": 1, "event_id": f"retry-fb-{i}", "feedback_id": f"retry-fb-{i}",
        "customer_id": "retry-customer", "source": "review", "score": 2, "scale": {"min": 1, "max": 5},
        "occurred_at": f"2026-11-01T10:{i:02d}:00Z", "text": text, "channel": "app",
    }


def _metric(port: int, name: str, label: str) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    m = re.search(rf'^{name}\{{[^}}]*stage="{label}"[^}}]*\}} ([0-9.e+]+)$', body, re.M)
    return float(m.group(1)) if m else 0.0


def test_raising_handler_retries_then_dead_letters(settings, worker_factory):
    s = settings
    env_path = os.pathsep.join(p for p in (str(HOOK), os.environ.get("PYTHONPATH", "")) if p)
    worker = worker_factory(s, PYTHONPATH=env_path, PIPELINE_PROCESS_ATTEMPTS="3",
                            PIPELINE_RETRY_BACKOFF_SECONDS="0.01")
    texts = ["배송이 너무 늦었어요", "The delivery was late __raise_once__", "poison __raise_always__",
             "Great product, arrived on time", "환불이 아직 안 됐어요", "Support never called me back"]
    records = [(b"retry-customer", orjson.dumps(_feedback(i, text))) for i, text in enumerate(texts)]
    poisoned = records[2][1]
    publish_raw(s.topics.feedback, records, s)
    wait_for_group(s, s.app_id, [s.topics.feedback], timeout=120)

    enriched = {orjson.loads(v)["event_id"] for _, v in read_topic(s, s.topics.enriched)}
    dead = [orjson.loads(v) for _, v in read_topic(s, s.topics.deadletter)]
    expected = {f"retry-fb-{i}" for i in range(len(texts)) if i != 2}
    retries = _metric(worker.web_port, "pipeline_errors_total", "process_retry")
    print(f"\nsent={len(texts)} enriched={len(enriched)} dead={len(dead)} retries={retries:.0f}")
    assert enriched == expected  # the transient fault healed on retry; records after the poison moved on
    assert len(dead) == 1
    assert [e["code"] for e in dead[0]["errors"]] == ["processing_failed"]
    assert "after 3 attempt(s)" in dead[0]["errors"][0]["message"]
    assert base64.b64decode(dead[0]["original_b64"]) == poisoned
    assert retries == 3  # 1 for the transient record, 2 before giving up on the poisoned one
    assert worker.proc.poll() is None
