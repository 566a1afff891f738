"""100,000 random invalid records through Kafka: no crash, every one dead-lettered, nothing lost.

A seeded mix of breakages (``pipeline.producers.broken.random_invalid_records``:
random bytes, broken UTF-8, not JSON, truncated JSON, non-objects, deep nesting,
schema violations, oversize, empty and null values; keys customer-like, random
or missing) goes to the four input topics through one batching aiokafka producer
(several times faster than kafka-python here).  One worker consumes them; the
dead-letter topic is read back with aiokafka.  Then:

* every input coordinate (topic, partition, offset) has exactly one dead letter,
  and the dead letters' original bytes equal the bytes sent, per topic;
* the worker is still alive and healthy, and a valid order sent afterwards comes
  out enriched.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import Counter

import orjson
import pytest

from pipeline.producers.broken import _order, random_invalid_records
from pipeline.kafka_security import aiokafka_kwargs
from pipeline.producers.publish import publish, topic_for
from pipeline.runtime import end_offsets, wait_for_group
from pipeline.summary import read_topic
from pipeline.topics import ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N = 100_000
MAX_BYTES = 2048  # small, so the oversize share stays cheap to move around


async def _produce(settings, records) -> None:
    """Send every (topic, key, value); raise if any send fails."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**aiokafka_kwargs(settings), acks="all", enable_idempotence=True,
                                linger_ms=20, max_batch_size=512 * 1024, max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, key=key, value=value) for topic, key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _read_all(settings, topic: str, timeout: float = 300.0) -> list[bytes]:
    """Every value currently in ``topic`` (up to its end offsets)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(**aiokafka_kwargs(settings), enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level="read_committed",
                                fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024)
    await consumer.start()
    out: list[bytes] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]  # topics made by ensure_topics
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=500, max_records=20000)).items():
                out.extend(r.value for r in records if r.offset < ends[tp])
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        assert not remaining, f"could not read {topic} to its end within {timeout}s"
    finally:
        await consumer.stop()
    return out


class HealthWatch:
    """Polls ``/health`` every 2 s in a thread; keeps each 503 body and, for the first ones, the
    worker's ``/debug/tasks`` dump (commit and reorder state) taken at that moment."""

    def __init__(self, port: int) -> None:
        import threading

        self.port = port
        self.polls = 0
        self.stuck: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        import urllib.error
        import urllib.request

        base = f"http://127.0.0.1:{self.port}"
        while not self._stop.wait(2.0):
            self.polls += 1
            try:
                urllib.request.urlopen(f"{base}/health", timeout=10).read()
            except urllib.error.HTTPError as exc:
                body = exc.read().decode(errors="replace")
                debug = ""
                if len(self.stuck) < 3:
                    try:
                        debug = urllib.request.urlopen(f"{base}/debug/tasks", timeout=30).read().decode()
                    except Exception as err:  # diagnostics only
                        debug = repr(err)
                self.stuck.append((body, debug))
            except Exception:  # busy worker: a slow answer is not a verdict
                pass


def test_100k_random_invalid_records_all_dead_lettered(kafka_bootstrap, worker_factory):
    from tests.conftest import fresh_settings

    s = fresh_settings(kafka_bootstrap, max_event_bytes=MAX_BYTES)
    ensure_topics(s)
    worker = worker_factory(s, PIPELINE_DEBUG="1")  # /debug/tasks says why, should /health not answer 200
    t = s.topics

    records = [(topic_for(b.kind, s), b.key, b.value)
               for b in random_invalid_records(N, seed=2026, max_bytes=MAX_BYTES)]
    watch = HealthWatch(worker.web_port)
    watch.start()
    sent = Counter((topic, value) for topic, _, value in records)
    t0 = time.monotonic()
    asyncio.run(_produce(s, records))
    t_sent = time.monotonic() - t0
    ends = end_offsets(s, list(t.inputs))
    assert sum(ends.values()) == N

    wait_for_group(s, s.app_id, [*t.inputs, t.rekeyed], timeout=600, poll=1.0)
    t_consumed = time.monotonic() - t0
    watch.stop()
    print(f"\n/health polled {watch.polls} times during the backlog, 503 {len(watch.stuck)} times")
    for body, debug in watch.stuck[:1]:
        print(body[:1500])
        print("\n".join(line for line in debug.splitlines()
                        if "commit (" in line or "position" in line or "unacked" in line or "paused" in line or "active_" in line
                        or line.startswith("state ")))

    t1 = time.monotonic()
    coords: Counter = Counter()
    dead: Counter = Counter()
    codes: Counter = Counter()
    for value in asyncio.run(_read_all(s, t.deadletter)):
        doc = orjson.loads(value)
        src = doc["source"]
        coords[(src["topic"], src["partition"], src["offset"])] += 1
        dead[(src["topic"], base64.b64decode(doc["original_b64"]))] += 1
        codes[doc["errors"][0]["code"]] += 1
    t_read = time.monotonic() - t1

    expected = Counter({(tp, p, o): 1 for (tp, p), end in ends.items() for o in range(end)})
    lost = sum((expected - coords).values())
    duplicated = sum(coords.values()) - len(coords)
    stray = sum((coords - expected).values()) - duplicated
    print(f"\nsent={N} dead-lettered={sum(coords.values())} lost={lost} duplicated={duplicated} stray={stray}; "
          f"produce {t_sent:.1f}s ({N / t_sent:,.0f}/s), consumed after {t_consumed:.1f}s "
          f"({N / t_consumed:,.0f}/s end to end), read back {t_read:.1f}s")
    print(f"first reason codes: {dict(codes.most_common())}")
    assert lost == 0 and duplicated == 0 and stray == 0
    assert not watch.stuck  # a busy worker with a hostile backlog is not "stuck"
    assert dead == sent  # the original bytes, per topic, exactly as sent
    assert len(codes) >= 8
    assert list(read_topic(s, t.enriched)) == []

    # Still healthy, still consuming.
    assert worker.proc.poll() is None
    health = worker.health()
    if health is None:  # 503 or no answer: say why
        import urllib.error
        import urllib.request
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/health", timeout=10).read()
        except urllib.error.HTTPError as exc:
            reasons = exc.read()[:1500]
            tasks = urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/debug/tasks", timeout=30).read()
            commits = [line for line in tasks.decode().splitlines() if "commit (" in line or "position" in line or line.startswith("state ")]
            print("\n".join(commits))
            raise AssertionError(f"/health {exc.code}: {reasons!r}") from None
    assert health is not None and health.get("assigned_partitions", 0) > 0
    valid = dict(_order(1), event_id="after-100k-invalid", customer_id="c-after")
    publish([("order", valid)], s, progress=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(orjson.loads(v)["event_id"] == "after-100k-invalid" for _, v in read_topic(s, t.enriched)):
            break
        time.sleep(0.5)
    else:
        raise AssertionError("worker stopped processing after the invalid records")
    assert worker.proc.poll() is None
