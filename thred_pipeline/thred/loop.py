"""The event loop every sync and reconciliation runs on: uvloop where it exists.

The client's own CPU per request is mostly event-loop and HTTP bookkeeping (issue 8's
profiles); uvloop runs the loop in C. It does not exist on Windows, where asyncio's loop
does the same work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

try:
    import uvloop
except ImportError:  # pragma: no cover - Windows has no uvloop
    uvloop = None  # type: ignore[assignment]

__all__ = ["run"]

T = TypeVar("T")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    return None if uvloop is None else uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the fastest loop available."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main)
