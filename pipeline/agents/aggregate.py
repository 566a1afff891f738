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

import time
from dataclasses import dataclass, field
from typing import Any

import faust
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
from ..aggregate.state import grace_from_env, retention_from_env
from ..aggregate.surge import SurgeConfig
from ..config import Settings
from ..metrics import Metrics
from ..scheduling import DueIndex
from .common import Sender, json_table, log, partition_of


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
    sender = Sender(app, metrics, counters)

    def watermark(p: int) -> Watermark:
        wm = parts.watermarks.get(p)
        if wm is None:
            wm = parts.watermarks[p] = Watermark(grace)
        return wm

    def ensure_index(p: int) -> None:
        if not parts.index.known(p):
            n = settings.partitions
            parts.index.rebuild(p, ((k, next_close_time(v)) for k, v in table.items() if partition_of(k, n) == p))

    @app.agent(source, concurrency=1, name="aggregate")
    async def aggregate(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within_seconds):
            pending: dict[str, Any] = {}
            touched: set[int] = set()
            for event in events:
                msg = event.message
                p = msg.partition
                ensure_index(p)
                touched.add(p)
                try:
                    doc = orjson.loads(msg.value)
                except orjson.JSONDecodeError:
                    metrics.errors.labels("aggregate").inc()
                    continue
                control = doc.get("control")
                if control == "advance":
                    # every stage-1 partition forwards the advance after its last partial:
                    # move the watermark once all of them have.
                    to = float(doc["to"])
                    senders = parts.advances.setdefault((p, to), set())
                    senders.add(int(doc.get("from", 0)))
                    if len(senders) >= int(doc.get("of", 1)):
                        wm = watermark(p)
                        wm.max_event_time = max(wm.max_event_time or 0.0, to + grace)
                        del parts.advances[(p, to)]
                    continue
                if control == "tick":
                    if settings.clock == "wall":
                        watermark(p).observe(float(doc["now"]))
                    continue
                key = msg.key.decode()
                state = pending.get(key) or table.get(key)
                if state is None:
                    dim, value = split_group_key(key)
                    state = new_state(dim, value)
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
                    for final in finals:
                        await sender.send(t.aggregates, key.encode(), orjson.dumps(final))
                    for final, surge in result.alerts:
                        alert = surge_alert(final, surge, playbook, now)
                        await sender.send(t.alerts_pain_points, key.encode(), orjson.dumps(alert))
                        metrics.alerts.labels(alert["type"], alert["severity"]).inc()
                    pending[key] = state
                    parts.index.set(p, key, next_close_time(state))
            for key, state in pending.items():
                table[key] = state

    @app.on_partitions_revoked.connect
    async def on_revoked(app_: Any, revoked: Any, **kwargs: Any) -> None:
        for tp in revoked:
            if tp.topic == settings.partials_topic:
                parts.index.drop(tp.partition)
                parts.watermarks.pop(tp.partition, None)
                parts.source_times.pop(tp.partition, None)

    return parts
