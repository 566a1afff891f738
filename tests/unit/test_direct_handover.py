"""Fix 6 of pipeline/agents/faust_fixes.py: the fetch loop hands a record over without four tasks
unless the callback waits; a callback that waits continues as a task that Faust's wait_first can
interrupt (rebalance, stop, crash) as before."""

from __future__ import annotations

import asyncio

import pytest
from faust.transport.consumer import Consumer
from mode import Service

from pipeline.agents import faust_fixes


class FetchLoop(Service):
    """What the patched ``Consumer.wait_first`` reads of a consumer: its flags."""

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = asyncio.Event()


async def _put(queue: asyncio.Queue, item: int) -> int:
    await queue.put(item)
    return item


def _wait_first():
    faust_fixes.apply()
    return Consumer.wait_first


def test_a_callback_that_does_not_wait_runs_in_the_loop_itself():
    async def main() -> None:
        loop, queue = FetchLoop(), asyncio.Queue(maxsize=4)
        tasks_before = len(asyncio.all_tasks())
        res = await _wait_first()(loop, _put(queue, 7), loop.suspend_flow.wait())
        assert queue.get_nowait() == 7 and res.results == [7] and not res.stopped
        assert len(asyncio.all_tasks()) == tasks_before  # no task was left behind (nor made)

    asyncio.run(main())


def test_a_callback_that_waits_finishes_when_the_buffer_has_room():
    async def main() -> None:
        loop, queue = FetchLoop(), asyncio.Queue(maxsize=1)
        queue.put_nowait(0)  # full: the agent is behind
        handover = asyncio.ensure_future(_wait_first()(loop, _put(queue, 1), loop.suspend_flow.wait()))
        await asyncio.sleep(0.01)
        assert not handover.done()
        assert await queue.get() == 0  # the agent takes a record: room for the waiting one
        res = await asyncio.wait_for(handover, 1)
        assert not res.stopped and queue.get_nowait() == 1

    asyncio.run(main())


def test_a_suspended_flow_interrupts_a_waiting_callback_as_before():
    async def main() -> None:
        loop, queue = FetchLoop(), asyncio.Queue(maxsize=1)
        queue.put_nowait(0)
        handover = asyncio.ensure_future(_wait_first()(loop, _put(queue, 1), loop.suspend_flow.wait()))
        await asyncio.sleep(0.01)
        loop.suspend_flow.set()  # a rebalance began
        res = await asyncio.wait_for(handover, 1)
        assert res.stopped is False and res.results == [True]  # Faust's answer: the flag won
        await asyncio.sleep(0.01)
        assert queue.qsize() == 1 and queue.get_nowait() == 0  # the waiting record was not put

    asyncio.run(main())


def test_the_callback_error_propagates_and_flags_take_faust_path():
    async def fails() -> None:
        raise ValueError("decode failed")

    async def main() -> None:
        loop = FetchLoop()
        with pytest.raises(ValueError, match="decode failed"):
            await _wait_first()(loop, fails(), loop.suspend_flow.wait())
        loop.suspend_flow.set()  # suspended: Faust's own wait_first answers at once
        queue = asyncio.Queue(maxsize=4)
        res = await asyncio.wait_for(_wait_first()(loop, _put(queue, 3), loop.suspend_flow.wait()), 1)
        assert res.done  # one of them finished first, as Faust decides

    asyncio.run(main())


def test_resume_runs_a_coroutine_on_as_a_task_would():
    async def waits(fut: asyncio.Future) -> int:
        await asyncio.sleep(0)
        return await fut + 1

    async def main() -> None:
        fut = asyncio.get_running_loop().create_future()
        coro = waits(fut)
        first = coro.send(None)  # the bare yield of sleep(0)
        task = asyncio.ensure_future(faust_fixes.resume(coro, first))
        await asyncio.sleep(0.01)
        fut.set_result(41)
        assert await task == 42

        fut2 = asyncio.get_running_loop().create_future()
        coro2 = waits(fut2)
        task2 = asyncio.ensure_future(faust_fixes.resume(coro2, coro2.send(None)))
        await asyncio.sleep(0.01)
        task2.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task2
        assert fut2.cancelled() and coro2.cr_frame is None  # the coroutine ended with the cancellation

        fut3 = asyncio.get_running_loop().create_future()
        coro3 = waits(fut3)
        task3 = asyncio.ensure_future(faust_fixes.resume(coro3, coro3.send(None)))
        await asyncio.sleep(0.01)
        fut3.set_exception(OSError("broker gone"))
        with pytest.raises(OSError, match="broker gone"):
            await task3

    asyncio.run(main())
