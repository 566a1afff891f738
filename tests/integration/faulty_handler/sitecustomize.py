"""Test-only fault injection, loaded by a worker started with this folder on ``PYTHONPATH``.

Wraps :meth:`pipeline.process.Processor.process` so that a record whose bytes
contain ``__raise_always__`` raises on every attempt, and one containing
``__raise_once__`` raises on its first attempt only (a transient fault).

A record containing ``__block_forever__`` is processed, then
:func:`pipeline.retry.attempt` (the awaitable around every record's processing)
never returns: the agent's coroutine waits on an event nobody sets, so that
agent is stuck on that record while the event loop — the web server with
``/health`` and ``/metrics``, the consumer, the commit timer — keeps running.
Nothing in the package knows about these markers.
"""

from __future__ import annotations

import asyncio

import pipeline.process as _process
import pipeline.retry as _retry

_original = _process.Processor.process
_original_attempt = _retry.attempt
_failed_once: set[tuple[str, int, int]] = set()
_block_next: list[tuple[str, int, int]] = []


def _faulty(self, rec, get_state, now=None, **kwargs):
    value = rec.value or b""
    if b"__raise_always__" in value:
        raise RuntimeError("injected permanent fault")
    if b"__raise_once__" in value:
        coord = (rec.topic, rec.partition, rec.offset)
        if coord not in _failed_once:
            _failed_once.add(coord)
            raise RuntimeError("injected transient fault")
    if b"__block_forever__" in value:
        _block_next.append((rec.topic, rec.partition, rec.offset))
    return _original(self, rec, get_state, now, **kwargs)


async def _attempt(*args, **kwargs):
    result = await _original_attempt(*args, **kwargs)
    if _block_next:
        _block_next.clear()
        await asyncio.Event().wait()  # forever: only this coroutine waits, not the loop
    return result


_process.Processor.process = _faulty
_retry.attempt = _attempt
