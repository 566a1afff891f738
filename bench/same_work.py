"""The worker's own per-record work without Faust or Kafka (issue 17, scope 1): the bench's event mix
fed through the pure stage drivers with in-memory tables.

``python bench/same_work.py [--events 20000] [--customers 1000] [--batch 256] [--profile out.prof]``
(in memory); :func:`over_kafka` is the same work between a real consumer and producer, which
``bench/pipeline_bench.py`` runs beside the worker (``same_work_eps`` in its JSON line).

Events come from the project's simulator (the same mix and seed as ``make bench``), are encoded as
the publisher would, spread over partitions by the Kafka default partitioner (murmur2 of the
customer id) and handed to :class:`~pipeline.drivers.stage1.Stage1` in batches per partition; the
partials it sends go to :class:`~pipeline.drivers.stage2.Stage2`.  Table writes land in dicts, after
the same state codec the changelog uses.  Prints events/s and CPU microseconds per event for each
stage and, last, one JSON line.  ``--profile`` writes a cProfile file and prints the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import gc
import itertools
import json
import pstats
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline.codec import encode_state  # noqa: E402
from pipeline.config import load_settings  # noqa: E402
from pipeline.core.keys import partition_of  # noqa: E402
from pipeline.drivers.stage1 import In, Recovery, Stage1, Stage1Config  # noqa: E402
from pipeline.drivers.stage2 import In as In2, Stage2  # noqa: E402
from pipeline.metrics import Metrics  # noqa: E402
from pipeline.process import Processor  # noqa: E402
from pipeline.producers.publish import topic_for  # noqa: E402
from pipeline.producers.simulator import iter_simulated_events  # noqa: E402
from pipeline.stage_settings import load_stage_settings  # noqa: E402


class CaughtUp:
    """A consumer that has delivered everything: nothing pending, every input caught up."""

    def __init__(self) -> None:
        self.ends: dict[tuple[str, int], int] = {}

    def highwater(self, topic: str, partition: int) -> int | None:
        return self.ends.get((topic, partition), 0)

    def committed(self, topic: str, partition: int) -> int:
        return 0

    def expected(self, topic: str, partition: int) -> int | None:
        return self.ends.get((topic, partition))

    def fetched(self, topic: str, partition: int) -> tuple[int | None, int | None]:
        end = self.ends.get((topic, partition), 0)
        return end, end - 1


class CodecTable(dict):
    """A table whose values are encoded for the changelog on every write, as in the worker (whose
    in-memory store keeps the value itself and decodes only on recovery)."""

    encoded_bytes = 0

    def update(self, writes: Any = (), **kw: Any) -> None:  # type: ignore[override]
        for k, v in dict(writes).items():
            self.encoded_bytes += len(encode_state(v))
            super().__setitem__(k, v)


def records(settings: Any, n: int, seed: int, customers: int) -> list[In]:
    """The bench's first ``n`` simulated events as stage-1 input records, offsets per topic-partition."""
    view_ends: dict[tuple[str, int], int] = {}
    out: list[In] = []
    now = time.time()
    for kind, event in itertools.islice(iter_simulated_events(None, seed=seed, data_dir=settings.data_dir,
                                                               customers=customers), n):
        topic = topic_for(kind, settings)
        key = str(event["customer_id"]).encode()
        p = partition_of(key.decode(), settings.partitions)
        off = view_ends.get((topic, p), 0)
        view_ends[(topic, p)] = off + 1
        out.append(In(topic, p, off, key, orjson.dumps(event), now, token=(topic, p, off)))
    return out


def stage1(settings: Any) -> tuple[Any, CodecTable, Stage1]:
    """The default stage settings, an in-memory customers table and a warmed stage-1 driver over it."""
    stages = load_stage_settings({})
    processor = Processor(settings, stages=stages)
    processor.warm()
    cfg = Stage1Config(settings.partitions, list(stages.aggregate.windows), stages.aggregate.min_confidence,
                       stages.retry, settings)
    customers: CodecTable = CodecTable()
    return stages, customers, Stage1(cfg, processor, customers, Metrics(), {})


def run(settings: Any, recs: list[In], batch: int) -> dict[str, float]:
    stages, customers, s1 = stage1(settings)
    view = CaughtUp()
    by_part: dict[int, list[In]] = {}
    for r in recs:
        by_part.setdefault(r.partition, []).append(r)
    partials: list[Any] = []
    enriched = 0
    loop = asyncio.new_event_loop()  # one loop for all batches, as in the worker
    t0, c0 = time.perf_counter(), time.process_time()
    for p, rs in sorted(by_part.items()):
        s1.recover(p, Recovery({}))
        for i in range(0, len(rs), batch):
            chunk = rs[i:i + batch]
            for r in chunk:
                view.ends[(r.topic, p)] = r.offset + 1
            fx = loop.run_until_complete(s1.batch(chunk, view, seen={p}))
            customers.update(fx.writes)
            s1.stored(fx.writes)  # the table answers for them now (the worker's edge does this after confirming)
            for s in fx.sends:
                if s.topic == settings.partials_topic:
                    partials.append(s)
                elif s.topic == settings.topics.enriched:
                    enriched += 1
    t1, c1 = time.perf_counter(), time.process_time()
    loop.close()
    from pipeline.agents.aggregate import stage2_config  # the edge's config builder, no Faust app needed

    windows: CodecTable = CodecTable()
    s2 = Stage2(dataclasses.replace(stage2_config(settings, stages)), windows)
    offsets: dict[int, int] = {}
    ins = []
    for s in partials:
        p = s.partition if s.partition is not None else partition_of(s.key.decode(), settings.partitions)
        off = offsets.get(p, 0)
        offsets[p] = off + 1
        ins.append(In2(settings.partials_topic, p, off, s.key, s.value, time.time()))
    t2, c2 = time.perf_counter(), time.process_time()
    for p in offsets:
        s2.set_emitted(p, ())
    for i in range(0, len(ins), batch):
        fx2 = s2.batch(ins[i:i + batch], time.time())
        windows.update(fx2.writes)
    t3, c3 = time.perf_counter(), time.process_time()
    n = len(recs)
    return {"events": n, "enriched": enriched, "partials": len(partials),
            "stage1_eps": n / (t1 - t0), "stage1_cpu_us_per_event": 1e6 * (c1 - c0) / n,
            "stage2_partials_per_s": len(ins) / max(t3 - t2, 1e-9),
            "same_work_eps": n / ((t1 - t0) + (t3 - t2)),
            "state_value_bytes": sum(len(encode_state(v)) for v in customers.values()) / max(len(customers), 1)}


async def _over_kafka(settings: Any, sink: str, expected: int, batch: int, timeout: float) -> dict[str, float]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from pipeline.agents.aggregate import stage2_config
    from pipeline.kafka_security import aiokafka_kwargs

    stages, customers, s1 = stage1(settings)
    windows: CodecTable = CodecTable()
    s2 = Stage2(dataclasses.replace(stage2_config(settings, stages)), windows)
    view = CaughtUp()
    t = settings.topics
    kw = aiokafka_kwargs(settings)
    consumer = AIOKafkaConsumer(t.orders, t.complaints, t.feedback, t.profiles, group_id=f"{settings.app_id}-same-work",
                                auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=batch, **kw)
    producer = AIOKafkaProducer(acks="all", enable_idempotence=True, linger_ms=5, max_batch_size=256 * 1024, **kw)
    await producer.start()
    await consumer.start()
    recovered: set[int] = set()
    offsets2: dict[int, int] = {}
    n = enriched = 0
    t0 = c0 = None
    deadline = time.monotonic() + timeout
    try:
        while n < expected and time.monotonic() < deadline:
            fetched = await consumer.getmany(timeout_ms=500, max_records=batch)
            if not fetched:
                continue
            if t0 is None:
                t0, c0 = time.perf_counter(), time.process_time()
            futures = []
            for tp, recs in fetched.items():
                p = tp.partition
                if p not in recovered:
                    s1.recover(p, Recovery({}))
                    s2.set_emitted(p, ())
                    recovered.add(p)
                ins = [In(r.topic, p, r.offset, r.key, r.value, r.timestamp / 1000.0, token=(r.topic, p, r.offset))
                       for r in recs]
                view.ends[(tp.topic, p)] = recs[-1].offset + 1
                fx = await s1.batch(ins, view, seen={p})
                n += len(recs)
                partials = []
                for snd in fx.sends:
                    futures.append(await producer.send(sink, snd.value, key=snd.key))
                    if snd.topic == settings.partials_topic:
                        q = snd.partition if snd.partition is not None else partition_of(snd.key.decode(),
                                                                                          settings.partitions)
                        off = offsets2.get(q, 0)
                        offsets2[q] = off + 1
                        partials.append(In2(settings.partials_topic, q, off, snd.key, snd.value, time.time()))
                    elif snd.topic == t.enriched:
                        enriched += 1
                for key, value in fx.writes.items():  # the changelog records of the table writes
                    futures.append(await producer.send(sink, encode_state(value), key=key.encode()))
                customers.update(fx.writes)
                s1.stored(fx.writes)
                if partials:
                    fx2 = s2.batch(partials, time.time())
                    for snd in fx2.sends:
                        futures.append(await producer.send(sink, snd.value, key=snd.key))
                    for key, value in fx2.writes.items():
                        futures.append(await producer.send(sink, encode_state(value), key=key.encode()))
                    windows.update(fx2.writes)
            await producer.flush()  # outputs confirmed before the input offsets are committed
            failed = [f for f in futures if f.exception() is not None]
            if failed:
                raise RuntimeError(f"{len(failed)} sends failed")
            await consumer.commit()
        t1, c1 = time.perf_counter(), time.process_time()
    finally:
        await consumer.stop()
        await producer.stop()
    secs = (t1 - t0) if t0 is not None else float("nan")
    return {"same_work_eps": n / secs if secs > 0 else float("nan"), "same_work_events": n,
            "same_work_enriched": enriched, "same_work_seconds": secs,
            "same_work_cpu_us_per_event": 1e6 * (c1 - c0) / n if n and c0 is not None else float("nan")}


@contextlib.contextmanager
def worker_gc(settings: Any) -> Iterator[None]:
    """The worker's garbage-collector settings (:func:`pipeline.runtime.tune_gc`) for the duration:
    without them a third of this run's young collections and all its full ones are work the worker
    never does (1.1 s of a 6.7 s stage-1 run with Python's defaults, 0.05 s with the worker's)."""
    from pipeline.runtime import tune_gc

    before = gc.get_threshold()
    tune_gc(settings.gc_young_threshold)
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def over_kafka(settings: Any, sink: str, expected: int, batch: int = 256, timeout: float = 300.0) -> dict[str, float]:
    """The same-work ceiling (issue 17, scope 1): a plain aiokafka consumer and producer, no Faust,
    feeding the pre-loaded input topics of ``settings`` through the pure stage drivers with in-memory
    tables, producing every output record and every table write (as its changelog value) to
    ``sink``, confirming them before committing each fetch's offsets — the worker's work and
    guarantees without the framework.  Stage 2 takes stage 1's partials in memory (they are produced
    too).  Rate from the first fetched record to the last confirmed send."""
    import logging

    from pipeline.topics import TopicSpec, ensure_topics

    ensure_topics(settings, [TopicSpec(sink, settings.partitions, {})])
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    with worker_gc(settings):
        return asyncio.run(_over_kafka(settings, sink, expected, batch, timeout))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--customers", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--profile", type=Path)
    a = ap.parse_args(argv)
    settings = dataclasses.replace(load_settings({}), app_id="same-work")
    recs = records(settings, a.events, a.seed, a.customers)
    prof = cProfile.Profile() if a.profile else None
    if prof:
        prof.enable()
    with worker_gc(settings):
        res = run(settings, recs, a.batch)
    if prof:
        prof.disable()
        prof.dump_stats(a.profile)
        pstats.Stats(str(a.profile)).sort_stats("cumulative").print_stats(40)
    print(f"stage 1: {res['stage1_eps']:,.0f} events/s, {res['stage1_cpu_us_per_event']:,.0f} us CPU per event; "
          f"stage 2: {res['stage2_partials_per_s']:,.0f} partials/s; both: {res['same_work_eps']:,.0f} events/s")
    print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in res.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
