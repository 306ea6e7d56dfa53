"""Chunks in flight: a chunk's first requests leave before the next chunk is planned, the
records held stay within the limit, and a failed chunk's error reaches the caller."""

from __future__ import annotations

import asyncio

import pytest

from thred_pipeline.sync.flow import TURNS, InFlight

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_chunk_gets_the_loop_before_the_caller_plans_the_next_one() -> None:
    """Planning holds the loop; a chunk that needs three turns to put its requests on the wire
    (start its records' tasks, pass the gate, write) has done so when ``add`` returns."""
    steps: list[str] = []

    async def chunk() -> None:
        steps.append("records started")
        await asyncio.sleep(0)
        steps.append("through the gate")
        await asyncio.sleep(0)
        steps.append("request written")
        await asyncio.Event().wait()  # waiting for the answer

    flow = InFlight(limit=10)
    await flow.add(chunk(), 1)
    planned_next_at = list(steps)  # the caller plans the next chunk now, without awaiting
    assert planned_next_at == ["records started", "through the gate", "request written"]
    assert TURNS >= 3
    await flow.cancel()


async def test_records_held_stay_within_the_limit_and_a_chunk_starts_as_room_frees() -> None:
    held = most = 0
    release = [asyncio.Event() for _ in range(4)]

    async def chunk(n: int, records: int) -> None:
        nonlocal held, most
        held += records
        most = max(most, held)
        await release[n].wait()
        held -= records

    flow = InFlight(limit=10)
    await flow.add(chunk(0, 6), 6)
    await flow.add(chunk(1, 4), 4)
    adding = asyncio.ensure_future(flow.add(chunk(2, 5), 5))  # no room until one ends
    await asyncio.sleep(0)
    assert not adding.done() and held == 10
    release[0].set()
    await adding
    assert held == 9
    release[1].set()
    release[2].set()
    await flow.drain()
    assert most == 10 and held == 0


async def test_a_chunk_larger_than_the_limit_still_runs_alone() -> None:
    ran: list[int] = []

    async def chunk() -> None:
        ran.append(1)

    flow = InFlight(limit=10)
    await flow.add(chunk(), 50)
    await flow.drain()
    assert ran == [1]


async def test_a_failed_chunk_raises_at_drain_and_cancel_stops_the_others() -> None:
    stopped = asyncio.Event()

    async def fails() -> None:
        raise RuntimeError("chunk failed")

    async def waits() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    flow = InFlight(limit=10)
    await flow.add(waits(), 1)
    await flow.add(fails(), 1)
    with pytest.raises(RuntimeError, match="chunk failed"):
        await flow.drain()
    await flow.cancel()
    assert stopped.is_set()
