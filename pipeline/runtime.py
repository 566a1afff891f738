"""Process-level helpers shared by the CLI and the tests.

* :func:`resolve_settings` — settings with a bootstrap address: the
  ``KAFKA_BOOTSTRAP_SERVERS`` cluster if set, else the project's local broker
  started by ``python -m pipeline kafka start`` (state in ``.run/kafka``).
* :func:`run_worker` — create topics, then run a Faust worker in this process.
* :func:`wait_for_group` — block until a consumer group has consumed every
  record currently in the given topics (committed offset = end offset).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import weakref
import time
from pathlib import Path

from .config import PROJECT_ROOT, Settings, load_settings

RUN_DIR = PROJECT_ROOT / ".run" / "kafka"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def local_bootstrap(run_dir: Path = RUN_DIR) -> str | None:
    try:
        pid = int((run_dir / "broker.pid").read_text())
        bootstrap = (run_dir / "bootstrap").read_text().strip()
    except (OSError, ValueError):
        return None
    return bootstrap if _pid_alive(pid) else None


def resolve_settings(settings: Settings | None = None, required: bool = True) -> Settings:
    settings = settings or load_settings()
    if settings.bootstrap_servers:
        return settings
    local = local_bootstrap()
    if local is None and required:
        raise SystemExit(
            "No Kafka: set KAFKA_BOOTSTRAP_SERVERS or start the local broker with `python -m pipeline kafka start`."
        )
    return dataclasses.replace(settings, bootstrap_servers=local)


def tune_gc(young_threshold: int) -> None:
    """Fewer, shorter garbage-collector pauses (issue 17).  The start-up heap (Faust, the taxonomy,
    the classifiers: ~140,000 tracked objects) is moved out of every later collection
    (``gc.freeze``; its objects are still freed by reference counting, only cycles among them
    would stay), and a young collection runs every ``young_threshold`` allocations instead of
    Python's 700.  Measured in the paced bench run: full collections of 70-190 ms every few seconds
    before, none in 15 s after; 10-25 % less CPU in the bulk run.  ``young_threshold`` 0 keeps
    Python's defaults."""
    import gc

    if young_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, older, oldest)


def run_worker(settings: Settings) -> None:
    import faust

    from .agents import failstop
    from .agents.models import load_models
    from .app import build
    from .logs import logging_config
    from .classify.learned import SentimentModel
    from .classify.taxonomy import load_taxonomy
    from .kafka_security import KafkaAuthError, probe
    from .topics import ensure_topics

    if settings.event_loop == "uvloop":  # before the app exists: every loop it makes is a uvloop
        import asyncio

        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    elif settings.event_loop != "asyncio":
        raise SystemExit(f"error: PIPELINE_EVENT_LOOP must be uvloop or asyncio, not {settings.event_loop!r}")
    # configuration files first: a bad taxonomy or model is one clear line before any Kafka call
    load_taxonomy(settings.taxonomy_file)
    if settings.sentiment_model_file:
        SentimentModel.load(settings.sentiment_model_file)
    try:
        probe(settings)  # a wrong password is one clear line, not a worker retrying forever
        ensure_topics(settings)
    except KafkaAuthError as exc:
        raise SystemExit(f"error: {exc}") from None
    pipe = build(settings)
    load_models(settings, pipe.processor.sentiment_models, pipe.metrics)  # the first record already sees the current models
    pipe.processor.warm()  # before joining the group: ready means the classifier is built
    tune_gc(settings.gc_young_threshold)
    # a table recovery that stopped receiving records restarts the worker (Faust only warns, for ever)
    failstop.start_recovery_watch(pipe.app, settings.recovery_stall_seconds)
    worker = faust.Worker(
        pipe.app,
        loglevel=settings.log_level,
        logging_config=logging_config(settings.log_level, settings.log_format),
        quiet=True,
        redirect_stdouts=False,
    )
    worker.execute_from_commandline()


def end_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    from kafka import TopicPartition

    from .kafka_security import consumer as make_consumer

    consumer = make_consumer(settings, enable_auto_commit=False)
    try:
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        return {(tp.topic, tp.partition): off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def group_lag(settings: Settings, group: str, topics: list[str], slack: dict[str, int] | None = None) -> int:
    """Records behind, summed over partitions; ``slack[topic]`` records per partition are forgiven."""
    from .kafka_security import admin_client

    ends = end_offsets(settings, topics)
    admin = admin_client(settings)
    try:
        committed = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    done = {(tp.topic, tp.partition): meta.offset for tp, meta in committed.items()}
    slack = slack or {}
    return sum(max(0, end - max(done.get(tp, 0), 0) - slack.get(tp[0], 0)) for tp, end in ends.items())


def wait_for_group(settings: Settings, group: str, topics: list[str], timeout: float = 300.0,
                   poll: float = 0.5) -> int:
    """Return 0 when the group has caught up; raise TimeoutError with the remaining lag.

    Known Faust behaviour: on the stage-2 partials topic the commit of a
    partition's very last record (the clock-advance control record written by
    the worker itself) can stay one behind until the next record arrives, so one
    record per partition of that topic is forgiven.
    """
    deadline = time.monotonic() + timeout
    lag = -1
    slack = {settings.partials_topic: 1}
    while time.monotonic() < deadline:
        dead = dead_worker()
        if dead:  # a crashed worker will not catch up: say so now, not after the timeout
            raise RuntimeError(dead)
        try:
            lag = group_lag(settings, group, topics, slack)
        except Exception as exc:  # noqa: BLE001
            if not _retriable(exc):
                raise
            time.sleep(poll)  # e.g. the coordinator still loading its offsets after a broker restart
            continue
        if lag == 0:
            return 0
        time.sleep(poll)
    raise TimeoutError(f"consumer group {group} still {lag} records behind after {timeout}s"
                       + "".join(f"\n{w.diagnostics()}" for w in list(_STARTED) if w.meant_to_run))


def _retriable(exc: BaseException) -> bool:
    """A Kafka error that asking again can cure (``CoordinatorLoadInProgressError`` after a broker
    restart: a CI run of the broker-restart test failed on it while the worker was fine)."""
    return bool(getattr(exc, "retriable", False)) or type(exc).__name__ in (
        "CoordinatorLoadInProgressError", "CoordinatorNotAvailableError", "NotCoordinatorError",
        "KafkaConnectionError", "NodeNotReadyError", "KafkaTimeoutError", "NoBrokersAvailable")


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment variables that reproduce ``settings`` in a child process."""
    t = settings.topics
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers or "",
        "PIPELINE_APP_ID": settings.app_id,
        "PIPELINE_PARTITIONS": str(settings.partitions),
        "PIPELINE_TOPIC_ORDERS": t.orders,
        "PIPELINE_TOPIC_COMPLAINTS": t.complaints,
        "PIPELINE_TOPIC_FEEDBACK": t.feedback,
        "PIPELINE_TOPIC_PROFILES": t.profiles,
        "PIPELINE_TOPIC_ENRICHED": t.enriched,
        "PIPELINE_TOPIC_DEADLETTER": t.deadletter,
        "PIPELINE_TOPIC_REKEYED": t.rekeyed,
        "PIPELINE_TOPIC_TICKS": t.ticks,
        "PIPELINE_TOPIC_AGGREGATES": t.aggregates,
        "PIPELINE_TOPIC_ALERTS_PAIN_POINTS": t.alerts_pain_points,
        "PIPELINE_TOPIC_ALERTS_COMMITMENTS": t.alerts_commitments,
        "PIPELINE_TOPIC_ALERTS_CHURN": t.alerts_churn,
        "PIPELINE_TOPIC_ALERT_ACTIONS": t.alert_actions,
        "PIPELINE_TOPIC_NOTIFICATIONS_DEADLETTER": t.notifications_deadletter,
        "PIPELINE_CLOCK": settings.clock,
        "PIPELINE_IDLE_SECONDS": str(settings.idle_seconds),
        "PIPELINE_TICK_INTERVAL_SECONDS": str(settings.tick_interval_seconds),
        "PIPELINE_MAX_EVENT_BYTES": str(settings.max_event_bytes),
        "PIPELINE_STORE": settings.store,
        "PIPELINE_DATA_DIR": str(settings.data_dir),
        **settings.security.env(),
    }


_STARTED: "weakref.WeakSet[WorkerProcess]" = weakref.WeakSet()


def running_workers() -> list["WorkerProcess"]:
    """The :class:`WorkerProcess` es started here, meant to run and still running (tests pause them)."""
    return [w for w in list(_STARTED) if w.meant_to_run and w.proc is not None and w.proc.poll() is None]


def dead_worker() -> str | None:
    """Why a :class:`WorkerProcess` started here and not stopped or killed on purpose has exited, if one has."""
    for w in list(_STARTED):
        reason = w.died()
        if reason:
            return reason
    return None


class WorkerProcess:
    """``python -m pipeline worker`` as a child process (demo, tests, fault injection)."""

    def __init__(self, settings: Settings, web_port: int, log_path: Path, extra_env: dict[str, str] | None = None):
        self.settings = settings
        self.web_port = web_port
        self.log_path = log_path
        self.extra_env = extra_env or {}
        self.proc: "subprocess.Popen[bytes] | None" = None
        self.meant_to_run = False

    def start(self) -> "WorkerProcess":
        import subprocess
        import sys

        # Faust's data directory (empty with the memory store) beside the log, not in the checkout
        env = {"APP_DATADIR": str(self.log_path.parent / f"faust-data-{self.web_port}"), **os.environ,
               **settings_env(self.settings), "PIPELINE_WEB_PORT": str(self.web_port), **self.extra_env}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline", "worker"], cwd=str(PROJECT_ROOT), env=env,
                stdout=out, stderr=subprocess.STDOUT,
            )
        self.meant_to_run = True
        _STARTED.add(self)
        return self

    def died(self) -> str | None:
        """None while running (or after a deliberate stop / kill); else the exit code and the log's tail."""
        if not self.meant_to_run or self.proc is None or self.proc.poll() is None:
            return None
        try:
            tail = self.log_path.read_bytes()[-1500:].decode("utf-8", "replace")
        except OSError:
            tail = ""
        return f"worker exited unexpectedly with {self.proc.returncode}; log: {self.log_path}\n{tail}"

    def _page(self, path: str) -> bytes:
        """``GET path`` on the worker's web port (raises when unreachable)."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=2) as r:
            return r.read()

    def health(self) -> dict | None:
        import orjson

        try:
            return orjson.loads(self._page("/health"))
        except Exception:
            return None

    def _health_as_served(self) -> str:
        """``/health`` with its status, a 503 ("stuck") included: :meth:`health` answers None both for
        a worker that does not answer and for one that answers "stuck" (a stalled partition read as
        "not answering" in a failed SIGSTOP run)."""
        import urllib.error

        try:
            return f"200 {self._page('/health').decode('utf-8', 'replace')}"
        except urllib.error.HTTPError as exc:
            return f"{exc.code} {exc.read().decode('utf-8', 'replace')}"
        except Exception as exc:  # noqa: BLE001
            return f"unreachable: {exc!r}"

    DIAGNOSTIC_METRICS = ("pipeline_reorder_", "pipeline_consumer_lag_records", "pipeline_errors_total",
                          "pipeline_assigned_partitions", "pipeline_schedule_overdue_keys")

    def diagnostics(self) -> str:
        """The worker's ``/health`` and the metric lines that explain a worker not catching up (the
        reorder buffer's holds and releases, lag, errors): attached to a group-wait timeout so a
        failed test says which wait it met."""
        lines = [f"worker on port {self.web_port} (log {self.log_path}): health {self._health_as_served()}"]
        try:
            text = self._page("/metrics").decode("utf-8", "replace")
        except Exception as exc:  # noqa: BLE001
            return f"{lines[0]}; metrics unavailable: {exc!r}"
        lines += [ln for ln in text.splitlines()
                  if ln.startswith(self.DIAGNOSTIC_METRICS) and not ln.rstrip().endswith(" 0.0")]
        return "\n  ".join(lines)

    def wait_ready(self, timeout: float = 180.0) -> dict:
        """Wait until the worker owns partitions and its tables are recovered."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}; log: {self.log_path}")
            h = self.health()
            if h and h.get("assigned_partitions", 0) > 0 and h.get("recovered") and not h.get("rebalancing"):
                return h
            time.sleep(0.25)
        raise TimeoutError(f"worker not ready after {timeout}s; log: {self.log_path}")

    def stop(self, timeout: float = 30.0) -> None:
        import signal
        import subprocess

        self.meant_to_run = False
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def kill(self) -> None:
        self.meant_to_run = False
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
