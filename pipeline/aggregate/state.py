"""Stage 2: per ``"dimension=value"`` window state, watermark, closing, live queries.

The aggregate agent owns a table keyed by ``"dimension=value"``; each value is
a JSON-serialisable *state* dict made by :func:`new_state` and changed only by
the functions here (they mutate the dict in place and also return it)::

    {"dimension": "tier", "value": "key",
     "max_event_time": 1710842399.0,   # max event time merged into this key
     "watermark": 1710842099.0,        # highest watermark this key has seen
     "windows": {"1h:1710838800": {<bucket, see partials>, "closed": False, "late_events": 0}},
     "surge": {...}}                   # owned by pipeline.aggregate.surge

Window semantics
----------------
* Windows are tumbling, epoch-aligned, half-open ``[start, end)`` in event time
  (:mod:`pipeline.aggregate.windows`).
* **Watermark.** Per partition of the repartition topic: the maximum event
  time seen on that partition minus a grace period (:class:`Watermark`;
  default 300 s, ``PIPELINE_WATERMARK_GRACE_SECONDS``).  It never moves back.
  Each key also remembers the highest watermark it was given
  (``state["watermark"]``) and the functions use the maximum of the two, so a
  worker that restarts with a fresh in-memory :class:`Watermark` cannot reopen
  or re-emit anything: the state (restored from the table's changelog) holds
  it.
* A window is **closeable** when ``end <= watermark``.  :func:`close_windows`
  marks it closed and emits its final records — exactly once, because the
  ``closed`` flag lives in the state (closing twice emits nothing).
* **Retention.** A closed window stays *held* (queryable, receives late
  counts) until ``end + retention × size <= watermark`` (default 24 windows of
  its own size: 24 h for ``1h``, 24 days for ``1d``; ``PIPELINE_WINDOW_RETENTION``),
  then it is purged.
* **Late data.** A partial whose window end is ``<= watermark`` on arrival is
  late.  If the window is still held (or was never seen by this key but is
  within retention) its counts are added and reported in ``Late.held``; when
  the window had already been closed its final record does not include them
  (reported in ``Late.after_close`` — finals are never re-emitted), and a
  window never seen before is emitted at the next close.  A window beyond
  retention is not kept: its events are reported in ``Late.dropped`` (and the
  window keys in ``Late.dropped_windows``) — never silently lost.  A partial
  for an open window (``end > watermark``), however old its events, is simply
  counted: that is what the grace period is for.

Final records (one per window, dimension, value and pain point; ``pain_point``
``None`` with ``count`` 0 when the window had no pain point) — see
:func:`final_records`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.timeparse import format_timestamp

from .partials import COUNTERS, EVIDENCE_LIMIT, Bucket, keep_first, merge_bucket
from .windows import parse_window_key

DEFAULT_GRACE_SECONDS = 300.0
DEFAULT_RETENTION_WINDOWS = 24

State = dict[str, Any]
Final = dict[str, Any]


def grace_from_env(env: Mapping[str, str] | None = None) -> float:
    """``PIPELINE_WATERMARK_GRACE_SECONDS`` (default 300)."""
    env = {} if env is None else env  # the environment only when given (pipeline.stage_settings)
    return float(env.get("PIPELINE_WATERMARK_GRACE_SECONDS") or DEFAULT_GRACE_SECONDS)


def retention_from_env(env: Mapping[str, str] | None = None) -> int:
    """``PIPELINE_WINDOW_RETENTION`` — windows of its size a closed window is held (default 24)."""
    env = {} if env is None else env  # the environment only when given (pipeline.stage_settings)
    return int(env.get("PIPELINE_WINDOW_RETENTION") or DEFAULT_RETENTION_WINDOWS)


@dataclass
class Watermark:
    """Event-time watermark of one partition: ``max event time seen − grace``.

    ``value`` is ``None`` until something was observed.  Monotone: observing
    an older time never lowers it.  Plain data (:meth:`to_dict` /
    :meth:`from_dict`) in case the caller wants to persist it; keeping it in
    memory only is safe (see the module docstring), it merely delays closing
    after a restart until new data arrives.
    """

    grace_seconds: float = DEFAULT_GRACE_SECONDS
    max_event_time: float | None = None

    def observe(self, event_time: float | None) -> float | None:
        """Advance with an event time (e.g. a partial's ``max_event_time``); return :attr:`value`."""
        if event_time is not None and (self.max_event_time is None or event_time > self.max_event_time):
            self.max_event_time = float(event_time)
        return self.value

    @property
    def value(self) -> float | None:
        return None if self.max_event_time is None else self.max_event_time - self.grace_seconds

    def to_dict(self) -> dict[str, float | None]:
        return {"grace_seconds": self.grace_seconds, "max_event_time": self.max_event_time}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Watermark":
        return cls(float(data.get("grace_seconds", DEFAULT_GRACE_SECONDS)), data.get("max_event_time"))


@dataclass(frozen=True)
class Late:
    """Late data found by one :func:`merge_partial` call.

    Counts are events *of this key*: an event late at the partition is late once
    for each of its ``dimension=value`` keys, so label the metric by dimension
    (or count only ``all=all`` for an event total).
    """

    held: int = 0  # arrived after their window's end passed the watermark; added (window held)
    after_close: int = 0  # of ``held``: added to a window already closed (not in its final record)
    dropped: int = 0  # their window was beyond retention: not added (count them in a metric!)
    dropped_windows: tuple[str, ...] = field(default_factory=tuple)  # "<name>:<start>" of those


def working_copy(state: Mapping[str, Any]) -> State:
    """A copy of a stored state that the functions here may update without changing ``state``: the
    top level and the ``windows`` and ``seen`` maps are copied; a window is copied when it is
    changed (:func:`merge_partial`, :func:`close_windows`) and the surge state when finals update
    it (:func:`~pipeline.aggregate.surge.process_finals`).  A deep copy of every window on each
    first use in a batch was a third of stage 2's time (issue 17)."""
    out = dict(state)
    for name in ("windows", "seen"):
        if isinstance(out.get(name), dict):
            out[name] = dict(out[name])
    return out


def _own_bucket(bucket: Mapping[str, Any]) -> Bucket:
    """A window bucket that can be merged into without changing ``bucket``."""
    out = dict(bucket)
    if isinstance(out.get("pain"), dict):
        out["pain"] = dict(out["pain"])
    if isinstance(out.get("evidence"), dict):
        out["evidence"] = {pid: list(ids) for pid, ids in out["evidence"].items()}
    return out


def new_state(dimension: str, value: str) -> State:
    """An empty state for ``dimension=value``."""
    return {"dimension": dimension, "value": value, "max_event_time": None, "watermark": None, "windows": {}}


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def effective_watermark(state: Mapping[str, Any], watermark: float | None) -> float | None:
    """``max(watermark, state["watermark"])`` (``None`` if neither is known)."""
    return _max(watermark, state.get("watermark"))


def merge_partial(
    state: State,
    partial: Mapping[str, Any],
    watermark_grace_seconds: float = DEFAULT_GRACE_SECONDS,
    now_watermark: float | None = None,
    *,
    retention_windows: int = DEFAULT_RETENTION_WINDOWS,
) -> tuple[State, Late]:
    """Add a stage-1 partial's window counts to ``state``; return ``(state, late)``.

    ``now_watermark`` is the partition's watermark *before* this partial is
    observed (:attr:`Watermark.value`).  When it is ``None`` the key's own
    ``max_event_time − watermark_grace_seconds`` stands in (a watermark that
    is never ahead of the partition's).  Either way ``state["watermark"]`` is
    a floor.  The caller then advances its :class:`Watermark` with
    ``partial["max_event_time"]`` and calls :func:`close_windows`.
    """
    local = state.get("max_event_time")
    own = None if local is None else local - watermark_grace_seconds
    wm = effective_watermark(state, now_watermark if now_watermark is not None else own)
    held = after_close = dropped = 0
    dropped_windows: list[str] = []
    windows = state.setdefault("windows", {})
    for wkey, bucket in (partial.get("windows") or {}).items():
        size, start = int(bucket["size"]), int(bucket["start"])
        end = start + size
        n = int(bucket.get("events", 0))
        late = wm is not None and end <= wm
        if late and end + retention_windows * size <= wm:
            dropped += n
            dropped_windows.append(wkey)
            continue
        held_window = windows.get(wkey)
        if held_window is None:
            held_window = windows[wkey] = _new_window(size, start, bucket)
        else:
            held_window = windows[wkey] = _own_bucket(held_window)  # a stored window is never changed
            merge_bucket(held_window, bucket, EVIDENCE_LIMIT)
        if late:
            held += n
            held_window["late_events"] = held_window.get("late_events", 0) + n
            if held_window.get("closed"):
                after_close += n
    state["max_event_time"] = _max(local, partial.get("max_event_time"))
    if not (held or dropped or dropped_windows):  # the common case: one shared (frozen) Late
        return state, _NOT_LATE
    return state, Late(held, after_close, dropped, tuple(dropped_windows))


_NOT_LATE = Late()


def _new_window(size: int, start: int, bucket: Mapping[str, Any]) -> Bucket:
    """``merge_bucket(new_bucket(size, start) + closed/late_events, bucket)`` built in one go (most
    partials open windows the key has not seen yet): same values, same key order."""
    window: Bucket = {"size": size, "start": start}
    get = bucket.get
    for name in COUNTERS:
        n = get(name, 0)
        window[name] = n if type(n) is int else int(n)  # int(n) of an int is n: skip the call
    pain = get("pain") or {}
    window["pain"] = {pid: int(n) for pid, n in pain.items()} if pain else {}
    evidence = get("evidence") or {}
    window["evidence"] = {pid: keep_first([], ids) for pid, ids in evidence.items()} if evidence else {}
    window["closed"], window["late_events"] = False, 0
    return window


def _ratio(numerator: int, denominator: int, scale: float = 1.0) -> float | None:
    return None if denominator <= 0 else round(numerator / denominator * scale, 4)


def final_records(state: Mapping[str, Any], wkey: str, bucket: Mapping[str, Any]) -> list[Final]:
    """The records describing one window of ``state`` (without closing it).

    One per pain point (sorted by count desc, then id), or a single record with
    ``pain_point`` ``None`` and ``count`` 0 when there is none.  Fields::

        record_id            "<window>:<start epoch>:<dimension>=<value>:<pain_point or ->"
        window, window_size_seconds, window_start, window_end (RFC 3339 UTC, Z; end exclusive)
        dimension, value, pain_point, count
        events, orders, feedback, complaints, negative_feedback, late_events
        rate_per_100_orders  100 × count / orders               (null if orders == 0)
        rate_per_100_events  100 × count / max(1, orders + feedback)   (the surge rate)
        share_of_feedback    count / feedback                   (null if feedback == 0; pain
                             points of order events count too, so it can exceed 1)
        negative_share       negative_feedback / feedback       (null if feedback == 0)
        evidence             up to 5 event ids carrying the pain point
    """
    name, start = parse_window_key(wkey)
    size = int(bucket["size"])
    orders, feedback = int(bucket.get("orders", 0)), int(bucket.get("feedback", 0))
    dimension, value = state["dimension"], state["value"]
    base = {
        "window": name,
        "window_size_seconds": size,
        "window_start": format_timestamp(start),
        "window_end": format_timestamp(start + size),
        "dimension": dimension,
        "value": value,
        "events": int(bucket.get("events", 0)),
        "orders": orders,
        "feedback": feedback,
        "complaints": int(bucket.get("complaints", 0)),
        "negative_feedback": int(bucket.get("negative_feedback", 0)),
        "late_events": int(bucket.get("late_events", 0)),
        "negative_share": _ratio(int(bucket.get("negative_feedback", 0)), feedback),
    }
    pain: Mapping[str, int] = bucket.get("pain") or {}
    ranked: list[tuple[str | None, int]] = sorted(pain.items(), key=lambda kv: (-kv[1], kv[0])) or [(None, 0)]
    out = []
    for pid, count in ranked:
        rec = dict(base)
        rec.update(
            record_id=f"{name}:{start}:{dimension}={value}:{pid or '-'}",
            pain_point=pid,
            count=int(count),
            rate_per_100_orders=_ratio(count, orders, 100.0),
            rate_per_100_events=round(100.0 * count / max(1, orders + feedback), 4),
            share_of_feedback=_ratio(count, feedback),
            evidence=list((bucket.get("evidence") or {}).get(pid, [])) if pid else [],
        )
        out.append(rec)
    return out


def close_windows(
    state: State,
    watermark: float | None,
    *,
    retention_windows: int = DEFAULT_RETENTION_WINDOWS,
) -> tuple[State, list[Final]]:
    """Close every open window with ``end <= watermark``; return ``(state, finals)``.

    Finals come in window-end order (then window name), each window's records
    as :func:`final_records`.  A window is emitted once: it is flagged closed
    in the state, so calling again (any watermark) emits nothing new.  Closed
    windows with ``end + retention_windows × size <= watermark`` are purged.
    ``state["watermark"]`` becomes ``max(state["watermark"], watermark)``.
    """
    wm = effective_watermark(state, watermark)
    if wm is None:
        return state, []
    state["watermark"] = wm
    windows = state.setdefault("windows", {})
    finals: list[Final] = []
    due = sorted(
        (bucket["start"] + bucket["size"], wkey)
        for wkey, bucket in windows.items()
        if not bucket.get("closed") and bucket["start"] + bucket["size"] <= wm
    )
    for _, wkey in due:
        windows[wkey] = {**windows[wkey], "closed": True}  # a stored window is never changed
        finals.extend(final_records(state, wkey, windows[wkey]))
    for wkey in [k for k, b in windows.items() if b.get("closed") and b["start"] + b["size"] * (1 + retention_windows) <= wm]:
        del windows[wkey]
    return state, finals


def next_close_time(state: Mapping[str, Any]) -> float | None:
    """Smallest end among open windows: the watermark at which :func:`close_windows` will emit.

    Lets a periodic timer skip keys with nothing to close.
    """
    ends = [b["start"] + b["size"] for b in (state.get("windows") or {}).values() if not b.get("closed")]
    return min(ends) if ends else None


def _window_summary(state: Mapping[str, Any], wkey: str, bucket: Mapping[str, Any]) -> dict[str, Any]:
    records = final_records(state, wkey, bucket)
    totals = {k: records[0][k] for k in (
        "window", "window_start", "window_end", "events", "orders", "feedback", "complaints",
        "negative_feedback", "negative_share", "late_events")}
    totals["closed"] = bool(bucket.get("closed"))
    rows = [
        {k: r[k] for k in ("pain_point", "count", "rate_per_100_orders", "rate_per_100_events",
                           "share_of_feedback", "evidence")}
        for r in records if r["pain_point"] is not None
    ]
    return {"totals": totals, "rows": rows}


def top_pain_points(state: Mapping[str, Any], window_name: str, now_watermark: float | None = None) -> dict[str, Any]:
    """Top pain points of ``state`` in its current and last closed ``window_name`` windows.

    *current* = the latest held window of that name with ``end > watermark``
    (still open); *last_closed* = the latest with ``end <= watermark`` (closed,
    or due to close).  ``watermark = max(now_watermark, state["watermark"])``;
    with no watermark at all every window counts as open.  Rows are sorted by
    count desc (then id) and carry the rates of :func:`final_records`; the
    window totals (orders, feedback, …) are under ``current_window`` /
    ``last_closed_window`` (``None`` if there is no such window)::

        {"dimension", "value", "window", "watermark",
         "current": [{pain_point, count, rate_per_100_orders, rate_per_100_events,
                      share_of_feedback, evidence}, ...],
         "current_window": {...totals...} | None,
         "last_closed": [...], "last_closed_window": {...} | None}
    """
    wm = effective_watermark(state, now_watermark)
    current = last_closed = None
    for wkey, bucket in (state.get("windows") or {}).items():
        name, start = parse_window_key(wkey)
        if name != window_name:
            continue
        is_closed = bool(bucket.get("closed")) or (wm is not None and start + bucket["size"] <= wm)
        if is_closed:
            if last_closed is None or start > last_closed[0]:
                last_closed = (start, wkey, bucket)
        elif current is None or start > current[0]:
            current = (start, wkey, bucket)
    out: dict[str, Any] = {
        "dimension": state.get("dimension"),
        "value": state.get("value"),
        "window": window_name,
        "watermark": None if wm is None else format_timestamp(wm),
    }
    for label, found in (("current", current), ("last_closed", last_closed)):
        summary = _window_summary(state, found[1], found[2]) if found else None
        out[label] = summary["rows"] if summary else []
        out[f"{label}_window"] = summary["totals"] if summary else None
    return out


def already_merged(state: Mapping[str, Any], partial: Mapping[str, Any]) -> bool:
    """Whether ``partial`` is one ``state`` has merged already (re-read after a stage-2 restart).

    Stage 1 stamps each partial with its source partition (``"src"``) and the last
    input offset per topic it had processed (``"upto"``); those only grow, and
    stage 1 never puts an event into two partials of the same key
    (:mod:`pipeline.outputs.frontier`).  A partial whose ``upto`` is nowhere ahead
    of what the key has seen from that source is therefore a repeat.
    """
    upto, src = partial.get("upto"), partial.get("src")
    if src is None or not (type(upto) is dict or isinstance(upto, Mapping)):  # a plain dict: no ABC check
        return False
    seen = (state.get("seen") or {}).get(str(src))
    if not seen:
        return False
    for topic, off in upto.items():  # a loop, not all(generator): ~5 topics, called for every partial
        if int(off) > int(seen.get(topic, -1)):
            return False
    return True


def note_merged(state: State, partial: Mapping[str, Any]) -> None:
    """Remember ``partial``'s ``upto`` in ``state`` (see :func:`already_merged`)."""
    upto, src = partial.get("upto"), partial.get("src")
    if src is None or not (type(upto) is dict or isinstance(upto, Mapping)):
        return
    seen_all = state.setdefault("seen", {})
    name = str(src)
    seen = dict(seen_all.get(name) or {})
    for topic, off in upto.items():
        new, old = int(off), int(seen.get(topic, -1))
        seen[topic] = new if new >= old else old  # max(new, old) without the call
    seen_all[name] = seen
