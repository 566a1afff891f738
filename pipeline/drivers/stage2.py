"""Stage 2 as a pure driver: records of the partials topic and the table in; sends, table writes
and metric counts out.  No Faust, no Kafka, no clock of its own (``now`` is passed in).

The Faust edge (:mod:`pipeline.agents.aggregate`) keeps the input gap-free, reads back what a
previous owner already sent (:meth:`Stage2.needs_emitted` / :meth:`Stage2.set_emitted`), calls
:meth:`Stage2.batch` once per batch, sends :attr:`Effects.sends`, confirms them, then writes
:attr:`Effects.writes` — in that order, so a stored state implies its outputs are in Kafka.

Per partition the driver owns:

* the **watermark** (:class:`~pipeline.aggregate.state.Watermark`): the lowest, over the stage-1
  source partitions that sent partials (or announced their clock), of the greatest event time each
  has sent, minus grace; an ``advance`` control moves it once every stage-1 partition has forwarded
  it; with ``wall_clock`` a ``tick`` moves it too;
* the **due index** of window closes (:class:`~pipeline.scheduling.DueIndex`), rebuilt from the
  table the first time a partition is seen;
* **recovery**: the source times and pending advances are stored under the partition's metadata
  key with every batch and restored with the table; a partial already merged (re-read after a
  crash) is skipped; a final record or alert whose id the output topics already hold is not sent
  again (``duplicate_*_suppressed``).

Malformed records (bad JSON, a partial without a key, out-of-range values) become dead letters
with the reason and the original bytes, and never move a watermark or touch the table.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import orjson

from ..aggregate.alerts import Playbook, surge_alert
from ..aggregate.dimensions import split_group_key
from ..aggregate.internal import Control, Partial, parse_stage2
from ..aggregate.state import (Watermark, already_merged, close_windows, merge_partial, new_state, next_close_time,
                               working_copy,
                               note_merged, top_pain_points)
from ..aggregate.root_causes import rank
from ..aggregate.surge import SurgeConfig, process_finals
from ..core.keys import is_meta_key, partition_meta_key, partition_of
from ..core.records import Record
from ..core.redact import Redactor
from ..ingest.validate import Problem
from ..outputs.deadletter import dead_letter
from ..scheduling import DueIndex

CONTROL_KEYS = (b"tick", b"clock")  # stage-1 control records on the partials topic (not data)


def dumps_held(doc: Any) -> bytes:
    """``orjson.dumps(doc)`` in a buffer of its own size.  orjson (3.13) returns its 4 KB working
    buffer, not shrunk: a batch that closes many windows holds every final until the edge sends
    them (measured: 10,635 finals of ~480 bytes held 88 MB, the worker's peak RSS)."""
    return memoryview(orjson.dumps(doc)).tobytes()


@dataclass(frozen=True)
class Stage2Config:
    partitions: int
    grace: float
    retention: int  # closed windows kept per window size
    surge: SurgeConfig
    playbook: Playbook
    wall_clock: bool  # PIPELINE_CLOCK=wall: ticks move the watermark
    aggregates_topic: str
    alerts_topic: str
    deadletter_topic: str
    redactor: Redactor | None = None  # personal data masked in alerts (None: the default, every kind masked)


In = Record  # one record of the partials topic, as consumed


@dataclass(frozen=True)
class Send:
    topic: str
    key: bytes
    value: bytes


@dataclass
class Effects:
    """What one batch asks of the edge, in order: send, confirm, then write."""

    sends: list[Send] = field(default_factory=list)
    writes: dict[str, Any] = field(default_factory=dict)  # table key -> value, each key once
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (metric, label) -> increment
    alerts: list[tuple[str, str]] = field(default_factory=list)  # (type, severity) of each alert sent
    malformed: list[tuple[int, int, str]] = field(default_factory=list)  # (partition, offset, code)
    touched: set[int] = field(default_factory=set)


class Stage2:
    """All stage-2 partitions a worker owns; see the module docstring."""

    def __init__(self, cfg: Stage2Config, table: Mapping[str, Any]) -> None:
        self.cfg = cfg
        self.table = table
        self.watermarks: dict[int, Watermark] = {}
        self.index = DueIndex()
        self.advances: dict[tuple[int, float], set[int]] = {}
        self.source_times: dict[int, dict[int, float]] = {}  # partition -> source -> max event time
        self.emitted: dict[int, set[str]] = {}  # final record ids and alert ids on partition p's outputs
        self.meta_keys = {p: partition_meta_key(p, cfg.partitions) for p in range(cfg.partitions)}

    # -- partitions ----------------------------------------------------------------------------------
    def needs_emitted(self, p: int) -> bool:
        """The edge must read back the ids on ``p``'s output topics (:meth:`set_emitted`) first."""
        return p not in self.emitted

    def set_emitted(self, p: int, ids: Iterable[str]) -> None:
        self.emitted[p] = set(ids)

    def revoke(self, p: int) -> None:
        self.index.drop(p)
        self.watermarks.pop(p, None)
        self.source_times.pop(p, None)
        self.emitted.pop(p, None)
        for adv in [a for a in self.advances if a[0] == p]:
            del self.advances[adv]

    def watermark(self, p: int) -> Watermark:
        wm = self.watermarks.get(p)
        if wm is None:
            wm = self.watermarks[p] = Watermark(self.cfg.grace)
        return wm

    def _ensure_index(self, p: int) -> None:
        if self.index.known(p):
            return
        n = self.cfg.partitions
        self.index.rebuild(p, ((k, next_close_time(v)) for k, v in self.table.items()
                               if not is_meta_key(k) and partition_of(k, n) == p))
        doc = self.table.get(self.meta_keys[p]) or {}
        per_src = self.source_times.setdefault(p, {})
        for src, at in (doc.get("source_times") or {}).items():
            per_src[int(src)] = max(per_src.get(int(src), float("-inf")), float(at))
        if per_src:
            self.watermark(p).observe(min(per_src.values()))
        for to, senders in doc.get("advances") or ():
            self.advances.setdefault((p, float(to)), set()).update(int(s) for s in senders)

    def _meta(self, p: int) -> dict[str, Any]:
        return {
            "source_times": {str(k): v for k, v in (self.source_times.get(p) or {}).items()},
            "advances": [[to, sorted(senders)] for (q, to), senders in self.advances.items() if q == p],
        }

    # -- a batch -------------------------------------------------------------------------------------
    def batch(self, records: Iterable[In], now: float) -> Effects:
        """Apply ``records`` (already admitted by the gap guard, in offset order per partition)."""
        fx = Effects()
        merged: dict[tuple[int, str], None] = {}  # (partition, key) of the states partials changed
        for rec in records:
            self._ensure_index(rec.partition)
            fx.touched.add(rec.partition)
            self._record(rec, fx, now, merged)
        # a key's next close is looked up once per batch, not after each of its partials: the index
        # keeps only the last due time set anyway, and nothing reads it before the closes below
        for p, key in merged:
            self.index.set(p, key, next_close_time(fx.writes[key]))
        for p in sorted(fx.touched):
            self._close_due(p, fx, now)
        for p in fx.touched:
            fx.writes[self.meta_keys[p]] = self._meta(p)
        return fx

    def _state(self, key: str, fx: Effects) -> Any:
        """The key's state as of this batch: a working copy on first use (the table keeps its stored
        value until the edge writes the new one; :func:`~pipeline.aggregate.state.working_copy`)."""
        if key in fx.writes:
            return fx.writes[key]
        state = self.table.get(key)
        return None if state is None else working_copy(state)

    def _record(self, rec: In, fx: Effects, now: float, merged: dict[tuple[int, str], None]) -> None:
        p = rec.partition
        record = parse_stage2(rec.value)  # internal topics are validated like inputs
        if isinstance(record, Partial) and rec.key is None:
            record = Problem("missing_field", "partial without a key")
        if isinstance(record, Problem):
            self._dead_letter(rec, record, fx, now)
            return
        if isinstance(record, Control):
            self._control(p, record)
            return
        key = rec.key.decode()  # type: ignore[union-attr]  # a keyless partial is dead-lettered above
        doc = record.doc
        state = self._state(key, fx)
        if state is None:
            dim, value = split_group_key(key)
            state = new_state(dim, value)
        if already_merged(state, doc):
            fx.counts[("errors", "replayed_partial_skipped")] += 1
            return
        note_merged(state, doc)
        wm = self.watermark(p)
        state, late = merge_partial(state, doc, self.cfg.grace, wm.value, retention_windows=self.cfg.retention)
        if late.held:
            fx.counts[("late_events", "counted_in_held_window")] += late.held
        if late.dropped:
            fx.counts[("late_events", "window_no_longer_held")] += late.dropped
        src_time = doc.get("max_event_time")
        if src_time is not None:
            per_src = self.source_times.setdefault(p, {})
            src = int(doc.get("src", -1))
            per_src[src] = max(per_src.get(src, float("-inf")), float(src_time))
            wm.observe(min(per_src.values()))
        fx.writes[key] = state
        merged[(p, key)] = None

    def _control(self, p: int, record: Control) -> None:
        if record.kind == "advance":
            # every stage-1 partition forwards the advance after its last partial: move the
            # watermark once all of them have
            senders = self.advances.setdefault((p, record.time), set())
            senders.add(record.sender)
            if len(senders) >= record.of:
                wm = self.watermark(p)
                wm.max_event_time = max(wm.max_event_time or 0.0, record.time + self.cfg.grace)
                del self.advances[(p, record.time)]
        elif record.kind == "clock":
            # a stage-1 partition's clock counts like the event time of its partials, so an idle
            # stage-1 partition does not hold this partition's windows back
            per_src = self.source_times.setdefault(p, {})
            per_src[record.sender] = max(per_src.get(record.sender, float("-inf")), record.time)
            self.watermark(p).observe(min(per_src.values()))
        elif self.cfg.wall_clock:
            self.watermark(p).observe(record.time)

    def _dead_letter(self, rec: In, problem: Problem, fx: Effects, now: float) -> None:
        doc = dead_letter(topic=rec.topic, partition=rec.partition, offset=rec.offset, key=rec.key,
                          timestamp_ms=None if rec.timestamp is None else int(rec.timestamp * 1000),
                          raw=rec.value, problems=[problem], expected_kind=None, now=now)
        key = rec.key if rec.key is not None else doc["dead_letter_id"].encode()
        fx.sends.append(Send(self.cfg.deadletter_topic, key, orjson.dumps(doc)))
        fx.counts[("errors", "aggregate")] += 1
        fx.malformed.append((rec.partition, rec.offset, problem.code))

    def _close_due(self, p: int, fx: Effects, now: float) -> None:
        wm = self.watermark(p).value
        if wm is None:
            return
        sent = self.emitted.setdefault(p, set())
        for key in self.index.pop_due(p, wm):
            state = self._state(key, fx)
            if state is None:
                continue
            state, finals = close_windows(state, wm, retention_windows=self.cfg.retention)
            state, result = process_finals(state, finals, self.cfg.surge)
            for final in finals:
                if final["record_id"] in sent:
                    fx.counts[("errors", "duplicate_final_suppressed")] += 1
                    continue
                fx.sends.append(Send(self.cfg.aggregates_topic, key.encode(), dumps_held(final)))
            for final, surge in result.alerts:
                alert = surge_alert(final, surge, self.cfg.playbook, now, self.cfg.redactor)
                if alert["alert_id"] in sent:
                    fx.counts[("errors", "duplicate_alert_suppressed")] += 1
                    continue
                fx.sends.append(Send(self.cfg.alerts_topic, key.encode(), dumps_held(alert)))
                fx.alerts.append((alert["type"], alert["severity"]))
            fx.writes[key] = state
            self.index.set(p, key, next_close_time(state))

    # -- queries ---------------------------------------------------------------------------------------
    def root_causes(self, dimension: str, pain_point: str, window: str,
                    partitions: Iterable[int]) -> dict[str, list[dict[str, Any]]]:
        """Values of ``dimension`` that counted ``pain_point`` in ``window``, over the keys of
        ``partitions`` (this worker's); :func:`~pipeline.aggregate.root_causes.rank`."""
        mine, prefix, n = set(partitions), f"{dimension}=", self.cfg.partitions or 1

        def items() -> Iterable[tuple[str, Any, float | None]]:
            for key, state in list(self.table.items()):
                if not key.startswith(prefix) or is_meta_key(key) or (p := partition_of(key, n)) not in mine:
                    continue
                wm = self.watermarks.get(p)
                yield key[len(prefix):], state, None if wm is None else wm.value

        return rank(items(), pain_point, window)

    def query(self, dimension: str, value: str, window: str) -> dict[str, Any]:
        """Top pain points of ``dimension=value`` in ``window`` (current and last closed windows)."""
        key = f"{dimension}={value}"
        state = self.table.get(key)
        if state is None:
            return {"dimension": dimension, "value": value, "window": window, "current": [], "last_closed": []}
        wm = self.watermarks.get(partition_of(key, self.cfg.partitions or 1))
        out = top_pain_points(state, window, None if wm is None else wm.value)
        return {"dimension": dimension, "value": value, "window": window, **out}
