"""``python -m pipeline deadletters``: list dead letters by reason, and re-send selected ones to the
topic they came from once the producer is fixed, or edited (issue 18, scope 5).

* ``list`` — counts per reason (the first error code of each) and one row per dead letter: id,
  source topic, reasons, received time, size.  The original bytes are shown only with
  ``--show-original`` (they may hold personal data).
* ``resend`` — the selected dead letters (``--id``, ``--reason``, ``--source`` or ``--all``) go back
  to their source topic with their original key, as they were or replaced by ``--edit FILE`` (JSON
  Lines ``{"dead_letter_id": ..., "value": {...}}``).  Each re-sent record carries the header
  ``dead_letter_id``.  Exactly once, also when the command is killed: first a ``sending`` marker
  per dead letter goes to the compacted topic ``<app_id>-deadletters-resent`` with the source
  topic's end offsets, then the re-sends (acknowledged), then a ``done`` marker.  A dead letter marked
  ``done`` is never re-sent; one left ``sending`` by a killed run is looked for in its source topic
  past the recorded offsets (by the header): found, it is marked ``done``; not found, it is re-sent.
  A re-sent record that is still invalid becomes a new dead letter.

Selection and formatting are pure (:func:`select`, :func:`reasons_table`); Kafka is at the edges.
"""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import orjson

from .config import Settings


@dataclass(frozen=True)
class DeadLetter:
    dead_letter_id: str
    source_topic: str
    key: bytes | None
    original: bytes
    reasons: tuple[str, ...]
    received_at: str | None

    @property
    def reason(self) -> str:
        return self.reasons[0] if self.reasons else "unknown"

    @classmethod
    def of(cls, doc: dict[str, Any]) -> "DeadLetter":
        src = doc.get("source") or {}
        key = src.get("key_b64")
        return cls(doc["dead_letter_id"], src.get("topic") or "", None if key is None else base64.b64decode(key),
                   base64.b64decode(doc.get("original_b64") or ""),
                   tuple(e.get("code", "unknown") for e in doc.get("errors") or ()), doc.get("received_at"))


def resent_topic(settings: Settings) -> str:
    return f"{settings.app_id}-deadletters-resent"


def select(letters: Iterable[DeadLetter], *, ids: Iterable[str] = (), reason: str | None = None,
           source: str | None = None, everything: bool = False) -> list[DeadLetter]:
    """The dead letters named by id, or with ``reason`` among their reasons, or from ``source``
    (all three narrow each other); ``everything`` selects all.  Each id once, in topic order."""
    wanted = set(ids)
    out, seen = [], set()
    for d in letters:
        if d.dead_letter_id in seen:
            continue
        if not everything and not (wanted or reason or source):
            continue
        if wanted and d.dead_letter_id not in wanted:
            continue
        if reason and reason not in d.reasons:
            continue
        if source and d.source_topic != source:
            continue
        seen.add(d.dead_letter_id)
        out.append(d)
    return out


def reasons_table(letters: list[DeadLetter], resent: set[str]) -> str:
    by_reason = Counter(d.reason for d in letters)
    lines = [f"{'reason':28s} {'dead letters':>12s} {'re-sent':>8s}"]
    for reason, n in by_reason.most_common():
        done = sum(1 for d in letters if d.reason == reason and d.dead_letter_id in resent)
        lines.append(f"{reason:28s} {n:12d} {done:8d}")
    return "\n".join(lines)


def rows_table(letters: list[DeadLetter], resent: set[str], show_original: bool) -> str:
    lines = [f"{'dead letter id':36s} {'reasons':30s} {'received':24s} {'bytes':>6s} re-sent"]
    for d in letters:
        lines.append(f"{d.dead_letter_id:36s} {','.join(d.reasons)[:30]:30s} {str(d.received_at):24s} "
                     f"{len(d.original):6d} {'yes' if d.dead_letter_id in resent else 'no'}")
        if show_original:
            lines.append("    " + d.original.decode("utf-8", "replace")[:2000])
    return "\n".join(lines)


def load_edits(path: Path) -> dict[str, bytes]:
    """``--edit`` file: JSON Lines ``{"dead_letter_id": ..., "value": <the fixed event>}``."""
    edits: dict[str, bytes] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
            edits[str(row["dead_letter_id"])] = orjson.dumps(row["value"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: expected {{\"dead_letter_id\": ..., \"value\": {{...}}}} ({exc})") from None
    return edits


# -- Kafka ----------------------------------------------------------------------------------------
def read_dead_letters(settings: Settings) -> list[DeadLetter]:
    from .summary import read_topic

    out = []
    for _, value in read_topic(settings, settings.topics.deadletter):
        try:
            out.append(DeadLetter.of(orjson.loads(value)))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue  # not one of ours
    return out


def read_resent(settings: Settings) -> tuple[set[str], dict[str, dict[str, Any]]]:
    """Dead-letter ids marked ``done``, and the ``sending`` markers (id -> marker) of a killed run."""
    from .summary import read_topic
    from .topics import TopicSpec, ensure_topics

    ensure_topics(settings, [TopicSpec(resent_topic(settings), 1, {"cleanup.policy": "compact"})])
    latest: dict[str, dict[str, Any]] = {}
    for key, value in read_topic(settings, resent_topic(settings)):
        if key and value:
            latest[key.decode()] = orjson.loads(value)
    done = {k for k, m in latest.items() if m.get("state", "done") == "done"}
    return done, {k: m for k, m in latest.items() if k not in done}


def landed(settings: Settings, sending: dict[str, dict[str, Any]]) -> set[str]:
    """Which ``sending`` dead letters are in their source topic past the offsets their marker recorded."""
    from kafka import TopicPartition

    from .kafka_security import consumer as make_consumer

    since: dict[TopicPartition, int] = {}
    for marker in sending.values():
        for p, off in (marker.get("since") or {}).items():
            tp = TopicPartition(marker["to"], int(p))
            since[tp] = min(since.get(tp, off), off)
    if not since:
        return set()
    found: set[str] = set()
    consumer = make_consumer(settings, enable_auto_commit=False, isolation_level="read_committed")
    try:
        consumer.assign(list(since))
        for tp, off in since.items():
            consumer.seek(tp, off)
        ends = consumer.end_offsets(list(since))
        remaining = {tp for tp in since if ends[tp] > since[tp]}
        while remaining:
            for tp, records in consumer.poll(timeout_ms=500, max_records=5000).items():
                for r in records:
                    found.update(v.decode() for k, v in (r.headers or ()) if k == "dead_letter_id")
            remaining = {tp for tp in remaining if consumer.position(tp) < ends[tp]}
    finally:
        consumer.close()
    return found & set(sending)


def mark_done(settings: Settings, markers: dict[str, dict[str, Any]]) -> None:
    """``done`` markers for ``sending`` ones whose re-send was found (:func:`landed`)."""
    from .producers.publish import make_producer

    producer = make_producer(settings)
    try:
        for dead_id, marker in markers.items():
            done = {**marker, "state": "done"}
            done.pop("since", None)
            producer.send(resent_topic(settings), key=dead_id.encode(), value=orjson.dumps(done))
        producer.flush()
    finally:
        producer.close()


def _markers(producer: Any, settings: Settings, letters: list[DeadLetter], state: str, extra: dict[str, Any]) -> None:
    for d in letters:
        marker = {"dead_letter_id": d.dead_letter_id, "state": state, "to": d.source_topic, **extra}
        producer.send(resent_topic(settings), key=d.dead_letter_id.encode(), value=orjson.dumps(marker))
    producer.flush()


def resend(settings: Settings, letters: list[DeadLetter], edits: dict[str, bytes], now: str) -> int:
    """Mark ``sending`` (with the source topics' end offsets), re-send (acknowledged), mark ``done``;
    returns how many were sent."""
    from .producers.publish import PublishError, make_producer
    from .runtime import end_offsets

    ends = end_offsets(settings, sorted({d.source_topic for d in letters}))
    producer = make_producer(settings)
    try:
        for topic in {d.source_topic for d in letters}:
            since = {str(p): off for (t, p), off in ends.items() if t == topic}
            _markers(producer, settings, [d for d in letters if d.source_topic == topic], "sending",
                     {"since": since, "at": now})
        futures = [producer.send(d.source_topic, key=d.key, value=edits.get(d.dead_letter_id, d.original),
                                 headers=[("dead_letter_id", d.dead_letter_id.encode())]) for d in letters]
        producer.flush()
        failed = [f.exception for f in futures if f.failed()]
        if failed:
            raise PublishError(f"{len(failed)} re-send(s) failed, first: {failed[0]!r}; run the command again")
        for d in letters:
            _markers(producer, settings, [d], "done", {"at": now, "edited": d.dead_letter_id in edits})
    finally:
        producer.close()
    return len(letters)
