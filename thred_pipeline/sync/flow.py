"""Chunks in flight: the next chunk is read, planned and written ahead while earlier ones are
being sent, so the businesses of consecutive chunks send side by side (issue 8: chunks are
ordered by business, and waiting for each one meant businesses rarely ran in parallel).

The per-business request limit is the business's semaphore, shared by every chunk of a run;
what this bounds is the records held in memory.

Reading and planning a chunk is CPU work that holds the event loop (tens of milliseconds for
500 records), so a chunk handed over and left to wait for the loop would send nothing until
the next chunk is planned: ``add`` gives the loop a few turns (``TURNS``) first, enough for
the chunk's task to start its records' tasks and for those to pass their business's gate and
write their requests (three with httpx's transport; counted in the B1 timeline of issue 8,
where without them a business's first requests left one chunk's planning late, and all
four businesses' after the whole entity was planned once reference data was at hand).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

TURNS = 4  # loop turns a started chunk gets before the caller plans the next one


class InFlight:
    """Chunk tasks running, up to ``limit`` records in all (one chunk at least)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._tasks: dict[asyncio.Future[None], int] = {}
        self._records = 0

    async def add(self, sending: Coroutine[Any, Any, None], records: int) -> None:
        """Start sending a chunk once there is room, and let its first requests leave before
        the caller goes back to planning; a failed chunk's error is raised here."""
        while self._tasks and self._records + records > self.limit:
            await self._wait(asyncio.FIRST_COMPLETED)
        self._tasks[asyncio.ensure_future(sending)] = records
        self._records += records
        for _ in range(TURNS):
            await asyncio.sleep(0)

    async def drain(self) -> None:
        """Wait for every chunk; the first error is raised."""
        while self._tasks:
            await self._wait(asyncio.FIRST_EXCEPTION)

    async def cancel(self) -> None:
        """Stop whatever is still running (the run failed) and wait for it to unwind."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._records = 0

    async def _wait(self, when: str) -> None:
        done, _ = await asyncio.wait(self._tasks, return_when=when)
        for task in done:
            self._records -= self._tasks.pop(task)
        for task in done:
            task.result()  # raises the chunk's error
