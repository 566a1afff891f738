"""Stage 1: the per-customer agent.

Sources (all keyed by customer id, one partition count — co-partitioned):
``events.orders``, ``events.complaints``, ``events.feedback``, ``customers.profiles``,
``pipeline.events-rekeyed`` and ``pipeline.ticks``.  Table ``customers`` holds
each customer's composite state (:mod:`pipeline.process`).

Batches (``stream.take_events``): every record of the batch is processed, each
customer's state is written once per batch, the batch's enriched events are
pre-aggregated into one partial per ``"dimension=value"`` and sent to the
stage-2 topic, then commitment deadlines due on the partition's clock are swept.

Clocks (``PIPELINE_CLOCK``)
    ``event`` (default): a partition's clock is the *lowest* of the greatest
    event times seen on each of its input topics, so a deadline is never judged
    before a slower topic had the chance to deliver the event that meets it.
    ``wall``: ticks from the timer carry the wall-clock time.
    In both modes a tick ``{"advance_to": t}`` (``python -m pipeline clock
    advance``) moves the clock to ``t`` — the end of a replay.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust
from mode import CrashingSupervisor
import orjson

from ..aggregate import PartialsBuilder, windows_from_env
from ..aggregate.partials import min_confidence_from_env
from ..config import Settings
from ..ingest.internal import Tick, parse_tick
from ..ingest.validate import Problem
from ..metrics import Metrics
from ..clock import Clocks
from ..ingest.order import ReorderBuffer, event_time_of
from ..outputs.emitted import load_ids, recent_event_ids
from ..outputs.frontier import Frontier, committed_offsets, load_frontier
from ..process import Processor, Record, Step
from ..retry import RetryPolicy, attempt
from ..scheduling import DueIndex
from .common import (DEBUG_STATE, HELD_FOR_ORDER, InputGuard, Sender, ack_processed, hold_back, is_meta_key, json_table, log,
                     partition_meta_key, partition_of, run_batches, watch_input)


def already_applied(prior: dict[str, Any] | None, topic: str, offset: int, event_id: str | None,
                    rekeyed_topic: str) -> bool:
    """Whether a customer's stored state already includes this record (re-read after a crash).

    The state keeps, per input topic, the last offset applied to it (``"off"``)
    and the ids of the last re-keyed events (``"rk"``: a re-keyed record can be
    forwarded twice, at two offsets).
    """
    if not prior:
        return False
    if topic == rekeyed_topic and event_id is not None and event_id in (prior.get("rk") or ()):
        return True
    mark = (prior.get("off") or {}).get(topic)
    return mark is not None and offset <= int(mark)


def mark_applied(state: dict[str, Any], prior: dict[str, Any] | None, topic: str, offset: int,
                 event_id: str | None, rekeyed_topic: str, keep_ids: int = 64) -> None:
    """Record in ``state`` that the record ``topic``/``offset`` is applied (see :func:`already_applied`)."""
    prior = prior or {}
    state["off"] = {**(prior.get("off") or {}), topic: offset}
    if topic == rekeyed_topic and event_id is not None:
        state["rk"] = [*(prior.get("rk") or ()), event_id][-keep_ids:]


def register(app: faust.App, settings: Settings, metrics: Metrics, counters: dict[str, int]) -> tuple[Any, Processor]:
    import os

    t = settings.topics
    source = app.topic(
        *t.inputs, t.rekeyed, t.ticks, key_type=bytes, value_type=bytes, key_serializer="raw",
        value_serializer="raw",
    )
    customers = json_table(app, "customers", settings.partitions,
                           "Per-customer state: segment, commitments, churn.")
    processor = Processor(settings)
    sender = Sender(app, metrics, counters, "ingest")
    windows = windows_from_env(os.environ)
    min_conf = min_confidence_from_env(os.environ)
    index = DueIndex()
    clocks = Clocks(idle_seconds=settings.idle_seconds)
    # a partition's input records in event-time order across its topics during a backlog
    ordering = settings.reorder_max_records > 0
    reorder: ReorderBuffer[Any] = ReorderBuffer(settings.reorder_max_wait_seconds,
                                                max(1, settings.reorder_max_records))
    limits = settings.time_limits
    tie_rank = {t.profiles: 0, t.orders: 1, t.complaints: 2, t.feedback: 2}
    announced: dict[int, float] = {}  # per partition: the clock last announced to stage 2
    positions: dict[tuple[str, int], int] = {}  # next offset to process, per input topic-partition
    pending_advances: dict[int, list[Tick]] = {}
    emitted: dict[int, set[str]] = {}  # alert ids already on this partition of the alert topics
    kind_of = {name: t.kind_of(name) or "internal" for name in (*t.inputs, t.rekeyed, t.ticks)}
    n_parts = settings.partitions
    record_topics = [*t.inputs, t.rekeyed]  # inputs whose offsets partials account for
    committed: dict[int, dict[str, int]] = {}  # per partition: committed offsets when it was assigned
    frontiers: dict[int, Frontier] = {}  # per partition: what partials already counted (after a crash)
    frontier_max: dict[int, dict[str, int]] = {}
    # per partition: event ids already in events.enriched past the committed offsets (after a crash)
    enriched_written: dict[int, set[str]] = {}
    meta_keys = {p: partition_meta_key(p, n_parts) for p in range(n_parts)}
    gaps = InputGuard(settings, metrics, "ingest", settings.gap_wait_seconds,
                      consumer=lambda: app.consumer, worker_wide=True)

    retry = RetryPolicy.from_env(os.environ)
    recovery_tail = settings.recovery_tail_records  # alert ids read back before the first emit

    def retrying(exc: BaseException, n: int) -> None:
        metrics.errors.labels("process_retry").inc()
        log.warning("processing failed, retrying", extra={"error": type(exc).__name__, "count": n})

    async def run_step(rec: Record, get_state: Any) -> Step:
        """Process one record; a handler that raises is retried (bounded), then dead-lettered."""

        def give_up(exc: BaseException, attempts: int) -> Step:
            # only the exception type and the coordinates are logged: its message may quote the record
            log.error("processing failed, record dead-lettered",
                      extra={"topic": rec.topic, "partition": rec.partition, "offset": rec.offset,
                             "error": type(exc).__name__, "count": attempts})
            metrics.errors.labels("process").inc()
            reason = f"processing failed after {attempts} attempt(s): {exc!r}"[:500]
            return processor.dead(rec, [Problem("processing_failed", reason)], None, time.time())

        return await attempt(lambda: processor.process(rec, get_state), retry, give_up, retrying)

    async def ensure_emitted(p: int) -> None:
        if p not in emitted:
            loop = asyncio.get_running_loop()
            ids: set[str] = set()
            for topic in (t.alerts_commitments, t.alerts_churn):
                ids |= await loop.run_in_executor(None, load_ids, settings, topic, p, "alert_id", 60.0, recovery_tail)
            emitted[p] = ids

    async def emit(p: int, out: Any) -> None:
        if out.dedup_id is not None:
            await ensure_emitted(p)
            if out.dedup_id in emitted[p]:
                metrics.errors.labels("duplicate_alert_suppressed").inc()
                return
            emitted[p].add(out.dedup_id)
        await sender.send(out.topic, out.key, out.value, kind=out.kind)

    def ensure_index(p: int) -> None:
        if not index.known(p):
            index.rebuild(p, ((k, processor.next_due(v))
                              for k, v in customers.items() if not is_meta_key(k) and partition_of(k, n_parts) == p))
            clocks.restore(p, customers.get(meta_keys[p]))

    def assigned_input_partitions() -> set[int]:
        try:
            return {tp.partition for tp in app.consumer.assignment() if tp.topic in record_topics}
        except Exception:  # consumer not started (cannot happen inside a batch; stay safe)
            return set()

    async def ensure_recovered(p: int) -> None:
        """First batch of a newly assigned partition: learn what a previous owner already sent."""
        if p in committed:
            return
        loop = asyncio.get_running_loop()
        offsets = await loop.run_in_executor(None, committed_offsets, settings, record_topics, p)
        frontier = await loop.run_in_executor(None, load_frontier, settings, settings.partials_topic, p, offsets)
        written = await loop.run_in_executor(None, recent_event_ids, settings, t.enriched, p, offsets, 2000, 120.0,
                                             recovery_tail)
        if written:
            enriched_written[p] = written
        committed[p] = offsets
        for topic, off in offsets.items():
            gaps.start(topic, p, off)
        if frontier:
            frontiers[p] = frontier
            highest: dict[str, int] = {}
            for upto in frontier.values():
                for topic, off in upto.items():
                    highest[topic] = max(highest.get(topic, -1), off)
            frontier_max[p] = highest
            log.info("resuming partition after an unclean stop",
                     extra={"partition": p, "count": len(frontier)})

    def counts_for(p: int, topic: str, offset: int) -> Any:
        """``accept(key)`` for the partials builder: leave out what partials already counted."""
        high = frontier_max.get(p)
        if high is None or offset > high.get(topic, -1):
            return None
        frontier = frontiers[p]
        return lambda key: key not in frontier or offset > frontier[key].get(topic, -1)

    def upto(p: int) -> dict[str, int]:
        """Last processed offset of each input topic on ``p`` (the frontier a partial carries)."""
        base = committed.get(p) or {}
        return {topic: positions.get((topic, p), base.get(topic, 0)) - 1 for topic in record_topics}

    def observe(step: Step, topic: str, record_time: float | None, now: float) -> None:
        metrics.observe_step(step, topic, kind_of.get(topic), record_time)  # all per-record metrics: metrics.py

    @app.agent(source, concurrency=1, name="ingest", supervisor_strategy=CrashingSupervisor)
    async def ingest(stream: faust.StreamT) -> None:
        await run_batches(stream, settings.batch_size, settings.batch_within_seconds, "ingest", process_batch,
                          gaps, is_data=lambda event: event.message.topic != t.ticks)

    async def process_batch(events: list[Any]) -> None:
        """One batch; see :func:`~pipeline.agents.common.run_batches` for what happens when it raises."""
        pending: dict[str, Any] = {}
        touched: set[int] = set()
        partials: dict[int, PartialsBuilder] = {}  # per source partition (stage 2 tracks each one's time)
        ticked: set[int] = set()  # partitions that got a wall-clock tick in this batch

        def get_state(key: str) -> Any:
            return pending[key] if key in pending else customers.get(key)

        # partitions new to this worker: read back what a previous owner sent, all at once
        new = {e.message.partition for e in events} | assigned_input_partitions()
        await asyncio.gather(*(ensure_recovered(p) for p in new if p not in committed))
        wall = time.time()
        for event in events:
            msg = event.message
            p = msg.partition
            ensure_index(p)
            await ensure_recovered(p)
            touched.add(p)
            if msg.topic == t.ticks:
                ticked.add(p)
                problem = handle_tick(p, msg.value)
                if problem is not None:  # internal topics are validated like inputs
                    rec = Record(msg.topic, p, msg.offset, msg.key, msg.value, msg.timestamp)
                    for out in processor.dead(rec, [problem], None, time.time()).outputs:
                        await emit(p, out)
                continue
            if not await gaps.admit(msg.topic, p, msg.offset, event):
                low = reorder.lowest_held(p, msg.topic)
                if low is not None and msg.offset >= low:
                    hold_back([event])  # a copy of a record still held: only the held one is acknowledged
                continue
            if not ordering:  # PIPELINE_REORDER_MAX_RECORDS=0: applied in arrival order, acknowledged with the batch
                await apply_record(event, get_state, pending, partials)
                continue
            # acknowledged only once processed (the reorder buffer may hold it past this batch)
            hold_back([event])
            at = event_time_of(msg.topic, msg.value)
            if at is not None and not limits.min_time <= at <= limits.latest(wall):
                at = None  # out of range: dead-lettered, so it takes no place in event-time order
            # equal event times: a profile, then an order, then what is said about it; then what the
            # producer wrote first (an order placed and reviewed in the same second)
            reorder.add(p, msg.topic, msg.offset, at, event, wall, (tie_rank.get(msg.topic, 3), msg.timestamp or 0.0))
        done: list[Any] = []
        for p in sorted(touched | set(reorder.partitions())):
            for event in reorder.release(p, wall, undelivered(p, wall)):
                await apply_record(event, get_state, pending, partials)
                done.append(event)
                if len(done) % 200 == 0:
                    await asyncio.sleep(0)  # a long release (held records) must not starve /health
        note_reorder()
        for src, builder in partials.items():
            for key, partial in builder.partials().items():
                partial["src"] = src
                partial["upto"] = upto(src)
                await sender.send(settings.partials_topic, key.encode(), orjson.dumps(partial))
        await apply_advances(touched)
        await sweep(touched, get_state, pending)
        await announce(ticked)  # after this batch's partials: stage 2 never sees a clock before them
        for p in touched:
            pending[meta_keys[p]] = clocks.snapshot(p)
        await sender.confirm()  # outputs first: a stored state then implies its outputs are in Kafka
        await sender.store(customers, pending)  # confirmed before the inputs are acknowledged
        ack_processed(app, done)
        metrics.batch_size.observe(len(events))

    async def apply_record(event: Any, get_state: Any, pending: dict[str, Any],
                           partials: dict[int, PartialsBuilder]) -> None:
        """Process one admitted input record (in event-time order across the partition's topics)."""
        msg = event.message
        p = msg.partition
        positions[(msg.topic, p)] = msg.offset + 1
        now = time.time()
        step = await run_step(Record(msg.topic, p, msg.offset, msg.key, msg.value, msg.timestamp), get_state)
        eid = step.enriched.get("event_id") if step.enriched is not None else None
        if step.state_key is not None:
            prior = get_state(step.state_key)
            if already_applied(prior, msg.topic, msg.offset, eid, t.rekeyed):
                # re-read after a crash: state, outputs and partials are already in Kafka
                metrics.errors.labels("replayed_record_skipped").inc()
                return
            if step.state is not None:
                mark_applied(step.state, prior, msg.topic, msg.offset, eid, t.rekeyed)
        if step.state is not None:
            pending[step.state_key] = step.state
        if step.state_key is not None:
            index.set(p, step.state_key, step.next_due)
        for out in step.outputs:
            if out.topic == t.enriched and eid is not None and eid in enriched_written.get(p, ()):
                metrics.errors.labels("duplicate_enriched_suppressed").inc()
                continue  # written before the crash, its state was not stored yet
            await emit(p, out)
        if step.enriched is not None:
            builder = partials.get(p)
            if builder is None:
                builder = partials[p] = PartialsBuilder(windows, min_conf)
            builder.add(step.enriched, counts_for(p, msg.topic, msg.offset))
            clocks.observe(p, step.enriched["processing"]["source_topic"], step.event_time, now)
        counters[step.outcome] = counters.get(step.outcome, 0) + 1
        observe(step, msg.topic, msg.timestamp, now)

    def undelivered(p: int, wall: float) -> dict[str, bool]:
        """Per input topic of ``p``: records exist in Kafka that have not reached the reorder buffer
        (the consumer's last known end offset is past the next offset to deliver; unknown counts as
        yes).  The reorder buffer waits at most ``PIPELINE_REORDER_MAX_WAIT_SECONDS`` for them."""
        from faust.types import TP

        out: dict[str, bool] = {}
        for topic in record_topics:
            try:
                end = app.consumer.highwater(TP(topic, p))
            except Exception:  # not assigned / consumer not started: nothing known to wait for
                continue
            nxt = gaps.check.expected.get((topic, p), (committed.get(p) or {}).get(topic))
            out[topic] = end is None or (nxt is not None and end > nxt)
        return out

    def reorder_state() -> dict[str, Any]:
        wall = time.time()
        out: dict[str, Any] = {}
        for q in reorder.partitions():
            part = reorder._parts[q]
            out[str(q)] = {"held": {topic: [len(queue), queue[0].offset if queue else None,
                                           queue[0].event_time if queue else None]
                                    for topic, queue in part.queues.items()},
                           "ready": len(part.ready), "waits": dict(part.wait_start),
                           "pending": undelivered(q, wall),
                           "expected": {topic: gaps.check.expected.get((topic, q)) for topic in record_topics}}
        return out

    DEBUG_STATE["reorder"] = reorder_state

    reported = {"released_after_wait": 0, "released_wait_expired": 0, "released_over_bound": 0}

    def note_reorder() -> None:
        stats = reorder.stats
        for how in reported:
            now_ = getattr(stats, how)
            if now_ > reported[how]:
                metrics.reorder_released.labels(how.removeprefix("released_")).inc(now_ - reported[how])
                reported[how] = now_
        metrics.reorder_held.set(sum(reorder.held(q) for q in reorder.partitions()))
        HELD_FOR_ORDER.clear()
        for q in reorder.partitions():
            for topic in record_topics:
                low = reorder.lowest_held(q, topic)
                if low is not None:
                    HELD_FOR_ORDER[(topic, q)] = low

    def handle_tick(p: int, raw: bytes) -> Problem | None:
        """Apply a tick record; an invalid one is returned as its problem (to be dead-lettered)."""
        tick = parse_tick(raw)
        if isinstance(tick, Problem):
            metrics.errors.labels("tick").inc()
            return tick
        if tick.is_advance:
            pending_advances.setdefault(p, []).append(tick)
        elif settings.clock == "wall" and tick.now is not None:
            clocks.force(p, tick.now)
        return None

    def processed_up_to(topic: str, p: int) -> int:
        from faust.types import TP

        committed = app.consumer._committed_offset.get(TP(topic, p)) or 0
        return max(positions.get((topic, p), 0), committed)

    async def apply_advances(partitions: set[int]) -> None:
        """Apply advance_to ticks whose preceding records (``after`` offsets) have been processed."""
        for p in partitions:
            waiting = pending_advances.get(p) or []
            ready = [d for d in waiting if all(processed_up_to(topic, p) >= off for topic, off in d.after.items())]
            for tick in ready:
                waiting.remove(tick)
                to = float(tick.advance_to)  # type: ignore[arg-type]  # is_advance
                clocks.force(p, to)
                body = orjson.dumps({"control": "advance", "to": to, "from": p, "of": n_parts})
                for q in range(n_parts):
                    await sender.send(settings.partials_topic, b"clock", body, q)

    def caught_up(p: int) -> dict[str, bool]:
        """Per input topic seen on ``p``: nothing left to read on it (nor on the re-keyed topic, which
        carries events of every input).  The end offsets are the consumer's last fetched ones."""
        from faust.types import TP

        def done(topic: str) -> bool:
            try:
                end = app.consumer.highwater(TP(topic, p))
            except Exception:  # consumer not started, partition not assigned: unknown lag holds the clock
                return False
            pos = positions.get((topic, p), (committed.get(p) or {}).get(topic))
            return end is not None and pos is not None and pos >= end

        rekeyed_done = done(t.rekeyed)
        return {topic: rekeyed_done and done(topic) for topic in clocks.topics(p)}

    def clock_of(p: int) -> float | None:
        """Partition ``p``'s clock now (idle inputs do not hold it back: pipeline/clock.py)."""
        return clocks.value(p, time.time(), caught_up(p))

    async def announce(partitions: set[int]) -> None:
        """Tell stage 2 how far ``p``'s clock is (on ticks): an idle stage-1 partition does not hold
        windows back there either."""
        for p in partitions:
            clock = clock_of(p)
            if clock is None or clock <= announced.get(p, float("-inf")):
                continue
            announced[p] = clock
            body = orjson.dumps({"control": "clock", "time": clock, "from": p, "of": n_parts})
            for q in range(n_parts):
                await sender.send(settings.partials_topic, b"clock", body, q)

    async def sweep(partitions: set[int], get_state: Any, pending: dict[str, Any]) -> None:
        for p in partitions:
            clock = clock_of(p)
            if clock is None:
                continue
            for key in index.pop_due(p, clock):
                step = processor.advance(key, get_state(key), clock)
                metrics.observe_advance(step)
                if step.state is not None:
                    pending[key] = step.state
                index.set(p, key, step.next_due)
                for out in step.outputs:
                    await emit(p, out)
                for alert in step.alerts:
                    metrics.record_alert(alert)
            metrics.set_schedule(p, index.size(p), index.overdue(p, clock))

    @app.timer(settings.tick_interval_seconds, on_leader=True)
    async def tick() -> None:
        """Wall-clock ticks to every partition: the wall clock itself (``PIPELINE_CLOCK=wall``), the
        moments at which idle inputs stop holding the event-time clock back (``PIPELINE_IDLE_SECONDS``),
        and records held for event-time order whose wait ran out (``PIPELINE_REORDER_MAX_WAIT_SECONDS``)."""
        wall = settings.clock == "wall"
        if not wall and settings.idle_seconds <= 0 and not (ordering and settings.reorder_max_wait_seconds > 0):
            return  # nothing time-driven: strict event time and no records waiting for a slower topic
        now = time.time()
        body = orjson.dumps({"now": now})
        control = orjson.dumps({"control": "tick", "now": now})
        for p in range(n_parts):
            await sender.send(t.ticks, b"tick", body, p)
            if wall:
                await sender.send(settings.partials_topic, b"tick", control, p)
        await sender.confirm()

    @app.timer(2.0)
    async def ingest_gap_watch() -> None:
        """See :func:`~pipeline.agents.common.watch_input`."""
        await watch_input(app, gaps, set(record_topics))

    @app.on_partitions_revoked.connect
    async def on_revoked(app_: Any, revoked: Any, **kwargs: Any) -> None:
        for tp in revoked:
            if tp.topic in t.inputs:
                index.drop(tp.partition)
                clocks.drop(tp.partition)
                reorder.drop(tp.partition)  # never acknowledged: the next owner reads them again
                metrics.drop_schedule(tp.partition)
                announced.pop(tp.partition, None)
                emitted.pop(tp.partition, None)
                committed.pop(tp.partition, None)
                enriched_written.pop(tp.partition, None)
                frontiers.pop(tp.partition, None)
                frontier_max.pop(tp.partition, None)
            if tp.topic in record_topics:
                positions.pop((tp.topic, tp.partition), None)
                gaps.forget(tp.topic, tp.partition)

    return customers, processor

