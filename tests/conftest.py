"""Shared fixtures: one real Kafka broker per test session, fresh topics per test."""

from __future__ import annotations

import dataclasses
import os
import uuid
from pathlib import Path

import pytest

from pipeline.config import Settings, Topics, load_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def local_kafka(tmp_path_factory):
    """The session's broker: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else a local KRaft broker.

    Yields the :class:`LocalKafka` (or ``None`` for an external cluster).
    """
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield None
        return
    from pipeline.kafka_local import LocalKafka

    s = load_settings()
    broker = LocalKafka(s.kafka_version, s.cache_dir, workdir=tmp_path_factory.mktemp("kafka"))
    broker.start()
    print(f"\n[kafka] local broker {s.kafka_version} at {broker.bootstrap}, up in {broker.start_seconds:.1f}s")
    yield broker
    broker.cleanup()


@pytest.fixture(scope="session")
def kafka_bootstrap(local_kafka) -> str:
    return os.environ["KAFKA_BOOTSTRAP_SERVERS"] if local_kafka is None else local_kafka.bootstrap


def fresh_settings(bootstrap: str, **overrides) -> Settings:
    """Settings with a unique app id and unique topic names (one test, one namespace)."""
    suffix = uuid.uuid4().hex[:8]
    topics = Topics(**{f.name: f"t-{suffix}.{f.default}" for f in dataclasses.fields(Topics)})
    base = load_settings({k: v for k, v in os.environ.items() if k in ("PIPELINE_CACHE_DIR", "PIPELINE_DATA_DIR")})
    return dataclasses.replace(
        base, bootstrap_servers=bootstrap, app_id=f"test-{suffix}", topics=topics, **overrides
    )


@pytest.fixture
def settings(kafka_bootstrap) -> Settings:
    from pipeline.topics import ensure_topics

    s = fresh_settings(kafka_bootstrap)
    ensure_topics(s)
    return s


@pytest.fixture
def worker_factory(tmp_path):
    """Start workers (child processes); all are stopped at the end of the test."""
    from pipeline.kafka_local import free_port
    from pipeline.runtime import WorkerProcess

    started: list[WorkerProcess] = []

    def start(s: Settings, ready: bool = True, port: int | None = None, **env: str) -> WorkerProcess:
        w = WorkerProcess(s, port or free_port(), tmp_path / f"worker-{len(started)}.log", extra_env=env).start()
        started.append(w)
        if ready:
            w.wait_ready()
        return w

    yield start
    for w in started:
        w.stop()
