"""The worker's HTTP endpoints (Faust web server).

* ``GET /health`` — liveness and readiness: 200 ``{"status": "ok", …}`` or 503
  ``{"status": "stuck", "reasons": […], …}`` when an assigned partition has a
  backlog whose committed offset has not moved for ``PIPELINE_STUCK_SECONDS``, a
  rebalance or table recovery lasted that long, or an agent has no running actor
  (the decision: :mod:`pipeline.liveness`).  Also: assigned partitions, table
  recovery, rebalancing, agents, per-partition commit progress, counters.
* ``GET /metrics`` — Prometheus exposition (:mod:`pipeline.metrics`); lag, table sizes
  and commitment gauges are read from the worker's state when scraped.
* ``GET /segments/{dimension}={value}/top?window=1h`` — top pain points of a
  segment in the current and the last closed window; routed with Faust's
  ``table_route`` to the worker that owns the key, so any worker answers.
* ``GET /customers/{customer_id}`` — one customer (issue 18): segment, churn score with each
  factor's contribution and evidence, open commitments with due times, last alerts
  (:mod:`pipeline.outputs.customer_view`); routed to the worker that owns the customer; 404 when
  the pipeline has no state for it; ``/customers/{customer_id}/commitments/{commitment_id}``: one
  commitment with every field.
* ``GET /root-causes/{pain_point}?dimension=seller&window=1d`` — the values of a dimension that
  counted a pain point most (issue 18), gathered from every worker (:func:`register_root_causes`).
* ``GET /debug/tasks`` — only with ``PIPELINE_DEBUG=1`` (old name ``PIPELINE_DEBUG_TASKS=1``).

With ``PIPELINE_WEB_TOKEN`` set, every endpoint except ``/health`` and ``/metrics``
answers 401 unless the request carries ``Authorization: Bearer <token>`` (compared in
constant time; a request routed to the key's owner carries the header along).
Faust's ``/table/…`` pages are off (``web_tables_enabled=False`` in :mod:`pipeline.app`).

Commit progress is sampled once a second by a timer (end offsets from the broker,
committed offsets from Faust's consumer), so ``/health`` itself does no I/O.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import io
import logging
import os
import time
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

import faust
from aiohttp import web as aioweb
from faust.types import TP
from faust.web import Request, Response, View

from .agents.aggregate import AggregateParts
from .agents.common import DEBUG_STATE, HELD_FOR_ORDER, partition_of
from .commitments import tracker
from .config import Topics, load_settings
from .liveness import Liveness, stuck_seconds_from_env
from .metrics import Metrics

COMMITMENT_SCAN_SECONDS = 5.0
SAMPLE_SECONDS = 5.0  # commit-progress sampling interval (each sample asks the broker for end offsets)
BROKER_TIMEOUT_SECONDS = 5.0  # one end-offset / committed-offset request
GROUP_OFFSET_CACHE_SECONDS = 10.0
OPEN_PATHS = frozenset({"/health", "/metrics"})  # served without the token (probes, Prometheus)

log = logging.getLogger("pipeline.web")


@dataclass(frozen=True)
class WebOptions:
    """``PIPELINE_WEB_TOKEN``, ``PIPELINE_DEBUG`` (alias ``PIPELINE_DEBUG_TASKS``), ``PIPELINE_STUCK_SECONDS``."""

    token: str | None = field(default=None, repr=False)
    debug: bool = False
    stuck_seconds: float = 20.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "WebOptions":
        env = os.environ if env is None else env
        return cls(token=env.get("PIPELINE_WEB_TOKEN") or None,
                   debug="1" in (env.get("PIPELINE_DEBUG"), env.get("PIPELINE_DEBUG_TASKS")),
                   stuck_seconds=stuck_seconds_from_env(env))


def authorized(path: str, authorization: str | None, token: str | None) -> bool:
    """Whether a request may be served: no token configured, an open path, or the right bearer token."""
    if token is None or (path.rstrip("/") or "/") in OPEN_PATHS:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    # constant time in the token's content (hmac.compare_digest); a wrong scheme fails the same way
    ok_scheme = scheme.lower() == "bearer"
    return hmac.compare_digest(given.strip().encode(), token.encode()) and ok_scheme


def token_middleware(token: str) -> Any:
    @aioweb.middleware
    async def require_token(request: aioweb.Request, handler: Any) -> aioweb.StreamResponse:
        if authorized(request.path, request.headers.get("Authorization"), token):
            return await handler(request)
        return aioweb.json_response({"error": "unauthorized"}, status=401,
                                    headers={"WWW-Authenticate": 'Bearer realm="feedback-pipeline"'})
    return require_token


def is_input_partition(tp: TP) -> bool:
    """Partitions an agent consumes (not table changelogs read by recovery, not Faust's leader topic)."""
    return not (tp.topic.endswith("-changelog") or "__assignor" in tp.topic)


def agent_status(app: faust.App) -> dict[str, bool]:
    """Per agent: whether one of its actors' tasks is running (not done, not crashed)."""
    out: dict[str, bool] = {}
    for name, agent in app.agents.items():
        actors = list(getattr(agent, "_actors", ()))
        out[str(name)] = any(getattr(a, "actor_task", None) is not None and not a.actor_task.done()
                             and not getattr(a, "crashed", False) for a in actors)
    return out


class Progress:
    """Committed and end offsets of this worker's assigned input partitions, fed to :class:`Liveness`.

    committed = Faust's ``consumer._committed_offset[tp]`` (what this worker committed, or the
    group's committed offset found at assignment), else the group's committed offset asked from
    the broker, else the partition's first offset (nothing committed yet: ``auto_offset_reset``
    is ``earliest``).  end = the broker's end offset,
    else the consumer's cached high watermark.
    """

    def __init__(self, app: faust.App, stuck_seconds: float, internal_topics: frozenset[str]) -> None:
        self.app = app
        self.liveness = Liveness(stuck_seconds)
        self.internal_topics = internal_topics
        self.offsets: dict[TP, tuple[int | None, int | None]] = {}
        self.sampled_at: float | None = None
        self._group: dict[TP, tuple[float, int | None]] = {}  # tp -> (asked at, group's committed offset)
        self._lock = asyncio.Lock()

    def settling(self) -> bool:
        try:
            return bool(self.app.rebalancing) or not self.app.tables.recovery.completed.is_set()
        except Exception:  # not started yet
            return True

    def refresh_local(self, now: float) -> None:
        """Settling and agent state (no I/O)."""
        self.liveness.settling(self.settling(), now)
        self.liveness.agents(agent_status(self.app), now)

    async def sample(self) -> None:
        async with self._lock:
            await self._sample()

    async def _sample(self) -> None:
        consumer = self.app.consumer
        try:
            tps = sorted(tp for tp in consumer.assignment() if is_input_partition(tp))
        except Exception:  # consumer not started yet
            return
        ends = await self._ends(tps)
        committed = await self._committed(tps)
        now = time.monotonic()
        self.refresh_local(now)
        self.liveness.assigned((tp.topic, tp.partition) for tp in tps)
        offsets: dict[TP, tuple[int | None, int | None]] = {}
        for tp in tps:
            c, e = committed.get(tp), ends.get(tp)
            offsets[tp] = (c, e)
            self.liveness.observe((tp.topic, tp.partition), c, e, now,
                                  slack=1 if tp.topic in self.internal_topics else 0,
                                  held=c is not None and HELD_FOR_ORDER.get((tp.topic, tp.partition)) == c)
        self.offsets = offsets
        self.sampled_at = now
        self.liveness.sampled(now)

    def refresh_committed(self, now: float) -> None:
        """Between samples: commits this worker made since the last sample (no I/O), with the last
        sampled end offsets — so a verdict never rests on a committed offset up to 5 s old."""
        known: Mapping[TP, int | None] = getattr(self.app.consumer, "_committed_offset", {})
        for tp, (c, e) in list(self.offsets.items()):
            fresh = known.get(tp)
            if fresh is not None and fresh != c:
                self.offsets[tp] = (fresh, e)
                self.liveness.observe((tp.topic, tp.partition), fresh, e, now,
                                      slack=1 if tp.topic in self.internal_topics else 0,
                                      held=HELD_FOR_ORDER.get((tp.topic, tp.partition)) == fresh)

    async def _ends(self, tps: list[TP]) -> dict[TP, int | None]:
        consumer = self.app.consumer
        fresh: Mapping[Any, int] = {}
        if tps:
            try:
                fresh = await asyncio.wait_for(consumer.highwaters(*tps), BROKER_TIMEOUT_SECONDS)
            except Exception as exc:  # broker slow or rebalancing: the cached high watermark below
                log.debug("end offsets unavailable", extra={"error": type(exc).__name__})
        out: dict[TP, int | None] = {}
        for tp in tps:
            end = fresh.get(tp)
            if end is None:
                try:
                    end = consumer.highwater(tp)
                except Exception:
                    end = None
            out[tp] = end
        return out

    async def _committed(self, tps: list[TP]) -> dict[TP, int | None]:
        consumer = self.app.consumer
        known: Mapping[TP, int | None] = getattr(consumer, "_committed_offset", {})
        out: dict[TP, int | None] = {}
        missing = []
        for tp in tps:
            c = known.get(tp)
            if c is not None:
                out[tp] = c
            else:
                missing.append(tp)
        now = time.monotonic()
        for tp in [tp for tp in self._group if tp not in set(tps)]:
            del self._group[tp]
        ask = [tp for tp in missing if now - self._group.get(tp, (float("-inf"), None))[0] > GROUP_OFFSET_CACHE_SECONDS]
        if ask:
            try:
                thread = consumer._thread
                aio = thread._ensure_consumer()
                for tp in ask:
                    off = await asyncio.wait_for(thread.call_thread(aio.committed, tp), BROKER_TIMEOUT_SECONDS)
                    self._group[tp] = (now, off)
            except Exception as exc:
                log.debug("group offsets unavailable", extra={"error": type(exc).__name__})
        earliest: Mapping[Any, int] = {}
        never = [tp for tp in missing if self._group.get(tp, (0.0, None))[1] is None]
        if never:
            try:
                earliest = await asyncio.wait_for(consumer.earliest_offsets(*never), BROKER_TIMEOUT_SECONDS)
            except Exception as exc:
                log.debug("first offsets unavailable", extra={"error": type(exc).__name__})
        for tp in missing:
            group = self._group.get(tp, (0.0, None))[1]
            out[tp] = group if group is not None else earliest.get(tp)
        return out


def internal_topics(app: faust.App) -> frozenset[str]:
    """Topics the worker itself writes and consumes: their last record (or transaction marker) may
    stay unacknowledged, so one record per partition is forgiven by the stuck rule."""
    try:
        topics = load_settings().topics
    except Exception:  # a bad unrelated setting: the default names
        topics = Topics()
    return frozenset({f"{app.conf.id}-segment-partials", topics.rekeyed, topics.ticks})


async def debug_report(app: Any) -> str:
    """Where every asyncio task of the worker is waiting (diagnostics; off by default)."""

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
        for tp in sorted(set(c._acked) | set(c._committed_offset)):  # what the next commit can take
            acked = sorted(c._acked.get(tp) or ())
            out.write(f"  commit {tuple(tp)} committed {c._committed_offset.get(tp)} acked {len(acked)} "
                      f"first {acked[:3]} gaps {sorted((i.begin, i.end) for i in c._gap.get(tp) or ())[:3]}\n")
    except Exception as exc:  # diagnostics only
        out.write(f"consumer introspection failed: {exc!r}\n")
    try:
        unacked: dict[Any, list[Any]] = {}
        for m in list(c._unacked_messages):
            unacked.setdefault(tuple(m.tp), []).append((m.offset, m.refcount, m.acked))
        for tp_, ms in sorted(unacked.items()):
            out.write(f"  unacked {tp_} {len(ms)} lowest {sorted(ms)[:3]}\n")
    except Exception as exc:  # diagnostics only
        out.write(f"unacked introspection failed: {exc!r}\n")
    for name, state in DEBUG_STATE.items():
        try:
            out.write(f"state {name} {state()!r}\n")
        except Exception as exc:  # diagnostics only
            out.write(f"state {name} failed: {exc!r}\n")

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
    return out.getvalue()


def register_metrics(app: faust.App, metrics: Metrics, progress: Progress) -> None:
    """``/metrics``: Prometheus text, with the gauges read from the worker's state at scrape time."""

    @app.page("/metrics")
    async def prometheus_metrics(web: Any, request: Any) -> Any:
        await refresh_gauges()
        return web.bytes(metrics.render(), content_type="text/plain")

    async def refresh_gauges() -> None:
        """Gauges read from the worker's state at scrape time (no per-event cost)."""
        try:
            assignment = app.consumer.assignment()
        except Exception:  # not started yet
            return
        metrics.assigned_partitions.set(len(assignment))
        await progress.sample()  # fresh at scrape time (one end-offset request), also fed to /health
        metrics.consumer_lag.clear()
        for tp, (committed, end) in progress.offsets.items():
            if committed is not None and end is not None and tp in assignment:
                # not yet processed and committed (the fetch position would hide a stuck agent)
                metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, end - committed))
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


def register_root_causes(app: faust.App, aggregate: AggregateParts) -> None:
    """``GET /root-causes/<pain_point>?dimension=seller&window=1d&limit=10``: every worker's keys of
    the dimension (scatter-gather over the group's members; :mod:`pipeline.aggregate.root_causes`).
    A member that does not answer makes it a 503 naming the member: a ranking without some
    partitions would mislead."""
    import aiohttp
    from yarl import URL

    from .aggregate.root_causes import ROOT_CAUSE_QUERY_DIMENSIONS, merge

    changelog = aggregate.table.changelog_topic.get_topic_name()

    def local(dimension: str, pain_point: str, window: str) -> dict[str, Any]:
        mine = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == changelog}
        return aggregate.root_causes(dimension, pain_point, window, mine)

    async def ask(session: Any, member: str, request: Request) -> dict[str, Any] | None:
        url = URL(member).with_path(request.path).with_query({**request.query, "local": "1"})
        headers = {k: v for k, v in request.headers.items() if k.lower() == "authorization"}
        try:
            async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=10)) as r:
                return await r.json() if r.status == 200 else None
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return None

    @app.page("/root-causes/{pain_point}")
    async def root_causes(web: View, request: Request, pain_point: str) -> Response:
        q = request.query
        dimension, window = q.get("dimension", "seller"), q.get("window", "1d")
        if dimension not in ROOT_CAUSE_QUERY_DIMENSIONS or not str(q.get("limit", "10")).isdigit():
            return web.json({"error": f"dimension must be one of {', '.join(ROOT_CAUSE_QUERY_DIMENSIONS)}; "
                                      "limit a whole number"}, status=400)
        answers = [local(dimension, pain_point, window)]
        if q.get("local") == "1":
            return web.json(answers[0])
        me = URL(str(app.conf.canonical_url))
        others = [m for m in app.assignor.changelog_distribution
                  if (URL(m).host, URL(m).port) != (me.host, me.port)]
        async with aiohttp.ClientSession() as session:
            got = await asyncio.gather(*(ask(session, m, request) for m in others))
        missing = [m for m, a in zip(others, got) if a is None]
        if missing:
            return web.json({"error": "a worker did not answer", "missing": missing}, status=503)
        merged = merge([*answers, *got], int(q.get("limit", "10")))
        return web.json({"pain_point": pain_point, "dimension": dimension, "window": window,
                         "workers": 1 + len(others), **merged})


def register(app: faust.App, metrics: Metrics, counters: dict[str, int], aggregate: AggregateParts,
             customers: Any, lookup: Callable[..., dict[str, Any] | None]) -> None:
    options = WebOptions.from_env()
    if options.token is not None:
        app.web.web_app.middlewares.append(token_middleware(options.token))
    progress = Progress(app, options.stuck_seconds, internal_topics(app))

    @app.timer(SAMPLE_SECONDS, name="pipeline.web.sample_progress")
    async def sample_progress() -> None:
        try:
            await progress.sample()
        except Exception as exc:  # never kill the timer; a sampler that stops is reported by /health
            log.warning("commit progress sampling failed", extra={"error": type(exc).__name__})

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        try:
            assigned = len(app.consumer.assignment())
            recovered = app.tables.recovery.completed.is_set()
        except Exception:  # not started yet
            assigned, recovered = 0, False
        now = time.monotonic()
        progress.refresh_local(now)
        progress.refresh_committed(now)
        verdict = progress.liveness.verdict(now)
        doc = {**verdict.as_dict(), "assigned_partitions": assigned, "recovered": recovered,
               "rebalancing": bool(app.rebalancing), "agents": agent_status(app),
               "stuck_seconds": options.stuck_seconds, "counters": counters}
        return web.json(doc, status=200 if verdict.ok else 503)

    if options.debug:
        @app.page("/debug/tasks")
        async def debug_tasks(web: Any, request: Any) -> Any:
            return web.text(await debug_report(app))

    register_metrics(app, metrics, progress)
    register_root_causes(app, aggregate)

    table = aggregate.table

    @app.page("/segments/{key}/top")
    @app.table_route(table=table, match_info="key")
    async def segment_top(web: View, request: Request, key: str) -> Response:
        dimension, _, value = key.partition("=")
        window = request.query.get("window", "1h")
        return web.json(aggregate.query(dimension, value, window))

    @app.page("/customers/{customer_id}")
    @app.table_route(table=customers, match_info="customer_id")
    async def customer(web: View, request: Request, customer_id: str) -> Response:
        doc = lookup(customer_id)
        if doc is None:
            return web.json({"error": "customer not found", "customer_id": customer_id}, status=404)
        return web.json(doc)

    @app.page("/customers/{customer_id}/commitments/{commitment_id}")
    @app.table_route(table=customers, match_info="customer_id")
    async def commitment(web: View, request: Request, customer_id: str, commitment_id: str) -> Response:
        doc = lookup(customer_id, commitment_id)
        if doc is None:
            return web.json({"error": "commitment not found", "customer_id": customer_id,
                             "commitment_id": commitment_id}, status=404)
        return web.json(doc)

    @app.on_partitions_assigned.connect
    async def on_assigned(app_: Any, assigned: Any, **kwargs: Any) -> None:
        metrics.rebalances.inc()
