"""Fixtures: real sandbox servers per session, reached over HTTP with httpx.

``sandbox``/``http``/``api``/``biz`` reach the default, strict sandbox (exactly the
documented response fields). A test marked ``@pytest.mark.extended_fields`` gets a second
server started with ``extended_fields=True`` instead, for the sandbox's inferred fields
(invoice totals, outstanding balances, ...); it only starts when such a test runs.
Each test gets its own business (unique external_id), so tests never see each other's
objects and the shared servers never need a reset.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from thred_devtools.sandbox import RunningSandbox, SandboxConfig, start_sandbox

PARTNER = ("demo-partner", "sandbox-demo-key")
_counter = itertools.count()


def partner_token(http: httpx.Client, creds: tuple[str, str] = PARTNER) -> str:
    r = http.post(
        "/v1/platform/oauth2/token/", auth=creds, data={"grant_type": "client_credentials"}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Biz:
    """One business plus helpers that talk to its routes with a business-scoped token."""

    def __init__(self, http: httpx.Client, partner: str, business: dict[str, Any]) -> None:
        self.http = http
        self.partner = partner
        self.data = business
        self.id: str = business["id"]
        self.base = f"/v1/platform/businesses/{self.id}/"
        r = http.post(f"/v1/platform/{self.id}/oauth2/token/", headers=bearer(partner))
        assert r.status_code == 200, r.text
        self.token = r.json()["access_token"]
        self.headers = bearer(self.token)

    def url(self, path: str) -> str:
        return self.base + path.lstrip("/")

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(
            self.url(path), headers={**self.headers, **kw.pop("headers", {})}, **kw
        )

    def post(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        headers = {**self.headers, **kw.pop("headers", {})}
        return self.http.post(self.url(path), json=json, headers=headers, **kw)

    def put(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return self.http.put(self.url(path), json=json, headers=self.headers, **kw)

    def patch(self, path: str, json: Any = None) -> httpx.Response:
        return self.http.patch(self.url(path), json=json, headers=self.headers)

    # ---------------------------------------------------------------- object helpers
    def ok(self, r: httpx.Response, status: int = 201) -> dict[str, Any]:
        assert r.status_code == status, r.text
        body: dict[str, Any] = r.json()
        return body

    def customer(self, **kw: Any) -> dict[str, Any]:
        n = next(_counter)
        body = {"external_id": f"cust-{n}", "company_name": f"Customer {n}", **kw}
        return self.ok(self.post("customers/", body))

    def vendor(self, **kw: Any) -> dict[str, Any]:
        n = next(_counter)
        body = {"external_id": f"vend-{n}", "company_name": f"Vendor {n}", **kw}
        return self.ok(self.post("vendors/", body))

    def invoice(
        self, customer_id: str, lines: list[dict[str, Any]] | None = None, **kw: Any
    ) -> dict[str, Any]:
        n = next(_counter)
        body = {
            "external_id": f"inv-{n}",
            "customer_id": customer_id,
            "invoice_number": f"INV-{n}",
            "sent_at": "2025-01-15",
            "due_at": "2025-02-14",
            "line_items": lines or [{"description": "Widget", "quantity": 1, "unit_price": 10000}],
            **kw,
        }
        return self.ok(self.post("invoices/", body))

    def pay(
        self,
        customer_id: str,
        allocations: list[tuple[str, int]],
        total: int | None = None,
        **kw: Any,
    ) -> dict[str, Any]:
        n = next(_counter)
        body = {
            "external_id": f"pay-{n}",
            "customer_id": customer_id,
            "total_amount_cents": total if total is not None else sum(a for _, a in allocations),
            "payment_date": "2025-01-20",
            "allocations": [{"invoice_id": i, "amount_cents": a} for i, a in allocations],
            **kw,
        }
        return self.ok(self.post("invoices/payments/", body))["payment"]

    def bill(
        self, vendor_id: str, lines: list[dict[str, Any]] | None = None, **kw: Any
    ) -> dict[str, Any]:
        n = next(_counter)
        body = {
            "external_id": f"bill-{n}",
            "vendor_id": vendor_id,
            "bill_number": f"BILL-{n}",
            "bill_date": "2025-01-10",
            "due_at": "2025-02-09",
            "line_items": lines or [{"description": "Paper", "quantity": 1, "unit_price": 5000}],
            **kw,
        }
        return self.ok(self.post("bills/", body))


class Api:
    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.partner = partner_token(http)
        self.partner_headers = bearer(self.partner)

    def create_business(self, **kw: Any) -> httpx.Response:
        body = {
            "external_id": f"biz-{uuid.uuid4().hex[:12]}",
            "legal_name": "Acme Ltd",
            "email": "owner@acme.example",
            "country": "GB",
            "entity_type": "limited",
            "base_currency": "GBP",
            **kw,
        }
        return self.http.post("/v1/platform/businesses/", json=body, headers=self.partner_headers)

    def new_business(self, **kw: Any) -> Biz:
        r = self.create_business(**kw)
        assert r.status_code == 201, r.text
        return Biz(self.http, self.partner, r.json())


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "extended_fields: run against the sandbox started with extended_fields=True "
        "(the sandbox's inferred fields, e.g. invoice totals)",
    )


@pytest.fixture(scope="session")
def strict_sandbox() -> Iterator[RunningSandbox]:
    with start_sandbox(SandboxConfig()) as running:
        yield running


@pytest.fixture(scope="session")
def extended_sandbox() -> Iterator[RunningSandbox]:
    with start_sandbox(SandboxConfig(extended_fields=True)) as running:
        yield running


@pytest.fixture(scope="session")
def strict_http(strict_sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=strict_sandbox.url, timeout=10) as client:
        yield client


@pytest.fixture(scope="session")
def extended_http(extended_sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=extended_sandbox.url, timeout=10) as client:
        yield client


@pytest.fixture(scope="session")
def strict_api(strict_http: httpx.Client) -> Api:
    return Api(strict_http)


@pytest.fixture(scope="session")
def extended_api(extended_http: httpx.Client) -> Api:
    return Api(extended_http)


def _mode(request: pytest.FixtureRequest) -> str:
    return "extended" if request.node.get_closest_marker("extended_fields") else "strict"


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> RunningSandbox:
    """The strict sandbox, or the extended one for tests marked ``extended_fields``."""
    running: RunningSandbox = request.getfixturevalue(f"{_mode(request)}_sandbox")
    return running


@pytest.fixture
def http(request: pytest.FixtureRequest) -> httpx.Client:
    client: httpx.Client = request.getfixturevalue(f"{_mode(request)}_http")
    return client


@pytest.fixture
def api(request: pytest.FixtureRequest) -> Api:
    chosen: Api = request.getfixturevalue(f"{_mode(request)}_api")
    return chosen


@pytest.fixture
def biz(api: Api) -> Biz:
    return api.new_business()


def stats(http: httpx.Client) -> dict[str, Any]:
    r = http.get("/_sandbox/stats")
    assert r.status_code == 200
    body: dict[str, Any] = r.json()
    return body
