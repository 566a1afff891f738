"""A correction to kafka-python 3.0 (3.0.12 pinned): its response-class registry is not thread-safe.

kafka-python 3 builds the class of a message version the first time it is asked for
(``MetadataResponse[5]``, ``VersionSubscriptable.__getitem__``), and every class it builds
that way registers itself as *the* response class of its API key, through a weak proxy
(``ResponseClassRegistry``; the metaclass drops ``init=False``, so a version class registers
like a primary one).  The project runs kafka-python clients in several threads at once (the
worker's read-backs and offset reads in executor threads, each client with its own IO thread).
Two threads asking for a version not built yet can both build it: the message class keeps one
(``_VERSIONS``), the other is garbage, and when the registry got the garbage one's proxy every
later response of that API key in the process fails to parse — ``ReferenceError:
weakly-referenced object no longer exists`` in ``get_response_class`` — so each request times
out (30 s) and is sent again, until the caller's deadline.  Seen in CI on 2026-12-06
(``test_worker_joins_and_leaves_mid_stream``: a worker's read-back after a rebalance stalled for
two minutes, then the worker stopped, ``agent_crashed`` ``TimeoutError``); reproduced directly:
215 of 2,000 races of four threads left a dead entry, none once the versions were built first.

:func:`prepare` builds every version of every message class once, under a lock, before the
project makes a kafka-python client (:func:`pipeline.kafka_security.kafka_kwargs` calls it), and
points each API key back at its primary class.  Later lookups find the built classes and build
nothing, so nothing registers again.  It takes ~15 ms once per process.  With a kafka-python
without that registry (2.x) it does nothing.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Iterator

_LOCK = threading.Lock()
_DONE = False


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def primary_classes(base: type) -> list[type]:
    """The primary (unversioned) message classes under ``base``: those holding their own ``_VERSIONS``."""
    return [c for c in set(_subclasses(base))
            if "_VERSIONS" in c.__dict__ and getattr(c, "_valid_versions", None) is not None]


def build_versions(classes: list[type]) -> int:
    """Build (or find) the class of every valid version of each of ``classes``; return how many."""
    n = 0
    for cls in classes:
        for version in range(cls.max_version + 1):  # type: ignore[attr-defined]
            cls[version]  # type: ignore[index]
            n += 1
    return n


def prepare() -> None:
    """Build every message version class once and register the primary response classes (idempotent)."""
    global _DONE
    if _DONE:
        return
    with _LOCK:
        if _DONE:
            return
        try:
            import kafka  # noqa: F401  (the clients import the protocol modules they use)
            from kafka.protocol.api_header import ResponseClassRegistry
            from kafka.protocol.api_message import ApiMessage
        except ImportError:  # kafka-python 2.x: no version classes, nothing to correct
            _DONE = True
            return
        classes = primary_classes(ApiMessage)
        build_versions(classes)
        registry: dict[Any, Any] = ResponseClassRegistry._response_class_registry
        for cls in classes:
            if not cls.is_request():  # type: ignore[attr-defined]
                registry[cls.API_KEY] = weakref.proxy(cls)  # type: ignore[attr-defined]
        _DONE = True
