"""Thred's list endpoints, read one way: ``page=1, 2, ...`` until the list says it is done.

Every list call of the client goes through ``pages`` (or ``count`` for a list's size), so
the stop rules, the page size limit and the refusal to follow ``next`` live in one place.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any

from thred_pipeline.thred.errors import ThredError
from thred_pipeline.thred.paths import platform_path
from thred_pipeline.thred.responses import ThredResponse

__all__ = ["MAX_PAGE_SIZE", "GetPage", "count", "pages"]

MAX_PAGE_SIZE = 100
"""Thred's documented maximum ``page_size``."""

GetPage = Callable[[Mapping[str, Any]], Awaitable[ThredResponse]]
"""``GET`` of one list with these query parameters (``ThredClient.request`` bound to a path)."""


def _invalid(
    problem: str, response: ThredResponse, path: str, business_id: str | None
) -> ThredError:
    return ThredError(
        f"list response has no {problem}",
        status=response.status_code,
        error_code="invalid_response",
        method="GET",
        path=platform_path(path),
        business_id=business_id,
    )


def _last_page(body: dict[str, Any], page: int, page_size: int, results: list[Any]) -> bool:
    """Stop on ``next: null``, on ``page >= page_info.total_pages``, or on an empty page;
    only when the server reports neither ``next`` nor ``total_pages``, on a short page."""
    if not results or ("next" in body and body["next"] is None):
        return True
    page_info = body.get("page_info")
    total_pages = page_info.get("total_pages") if isinstance(page_info, dict) else None
    if total_pages is not None:
        return isinstance(total_pages, int) and page >= total_pages
    return "next" not in body and len(results) < page_size


async def pages(
    get_page: GetPage,
    params: Mapping[str, Any] | None,
    *,
    page_size: int,
    path: str,
    business_id: str | None,
) -> AsyncGenerator[dict[str, Any], None]:
    """Yield every item of a paginated list (``path`` and ``business_id`` name it in errors).

    The ``next`` URL is never followed: it could point at another host, and the token would
    go with it. Lists are offset-paginated, so rows created while iterating may shift pages.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    page = 1
    while True:
        response = await get_page({**(params or {}), "page": page, "page_size": page_size})
        body = response.body
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(results, list):
            raise _invalid("'results' array", response, path, business_id)
        for item in results:
            yield item
        if _last_page(body, page, page_size, results):
            return
        page += 1


async def count(
    get_page: GetPage, params: Mapping[str, Any] | None, *, path: str, business_id: str | None
) -> int:
    """Number of items in a paginated list, read from ``count`` with ``page_size=1``."""
    response = await get_page({**(params or {}), "page": 1, "page_size": 1})
    body = response.body
    found: Any = None
    if isinstance(body, dict):
        found = body.get("count")
        page_info = body.get("page_info")
        if found is None and isinstance(page_info, dict):
            found = page_info.get("total_count")
    if isinstance(found, bool) or not isinstance(found, int):
        raise _invalid("integer 'count'", response, path, business_id)
    return found
