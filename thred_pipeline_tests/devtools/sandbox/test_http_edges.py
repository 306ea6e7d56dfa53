"""Malformed input, huge bodies, unknown routes, pagination: always 4xx, never 500."""

from __future__ import annotations

import json
import random

import httpx
import pytest
from thred_devtools.sandbox import SandboxConfig, create_app

from .conftest import Api, Biz, stats


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"[]",
        b'"text"',
        b"null",
        b"1",
        b"\xff\xfe",
        b'{"a": NaN',
        b'{"company_name": "x", "metadata": {"a": NaN}}',
        b'{"company_name": "x", "metadata": {"a": Infinity}}',
        b'{"company_name": "x\\ud800"}',
        b'{"company_name": "x", "metadata": {"\\udfff": 1}}',
        b'{"company_name": "x", "metadata": {"n": 1' + b"0" * 5000 + b"}}",
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_malformed_json(biz: Biz, raw: bytes):
    r = biz.http.post(
        biz.url("customers/"),
        content=raw,
        headers={**biz.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) == {"error", "error_code", "details"}
    assert body["error_code"] == "validation_error"


@pytest.mark.parametrize("depth", [40, 3000])
def test_deeply_nested_metadata_is_rejected_cleanly(biz: Biz, depth: int):
    raw = (
        json.dumps({"company_name": "x"})[:-1]
        + ', "metadata": '
        + '{"a": ' * depth
        + "1"
        + "}" * depth
        + "}"
    )
    r = biz.http.post(biz.url("customers/"), content=raw.encode(), headers=biz.headers)
    assert r.status_code == 400, r.text


def test_huge_body_is_413(biz: Biz):
    big = {"company_name": "x", "notes": "n" * 1_100_000}
    r = biz.post("customers/", big)
    assert r.status_code == 413
    assert r.json()["error_code"] == "request_too_large"


def test_huge_chunked_body_is_413(biz: Biz):
    def chunks():
        for _ in range(200):
            yield b"x" * 10_000

    r = biz.http.post(biz.url("customers/"), content=chunks(), headers=biz.headers)
    assert r.status_code == 413


def test_unknown_routes_and_methods(biz: Biz, http: httpx.Client):
    r = biz.get("nothing-here/")
    assert r.status_code == 404 and r.json()["error_code"] == "not_found"
    r = http.get(f"/v1/platform/businesses/{biz.id}/customers", headers=biz.headers)  # no slash
    assert r.status_code == 404
    r = http.delete(biz.url("customers/"), headers=biz.headers)
    assert r.status_code == 405 and r.json()["error_code"] == "method_not_allowed"


def test_pagination(biz: Biz):
    for i in range(7):
        biz.customer(external_id=f"page-{i}")
    r = biz.get("customers/", params={"page_size": 3})
    body = r.json()
    assert body["count"] == 7
    assert body["page_info"] == {
        "total_count": 7,
        "current_page": 1,
        "total_pages": 3,
        "page_size": 3,
    }
    assert [c["external_id"] for c in body["results"]] == ["page-0", "page-1", "page-2"]
    assert body["previous"] is None and "page=2" in body["next"]
    seen = []
    url: str | None = body["next"]
    seen.extend(c["external_id"] for c in body["results"])
    while url:
        page = biz.http.get(url, headers=biz.headers).json()
        seen.extend(c["external_id"] for c in page["results"])
        url = page["next"]
    assert seen == [f"page-{i}" for i in range(7)]
    last = biz.get("customers/", params={"page_size": 3, "page": 3}).json()
    assert last["next"] is None and "page=2" in last["previous"] and len(last["results"]) == 1
    beyond = biz.get("customers/", params={"page_size": 3, "page": 9}).json()
    assert beyond["results"] == [] and beyond["next"] is None
    assert biz.get("customers/").json()["page_info"]["page_size"] == 20
    for params in (
        {"page": 0},
        {"page": -1},
        {"page": "x"},
        {"page_size": 0},
        {"page_size": 101},
        {"page_size": "big"},
    ):
        r = biz.get("customers/", params=params)
        assert r.status_code == 400, params
        assert r.json()["error_code"] == "validation_error"
        assert set(r.json()["details"]) <= {"page", "page_size"}
    assert biz.get("customers/", params={"page_size": 100}).status_code == 200


def test_empty_list_shape(biz: Biz):
    body = biz.get("vendors/").json()
    assert body == {
        "count": 0,
        "page_info": {"total_count": 0, "current_page": 1, "total_pages": 1, "page_size": 20},
        "results": [],
        "next": None,
        "previous": None,
    }


def test_bad_query_values(biz: Biz):
    assert biz.get("customers/", params={"is_archived": "maybe"}).status_code == 400
    assert biz.get("invoices/", params={"min_amount": "lots"}).status_code == 400
    assert biz.get("invoices/", params={"due_at_start": "yesterday"}).status_code == 400


def test_random_garbage_never_500(api: Api, http: httpx.Client):
    """Fuzz every create endpoint with type-confused bodies: 4xx (or 2xx), never 5xx."""
    biz = api.new_business()
    rng = random.Random(7)
    values = [None, True, 0, -1, 1.5, "", "x" * 300, [], {}, [1], {"a": 1}, "2025-01-01", 10**30]
    fields = [
        "external_id",
        "customer_id",
        "line_items",
        "allocations",
        "total_amount_cents",
        "payment_date",
        "unit_price",
        "quantity",
        "tax_code",
        "sales_taxes",
        "amount_cents",
        "vendor_id",
        "invoice_id",
        "payment_method",
        "currency",
        "company_name",
        "email",
        "due_at",
        "payment_ids",
        "metadata",
    ]
    paths = [
        "customers/",
        "vendors/",
        "invoices/",
        "invoices/payments/",
        "invoices/refunds/",
        "payouts/",
        "bills/",
        "bills/payments/",
        "vendor-credits/",
        "general-ledger/chart-of-accounts/",
    ]
    for _ in range(300):
        body = {rng.choice(fields): rng.choice(values) for _ in range(rng.randint(0, 6))}
        if rng.random() < 0.3:
            body["line_items"] = [{rng.choice(fields): rng.choice(values) for _ in range(3)}]
        r = biz.post(rng.choice(paths), body)
        assert r.status_code < 500, (body, r.text)
    for method in ("PUT", "PATCH"):
        r = http.request(method, biz.url(""), json={"legal_name": None}, headers=biz.headers)
        assert r.status_code < 500
    assert stats(http)["duplicate_external_ids"] == 0


@pytest.mark.filterwarnings("ignore:Using .httpx. with .starlette.testclient")
def test_testclient_in_process():
    """The app also works in-process (no socket), e.g. for quick unit tests."""
    from fastapi.testclient import TestClient

    app = create_app(SandboxConfig(partners={"p": "k"}, admin_enabled=False))
    with TestClient(app) as client:
        r = client.post("/v1/platform/oauth2/token/", auth=("p", "k"))
        assert r.status_code == 200
        assert client.get("/_sandbox/stats").status_code == 404  # admin disabled
