"""pipeline.web without Kafka: options, the bearer token, agent liveness, commit-progress sampling.

(A running worker's /health, /metrics and pages: tests/integration/test_health.py.)
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web as aioweb
from aiohttp.test_utils import TestClient, TestServer
from faust.types import TP

from pipeline import web
from pipeline.config import Settings, load_settings


def test_options_from_env_and_the_old_debug_name():
    o = web.WebOptions.from_env({})
    assert o.token is None and not o.debug and o.stuck_seconds == 20.0
    assert web.WebOptions.from_env({"PIPELINE_DEBUG": "1"}).debug
    assert web.WebOptions.from_env({"PIPELINE_DEBUG_TASKS": "1"}).debug  # old name still works
    assert not web.WebOptions.from_env({"PIPELINE_DEBUG": "0"}).debug
    o = web.WebOptions.from_env({"PIPELINE_WEB_TOKEN": "tok", "PIPELINE_STUCK_SECONDS": "9"})
    assert o.token == "tok" and o.stuck_seconds == 9.0
    assert "tok" not in repr(o)
    assert web.WebOptions.from_env({"PIPELINE_WEB_TOKEN": ""}).token is None


def test_authorized():
    assert web.authorized("/segments/x=y/top", None, None)  # no token configured
    assert web.authorized("/health", None, "t") and web.authorized("/metrics", None, "t")
    assert web.authorized("/health/", None, "t")
    assert not web.authorized("/segments/x=y/top", None, "t")
    assert not web.authorized("/segments/x=y/top", "Bearer wrong", "t")
    assert not web.authorized("/segments/x=y/top", "Basic t", "t")
    assert not web.authorized("/", "Bearer ", "t")
    assert web.authorized("/segments/x=y/top", "Bearer t", "t")
    assert web.authorized("/router/", "bearer t", "t")


def test_token_middleware_on_an_aiohttp_app():
    async def ok(request: aioweb.Request) -> aioweb.Response:
        return aioweb.Response(text="ok")

    async def run() -> list[int]:
        app = aioweb.Application(middlewares=[web.token_middleware("tok")])
        for path in ("/health", "/metrics", "/segments/a=b/top", "/debug/tasks"):
            app.router.add_get(path, ok)
        async with TestClient(TestServer(app)) as client:
            codes = []
            for path, headers in (("/health", {}), ("/metrics", {}), ("/segments/a=b/top", {}),
                                  ("/segments/a=b/top", {"Authorization": "Bearer nope"}),
                                  ("/segments/a=b/top", {"Authorization": "Bearer tok"}),
                                  ("/debug/tasks", {}), ("/table/customers/c1/", {"Authorization": "Bearer tok"})):
                r = await client.get(path, headers=headers)
                codes.append(r.status)
                if r.status == 401:
                    assert r.headers["WWW-Authenticate"].startswith("Bearer")
            return codes

    assert asyncio.run(run()) == [200, 200, 401, 401, 200, 401, 404]


def test_input_partitions_exclude_changelogs_and_the_leader_topic():
    assert web.is_input_partition(TP("events.orders", 0))
    assert not web.is_input_partition(TP("app-customers-changelog", 0))
    assert not web.is_input_partition(TP("app-__assignor-__leader", 0))


class _Task:
    def __init__(self, done: bool) -> None:
        self._done = done

    def done(self) -> bool:
        return self._done


def _actor(done: bool, crashed: bool = False) -> Any:
    return SimpleNamespace(actor_task=_Task(done), crashed=crashed)


def test_agent_status():
    agents = {
        "ingest": SimpleNamespace(_actors=[_actor(False)]),
        "aggregate": SimpleNamespace(_actors=[_actor(True)]),  # its task ended (crashed or returned)
        "crashed": SimpleNamespace(_actors=[_actor(False, crashed=True)]),
        "replaced": SimpleNamespace(_actors=[_actor(True), _actor(False)]),  # supervisor restarted it
        "not_started": SimpleNamespace(_actors=[SimpleNamespace(actor_task=None)]),
    }
    status = web.agent_status(SimpleNamespace(agents=agents))
    assert status == {"ingest": True, "aggregate": False, "crashed": False, "replaced": True, "not_started": False}


class _FakeThread:
    def __init__(self, group: dict[TP, int | None]) -> None:
        self.group = group

    def _ensure_consumer(self) -> Any:
        async def committed(tp: TP) -> int | None:
            return self.group.get(tp)
        return SimpleNamespace(committed=committed)

    async def call_thread(self, fun: Any, *args: Any) -> Any:
        return await fun(*args)


class _FakeConsumer:
    def __init__(self) -> None:
        self.tps = [TP("in", 0), TP("in", 1), TP("in", 2), TP("in", 3), TP("app-customers-changelog", 0)]
        self.ends = {TP("in", 0): 1000, TP("in", 1): 50, TP("in", 2): 70}  # in/3: the broker did not answer
        self._committed_offset = {TP("in", 0): 400, TP("in", 3): 5}
        self._read_offset = {TP("in", 0): 999}  # the fetch position: would say lag 0
        self._thread = _FakeThread({TP("in", 1): 20})  # in/2: nothing committed by the group
        self.cached_high = {TP("in", 3): 9}

    def assignment(self) -> set[TP]:
        return set(self.tps)

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in tps if tp in self.ends}

    def highwater(self, tp: TP) -> int | None:
        return self.cached_high.get(tp)

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: 10 for tp in tps}


def _fake_app(consumer: _FakeConsumer, rebalancing: bool = False) -> Any:
    completed = asyncio.Event()
    completed.set()
    return SimpleNamespace(consumer=consumer, rebalancing=rebalancing,
                           tables=SimpleNamespace(recovery=SimpleNamespace(completed=completed)),
                           agents={"ingest": SimpleNamespace(_actors=[_actor(False)])})


def test_progress_lag_is_end_minus_committed_with_fallbacks():
    async def run() -> dict[TP, tuple[int | None, int | None]]:
        progress = web.Progress(_fake_app(_FakeConsumer()), 20.0, frozenset())
        await progress.sample()
        return progress.offsets

    offsets = asyncio.run(run())
    assert offsets == {
        TP("in", 0): (400, 1000),  # Faust's committed offset (not the fetch position)
        TP("in", 1): (20, 50),  # the group's committed offset from the broker
        TP("in", 2): (10, 70),  # nothing committed: the partition's first offset
        TP("in", 3): (5, 9),  # end offset from the consumer's cached high watermark
    }


def test_progress_feeds_the_verdict():
    async def run() -> Any:
        consumer = _FakeConsumer()
        progress = web.Progress(_fake_app(consumer), 0.05, frozenset())
        await progress.sample()
        await asyncio.sleep(0.06)
        await progress.sample()
        return progress.liveness.verdict(progress.sampled_at)

    v = asyncio.run(run())
    assert not v.ok and {(p.topic, p.partition) for p in v.partitions if p.stuck} == {
        ("in", 0), ("in", 1), ("in", 2), ("in", 3)}


def test_advertised_host():
    assert Settings().advertised_host == "127.0.0.1"
    assert Settings(web_host="10.0.0.5").advertised_host == "10.0.0.5"
    s = load_settings({"PIPELINE_WEB_HOST": "0.0.0.0", "PIPELINE_WEB_ADVERTISED_HOST": "10.1.2.3"})
    assert s.web_host == "0.0.0.0" and s.advertised_host == "10.1.2.3"
    import socket

    assert load_settings({"PIPELINE_WEB_HOST": "0.0.0.0"}).advertised_host == socket.gethostname()


def test_faust_app_serves_no_table_pages_and_advertises_the_advertised_host():
    from pipeline.app import make_faust_app

    app = make_faust_app(load_settings({"PIPELINE_WEB_HOST": "0.0.0.0", "PIPELINE_WEB_ADVERTISED_HOST": "10.1.2.3",
                                        "PIPELINE_WEB_PORT": "6070"}))
    assert app.conf.web_tables_enabled is False
    assert app.conf.web_bind == "0.0.0.0"
    assert str(app.conf.canonical_url) == "http://10.1.2.3:6070"


@pytest.mark.parametrize("env,middlewares", [({}, 0), ({"PIPELINE_WEB_TOKEN": "t"}, 1)])
def test_register_adds_the_token_middleware_only_with_a_token(monkeypatch, env, middlewares):
    from pipeline.app import build

    monkeypatch.delenv("PIPELINE_WEB_TOKEN", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    pipe = build(load_settings({}))
    assert len(pipe.app.web.web_app.middlewares) == middlewares
    paths = {r.resource.canonical for r in pipe.app.web.web_app.router.routes() if r.resource is not None}
    assert "/health" in paths and "/metrics" in paths
    assert not any(p.startswith("/debug") for p in paths)
