"""The rate governor against the real sandbox with an unknown per-business limit.

Outcomes only, never timings (the suite runs on a loaded 2-core machine): every record is
written, none fails for a 429, and the 429s are few next to the requests. Without the
governor, four tasks per business against a 20 req/s limit draw a 429 on most attempts.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest
from thred_devtools.sandbox import FaultConfig, SandboxConfig, start_sandbox

from thred_pipeline.sync.engine import SyncOptions
from thred_pipeline.sync.gate import Gate
from thred_pipeline.thred import ThredClient
from thred_pipeline.thred.paths import business_resource
from thred_pipeline_tests.thred.conftest import make_settings

pytestmark = pytest.mark.anyio

LIMIT_PER_BUSINESS = 20.0
BUSINESSES = 3
CUSTOMERS_PER_BUSINESS = 100
TASKS_PER_BUSINESS = SyncOptions().concurrency  # the engine's default ceiling per business


@pytest.fixture(scope="module")
def limited_sandbox_url() -> Iterator[str]:
    faults = FaultConfig(rate_limit_rps=LIMIT_PER_BUSINESS)  # burst: one second's worth
    with start_sandbox(SandboxConfig(faults=faults)) as running:
        yield running.url


async def _business(client: ThredClient, tag: str) -> str:
    body = {
        "external_id": f"biz-rate-{tag}-{uuid.uuid4().hex[:8]}",
        "legal_name": f"Rate {tag} Ltd",
        "email": "owner@rate.example",
        "country": "GB",
        "entity_type": "limited",
        "base_currency": "GBP",
    }
    return str((await client.request("POST", "businesses/", json=body)).body["id"])


async def _customers(client: ThredClient, business_id: str) -> None:
    """Writes every customer of one business through the engine's gate: at most
    ``TASKS_PER_BUSINESS`` at a time, fewer while the governor's window is smaller."""
    gate = Gate(TASKS_PER_BUSINESS, lambda: client.governor.window(business_id))
    path = business_resource(business_id, "customers")

    async def write(n: int) -> None:
        body = {"external_id": f"cus-{n}", "company_name": f"Customer {n}"}
        async with gate:
            await client.request("POST", path, business_id=business_id, json=body)

    async with asyncio.TaskGroup() as group:
        for n in range(CUSTOMERS_PER_BUSINESS):
            group.create_task(write(n))


async def test_an_unknown_per_business_limit_costs_few_429s_and_no_record(
    limited_sandbox_url: str,
) -> None:
    settings = make_settings(
        limited_sandbox_url, partner_id="demo-partner", api_key="sandbox-demo-key", timeout_s=10
    )
    async with ThredClient(settings) as client:
        ids = [await _business(client, str(n)) for n in range(BUSINESSES)]
        async with asyncio.TaskGroup() as group:  # a failed record would raise here
            for business_id in ids:
                group.create_task(_customers(client, business_id))
        for business_id in ids:
            stored = await client.get_count(
                business_resource(business_id, "customers"), business_id=business_id
            )
            assert stored == CUSTOMERS_PER_BUSINESS
        stats = client.stats
    async with httpx.AsyncClient(base_url=limited_sandbox_url) as admin:
        answered_429 = (await admin.get("/_sandbox/faults")).json()["counts"].get("429", 0)
    assert stats.responses_by_status.get(429, 0) == answered_429  # the governor saw each one
    assert answered_429 >= 1  # the limit was found, not configured
    # Discovery costs about one 429 per business (about 1% here); 5% leaves ample room
    # for a loaded machine, and is far below what unpaced tasks meet.
    assert answered_429 <= 0.05 * stats.http_attempts
