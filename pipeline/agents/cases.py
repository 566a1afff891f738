"""The acknowledgement SLA's Faust edge (issue 19, scope 2): the team's promises tracked like the
company's (:mod:`pipeline.cases.sla`).

Sources, co-partitioned by the alert's subject key: the three alert topics (keyed by customer id or
``dimension=value``), ``alerts.actions`` (the console writes each action on the partition of its
alert's subject key) and ``<app_id>-case-ticks`` (the leader's wall-clock tick to every partition,
:func:`~pipeline.agents.timers.register_ticks`).  Table ``cases``: one value per partition (its
open, met and broken acknowledgement commitments), under the partition's metadata key.  Per batch:
fold the alerts and actions, sweep what is due on the wall clock, send the escalations, confirm them,
then store the state (so a stored state implies its escalations are in Kafka; a crash in between
sends an escalation again, with the same id).  Off with ``PIPELINE_ACK_SLA_SECONDS=0``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust
import orjson
from mode import CrashingSupervisor

from ..cases.inbox import subject_key
from ..core.records import json_object
from ..cases.sla import AckSla, new_state, on_alert, on_case, sweep
from ..config import Settings
from ..core.keys import partition_meta_key
from ..metrics import Metrics
from ..outputs.frontier import committed_offsets
from .common import InputGuard, Sender, fetch_loop_blocked, json_table, run_batches, watch_input


def register(app: faust.App, settings: Settings, metrics: Metrics, counters: dict[str, int]) -> None:
    t, n = settings.topics, settings.partitions
    sla = AckSla(settings.ack_sla_seconds, settings.ack_sla_severity)
    alert_topics = {t.alerts_churn, t.alerts_commitments, t.alerts_pain_points}
    topics = (*sorted(alert_topics), t.alert_actions, settings.case_ticks_topic)
    source = app.topic(*topics, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    table = json_table(app, "cases", n, "Per partition: acknowledgement commitments of serious alerts.")
    sender = Sender(app, metrics, counters, "cases")
    gaps = InputGuard(settings, metrics, "cases", settings.gap_wait_seconds,
                      consumer=lambda: app.consumer, starved=lambda: fetch_loop_blocked(app))
    guarded: set[tuple[str, int]] = set()

    async def guard(topic: str, p: int) -> None:
        if (topic, p) not in guarded:
            offsets = await asyncio.get_running_loop().run_in_executor(None, committed_offsets, settings, [topic], p)
            gaps.start(topic, p, offsets.get(topic))
            guarded.add((topic, p))

    @app.agent(source, concurrency=1, name="cases", supervisor_strategy=CrashingSupervisor)
    async def cases(stream: faust.StreamT) -> None:
        await run_batches(stream, settings.batch_size, settings.batch_within_seconds, "cases", process_batch, gaps,
                          is_data=lambda event: event.message.topic != settings.case_ticks_topic)

    async def process_batch(events: list[Any]) -> None:
        now = time.time()
        states: dict[int, dict[str, Any]] = {}
        for event in events:
            msg = event.message
            await guard(msg.topic, msg.partition)
            if not await gaps.admit(msg.topic, msg.partition, msg.offset, event):
                continue
            state = states.get(msg.partition)
            if state is None:
                state = states[msg.partition] = table.get(partition_meta_key(msg.partition, n)) or new_state()
            doc = json_object(msg.value)
            if doc is None:
                continue
            if msg.topic in alert_topics:
                on_alert(state, doc, sla, now)
            elif msg.topic == t.alert_actions:
                on_case(state, doc, now)
        for p, state in states.items():
            for alert in sweep(state, sla, now):
                key = subject_key(alert) or alert["alert_id"]  # as the console partitions actions
                await sender.send(t.alerts_commitments, key.encode(), orjson.dumps(alert), p, kind="internal")
                metrics.alerts.labels(alert["type"], alert["severity"]).inc()
        await sender.confirm()
        await sender.store(table, {partition_meta_key(p, n): s for p, s in states.items()})

    @app.timer(2.0)
    async def cases_gap_watch() -> None:
        """See :func:`~pipeline.agents.common.watch_input`."""
        await watch_input(app, gaps, set(topics))

    @app.on_partitions_revoked.connect
    async def on_revoked(app_: Any, revoked: Any, **kwargs: Any) -> None:
        for tp in revoked:
            if tp.topic in topics:
                gaps.forget(tp.topic, tp.partition)
                guarded.discard((tp.topic, tp.partition))
