"""Issue 14: a produce failure stops the worker before its input offset is committed; the restart is exact.

The broker is made to refuse the worker's enriched records (``max.message.bytes`` of
``events.enriched`` lowered below their size: a non-retriable ``RecordTooLarge``).
The worker must exit with its fail-stop status and one log line, the group's
committed offsets must stay below every record whose output was refused, and a
worker started after the topic is fixed must enrich every record exactly once.
"""

from __future__ import annotations

import time
from collections import Counter

import orjson
import pytest

from pipeline.agents.failstop import EXIT_FATAL
from pipeline.producers.publish import publish
from pipeline.producers.simulator import iter_simulated_events
from pipeline.runtime import group_lag, wait_for_group
from pipeline.summary import read_topic

pytestmark = pytest.mark.integration


def _orders(data_dir, n, seed):
    out = []
    for kind, ev in iter_simulated_events(None, seed=seed, data_dir=data_dir, customers=40):
        if kind == "order":
            out.append((kind, ev))
            if len(out) == n:
                return out
    raise AssertionError("simulator ran dry")


def _set_max_message_bytes(s, topic, value):
    from kafka.admin import ConfigResource, ConfigResourceType

    from pipeline.kafka_security import admin_client

    admin = admin_client(s)
    try:
        configs = {"max.message.bytes": ("DELETE", None) if value is None else ("SET", str(value))}
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)])
    finally:
        admin.close()


def test_produce_failure_stops_the_worker_before_the_commit(settings, worker_factory):
    s = settings
    t = s.topics
    inputs = [*t.inputs, t.rekeyed]
    before, after = _orders(s.data_dir, 20, seed=31), _orders(s.data_dir, 30, seed=32)[20:]
    w = worker_factory(s)
    publish(before, s, progress=False)
    wait_for_group(s, s.app_id, inputs, timeout=120)

    _set_max_message_bytes(s, t.enriched, 200)  # every enriched record is larger: refused by the broker
    w.meant_to_run = False  # its exit is the point of the test
    publish(after, s, progress=False)
    deadline = time.monotonic() + 120
    while w.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    code = w.proc.poll()
    log = w.log_path.read_text(errors="replace")
    stop_lines = [line for line in log.splitlines() if "fail-stop" in line]
    uncommitted = group_lag(s, s.app_id, inputs)
    print(f"\nworker exit status {code}; fail-stop lines {len(stop_lines)}; "
          f"uncommitted input records {uncommitted} of {len(after)} sent after the fault")
    assert code == EXIT_FATAL
    assert len(stop_lines) == 1 and "produce_failed" in stop_lines[0]
    assert uncommitted == len(after)  # nothing whose output was refused was committed

    _set_max_message_bytes(s, t.enriched, None)
    worker_factory(s)
    wait_for_group(s, s.app_id, inputs, timeout=180)
    counts = Counter(orjson.loads(v)["event_id"] for _, v in read_topic(s, t.enriched))
    sent = {ev["event_id"] for _, ev in before + after}
    lost = sent - set(counts)
    dupes = sum(n - 1 for n in counts.values() if n > 1)
    print(f"sent {len(sent)}, enriched {len(counts)}, lost {len(lost)}, duplicated {dupes}")
    assert not lost and dupes == 0
