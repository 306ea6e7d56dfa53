"""The list helper without HTTP: stop rules, the page size limit, never following ``next``.

``pages`` and ``count`` take the page fetch as a function, so a list is simulated by a plain
function over a Python list (the client side is covered against a real server in
test_client.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest

from thred_pipeline.thred import ThredError, ThredResponse
from thred_pipeline.thred.pagination import MAX_PAGE_SIZE, count, pages

pytestmark = pytest.mark.anyio

PATH = "businesses/b-1/customers/"


class Listing:
    """One list of ``total`` items, answered in the shape ``style`` names."""

    def __init__(self, total: int, style: str = "page_info") -> None:
        self.items = [{"id": n} for n in range(total)]
        self.style = style
        self.asked: list[dict[str, Any]] = []

    async def __call__(self, params: Mapping[str, Any]) -> ThredResponse:
        self.asked.append(dict(params))
        page, size = params["page"], params["page_size"]
        total_pages = max(1, math.ceil(len(self.items) / size))
        body: dict[str, Any] = {"results": self.items[(page - 1) * size : page * size]}
        if self.style in ("page_info", "both"):
            body["page_info"] = {"total_pages": total_pages, "total_count": len(self.items)}
        if self.style in ("next", "both"):
            body["next"] = "https://elsewhere.invalid/?page=2" if page < total_pages else None
        if self.style != "bare":
            body["count"] = len(self.items)
        return ThredResponse(200, body)


async def read(listing: Listing, page_size: int = 10, **params: Any) -> list[Any]:
    generator = pages(listing, params, page_size=page_size, path=PATH, business_id="b-1")
    return [item async for item in generator]


@pytest.mark.parametrize("style", ["page_info", "next", "both", "bare"])
async def test_every_item_once_and_no_page_past_the_last(style: str) -> None:
    listing = Listing(25, style)
    assert [i["id"] for i in await read(listing, status="open")] == list(range(25))
    assert [a["page"] for a in listing.asked] == [1, 2, 3]
    assert all(a["status"] == "open" and a["page_size"] == 10 for a in listing.asked)


async def test_an_exact_multiple_ends_on_the_count_or_an_empty_page() -> None:
    with_pages = Listing(20, "page_info")
    assert len(await read(with_pages)) == 20 and len(with_pages.asked) == 2
    bare = Listing(20, "bare")  # nothing says it is done: the empty third page does
    assert len(await read(bare)) == 20 and len(bare.asked) == 3


async def test_the_next_url_is_never_requested() -> None:
    listing = Listing(15, "next")
    await read(listing)
    assert all(set(a) == {"page", "page_size"} for a in listing.asked)


@pytest.mark.parametrize("size", [0, MAX_PAGE_SIZE + 1])
async def test_page_size_outside_thred_limits_is_refused(size: int) -> None:
    with pytest.raises(ValueError):
        await read(Listing(1), page_size=size)


@pytest.mark.parametrize("body", [{"count": 3}, [1, 2], None, {"results": "x"}])
async def test_a_body_without_results_is_an_error(body: Any) -> None:
    async def broken(params: Mapping[str, Any]) -> ThredResponse:
        return ThredResponse(200, body)

    with pytest.raises(ThredError) as info:
        [i async for i in pages(broken, None, page_size=10, path=PATH, business_id="b-1")]
    err = info.value
    assert (err.error_code, err.path, err.business_id) == (
        "invalid_response",
        "/v1/platform/businesses/b-1/customers/",
        "b-1",
    )


async def test_count_reads_count_or_total_count() -> None:
    listing = Listing(42)
    assert await count(listing, {"country": "GB"}, path=PATH, business_id=None) == 42
    assert listing.asked == [{"country": "GB", "page": 1, "page_size": 1}]

    async def page_info_only(params: Mapping[str, Any]) -> ThredResponse:
        return ThredResponse(200, {"page_info": {"total_count": 7}, "results": []})

    assert await count(page_info_only, None, path=PATH, business_id=None) == 7

    async def no_count(params: Mapping[str, Any]) -> ThredResponse:
        return ThredResponse(200, {"count": True, "results": []})

    with pytest.raises(ThredError, match="integer 'count'"):
        await count(no_count, None, path=PATH, business_id=None)
