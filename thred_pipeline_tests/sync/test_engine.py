"""The sync engine against real components: the sandbox over HTTP, warehouse and ledger on both
backends.

Each test gets a fresh sandbox and databases of its own (``env``/``synced`` fixtures), because a
business's external id is per partner and two syncs of the same seed would meet in one sandbox.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, update
from thred_devtools.seed import round_half_up

from thred_pipeline import entities
from thred_pipeline.core.records import Status, TimeWindow
from thred_pipeline.ledger import SyncLedger, ledger_table
from thred_pipeline.sync.engine import SyncEngine, SyncOptions
from thred_pipeline.thred.client import ThredClient, ThredResponse
from thred_pipeline.thred.errors import ThredAuthError, ThredTransientError
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline.warehouse import schema as wh
from thred_pipeline.warehouse.extract import Warehouse
from thred_pipeline_tests.sync.conftest import (
    COLLECTION,
    ORDER,
    SMALL,
    WINDOW,
    SyncEnv,
    day_window,
)

# Records of the SMALL seed picked for each scenario (see conftest.SMALL).
UNPAID_INVOICE = "inv-01-00021"  # customer cus-01-0004, line [1] is VAT_20 4 x 7150
VOIDABLE_INVOICE = "inv-01-00022"  # unpaid, no refunds
LONE_PAYMENT, ITS_INVOICE = "pay-01-00007", "inv-01-00010"  # one allocation, not in a payout
FULL_PAYMENT, FULLY_PAID_INVOICE = "pay-01-00004", "inv-01-00012"  # pays 10680 of 10680


def lines_of(env: SyncEnv, invoice_id: str) -> list[dict[str, Any]]:
    lines = [r for r in env.data["invoice_line_items"] if r["invoice_id"] == invoice_id]
    return sorted(lines, key=lambda r: r["position"])


def allocation_of(env: SyncEnv, payment_id: str) -> dict[str, Any]:
    (allocation,) = [r for r in env.data["payment_allocations"] if r["payment_id"] == payment_id]
    return allocation


def ledger_statuses(ledger: SyncLedger, entity: str) -> dict[str, int]:
    return {k: v for k, v in ledger.status_counts(entity).items() if v}


def route_count(env: SyncEnv, method: str, route_part: str) -> int:
    return sum(
        r["count"]
        for r in env.stats()["requests"]
        if r["method"] == method and route_part in r["route"]
    )


# --- first and second sync ---------------------------------------------------------------------


def test_first_sync_creates_everything_and_a_second_writes_nothing(env: SyncEnv) -> None:
    results = env.sync_all()

    for name in ORDER:
        spec = entities.get(name)
        rows = env.warehouse_count(spec.table)
        assert rows > 0, f"the seed has no {name}"
        counts = results[name].counts
        assert counts["created"] == rows, (name, dict(counts))
        assert not (counts["deferred"] or counts["rejected"] or counts["unknown"]), name
        assert ledger_statuses(env.ledger, name) == {"synced": rows}, name
    objects = env.counts()
    for name, collection in COLLECTION.items():
        assert objects.get(collection, 0) == env.warehouse_count(entities.get(name).table), name
    assert env.stats()["duplicate_external_ids"] == 0
    # Archive and void happened for the seeded archived/voided rows.
    assert results["customers"].counts["terminal"] == 1
    assert results["invoices"].counts["terminal"] == 1

    env.assert_books_equal()

    again = env.sync_all()
    for name, result in again.items():
        rows = env.warehouse_count(entities.get(name).table)
        assert result.api_writes == 0, name
        assert dict(result.counts) == {"unchanged": rows}, name
    assert env.counts() == objects


# --- changes -----------------------------------------------------------------------------------


def inputs_recorded(ledger: SyncLedger) -> dict[str, int]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            select(ledger_table.c.entity, func.count())
            .where(ledger_table.c.inputs_hash.is_not(None))
            .group_by(ledger_table.c.entity)
        )
        return {str(entity): int(n) for entity, n in rows}


def test_a_rerun_trusts_recorded_inputs_only_while_they_hold(env: SyncEnv) -> None:
    """A no-change rerun does not map records whose inputs are those Thred's payload was made
    from (sync.versions), yet counts them and their money as before; a change the row's
    updated_at does not show still reaches Thred; rows of an older ledger, with no inputs
    recorded, are mapped and gain them, with no request."""
    first = env.sync_all()
    rows = {name: env.warehouse_count(entities.get(name).table) for name in ORDER}
    assert inputs_recorded(env.ledger) == rows

    with env.ledger.engine.begin() as conn:  # as an older ledger would hold them
        conn.execute(update(ledger_table).values(inputs_hash=None, mapped_amount_cents=None))
    for run in (env.sync_all(), env.sync_all()):
        for name, result in run.items():
            assert dict(result.counts) == {"unchanged": rows[name]}, name
            assert result.api_writes == 0, name
            assert result.amount_cents == first[name].amount_cents, name
    assert inputs_recorded(env.ledger) == rows

    line = lines_of(env, UNPAID_INVOICE)[1]
    price = line["unit_price_cents"] + 1000
    net = round_half_up(Decimal(line["quantity"]) * price) - line["discount_cents"]
    before = env.thred_stored("invoices", UNPAID_INVOICE)
    # Edited in place: neither the line's nor the invoice's updated_at moves.
    env.edit(
        "invoice_line_items",
        line["id"],
        unit_price_cents=price,
        tax_amount_cents=round_half_up(net * Decimal("0.20")),
    )
    result = env.sync("invoices", WINDOW)
    assert dict(result.counts) == {"updated": 1, "unchanged": rows["invoices"] - 1}
    assert result.api_writes == 1
    assert env.thred_stored("invoices", UNPAID_INVOICE)["total_amount"] > before["total_amount"]
    env.assert_books_equal()


def test_edited_invoice_is_updated_with_put(synced: SyncEnv) -> None:
    window = day_window(1)
    edited_at = window.start + timedelta(hours=3)
    line = lines_of(synced, UNPAID_INVOICE)[1]
    assert line["tax_code"] == "VAT_20"
    price = line["unit_price_cents"] + 1000
    net = round_half_up(Decimal(line["quantity"]) * price) - line["discount_cents"]
    tax = round_half_up(net * Decimal("0.20"))
    delta = (net + tax) - (
        round_half_up(Decimal(line["quantity"]) * line["unit_price_cents"])
        - line["discount_cents"]
        + line["tax_amount_cents"]
    )
    before = synced.thred_stored("invoices", UNPAID_INVOICE)
    synced.edit(
        "invoice_line_items",
        line["id"],
        unit_price_cents=price,
        tax_amount_cents=tax,
        updated_at=edited_at,
    )
    synced.edit("invoices", UNPAID_INVOICE, updated_at=edited_at)
    puts = route_count(synced, "PUT", "/invoices/")

    result = synced.sync("invoices", window)

    assert dict(result.counts) == {"updated": 1}
    assert result.api_writes == 1
    assert route_count(synced, "PUT", "/invoices/") == puts + 1
    after = synced.thred_stored("invoices", UNPAID_INVOICE)
    assert after["id"] == before["id"]
    assert after["total_amount"] == before["total_amount"] + delta
    row = synced.ledger.get("invoices", UNPAID_INVOICE)
    assert row is not None and row.status is Status.SYNCED
    assert row.confirmed_updated_at == edited_at
    synced.assert_books_equal()
    assert synced.sync("invoices", window).api_writes == 0

    # Edited again into something invalid: quarantined locally, Thred keeps the last good one.
    later = day_window(2)
    synced.edit("invoice_line_items", line["id"], tax_code="VAT_99", updated_at=later.start)
    rejected = synced.sync("invoices", later)
    assert dict(rejected.counts) == {"rejected": 1} and rejected.api_writes == 0
    # ...and put back as it was: Thred already holds exactly that, so it is synced, 0 writes.
    synced.edit("invoice_line_items", line["id"], tax_code="VAT_20", updated_at=later.end)
    reverted = synced.sync("invoices", day_window(3))
    assert dict(reverted.counts) == {"unchanged": 1} and reverted.api_writes == 0
    row = synced.ledger.get("invoices", UNPAID_INVOICE)
    assert row is not None and row.status is Status.SYNCED and row.error_code is None
    assert row.confirmed_updated_at == later.end
    synced.assert_books_equal()


def test_voided_invoice_is_voided(synced: SyncEnv) -> None:
    window = day_window(1)
    voided_at = window.start + timedelta(hours=2)
    balance_before = synced.thred_object("customers", "cus-01-0004")["outstanding_balance"]
    synced.edit("invoices", VOIDABLE_INVOICE, voided_at=voided_at, updated_at=voided_at)
    pending = synced.books()
    assert pending.verdict != "PASS"  # the warehouse voided it, Thred not yet: said so
    assert VOIDABLE_INVOICE in set(pending.differences["source_id"])

    result = synced.sync("invoices", window)

    assert dict(result.counts) == {"terminal": 1}
    assert synced.thred_object("invoices", VOIDABLE_INVOICE)["status"] == "VOIDED"
    row = synced.ledger.get("invoices", VOIDABLE_INVOICE)
    assert row is not None and row.status is Status.SYNCED and row.terminal_done
    synced.assert_books_equal()
    after = synced.thred_object("customers", "cus-01-0004")["outstanding_balance"]
    assert after < balance_before
    again = synced.sync("invoices", window)
    assert dict(again.counts) == {"unchanged": 1} and again.api_writes == 0


# --- ordering ----------------------------------------------------------------------------------


def test_payment_for_unsynced_invoice_is_deferred_then_released(env: SyncEnv) -> None:
    late = day_window(1).start + timedelta(hours=1)
    env.edit("invoices", ITS_INVOICE, updated_at=late)  # the invoice lands a day late
    for line in lines_of(env, ITS_INVOICE):
        env.edit("invoice_line_items", line["id"], updated_at=late)

    first = env.sync_all()

    assert first["invoice_payments"].counts["deferred"] == 1
    row = env.ledger.get("invoice_payments", LONE_PAYMENT)
    assert row is not None and row.status is Status.DEFERRED
    assert row.error_code == "parent_not_synced"
    assert ITS_INVOICE in (row.error_message or "")
    assert "allocations[0].invoice_id" in (row.error_message or "")
    assert row.error_details == {
        "field": "allocations[0].invoice_id",
        "entity": "invoices",
        "id": ITS_INVOICE,
    }
    # Neither the invoice nor its payment is in Thred, and the books say so, with the reason.
    waiting = env.books().differences
    assert {ITS_INVOICE, LONE_PAYMENT} <= set(waiting["source_id"])
    assert "unexplained" not in set(waiting[waiting["source_id"] == LONE_PAYMENT]["cause"])

    second = env.sync_all(day_window(1))

    assert dict(second["invoices"].counts) == {"created": 1}
    payments = second["invoice_payments"].counts
    assert payments["released"] == 1 and payments["created"] == 1
    assert payments["deferred"] == 0
    assert ledger_statuses(env.ledger, "invoice_payments") == {
        "synced": env.warehouse_count(wh.payments)
    }
    env.assert_books_equal()


def test_daily_partitions_release_late_parents(env: SyncEnv) -> None:
    """What the nightly job does: one day at a time, parents that land late are waited for."""
    deferred = released = 0
    for day in range(SMALL.days):
        start = WINDOW.start + timedelta(days=day)
        for result in env.sync_all(TimeWindow(start, start + timedelta(days=1))).values():
            assert not result.counts["rejected"] and not result.counts["unknown"]
            deferred += result.counts["deferred"]
            released += result.counts["released"]
    assert deferred > 0, "the seed plants late parents"
    assert released > 0
    for name in ORDER:
        rows = env.warehouse_count(entities.get(name).table)
        assert ledger_statuses(env.ledger, name) == {"synced": rows}, name
    assert env.stats()["duplicate_external_ids"] == 0
    env.assert_books_equal()


# --- rejections --------------------------------------------------------------------------------


def test_unknown_tax_code_is_rejected_and_the_rest_syncs(env: SyncEnv) -> None:
    line = lines_of(env, ITS_INVOICE)[1]
    env.edit("invoice_line_items", line["id"], tax_code="VAT_99")

    results = env.sync_all()

    invoices = results["invoices"].counts
    assert invoices["rejected"] == 1
    assert invoices["created"] == env.warehouse_count(wh.invoices) - 1
    row = env.ledger.get("invoices", ITS_INVOICE)
    assert row is not None and row.status is Status.REJECTED
    assert row.error_code == "invalid_source_data"
    assert row.error_details is not None
    assert list(row.error_details) == ["line_items[1].tax_code"]
    assert "VAT_99" in row.error_details["line_items[1].tax_code"][0]
    assert "line_items[1].tax_code" in (row.error_message or "")
    # Its payment waits for it rather than failing.
    payment = env.ledger.get("invoice_payments", LONE_PAYMENT)
    assert payment is not None and payment.status is Status.DEFERRED
    assert results["invoice_payments"].counts["rejected"] == 0

    again = env.sync("invoices")
    assert again.counts["rejected"] == 1 and again.api_writes == 0


def _over_allocate(env: SyncEnv, extra: int, at: Any = None) -> None:
    allocation = allocation_of(env, FULL_PAYMENT)
    payment = env.row("payments", FULL_PAYMENT)
    values: dict[str, Any] = {"amount_cents": payment["amount_cents"] + extra}
    alloc_values: dict[str, Any] = {"amount_cents": allocation["amount_cents"] + extra}
    if at is not None:
        values["updated_at"] = alloc_values["updated_at"] = at
    env.edit("payments", FULL_PAYMENT, **values)
    env.edit("payment_allocations", allocation["id"], **alloc_values)


def test_thred_rejection_is_kept_and_resent_only_on_change_or_release(env: SyncEnv) -> None:
    _over_allocate(env, 500)  # more than the invoice's outstanding 10680

    results = env.sync_all()

    assert results["invoice_payments"].counts["rejected"] == 1
    row = env.ledger.get("invoice_payments", FULL_PAYMENT)
    assert row is not None and row.status is Status.REJECTED
    assert row.error_code == "validation_error"
    assert row.error_details is not None
    assert "allocations[0].amount_cents" in row.error_details
    assert "outstanding" in row.error_details["allocations[0].amount_cents"][0]
    assert FULL_PAYMENT in (row.error_message or "")
    assert row.thred_id is None

    # Unchanged: not re-sent (0 calls), still counted as rejected.
    posts = route_count(env, "POST", "/invoices/payments/")
    again = env.sync("invoice_payments")
    assert dict(again.counts) == {"rejected": 1, "unchanged": 17}
    assert again.api_calls == 0
    assert route_count(env, "POST", "/invoices/payments/") == posts

    # Released for retry: re-sent on the next run whatever its window, refused again.
    assert env.ledger.release_for_retry("invoice_payments") == 1
    retried = env.sync("invoice_payments", day_window(5))
    assert dict(retried.counts) == {"rejected": 1}
    assert retried.api_writes == 1
    row = env.ledger.get("invoice_payments", FULL_PAYMENT)
    assert row is not None and row.status is Status.REJECTED
    assert row.error_code == "validation_error"
    assert env.sync("invoice_payments", day_window(5)).api_calls == 0

    # The platform corrects the row: it is re-sent and syncs.
    fixed_at = day_window(1).start + timedelta(hours=1)
    _over_allocate(env, -500, at=fixed_at)
    fixed = env.sync("invoice_payments", day_window(1))
    assert dict(fixed.counts) == {"created": 1}
    row = env.ledger.get("invoice_payments", FULL_PAYMENT)
    assert row is not None and row.status is Status.SYNCED and row.error_code is None
    env.assert_books_equal()


# --- crashes and uncertain outcomes ------------------------------------------------------------


class SimulatedCrash(BaseException):
    """The process dies after the request reached Thred, before the ledger heard of it.

    A ``BaseException``, like the ``SystemExit`` of a killed process: nothing in the engine
    may catch it (an ordinary exception quarantines its record, see test_scenarios.py).
    """


def crash_after(verb: str, path_part: str) -> Any:
    def factory(settings: ThredSettings) -> ThredClient:
        class Crashing(ThredClient):
            async def request(self, method: str, path: str, **kw: Any) -> ThredResponse:  # type: ignore[override]
                response = await super().request(method, path, **kw)
                if method == verb and path_part in path:
                    raise SimulatedCrash(path)
                return response

        return Crashing(settings)

    return factory


@pytest.mark.parametrize(
    ("entity", "source_id", "path_part"),
    [
        ("customers", "cus-01-0002", "/customers/"),
        ("invoice_payments", LONE_PAYMENT, "/invoices/payments/"),
    ],
)
def test_crash_between_request_and_ledger_write(
    env: SyncEnv, entity: str, source_id: str, path_part: str
) -> None:
    for name in ORDER[: ORDER.index(entity)]:
        env.sync(name)
    # Only the chosen record is new, so the crash happens on its request.
    spec = entities.get(entity)
    others = [r["id"] for r in env.data[spec.table.name] if r["id"] != source_id]
    env.edit(spec.table.name, source_id, updated_at=day_window(1).start)
    if entity == "invoice_payments":
        env.edit(
            "payment_allocations",
            allocation_of(env, source_id)["id"],
            updated_at=day_window(1).start,
        )
    assert env.sync(entity).counts["created"] == len(others)

    with pytest.raises(SimulatedCrash):
        env.sync(entity, day_window(1), client_factory=crash_after("POST", path_part))

    row = env.ledger.get(entity, source_id)
    assert row is not None and row.status is Status.PENDING and row.thred_id is None
    assert env.counts()[COLLECTION[entity]] == len(others) + 1  # Thred did create it

    # Outside the window too: pending rows are re-sent first, with the same external_id.
    result = env.sync(entity, day_window(9))
    assert dict(result.counts) == {"unchanged": 1}  # answered 200: it already existed
    assert result.api_writes == 1
    row = env.ledger.get(entity, source_id)
    assert row is not None and row.status is Status.SYNCED and row.thred_id
    assert env.counts()[COLLECTION[entity]] == len(others) + 1
    assert env.stats()["duplicate_external_ids"] == 0


def test_uncertain_updates_are_resent(synced: SyncEnv) -> None:
    """A PUT times out: applied (``inv-21``) or lost (``inv-23``) — both are re-sent next run."""
    window = day_window(1)
    edited_at = window.start + timedelta(hours=1)
    before: dict[str, int] = {}
    delta: dict[str, int] = {}
    for invoice in (UNPAID_INVOICE, "inv-01-00023"):
        line = next(ln for ln in lines_of(synced, invoice) if ln["tax_code"] == "ZERO_RATED")
        delta[invoice] = round_half_up(Decimal(line["quantity"]) * 100)
        synced.edit(
            "invoice_line_items",
            line["id"],
            unit_price_cents=line["unit_price_cents"] + 100,
            updated_at=edited_at,
        )
        synced.edit("invoices", invoice, updated_at=edited_at)
        before[invoice] = synced.thred_stored("invoices", invoice)["total_amount"]

    def flaky(settings: ThredSettings) -> ThredClient:
        class Flaky(ThredClient):
            async def request(self, method: str, path: str, **kw: Any) -> ThredResponse:  # type: ignore[override]
                if method == "PUT":
                    if "/invoices/" in path and not path.endswith("/invoices/"):
                        thred_id = synced.ledger.thred_ids("invoices", [UNPAID_INVOICE])
                        if thred_id[UNPAID_INVOICE] in path:  # applied, answer lost
                            await super().request(method, path, **kw)
                    raise ThredTransientError(
                        "read timeout", outcome_uncertain=True, method=method, path=path
                    )
                return await super().request(method, path, **kw)

        return Flaky(settings)

    first = synced.sync("invoices", window, client_factory=flaky)
    assert dict(first.counts) == {"unknown": 2}
    applied = synced.thred_stored("invoices", UNPAID_INVOICE)["total_amount"]
    assert applied > before[UNPAID_INVOICE]
    lost = synced.thred_stored("invoices", "inv-01-00023")["total_amount"]
    assert lost == before["inv-01-00023"]
    for invoice in before:
        row = synced.ledger.get("invoices", invoice)
        assert row is not None and row.status is Status.UNKNOWN and row.error_code == "uncertain"
    in_flight = synced.books()  # Thred lacks a change (cus-01-0004's balance): said so
    assert in_flight.verdict == "WARN"  # explained: the update's outcome is uncertain
    customer = in_flight.differences[in_flight.differences["source_id"] == "cus-01-0004"]
    assert not customer.empty and set(customer["cause"]) == {"in flight"}
    assert UNPAID_INVOICE in " ".join(customer["explanation"])

    second = synced.sync("invoices", day_window(4))  # re-sent first, whatever the window
    assert dict(second.counts) == {"updated": 2}
    for invoice, total in before.items():
        row = synced.ledger.get("invoices", invoice)
        assert row is not None and row.status is Status.SYNCED
        assert synced.thred_stored("invoices", invoice)["total_amount"] == total + delta[invoice]
    assert synced.counts()["invoices"] == synced.warehouse_count(wh.invoices)
    synced.assert_books_equal()


def test_full_refresh_recreates_what_thred_lost_and_leaves_the_rest(synced: SyncEnv) -> None:
    synced.admin(
        "delete-object",
        {
            "business_id": synced.thred_business,
            "collection": "customers",
            "external_id": "customer-cus-01-0006",  # archived, no documents
        },
    )
    lost = synced.books()
    assert lost.verdict == "FAIL"
    assert "cus-01-0006" in set(lost.differences["source_id"])

    result = synced.sync("customers", options=SyncOptions(full_refresh=True))

    assert result.counts["created"] == 1
    assert result.counts["unchanged"] == synced.warehouse_count(wh.customers) - 1
    synced.assert_books_equal()
    assert synced.thred_object("customers", "cus-01-0006")["is_archived"] is True


# --- a source that returns one id twice ---------------------------------------------------------


class DuplicatingWarehouse(Warehouse):
    """A warehouse view without a primary key: one id comes back twice, the copy differing."""

    def __init__(self, engine: Any, twice: str, copy: dict[str, Any], apart: bool) -> None:
        super().__init__(engine)
        self.twice, self.copy, self.apart = twice, copy, apart

    def iter_changed(self, source: Any, window: TimeWindow, *, chunk_size: int = 500) -> Any:
        for chunk in super().iter_changed(source, window, chunk_size=chunk_size):
            copies = [
                dataclasses.replace(r, row={**r.row, **self.copy})
                for r in chunk
                if r.source_id == self.twice
            ]
            if self.apart:  # the copy arrives in a later chunk
                yield chunk
                if copies:
                    yield copies
            else:
                yield chunk + copies


@pytest.mark.parametrize("apart", [False, True], ids=["same-chunk", "later-chunk"])
def test_an_id_returned_twice_is_quarantined_not_pushed_twice(env: SyncEnv, apart: bool) -> None:
    env.sync("businesses")
    warehouse = DuplicatingWarehouse(
        env.wh_engine, "cus-01-0002", {"company_name": "Imposter Ltd"}, apart
    )
    engine = SyncEngine(warehouse, env.ledger, env.settings)

    result = engine.sync_entity(entities.get("customers"), WINDOW)

    row = env.ledger.get("customers", "cus-01-0002")
    assert row is not None and row.status is Status.REJECTED
    assert row.error_code == "duplicate_source_id"
    assert row.error_details is not None and list(row.error_details) == ["id"]
    assert "cus-01-0002" in (row.error_message or "")
    assert result.counts["rejected"] == 1
    rows = env.warehouse_count(wh.customers)
    objects = env.counts()["customers"]
    if not apart:  # both rows seen together: neither is sent
        assert result.counts["created"] == rows - 1 and objects == rows - 1
        assert row.thred_id is None
    else:  # the first row went before the second showed up; only that one is in Thred
        assert result.counts["created"] == rows and objects == rows
        assert row.thred_id is not None
        assert env.thred_object("customers", "cus-01-0002")["company_name"] != "Imposter Ltd"
    assert env.stats()["duplicate_external_ids"] == 0
    assert env.statuses("customers") == {"rejected": 1, "synced": rows - 1}
    # Still duplicated next run: still quarantined, nothing sent.
    again = engine.sync_entity(entities.get("customers"), WINDOW)
    assert again.api_writes == 0 and again.counts["rejected"] >= 1


# --- a business Thred refuses -------------------------------------------------------------------


def refusing(business: str) -> Any:
    """Thred refuses the business's credentials (403) from now on; the partner's still work."""

    def factory(settings: ThredSettings) -> ThredClient:
        class Refused(ThredClient):
            async def request(self, method: str, path: str, **kw: Any) -> ThredResponse:  # type: ignore[override]
                if kw.get("business_id") == business:
                    raise ThredAuthError(
                        "forbidden",
                        status=403,
                        error_code="permission_denied",
                        business_id=business,
                    )
                return await super().request(method, path, **kw)

        return Refused(settings)

    return factory


def test_a_refused_business_defers_only_what_needs_thred(env: SyncEnv) -> None:
    quarantined = lines_of(env, "inv-01-00024")[0]
    env.edit("invoice_line_items", quarantined["id"], tax_code="VAT_99")
    env.sync_all()
    assert ledger_statuses(env.ledger, "invoices") == {"synced": 24, "rejected": 1}

    at = day_window(1).start + timedelta(hours=1)
    line = lines_of(env, UNPAID_INVOICE)[0]
    env.edit(
        "invoice_line_items",
        line["id"],
        unit_price_cents=line["unit_price_cents"] + 100,
        updated_at=at,
    )
    env.edit("invoices", UNPAID_INVOICE, updated_at=at)
    env.edit("customers", "cus-01-0002", archived_at=at, updated_at=at)
    everything = TimeWindow(WINDOW.start, day_window(1).end)
    refused = refusing(env.thred_business)

    invoices = env.sync("invoices", everything, client_factory=refused)
    customers = env.sync("customers", everything, client_factory=refused)

    assert dict(invoices.counts) == {"deferred": 1, "rejected": 1, "unchanged": 23}
    assert dict(customers.counts) == {"deferred": 1, "unchanged": 5}
    assert invoices.api_writes == customers.api_writes == 0
    assert list(invoices.paused_businesses) == list(customers.paused_businesses) == ["biz-01"]
    for entity, waiting in (("invoices", UNPAID_INVOICE), ("customers", "cus-01-0002")):
        row = env.ledger.get(entity, waiting)
        assert row is not None and row.status is Status.DEFERRED
        assert row.error_code == "business_paused" and row.thred_id  # Thred still holds it
    kept = env.ledger.get("invoices", "inv-01-00024")
    assert kept is not None and kept.status is Status.REJECTED
    assert kept.error_code == "invalid_source_data"  # the reason a human must act on survives
    assert ledger_statuses(env.ledger, "customers") == {"synced": 5, "deferred": 1}

    # Access restored: what waited goes through, the rest costs nothing.
    invoices = env.sync("invoices", everything)
    customers = env.sync("customers", everything)
    assert invoices.counts["updated"] == 1 and invoices.counts["released"] == 1
    assert customers.counts["terminal"] == 1 and customers.counts["released"] == 1
    assert invoices.api_writes == customers.api_writes == 1
    assert ledger_statuses(env.ledger, "customers") == {"synced": 6}
    assert env.thred_object("customers", "cus-01-0002")["is_archived"] is True
    books = env.books()  # only the quarantined invoice differs, and the books say why
    assert books.verdict == "WARN"
    assert set(books.differences["cause"]) == {"quarantined"}
