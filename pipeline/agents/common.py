"""Small helpers shared by the agents (Faust-facing, no business logic)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Iterable, Mapping, NoReturn


from ..core.keys import is_meta_key, partition_meta_key, partition_of  # noqa: F401  (the agents' names)
from ..delivery import GapCheck, Verdict, gap_is_real
from ..metrics import Metrics
from ..outputs.frontier import first_offset_from, group_offsets
from .faust_fixes import CHANGELOG_SENT
from .failstop import check_not_frozen, fatal, restart_from_committed

log = logging.getLogger("pipeline.agent")


class Sender:
    """Produces raw records through the app's producer and confirms them before the batch is acknowledged.

    Every send's future is kept until :meth:`confirm`, which the agents await at
    the end of each batch — before the batch's table writes and before Faust's
    ``take_events`` acknowledges the batch's input offsets.  A send that failed
    (a non-retriable error such as a record over ``max.message.bytes``, a deleted
    topic, a refused authorisation, or an outage longer than the producer's
    delivery timeout) stops the worker (:func:`~pipeline.agents.failstop.fatal`):
    its input offset is then never committed, and the restarted worker processes
    the record again.  aiokafka's ``flush()`` alone waits but never raises.
    """

    def __init__(self, app: Any, metrics: Metrics, counters: dict[str, int], stage: str) -> None:
        self.app = app
        self.metrics = metrics
        self.counters = counters
        self.stage = stage
        self._pending: list[tuple[str, Any]] = []

    async def send(self, topic: str, key: bytes, value: bytes, partition: int | None = None,
                   kind: str | None = None) -> None:
        """``kind``: the input event kind that caused the record (metrics label; None = internal)."""
        check_not_frozen(self.app, self.stage)
        producer = await self.app.maybe_start_producer()
        try:
            fut = await producer.send(topic, key, value, partition, None, None)
        except Exception as exc:  # refused before it was queued (too large, unknown topic, closed producer)
            self._failed(topic, exc)
        self._pending.append((topic, fut))
        self.metrics.record_produced(topic, kind)

    async def send_all(self, sends: Iterable[Any]) -> None:
        """:meth:`send` each of ``sends`` in order (objects with ``topic``, ``key``, ``value``,
        ``partition`` and ``kind``: :class:`~pipeline.drivers.stage1.Send`).  The producer lookup runs
        once per :data:`YIELD_EVERY` records and the metric once per topic and kind, not per record
        (issue 17: the stage-1 agent sends ~2.3 records per event).  The freeze check stays per
        record: a worker paused in the middle of the list and resumed must not send the rest (a
        SIGSTOP test wrote a duplicate when it ran once per 128 records)."""
        producer = None
        produced: dict[tuple[str, str | None], int] = {}
        try:
            for i, s in enumerate(sends):
                check_not_frozen(self.app, self.stage)
                if i % YIELD_EVERY == 0:
                    producer = await self.app.maybe_start_producer()
                try:
                    fut = await producer.send(s.topic, s.key, s.value, s.partition, None, None)
                except Exception as exc:  # refused before it was queued (as in :meth:`send`)
                    self._failed(s.topic, exc)
                self._pending.append((s.topic, fut))
                produced[(s.topic, s.kind)] = produced.get((s.topic, s.kind), 0) + 1
        finally:
            for (topic, kind), n in produced.items():
                self.metrics.record_produced(topic, kind, n)

    def sent(self) -> list[tuple[str, Any]]:
        """The records sent and not confirmed yet (a snapshot, for :meth:`confirm`)."""
        return list(self._pending)

    async def confirm(self, pending: list[tuple[str, Any]] | None = None) -> None:
        """Wait until every record sent since the last call (or those of ``pending``, a :meth:`sent`
        snapshot) is acknowledged by the brokers; fail-stop if not."""
        # a snapshot, removed only once confirmed: a concurrent caller (the tick timer and the agent
        # share this sender) must wait for the same futures, not find the list already emptied
        pending = list(self._pending) if pending is None else pending
        if not pending:
            return
        await self._await(pending)
        confirmed = {id(fut) for _, fut in pending}
        self._pending = [(topic, fut) for topic, fut in self._pending if id(fut) not in confirmed]
        # stood still while these were in flight: the table writes that follow would be a zombie's
        check_not_frozen(self.app, self.stage)

    async def store(self, table: Any, values: Mapping[str, Any]) -> None:
        """Write ``values`` to ``table`` and wait until their changelog records (and any other
        table's sent since the last call) are acknowledged; fail-stop if not.  Faust's own flush
        before a commit can return with changelog records unsent (``faust_fixes``, fix 5)."""
        await self.write(table, values)
        await self.confirm_changelog()

    async def write(self, table: Any, values: Mapping[str, Any]) -> None:
        """Write ``values`` to ``table`` (their changelog records are sent, not yet confirmed)."""
        for i, (key, value) in enumerate(values.items()):
            table[key] = value  # encodes the value for its changelog record (pipeline.codec)
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)  # a long commit must not hold the other agent (one event loop)

    async def confirm_changelog(self) -> None:
        """Wait until every changelog record sent so far is acknowledged; fail-stop if not."""
        pending = [("changelog", fut) for fut in CHANGELOG_SENT]
        if not pending:
            return
        await self._await(pending)
        confirmed = {id(fut) for _, fut in pending}
        CHANGELOG_SENT[:] = [fut for fut in CHANGELOG_SENT if id(fut) not in confirmed]

    async def _await(self, pending: list[tuple[str, Any]]) -> None:
        producer = await self.app.maybe_start_producer()
        await producer.flush()
        futures = [(topic, asyncio.ensure_future(fut)) for topic, fut in pending]  # a Future stays itself
        waiting = {fut for _, fut in futures if not fut.done()}
        if waiting:  # one wait for all (not one timer and task per record): they are sent in parallel
            await asyncio.wait(waiting, timeout=CONFIRM_TIMEOUT_SECONDS)
        for topic, fut in futures:
            if not fut.done():
                self._failed(topic, TimeoutError(f"not acknowledged within {CONFIRM_TIMEOUT_SECONDS} s"))
            if fut.cancelled():
                self._failed(topic, asyncio.CancelledError())
            exc = fut.exception()
            if exc is not None:
                self._failed(topic, exc)

    def _failed(self, topic: str, exc: BaseException) -> NoReturn:
        self.counters["send_failed"] = self.counters.get("send_failed", 0) + 1
        self.metrics.errors.labels("produce").inc()
        fatal("produce_failed", stage=self.stage, topic=topic, error=type(exc).__name__)


YIELD_EVERY = 128  # sends or table writes between two yields to the event loop in a long batch
# After flush() every future is resolved; this only bounds a producer that stopped answering.
CONFIRM_TIMEOUT_SECONDS = 300.0
UNANSWERED_SECONDS = 60.0  # end-offset queries unanswered in a row before the worker restarts itself


def json_table(app: Any, name: str, partitions: int, help: str) -> Any:
    """A table keyed by ``str`` with JSON values (changelog in the versioned, compressed ``state``
    encoding: :mod:`pipeline.codec`), its changelog partitioned by the key partitioner.

    ``use_partitioner``: the changelog partition is chosen by the producer's key
    partitioner (murmur2, as for the keyed source topics), so a table write is
    correct outside the per-event stream context (batched writes).  Faust derives
    serializers from the types and builds the changelog topic eagerly, so both the
    table's and the changelog topic's serializers are set here (reading the
    changelog back with other codecs than it was written with breaks recovery).
    """
    table = app.Table(name, key_type=str, partitions=partitions, use_partitioner=True, help=help)
    table.key_serializer, table.value_serializer = "raw", "state"
    topic = table.changelog_topic
    for obj in (topic, topic.schema):
        obj.key_serializer, obj.value_serializer = "raw", "state"
    return table


class InputGuard:
    """Keeps an agent's input gap-free without ever seeking Faust's consumer (see :mod:`pipeline.delivery`).

    :meth:`admit` is called for every record, in order, before anything of it is
    acknowledged.  A record past the next expected offset:

    * if the missing range does not exist in Kafka (compaction, retention; asked
      once by a consumer outside the group), the gap is accepted;
    * if it exists, the record is *held back* — neither processed nor acknowledged,
      so no offset at or past the hole can be committed.  This is the normal case
      right after a rebalance: Faust hands over records its stream buffers held
      from before the rebalance, then re-fetches from the committed offset, and
      the missing range arrives.  When it has not arrived within
      ``wait_seconds`` (Faust dropped it for good), the worker restarts itself
      from its committed offsets (:func:`~pipeline.agents.failstop.restart_from_committed`).
    """

    def __init__(self, settings: Any, metrics: Metrics, stage: str, wait_seconds: float = 20.0,
                 clock: Callable[[], float] = time.monotonic, consumer: Callable[[], Any] | None = None,
                 rewind_seconds: float = 3.0, starved: Callable[[], bool] = lambda: False) -> None:
        self.settings, self.metrics, self.stage = settings, metrics, stage
        self.wait_seconds, self.clock, self.rewind_seconds = wait_seconds, clock, rewind_seconds
        self.consumer = consumer  # the app's Faust consumer (None in unit tests without one)
        # True while the worker's one fetch loop waits on a full agent buffer (:func:`fetch_loop_blocked`)
        self.starved = starved
        self._rewound_at: dict[tuple[str, int], float] = {}
        self._busy, self._last_batch = False, clock()
        self.check = GapCheck()
        self._waiting: dict[tuple[str, int], tuple[int, float]] = {}  # tp -> (expected offset, since)
        self._held_at: dict[tuple[str, int], float] = {}  # tp -> when its current wait began (the cap)
        self._suspect: dict[tuple[str, int], tuple[int, float]] = {}  # tp -> (expected, first seen below end)
        self._unanswered_since: float | None = None  # first of the end-offset queries not answered in a row
        self._exists: dict[tuple[str, int], tuple[int, int | None]] = {}  # tp -> (from, first existing offset)

    def start(self, topic: str, partition: int, offset: int | None) -> None:
        self.check.start(topic, partition, offset)

    def delivered(self, topic: str, partition: int, offset: int) -> None:
        """A record of a partition that is tail-watched but not gap-checked (stage 1's ticks) was
        delivered: a wait on that partition at or below ``offset`` is over (what :meth:`admit` does
        for a gap-checked record it processes)."""
        tp = (topic, partition)
        waited = self._waiting.get(tp)
        if waited is not None and offset >= waited[0]:
            del self._waiting[tp]
            self._rewound_at.pop(tp, None)
            self._held_at.pop(tp, None)

    def forget(self, topic: str, partition: int) -> None:
        self.check.forget(topic, partition)
        self._waiting.pop((topic, partition), None)
        self._exists.pop((topic, partition), None)
        self._rewound_at.pop((topic, partition), None)
        self._held_at.pop((topic, partition), None)
        self._suspect.pop((topic, partition), None)

    async def admit(self, topic: str, partition: int, offset: int, event: Any = None) -> bool:
        """True: process the record now.  False: skip it (``event`` held back when it must not be acknowledged)."""
        tp = (topic, partition)
        verdict = self.check.check(topic, partition, offset)
        if verdict is Verdict.PROCESS:
            if self._waiting.pop(tp, None) is not None:
                self._rewound_at.pop(tp, None)
            return True
        if verdict is Verdict.SKIP:
            self.metrics.errors.labels("input_redelivered_skipped").inc()
            return False
        first, end = self.check.missing(topic, partition, offset)
        known = self._exists.get(tp)
        if known is None or known[0] != first or (known[1] is not None and known[1] >= end):
            loop = asyncio.get_running_loop()
            existing = await loop.run_in_executor(None, first_offset_from, self.settings, topic, partition, first)
            known = self._exists[tp] = (first, existing)
        if not gap_is_real(known[1], end):
            log.info("input gap: the missing offsets do not exist (compaction or retention)",
                     extra={"topic": topic, "partition": partition, "offset": first, "count": end - first})
            self.metrics.errors.labels("input_gap_absent_offsets").inc()
            self.check.accept_gap(topic, partition, offset)
            self._waiting.pop(tp, None)
            await self._let_commits_pass(topic, partition, first, offset - 1)
            return True
        if event is not None:
            hold_back([event])
        if tp not in self._waiting or self._waiting[tp][0] != first:
            self._waiting[tp] = (first, self.clock())
            self._held_at[tp] = self.clock()
            self.metrics.errors.labels("input_gap_held_back").inc()
            log.warning("input gap: records past a missing range held back until it is delivered",
                        extra={"topic": topic, "partition": partition, "offset": first, "actual": offset,
                               "count": end - first})
        self.restart_if_due()
        return False

    def restart_if_due(self) -> None:
        """Restart from the committed offsets where a missing range has waited ``wait_seconds``."""
        now = self.clock()
        for (topic, partition), (first, since) in list(self._waiting.items()):
            if now - since > self.wait_seconds:
                self.metrics.errors.labels("input_gap_restart").inc()
                restart_from_committed("input_gap", stage=self.stage, topic=topic, partition=partition,
                                       offset=first)

    async def restart_if_overdue(self) -> None:
        """Where a missing range has not come: re-read it, then restart.

        Every ``rewind_seconds`` each waited partition is resumed and sought to its
        next expected offset — only those partitions, on the consumer's own thread
        (Faust's ``seek_wait``; a batch fetched before the seek is not handed over
        after it: ``faust_fixes.seek_tokens``); records already processed are not
        read again.  After ``wait_seconds`` the worker restarts itself.  Called by a
        timer, never inside a batch.

        A partition no longer assigned is forgotten, never sought (aiokafka raises
        ``IllegalStateError`` for it).  While the worker's fetch loop waits on a full
        agent buffer (``starved``) no input can arrive: the waits start again rather
        than run out (a busy worker is not a stalled one), up to :data:`STARVED_WAIT_FACTOR`
        times ``wait_seconds`` from the moment each wait began.
        """
        now = self.clock()
        consumer = self.consumer() if self.consumer is not None else None
        self._drop_unassigned(assigned_partitions(consumer))
        if self._waiting and self.starved():
            # at most STARVED_WAIT_FACTOR x wait_seconds in all: a range that never comes while the
            # worker stays busy still ends in a restart
            cap = STARVED_WAIT_FACTOR * self.wait_seconds
            self._waiting = {tp: (first, now if now - self._held_at.get(tp, now) < cap else since)
                             for tp, (first, since) in self._waiting.items()}
            if all(since == now for _, since in self._waiting.values()):
                return
        rewind: dict[tuple[str, int], int] = {}
        for (topic, partition), (first, since) in list(self._waiting.items()):
            if now - since > self.wait_seconds:
                self.metrics.errors.labels("input_gap_restart").inc()
                restart_from_committed("input_gap", stage=self.stage, topic=topic, partition=partition,
                                       offset=first)
            last = self._rewound_at.get((topic, partition), since)
            if now - since >= self.rewind_seconds and now - last >= self.rewind_seconds:
                self._rewound_at[(topic, partition)] = now
                log.warning("input gap: re-reading from the next expected offset",
                            extra={"topic": topic, "partition": partition, "offset": first})
                rewind[(topic, partition)] = first
        if rewind and consumer is not None:
            await self._seek(consumer, rewind)

    async def _seek(self, consumer: Any, rewind: dict[tuple[str, int], int]) -> None:
        from aiokafka.errors import IllegalStateError
        from faust.types import TP

        self.metrics.errors.labels("input_gap_rewind").inc()
        async with SEEK_LOCK:  # one seek at a time, from timers only (never inside a batch)
            # assigned now (the lock may have waited): a rebalance between the check and the seek is possible
            assigned = assigned_partitions(consumer)
            targets = {TP(topic, partition): first for (topic, partition), first in rewind.items()
                       if assigned is None or (topic, partition) in assigned}
            if not targets:
                return
            # Faust can leave a partition paused after back-to-back rebalances: resume what is waited on
            consumer.resume_partitions(set(targets))
            try:
                await consumer.seek_wait(targets)
            except IllegalStateError:  # revoked meanwhile: its next owner reads it from the committed offset
                log.info("input gap: re-read skipped, a partition was revoked meanwhile",
                         extra={"stage": self.stage, "count": len(targets)})
                self._drop_unassigned(assigned_partitions(consumer))

    def _drop_unassigned(self, assigned: set[tuple[str, int]] | None) -> None:
        """Forget the waits of partitions no longer assigned (None: the assignment is unknown)."""
        if assigned is None:
            return
        for tp in [tp for tp in self._waiting if tp not in assigned]:
            self._waiting.pop(tp, None)
            self._rewound_at.pop(tp, None)
            self._held_at.pop(tp, None)
        for tp in [tp for tp in self._suspect if tp not in assigned]:
            del self._suspect[tp]

    def note_batch(self, busy: bool) -> None:
        """The agent started (``busy``) or finished a batch: the tail watch counts idle time only."""
        self._busy = busy
        self._last_batch = self.clock()

    def idle(self) -> bool:
        """No batch of this agent in progress and none for ``rewind_seconds``, and the worker's fetch
        loop not waiting on a full buffer (the tail watch asks the broker only then).  One fetch loop
        feeds all agents: while one agent is busy with a full buffer (a long read-back) the loop waits
        on it, and another agent sees nothing — starved, not stalled.  Each agent's idleness is its
        own: a busy stage 1 does not hide a stalled stage 2."""
        return not self._busy and self.clock() - self._last_batch > self.rewind_seconds and not self.starved()

    def note_ends(self, answered: bool | None) -> None:
        """Whether the tail watch's end-offset query was answered (``None``: not asked — a rebalance,
        a batch in progress — and the count starts over).  Unanswered for :data:`UNANSWERED_SECONDS` in a row: the
        worker restarts itself from its committed offsets.  Seen in CI after a KRaft node was
        SIGKILLed: the consumer thread answered nothing for 8 minutes while the process lived on."""
        now = self.clock()
        if answered is not False:
            self._unanswered_since = None
            return
        if self._unanswered_since is None:
            self._unanswered_since = now
            return
        if now - self._unanswered_since >= UNANSWERED_SECONDS:
            log.error("consumer unresponsive: end offsets not answered", extra={
                "stage": self.stage, "seconds": round(now - self._unanswered_since, 1)})
            self.metrics.errors.labels("consumer_unresponsive").inc()
            restart_from_committed("consumer_unresponsive", stage=self.stage, seconds=now - self._unanswered_since)

    async def watch_tail(self, ends: Mapping[tuple[str, int], tuple[int | None, int | None]],
                         slack: Mapping[str, int] | None = None) -> None:
        """A missing range at the end of a partition: records exist past the next expected offset,
        but the agent has been idle (no batch) for ``rewind_seconds`` — nothing later would reveal it.

        ``ends``: (end offset, committed offset) of each assigned partition this guard watches; the
        committed offset stands in for a partition that has delivered nothing yet.
        A partition whose next expected offset stayed the same, below its end, over two checks
        ``rewind_seconds`` apart is treated like a held-back gap (rewind, then restart); one check
        alone would take a record produced a moment before it (stage 1's clock controls reach every
        partials partition on each tick) for a stall and re-read for nothing.

        ``slack[topic]``: records a partition of that topic may have past its next expected offset
        without counting as stalled (stage 1's ticks: the last tick of a partition can wait for its
        commit while no new tick comes — a frozen leader sends none).
        """
        now = self.clock()
        if not self.idle():
            return
        consumer = self.consumer() if self.consumer is not None else None
        assigned = assigned_partitions(consumer)
        for tp, (end, committed) in ends.items():
            if assigned is not None and tp not in assigned:
                continue  # revoked while the ends were asked
            want = self.check.expected.get(tp, committed)
            allowed = (slack or {}).get(tp[0], 0)
            if end is None or want is None or end - want <= allowed or tp in self._waiting:
                self._suspect.pop(tp, None)
                continue
            # a record produced just before the check is not a stall: the same next expected offset
            # must have stayed below the end for rewind_seconds (stage 1 writes clock controls to
            # every partials partition on its ticks)
            seen = self._suspect.get(tp)
            if seen is None or seen[0] != want:
                self._suspect[tp] = (want, now)
                continue
            if now - seen[1] >= self.rewind_seconds:
                del self._suspect[tp]
                log.warning("input stalled: records past the next expected offset are not delivered",
                            extra={"topic": tp[0], "partition": tp[1], "offset": want, "count": end - want})
                self.metrics.errors.labels("input_gap_held_back").inc()
                self._waiting[tp] = (want, now - self.rewind_seconds)
                self._held_at[tp] = now
        await self.restart_if_overdue()

    async def _let_commits_pass(self, topic: str, partition: int, first: int, last: int) -> None:
        consumer = self.consumer() if self.consumer is not None else None
        if consumer is not None and hasattr(consumer, "add_verified_gap") and first <= last:
            from faust.types import TP

            await consumer.add_verified_gap(TP(topic, partition), first, last)


async def input_ends(app: Any, settings: Any,
                     topics: Any) -> dict[tuple[str, int], tuple[int | None, int | None]] | None:
    """(end offset, committed offset) of each assigned partition of ``topics``; ``None`` when the
    broker (or the consumer's thread) did not answer within 10 s.

    End offsets are asked from the broker (through the consumer's own thread): a partition
    Faust never fetched after a rebalance has no cached high watermark.  Committed offsets
    are the group's, asked with the admin API: Faust's own record of them is empty for a
    partition it has not fetched yet (0 if the group never committed one).
    """
    out: dict[tuple[str, int], tuple[int | None, int | None]] = {}
    try:
        assigned = [tp for tp in app.consumer.assignment() if tp.topic in topics]
    except Exception:  # consumer not started
        return out
    if not assigned:
        return out
    try:
        ends = await asyncio.wait_for(app.consumer.highwaters(*assigned), 10.0)
        loop = asyncio.get_running_loop()
        committed = await asyncio.wait_for(loop.run_in_executor(None, group_offsets, settings), 10.0)
    except Exception:  # broker slow or unreachable: try again on the next tick
        return None
    for tp in assigned:
        out[(tp.topic, tp.partition)] = (ends.get(tp), committed.get((tp.topic, tp.partition), 0))
    return out


def assigned_partitions(consumer: Any) -> set[tuple[str, int]] | None:
    """The consumer's current assignment as (topic, partition) pairs; None when it is unknown
    (no consumer, or not started)."""
    if consumer is None or not hasattr(consumer, "assignment"):
        return None
    try:
        return {(tp.topic, tp.partition) for tp in consumer.assignment()}
    except Exception:  # not started / closing
        return None


def fetch_loop_blocked(app: Any) -> bool:
    """Some agent's input buffer is (nearly) full: Faust's one fetch loop then waits in ``put`` until
    that agent takes from it, and no other agent receives anything meanwhile.  "Nearly": from the
    queue's high-pressure mark (80 %), at which Faust stops fetching the partition — the agent takes
    a batch at a time, so a sample of a blocked loop's queue is rarely exactly full."""
    try:
        channels = list(app.topics._topics)
    except AttributeError:
        return False
    for channel in channels:
        queue = getattr(channel, "_queue", None)  # created on first use
        if queue is not None and queue.maxsize and queue.qsize() >= getattr(queue, "pressure_high_size",
                                                                            queue.maxsize):
            return True
    return False


STARVED_WAIT_FACTOR = 5.0  # a wait paused while starved still restarts after this many wait_seconds
SEEK_LOCK = asyncio.Lock()
# (topic, partition) -> the lowest offset held for event-time order (pipeline/ingest/order.py): a
# committed offset equal to it waits for the reorder buffer, not for a stuck agent (read by /health)
HELD_FOR_ORDER: dict[tuple[str, int], int] = {}
# name -> what an agent shows on /debug/tasks (PIPELINE_DEBUG=1): diagnostics only
DEBUG_STATE: dict[str, Callable[[], Any]] = {}


def hold_back(events: Any) -> None:
    """Keep a batch's input offsets from being committed: Faust's ``take_events`` acknowledges the
    batch in a ``finally`` even when the agent was cancelled half-way through it."""
    for event in events:
        event.message.acked = True  # Message.ack() then skips Consumer.ack(): the offset stays uncommitted


def ack_processed(app: Any, events: Any) -> None:
    """Acknowledge events held back by :func:`hold_back` once they were processed and their outputs
    confirmed (the reorder buffer can hold a record past the batch that delivered it)."""
    consumer = app.consumer
    for event in events:
        message = event.message
        message.acked = False
        message.ack(consumer)


async def run_batches(stream: Any, size: int, within: float, stage: str,
                      body: Callable[[list[Any]], Awaitable[None]], guard: InputGuard,
                      is_data: Callable[[Any], bool] = lambda event: True) -> None:
    """The agent loop: ``body`` per batch; a batch acknowledged only when ``body`` returned.

    An exception escaping ``body`` stops the worker (:func:`~pipeline.agents.failstop.fatal`)
    before the batch is acknowledged — Faust's default supervisor would restart the agent
    silently, after ``take_events`` had acknowledged the batch.  A cancellation (shutdown)
    holds the batch back so the next owner processes it again.
    """
    async for events in stream.take_events(size, within=within):
        # the tail watch counts idle time only; a batch of ticks / clock controls alone is no activity
        # (ticks come every 2 s: counted, they would keep a stalled worker "busy" for ever)
        data = any(is_data(event) for event in events)
        if data:
            guard.note_batch(True)
        started = time.perf_counter()
        try:
            await body(events)
            guard.metrics.batch_seconds.labels(stage).observe(time.perf_counter() - started)
        except asyncio.CancelledError:
            hold_back(events)
            raise
        except BaseException as exc:
            hold_back(events)
            fatal("agent_crashed", stage=stage, error=type(exc).__name__, where=raised_at(exc),
                  trace=raised_through(exc))
        finally:
            if data:
                guard.note_batch(False)


async def watch_input(app: Any, guard: InputGuard, topics: Any, slack: Mapping[str, int] | None = None) -> None:
    """The agents' 2-second gap watch: rewind / restart where a held-back range never came, or where
    records at a partition's end are not delivered while the worker is idle (``slack``:
    :meth:`InputGuard.watch_tail`)."""
    if app.rebalancing or not app.tables.recovery.completed.is_set():
        guard.note_batch(False)  # a rebalance counts as activity: the first fetch after it takes a moment
        guard.note_ends(None)
        return
    if guard.idle():
        ends = await input_ends(app, guard.settings, topics)
        guard.note_ends(ends is not None)
        if ends is None or app.rebalancing:  # a rebalance began meanwhile: the ends may name revoked partitions
            return
        await guard.watch_tail(ends, slack)
    else:
        guard.note_ends(None)  # not asked (a batch in progress): "in a row" starts over
        await guard.restart_if_overdue()


def raised_at(exc: BaseException) -> str | None:
    """``module.py:line`` where ``exc`` was raised (a code location, never data), for the fail-stop line."""
    tb = exc.__traceback__
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    return _location(tb)


def _location(tb: Any) -> str:
    """``module.py:line`` of one traceback entry."""
    return f"{tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}"


TRACE_FRAMES = 8  # the fail-stop line's traceback: this many innermost code locations


def raised_through(exc: BaseException, frames: int = TRACE_FRAMES) -> str | None:
    """The last ``frames`` code locations of ``exc``'s traceback (``module.py:line``, outermost first,
    joined by ``>``; never values), for the fail-stop line: the raising line alone does not say how
    it was reached (a producer call outside the patched ``send``)."""
    tb = exc.__traceback__
    locations: list[str] = []
    while tb is not None:
        locations.append(_location(tb))
        tb = tb.tb_next
    return ">".join(locations[-frames:]) or None
