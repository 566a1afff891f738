"""The worker's HTTP endpoints (Faust web server).

* ``GET /health`` — assigned partitions, table recovery, counters (readiness).
* ``GET /metrics`` — Prometheus exposition.
* ``GET /segments/{dimension}={value}/top?window=1h`` — top pain points of a
  segment in the current and the last closed window; routed with Faust's
  ``table_route`` to the worker that owns the key, so any worker answers.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.web import Request, Response, View

from .agents.aggregate import AggregateParts
from .metrics import Metrics


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

    @app.page("/metrics")
    async def prometheus_metrics(web: Any, request: Any) -> Any:
        refresh_gauges()
        return web.bytes(metrics.render(), content_type="text/plain")

    def refresh_gauges() -> None:
        try:
            consumer = app.consumer
            assignment = consumer.assignment()
        except Exception:
            return
        metrics.assigned_partitions.set(len(assignment))
        metrics.consumer_lag.clear()
        for tp in assignment:
            high = consumer.highwater(tp)
            read = consumer._read_offset.get(tp)
            if high is not None:
                metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, high - ((read or -1) + 1)))
        for table in app.tables.values():
            metrics.table_keys.labels(table.name).set(len(table.data))

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
