"""Stage 1's timers: the leader's wall-clock ticks to every partition (docs/semantics.md, clocks)."""

from __future__ import annotations

import time

import faust
import orjson

from ..config import Settings
from .common import Sender


def register_ticks(app: faust.App, settings: Settings, sender: Sender, ordering: bool) -> None:
    """The leader's wall-clock ticks to every stage-1 partition (and, with ``PIPELINE_CLOCK=wall``,
    to stage 2)."""
    t = settings.topics

    @app.timer(settings.tick_interval_seconds, on_leader=True)
    async def tick() -> None:
        """Wall-clock ticks to every partition: the wall clock itself (``PIPELINE_CLOCK=wall``), the
        moments at which idle inputs stop holding the event-time clock back (``PIPELINE_IDLE_SECONDS``),
        records held for event-time order whose wait ran out (``PIPELINE_REORDER_MAX_WAIT_SECONDS``),
        the commit of what a quiet partition applied last (``PIPELINE_COMMIT_INTERVAL_SECONDS``), and
        the acknowledgement SLA's due times (``PIPELINE_ACK_SLA_SECONDS``, its own tick topic)."""
        wall = settings.clock == "wall"
        if (not wall and settings.idle_seconds <= 0 and not (ordering and settings.reorder_max_wait_seconds > 0)
                and settings.commit_interval_seconds <= 0 and settings.ack_sla_seconds <= 0):
            return  # nothing time-driven: strict event time, no records waiting for a slower topic, no commit due
        now = time.time()
        body, control = orjson.dumps({"now": now}), orjson.dumps({"control": "tick", "now": now})
        for p in range(settings.partitions):
            await sender.send(t.ticks, b"tick", body, p)
            if settings.ack_sla_seconds > 0:  # the acknowledgement SLA runs on the wall clock
                await sender.send(settings.case_ticks_topic, b"tick", body, p)
            if wall:
                await sender.send(settings.partials_topic, b"tick", control, p)
        await sender.confirm()
