"""A request the wire cannot carry never raises from inside httpx.

An Idempotency-Key built from an id with non-ASCII characters is percent-encoded (so the
record still syncs, with the same key on every attempt); what cannot be sent at all raises
``RequestNotSendable`` (a ``ThredError``: one record's problem) before anything is sent.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from thred_pipeline.thred import (
    RequestNotSendable,
    ThredError,
    header_safe_idempotency_key,
)
from thred_pipeline_tests.thred.conftest import FakeThred, Harness, Reply

pytestmark = pytest.mark.anyio

B1 = "55555555-aaaa-4bbb-8ccc-000000000005"
PAYMENTS = f"/v1/platform/businesses/{B1}/invoices/payments/"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("pay-42", "pay-42"),
        ("pay-with inner space", "pay-with inner space"),
        ("pay-café", "pay-caf%C3%A9"),
        ("pay-支払い", "pay-%E6%94%AF%E6%89%95%E3%81%84"),
        ("pay-100%-café", "pay-100%25-caf%C3%A9"),  # "%" is encoded too: no ambiguity
        ("pay-tab\there", "pay-tab%09here"),
        (" pay-lead", "%20pay-lead"),
        ("pay-😀", "pay-%F0%9F%98%80"),
    ],
)
def test_header_safe_key(key: str, expected: str) -> None:
    assert header_safe_idempotency_key(key) == expected
    assert header_safe_idempotency_key(key) == header_safe_idempotency_key(key)
    assert expected.isascii() and expected.isprintable()


def test_header_safe_key_is_one_to_one_and_bounded() -> None:
    keys = ["pay-é", "pay-%C3%A9x", "pay-e\u0301", "pay-É", "pay-é " + "x", "pay-ё"]
    encoded = [header_safe_idempotency_key(k) for k in keys]
    assert len(set(encoded)) == len(keys)
    long_key = "pay-" + "é" * 200  # 1,200 characters once encoded
    hashed = header_safe_idempotency_key(long_key)
    assert hashed.startswith("sha256-") and len(hashed) == 71
    assert hashed == header_safe_idempotency_key(long_key)
    assert hashed != header_safe_idempotency_key(long_key + "é")
    longest = "é" * 42 + "abc"  # 42 * 6 + 3 = 255 characters once encoded: kept readable
    assert header_safe_idempotency_key(longest) == "%C3%A9" * 42 + "abc"
    with pytest.raises(RequestNotSendable):
        header_safe_idempotency_key("")


async def test_non_ascii_key_is_sent_encoded_on_every_attempt(
    fake: FakeThred, harness: Harness
) -> None:
    fake.queue("POST", PAYMENTS, Reply(503), Reply(201, {"id": "p-1"}))
    response = await harness.client.request(
        "POST",
        f"businesses/{B1}/invoices/payments/",
        business_id=B1,
        json={"external_id": "pay-café"},
        idempotency_key="pay-café",
    )
    assert response.status_code == 201
    sent = [s.headers["idempotency-key"] for s in fake.hits("POST", PAYMENTS)]
    assert sent == ["pay-caf%C3%A9", "pay-caf%C3%A9"]
    assert fake.hits("POST", PAYMENTS)[0].body == b'{"external_id":"pay-caf\\u00e9"}'


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"json": {"amount_cents": math.nan}}, "body"),
        ({"json": {"amount": Decimal("1.10")}}, "body"),
        ({"idempotency_key": ""}, "Idempotency-Key"),
        ({"path": "businesses/../other/"}, "path"),
        ({"path": "businesses/ca fé/"}, "path"),
        ({"business_id": "biz/../x"}, "path"),
    ],
)
async def test_unsendable_request_is_a_record_error_and_nothing_is_sent(
    fake: FakeThred, harness: Harness, kwargs: dict[str, Any], field: str
) -> None:
    args: dict[str, Any] = {"path": f"businesses/{B1}/invoices/payments/", "json": {}}
    args.update(kwargs)
    path = args.pop("path")
    with pytest.raises(RequestNotSendable) as info:
        await harness.client.request("POST", path, **args)
    err = info.value
    assert isinstance(err, ThredError)
    assert (err.error_code, err.status) == ("unsendable_request", None)
    assert field in err.details and err.method == "POST"
    assert fake.seen == []  # not even a token request


async def test_non_ascii_payment_syncs_on_the_sandbox(
    sandbox_url: str, harness_factory: Callable[..., Harness]
) -> None:
    client = harness_factory(
        sandbox_url, partner_id="demo-partner", api_key="sandbox-demo-key"
    ).client
    business = await client.request(
        "POST",
        "businesses/",
        json={
            "external_id": f"biz-ascii-{uuid.uuid4().hex[:10]}",
            "legal_name": "Café Ltd",
            "email": "owner@cafe.example",
            "country": "GB",
            "entity_type": "limited",
            "base_currency": "GBP",
        },
    )
    bid = str(business.body["id"])
    customer = await client.request(
        "POST",
        f"businesses/{bid}/customers/",
        business_id=bid,
        json={"external_id": "cus-zoë", "company_name": "Zoë"},
    )
    invoice = await client.request(
        "POST",
        f"businesses/{bid}/invoices/",
        business_id=bid,
        json={
            "external_id": "inv-zoë-1",
            "customer_id": customer.body["id"],
            "invoice_number": "INV-Ö1",
            "sent_at": "2025-01-15",
            "due_at": "2025-02-14",
            "line_items": [{"description": "Crème", "quantity": 1, "unit_price": 10000}],
        },
    )
    body = {
        "external_id": "pay-zoë-1",
        "customer_id": customer.body["id"],
        "total_amount_cents": 10000,
        "payment_date": "2025-01-20",
        "allocations": [{"invoice_id": invoice.body["id"], "amount_cents": 10000}],
    }
    path = f"businesses/{bid}/invoices/payments/"
    first = await client.request(
        "POST", path, business_id=bid, json=body, idempotency_key="pay-zoë-1"
    )
    again = await client.request(
        "POST", path, business_id=bid, json=body, idempotency_key="pay-zoë-1"
    )
    assert (first.status_code, again.status_code) == (201, 200)  # replayed, not doubled
    assert first.body["payment"]["idempotency_key"] == "pay-zo%C3%AB-1"
    assert again.body["payment"]["id"] == first.body["payment"]["id"]
    assert await client.get_count(path, business_id=bid) == 1
