"""Test-only fault injection, loaded by a worker started with this folder on ``PYTHONPATH``.

Wraps :meth:`pipeline.process.Processor.process` so that a record whose bytes
contain ``__raise_always__`` raises on every attempt, and one containing
``__raise_once__`` raises on its first attempt only (a transient fault).
Nothing in the package knows about these markers.
"""

from __future__ import annotations

import pipeline.process as _process

_original = _process.Processor.process
_failed_once: set[tuple[str, int, int]] = set()


def _faulty(self, rec, get_state, now=None):
    value = rec.value or b""
    if b"__raise_always__" in value:
        raise RuntimeError("injected permanent fault")
    if b"__raise_once__" in value:
        coord = (rec.topic, rec.partition, rec.offset)
        if coord not in _failed_once:
            _failed_once.add(coord)
            raise RuntimeError("injected transient fault")
    return _original(self, rec, get_state, now)


_process.Processor.process = _faulty
