"""Every object type, one by one: created once, replays create nothing, changes are applied or
flagged, ordering violations wait, bad rows are quarantined with the reason.

Environments are module-scoped per backend (a seeded warehouse, a ledger and a sandbox) and
each scenario gets its own: tests in one scenario touch different records and different
windows, or leave the state as they found it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from thred_pipeline import entities
from thred_pipeline.core.records import Status
from thred_pipeline.entities import ChangePolicy
from thred_pipeline.ledger import LedgerCode, LedgerRow
from thred_pipeline.sync.outcomes import EntityRunResult
from thred_pipeline_tests.sync.conftest import (
    BACKENDS,
    COLLECTION,
    ORDER,
    SyncEnv,
    day_window,
    module_backend,
)

CHILDREN = [name for name in ORDER if name != "businesses"]


def _module_env(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    seed_data: dict[str, list[dict[str, Any]]],
) -> Iterator[SyncEnv]:
    with module_backend(request, tmp_path_factory) as backend:
        env = SyncEnv(backend, seed_data)
        try:
            yield env
        finally:
            env.close()


def rows_of(env: SyncEnv, entity: str) -> int:
    return env.warehouse_count(entities.get(entity).table)


def statuses(env: SyncEnv, entity: str) -> dict[str, int]:
    return {k: v for k, v in env.ledger.status_counts(entity).items() if v}


# --- created once; replays create nothing ------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def synced_env(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    seed_data: dict[str, list[dict[str, Any]]],
) -> Iterator[SyncEnv]:
    for env in _module_env(request, tmp_path_factory, seed_data):
        env.sync_all()
        yield env


@pytest.mark.parametrize("entity", ORDER)
def test_created_once(synced_env: SyncEnv, entity: str) -> None:
    spec = entities.get(entity)
    rows = list(synced_env.ledger.iter_rows(entity))
    assert len(rows) == rows_of(synced_env, entity) > 0
    assert all(r.status is Status.SYNCED for r in rows)
    assert len({r.thred_id for r in rows}) == len(rows)  # one Thred object per record
    assert all(r.external_id == spec.external_id(r.source_id) for r in rows)
    assert synced_env.counts()[COLLECTION[entity]] == len(rows)
    assert synced_env.stats()["duplicate_external_ids"] == 0
    sample = rows[0]
    found = synced_env.thred_object(entity, sample.source_id)
    assert found["id"] == sample.thred_id
    if "external_id" in found:  # documented for all but refunds and listed payments
        assert found["external_id"] == sample.external_id


def test_books_equal_after_the_first_sync(synced_env: SyncEnv) -> None:
    synced_env.assert_books_equal()


@pytest.mark.parametrize("entity", ORDER)
def test_replay_creates_nothing(synced_env: SyncEnv, entity: str) -> None:
    """The ledger forgets the entity (lost volume, restored backup): re-sending is harmless."""
    before = {r.source_id: r.thred_id for r in synced_env.ledger.iter_rows(entity)}
    objects = synced_env.counts()
    assert synced_env.wipe_ledger(entity) == len(before)

    result = synced_env.sync(entity)

    assert result.counts["created"] == 0
    assert result.counts["unchanged"] == len(before)
    assert result.api_writes >= len(before)  # every create re-sent, answered 200
    assert synced_env.counts() == objects
    after = {r.source_id: r.thred_id for r in synced_env.ledger.iter_rows(entity)}
    assert after == before
    assert statuses(synced_env, entity) == {"synced": len(before)}
    assert synced_env.stats()["duplicate_external_ids"] == 0
    synced_env.assert_books_equal()
    assert synced_env.sync(entity).api_writes == 0


# --- changes: applied or flagged ----------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def changes_env(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    seed_data: dict[str, list[dict[str, Any]]],
) -> Iterator[SyncEnv]:
    for env in _module_env(request, tmp_path_factory, seed_data):
        env.sync_all()
        yield env


@dataclass(frozen=True)
class Change:
    table: str
    source_id: str
    values: dict[str, Any]
    fields: tuple[str, ...]  # payload fields that change
    child: tuple[str, str, dict[str, Any]] | None = None  # (table, id, values) edited too


CHANGES: dict[str, Change] = {
    "businesses": Change(
        "businesses", "biz-01", {"legal_name": "Harbour & Finch Roasting Ltd"}, ("legal_name",)
    ),
    "customers": Change(
        "customers", "cus-01-0002", {"email": "accounts@new-domain.example.com"}, ("email",)
    ),
    "vendors": Change(
        "vendors", "ven-01-0002", {"email": "billing@cloudledger.example.org"}, ("email",)
    ),
    "invoices": Change("invoices", "inv-01-00024", {"memo": "PO 77001 (revised)"}, ("memo",)),
    "bills": Change(
        "bills",
        "bill-01-00004",
        {},
        ("line_items",),
        child=(
            "bill_line_items",
            "bli-01-00004-1",
            {"unit_price_cents": 3847, "tax_amount_cents": 769},
        ),
    ),
    "invoice_payments": Change(
        "payments", "pay-01-00005", {"reference": "FPS corrected"}, ("payment_reference",)
    ),
    "refunds": Change("refunds", "ref-01-0001", {"reason": "Damaged in transit"}, ("memo",)),
    "refund_payments": Change(
        "refund_payments", "rfp-01-0002", {"processor": "adyen"}, ("processor",)
    ),
    "bill_payments": Change(
        "bill_payments", "bp-01-00006", {"reference": "BACS corrected"}, ("payment_reference",)
    ),
    "vendor_credits": Change(
        "vendor_credits", "vc-01-0001", {"memo": "Outage credit (revised)"}, ("memo",)
    ),
    "payouts": Change(
        "payouts", "po-01-001", {"paid_out_amount_cents": 17810}, ("paid_out_amount_cents",)
    ),
}


@pytest.mark.parametrize("entity", ORDER)
def test_change_is_applied_or_flagged(changes_env: SyncEnv, entity: str) -> None:
    env, spec, change = changes_env, entities.get(entity), CHANGES[entity]
    window = day_window(ORDER.index(entity) + 1)  # each entity its own day: no interference
    at = window.start + timedelta(hours=1)
    env.edit(change.table, change.source_id, updated_at=at, **change.values)
    if change.child is not None:
        table, child_id, values = change.child
        env.edit(table, child_id, updated_at=at, **values)
    prior = env.ledger.get(entity, change.source_id)
    assert prior is not None and prior.status is Status.SYNCED
    thred_before = env.thred_stored(entity, change.source_id)

    result = env.sync(entity, window)

    row = env.ledger.get(entity, change.source_id)
    assert row is not None and row.thred_id == prior.thred_id
    thred_after = env.thred_stored(entity, change.source_id)
    if spec.change_policy is ChangePolicy.DRIFT:
        assert dict(result.counts) == {"drift": 1}
        assert result.api_writes == 0
        assert row.status is Status.DRIFT and row.error_code == "drift"
        message = row.error_message or ""
        assert change.source_id in message
        assert f"changed after sync ({', '.join(change.fields)})" in message
        assert row.error_details is not None and set(row.error_details) == set(change.fields)
        assert thred_after == thred_before  # nothing was sent
        again = env.sync(entity, window)
        assert dict(again.counts) == {"drift": 1} and again.api_writes == 0
        kept = env.ledger.get(entity, change.source_id)
        assert kept is not None and kept.status_since == row.status_since
    else:
        assert dict(result.counts) == {"updated": 1}
        assert result.api_writes == 1
        assert row.status is Status.SYNCED and row.confirmed_updated_at == at
        assert thred_after["id"] == thred_before["id"]
        _assert_applied(entity, thred_before, thred_after)
        assert env.counts()[COLLECTION[entity]] == rows_of(env, entity)  # updated, not added
        again = env.sync(entity, window)
        assert dict(again.counts) == {"unchanged": 1} and again.api_writes == 0
    # The books: an applied change leaves no difference; a drift is one, explained as drift.
    differences = env.books().differences
    mine = differences[differences["source_id"] == change.source_id]
    if spec.change_policy is ChangePolicy.DRIFT:
        assert set(mine["cause"]) <= {"drift"}, mine.to_string()
    else:
        assert mine.empty, mine.to_string()
    assert "unexplained" not in set(differences["cause"]), differences.to_string()


def _assert_applied(entity: str, before: dict[str, Any], after: dict[str, Any]) -> None:
    if entity == "businesses":
        assert after["legal_name"] == "Harbour & Finch Roasting Ltd" != before["legal_name"]
    elif entity == "invoices":
        assert after["memo"] == "PO 77001 (revised)"
    elif entity == "bills":
        assert after["total_amount"] == before["total_amount"] + 1000 + 200
        assert after["outstanding_balance"] == before["outstanding_balance"] + 1200
    elif entity == "payouts":
        assert after["paid_out_amount_cents"] == 17810
        assert after["amount_variance_cents"] == before["amount_variance_cents"] + 100
    else:  # pragma: no cover - every updatable entity is listed above
        raise AssertionError(entity)


# --- ordering violations wait -------------------------------------------------------------------


@dataclass(frozen=True)
class Runs:
    first: dict[str, EntityRunResult]
    ledger: dict[str, list[LedgerRow]]
    second: dict[str, EntityRunResult]


@pytest.fixture(scope="module", params=BACKENDS)
def reversed_runs(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    seed_data: dict[str, list[dict[str, Any]]],
) -> Iterator[tuple[SyncEnv, Runs]]:
    """Children before parents (the business first), then the registry's order."""
    for env in _module_env(request, tmp_path_factory, seed_data):
        first = env.sync_all(order=["businesses", *reversed(CHILDREN)])
        snapshot = {name: list(env.ledger.iter_rows(name)) for name in ORDER}
        second = env.sync_all()
        yield env, Runs(first, snapshot, second)


# The parent each entity waits for when synced before everything but the business, and the
# field that names it (mappers resolve parents in payload order).
WAITS_FOR = {
    "invoices": ("customers", "customer_id"),
    "bills": ("vendors", "vendor_id"),
    "invoice_payments": ("customers", "customer_id"),
    "refunds": ("invoices", "invoice_id"),
    "bill_payments": ("vendors", "vendor_id"),
    "vendor_credits": ("vendors", "vendor_id"),
    "refund_payments": ("refunds", "refund_id"),
    "payouts": ("invoice_payments", "payment_ids[0]"),
}


@pytest.mark.parametrize("entity", CHILDREN)
def test_ordering_violations_are_deferred_not_failed(
    reversed_runs: tuple[SyncEnv, Runs], entity: str
) -> None:
    env, runs = reversed_runs
    rows = rows_of(env, entity)
    first = runs.first[entity]
    if entity not in WAITS_FOR:  # customers, vendors: only the business, synced first
        assert first.counts["created"] == rows
        return
    parent, field = WAITS_FOR[entity]
    assert dict(first.counts) == {"deferred": rows}
    assert first.api_writes == 0
    for row in runs.ledger[entity]:
        assert row.status is Status.DEFERRED and row.error_code == "parent_not_synced"
        assert row.error_details is not None
        assert row.error_details["entity"] == parent
        if entity != "payouts":
            assert row.error_details["field"] == field
        else:
            assert row.error_details["field"].split("[")[0] in ("payment_ids", "refund_payment_ids")
        assert str(row.error_details["id"]) in (row.error_message or "")
    second = runs.second[entity].counts
    assert second["released"] == rows and second["created"] == rows
    assert second["deferred"] == 0 and second["unchanged"] == 0  # each record counted once
    assert statuses(env, entity) == {"synced": rows}
    assert env.counts()[COLLECTION[entity]] == rows


def test_ordering_leaves_nothing_behind(reversed_runs: tuple[SyncEnv, Runs]) -> None:
    env, _ = reversed_runs
    assert env.stats()["duplicate_external_ids"] == 0
    env.assert_books_equal()


# --- validation failures are quarantined --------------------------------------------------------


@dataclass(frozen=True)
class Corruption:
    table: str
    source_id: str
    values: dict[str, Any]
    field: str
    child: str | None = None  # the values go to this child row instead


# One leaf record per entity (nothing else depends on it), so the rest of each batch syncs.
CORRUPTIONS: dict[str, Corruption] = {
    "customers": Corruption("customers", "cus-01-0006", {"email": "not-an-email"}, "email"),
    "vendors": Corruption("vendors", "ven-01-0003", {"email": "billing@"}, "email"),
    "invoices": Corruption(
        "invoices",
        "inv-01-00023",
        {"tax_code": "VAT_99"},
        "line_items[2].tax_code",
        child="ili-01-00023-3",
    ),
    "bills": Corruption(
        "bills",
        "bill-01-00007",
        {"quantity": Decimal("-1")},
        "line_items[0].quantity",
        child="bli-01-00007-1",
    ),
    "invoice_payments": Corruption(
        "payments", "pay-01-00016", {"payment_method": "barter"}, "payment_method"
    ),
    "refunds": Corruption("refunds", "ref-01-0003", {"method": "GOLD"}, "method"),
    "refund_payments": Corruption("refund_payments", "rfp-01-0001", {"method": "GOLD"}, "method"),
    "bill_payments": Corruption(
        "bill_payments", "bp-01-00005", {"payment_method": "barter"}, "payment_method"
    ),
    "vendor_credits": Corruption("vendor_credits", "vc-01-0002", {"currency": "EUR"}, "currency"),
    "payouts": Corruption("payouts", "po-01-001", {"status": "lost"}, "status"),
}


@pytest.fixture(scope="module", params=BACKENDS)
def invalid_runs(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    seed_data: dict[str, list[dict[str, Any]]],
) -> Iterator[tuple[SyncEnv, dict[str, EntityRunResult], dict[str, EntityRunResult]]]:
    for env in _module_env(request, tmp_path_factory, seed_data):
        for corruption in CORRUPTIONS.values():
            table = corruption.table
            if corruption.child is not None:
                table = {"invoices": "invoice_line_items", "bills": "bill_line_items"}[table]
            env.edit(table, corruption.child or corruption.source_id, **corruption.values)
        first = env.sync_all()
        second = env.sync_all()
        yield env, first, second


@pytest.mark.parametrize("entity", CHILDREN)
def test_validation_failure_is_quarantined_with_the_reason(
    invalid_runs: tuple[SyncEnv, dict[str, EntityRunResult], dict[str, EntityRunResult]],
    entity: str,
) -> None:
    env, first, second = invalid_runs
    corruption = CORRUPTIONS[entity]
    rows = rows_of(env, entity)
    counts = first[entity].counts
    assert (counts["rejected"], counts["created"], counts["deferred"]) == (1, rows - 1, 0)
    assert statuses(env, entity) == {"rejected": 1, "synced": rows - 1}
    row = env.ledger.get(entity, corruption.source_id)
    assert row is not None and row.status is Status.REJECTED
    assert row.error_code == LedgerCode.INVALID_SOURCE_DATA
    assert row.thred_id is None
    assert row.error_details is not None and list(row.error_details) == [corruption.field]
    reason = row.error_details[corruption.field][0]
    assert reason
    assert row.error_message == (
        f"{entities.get(entity).label} {corruption.source_id}: {corruption.field}: {reason}"
    )
    sample = first[entity].samples["rejected"][0]
    assert sample["field"] == corruption.field and sample["code"] == LedgerCode.INVALID_SOURCE_DATA
    # Quarantined rows cost nothing while unchanged.
    assert second[entity].counts["rejected"] == 1 and second[entity].api_writes == 0
    assert env.counts().get(COLLECTION[entity], 0) == rows - 1
    # The books name it: missing in Thred (or holding what it refers to back), quarantined.
    differences = env.books().differences
    mine = differences[differences["source_id"] == corruption.source_id]
    assert not mine.empty and set(mine["cause"]) == {"quarantined"}, mine.to_string()


def test_an_invalid_business_holds_back_everything_it_owns(env: SyncEnv) -> None:
    env.edit("businesses", "biz-01", country="XX")

    results = env.sync_all()

    business = env.ledger.get("businesses", "biz-01")
    assert business is not None and business.status is Status.REJECTED
    assert business.error_details is not None and list(business.error_details) == ["country"]
    for name in CHILDREN:
        assert dict(results[name].counts) == {"deferred": rows_of(env, name)}, name
        sample = env.ledger.get(name, next(iter(env.ledger.iter_rows(name))).source_id)
        assert sample is not None and sample.error_details is not None
        assert sample.error_details["field"] == "business_id"
    assert "businesses" not in env.counts()

    fixed_at = day_window(1).start + timedelta(hours=1)
    env.edit("businesses", "biz-01", country="GB", updated_at=fixed_at)
    released = env.sync_all(day_window(1))
    for name in CHILDREN:
        assert released[name].counts["released"] == rows_of(env, name), name
        assert statuses(env, name) == {"synced": rows_of(env, name)}, name
    env.assert_books_equal()


# --- the registry's relations -------------------------------------------------------------------


def test_registry_relations_the_engine_relies_on() -> None:
    order = [s.name for s in entities.sync_order()]
    # A refund is retried after the payments it needs, and synced after them.
    assert entities.upstream("refunds") == {
        "invoice_payments",
        "invoices",
        "customers",
        "businesses",
    }
    assert order.index("invoice_payments") < order.index("refunds")
    # Archiving a customer / voiding an invoice waits for the documents that point at it.
    assert {(s.name, r.column) for s, r in entities.dependants("customers")} == {
        ("invoices", "customer_id"),
        ("invoice_payments", "customer_id"),
    }
    assert {(s.name, r.column) for s, r in entities.dependants("invoices")} == {
        ("invoice_payments", "invoice_id"),
        ("refunds", "invoice_id"),
    }
    # Only documented calls: vendors have no archive call, their state is kept in the ledger.
    vendors = entities.get("vendors")
    assert vendors.terminal is None and vendors.warehouse_only is not None
    assert vendors.warehouse_only.code == "archived_in_warehouse_only"
    assert not entities.get("customers").retry_on_upstream  # no refs: nothing to wait for


def test_a_refund_is_adopted_by_documented_content_only() -> None:
    match = entities.get("refunds").adopt_match
    assert match is not None
    body = {"invoice_id": "inv-T", "amount_cents": 1500, "external_id": "refund-r1"}
    listed = {"id": "r", "refunded_amount": 1500, "allocations": [{"invoice_id": "inv-T"}]}
    assert match(body, listed)
    assert not match(body, {**listed, "refunded_amount": 1501})
    assert not match(body, {**listed, "allocations": [{"invoice_id": "inv-U"}]})
    assert not match(body, {"id": "r", "refunded_amount": 1500})  # no allocations listed
