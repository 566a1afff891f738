"""The worker's HTTP endpoints (Faust web server).

* ``GET /health`` — assigned partitions, table recovery, counters (readiness).
* ``GET /metrics`` — Prometheus exposition (:mod:`pipeline.metrics`); lag, table sizes
  and commitment gauges are read from the worker's state when scraped.
* ``GET /segments/{dimension}={value}/top?window=1h`` — top pain points of a
  segment in the current and the last closed window; routed with Faust's
  ``table_route`` to the worker that owns the key, so any worker answers.
"""

from __future__ import annotations

import os

import time
from typing import Any

import faust
from faust.web import Request, Response, View

from .agents.aggregate import AggregateParts
from .agents.common import partition_of
from .commitments import tracker
from .metrics import Metrics

COMMITMENT_SCAN_SECONDS = 5.0


def register(app: faust.App, metrics: Metrics, counters: dict[str, int], aggregate: AggregateParts) -> None:
    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        try:
            assigned = len(app.consumer.assignment())
            recovered = app.tables.recovery.completed.is_set()
        except Exception:  # not started yet
            assigned, recovered = 0, False
        return web.json({"status": "ok", "assigned_partitions": assigned, "recovered": recovered,
                         "rebalancing": bool(app.rebalancing), "counters": counters})

    if os.environ.get("PIPELINE_DEBUG_TASKS") == "1":
        @app.page("/debug/tasks")
        async def debug_tasks(web: Any, request: Any) -> Any:
            """Where every asyncio task of the worker is waiting (diagnostics; off by default)."""
            import asyncio
            import io

            out = io.StringIO()
            for task in asyncio.all_tasks():
                out.write(f"--- {task.get_name()}\n")
                coro: Any = task.get_coro()
                for _ in range(40):  # follow the await chain down to the innermost awaitable
                    frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
                    if frame is not None:
                        out.write(f"    {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}\n")
                    nxt = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
                    if nxt is None:
                        out.write(f"    awaiting {coro!r}\n"[:300])
                        break
                    coro = nxt
            import gc
            import types

            c = app.consumer
            try:
                active = c._active_partitions
                out.write(f"active_partitions {sorted(map(tuple, active)) if active is not None else None}\n")
                out.write(f"paused_partitions {sorted(map(tuple, c._paused_partitions))}\n")
                ak = c._thread._ensure_consumer()
                out.write(f"aiokafka paused {sorted(map(tuple, ak.paused()))}\n")
                out.write(f"aiokafka assignment {sorted(map(tuple, ak.assignment()))}\n")
                for tp in sorted(ak.assignment()):
                    try:
                        out.write(f"  position {tuple(tp)} {await ak.position(tp)}\n")
                    except Exception as exc:  # diagnostics only
                        out.write(f"  position {tuple(tp)} error {exc!r}\n")
            except Exception as exc:  # diagnostics only
                out.write(f"consumer introspection failed: {exc!r}\n")

            for obj in gc.get_objects():
                if isinstance(obj, (types.CoroutineType, types.AsyncGeneratorType)):
                    frame = getattr(obj, "cr_frame", None) or getattr(obj, "ag_frame", None)
                    if frame is None or "/pipeline/" not in frame.f_code.co_filename:
                        continue
                    out.write(f"=== {frame.f_code.co_name} at {frame.f_code.co_filename}:{frame.f_lineno}\n")
                    coro = obj
                    for _ in range(40):
                        nxt = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
                        if nxt is None:
                            break
                        coro = nxt
                        f = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
                        where = f"{f.f_code.co_filename}:{f.f_lineno} {f.f_code.co_name}" if f else repr(coro)[:200]
                        out.write(f"    {where}\n")
            return web.text(out.getvalue())

    @app.page("/metrics")
    async def prometheus_metrics(web: Any, request: Any) -> Any:
        refresh_gauges()
        return web.bytes(metrics.render(), content_type="text/plain")

    def refresh_gauges() -> None:
        """Gauges read from the worker's state at scrape time (no per-event cost)."""
        try:
            consumer = app.consumer
            assignment = consumer.assignment()
        except Exception:  # not started yet
            return
        metrics.assigned_partitions.set(len(assignment))
        metrics.consumer_lag.clear()
        for tp in assignment:
            if tp.topic.endswith("-changelog") or "__assignor" in tp.topic:
                continue  # table changelogs (read by recovery) and Faust's leader topic
            high = consumer.highwater(tp)
            if high is None:
                continue
            read = consumer._read_offset.get(tp)
            position = read + 1 if read is not None else (consumer._committed_offset.get(tp) or 0)
            metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, high - position))
        for table in app.tables.values():
            metrics.table_keys.labels(table.name).set(len(table.data))
        refresh_commitments()

    last_scan = [float("-inf")]

    def refresh_commitments() -> None:
        """Open / warned / breached commitments of the customers on this worker's active partitions.

        A scan of the ``customers`` table, at most every :data:`COMMITMENT_SCAN_SECONDS` (it
        runs on the event loop, so it is throttled rather than done on every scrape).
        """
        now = time.monotonic()
        customers = app.tables.get("customers")
        if customers is None or now - last_scan[0] < COMMITMENT_SCAN_SECONDS:
            return
        last_scan[0] = now
        changelog = customers.changelog_topic.get_topic_name()
        actives = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == changelog}
        n = customers.partitions or app.conf.topic_partitions
        metrics.set_commitments(tracker.summary((v or {}).get("cm")) for k, v in customers.items()
                                if partition_of(k, n) in actives)

    table = aggregate.table

    @app.page("/segments/{key}/top")
    @app.table_route(table=table, match_info="key")
    async def segment_top(web: View, request: Request, key: str) -> Response:
        dimension, _, value = key.partition("=")
        window = request.query.get("window", "1h")
        return web.json(aggregate.query(dimension, value, window))

    @app.on_partitions_assigned.connect
    async def on_assigned(app_: Any, assigned: Any, **kwargs: Any) -> None:
        metrics.rebalances.inc()
