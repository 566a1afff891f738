"""Peers on one broker: the same mini-pipeline as plain aiokafka and as Quix Streams.

``make bench-peers`` (or ``.venv/bin/python bench/peers.py [--events N] [--bootstrap HOST:PORT]``)
measures, on ONE Kafka broker in ONE run, three consumers of the same pre-loaded records:

1. **raw_passthrough_eps**: a plain aiokafka consumer + producer (the style of ``_baseline`` in
   ``bench/pipeline_bench.py``) that only decodes and re-encodes each JSON record into a sink
   topic: the ceiling for a Python consumer on this broker and machine;
2. **raw_same_work_eps**: the same aiokafka loop doing the mini-pipeline below, with its two
   counts in in-memory dicts;
3. **quix_eps**: Quix Streams (``quixstreams``) doing the same mini-pipeline with its own means:
   a stateful ``apply`` (RocksDB state + changelog topic) for the per-customer count, ``group_by``
   on the segment (a repartition topic), a second stateful ``apply`` for the per-segment count,
   ``to_topic`` to the sink; at-least-once, default commit interval (5 s).

The mini-pipeline (the pure functions below, called by variants 2 and 3): decode JSON (Quix: its
own orjson deserializer), validate (required keys and types), count the customer's events,
re-key by a segment derived from that count (``new`` below 3, else ``repeat``), classify the text
if there is one (a fixed keyword -> category table, lowercase substring match), count the
segment's events, write the output record as JSON to the sink, keyed by segment.

Input: N simulated events (``pipeline.producers.simulator``, published with the project's
``publish``) in ONE fresh 4-partition topic keyed by ``customer_id``; every variant reads it from
the earliest offset with its own consumer group.  Rate = input records / seconds from the first
record consumed to the last output confirmed (raw: after the producer's final flush; Quix: when
``Application.run(count=outputs)`` returns, i.e. after its final checkpoint: producer flush, offset
commit, state flush, and the consumer / state store close).  One pass per variant.

Prints a table, then exactly one JSON line as the last stdout line: ``raw_passthrough_eps``,
``raw_same_work_eps``, ``quix_eps``, ``quix_overhead_us_per_event`` = 10^6 x (1/quix - 1/raw
same work), ``quix_same_work_ratio`` = quix / raw same work, ``quixstreams`` (version),
``events``, ``outputs``, ``seconds``.  The pure parts are tested in ``tests/unit/test_peers.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Protocol

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULT_KEYS = ("raw_passthrough_eps", "raw_same_work_eps", "quix_eps", "quix_overhead_us_per_event",
               "quix_same_work_ratio", "quixstreams", "events", "outputs", "seconds")

# --------------------------------------------------------------------------- the mini-pipeline
REQUIRED: dict[str, type | tuple[type, ...]] = {
    "event_id": str, "customer_id": str, "occurred_at": str, "schema_version": int}
OPTIONAL: dict[str, type | tuple[type, ...]] = {"text": str, "score": (int, float)}
REPEAT_FROM = 3  # a customer's 3rd event and later are "repeat"
KEYWORDS: dict[str, str] = {  # first match in this order wins
    "refund": "billing", "charge": "billing", "price": "billing", "expensive": "billing",
    "환불": "billing", "가격": "billing",
    "deliver": "delivery", "shipping": "delivery", "late": "delivery", "arrive": "delivery",
    "배송": "delivery",
    "broken": "quality", "damaged": "quality", "defect": "quality", "quality": "quality",
    "useless": "quality", "불량": "quality", "품질": "quality",
    "login": "account", "password": "account", "account": "account", "access": "account",
}
NO_TEXT = None
OTHER = "other"

Event = dict[str, Any]
KeyValue = tuple[Optional[bytes], bytes]
Transform = Callable[[Optional[bytes], bytes], Optional[KeyValue]]


def decode(raw: bytes) -> Any:
    """The record's JSON value (any JSON type; ``validate`` decides whether it is an event)."""
    return orjson.loads(raw)


def encode(record: Event) -> bytes:
    return orjson.dumps(record)


def validate(event: Any) -> bool:
    """An object with every required key of the right type, and optional keys of the right type
    when present (``bool`` is not a number here)."""
    if not isinstance(event, dict):
        return False
    for key, kind in REQUIRED.items():
        value = event.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or value == "":
            return False
    for key, kind in OPTIONAL.items():
        value = event.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            return False
    return True


def kind_of(event: Event) -> str:
    """The event kind from its id field (the bench puts every kind in one topic)."""
    if "complaint_id" in event:
        return "complaint"
    if "feedback_id" in event:
        return "feedback"
    if "order_id" in event:
        return "order"
    return "customer_profile" if "tier" in event else "unknown"


def next_count(previous: Optional[int]) -> int:
    return (previous or 0) + 1


def segment_of(customer_count: int) -> str:
    """The re-key: ``new`` for a customer's first events, ``repeat`` from the ``REPEAT_FROM``-th."""
    return "new" if customer_count < REPEAT_FROM else "repeat"


def classify(text: Any) -> Optional[str]:
    """Category of the first keyword contained in the lowercased text; ``other`` if none, ``None``
    if the event has no text."""
    if not isinstance(text, str) or not text:
        return NO_TEXT
    low = text.lower()
    for word, category in KEYWORDS.items():
        if word in low:
            return category
    return OTHER


def enrich(event: Event, customer_count: int) -> Event:
    """Stage 1's record (before the re-key): ids, kind, the customer's count, segment, category."""
    return {"event_id": event["event_id"], "customer_id": event["customer_id"], "kind": kind_of(event),
            "occurred_at": event["occurred_at"], "customer_count": customer_count,
            "segment": segment_of(customer_count), "category": classify(event.get("text"))}


def finish(record: Event, segment_count: int) -> Event:
    """Stage 2's output: the stage-1 record plus the segment's running count."""
    return {**record, "segment_count": segment_count}


class SameWork:
    """The mini-pipeline for the raw variant: both counts in in-memory dicts, re-key = output key."""

    def __init__(self) -> None:
        self.customers: dict[str, int] = {}
        self.segments: dict[str, int] = {}
        self.invalid = 0

    def __call__(self, key: Optional[bytes], raw: bytes) -> Optional[KeyValue]:
        event = decode(raw)
        if not validate(event):
            self.invalid += 1
            return None
        cid = event["customer_id"]
        n = self.customers[cid] = next_count(self.customers.get(cid))
        record = enrich(event, n)
        seg = record["segment"]
        m = self.segments[seg] = next_count(self.segments.get(seg))
        return seg.encode(), encode(finish(record, m))


def passthrough(key: Optional[bytes], raw: bytes) -> KeyValue:
    """The baseline's per-record work: decode and re-encode, same key."""
    return key, orjson.dumps(orjson.loads(raw))


class StateLike(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


def quix_customer_step(value: Event, state: StateLike) -> Event:
    """Quix stage 1 (state scoped to the message key = customer id)."""
    n = next_count(state.get("count"))
    state.set("count", n)
    return enrich(value, n)


def quix_segment_step(value: Event, state: StateLike) -> Event:
    """Quix stage 2, after ``group_by`` on the segment (state scoped to the segment)."""
    m = next_count(state.get("count"))
    state.set("count", m)
    return finish(value, m)


# --------------------------------------------------------------------------- results
def _num(x: Optional[float], nd: int = 1) -> Optional[float]:
    if x is None or math.isnan(x) or math.isinf(x):
        return None
    return round(float(x), nd)


def _ok(x: Optional[float]) -> bool:
    return x is not None and not math.isnan(x) and x > 0


def peer_fields(raw_passthrough_eps: float, raw_same_work_eps: float, quix_eps: float) -> dict[str, Optional[float]]:
    """The three rates plus Quix's cost on top of the same work: µs per event and the ratio."""
    both = _ok(quix_eps) and _ok(raw_same_work_eps)
    return {"raw_passthrough_eps": _num(raw_passthrough_eps), "raw_same_work_eps": _num(raw_same_work_eps),
            "quix_eps": _num(quix_eps),
            "quix_overhead_us_per_event": _num(1e6 * (1 / quix_eps - 1 / raw_same_work_eps), 1) if both else None,
            "quix_same_work_ratio": _num(quix_eps / raw_same_work_eps, 3) if both else None}


def result_line(raw_passthrough_eps: float, raw_same_work_eps: float, quix_eps: float, *, quixstreams: str,
                events: int, outputs: int, seconds: float) -> str:
    """The benchmark's one JSON line (key order of ``RESULT_KEYS``; NaN becomes null)."""
    out: dict[str, object] = {**peer_fields(raw_passthrough_eps, raw_same_work_eps, quix_eps),
                              "quixstreams": quixstreams, "events": int(events), "outputs": int(outputs),
                              "seconds": round(seconds, 1)}
    return json.dumps({k: out[k] for k in RESULT_KEYS}, separators=(", ", ": "), allow_nan=False)


def rate(records: int, seconds: float) -> float:
    return records / seconds if records and seconds > 0 else math.nan


# --------------------------------------------------------------------------- Kafka side
def _log(msg: str) -> None:
    print(f"[peers {time.strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclasses.dataclass
class Loaded:
    settings: Any  # pipeline.config.Settings, the input topic as every input topic
    topic: str
    events: int
    valid: int


def one_topic_settings(base: Any, label: str) -> Any:
    """``base`` with a fresh app id and every input kind mapped to one fresh 4-partition topic."""
    sfx = f"{label}-{uuid.uuid4().hex[:6]}"
    topic = f"peers-{sfx}.events"
    topics = dataclasses.replace(base.topics, orders=topic, complaints=topic, feedback=topic, profiles=topic)
    return dataclasses.replace(base, topics=topics, app_id=f"peers-{sfx}", partitions=4)


def tally_valid(events: Iterable[tuple[str, Event]], seen: list[int]) -> Iterator[tuple[str, Event]]:
    """Pass ``events`` through, counting in ``seen[0]`` those that pass :func:`validate`."""
    for kind, event in events:
        seen[0] += validate(event)
        yield kind, event


def preload(base: Any, n: int, seed: int, customers: int, sinks: list[str]) -> Loaded:
    """N simulated events into one fresh 4-partition topic keyed by customer id (the project's
    publisher); creates the sink topics (4 partitions) too."""
    from pipeline.producers.publish import publish
    from pipeline.producers.simulator import iter_simulated_events
    from pipeline.topics import TopicSpec, ensure_topics

    s = one_topic_settings(base, "run")
    topic = s.topics.orders
    ensure_topics(s, [TopicSpec(t, s.partitions, {}) for t in (topic, *(f"{s.app_id}.{x}" for x in sinks))])
    valid = [0]
    t0 = time.monotonic()
    stream = iter_simulated_events(n, seed=seed, data_dir=s.data_dir, customers=customers)
    counts = publish(tally_valid(stream, valid), s, total=n, progress=False)
    _log(f"pre-loaded {sum(counts.values())} events into {topic} in {time.monotonic() - t0:.1f}s: {counts}, "
         f"{valid[0]} valid")
    return Loaded(s, topic, sum(counts.values()), valid[0])


def topic_size(settings: Any, topic: str) -> int:
    """Records in ``topic`` (sum over partitions of end - beginning offsets)."""
    from kafka import TopicPartition

    from pipeline.kafka_security import consumer as make_consumer

    c = make_consumer(settings, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
        ends, begins = c.end_offsets(tps), c.beginning_offsets(tps)
        return sum(ends[tp] - begins[tp] for tp in tps)
    finally:
        c.close()


async def _raw_loop(settings: Any, topic: str | list[str], sink: str, group: str, expected: int,
                    transform: Transform, timeout: float) -> dict[str, float]:
    """A plain aiokafka consumer and producer (also ``make bench``'s baseline): fetch up to 1,000
    records of ``topic`` (one or several), send each transformed record, commit each fetch; stop
    after ``expected`` input records, flush.  Time from the first fetched record to the end of the
    final flush; ``failed``: sends the brokers refused."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from pipeline.kafka_security import aiokafka_kwargs

    kw = aiokafka_kwargs(settings)
    topics = [topic] if isinstance(topic, str) else topic
    consumer = AIOKafkaConsumer(*topics, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False,
                                max_poll_records=1000, **kw)
    producer = AIOKafkaProducer(acks="all", linger_ms=5, max_batch_size=256 * 1024, **kw)
    await producer.start()
    await consumer.start()
    n = sent = 0
    t0: Optional[float] = None
    t1 = math.nan
    futures = []
    deadline = time.monotonic() + timeout
    try:
        while n < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            for recs in batches.values():
                if t0 is None and recs:
                    t0 = time.perf_counter()
                for r in recs:
                    n += 1
                    out = transform(r.key, r.value)
                    if out is not None:
                        futures.append(await producer.send(sink, out[1], key=out[0]))
            if batches:
                await consumer.commit()
        await producer.flush()
        t1 = time.perf_counter()
        sent = len(futures)
        failed = sum(1 for f in futures if f.exception() is not None)
    finally:
        await consumer.stop()
        await producer.stop()
    secs = t1 - t0 if t0 is not None else math.nan
    return {"eps": rate(n, secs), "records": n, "outputs": sent - failed, "seconds": secs, "failed": failed}


def run_raw(loaded: Loaded, name: str, transform: Transform, timeout: float) -> dict[str, float]:
    """One raw aiokafka pass over the pre-loaded topic into ``<app_id>.<name>``, own consumer group."""
    import logging

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # "coordinator not available" while the group forms
    s = loaded.settings
    return asyncio.run(_raw_loop(s, loaded.topic, f"{s.app_id}.{name}", f"{s.app_id}-{name}", loaded.events,
                                 transform, timeout))


class QuixProbe:
    """Quix stage 1's filter: validation, plus the time of the first record and the input count."""

    def __init__(self) -> None:
        self.first: Optional[float] = None
        self.inputs = 0

    def __call__(self, value: Any) -> bool:
        if self.first is None:
            self.first = time.perf_counter()
        self.inputs += 1
        return validate(value)


def build_quix(app: Any, topic: str, sink: str, probe: QuixProbe) -> None:
    """The mini-pipeline as a Quix StreamingDataFrame (JSON values, customer-id keys in)."""
    sdf = app.dataframe(app.topic(topic, value_deserializer="json", key_deserializer="bytes"))
    sdf = sdf.filter(probe)
    sdf = sdf.apply(quix_customer_step, stateful=True)
    sdf = sdf.group_by(lambda v: v["segment"], name="segment")
    sdf = sdf.apply(quix_segment_step, stateful=True)
    sdf.to_topic(app.topic(sink, key_serializer="str", value_serializer="json"))


def run_quix(loaded: Loaded, name: str, timeout: float, idle_timeout: float = 60.0) -> dict[str, float]:
    """One Quix Streams pass: ``Application.run(count=valid outputs, timeout=idle)`` (plus a hard
    ``timeout`` that calls ``Application.stop()``), RocksDB state in a temp dir removed after."""
    import warnings

    import authlib.deprecate  # noqa: F401  (a quixstreams dependency; its import adds an "always" filter)

    warnings.filterwarnings("ignore", message="The httpx module is deprecated")  # authlib, on import
    from quixstreams import Application

    s = loaded.settings
    state_dir = Path(tempfile.mkdtemp(prefix="peers-quix-state-"))
    probe = QuixProbe()
    try:
        app = Application(broker_address=s.bootstrap_servers, consumer_group=f"{s.app_id}-{name}",
                          auto_offset_reset="earliest", state_dir=str(state_dir), loglevel="WARNING")
        build_quix(app, loaded.topic, f"{s.app_id}.{name}", probe)
        hard_stop = threading.Timer(timeout, app.stop)
        hard_stop.daemon = True
        hard_stop.start()
        try:
            app.run(count=loaded.valid, timeout=idle_timeout, collect=False)
            t1 = time.perf_counter()
        finally:
            hard_stop.cancel()
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    secs = t1 - probe.first if probe.first is not None else math.nan
    return {"eps": rate(probe.inputs, secs), "records": probe.inputs, "seconds": secs}


def quix_version() -> str:
    from importlib.metadata import version

    return version("quixstreams")


# --------------------------------------------------------------------------- main
def _fmt(x: float, nd: int = 0) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:,.{nd}f}"


def print_table(rows: list[tuple[str, dict[str, float]]]) -> None:
    print("| variant | input records | outputs in sink | seconds | events/s | µs per event |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, r in rows:
        us = 1e6 / r["eps"] if _ok(r["eps"]) else math.nan
        print(f"| {label} | {r['records']:,} | {r['sink']:,} | {_fmt(r['seconds'], 2)} | {_fmt(r['eps'])} | "
              f"{_fmt(us, 1)} |")


def measure(loaded: Loaded, timeout: float) -> list[tuple[str, dict[str, float]]]:
    """The three variants one after the other, each checked against its sink's record count."""
    s = loaded.settings
    rows: list[tuple[str, dict[str, float]]] = []
    for label, name, run in (
        ("raw aiokafka passthrough", "passthrough", lambda: run_raw(loaded, "passthrough", passthrough, timeout)),
        ("raw aiokafka same work", "same-work", lambda: run_raw(loaded, "same-work", SameWork(), timeout)),
        (f"Quix Streams {quix_version()}", "quix", lambda: run_quix(loaded, "quix", timeout)),
    ):
        res = run()
        res["sink"] = topic_size(s, f"{s.app_id}.{name}")
        want = loaded.events if name == "passthrough" else loaded.valid
        _log(f"{label}: {res['records']} records in {_fmt(res['seconds'], 2)}s = {_fmt(res['eps'])} ev/s, "
             f"{res['sink']} outputs in the sink (expected {want})")
        if res["records"] != loaded.events or res["sink"] != want:
            _log(f"{label}: incomplete pass, rate not counted")
            res["eps"] = math.nan
        rows.append((label, res))
    return rows


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--events", type=int, default=int(os.environ.get("PEERS_EVENTS", "100000")))
    ap.add_argument("--customers", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", ""),
                    help="use this (plaintext) cluster instead of starting a local broker")
    ap.add_argument("--timeout", type=float, default=600.0, help="max seconds for one variant's pass")
    args = ap.parse_args(argv)

    from pipeline.config import load_settings
    from pipeline.kafka_local import LocalKafka

    wall0 = time.monotonic()
    base = load_settings()
    load1 = os.getloadavg()[0]
    _log(f"{os.cpu_count()} CPU(s), load average {load1:.2f} at start")
    broker = None
    try:
        if args.bootstrap:
            base = dataclasses.replace(base, bootstrap_servers=args.bootstrap)
        else:
            broker = LocalKafka(base.kafka_version, base.cache_dir).start()  # own temp dir, removed by cleanup()
            base = dataclasses.replace(base, bootstrap_servers=broker.bootstrap)
            _log(f"local Kafka {base.kafka_version} at {broker.bootstrap} up in {broker.start_seconds:.1f}s")
        loaded = preload(base, args.events, args.seed, args.customers, ["passthrough", "same-work", "quix"])
        rows = measure(loaded, args.timeout)
    finally:
        if broker is not None:
            broker.cleanup()
    print()
    print(f"NOTE: {os.cpu_count()}-core machine, load average {load1:.2f} at start / {os.getloadavg()[0]:.2f} "
          "at end; the broker shares the cores, so absolute numbers are noisy.")
    print_table(rows)
    (_, passthru), (_, same), (_, quix) = rows
    print(result_line(passthru["eps"], same["eps"], quix["eps"], quixstreams=quix_version(), events=loaded.events,
                      outputs=loaded.valid, seconds=time.monotonic() - wall0), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
