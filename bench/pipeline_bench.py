"""End-to-end pipeline benchmark (issue 9): throughput, latency, CPU / RSS, raw-consumer baseline.

``make bench`` (or ``python bench/pipeline_bench.py [--events N] [--workers 1|2] [--profile]``):

1. starts a local Kafka (:class:`LocalKafka`, stopped at the end) unless ``--bootstrap`` /
   ``KAFKA_BOOTSTRAP_SERVERS`` names a cluster;
2. creates fresh topics (4 partitions) and pre-loads N simulated events (about 60 % orders,
   25 % feedback, 15 % complaints after one profile per customer; Korean and English texts
   from ``../shared/data``) with the project's own publisher;
3. **baseline**: a plain aiokafka consumer + producer in this process that only decodes and
   re-encodes the JSON of the same pre-loaded records into a sink topic (the ceiling for any
   Python pipeline on this broker and machine); then **the same work without Faust**
   (``bench/same_work.py``, :func:`over_kafka`): aiokafka feeding the records through the pure
   stage drivers, every output and table write produced and confirmed before each commit
   (``same_work_eps``; ``same_work_ratio`` and ``overhead_us_per_event`` in the JSON line);
4. **pipeline**: starts the worker(s) (:class:`WorkerProcess`), waits until the group caught up
   and measures the sustained rate from the Kafka timestamps of the enriched records
   (records written / span from the first to the last one, counted from the moment every
   worker reported ready);
5. **latency**: publishes for ``--paced-seconds`` (15) at 50 % of the measured rate and matches
   each input record (Kafka timestamp = produce time) with its enriched record (Kafka
   timestamp = written) by ``event_id``: p50 / p95 / p99;
6. CPU seconds (during the throughput phase, summed over workers) and peak RSS (VmHWM, max over
   workers) of the worker processes;
7. prints a human-readable table, then exactly one JSON line as the last line of stdout.

``--workers 2`` adds a second pre-load into a second namespace and a run with two workers
(1 vs 2 workers on 4 partitions); the JSON line then describes the 2-worker run and carries
``eps_by_workers``.  ``--profile`` records the (first) worker with py-spy during the
throughput phase and prints the top functions by own samples (it perturbs the figures: do not
compare a profiled run with an unprofiled one).

The pure helpers (:func:`percentile`, :func:`latency_summary`, :func:`sustained_rate`,
:func:`result_line`, :func:`top_frames`, /proc parsing) have unit tests in
``tests/unit/test_bench_harness.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULT_KEYS = ("pipeline_eps", "baseline_eps", "ratio", "p50_ms", "p95_ms", "p99_ms", "workers",
               "events", "cpu_s", "peak_rss_mb")


# --------------------------------------------------------------------------- pure helpers
def percentile(values: Sequence[float], q: float) -> float:
    """``q``-th percentile (0-100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError("q must be within [0, 100]")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float]:
    return {f"p{q}_ms": round(percentile(latencies_ms, q), 1) for q in (50, 95, 99)} | {
        "max_ms": round(max(latencies_ms), 1) if latencies_ms else math.nan, "matched": len(latencies_ms)}


def match_latencies(produced_ms: dict[str, int], written_ms: dict[str, int]) -> list[float]:
    """Latency per event id present in both maps (written - produced, ms)."""
    return [float(written_ms[k] - t) for k, t in produced_ms.items() if k in written_ms]


def sustained_rate(timestamps_ms: Iterable[int], since_ms: int | None = None) -> tuple[float, int, float]:
    """(records/s, records, seconds) over the records written at or after ``since_ms``.

    The window runs from the first counted record to the last one; the rate counts the records
    after the first (n - 1 intervals), so two records 1 s apart give 1 record/s.
    """
    ts = sorted(t for t in timestamps_ms if since_ms is None or t >= since_ms)
    if len(ts) < 2 or ts[-1] == ts[0]:
        return math.nan, len(ts), 0.0
    span = (ts[-1] - ts[0]) / 1000.0
    return (len(ts) - 1) / span, len(ts), span


def _num(x: float | None, nd: int = 1) -> float | None:
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return None
    return round(float(x), nd)


def result_line(*, pipeline_eps: float, baseline_eps: float, p50_ms: float, p95_ms: float, p99_ms: float,
                workers: int, events: int, cpu_s: float, peak_rss_mb: float, **extra: object) -> str:
    """The benchmark's one JSON line (fixed key order; NaN becomes null; extra keys after)."""
    ratio = pipeline_eps / baseline_eps if baseline_eps and not math.isnan(baseline_eps) else math.nan
    out: dict[str, object] = {
        "pipeline_eps": _num(pipeline_eps), "baseline_eps": _num(baseline_eps), "ratio": _num(ratio, 4),
        "p50_ms": _num(p50_ms), "p95_ms": _num(p95_ms), "p99_ms": _num(p99_ms), "workers": int(workers),
        "events": int(events), "cpu_s": _num(cpu_s, 2), "peak_rss_mb": _num(peak_rss_mb),
    }
    out.update(extra)
    return json.dumps(out, separators=(", ", ": "), allow_nan=False)


def same_work_fields(pipeline_eps: float, same_work_eps: float) -> dict[str, float | None]:
    """The framework's share (issue 17): ``same_work_ratio`` = pipeline / same-work rate (1 worker),
    ``overhead_us_per_event`` = 10^6 x (1/pipeline - 1/same-work): what the worker adds per event
    on top of its own work, the figure to compare with a peer framework's."""
    ok = all(x and not math.isnan(x) for x in (pipeline_eps, same_work_eps))
    return {"same_work_eps": _num(same_work_eps),
            "same_work_ratio": _num(pipeline_eps / same_work_eps, 3) if ok else None,
            "overhead_us_per_event": _num(1e6 * (1 / pipeline_eps - 1 / same_work_eps), 0) if ok else None}


def parse_proc_stat_cpu(stat_text: str, ticks: int) -> float:
    """utime + stime in seconds from the text of ``/proc/<pid>/stat`` (comm may contain spaces)."""
    fields = stat_text[stat_text.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime, stime are fields 14, 15
    return (int(fields[11]) + int(fields[12])) / ticks


def parse_vm_hwm_mb(status_text: str) -> float:
    """Peak resident set (VmHWM) in MiB from the text of ``/proc/<pid>/status``."""
    for line in status_text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return math.nan


ENTRY_FRAMES = ("pipeline/__main__.py", "pipeline/cli.py", "pipeline/runtime.py")


def is_project_frame(frame: str) -> bool:
    """A frame of the project's own code, not its entry points (which are on every stack)."""
    return "pipeline/" in frame and "site-packages" not in frame and not any(e in frame for e in ENTRY_FRAMES)


def top_frames(collapsed: Iterable[str], n: int = 10, keep=None) -> tuple[list[tuple[str, int, float]], list[tuple[str, int, float]], int]:
    """Top ``n`` frames of py-spy ``--format raw`` output (``f1;f2;leaf count`` lines).

    Returns (by own samples, by inclusive samples, total samples); each row is
    (frame, samples, percent of all samples).  A frame appearing several times in one
    stack counts once for the inclusive figure; ``keep(frame)`` filters the inclusive rows.
    """
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in collapsed:
        line = line.rstrip("\n")
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        try:
            c = int(count)
        except ValueError:
            continue
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        total += c
        own[frames[-1]] += c
        for f in set(frames):
            if keep is None or keep(f):
                incl[f] += c
    def rows(counter: Counter[str]) -> list[tuple[str, int, float]]:
        return [(f, c, 100.0 * c / total) for f, c in counter.most_common(n)] if total else []
    return rows(own), rows(incl), total


# --------------------------------------------------------------------------- process stats
class ProcStats:
    """CPU seconds and peak RSS of one process: psutil if installed, else /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            import psutil  # type: ignore[import-not-found]
            self._ps = psutil.Process(pid)
        except Exception:
            self._ps = None

    def cpu_seconds(self) -> float:
        if self._ps is not None:
            try:
                t = self._ps.cpu_times()
                return t.user + t.system
            except Exception:
                pass
        try:
            return parse_proc_stat_cpu(Path(f"/proc/{self.pid}/stat").read_text(), os.sysconf("SC_CLK_TCK"))
        except OSError:
            return math.nan

    def peak_rss_mb(self) -> float:
        try:  # VmHWM is the true peak; psutil has no portable peak on Linux
            return parse_vm_hwm_mb(Path(f"/proc/{self.pid}/status").read_text())
        except OSError:
            pass
        if self._ps is not None:
            try:
                return self._ps.memory_info().rss / 2**20
            except Exception:
                pass
        return math.nan


# --------------------------------------------------------------------------- Kafka helpers
def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def changelog_value_sizes(settings, table: str = "customers", timeout: float = 60.0) -> dict[str, float]:
    """Mean size of the values written to a table's changelog during the run: as stored (the
    versioned ``state`` encoding, pipeline/codec.py) and as plain JSON (what was stored before)."""
    from kafka import TopicPartition

    from pipeline.codec import decode_state, dumps
    from pipeline.kafka_security import consumer as make_consumer
    from pipeline.runtime import end_offsets

    topic = f"{settings.app_id}-{table}-changelog"
    ends = {tp: end for tp, end in end_offsets(settings, [topic]).items() if end > 0}
    stored = plain = count = 0
    c = make_consumer(settings, enable_auto_commit=False, max_poll_records=5000)
    try:
        tps = [TopicPartition(t, p) for (t, p) in ends]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while any(c.position(tp) < ends[(tp.topic, tp.partition)] for tp in tps) and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                for r in recs:
                    if r.value is None:
                        continue
                    count += 1
                    stored += len(r.value)
                    plain += len(dumps(decode_state(r.value)))
    finally:
        c.close()
    return {"values": count, "mean_bytes": stored / count if count else math.nan,
            "mean_json_bytes": plain / count if count else math.nan}


def fresh_namespace(base, label: str):
    from pipeline.config import Topics

    sfx = f"{label}-{uuid.uuid4().hex[:6]}"
    topics = Topics(**{f.name: f"bench-{sfx}.{f.default}" for f in dataclasses.fields(Topics)})
    return dataclasses.replace(base, topics=topics, app_id=f"bench-{sfx}", partitions=4)


def read_topics(settings, topics: list[str], start: dict[tuple[str, int], int] | None = None,
                want_ids: bool = True, timeout: float = 60.0) -> list[tuple[int, str | None, str]]:
    """(timestamp_ms, event_id, topic) of every record from ``start`` (default: beginning) to the current end."""
    import orjson
    from kafka import TopicPartition

    from pipeline.kafka_security import consumer as make_consumer
    from pipeline.runtime import end_offsets

    ends = end_offsets(settings, topics)
    c = make_consumer(settings, enable_auto_commit=False, max_poll_records=5000,
                      fetch_max_bytes=64 * 2**20, max_partition_fetch_bytes=16 * 2**20)
    out: list[tuple[int, str | None, str]] = []
    try:
        tps = [TopicPartition(t, p) for (t, p), end in ends.items() if end > (start or {}).get((t, p), 0)]
        if not tps:
            return out
        c.assign(tps)
        for tp in tps:
            c.seek(tp, (start or {}).get((tp.topic, tp.partition), 0))
        remaining = {tp for tp in tps}
        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            for tp, recs in c.poll(timeout_ms=500).items():
                for r in recs:
                    if r.offset >= ends[(tp.topic, tp.partition)]:
                        continue
                    eid = None
                    if want_ids:
                        try:
                            eid = orjson.loads(r.value).get("event_id")
                        except Exception:
                            eid = None
                    out.append((r.timestamp, eid, tp.topic))
            for tp in list(remaining):
                if c.position(tp) >= ends[(tp.topic, tp.partition)]:
                    remaining.discard(tp)
        if remaining:
            raise TimeoutError(f"could not read {sorted(map(str, remaining))} to the end in {timeout}s")
    finally:
        c.close()
    return out


def history_span(events: Iterable[dict]) -> timedelta:
    """From the first to the last ``occurred_at`` of ``events`` (zero for none)."""
    times = [datetime.fromisoformat(ev["occurred_at"]) for ev in events if isinstance(ev.get("occurred_at"), str)]
    return max(times) - min(times) if times else timedelta(0)


def live_times(events: Iterable[tuple[str, dict]], now: Callable[[], datetime] | None = None
               ) -> Iterator[tuple[str, dict]]:
    """The simulated stream as if it happened now: each event's ``occurred_at`` becomes the wall clock
    at the moment it is taken (whole seconds), and its other timestamps (``*_at``, ``*_by``:
    promises, sign-up) move by the same shift, so a promise keeps its distance from its event.

    The paced phase measures a worker running live.  The simulator's own clock advances ~20 hours of
    event time per wall second at the paced rate: it would close hour windows on every batch (a
    replay's load, not a live one's) and, within seconds, run more than a day ahead of the wall
    clock, where the validator dead-letters events (2026-12-04: 3,000 of 13,392 paced events)."""
    clock = now or (lambda: datetime.now(timezone.utc))
    for kind, ev in events:
        at = ev.get("occurred_at")
        if isinstance(at, str):
            wall = clock().replace(microsecond=0)
            shift = wall - datetime.fromisoformat(at)
            ev = {k: _shifted(v, shift) if k.endswith(("_at", "_by")) and isinstance(v, str) else v
                  for k, v in ev.items()}
        yield kind, ev


def _shifted(stamp: str, shift: timedelta) -> str:
    try:
        t = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    return (t + shift).isoformat(timespec="seconds")


def record_ids(events: Iterable[tuple[str, dict]], into: dict[str, str]) -> Iterator[tuple[str, dict]]:
    for kind, ev in events:
        into[ev["event_id"]] = kind
        yield kind, ev


# --------------------------------------------------------------------------- baseline
async def _baseline(settings, topics: list[str], sink: str, expected: int, timeout: float) -> dict:
    """Decode and re-encode every record (orjson) between a plain aiokafka consumer and producer:
    ``bench/peers.py``'s raw loop over the input topics."""
    import orjson

    from bench.peers import _raw_loop

    def reencode(key: bytes | None, value: bytes) -> tuple[bytes | None, bytes]:
        return key, orjson.dumps(orjson.loads(value))

    return await _raw_loop(settings, topics, sink, f"{settings.app_id}-baseline", expected, reencode, timeout)


def run_baseline(settings, sink: str, expected: int, reps: int = 3, timeout: float = 120.0) -> dict:
    """Median (by rate) of ``reps`` passes, each a new consumer group reading everything from the start."""
    import logging

    from pipeline.topics import TopicSpec, ensure_topics

    ensure_topics(settings, [TopicSpec(sink, settings.partitions, {})])
    t = settings.topics
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # "coordinator not available" while the group forms
    runs = []
    for i in range(reps):
        cpu0 = time.process_time()
        s_i = dataclasses.replace(settings, app_id=f"{settings.app_id}-{i}")
        res = asyncio.run(_baseline(s_i, [t.orders, t.complaints, t.feedback, t.profiles], sink, expected, timeout))
        res["cpu_s"] = time.process_time() - cpu0
        runs.append(res)
    runs.sort(key=lambda r: -1.0 if math.isnan(r["eps"]) else r["eps"])
    med = dict(runs[len(runs) // 2])
    med["all_eps"] = [round(r["eps"]) if not math.isnan(r["eps"]) else None for r in runs]
    med["failed"] = sum(r["failed"] for r in runs)
    return med


# --------------------------------------------------------------------------- pipeline phases
@dataclasses.dataclass
class Namespace:
    settings: object
    stream: Iterator[tuple[str, dict]]
    counts: dict[str, int]


def preload(base, label: str, n: int, seed: int, customers: int) -> Namespace:
    from pipeline.producers.publish import publish
    from pipeline.producers.simulator import iter_simulated_events
    from pipeline.topics import ensure_topics

    s = fresh_namespace(base, label)
    ensure_topics(s)
    # the history ends about now, so the paced run (live event times, :func:`live_times`) continues it
    # without a jump, and no pre-loaded event lies ahead of the wall clock
    probe = iter_simulated_events(n, seed=seed, data_dir=s.data_dir, customers=customers)
    span = history_span([ev for _, ev in probe])
    start = datetime.now(timezone.utc) - span - timedelta(minutes=10)
    stream = iter_simulated_events(None, seed=seed, data_dir=s.data_dir, customers=customers, start=start)
    t0 = time.monotonic()
    counts = publish(itertools.islice(stream, n), s, total=n, progress=False)
    _log(f"pre-loaded {n} events into {s.app_id} in {time.monotonic() - t0:.1f}s: {counts}")
    return Namespace(s, stream, counts)


def start_workers(s, count: int, workdir: Path, registry: list) -> list:
    """Start ``count`` workers (each added to ``registry`` at once, so a failure still stops it)."""
    from pipeline.kafka_local import free_port
    from pipeline.runtime import WorkerProcess

    ws = []
    for i in range(count):
        w = WorkerProcess(s, free_port(), workdir / f"{s.app_id}-worker{i}.log")
        registry.append(w)
        ws.append(w.start())
    deadline = time.monotonic() + 180
    for w in ws:
        w.wait_ready(max(5.0, deadline - time.monotonic()))
    if count > 1:  # ready = assigned + recovered + not rebalancing, for every worker at once
        while time.monotonic() < deadline:
            hs = [w.health() or {} for w in ws]
            if all(h.get("assigned_partitions", 0) > 0 and h.get("recovered") and not h.get("rebalancing")
                   for h in hs):
                break
            time.sleep(0.2)
    return ws


def start_profiler(pid: int, seconds: int, out: Path, delay: float = 0.0) -> subprocess.Popen | None:
    exe = str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        exe = shutil.which("py-spy") or exe
    if not Path(exe).exists():
        _log("py-spy not found (.venv/bin/pip install py-spy); no profile")
        return None
    cmd = [exe, "record", "--pid", str(pid), "-d", str(seconds), "-r", "100", "--nonblocking",
                             "--format", "raw", "-o", str(out)]
    if delay > 0:  # skip the first seconds (one-off lazy initialisation) to see the steady state
        cmd = ["sh", "-c", f'sleep {delay:.1f} && exec "$@"', "py-spy", *cmd]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def throughput_phase(ns: Namespace, workers: int, workdir: Path, timeout: float, registry: list,
                     profile: Path | None = None, profile_seconds: int = 20, profile_delay: float = 0.0) -> dict:
    from pipeline.runtime import wait_for_group

    s = ns.settings
    t = s.topics
    t_start_ms = int(time.time() * 1000)
    ws = start_workers(s, workers, workdir, registry)
    t_ready_ms = int(time.time() * 1000)
    stats = [ProcStats(w.proc.pid) for w in ws]
    cpu0 = [p.cpu_seconds() for p in stats]
    _log(f"{workers} worker(s) ready in {(t_ready_ms - t_start_ms) / 1000:.1f}s (pids {[w.proc.pid for w in ws]})")
    prof = start_profiler(ws[0].proc.pid, profile_seconds, profile, profile_delay) if profile else None
    t0 = time.monotonic()
    wait_for_group(s, s.app_id, [*t.inputs, t.rekeyed], timeout=timeout, poll=0.25)
    drain_s = time.monotonic() - t0
    cpu1 = [p.cpu_seconds() for p in stats]
    # stage 2 (segment aggregation, same worker) may still be behind on the partials topic: let it
    # finish so that the paced latency run does not pay for the bulk load's aggregation backlog
    wait_for_group(s, s.app_id, [s.partials_topic], timeout=timeout, poll=0.25)
    stage2_s = time.monotonic() - t0 - drain_s
    batches = [worker_batches(w.web_port) for w in ws]
    if prof is not None:
        try:
            _, err = prof.communicate(timeout=profile_delay + profile_seconds + 30)
            if prof.returncode:
                _log(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
        except subprocess.TimeoutExpired:
            prof.kill()
    enriched = read_topics(s, [t.enriched], want_ids=False)
    dead = read_topics(s, [t.deadletter], want_ids=False)
    ts = [r[0] for r in enriched]
    eps, counted, span = sustained_rate(ts, since_ms=t_ready_ms)
    eps_all, _, span_all = sustained_rate(ts)
    return {"workers": ws, "stats": stats, "peak_rss_mb": max(p.peak_rss_mb() for p in stats), "eps": eps, "counted": counted, "span_s": span, "eps_all": eps_all,
            "span_all_s": span_all, "enriched": len(enriched), "deadletters": len(dead), "drain_s": drain_s, "stage2_s": stage2_s,
            "ready_s": (t_ready_ms - t_start_ms) / 1000, "cpu_s": sum(b - a for a, b in zip(cpu0, cpu1)),
            "batches": sum(b[0] for b in batches), "mean_batch": (sum(b[1] for b in batches) / max(1, sum(b[0] for b in batches))),
            "cpu_total_s": sum(cpu1)}


def parse_batch_histogram(metrics_text: str) -> tuple[int, float]:
    """(batches, records) from a worker's ``pipeline_batch_records`` histogram (summed over agents)."""
    count, total = 0, 0.0
    for line in metrics_text.splitlines():
        if line.startswith("pipeline_batch_records_count"):
            count += int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("pipeline_batch_records_sum"):
            total += float(line.rsplit(" ", 1)[1])
    return count, total


def worker_metrics(port: int) -> str:
    """The worker's /metrics text ("" if unreachable)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return r.read().decode()
    except OSError:
        return ""


def worker_batches(port: int) -> tuple[int, float]:
    """Batches taken and records in them so far, from the worker's /metrics (0, 0 if unreachable)."""
    return parse_batch_histogram(worker_metrics(port))


PACED_METRICS = ("pipeline_batch_records_count", "pipeline_batch_records_sum", "pipeline_reorder_released_total",
                 "pipeline_events_produced_total", "pipeline_batch_seconds_bucket", "pipeline_batch_seconds_sum")


def metric_totals(port: int) -> dict[str, float]:
    """The worker's batch and reorder-release counters (label sets kept apart), to explain latency
    by what happened during the paced run (empty if unreachable)."""
    out: dict[str, float] = {}
    for line in worker_metrics(port).splitlines():
        if line.startswith(PACED_METRICS):
            name, value = line.rsplit(" ", 1)
            out[name] = out.get(name, 0.0) + float(value)
    return out


def latency_phase(ns: Namespace, rate: float, seconds: float, timeout: float) -> dict:
    from pipeline.producers.publish import publish
    from pipeline.runtime import end_offsets, wait_for_group

    s = ns.settings
    t = s.topics
    inputs = [t.orders, t.complaints, t.feedback]
    start = end_offsets(s, [*inputs, t.enriched, t.deadletter])
    m = max(1, int(rate * seconds))
    ids: dict[str, str] = {}
    t0 = time.monotonic()
    publish(record_ids(live_times(itertools.islice(ns.stream, m)), ids), s, rate=rate, total=m, progress=False)
    pub_s = time.monotonic() - t0
    wait_for_group(s, s.app_id, [*t.inputs, t.rekeyed], timeout=timeout, poll=0.25)
    produced = {eid: ts for ts, eid, _ in read_topics(s, inputs, start) if eid in ids}
    written: dict[str, int] = {}
    for ts, eid, _ in read_topics(s, [t.enriched], start):
        if eid is not None and (eid not in written or ts < written[eid]):
            written[eid] = ts  # at-least-once: the first copy counts
    catchup_s = time.monotonic() - t0 - pub_s
    dead = len(read_topics(s, [t.deadletter], start, want_ids=False))  # 0 unless the stream is broken
    lat = match_latencies(produced, written)
    # trend: a backlog that grows during the paced run shows as early << late
    timed = [[t, float(written[k] - t)] for k, t in sorted(produced.items(), key=lambda kv: kv[1]) if k in written]
    by_time = [latency for _, latency in timed]
    fifth = max(1, len(by_time) // 5)
    if os.environ.get("BENCH_LATENCY_DUMP"):  # each record's [produce time ms, latency ms], to see where a tail comes from
        Path(os.environ["BENCH_LATENCY_DUMP"]).write_text(json.dumps(timed))
    return {"rate": rate, "sent": m, "publish_s": pub_s, "achieved_rate": m / pub_s if pub_s else math.nan,
            "catchup_s": catchup_s, "produced": len(produced), "deadletters": dead,
            "p50_first_fifth_ms": round(percentile(by_time[:fifth], 50), 1),
            "p50_last_fifth_ms": round(percentile(by_time[-fifth:], 50), 1), **latency_summary(lat)}


def _fmt(x: float, nd: int = 0) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{nd}f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", "20000")))
    ap.add_argument("--workers", type=int, choices=(1, 2), default=int(os.environ.get("BENCH_WORKERS", "1")))
    ap.add_argument("--customers", type=int, default=int(os.environ.get("BENCH_CUSTOMERS", "1000")))
    ap.add_argument("--paced-seconds", type=float, default=float(os.environ.get("BENCH_PACED_SECONDS", "15")))
    ap.add_argument("--paced-fraction", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", ""),
                    help="use this cluster instead of starting a local broker")
    ap.add_argument("--profile", action="store_true", default=os.environ.get("BENCH_PROFILE") == "1",
                    help="py-spy the first worker during the 1-worker throughput phase")
    ap.add_argument("--profile-seconds", type=int, default=20)
    ap.add_argument("--profile-delay", type=float, default=8.0,
                    help="start py-spy this many seconds after the worker is ready (0: include warm-up)")
    ap.add_argument("--timeout", type=float, default=240.0, help="max seconds for one drain")
    ap.add_argument("--workdir", default="", help="logs and profile (default: a temp dir)")
    args = ap.parse_args(argv)

    from pipeline.config import load_settings
    from pipeline.kafka_local import LocalKafka

    wall0 = time.monotonic()
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    base = load_settings()
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    _log(f"{os.cpu_count()} CPU(s), load average {load1:.2f} at start; logs in {workdir}")
    broker = None
    all_workers: list = []
    try:
        if args.bootstrap:
            base = dataclasses.replace(base, bootstrap_servers=args.bootstrap)
        else:
            broker = LocalKafka(base.kafka_version, base.cache_dir, workdir=workdir / "kafka").start()
            base = dataclasses.replace(base, bootstrap_servers=broker.bootstrap)
            _log(f"local Kafka {base.kafka_version} at {broker.bootstrap} up in {broker.start_seconds:.1f}s")

        runs: dict[int, dict] = {}
        ns1 = preload(base, "w1", args.events, args.seed, args.customers)
        base_res = run_baseline(ns1.settings, f"{ns1.settings.app_id}.baseline-sink", args.events)
        _log(f"baseline: {base_res['records']} records in {base_res['seconds']:.2f}s = {_fmt(base_res['eps'])} ev/s "
             f"(median of {base_res['all_eps']}, failed {base_res['failed']})")
        from bench.same_work import over_kafka

        same = over_kafka(ns1.settings, f"{ns1.settings.app_id}.same-work-sink", args.events, timeout=args.timeout)
        _log(f"same work without Faust (aiokafka + the stage drivers): {same['same_work_events']} records in "
             f"{same['same_work_seconds']:.1f}s = {_fmt(same['same_work_eps'])} ev/s, "
             f"{_fmt(same['same_work_cpu_us_per_event'])} us CPU per event")
        profile_raw = workdir / "profile.raw.txt" if args.profile else None
        r1 = throughput_phase(ns1, 1, workdir, args.timeout, all_workers, profile_raw, args.profile_seconds,
                              args.profile_delay)
        runs[1] = r1
        _log(f"1 worker: {r1['counted']} enriched in {r1['span_s']:.1f}s = {_fmt(r1['eps'])} ev/s "
             f"(all {r1['enriched']} enriched: {_fmt(r1['eps_all'])} ev/s), dead letters {r1['deadletters']}, "
             f"drain {r1['drain_s']:.1f}s (+{r1['stage2_s']:.1f}s stage 2), cpu {r1['cpu_s']:.1f}s, {r1['batches']} batches of {r1['mean_batch']:.0f} records on average")
        sizes = changelog_value_sizes(ns1.settings)
        _log(f"customer state: {sizes['values']} changelog values, mean {_fmt(sizes['mean_bytes'])} bytes "
             f"as stored ({_fmt(sizes['mean_json_bytes'])} as plain JSON)")
        final, final_ns = r1, ns1
        if args.workers == 2:
            r1["peak_rss_mb"] = max(r1["peak_rss_mb"], *(p.peak_rss_mb() for p in r1["stats"]))
            for w in r1["workers"]:
                w.stop()
            ns2 = preload(base, "w2", args.events, args.seed, args.customers)
            r2 = throughput_phase(ns2, 2, workdir, args.timeout, all_workers)
            runs[2] = r2
            _log(f"2 workers: {r2['counted']} enriched in {r2['span_s']:.1f}s = {_fmt(r2['eps'])} ev/s, "
                 f"cpu {r2['cpu_s']:.1f}s")
            final, final_ns = r2, ns2
        rate = max(1.0, args.paced_fraction * (final["eps"] if not math.isnan(final["eps"]) else 10.0))
        before = [metric_totals(w.web_port) for w in final["workers"]]
        lat = latency_phase(final_ns, rate, args.paced_seconds, args.timeout)
        after = [metric_totals(w.web_port) for w in final["workers"]]
        moved = {k: round(sum(a.get(k, 0.0) - b.get(k, 0.0) for a, b in zip(after, before)), 1)
                 for k in sorted(set().union(*after))}
        _log("during the paced run: " + ", ".join(f"{k} {v:g}" for k, v in moved.items() if v))
        _log(f"latency at {rate:.0f} ev/s for {args.paced_seconds:.0f}s (achieved {lat['achieved_rate']:.0f}): "
             f"matched {lat['matched']}/{lat['produced']}, dead letters {lat['deadletters']}, p50 {lat['p50_ms']} p95 {lat['p95_ms']} "
             f"p99 {lat['p99_ms']} max {lat['max_ms']} ms; p50 first fifth {lat['p50_first_fifth_ms']} / last fifth "
             f"{lat['p50_last_fifth_ms']} ms; caught up {lat['catchup_s']:.1f}s after the last send")
        peak = max(final["peak_rss_mb"], *(p.peak_rss_mb() for p in final["stats"]))
        final["peak_rss_mb"] = peak
        for w in all_workers:
            w.stop()

        if profile_raw is not None and profile_raw.exists():
            lines = profile_raw.read_text().splitlines()
            top_own, _, total = top_frames(lines)
            _, top_incl, _ = top_frames(lines, n=15, keep=is_project_frame)
            print(f"\npy-spy, first worker, {args.profile_seconds}s from {args.profile_delay:.0f}s after ready "
                  f"(during the drain), {total} samples at 100 Hz (raw stacks: {profile_raw})")
            print("top by own samples:")
            for f, c, pct in top_own:
                print(f"  {pct:5.1f}%  {f}")
            print("top project functions by inclusive samples:")
            for f, c, pct in top_incl:
                print(f"  {pct:5.1f}%  {f}")

        load2 = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
        print()
        print(f"NOTE: {os.cpu_count()}-core machine, load average {load1:.2f} at start / {load2:.2f} at end; "
              "other jobs may share it, so absolute numbers are noisy.")
        print(f"| run | events/s | baseline events/s | ratio | p50 ms | p95 ms | p99 ms | cpu s | peak RSS MiB |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for wn, r in runs.items():
            p = r["peak_rss_mb"]
            lat_cells = (f"{lat['p50_ms']} | {lat['p95_ms']} | {lat['p99_ms']}" if r is final else "- | - | -")
            print(f"| {wn} worker(s), {args.events} events | {_fmt(r['eps'])} | {_fmt(base_res['eps'])} | "
                  f"{r['eps'] / base_res['eps']:.3f} | {lat_cells} | {r['cpu_s']:.1f} | {_fmt(p)} |")
        extra: dict[str, object] = {}
        if len(runs) > 1:
            extra["eps_by_workers"] = {str(k): _num(v["eps"]) for k, v in runs.items()}
        extra.update(same_work_fields(r1["eps"], same["same_work_eps"]))
        extra["state_value_bytes"] = _num(sizes["mean_bytes"], 0)
        extra["state_json_bytes"] = _num(sizes["mean_json_bytes"], 0)
        extra["seconds"] = round(time.monotonic() - wall0, 1)
        print(result_line(pipeline_eps=final["eps"], baseline_eps=base_res["eps"], p50_ms=lat["p50_ms"],
                          p95_ms=lat["p95_ms"], p99_ms=lat["p99_ms"], workers=args.workers, events=args.events,
                          cpu_s=final["cpu_s"], peak_rss_mb=peak, **extra), flush=True)
        return 0
    finally:
        for w in all_workers:
            w.stop()
        if broker is not None:
            broker.cleanup()


if __name__ == "__main__":
    sys.exit(main())
