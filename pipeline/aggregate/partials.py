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

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
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
    bucket: Bucket = dict(_EMPTY_BUCKET)
    bucket["size"], bucket["start"] = int(size), int(start)
    bucket["pain"], bucket["evidence"] = {}, {}
    return bucket


# key order as before: size, start, the counters, pain, evidence (the encoded partial is unchanged)
_EMPTY_BUCKET: dict[str, Any] = {"size": 0, "start": 0, **{name: 0 for name in COUNTERS}, "pain": None,
                                 "evidence": None}


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
        keep_first(evidence.setdefault(pid, []), ids, evidence_limit)
    return into


def keep_first(kept: list[Any], ids: Iterable[Any], limit: int = EVIDENCE_LIMIT) -> list[Any]:
    """Append to ``kept`` the ids of ``ids`` it does not hold yet, in order, until it holds ``limit``."""
    for eid in ids:
        if len(kept) >= limit:
            break
        if eid not in kept:
            kept.append(eid)
    return kept


def event_time(value: Any) -> float:
    """``parse_timestamp(str(value))``: the epoch seconds of an enriched event's ``occurred_at``.

    The enriched event's own form, ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (:func:`~pipeline.core.timeparse.format_timestamp`),
    is read from its two halves, the hour and the rest, each checked and converted once and remembered
    (a batch's events share few hours; the rest repeats every hour): the same float, since both take
    the whole microseconds divided by 10**6.  Any other value is parsed by ``parse_timestamp``.
    """
    if type(value) is str and len(value) == 24:
        hour, rest = _HOUR_US.get(value[:13]), _REST_US.get(value[13:])
        if hour is None:
            hour = _hour_us(value[:13])
        if rest is None:
            rest = _rest_us(value[13:])
        if hour is not None and rest is not None:
            return (hour + rest) / 1_000_000
    return parse_timestamp(str(value))


_HOUR = re.compile(r"\d{4}-\d\d-\d\dT(?:[01]\d|2[0-3])", re.ASCII)  # hours past 23 are left to parse_timestamp
_REST = re.compile(r":([0-5]\d):([0-5]\d)\.(\d{3})Z", re.ASCII)
_HOUR_US: dict[str, int] = {}  # "YYYY-MM-DDTHH" -> its epoch microseconds; cleared when full
_REST_US: dict[str, int] = {}  # ":MM:SS.mmmZ" -> microseconds into the hour; cleared when full
_REMEMBERED = 8192
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _hour_us(hour: str) -> int | None:
    """Epoch microseconds of ``"YYYY-MM-DDTHH"`` (UTC), remembered; ``None`` if not of that form or no such date."""
    if _HOUR.fullmatch(hour) is None:
        return None
    try:
        value = (datetime.fromisoformat(hour + ":00:00+00:00") - _EPOCH) // timedelta(microseconds=1)
    except ValueError:
        return None
    if len(_HOUR_US) >= _REMEMBERED:
        _HOUR_US.clear()
    _HOUR_US[hour] = value
    return value


def _rest_us(rest: str) -> int | None:
    """Microseconds into the hour of ``":MM:SS.mmmZ"``, remembered; ``None`` if not of that form."""
    m = _REST.fullmatch(rest)
    if m is None:
        return None
    if len(_REST_US) >= _REMEMBERED:
        _REST_US.clear()
    value = _REST_US[rest] = (int(m[1]) * 60 + int(m[2])) * 1_000_000 + int(m[3]) * 1000
    return value


def _contribution(enriched: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
    """The counters (:data:`COUNTERS`) one event adds to each of its buckets besides ``events`` (which
    every event adds 1 to), zeros left out."""
    kind = enriched.get("kind")
    event = enriched.get("event")
    classification = enriched.get("classification") or {}
    sentiment = (classification.get("sentiment") or {}).get("label")
    if kind == "order":
        placed = (type(event) is dict or isinstance(event, Mapping)) and event.get("type") == "placed"
        return _PLACED_ORDER if placed else _ANY_EVENT
    if kind in ("feedback", "complaint"):
        return _FEEDBACK[(kind == "complaint", sentiment == "negative")]
    return _ANY_EVENT


# the few counter combinations an event can add besides events (shared tuples: they key PartialsBuilder's
# fresh buckets); most events add none
_ANY_EVENT: tuple[tuple[str, int], ...] = ()
_PLACED_ORDER = (("orders", 1),)
_FEEDBACK = {
    (complaint, negative): (("feedback", 1),)
    + ((("complaints", 1),) if complaint else ()) + ((("negative_feedback", 1),) if negative else ())
    for complaint in (False, True) for negative in (False, True)
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


def _add_pains(bucket: Bucket, pains: list[str], event_id: str | None) -> None:
    """Count ``pains`` in ``bucket``, with ``event_id`` as evidence while there is room."""
    pain, evidence = bucket["pain"], bucket["evidence"]
    for pid in pains:
        pain[pid] = pain.get(pid, 0) + 1
        ids = evidence.setdefault(pid, [])
        if event_id is not None and len(ids) < EVIDENCE_LIMIT:
            ids.append(event_id)


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
        # the same partials by (dimension, value): found without building the key string per event
        self._by_pair: dict[tuple[str, str], Partial] = {}
        # (spec index, window start, counts) -> (window key, the bucket an event with those counts starts)
        self._fresh_buckets: dict[tuple[int, int, tuple[tuple[str, int], ...]], tuple[str, Bucket]] = {}

    def add(self, enriched: Mapping[str, Any], accept: Callable[[str], bool] | None = None) -> bool:
        """Count one enriched event; ``False`` if it was skipped or a duplicate.

        ``accept(key)`` (optional) says whether the event still counts for the
        ``"dimension=value"`` key ``key`` (``False``: already counted before a restart).
        """
        try:
            t = event_time(enriched["occurred_at"])
        except (KeyError, TypeError, ValueError):
            self.skipped += 1
            return False
        event_id = enriched.get("event_id")
        if isinstance(event_id, str):
            if event_id in self._seen:
                self.duplicates += 1
                return False
            self._seen.add(event_id)
        counts = _contribution(enriched)
        pains = _pain_ids(enriched, self.min_confidence)
        evidence_id = event_id if isinstance(event_id, str) else None
        fresh = self._fresh(t, counts)
        by_pair = self._by_pair
        for pair in dimensions_of(enriched):
            if accept is not None and not accept(group_key(*pair)):
                continue
            partial = by_pair.get(pair)
            if partial is None:
                dimension, value = pair
                partial = by_pair[pair] = self._partials[group_key(dimension, value)] = {
                    "dimension": dimension, "value": value, "windows": {}, "max_event_time": t}
            elif t > partial["max_event_time"]:
                partial["max_event_time"] = t
            buckets = partial["windows"]
            for wkey, first in fresh:
                bucket = buckets.get(wkey)
                if bucket is None:
                    bucket = buckets[wkey] = first.copy()
                    bucket["pain"], bucket["evidence"] = {}, {}
                else:
                    bucket["events"] += 1
                    for name, n in counts:
                        bucket[name] += n
                if pains:
                    _add_pains(bucket, pains, evidence_id)
        return True

    def _fresh(self, t: float, counts: tuple[tuple[str, int], ...]) -> list[tuple[str, Bucket]]:
        """Per window spec: the key of the window holding event time ``t``, and the bucket the event
        makes where it is the first of that window (never changed: each dimension takes a copy with
        ``pain`` and ``evidence`` of its own).  Remembered per window and counts for the batch."""
        fresh: list[tuple[str, Bucket]] = []
        known = self._fresh_buckets
        for i, spec in enumerate(self.windows):
            start = window_start(t, spec.size_seconds)
            entry = known.get((i, start, counts))
            if entry is None:
                first = new_bucket(spec.size_seconds, start)
                first["events"] = 1
                for name, n in counts:
                    first[name] = n
                entry = known[(i, start, counts)] = (window_key(spec.name, start), first)
            fresh.append(entry)
        return fresh

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
