"""Stage 2: per-segment windows, watermark, final records and surge alerts.

Source: ``<app_id>-segment-partials``, keyed by ``"dimension=value"`` and written
by the per-customer agent (one partial per key per batch, never one record per
event).  Table ``segment_windows`` (same key, changelog partitioned by the same
murmur2 partitioner) holds each key's open and recently closed windows and its
surge baselines.

Time: each partition keeps a :class:`~pipeline.aggregate.state.Watermark`: the
*lowest*, over the stage-1 source partitions that sent partials here, of the
greatest event time each has sent, minus grace — so a source partition that runs
ahead in event time (a fast replay) cannot close windows another one is still
filling.  Control records on the same topic move it too:
``{"control": "advance", "to": t}`` (end of a replay) and, with
``PIPELINE_CLOCK=wall``, ``{"control": "tick", "now": t}`` from the timer.  A
:class:`~pipeline.scheduling.DueIndex` says which keys have a window to close.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust
from mode import CrashingSupervisor

from ..config import Settings
from ..drivers.stage2 import CONTROL_KEYS, Effects, In, Stage2, Stage2Config
from ..metrics import Metrics
from ..outputs.emitted import load_ids
from ..outputs.frontier import committed_offsets
from ..stage_settings import StageSettings
from .common import YIELD_EVERY, InputGuard, Sender, fetch_loop_blocked, json_table, log, run_batches, watch_input

# What the web layer queries (``/segments/...``): the driver, with its table and watermarks.
AggregateParts = Stage2


def stage2_config(settings: Settings, stages: StageSettings) -> Stage2Config:
    t, a = settings.topics, stages.aggregate
    return Stage2Config(partitions=settings.partitions, grace=a.grace_seconds, retention=a.retention_windows,
                        surge=a.surge, playbook=a.playbook, wall_clock=settings.clock == "wall",
                        aggregates_topic=t.aggregates, alerts_topic=t.alerts_pain_points,
                        deadletter_topic=t.deadletter, redactor=stages.redactor)


def register(app: faust.App, settings: Settings, stages: StageSettings, metrics: Metrics,
             counters: dict[str, int]) -> Stage2:
    """The stage-2 agent: keeps its input gap-free, reads back what a previous owner sent, and moves
    bytes between Kafka and :class:`~pipeline.drivers.stage2.Stage2`."""
    topic = settings.partials_topic
    source = app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    table = json_table(app, "segment_windows", settings.partitions,
                       "Per dimension=value: event-time windows of pain-point counts and surge baselines.")
    driver = Stage2(stage2_config(settings, stages), table)
    sender = Sender(app, metrics, counters, "aggregate")
    gaps = InputGuard(settings, metrics, "aggregate", settings.gap_wait_seconds,
                      consumer=lambda: app.consumer, starved=lambda: fetch_loop_blocked(app))
    guarded: set[int] = set()

    async def recover(p: int) -> None:
        """First batch of a partition: where its input resumes, and which finals and alerts a
        previous owner already sent (a window closed just before a crash is not sent twice)."""
        loop = asyncio.get_running_loop()
        if p not in guarded:
            offsets = await loop.run_in_executor(None, committed_offsets, settings, [topic], p)
            gaps.start(topic, p, offsets.get(topic))
            guarded.add(p)
        if driver.needs_emitted(p):
            t, tail = settings.topics, settings.recovery_tail_records
            ids = await loop.run_in_executor(None, load_ids, settings, t.aggregates, p, "record_id", 60.0, tail)
            ids |= await loop.run_in_executor(None, load_ids, settings, t.alerts_pain_points, p, "alert_id", 60.0,
                                              tail)
            driver.set_emitted(p, ids)

    @app.agent(source, concurrency=1, name="aggregate", supervisor_strategy=CrashingSupervisor)
    async def aggregate(stream: faust.StreamT) -> None:
        await run_batches(stream, settings.aggregate_batch_size, settings.aggregate_batch_within_seconds,
                          "aggregate", process_batch, gaps,
                          is_data=lambda event: event.message.key not in CONTROL_KEYS)

    async def process_batch(events: list[Any]) -> None:
        """One batch; see :func:`~pipeline.agents.common.run_batches` for what happens when it raises."""
        admitted: list[In] = []
        for event in events:
            msg = event.message
            await recover(msg.partition)
            if await gaps.admit(msg.topic, msg.partition, msg.offset, event):
                admitted.append(In(msg.topic, msg.partition, msg.offset, msg.key, msg.value, msg.timestamp))
        fx = driver.batch(admitted, time.time())
        for i, send in enumerate(fx.sends):
            await sender.send(send.topic, send.key, send.value)
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)  # thousands of finals: let stage 1 run meanwhile (one event loop)
        report(fx)
        await sender.confirm()  # outputs first: a stored state then implies its finals are in Kafka
        await sender.store(table, fx.writes)  # confirmed before take_events acknowledges the batch

    def report(fx: Effects) -> None:
        for (metric, label), n in fx.counts.items():
            getattr(metrics, metric).labels(label).inc(n)
        for kind, severity in fx.alerts:
            metrics.alerts.labels(kind, severity).inc()
        for p, offset, code in fx.malformed:
            log.error("malformed partial dead-lettered",
                      extra={"topic": topic, "partition": p, "offset": offset, "code": code})

    @app.timer(2.0)
    async def aggregate_gap_watch() -> None:
        """See :func:`~pipeline.agents.common.watch_input`."""
        await watch_input(app, gaps, {topic})

    @app.on_partitions_revoked.connect
    async def on_revoked(app_: Any, revoked: Any, **kwargs: Any) -> None:
        for tp in revoked:
            if tp.topic == topic:
                driver.revoke(tp.partition)
                gaps.forget(tp.topic, tp.partition)
                guarded.discard(tp.partition)

    return driver
