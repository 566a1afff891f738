"""Stage 1's Faust edge: the per-customer agent over :mod:`pipeline.drivers.stage1`.

Sources, co-partitioned by customer id: ``events.orders``, ``events.complaints``, ``events.feedback``,
``customers.profiles``, ``pipeline.events-rekeyed`` and ``pipeline.ticks``; table ``customers``.
Per batch the edge keeps the input gap-free (:class:`~pipeline.agents.common.InputGuard`), reads
back what a previous owner sent (:mod:`pipeline.agents.readback`), lets the driver apply the batch
and sends its outputs.  On a commit (at most every ``PIPELINE_COMMIT_INTERVAL_SECONDS``:
:mod:`pipeline.drivers.stage1`, "Commits") it confirms every send since the last one, then writes the
states, then acknowledges the records the driver applied once the states are confirmed, all in the
background while the next batches run (:mod:`pipeline.agents.commits`).  Clocks
(``PIPELINE_CLOCK``, idleness, ``advance_to`` ticks): docs/semantics.md.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

import faust
from mode import CrashingSupervisor

from ..config import Settings
from ..drivers.stage1 import In, Stage1, Stage1Config
from ..metrics import Metrics
from ..process import Processor
from ..stage_settings import StageSettings
from .commits import Commits
from .common import (DEBUG_STATE, HELD_FOR_ORDER, InputGuard, Sender,
                     fetch_loop_blocked, hold_back, json_table, log, run_batches, watch_input)
from .queries import customer_lookup
from .readback import ConsumerView, read_back
from .timers import register_ticks


def register(app: faust.App, settings: Settings, stages: StageSettings, metrics: Metrics,
             counters: dict[str, int]) -> tuple[Any, Processor, Callable[..., dict[str, Any] | None]]:
    t = settings.topics
    source = app.topic(*t.inputs, t.rekeyed, t.ticks, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw")
    customers = json_table(app, "customers", settings.partitions, "Per-customer state: segment, commitments, churn.")
    processor = Processor(settings, stages=stages)
    cfg = Stage1Config(settings.partitions, list(stages.aggregate.windows), stages.aggregate.min_confidence,
                       stages.retry, settings, settings.commit_interval_seconds, settings.commit_max_records)
    driver = Stage1(cfg, processor, customers, metrics, counters)
    sender = Sender(app, metrics, counters, "ingest")
    gaps = InputGuard(settings, metrics, "ingest", settings.gap_wait_seconds,
                      consumer=lambda: app.consumer, starved=lambda: fetch_loop_blocked(app))
    view = ConsumerView(app, gaps)
    commits = Commits(app, sender, customers, metrics, stored=driver.stored)
    record_topics = driver.record_topics
    DEBUG_STATE["reorder"] = lambda: driver.reorder_state(view)

    async def recover(p: int) -> None:
        """First batch of a newly assigned partition: learn what a previous owner already sent."""
        got = await asyncio.get_running_loop().run_in_executor(None, read_back, settings, record_topics, p)
        if driver.needs_recovery(p):  # not recovered meanwhile by a concurrent call
            driver.recover(p, got)
            for topic, off in got.committed.items():
                gaps.start(topic, p, off)
            if got.frontier:
                log.info("resuming partition after an unclean stop", extra={"partition": p, "count": len(got.frontier)})

    def assigned() -> set[int]:
        try:
            return {tp.partition for tp in app.consumer.assignment() if tp.topic in record_topics}
        except Exception:  # consumer not started (cannot happen inside a batch; stay safe)
            return set()

    @app.agent(source, concurrency=1, name="ingest", supervisor_strategy=CrashingSupervisor)
    async def ingest(stream: faust.StreamT) -> None:
        await run_batches(stream, settings.batch_size, settings.batch_within_seconds, "ingest", process_batch,
                          gaps, is_data=lambda event: event.message.topic != t.ticks)

    async def process_batch(events: list[Any]) -> None:
        """One batch; see :func:`~pipeline.agents.common.run_batches` for what happens when it raises."""
        seen = {e.message.partition for e in events}
        await asyncio.gather(*(recover(p) for p in seen | assigned() if driver.needs_recovery(p)))
        admitted: list[In] = []
        for event in events:
            msg = event.message
            if msg.topic == t.ticks:
                gaps.delivered(msg.topic, msg.partition, msg.offset)  # ticks are tail-watched, not gap-checked
            elif not await gaps.admit(msg.topic, msg.partition, msg.offset, event):
                if driver.holds_earlier(msg.partition, msg.topic, msg.offset):
                    hold_back([event])  # a copy of a record still held: only the held one is acknowledged
                continue
            hold_back([event])  # acknowledged on the commit after it is applied (driver: Effects.done)
            admitted.append(In(msg.topic, msg.partition, msg.offset, msg.key, msg.value, msg.timestamp, event))
        fx = await driver.batch(admitted, view, time.time(), seen, flush=sender.send_all)
        HELD_FOR_ORDER.clear()
        HELD_FOR_ORDER.update(driver.held_for_order())
        await sender.send_all(fx.sends)
        metrics.batch_size.observe(len(events))
        if fx.committing:  # else enriched events and alerts are on their way; the commit comes later
            await commits.commit(fx)

    register_ticks(app, settings, sender, cfg.ordering)

    @app.timer(2.0)
    async def ingest_gap_watch() -> None:
        """See :func:`~pipeline.agents.common.watch_input`; the ticks too, one per partition may wait for
        its commit (docs/reliability.md, "A ticks partition never fetched")."""
        await watch_input(app, gaps, {*record_topics, t.ticks}, slack={t.ticks: 1})

    @app.on_partitions_revoked.connect
    async def on_revoked(app_: Any, revoked: Any, **kwargs: Any) -> None:
        await commits.drain()  # acknowledged before the partitions go (or the worker has stopped)
        for p in {tp.partition for tp in revoked if tp.topic in t.inputs}:
            driver.revoke(p)  # records held for order are never acknowledged: the next owner reads them again
        for tp in revoked:
            if tp.topic in record_topics:
                gaps.forget(tp.topic, tp.partition)

    return customers, processor, customer_lookup(driver, customers, settings, stages)

