"""Fault switches: latency, 429 + Retry-After, 5xx, hangs, commit-then-drop."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from thred_devtools.sandbox import (
    FaultConfig,
    RunningSandbox,
    SandboxConfig,
    create_app,
    start_sandbox,
)

from .conftest import Api, Biz, stats

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module")
def chaos() -> Iterator[RunningSandbox]:
    with start_sandbox(SandboxConfig()) as running:
        yield running


@pytest.fixture
def http(chaos: RunningSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=chaos.url, timeout=10) as client:
        yield client
        client.post("/_sandbox/faults", json={"reset": True})


@pytest.fixture
def biz(http: httpx.Client) -> Biz:
    http.post("/_sandbox/faults", json={"reset": True})
    return Api(http).new_business()


def faults(http: httpx.Client, **settings: Any) -> None:
    r = http.post("/_sandbox/faults", json={"reset": True, **settings})
    assert r.status_code == 200, r.text


def test_rate_limit_per_business(http: httpx.Client, biz: Biz):
    other = Api(http).new_business()
    faults(http, rate_limit_rps=2, rate_limit_burst=2)
    codes = [biz.get("customers/").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    r = biz.get("customers/")
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "1"
    assert r.json()["error_code"] == "rate_limited" and set(r.json()) == {
        "error",
        "error_code",
        "details",
    }
    assert other.get("customers/").status_code == 200  # its own bucket
    assert http.get("/_sandbox/stats").status_code == 200  # admin is never limited
    time.sleep(0.6)
    assert biz.get("customers/").status_code == 200
    assert stats(http)["faults"]["429"] >= 2


def test_injected_5xx_commit_nothing(http: httpx.Client, biz: Biz):
    faults(http, error_503_rate=1.0)
    r = biz.post("customers/", {"external_id": "never", "company_name": "x"})
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.json()["error_code"] == "server_error"
    faults(http, error_500_rate=1.0)
    assert biz.get("customers/").status_code == 500
    faults(http, error_502_rate=1.0)
    assert biz.get("customers/").status_code == 502
    s = stats(http)
    assert s["faults"]["503"] >= 1 and s["faults"]["500"] >= 1 and s["faults"]["502"] >= 1
    assert "customers" not in s["objects"].get(biz.id, {})
    faults(http)
    assert biz.get("customers/", params={"external_id": "never"}).json()["count"] == 0


def test_seeded_faults_are_reproducible(http: httpx.Client, biz: Biz):
    def run() -> list[int]:
        faults(http, seed=42, error_500_rate=0.3, error_503_rate=0.2)
        return [biz.get("customers/").status_code for _ in range(30)]

    first, second = run(), run()
    assert first == second
    assert {200, 500, 503} <= set(first)


def test_latency(http: httpx.Client, biz: Biz):
    faults(http, latency_ms=200, jitter_ms=50)
    start = time.monotonic()
    assert biz.get("customers/").status_code == 200
    assert time.monotonic() - start >= 0.2
    start = time.monotonic()
    http.get("/_sandbox/stats")
    assert time.monotonic() - start < 0.2  # never on /_sandbox/


def test_hang_then_commit(http: httpx.Client, biz: Biz):
    faults(http, hang_rate=1.0, hang_s=0.8)
    with pytest.raises(httpx.ReadTimeout):
        biz.post("customers/", {"external_id": "slow", "company_name": "x"}, timeout=0.2)
    time.sleep(1.0)
    faults(http)
    assert biz.get("customers/", params={"external_id": "slow"}).json()["count"] == 1
    assert biz.post("customers/", {"external_id": "slow", "company_name": "x"}).status_code == 200


def test_commit_then_drop_cuts_the_connection(http: httpx.Client, biz: Biz):
    faults(http, drop_after_commit_rate=1.0)
    start = time.monotonic()
    with pytest.raises(httpx.RemoteProtocolError):
        biz.post("customers/", {"external_id": "dropped", "company_name": "x"})
    assert time.monotonic() - start < 2.0  # cut at once, not stalled
    assert biz.get("customers/").status_code == 200  # reads are never dropped
    faults(http)
    # the write was committed: a retry with the same external_id gets the stored object
    r = biz.post("customers/", {"external_id": "dropped", "company_name": "x"})
    assert r.status_code == 200
    s = stats(http)
    assert s["faults"]["drop_after_commit"] >= 1
    assert any(x["status"] == 0 and x["route"].endswith("/customers/") for x in s["requests"])
    assert s["objects"][biz.id]["customers"] == 1 and s["duplicate_external_ids"] == 0


def test_commit_then_drop_payment_with_idempotency_key(http: httpx.Client, biz: Biz):
    c = biz.customer()
    inv = biz.invoice(c["id"], [{"unit_price": 1000}])
    body = {
        "customer_id": c["id"],
        "total_amount_cents": 400,
        "payment_date": "2025-01-20",
        "allocations": [{"invoice_id": inv["id"], "amount_cents": 400}],
    }
    faults(http, drop_after_commit_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        biz.post("invoices/payments/", body, headers={"Idempotency-Key": "drop-1"})
    faults(http)
    r = biz.post("invoices/payments/", body, headers={"Idempotency-Key": "drop-1"})
    assert r.status_code == 200
    # exactly once: the customer's documented open AR is 1000 - 400
    assert biz.get(f"customers/{c['id']}/").json()["outstanding_balance"] == 600


@pytest.mark.filterwarnings("ignore:Using .httpx. with .starlette.testclient")
def test_drop_fallback_stalls_without_uvicorn():
    """In-process there is no socket to cut: the committed response is held instead."""
    from fastapi.testclient import TestClient

    config = SandboxConfig(faults=FaultConfig(drop_after_commit_rate=1.0, drop_stall_s=0.3))
    with TestClient(create_app(config)) as client:
        token = client.post(
            "/v1/platform/oauth2/token/", auth=("demo-partner", "sandbox-demo-key")
        ).json()["access_token"]
        start = time.monotonic()
        body = {"external_id": "b", "legal_name": "x", "email": "a@b.co"}
        r = client.post(
            "/v1/platform/businesses/", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert time.monotonic() - start >= 0.3
        assert r.status_code == 201
