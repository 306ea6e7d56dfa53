"""A business's requests in flight: at most what its rate governor's window allows.

The engine's ``concurrency`` is the ceiling; the governor's window (``thred.governor``) is
where a business actually is: it grows with successes and halves with each 429, so a
business near its quota keeps few requests on their way and one with room climbs back to the
ceiling within a few round trips. Waiters go in arrival order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from types import TracebackType

__all__ = ["Gate"]


class Gate:
    """``async with gate:`` around one record's requests (see the module docstring)."""

    def __init__(self, ceiling: int, window: Callable[[], int]) -> None:
        self._ceiling = ceiling
        self._window = window
        self._active = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    def __repr__(self) -> str:
        return f"Gate(active={self._active}, waiting={len(self._waiting)}, limit={self.limit})"

    @property
    def limit(self) -> int:
        return max(1, min(self._ceiling, self._window()))

    async def __aenter__(self) -> Gate:
        if self._waiting or self._active >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._release()  # woken, then cancelled: the slot goes to the next one
                else:
                    self._waiting.remove(waiter)
                raise
        else:
            self._active += 1
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()

    def _release(self) -> None:
        self._active -= 1
        free = self.limit - self._active
        while free > 0 and self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                self._active += 1  # the slot is handed over, not raced for
                waiter.set_result(None)
                free -= 1
