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
from dataclasses import dataclass, field
from typing import Any

import faust
from mode import CrashingSupervisor
import orjson

from ..aggregate import (
    Watermark,
    close_windows,
    load_playbook,
    merge_partial,
    new_state,
    next_close_time,
    process_finals,
    split_group_key,
    surge_alert,
    top_pain_points,
)
from ..aggregate.state import already_merged, grace_from_env, note_merged, retention_from_env
from ..aggregate.surge import SurgeConfig
from ..config import Settings
from ..aggregate.internal import Control, Partial, parse_stage2
from ..ingest.validate import Problem
from ..outputs.deadletter import dead_letter
from ..metrics import Metrics
from ..scheduling import DueIndex

from ..outputs.emitted import load_ids
from ..outputs.frontier import committed_offsets
from .common import (InputGuard, Sender, watch_input, is_meta_key, json_table, log, partition_meta_key,
                     partition_of, run_batches)


@dataclass
class AggregateParts:
    table: Any
    watermarks: dict[int, Watermark] = field(default_factory=dict)
    index: DueIndex = field(default_factory=DueIndex)
    advances: dict[tuple[int, float], set[int]] = field(default_factory=dict)
    source_times: dict[int, dict[int, float]] = field(default_factory=dict)  # partition -> source -> max time

    def query(self, dimension: str, value: str, window: str) -> dict[str, Any]:
        key = f"{dimension}={value}"
        state = self.table.get(key)
        if state is None:
            return {"dimension": dimension, "value": value, "window": window, "current": [], "last_closed": []}
        wm = self.watermarks.get(partition_of(key, self.table.partitions or 1))
        out = top_pain_points(state, window, None if wm is None else wm.value)
        return {"dimension": dimension, "value": value, "window": window, **out}


CONTROL_KEYS = (b"tick", b"clock")  # stage-1 control records on the partials topic (not data)


def register(app: faust.App, settings: Settings, metrics: Metrics, counters: dict[str, int]) -> AggregateParts:
    import os

    grace = grace_from_env(os.environ)
    retention = retention_from_env(os.environ)
    surge_cfg = SurgeConfig.from_env(os.environ)
    playbook = load_playbook(None, os.environ)
    t = settings.topics
    source = app.topic(settings.partials_topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw")
    table = json_table(app, "segment_windows", settings.partitions,
                       "Per dimension=value: event-time windows of pain-point counts and surge baselines.")
    parts = AggregateParts(table=table)
    sender = Sender(app, metrics, counters, "aggregate")
    meta_keys = {p: partition_meta_key(p, settings.partitions) for p in range(settings.partitions)}
    emitted: dict[int, set[str]] = {}  # final record ids and alert ids already on partition p's outputs
    recovery_tail = settings.recovery_tail_records
    gaps = InputGuard(settings, metrics, "aggregate", settings.gap_wait_seconds,
                      consumer=lambda: app.consumer, worker_wide=True)  # the partials topic is guarded like stage 1's inputs
    guarded: set[int] = set()

    async def ensure_guarded(p: int) -> None:
        if p not in guarded:
            loop = asyncio.get_running_loop()
            offsets = await loop.run_in_executor(None, committed_offsets, settings, [settings.partials_topic], p)
            gaps.start(settings.partials_topic, p, offsets.get(settings.partials_topic))
            guarded.add(p)

    async def dead_letter_record(msg: Any, problem: Problem) -> None:
        doc = dead_letter(topic=msg.topic, partition=msg.partition, offset=msg.offset, key=msg.key,
                          timestamp_ms=None if msg.timestamp is None else int(msg.timestamp * 1000),
                          raw=msg.value, problems=[problem], expected_kind=None, now=time.time())
        key = msg.key if msg.key is not None else doc["dead_letter_id"].encode()
        await sender.send(t.deadletter, key, orjson.dumps(doc))

    async def ensure_emitted(p: int) -> set[str]:
        """Ids of the finals and surge alerts the last records of partition ``p``'s outputs hold.

        A window closed just before a crash (its final sent, the state flagged
        closed not yet stored) closes again after the restart: its final and
        alert ids are found here and not sent twice.
        """
        ids = emitted.get(p)
        if ids is None:
            loop = asyncio.get_running_loop()
            ids = await loop.run_in_executor(None, load_ids, settings, t.aggregates, p, "record_id", 60.0,
                                             recovery_tail)
            ids |= await loop.run_in_executor(None, load_ids, settings, t.alerts_pain_points, p, "alert_id", 60.0,
                                              recovery_tail)
            emitted[p] = ids
        return ids

    def save_meta(p: int, pending: dict[str, Any]) -> None:
        pending[meta_keys[p]] = {
            "source_times": {str(k): v for k, v in (parts.source_times.get(p) or {}).items()},
            "advances": [[to, sorted(senders)] for (q, to), senders in parts.advances.items() if q == p],
        }

    def restore_meta(p: int) -> None:
        doc = table.get(meta_keys[p]) or {}
        per_src = parts.source_times.setdefault(p, {})
        for src, t_ in (doc.get("source_times") or {}).items():
            per_src[int(src)] = max(per_src.get(int(src), float("-inf")), float(t_))
        if per_src:
            watermark(p).observe(min(per_src.values()))
        for to, senders in doc.get("advances") or ():
            parts.advances.setdefault((p, float(to)), set()).update(int(s_) for s_ in senders)

    def watermark(p: int) -> Watermark:
        wm = parts.watermarks.get(p)
        if wm is None:
            wm = parts.watermarks[p] = Watermark(grace)
        return wm

    def ensure_index(p: int) -> None:
        if not parts.index.known(p):
            n = settings.partitions
            parts.index.rebuild(p, ((k, next_close_time(v)) for k, v in table.items()
                                    if not is_meta_key(k) and partition_of(k, n) == p))
            restore_meta(p)

    @app.agent(source, concurrency=1, name="aggregate", supervisor_strategy=CrashingSupervisor)
    async def aggregate(stream: faust.StreamT) -> None:
        await run_batches(stream, settings.batch_size, settings.batch_within_seconds, "aggregate", process_batch,
                          gaps, is_data=lambda event: event.message.key not in CONTROL_KEYS)

    async def process_batch(events: list[Any]) -> None:
        """One batch; see :func:`~pipeline.agents.common.run_batches` for what happens when it raises."""
        pending: dict[str, Any] = {}
        touched: set[int] = set()
        for event in events:
            msg = event.message
            p = msg.partition
            ensure_index(p)
            await ensure_guarded(p)
            if not await gaps.admit(msg.topic, p, msg.offset, event):
                continue
            touched.add(p)
            record = parse_stage2(msg.value)  # internal topics are validated like inputs
            if isinstance(record, Problem) or (isinstance(record, Partial) and msg.key is None):
                problem = record if isinstance(record, Problem) else Problem("missing_field", "partial without a key")
                metrics.errors.labels("aggregate").inc()
                log.error("malformed partial dead-lettered", extra={"topic": msg.topic, "partition": p,
                                                                    "offset": msg.offset, "code": problem.code})
                await dead_letter_record(msg, problem)
                continue
            if isinstance(record, Control):
                if record.kind == "advance":
                    # every stage-1 partition forwards the advance after its last partial:
                    # move the watermark once all of them have.
                    senders = parts.advances.setdefault((p, record.time), set())
                    senders.add(record.sender)
                    if len(senders) >= record.of:
                        wm = watermark(p)
                        wm.max_event_time = max(wm.max_event_time or 0.0, record.time + grace)
                        del parts.advances[(p, record.time)]
                elif record.kind == "clock":
                    # a stage-1 partition's clock: counts like the event time of its partials, so an
                    # idle stage-1 partition does not hold this partition's windows back
                    per_src = parts.source_times.setdefault(p, {})
                    per_src[record.sender] = max(per_src.get(record.sender, float("-inf")), record.time)
                    watermark(p).observe(min(per_src.values()))
                elif settings.clock == "wall":
                    watermark(p).observe(record.time)
                continue
            doc = record.doc
            key = msg.key.decode()
            state = pending.get(key) or table.get(key)
            if state is None:
                dim, value = split_group_key(key)
                state = new_state(dim, value)
            if already_merged(state, doc):
                metrics.errors.labels("replayed_partial_skipped").inc()
                continue
            note_merged(state, doc)
            state, late = merge_partial(state, doc, grace, watermark(p).value, retention_windows=retention)
            if late.held:
                metrics.late_events.labels("counted_in_held_window").inc(late.held)
            if late.dropped:
                metrics.late_events.labels("window_no_longer_held").inc(late.dropped)
                log.debug("late partial for purged window", extra={"windows": list(late.dropped_windows)})
            src_time = doc.get("max_event_time")
            if src_time is not None:
                per_src = parts.source_times.setdefault(p, {})
                src = int(doc.get("src", -1))
                per_src[src] = max(per_src.get(src, float("-inf")), float(src_time))
                watermark(p).observe(min(per_src.values()))
            pending[key] = state
            parts.index.set(p, key, next_close_time(state))
        now = time.time()
        for p in touched:
            wm = watermark(p).value
            if wm is None:
                continue
            for key in parts.index.pop_due(p, wm):
                state = pending.get(key) or table.get(key)
                if state is None:
                    continue
                state, finals = close_windows(state, wm, retention_windows=retention)
                state, result = process_finals(state, finals, surge_cfg)
                sent = await ensure_emitted(p)
                for final in finals:
                    if final["record_id"] in sent:
                        metrics.errors.labels("duplicate_final_suppressed").inc()
                        continue
                    await sender.send(t.aggregates, key.encode(), orjson.dumps(final))
                for final, surge in result.alerts:
                    alert = surge_alert(final, surge, playbook, now)
                    if alert["alert_id"] in sent:
                        metrics.errors.labels("duplicate_alert_suppressed").inc()
                        continue
                    await sender.send(t.alerts_pain_points, key.encode(), orjson.dumps(alert))
                    metrics.alerts.labels(alert["type"], alert["severity"]).inc()
                pending[key] = state
                parts.index.set(p, key, next_close_time(state))
        for p in touched:
            save_meta(p, pending)
        await sender.confirm()  # outputs first: a stored state then implies its finals are in Kafka
        await sender.store(table, pending)  # confirmed before take_events acknowledges the batch

    @app.timer(2.0)
    async def aggregate_gap_watch() -> None:
        """See :func:`~pipeline.agents.common.watch_input`."""
        await watch_input(app, gaps, {settings.partials_topic})

    @app.on_partitions_revoked.connect
    async def on_revoked(app_: Any, revoked: Any, **kwargs: Any) -> None:
        for tp in revoked:
            if tp.topic == settings.partials_topic:
                parts.index.drop(tp.partition)
                parts.watermarks.pop(tp.partition, None)
                parts.source_times.pop(tp.partition, None)
                emitted.pop(tp.partition, None)
                gaps.forget(tp.topic, tp.partition)
                guarded.discard(tp.partition)
                for adv in [a for a in parts.advances if a[0] == tp.partition]:
                    del parts.advances[adv]

    return parts
