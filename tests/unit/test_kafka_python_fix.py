"""kafka-python's message classes built once before clients run in threads (pipeline/kafka_python_fix.py)."""

from __future__ import annotations

import sys
import threading

import pytest

from pipeline import kafka_python_fix
from pipeline.kafka_security import kafka_kwargs

api_message = pytest.importorskip("kafka.protocol.api_message")
api_header = pytest.importorskip("kafka.protocol.api_header")


def registry() -> dict:
    return api_header.ResponseClassRegistry._response_class_registry


def test_every_version_built_and_every_response_key_on_its_primary_class():
    kafka_python_fix.prepare()
    classes = kafka_python_fix.primary_classes(api_message.ApiMessage)
    responses = [c for c in classes if not c.is_request()]
    assert len(responses) >= 40  # produce, fetch, metadata, offsets, groups, admin, ...
    for cls in classes:
        assert set(cls._VERSIONS) == set(range(cls.max_version + 1)), cls.__name__
    for cls in responses:
        entry = registry()[cls.API_KEY]
        assert entry.__name__ == cls.__name__  # alive (a dead proxy raises ReferenceError) and the primary
        assert entry._class_version is None


def test_kafka_kwargs_prepares(monkeypatch):
    monkeypatch.setattr(kafka_python_fix, "_DONE", False)
    calls = []
    real = kafka_python_fix.build_versions
    monkeypatch.setattr(kafka_python_fix, "build_versions", lambda classes: calls.append(len(classes)) or real(classes))

    class S:
        bootstrap_servers = "127.0.0.1:9092"

    assert kafka_kwargs(S())["bootstrap_servers"] == ["127.0.0.1:9092"]
    kafka_kwargs(S())
    assert len(calls) == 1 and calls[0] >= 80  # once per process, requests and responses


def test_threads_asking_for_versions_at_once_build_nothing_and_leave_the_registry_alive():
    """The race that broke it: threads asking for a version at once.  After ``prepare`` they all
    find the built class, so no class is built, none registers and every entry stays alive."""
    kafka_python_fix.prepare()
    classes = kafka_python_fix.primary_classes(api_message.ApiMessage)
    before = {cls: dict(cls._VERSIONS) for cls in classes}
    entries = dict(registry())
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        barrier = threading.Barrier(4)

        def ask() -> None:
            barrier.wait()
            for cls in classes:
                for version in range(cls.max_version + 1):
                    cls[version]

        threads = [threading.Thread(target=ask) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    for cls in classes:
        assert all(cls._VERSIONS[v] is c for v, c in before[cls].items()), cls.__name__
    assert set(registry()) == set(entries)
    assert all(registry()[k] is entries[k] for k in entries)
    for entry in registry().values():
        entry.__name__  # raises ReferenceError on a dead proxy
