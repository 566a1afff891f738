"""Stage 1's commits, pipelined: the next batch runs while the last commit's changelog records are
being acknowledged.

A commit (:class:`~pipeline.drivers.stage1.Effects` with ``committing``) goes in three steps:

1. every send since the last commit (enriched events, alerts, partials) is confirmed;
2. the states are written to the table: their changelog records are sent;
3. those changelog records are confirmed, *then* the applied records are acknowledged.

Steps 1 and 2 run in the agent; step 3 runs in the background, so the agent takes its next batch
while the broker acknowledges ~500 state records (150-300 ms on a loaded 2-core machine, when the
agent used to wait).  Nothing is acknowledged before its outputs and states are confirmed, so the
guarantee is unchanged: a crash before step 3 ends re-processes the records (idempotent outputs).
One commit is in flight at a time: the next one, a revocation and a shutdown wait for it, so
acknowledgements stay in offset order and a revoked partition is never acknowledged late.  A
confirmation that fails stops the worker (:meth:`~pipeline.agents.common.Sender.confirm_changelog`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..drivers.stage1 import Effects
from ..metrics import Metrics
from .common import Sender, ack_processed


class Commits:
    """Stage 1's commit steps for one table (see the module docstring)."""

    def __init__(self, app: Any, sender: Sender, table: Any, metrics: Metrics) -> None:
        self.app, self.sender, self.table, self.metrics = app, sender, table, metrics
        self._in_flight: asyncio.Future[None] | None = None

    async def commit(self, fx: Effects) -> None:
        """Steps 1 and 2 now, step 3 in the background (after the previous commit's step 3)."""
        started = time.perf_counter()
        await self.drain()
        await self.sender.confirm()  # outputs first: a stored state then implies its outputs are in Kafka
        await self.sender.write(self.table, fx.writes)
        self._in_flight = asyncio.ensure_future(self._finish(list(fx.done), started))

    async def _finish(self, done: list[Any], started: float) -> None:
        await self.sender.confirm_changelog()
        ack_processed(self.app, done)
        self.metrics.batch_seconds.labels("commit").observe(time.perf_counter() - started)

    async def drain(self) -> None:
        """Wait for the commit in flight, if any (its failure has already stopped the worker)."""
        task, self._in_flight = self._in_flight, None
        if task is not None:
            await asyncio.shield(task)  # a cancelled waiter (shutdown) leaves the confirmation running
