"""The two documented answers to a repeated external_id, and adopting the stored object.

Thred's create pages document 200 with the stored object; its error guide documents
``409 duplicate_external_id``. The client turns the 409 into ``ThredDuplicateExternalId``
(carrying the external_id) and ``find_by_external_id`` finds the stored object to adopt.
"""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from thred_devtools.sandbox import SandboxConfig, start_sandbox

from thred_pipeline.thred import (
    ThredClient,
    ThredDuplicateExternalId,
    ThredError,
    ThredValidationError,
)
from thred_pipeline_tests.thred.conftest import FakeThred, Harness, Reply, Seen

pytestmark = pytest.mark.anyio

B1 = "44444444-aaaa-4bbb-8ccc-000000000004"
CUSTOMERS = f"/v1/platform/businesses/{B1}/customers/"
DUPLICATE = {
    "error": "A resource with this external_id already exists",
    "error_code": "duplicate_external_id",
    "details": {"external_id": ["already exists"]},
}


async def test_409_duplicate_external_id_is_its_own_error(
    fake: FakeThred, harness: Harness
) -> None:
    fake.queue("POST", CUSTOMERS, Reply(409, DUPLICATE))
    with pytest.raises(ThredDuplicateExternalId) as info:
        await harness.client.request(
            "POST",
            f"businesses/{B1}/customers/",
            business_id=B1,
            json={"external_id": "cus-7", "company_name": "Seven"},
        )
    err = info.value
    assert isinstance(err, ThredError) and not isinstance(err, ThredValidationError)
    assert (err.status, err.error_code, err.external_id) == (409, "duplicate_external_id", "cus-7")
    assert (err.method, err.path, err.business_id) == ("POST", CUSTOMERS, B1)
    assert len(fake.hits("POST", CUSTOMERS)) == 1  # final: not retried
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is ThredDuplicateExternalId and again.external_id == "cus-7"


async def test_other_409s_stay_rejections(fake: FakeThred, harness: Harness) -> None:
    conflict = {"error": "Invoice is voided", "error_code": "invalid_state"}
    fake.queue("POST", CUSTOMERS, Reply(409, conflict))
    with pytest.raises(ThredValidationError) as info:
        await harness.client.request(
            "POST", f"businesses/{B1}/customers/", business_id=B1, json={"external_id": "c"}
        )
    assert not isinstance(info.value, ThredDuplicateExternalId)


def _listing(items: list[dict[str, Any]], page_size_seen: list[int]) -> Callable[[Seen], Reply]:
    def handler(seen: Seen) -> Reply:
        page = int(seen.query["page"][0])
        size = int(seen.query["page_size"][0])
        page_size_seen.append(size)
        wanted = seen.query.get("external_id", [None])[0]
        rows = [i for i in items if wanted is None or wanted in i["external_id"]]
        chunk = rows[(page - 1) * size : page * size]
        last = page * size >= len(rows)
        return Reply(200, {"count": len(rows), "next": None if last else "x", "results": chunk})

    return handler


async def test_find_pages_and_compares_exactly(fake: FakeThred, harness: Harness) -> None:
    items = [{"id": f"id-{n}", "external_id": f"cus-{n}"} for n in range(250)]
    sizes: list[int] = []
    fake.route("GET", CUSTOMERS, _listing(items, sizes))
    client = harness.client

    found = await client.find_by_external_id(
        f"businesses/{B1}/customers/", "cus-201", business_id=B1
    )
    assert found == {"id": "id-201", "external_id": "cus-201"}
    assert sizes == [100, 100, 100]  # the third page held it; no page past it was read

    # A partial-match filter (documented for payouts) still returns only the exact one.
    sizes.clear()
    found = await client.find_by_external_id(
        f"businesses/{B1}/customers/", "cus-2", business_id=B1, params={"external_id": "cus-2"}
    )
    assert found == {"id": "id-2", "external_id": "cus-2"}
    assert sizes == [100]

    assert (
        await client.find_by_external_id(f"businesses/{B1}/customers/", "cus-999", business_id=B1)
        is None
    )


# -- against the real sandbox -------------------------------------------------------------------


async def test_find_by_external_id_on_the_sandbox(
    sandbox_url: str, harness_factory: Callable[..., Harness]
) -> None:
    client: ThredClient = harness_factory(
        sandbox_url, partner_id="demo-partner", api_key="sandbox-demo-key"
    ).client
    biz_ext = f"biz-find-{uuid.uuid4().hex[:10]}"
    created = await client.request(
        "POST",
        "businesses/",
        json={
            "external_id": biz_ext,
            "legal_name": "Find Ltd",
            "email": "owner@find.example",
            "country": "GB",
            "entity_type": "limited",
            "base_currency": "GBP",
        },
    )
    business = str(created.body["id"])
    found_business = await client.find_by_external_id(
        "businesses/", biz_ext, business_id=None, params={"external_id": biz_ext}
    )
    assert found_business is not None and found_business["id"] == business

    path = f"businesses/{business}/customers/"
    ids = {}
    for n in range(7):
        response = await client.request(
            "POST",
            path,
            business_id=business,
            json={"external_id": f"cus-{n}", "company_name": f"Customer {n}"},
        )
        ids[f"cus-{n}"] = response.body["id"]

    # Paged (page_size 3 forces three pages) without the filter, and with it.
    unfiltered = await client.find_by_external_id(path, "cus-6", business_id=business, page_size=3)
    assert unfiltered is not None and unfiltered["id"] == ids["cus-6"]
    filtered = await client.find_by_external_id(
        path, "cus-4", business_id=business, params={"external_id": "cus-4"}
    )
    assert filtered is not None and filtered["id"] == ids["cus-4"]
    assert await client.find_by_external_id(path, "cus-77", business_id=business) is None


@pytest.fixture(scope="module")
def conflict_sandbox_url() -> Iterator[str]:
    """A real sandbox that answers a repeated external_id with 409 (Thred's error guide)."""
    with start_sandbox(SandboxConfig(duplicate_external_id="conflict")) as running:
        yield running.url


async def test_409_then_adopt_on_the_sandbox(
    conflict_sandbox_url: str, harness_factory: Callable[..., Harness]
) -> None:
    client = harness_factory(
        conflict_sandbox_url, partner_id="demo-partner", api_key="sandbox-demo-key"
    ).client
    business = {
        "external_id": f"biz-409-{uuid.uuid4().hex[:10]}",
        "legal_name": "Conflict Ltd",
        "email": "owner@conflict.example",
        "country": "GB",
        "entity_type": "limited",
        "base_currency": "GBP",
    }
    bid = str((await client.request("POST", "businesses/", json=business)).body["id"])
    with pytest.raises(ThredDuplicateExternalId) as again:
        await client.request("POST", "businesses/", json=business)
    assert (again.value.external_id, again.value.business_id) == (business["external_id"], None)
    stored = await client.find_by_external_id(
        "businesses/", business["external_id"], business_id=None
    )
    assert stored is not None and stored["id"] == bid

    path = f"businesses/{bid}/customers/"
    body = {"external_id": "cus-archived", "company_name": "Gone Ltd"}
    customer = str((await client.request("POST", path, business_id=bid, json=body)).body["id"])
    await client.request("POST", f"{path}{customer}/archive/", business_id=bid, json={})
    with pytest.raises(ThredDuplicateExternalId) as dup:
        await client.request("POST", path, business_id=bid, json=body)
    assert dup.value.external_id == "cus-archived" and dup.value.business_id == bid

    # Archived customers are hidden unless asked for: the caller passes the switch.
    lookup = {"external_id": "cus-archived"}
    assert await client.find_by_external_id(path, "cus-archived", business_id=bid) is None
    adopted = await client.find_by_external_id(
        path, "cus-archived", business_id=bid, params={**lookup, "include_archived": True}
    )
    assert adopted is not None and adopted["id"] == customer
