"""Bounded retries (pipeline.retry): deterministic, no real sleeping."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.retry import RetryPolicy, attempt


class Flaky:
    def __init__(self, failures: int):
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ValueError(f"boom {self.calls}")
        return "ok"


def _run(handler, policy, sleeps, retried):
    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return asyncio.run(attempt(handler, policy, lambda exc, n: f"dead after {n}: {exc}",
                               lambda exc, n: retried.append(n), sleep=fake_sleep))


def test_success_first_time_does_not_sleep():
    sleeps, retried = [], []
    assert _run(Flaky(0), RetryPolicy(3, 0.05), sleeps, retried) == "ok"
    assert sleeps == [] and retried == []


def test_transient_failure_heals_with_exponential_backoff():
    sleeps, retried = [], []
    h = Flaky(2)
    assert _run(h, RetryPolicy(3, 0.05), sleeps, retried) == "ok"
    assert h.calls == 3
    assert sleeps == pytest.approx([0.05, 0.1])
    assert retried == [1, 2]


def test_permanent_failure_gives_up_after_the_bound():
    sleeps, retried = [], []
    h = Flaky(100)
    assert _run(h, RetryPolicy(4, 0.01), sleeps, retried) == "dead after 4: boom 4"
    assert h.calls == 4
    assert len(sleeps) == 3


def test_one_attempt_means_no_retry():
    sleeps, retried = [], []
    h = Flaky(1)
    assert _run(h, RetryPolicy(1, 1.0), sleeps, retried) == "dead after 1: boom 1"
    assert h.calls == 1 and sleeps == []


def test_cancellation_is_not_swallowed():
    def cancelled():
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        _run(cancelled, RetryPolicy(3, 0.0), [], [])


def test_policy_from_env_and_validation():
    assert RetryPolicy.from_env({}) == RetryPolicy(3, 0.05)
    assert RetryPolicy.from_env({"PIPELINE_PROCESS_ATTEMPTS": "5", "PIPELINE_RETRY_BACKOFF_SECONDS": "0.2"}) \
        == RetryPolicy(5, 0.2)
    with pytest.raises(ValueError):
        RetryPolicy(0)
    with pytest.raises(ValueError):
        RetryPolicy(2, -1)
