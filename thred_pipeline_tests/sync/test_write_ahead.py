"""Write-ahead with batched ledger writes: a chunk's intents are committed before any of its
requests leaves, and outcomes held back for a batch survive the run failing."""

from __future__ import annotations

from typing import Any

import pytest

from thred_pipeline.core.records import Status
from thred_pipeline.sync.engine import SyncOptions
from thred_pipeline.thred.client import ThredClient, ThredResponse
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline_tests.sync.conftest import SyncEnv
from thred_pipeline_tests.sync.test_engine import SimulatedCrash

SMALL_CHUNKS = SyncOptions(chunk_size=10)  # the seed's 25 invoices: three chunks in flight


def _creates_invoice(method: str, path: str) -> bool:
    return method == "POST" and path.endswith("/invoices/")


def crash_before_sending(settings: ThredSettings) -> ThredClient:
    """The process dies after the intents were committed, before the first create leaves."""

    class Crashing(ThredClient):
        async def request(self, method: str, path: str, **kw: Any) -> ThredResponse:  # type: ignore[override]
            if _creates_invoice(method, path):
                raise SimulatedCrash(path)
            return await super().request(method, path, **kw)

    return Crashing(settings)


def crash_after_answers(heard: list[str], answers: int) -> Any:
    """Creates answered ``answers`` times, then one that Thred applies and nobody hears."""

    def factory(settings: ThredSettings) -> ThredClient:
        class Crashing(ThredClient):
            async def request(self, method: str, path: str, **kw: Any) -> ThredResponse:  # type: ignore[override]
                response = await super().request(method, path, **kw)
                if _creates_invoice(method, path):
                    if len(heard) >= answers:
                        raise SimulatedCrash(path)
                    heard.append(str(kw["json"]["external_id"]))
                return response

        return Crashing(settings)

    return factory


def _synced_before(env: SyncEnv) -> None:
    for name in ("businesses", "customers"):
        env.sync(name)


def _run_to_completion(env: SyncEnv) -> None:
    """A clean run: every invoice synced, each created once."""
    total = len(env.data["invoices"])
    env.sync("invoices")
    assert env.statuses("invoices") == {Status.SYNCED.value: total}
    assert env.counts()["invoices"] == total
    assert env.stats()["duplicate_external_ids"] == 0


def test_a_crash_between_the_intents_and_the_requests_loses_nothing(env: SyncEnv) -> None:
    _synced_before(env)
    with pytest.raises(SimulatedCrash):
        env.sync("invoices", options=SMALL_CHUNKS, client_factory=crash_before_sending)

    statuses = env.statuses("invoices")
    assert statuses.get(Status.PENDING.value, 0) >= SMALL_CHUNKS.chunk_size  # the chunk's
    assert set(statuses) == {Status.PENDING.value}
    assert env.counts().get("invoices", 0) == 0  # nothing left
    _run_to_completion(env)


def test_outcomes_heard_before_a_crash_are_written(env: SyncEnv) -> None:
    _synced_before(env)
    heard: list[str] = []
    with pytest.raises(SimulatedCrash):
        env.sync(
            "invoices", options=SMALL_CHUNKS, client_factory=crash_after_answers(heard, answers=5)
        )

    synced = [r for r in env.ledger.iter_rows("invoices") if r.status is Status.SYNCED]
    assert sorted(r.external_id for r in synced) == sorted(heard)  # every answer heard: kept
    assert env.counts()["invoices"] > len(heard)  # and the one not heard was created
    _run_to_completion(env)
