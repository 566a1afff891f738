"""Stage 1's commits, pipelined: the next batches run while the last commit is being confirmed.

A commit (:class:`~pipeline.drivers.stage1.Effects` with ``committing``) goes in three steps:

1. every send since the last commit (enriched events, alerts, partials) is confirmed;
2. the states are written to the table: their changelog records are sent;
3. those changelog records are confirmed, *then* the applied records are acknowledged.

All three run in the background, in that order: the agent takes its next batch at once (issue 17:
waiting for step 1 in the agent cost a sixth of a worker's throughput, the broker's
acknowledgements of a second's outputs; step 3 used to wait too, 150-300 ms per commit on a
loaded 2-core machine).  Until step 2 the driver reads the commit's states from its own overlay
(:meth:`~pipeline.drivers.stage1.Stage1.stored` ends it), so the next batches see them.  Nothing is
acknowledged before its outputs and states are confirmed, and no state reaches the changelog
before the outputs it implies, so the guarantee is unchanged: a crash before step 3 ends
re-processes the records (idempotent outputs).  One commit is in flight at a time: the next one, a
revocation and a shutdown wait for it, so acknowledgements stay in offset order and a revoked
partition is never acknowledged late.  A confirmation that fails stops the worker
(:meth:`~pipeline.agents.common.Sender.confirm`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Mapping

from ..drivers.stage1 import Effects
from ..metrics import Metrics
from .common import Sender, ack_processed


class Commits:
    """Stage 1's commit steps for one table (see the module docstring)."""

    def __init__(self, app: Any, sender: Sender, table: Any, metrics: Metrics,
                 stored: Callable[[Mapping[str, Any]], None] = lambda writes: None) -> None:
        self.app, self.sender, self.table, self.metrics, self.stored = app, sender, table, metrics, stored
        self._in_flight: asyncio.Future[None] | None = None

    async def commit(self, fx: Effects) -> None:
        """All three steps in the background, after the previous commit's (its outputs: those sent so far)."""
        started = time.perf_counter()
        await self.drain()
        outputs = self.sender.sent()
        self._in_flight = asyncio.ensure_future(self._finish(outputs, fx.writes, list(fx.done), started))

    async def _finish(self, outputs: list[tuple[str, Any]], writes: Mapping[str, Any], done: list[Any],
                      started: float) -> None:
        await self.sender.confirm(outputs)  # outputs first: a stored state then implies its outputs are in Kafka
        await self.sender.write(self.table, writes)
        self.stored(writes)
        await self.sender.confirm_changelog()
        ack_processed(self.app, done)
        self.metrics.batch_seconds.labels("commit").observe(time.perf_counter() - started)

    async def drain(self) -> None:
        """Wait for the commit in flight, if any (its failure has already stopped the worker)."""
        task, self._in_flight = self._in_flight, None
        if task is not None:
            await asyncio.shield(task)  # a cancelled waiter (shutdown) leaves the confirmation running
