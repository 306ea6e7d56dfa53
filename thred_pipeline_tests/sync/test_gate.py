"""The per-business gate: never more in flight than the governor's window or the ceiling."""

from __future__ import annotations

import asyncio

import pytest

from thred_pipeline.sync.gate import Gate

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _load(gate: Gate, tasks: int, window: list[int]) -> tuple[int, list[int]]:
    """Run ``tasks`` holders; the window may change under them. Most in flight, entry order."""
    active = most = 0
    order: list[int] = []

    async def hold(n: int) -> None:
        nonlocal active, most
        async with gate:
            order.append(n)
            active += 1
            most = max(most, active)
            await asyncio.sleep(0.01)
            active -= 1

    await asyncio.gather(*(hold(n) for n in range(tasks)))
    return most, order


async def test_the_window_bounds_what_is_in_flight_and_entry_is_in_order() -> None:
    window = [3]
    most, order = await _load(Gate(10, lambda: window[0]), 30, window)
    assert most == 3
    assert order == list(range(30))


async def test_the_ceiling_bounds_a_wide_window() -> None:
    most, _ = await _load(Gate(4, lambda: 100), 30, [100])
    assert most == 4


async def test_a_window_that_opens_admits_more_and_one_that_closes_admits_fewer() -> None:
    window = [1]
    gate = Gate(10, lambda: window[0])
    seen: list[int] = []
    active = 0

    async def hold() -> None:
        nonlocal active
        async with gate:
            active += 1
            seen.append(active)
            await asyncio.sleep(0.01)
            active -= 1

    first = asyncio.gather(*(hold() for _ in range(20)))
    await asyncio.sleep(0.025)
    window[0] = 5
    await first
    assert max(seen[:2]) == 1 and max(seen) == 5
    window[0] = 2
    seen.clear()
    await asyncio.gather(*(hold() for _ in range(20)))
    assert max(seen) == 2


async def test_a_cancelled_waiter_takes_no_slot() -> None:
    gate = Gate(1, lambda: 1)
    entered: list[str] = []

    async def hold(name: str, seconds: float) -> None:
        async with gate:
            entered.append(name)
            await asyncio.sleep(seconds)

    first = asyncio.ensure_future(hold("first", 0.02))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(hold("second", 0))
    third = asyncio.ensure_future(hold("third", 0))
    await asyncio.sleep(0)
    second.cancel()
    await asyncio.gather(first, third)
    with pytest.raises(asyncio.CancelledError):
        await second
    assert entered == ["first", "third"]
