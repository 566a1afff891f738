"""Stage 1: pre-aggregate a batch of enriched events into partial counts.

:func:`partials_from` turns the enriched events one per-customer agent handled
in a batch into one *partial* per ``"dimension=value"`` key (see
:mod:`pipeline.aggregate.dimensions`); the agent sends each partial to the
repartition topic keyed by that string, where stage 2
(:mod:`pipeline.aggregate.state`) merges them.  Pre-aggregating first means a
batch of N events produces at most one record per touched key, not N × 8.

Partial format (JSON-serialisable)::

    {"dimension": "tier", "value": "key",
     "max_event_time": 1710842399.0,          # max occurred_at (epoch s) counted
     "windows": {
       "1h:1710838800": {                     # "<window name>:<start>"
         "size": 3600, "start": 1710838800,
         "events": 7,            # every enriched event counted here
         "orders": 3,            # order events of type "placed" (rate denominator)
         "feedback": 4,          # feedback + complaint events
         "complaints": 1,        # complaint events (a subset of feedback)
         "negative_feedback": 2, # feedback/complaints with sentiment label "negative"
         "pain": {"delivery": 2},               # events carrying the pain point
         "evidence": {"delivery": ["evt-1", "evt-9"]}}}}   # first ids, <= 5 each

Counting rules:

* an event counts once per window spec and once per ``(dimension, value)`` it
  belongs to, at its ``occurred_at`` (event time, UTC);
* a pain point counts when its ``confidence >= min_confidence`` (default 0.5,
  ``PIPELINE_AGGREGATE_MIN_CONFIDENCE``), at most once per event even if listed
  twice; pain points of every kind of event count (e.g. the structured
  ``delivery`` pain point of a late ``delivered`` order);
* a repeated ``event_id`` within the batch counts once; events without a
  parseable ``occurred_at`` are skipped and counted in
  :attr:`PartialsBuilder.skipped`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Callable

from pipeline.core.timeparse import parse_timestamp

from .dimensions import dimensions_of, group_key
from .windows import WindowSpec, window_key, window_start

DEFAULT_MIN_CONFIDENCE = 0.5
EVIDENCE_LIMIT = 5
COUNTERS: tuple[str, ...] = ("events", "orders", "feedback", "complaints", "negative_feedback")

Partial = dict[str, Any]
Bucket = dict[str, Any]


def min_confidence_from_env(env: Mapping[str, str] | None = None) -> float:
    """``PIPELINE_AGGREGATE_MIN_CONFIDENCE`` (default 0.5)."""
    env = {} if env is None else env  # the environment only when given (pipeline.stage_settings)
    return float(env.get("PIPELINE_AGGREGATE_MIN_CONFIDENCE") or DEFAULT_MIN_CONFIDENCE)


def new_bucket(size: int, start: int) -> Bucket:
    """An empty window bucket ``[start, start + size)``."""
    bucket: Bucket = {"size": int(size), "start": int(start)}
    bucket.update({name: 0 for name in COUNTERS})
    bucket["pain"] = {}
    bucket["evidence"] = {}
    return bucket


def merge_bucket(into: Bucket, other: Mapping[str, Any], evidence_limit: int = EVIDENCE_LIMIT) -> Bucket:
    """Add the counts of ``other`` to ``into`` (in place) and return ``into``.

    Evidence lists are concatenated without duplicates, keeping the first
    ``evidence_limit`` ids.
    """
    for name in COUNTERS:
        into[name] = into.get(name, 0) + int(other.get(name, 0))
    pain = into.setdefault("pain", {})
    for pid, n in (other.get("pain") or {}).items():
        pain[pid] = pain.get(pid, 0) + int(n)
    evidence = into.setdefault("evidence", {})
    for pid, ids in (other.get("evidence") or {}).items():
        kept = evidence.setdefault(pid, [])
        for eid in ids:
            if len(kept) >= evidence_limit:
                break
            if eid not in kept:
                kept.append(eid)
    return into


def _contribution(enriched: Mapping[str, Any]) -> dict[str, int]:
    """The counters (:data:`COUNTERS`) one event adds to each of its buckets."""
    kind = enriched.get("kind")
    event = enriched.get("event") if isinstance(enriched.get("event"), Mapping) else {}
    classification = enriched.get("classification") or {}
    is_feedback = kind in ("feedback", "complaint")
    sentiment = (classification.get("sentiment") or {}).get("label")
    return {
        "events": 1,
        "orders": int(kind == "order" and event.get("type") == "placed"),
        "feedback": int(is_feedback),
        "complaints": int(kind == "complaint"),
        "negative_feedback": int(is_feedback and sentiment == "negative"),
    }


def _pain_ids(enriched: Mapping[str, Any], min_confidence: float) -> list[str]:
    """Distinct pain-point ids with ``confidence >= min_confidence``, in listed order."""
    classification = enriched.get("classification") or {}
    out: list[str] = []
    for pp in classification.get("pain_points") or ():
        if not isinstance(pp, Mapping):
            continue
        pid, conf = pp.get("id"), pp.get("confidence")
        if isinstance(pid, str) and pid and isinstance(conf, (int, float)) and conf >= min_confidence:
            if pid not in out:
                out.append(pid)
    return out


class PartialsBuilder:
    """Accumulates enriched events into partials; :meth:`partials` returns them.

    Use one builder per batch (e.g. per ``stream.take(...)`` chunk).
    """

    def __init__(self, windows: Iterable[WindowSpec], min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> None:
        self.windows = list(windows)
        self.min_confidence = float(min_confidence)
        self.skipped = 0  # events without a parseable occurred_at
        self.duplicates = 0  # repeated event_id within this builder
        self._seen: set[str] = set()
        self._partials: dict[str, Partial] = {}

    def add(self, enriched: Mapping[str, Any], accept: Callable[[str], bool] | None = None) -> bool:
        """Count one enriched event; ``False`` if it was skipped or a duplicate.

        ``accept(key)`` (optional) says whether the event still counts for the
        ``"dimension=value"`` key ``key`` (``False``: already counted before a restart).
        """
        try:
            t = parse_timestamp(str(enriched["occurred_at"]))
        except (KeyError, TypeError, ValueError):
            self.skipped += 1
            return False
        event_id = enriched.get("event_id")
        if isinstance(event_id, str):
            if event_id in self._seen:
                self.duplicates += 1
                return False
            self._seen.add(event_id)
        counts = [(name, n) for name, n in _contribution(enriched).items() if n]  # zeros add nothing
        pains = _pain_ids(enriched, self.min_confidence)
        # the event's window per spec depends on its time only: computed once, not per dimension
        windows = [(spec.size_seconds, start, window_key(spec.name, start))
                   for spec in self.windows for start in (window_start(t, spec.size_seconds),)]
        for dimension, value in dimensions_of(enriched):
            key = group_key(dimension, value)
            if accept is not None and not accept(key):
                continue
            partial = self._partials.get(key)
            if partial is None:
                partial = {"dimension": dimension, "value": value, "windows": {}, "max_event_time": t}
                self._partials[key] = partial
            elif t > partial["max_event_time"]:
                partial["max_event_time"] = t
            buckets = partial["windows"]
            for size, start, wkey in windows:
                bucket = buckets.get(wkey)
                if bucket is None:
                    bucket = buckets[wkey] = new_bucket(size, start)
                for name, n in counts:
                    bucket[name] += n
                for pid in pains:
                    bucket["pain"][pid] = bucket["pain"].get(pid, 0) + 1
                    ids = bucket["evidence"].setdefault(pid, [])
                    if isinstance(event_id, str) and len(ids) < EVIDENCE_LIMIT:
                        ids.append(event_id)
        return True

    def partials(self) -> dict[str, Partial]:
        """``{"dimension=value": partial}`` accumulated so far."""
        return self._partials


def partials_from(
    events: Iterable[Mapping[str, Any]],
    windows: Iterable[WindowSpec],
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> dict[str, Partial]:
    """Pre-aggregate ``events`` (enriched-event dicts) into ``{"dimension=value": partial}``.

    See the module docstring for the partial format and counting rules.
    """
    builder = PartialsBuilder(windows, min_confidence)
    for enriched in events:
        builder.add(enriched)
    return builder.partials()
