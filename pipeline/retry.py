"""Bounded retries for a per-record handler, then a dead letter: one bad record never stops a partition.

:func:`attempt` calls ``handler()`` up to ``policy.attempts`` times.  Between
attempts it waits ``policy.backoff_seconds * 2**(n-1)`` (0.05 s, 0.1 s, … by
default) so that a transient fault — a resource briefly unavailable, a race in
a dependency — gets a chance to clear.  If every attempt raises, it returns
``on_give_up(last_exception, attempts)``, which the caller turns into a
dead-letter record carrying the reason and the original bytes.  Handlers must
not mutate shared state before they raise (ours build new state dicts), so a
retry starts from the same inputs as the first try.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("pipeline.retry")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failing record is retried.

    ``attempts``: total tries including the first (``PIPELINE_PROCESS_ATTEMPTS``, default 3, ≥ 1).
    ``backoff_seconds``: wait before the second try, doubled each time
    (``PIPELINE_RETRY_BACKOFF_SECONDS``, default 0.05).
    """

    attempts: int = 3
    backoff_seconds: float = 0.05

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("PIPELINE_PROCESS_ATTEMPTS must be at least 1")
        if self.backoff_seconds < 0:
            raise ValueError("PIPELINE_RETRY_BACKOFF_SECONDS must not be negative")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "RetryPolicy":
        env = {} if env is None else env  # the environment only when given (pipeline.stage_settings)
        d = cls()
        return cls(
            attempts=int(env.get("PIPELINE_PROCESS_ATTEMPTS") or d.attempts),
            backoff_seconds=float(env.get("PIPELINE_RETRY_BACKOFF_SECONDS") or d.backoff_seconds),
        )

    def delay(self, failed_attempts: int) -> float:
        """Seconds to wait after ``failed_attempts`` (≥ 1) failures."""
        return self.backoff_seconds * (2 ** (failed_attempts - 1))


async def attempt(
    handler: Callable[[], T],
    policy: RetryPolicy,
    on_give_up: Callable[[BaseException, int], T],
    on_retry: Callable[[BaseException, int], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """``handler()``'s result, retried on exception; ``on_give_up(exc, attempts)`` after the last failure.

    ``on_retry(exc, n)`` is called after failure ``n`` when another try follows.
    Only :class:`Exception` is caught: cancellation and ``KeyboardInterrupt`` pass through.
    """
    for n in range(1, policy.attempts + 1):
        try:
            return handler()
        except Exception as exc:  # noqa: BLE001 — any bug in a handler is this record's problem
            if n == policy.attempts:
                return on_give_up(exc, n)
            if on_retry is not None:
                on_retry(exc, n)
            await sleep(policy.delay(n))
    raise AssertionError("unreachable")  # pragma: no cover
