"""Stage 1 as a driver: the per-customer records of a worker's partitions and the ``customers``
table in; sends, table writes, records to acknowledge and metric updates out.  No Faust and no
Kafka client: what the edge knows of Kafka (end offsets, committed offsets, the gap guard's next
expected offsets) comes in through :class:`KafkaView`, what a previous owner already sent through
:meth:`Stage1.recover`.

A batch (:meth:`Stage1.batch`), in order:

1. ticks are applied (a wall-clock tick moves a ``PIPELINE_CLOCK=wall`` clock; an ``advance_to``
   tick waits until the records before it are processed); an invalid tick is dead-lettered;
2. records are held in event-time order across a partition's topics
   (:class:`~pipeline.ingest.order.ReorderBuffer`, Kafka Streams' ``max.task.idle.ms``) and
   applied as they are released, each through :class:`~pipeline.process.Processor` (bounded
   retries, then a dead letter); the partitions are interleaved in the order the batch delivered
   their records, and the outputs so far are handed to the edge every :data:`FLUSH_EVERY` records
   (a record's enriched event does not wait for the rest of a long batch).  A record the stored
   state already includes (re-read after a crash) is skipped; an enriched event already on
   ``events.enriched`` past the committed offsets is not written twice; an alert id already on an
   alert topic is not sent twice (nor a dead letter whose id :class:`Recovery` carries, read back
   from the dead-letter topic);
3. the batch's enriched events become one partial per ``dimension=value`` (leaving out what the
   partials topic already counted before a crash), then advances, the silence sweep (due
   deadlines and rescorings: :class:`~pipeline.scheduling.DueIndex`) and the clock announcement
   to stage 2 (after the partials: stage 2 never sees a clock before them);
4. each partition's clock is stored under its metadata key with the customers' states.

**Commits** (Kafka Streams' ``commit.interval.ms``).  Enriched events, alerts and dead letters are
returned with the batch that made them.  The partials, clock controls, state writes and applied
records accumulate across batches and are returned together by the first batch at least
:attr:`Stage1Config.commit_interval` seconds after the oldest of them, holding
:attr:`Stage1Config.commit_max_records` records, or carrying a tick (``commit_interval`` 0: every batch):
:attr:`Effects.committing` is then true.  Until then states are read from the pending writes, so
later batches see them.  The edge sends what ``flush`` was handed, then :attr:`Effects.sends`, in
order; on a commit it confirms every send since the last commit, writes :attr:`Effects.writes`,
confirms those, and only then acknowledges :attr:`Effects.done` (records and ticks applied) — a
stored state implies its outputs are in Kafka, and a committed tick implies the clock controls it
caused are.  The edge does this in the background while later batches run; until it calls
:meth:`Stage1.stored` the driver reads the commit's states from its own overlay
(:attr:`Stage1.committing`), not the older table.  A crash before a commit loses nothing: the
records are read again, and what was already sent is found by :meth:`Stage1.recover` (enriched
ids, alert ids, the partials' frontier).  A revoked partition's pending part is dropped (its
records were never acknowledged).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Mapping, Protocol

import orjson

from ..aggregate import PartialsBuilder
from ..aggregate.windows import WindowSpec
from ..clock import Clocks
from ..config import Settings
from ..core.keys import is_meta_key, partition_meta_key, partition_of
from ..ingest.internal import Tick, parse_tick
from ..ingest.order import ReorderBuffer, event_time_of
from ..ingest.validate import Problem
from ..process import Output, Processor, Record, Step
from ..retry import RetryPolicy, attempt
from ..scheduling import DueIndex
from ..segment.tiers import SpendSketch, tier_value

log = logging.getLogger("pipeline.agent")

HANDED_OVER_WAIT_SECONDS = 5.0
"""The wait for a gap the consumer has fetched past with every record already on the stream."""

FLUSH_EVERY = 64
"""Records applied between two hand-overs of a batch's outputs to :meth:`Stage1.batch`'s ``flush``."""

Frontier = dict[str, dict[str, int]]  # key -> topic -> last offset the partials topic counted


class KafkaView(Protocol):
    """What the driver reads of the consumer (the edge implements it)."""

    def highwater(self, topic: str, partition: int) -> int | None:
        """The last fetched end offset (``None``: not known yet); raises if not assigned."""

    def committed(self, topic: str, partition: int) -> int:
        """The offset the group committed for this worker (0 if none)."""

    def expected(self, topic: str, partition: int) -> int | None:
        """The gap guard's next expected offset (``None``: nothing delivered yet)."""

    def fetched(self, topic: str, partition: int) -> tuple[int | None, int | None]:
        """The consumer's position (next offset to fetch; control records such as transaction
        markers are skipped) and the offset of the last record put on the agent's stream
        (``None``: unknown)."""


@dataclass(frozen=True)
class Recovery:
    """What the edge read back for a partition new to this worker."""

    committed: Mapping[str, int]  # committed input offsets
    frontier: Frontier | None = None  # what partials already counted (after an unclean stop)
    written: set[str] = field(default_factory=set)  # event ids on events.enriched past the offsets
    alert_ids: set[str] = field(default_factory=set)  # alert ids on the alert topics, dead-letter ids


@dataclass(frozen=True)
class In:
    """One consumed record; ``token`` is the edge's handle on it (acknowledged when in ``done``)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None
    token: Any = None


@dataclass(frozen=True)
class Send:
    topic: str
    key: bytes
    value: bytes
    partition: int | None = None
    kind: str | None = None  # metrics label: the input kind that caused it (None: internal)


Flush = Callable[[list[Send]], Awaitable[None]]
"""The edge's hand-over of sends made so far in a batch (:meth:`Stage1.batch`), in order."""


@dataclass
class Effects:
    sends: list[Send] = field(default_factory=list)
    writes: dict[str, Any] = field(default_factory=dict)  # table key -> value, each key once
    done: list[Any] = field(default_factory=list)  # tokens of the records released and applied
    touched: set[int] = field(default_factory=set)
    committing: bool = True  # confirm the sends, store ``writes``, then acknowledge ``done``


@dataclass(frozen=True)
class Stage1Config:
    partitions: int
    windows: list[WindowSpec]
    min_confidence: float
    retry: RetryPolicy
    settings: Settings  # topics, clock mode, time limits, reorder settings, partials topic
    commit_interval: float = 0.0  # seconds (see the module docstring); 0: commit every batch
    commit_max_records: int = 2500  # applied records that make a commit due sooner

    @property
    def ordering(self) -> bool:
        return self.settings.reorder_max_records > 0


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


class _Pending:
    """What applied records changed since the last commit (see the module docstring)."""

    def __init__(self) -> None:
        self.writes: dict[str, Any] = {}  # table key -> value, each key once
        self.partials: dict[int, PartialsBuilder] = {}  # per source partition
        self.controls: list[tuple[int, Send]] = []  # (source partition, clock control), in order
        self.done: list[tuple[int, Any]] = []  # (partition, token) of the records applied
        self.low: dict[tuple[str, int], int] = {}  # (topic, partition) -> lowest offset applied
        self.touched: set[int] = set()  # partitions whose clocks are stored on the commit
        self.since: float | None = None  # wall time of the oldest pending change

    def drop(self, p: int, n: int) -> None:
        """Forget partition ``p``'s part (revoked: its records are never acknowledged)."""
        self.writes = {k: v for k, v in self.writes.items() if partition_of(k, n) != p}
        self.partials.pop(p, None)
        self.controls = [(q, c) for q, c in self.controls if q != p]
        self.done = [(q, tok) for q, tok in self.done if q != p]
        self.low = {tp: off for tp, off in self.low.items() if tp[1] != p}
        self.touched.discard(p)


class _Batch:
    """One batch's working set: its sends, and the pending changes it adds to."""

    def __init__(self, table: Mapping[str, Any], pending: _Pending, committing: Mapping[str, Any]) -> None:
        self.table = table
        self.fx = Effects(committing=False)
        self.pending = pending
        self.partials = pending.partials
        self.committing = committing

    def get_state(self, key: str) -> Any:
        writes = self.pending.writes
        if key in writes:
            return writes[key]
        committing = self.committing
        return committing[key] if key in committing else self.table.get(key)

    def write(self, key: str, value: Any) -> None:
        self.pending.writes[key] = value

    def control(self, p: int, send: Send) -> None:
        self.pending.controls.append((p, send))


class Stage1:
    """All stage-1 partitions a worker owns; see the module docstring."""

    def __init__(self, cfg: Stage1Config, processor: Processor, table: Mapping[str, Any], metrics: Any,
                 counters: dict[str, int]) -> None:
        s = cfg.settings
        t = s.topics
        self.cfg, self.processor, self.table, self.metrics, self.counters = cfg, processor, table, metrics, counters
        self.topics = t
        self.index = DueIndex()
        self.sketches: dict[int, SpendSketch] = {}  # decayed spend per partition (value tiers by rank)
        self.clocks = Clocks(idle_seconds=s.idle_seconds)
        self.reorder: ReorderBuffer[In] = ReorderBuffer(s.reorder_max_wait_seconds, max(1, s.reorder_max_records),
                                                        s.reorder_tolerance_seconds)
        self.tie_rank = {t.profiles: 0, t.orders: 1, t.complaints: 2, t.feedback: 2}
        self.kind_of = {name: t.kind_of(name) or "internal" for name in (*t.inputs, t.rekeyed, t.ticks)}
        self.record_topics = [*t.inputs, t.rekeyed]  # inputs whose offsets partials account for
        self.meta_keys = {p: partition_meta_key(p, cfg.partitions) for p in range(cfg.partitions)}
        self.announced: dict[int, float] = {}  # the clock last announced to stage 2
        self.positions: dict[tuple[str, int], int] = {}  # next offset to process, per input topic-partition
        self.pending_advances: dict[int, list[Tick]] = {}
        self.emitted: dict[int, set[str]] = {}  # alert ids already on this partition of the alert topics
        self.committed: dict[int, dict[str, int]] = {}  # committed offsets when the partition was assigned
        self.frontiers: dict[int, Frontier] = {}
        self.frontier_max: dict[int, dict[str, int]] = {}
        self.enriched_written: dict[int, set[str]] = {}
        self.pending = _Pending()
        # states handed to a commit whose outputs are still being confirmed: not in the table yet, read
        # before it (the edge stores them after the confirmation: :meth:`stored`)
        self.committing: dict[str, Any] = {}
        self.revocations: dict[int, int] = {}  # partition -> times revoked (a batch spanning one drops it)
        self._reported = {"released_after_wait": 0, "released_wait_expired": 0, "released_over_bound": 0,
                          "released_within_tolerance": 0}

    # -- partitions ------------------------------------------------------------------------------
    def needs_recovery(self, p: int) -> bool:
        return p not in self.committed

    def recover(self, p: int, r: Recovery) -> None:
        """Partition ``p`` is new to this worker: what a previous owner already sent."""
        if r.written:
            self.enriched_written[p] = set(r.written)
        self.committed[p] = dict(r.committed)
        self.emitted[p] = set(r.alert_ids)
        if r.frontier:
            self.frontiers[p] = r.frontier
            highest: dict[str, int] = {}
            for upto in r.frontier.values():
                for topic, off in upto.items():
                    highest[topic] = max(highest.get(topic, -1), off)
            self.frontier_max[p] = highest

    def revoke(self, p: int) -> list[In]:
        """Forget partition ``p``; returns the records held for order (never acknowledged)."""
        for d in (self.announced, self.emitted, self.committed, self.enriched_written, self.frontiers,
                  self.frontier_max):
            d.pop(p, None)  # type: ignore[attr-defined]
        for topic in self.record_topics:
            self.positions.pop((topic, p), None)
        self.pending.drop(p, self.cfg.partitions)
        n = self.cfg.partitions  # the edge drained the commit in flight first: normally nothing is left here
        self.committing = {k: v for k, v in self.committing.items() if partition_of(k, n) != p}
        self.revocations[p] = self.revocations.get(p, 0) + 1
        self.index.drop(p)
        self.sketches.pop(p, None)
        self.clocks.drop(p)
        self.metrics.drop_schedule(p)
        return self.reorder.drop(p)

    def holds_earlier(self, p: int, topic: str, offset: int) -> bool:
        """A copy of a record still held for order or applied but not committed yet: only the held
        one may be acknowledged."""
        low = self.reorder.lowest_held(p, topic)
        if low is not None and offset >= low:
            return True
        low = self.pending.low.get((topic, p))
        return low is not None and offset >= low

    def _ensure_index(self, p: int) -> None:
        if not self.index.known(p):
            n = self.cfg.partitions
            mine = [(k, v) for k, v in self.table.items() if not is_meta_key(k) and partition_of(k, n) == p]
            self.index.rebuild(p, ((k, self.processor.due_hint(v)) for k, v in mine))
            tiers = self.cfg.settings.segment.tiers
            self.sketches[p] = SpendSketch.of((tier_value((v or {}).get("seg")) for _, v in mine),
                                              tiers.relative_accuracy, tiers.min_customers)
            self.clocks.restore(p, self.table.get(self.meta_keys[p]))

    # -- a batch -----------------------------------------------------------------------------------
    async def batch(self, records: Iterable[In], view: KafkaView, wall: float | None = None,
                    seen: Iterable[int] = (), flush: Flush | None = None) -> Effects:
        """Apply ``records`` (admitted by the gap guard, in offset order per topic-partition).
        ``seen``: partitions the batch delivered records of, admitted or not (their clocks are
        swept and stored too).  ``flush``: handed the enriched events, alerts and dead letters made
        so far every :data:`FLUSH_EVERY` records applied (they then leave :attr:`Effects.sends`), so
        the first records of a long batch are not delayed by the rest of it."""
        wall = time.time() if wall is None else wall
        b = _Batch(self.table, self.pending, self.committing)
        revocations = dict(self.revocations)
        ticked: set[int] = set()
        ordering = self.cfg.ordering
        arrival: dict[int, int] = {}
        for p in seen:
            self._ensure_index(p)
            b.fx.touched.add(p)
        for rec in records:
            p = rec.partition
            self._ensure_index(p)
            b.fx.touched.add(p)
            if rec.topic == self.topics.ticks:
                ticked.add(p)
                self._tick(rec, b)
                self._applied(rec)  # acknowledged with what it caused (clock controls go out on the commit)
                continue
            if not ordering:  # PIPELINE_REORDER_MAX_RECORDS=0: applied in arrival order
                await self._apply(rec, b, view)
                self._applied(rec)
                continue
            at = event_time_of(rec.topic, rec.value)
            limits = self.cfg.settings.time_limits
            if at is not None and not limits.min_time <= at <= limits.latest(wall):
                at = None  # out of range: dead-lettered, so it takes no place in event-time order
            # equal event times: a profile, then an order, then what is said about it; then what the
            # producer wrote first (an order placed and reviewed in the same second)
            arrival[id(rec)] = len(arrival)
            self.reorder.add(p, rec.topic, rec.offset, at, rec, wall,
                             (self.tie_rank.get(rec.topic, 3), rec.timestamp or 0.0))
        released = [self.reorder.release(p, wall, self.undelivered(p, view))
                    for p in sorted(b.fx.touched | set(self.reorder.partitions()))]
        await self._apply_released(released, arrival, b, view, flush)
        self._note_reorder()
        self._apply_advances(b, view)
        self._sweep(b, view)
        self._announce(ticked, b, view)  # sent after the partials: stage 2 never sees a clock before them
        pending = self.pending
        for p, count in self.revocations.items():
            if count != revocations.get(p, 0):  # revoked during this batch: what it applied there is void
                pending.drop(p, self.cfg.partitions)
                b.fx.touched.discard(p)
        pending.touched |= b.fx.touched
        if pending.touched and pending.since is None:
            pending.since = wall
        # a tick commits at once: the ticks topic's committed offset then keeps up with the ticks (one
        # every PIPELINE_TICK_INTERVAL_SECONDS), and a quiet partition commits on the next tick
        if self._commit_due(wall) or (ticked and pending.since is not None):
            self._commit(b.fx)
        self.metrics.flush()  # the batch's tallied per-event counts and histogram values reach the metrics
        return b.fx

    async def _apply_released(self, released: list[list[In]], arrival: Mapping[int, int], b: _Batch,
                              view: KafkaView, flush: Flush | None) -> None:
        """Apply what the reorder buffer released, the partitions interleaved in the order the batch
        delivered their records (each partition's own order kept, records held from earlier batches
        first): a record waits only for those that arrived before it."""
        ordered = list(heapq.merge(*released, key=lambda r: arrival.get(id(r), -1)))
        self.processor.prefetch((rec.topic, rec.value) for rec in ordered)
        for i, rec in enumerate(ordered):
            await self._apply(rec, b, view)
            self._applied(rec)
            if i % FLUSH_EVERY == FLUSH_EVERY - 1:
                if flush is not None and b.fx.sends:
                    sends, b.fx.sends = b.fx.sends, []
                    await flush(sends)
                await asyncio.sleep(0)  # a long batch must not starve /health (nor the producer's sends)

    def stored(self, writes: Mapping[str, Any]) -> None:
        """The edge wrote ``writes`` (a commit's states) to the table: the table answers for them now
        (a key written again since stays in the pending writes, which are read first)."""
        committing = self.committing
        for key, value in writes.items():
            if committing.get(key) is value:
                del committing[key]

    def state(self, key: str) -> Any:
        """A customer's state as of the last batch: pending writes, then a commit in flight, then the table."""
        return _Batch(self.table, self.pending, self.committing).get_state(key)

    def _applied(self, rec: In) -> None:
        """``rec`` is applied: acknowledged on the next commit."""
        self.pending.done.append((rec.partition, rec.token))
        self.pending.low.setdefault((rec.topic, rec.partition), rec.offset)

    def _commit_due(self, wall: float) -> bool:
        pending, cfg = self.pending, self.cfg
        if pending.since is None:
            return False
        return (cfg.commit_interval <= 0 or wall - pending.since >= cfg.commit_interval
                or len(pending.done) >= cfg.commit_max_records)

    def _commit(self, fx: Effects) -> None:
        """Move everything pending into ``fx``: the partials, then the clock controls (stage 2 never
        sees a clock before the partials it covers), the states and clocks, the applied records."""
        pending, self.pending = self.pending, _Pending()
        self._partials(pending.partials, fx)
        fx.sends.extend(send for _, send in pending.controls)
        for p in pending.touched:
            pending.writes[self.meta_keys[p]] = self.clocks.snapshot(p)
        fx.writes = pending.writes
        self.committing.update(pending.writes)
        fx.done = [token for _, token in pending.done]
        fx.committing = True

    def _tick(self, rec: In, b: _Batch) -> None:
        tick = parse_tick(rec.value)
        if isinstance(tick, Problem):  # internal topics are validated like inputs
            self.metrics.errors.labels("tick").inc()
            r = Record(rec.topic, rec.partition, rec.offset, rec.key, rec.value, rec.timestamp)
            for out in self.processor.dead(r, [tick], None, time.time()).outputs:
                self._emit(rec.partition, out, b)
        elif tick.is_advance:
            self.pending_advances.setdefault(rec.partition, []).append(tick)
        elif self.cfg.settings.clock == "wall" and tick.now is not None:
            self.clocks.force(rec.partition, tick.now)

    async def _step(self, rec: Record, get_state: Callable[[str], Any]) -> Step:
        """Process one record; a handler that raises is retried (bounded), then dead-lettered."""

        def give_up(exc: BaseException, attempts: int) -> Step:
            # only the exception type and the coordinates are logged: its message may quote the record
            log.error("processing failed, record dead-lettered",
                      extra={"topic": rec.topic, "partition": rec.partition, "offset": rec.offset,
                             "error": type(exc).__name__, "count": attempts})
            self.metrics.errors.labels("process").inc()
            reason = f"processing failed after {attempts} attempt(s): {exc!r}"[:500]
            return self.processor.dead(rec, [Problem("processing_failed", reason)], None, time.time())

        def retrying(exc: BaseException, n: int) -> None:
            self.metrics.errors.labels("process_retry").inc()
            log.warning("processing failed, retrying", extra={"error": type(exc).__name__, "count": n})

        ranks, p, index = self.sketches.get(rec.partition), rec.partition, self.index
        return await attempt(lambda: self.processor.process(rec, get_state, ranks=ranks,
                                                            due_of=lambda key: index.due(p, key)),
                             self.cfg.retry, give_up, retrying)

    async def _apply(self, rec: In, b: _Batch, view: KafkaView) -> None:
        """Process one record (in event-time order across the partition's topics)."""
        p, t = rec.partition, self.topics
        self.positions[(rec.topic, p)] = rec.offset + 1
        now = time.time()
        step = await self._step(Record(rec.topic, p, rec.offset, rec.key, rec.value, rec.timestamp), b.get_state)
        eid = step.enriched.get("event_id") if step.enriched is not None else None
        if step.state_key is not None:
            prior = b.get_state(step.state_key)
            if already_applied(prior, rec.topic, rec.offset, eid, t.rekeyed):
                # re-read after a crash: state, outputs and partials are already in Kafka
                self.metrics.errors.labels("replayed_record_skipped").inc()
                return
            if step.state is not None:
                mark_applied(step.state, prior, rec.topic, rec.offset, eid, t.rekeyed)
        if step.state is not None:
            self._write(p, b, step.state_key, step.state)  # type: ignore[arg-type]
        if step.state_key is not None:
            self.index.set(p, step.state_key, step.next_due)
        for out in step.outputs:
            if out.topic == t.enriched and eid is not None and eid in self.enriched_written.get(p, ()):
                self.metrics.errors.labels("duplicate_enriched_suppressed").inc()
                continue  # written before the crash, its state was not stored yet
            self._emit(p, out, b)
        if step.enriched is not None:
            builder = b.partials.get(p)
            if builder is None:
                builder = b.partials[p] = PartialsBuilder(self.cfg.windows, self.cfg.min_confidence)
            builder.add(step.enriched, self._counts_for(p, rec.topic, rec.offset))
            self.clocks.observe(p, step.enriched["processing"]["source_topic"], step.event_time, now)
        self.counters[step.outcome] = self.counters.get(step.outcome, 0) + 1
        self.metrics.observe_step(step, rec.topic, self.kind_of.get(rec.topic), rec.timestamp)

    def _write(self, p: int, b: _Batch, key: str, state: dict[str, Any]) -> None:
        """A customer's new state, pending until the commit; its decayed spend moves in the sketch."""
        sketch = self.sketches.get(p)
        if sketch is not None:
            sketch.move(tier_value((b.get_state(key) or {}).get("seg")), tier_value(state.get("seg")))
        b.write(key, state)

    def _emit(self, p: int, out: Output, b: _Batch) -> None:
        if out.dedup_id is not None:
            ids = self.emitted.setdefault(p, set())
            dead = out.topic == self.topics.deadletter
            if out.dedup_id in ids:
                self.metrics.errors.labels("duplicate_deadletter_suppressed" if dead
                                           else "duplicate_alert_suppressed").inc()
                return
            if not dead:  # a dead letter's id (its record's coordinates) cannot recur before a re-read
                ids.add(out.dedup_id)
        b.fx.sends.append(Send(out.topic, out.key, out.value, None, out.kind))

    def _counts_for(self, p: int, topic: str, offset: int) -> Any:
        """``accept(key)`` for the partials builder: leave out what partials already counted."""
        high = self.frontier_max.get(p)
        if high is None or offset > high.get(topic, -1):
            return None
        frontier = self.frontiers[p]
        return lambda key: key not in frontier or offset > frontier[key].get(topic, -1)

    def _upto(self, p: int) -> dict[str, int]:
        """Last processed offset of each input topic on ``p`` (the frontier a partial carries)."""
        base = self.committed.get(p) or {}
        return {topic: self.positions.get((topic, p), base.get(topic, 0)) - 1 for topic in self.record_topics}

    def _partials(self, partials: Mapping[int, PartialsBuilder], fx: Effects) -> None:
        for src, builder in partials.items():
            upto = self._upto(src)
            for key, partial in builder.partials().items():
                partial["src"] = src
                partial["upto"] = upto
                fx.sends.append(Send(self.cfg.settings.partials_topic, key.encode(), orjson.dumps(partial)))

    # -- time ----------------------------------------------------------------------------------------
    def undelivered(self, p: int, view: KafkaView) -> dict[str, bool | float]:
        """Per input topic of ``p``: records exist in Kafka that have not reached the reorder buffer
        (the consumer's last known end offset is past the next offset to deliver; unknown counts as
        yes).  ``True``: the reorder buffer waits up to ``PIPELINE_REORDER_MAX_WAIT_SECONDS`` for
        them (they are in Kafka, being fetched, or queued in the stream: Kafka Streams, KIP-695,
        waits for such data without bound).  When the consumer has fetched up to the end offset and
        handed everything to the stream, the gap holds no record the agent has not seen (a
        transaction marker, or records in transit for milliseconds): it waits at most
        :data:`HANDED_OVER_WAIT_SECONDS`."""
        out: dict[str, bool | float] = {}
        for topic in self.record_topics:
            try:
                end = view.highwater(topic, p)
            except Exception:  # not assigned / consumer not started: nothing known to wait for
                continue
            nxt = view.expected(topic, p)
            if nxt is None:
                nxt = (self.committed.get(p) or {}).get(topic)
            pending = end is None or (nxt is not None and end > nxt)
            if pending and end is not None and nxt is not None:
                position, read = view.fetched(topic, p)
                if position is not None and position >= end and (read is None or read < nxt):
                    out[topic] = HANDED_OVER_WAIT_SECONDS
                    continue
            out[topic] = pending
        return out

    def caught_up(self, p: int, view: KafkaView) -> dict[str, bool]:
        """Per input topic seen on ``p``: nothing left to read on it (nor on the re-keyed topic, which
        carries events of every input).  The end offsets are the consumer's last fetched ones."""

        def done(topic: str) -> bool:
            try:
                end = view.highwater(topic, p)
            except Exception:  # consumer not started, partition not assigned: unknown lag holds the clock
                return False
            pos = self.positions.get((topic, p), (self.committed.get(p) or {}).get(topic))
            return end is not None and pos is not None and pos >= end

        rekeyed_done = done(self.topics.rekeyed)
        return {topic: rekeyed_done and done(topic) for topic in self.clocks.topics(p)}

    def clock_of(self, p: int, view: KafkaView) -> float | None:
        """Partition ``p``'s clock now (idle inputs do not hold it back: pipeline/clock.py)."""
        return self.clocks.value(p, time.time(), self.caught_up(p, view))

    def _apply_advances(self, b: _Batch, view: KafkaView) -> None:
        """Apply advance_to ticks whose preceding records (``after`` offsets) have been processed."""
        n = self.cfg.partitions
        for p in b.fx.touched:
            waiting = self.pending_advances.get(p) or []
            ready = [d for d in waiting if all(
                max(self.positions.get((topic, p), 0), view.committed(topic, p)) >= off
                for topic, off in d.after.items())]
            for tick in ready:
                waiting.remove(tick)
                to = float(tick.advance_to)  # type: ignore[arg-type]  # is_advance
                self.clocks.force(p, to)
                body = orjson.dumps({"control": "advance", "to": to, "from": p, "of": n})
                for q in range(n):
                    b.control(p, Send(self.cfg.settings.partials_topic, b"clock", body, q))

    def _sweep(self, b: _Batch, view: KafkaView) -> None:
        """Deadlines and silence rescorings due on each touched partition's clock.

        The index holds a lower bound of a customer's due time after its events
        (:meth:`~pipeline.process.Processor.due_hint`); the exact time is computed when the clock
        reaches the bound, and the customer advanced only if that is due too — in exact due-time
        order, as if the index had held exact times all along."""
        for p in b.fx.touched:
            clock = self.clock_of(p, view)
            if clock is None:
                continue
            due: list[tuple[float, str]] = []
            for key in self.index.pop_due(p, clock):
                at = self.processor.next_due(b.get_state(key))
                if at is not None and at <= clock:
                    due.append((at, key))
                else:
                    self.index.set(p, key, at)  # not yet (or never): its exact time from now on
            for _, key in sorted(due):
                step = self.processor.advance(key, b.get_state(key), clock)
                self.metrics.observe_advance(step)
                if step.state is not None:
                    self._write(p, b, key, step.state)
                self.index.set(p, key, step.next_due)
                for out in step.outputs:
                    self._emit(p, out, b)
                for alert in step.alerts:
                    self.metrics.record_alert(alert)
            self.metrics.set_schedule(p, self.index.size(p), self.index.overdue(p, clock))

    def _announce(self, partitions: set[int], b: _Batch, view: KafkaView) -> None:
        """Tell stage 2 how far ``p``'s clock is (on ticks): an idle stage-1 partition does not hold
        windows back there either."""
        n = self.cfg.partitions
        for p in partitions:
            clock = self.clock_of(p, view)
            if clock is None or clock <= self.announced.get(p, float("-inf")):
                continue
            self.announced[p] = clock
            body = orjson.dumps({"control": "clock", "time": clock, "from": p, "of": n})
            for q in range(n):
                b.control(p, Send(self.cfg.settings.partials_topic, b"clock", body, q))

    # -- reorder buffer gauges -------------------------------------------------------------------------
    def _note_reorder(self) -> None:
        stats = self.reorder.stats
        for how, before in self._reported.items():
            now_ = getattr(stats, how)
            if now_ > before:
                self.metrics.reorder_released.labels(how.removeprefix("released_")).inc(now_ - before)
                self._reported[how] = now_
        self.metrics.reorder_held.set(sum(self.reorder.held(q) for q in self.reorder.partitions()))

    def held_for_order(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> the lowest offset held for event-time order or applied and not
        committed yet (read by /health)."""
        out: dict[tuple[str, int], int] = dict(self.pending.low)
        for q in self.reorder.partitions():
            for topic in self.record_topics:
                low = self.reorder.lowest_held(q, topic)
                if low is not None:
                    out[(topic, q)] = min(low, out.get((topic, q), low))
        return out

    def reorder_state(self, view: KafkaView) -> dict[str, Any]:
        """The reorder buffer per partition (``/debug/tasks``)."""
        out: dict[str, Any] = {}
        for q in self.reorder.partitions():
            part = self.reorder._parts[q]
            out[str(q)] = {"held": {topic: [len(queue), queue[0].offset if queue else None,
                                           queue[0].event_time if queue else None]
                                    for topic, queue in part.queues.items()},
                           "ready": len(part.ready), "waits": dict(part.wait_start),
                           "pending": self.undelivered(q, view),
                           "expected": {topic: view.expected(topic, q) for topic in self.record_topics}}
        return out
