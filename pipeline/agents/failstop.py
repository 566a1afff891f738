"""Fail-stop: when an agent cannot guarantee what it committed, the process stops instead of guessing.

Two exits, both immediate (``os._exit`` / ``os.execve``: no ``finally`` blocks,
no Faust shutdown, hence no commit of a half-processed batch — Faust's
``take_events`` acknowledges a batch in a ``finally`` and commits on shutdown):

* :func:`fatal` — a produce failure, an exception in an agent: one log line,
  exit status :data:`EXIT_FATAL`.  The orchestrator (Kubernetes, compose,
  systemd) restarts the worker; it resumes from the committed offsets, which
  are below every record whose outputs were not confirmed, and the idempotence
  checks make the re-run exact.
* :func:`restart_from_committed` — Faust handed over a record past a range that
  exists but never reached the agent.  The process replaces itself
  (``execve`` of the same command line: same pid, same log) and resumes from the
  committed offsets, at most :class:`~pipeline.delivery.RestartBudget` times in a
  window; beyond that it exits with :data:`EXIT_RESTART_LOOP`.  Also the way out
  for a worker that was frozen past its session timeout (:func:`check_not_frozen`)
  and for a table recovery that stopped receiving records (:func:`check_recovery`).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any, NoReturn

from ..delivery import FreezeWatch, RestartBudget, format_history, parse_history, recovery_stalled

log = logging.getLogger("pipeline.agent")

EXIT_FATAL = 70  # EX_SOFTWARE
EXIT_RESTART_LOOP = 75  # EX_TEMPFAIL: restarted itself too often; the orchestrator takes over
RESTART_HISTORY_ENV = "PIPELINE_RESTART_HISTORY"  # set by the worker for its own re-exec, not by operators


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers + logging.getLogger("pipeline").handlers:
        try:
            handler.flush()
        except Exception:  # pragma: no cover - a broken handler must not stop the exit
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # pragma: no cover
            pass


def fatal(reason: str, *, stage: str, topic: str | None = None, partition: int | None = None,
          offset: int | None = None, error: str | None = None, where: str | None = None,
          trace: str | None = None) -> NoReturn:
    """Stop the worker now with one log line; nothing after the last commit is acknowledged.
    ``where``: the code location that raised; ``trace``: the traceback's last code locations
    (``file.py:line``, outermost first; never values)."""
    log.critical("worker stopping (fail-stop): outputs not confirmed, nothing further is committed",
                 extra={"reason": reason, "stage": stage, "topic": topic, "partition": partition, "offset": offset,
                        "error": error, "code": where, "trace": trace})
    _flush_logs()
    os._exit(EXIT_FATAL)


def restart_from_committed(reason: str, *, stage: str, topic: str | None = None, partition: int | None = None,
                           offset: int | None = None, seconds: float | None = None,
                           budget: RestartBudget | None = None) -> NoReturn:
    """Replace this process by a fresh worker that re-reads from the committed offsets."""
    budget = budget or RestartBudget(
        limit=int(os.environ.get("PIPELINE_RESTART_LIMIT", "5") or 5),
        window_seconds=float(os.environ.get("PIPELINE_RESTART_WINDOW_SECONDS", "600") or 600),
    )
    allowed, history = budget.allow(parse_history(os.environ.get(RESTART_HISTORY_ENV)), time.time())
    if not allowed:
        log.critical("worker stopping: it restarted itself too often; the orchestrator must restart it",
                     extra={"reason": reason, "stage": stage, "topic": topic, "partition": partition,
                            "offset": offset, "count": len(history)})
        _flush_logs()
        os._exit(EXIT_RESTART_LOOP)
    log.warning("worker restarting itself from the committed offsets",
                extra={"reason": reason, "stage": stage, "topic": topic, "partition": partition,
                       "offset": offset, "count": len(history),
                       "seconds": None if seconds is None else round(seconds, 1)})
    _flush_logs()
    env = {**os.environ, RESTART_HISTORY_ENV: format_history(history)}
    argv = [sys.executable, *getattr(sys, "orig_argv", sys.argv)[1:]]
    os.execve(sys.executable, argv, env)


FREEZE = FreezeWatch(limit=5.0)  # one per process; the limit is set from the session timeout at start


def watch_for_freezes(app: Any, session_timeout: float) -> bool:
    """Tick :data:`FREEZE` from the consumer's thread (the one that heartbeats); True once installed.

    The limit is half the session timeout: a stand-still that long may already
    have cost the group membership (heartbeats every quarter of it).
    """
    thread = getattr(getattr(app, "consumer", None), "_thread", None)
    loop = getattr(thread, "thread_loop", None)
    if loop is None or not loop.is_running():
        return False
    FREEZE.limit = session_timeout / 2

    def tick() -> None:
        FREEZE.tick(time.monotonic())
        loop.call_later(1.0, tick)

    loop.call_soon_threadsafe(tick)
    return True


def check_not_frozen(app: Any, stage: str) -> None:
    """Before an output: a worker that stood still past half its session timeout restarts instead
    of writing (it may no longer own its partitions: a zombie)."""
    if getattr(app, "should_stop", False):
        FREEZE.stop()
        return
    seconds = FREEZE.frozen(time.monotonic())
    if seconds is not None:
        restart_from_committed("frozen", stage=stage, seconds=seconds)


def check_recovery(app: Any, limit: float, clock: Any = time.monotonic) -> None:
    """Restart from the committed offsets when the app's table recovery has received no changelog
    record for ``limit`` seconds (:func:`~pipeline.delivery.recovery_stalled`).  Nothing is
    processed during a recovery, so nothing is lost; Faust itself only logs a warning every 5 s,
    for ever.  Reads Faust 0.15.3's recovery state (``in_recovery``, ``_recovery_started_at``,
    ``_active_events_received_at``, all on ``time.monotonic``)."""
    recovery = getattr(getattr(app, "tables", None), "recovery", None)
    if recovery is None or not getattr(recovery, "in_recovery", False) or getattr(app, "should_stop", False):
        return
    try:
        received = list((getattr(recovery, "_active_events_received_at", None) or {}).values())
    except RuntimeError:  # changed size while copied (another thread): look again next time
        return
    seconds = recovery_stalled(clock(), getattr(recovery, "_recovery_started_at", None), received, limit)
    if seconds is not None:
        restart_from_committed("recovery_stalled", stage="recovery", seconds=seconds)


def start_recovery_watch(app: Any, limit: float, interval: float = 5.0) -> threading.Thread | None:
    """Run :func:`check_recovery` every ``interval`` seconds on a daemon thread, from the start: Faust
    starts an app's timers and tasks only once the *first* recovery completed, so a timer would
    never see a stalled first recovery.  ``limit`` 0: no watch."""
    if limit <= 0:
        return None

    def loop() -> None:
        while True:
            time.sleep(interval)
            check_recovery(app, limit)

    thread = threading.Thread(target=loop, name="pipeline-recovery-watch", daemon=True)
    thread.start()
    return thread
