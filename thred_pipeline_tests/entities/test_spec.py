"""The declarations themselves: parents declared once, typed reconciliation rules, the registry."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from thred_pipeline import entities
from thred_pipeline.core.records import MapContext, ParentNotSynced, SourceRecord
from thred_pipeline.entities import ar
from thred_pipeline.entities.spec import (
    Compared,
    Measure,
    Parents,
    Reconciliation,
    Ref,
    UndeclaredParent,
    flag,
)
from thred_pipeline.entities.thred_values import Unreadable
from thred_pipeline.warehouse import schema as wh
from thred_pipeline.warehouse.text_reads import TextReads


def no_rows(reads: TextReads) -> pd.DataFrame:
    """A warehouse side with no records: these rules fail before it is ever read."""
    return pd.DataFrame()


CTX = MapContext(
    business_id="T-BIZ-1",
    base_currency="GBP",
    thred_ids={("customers", "cus-1"): "T-CUS-1", ("invoices", "inv-1"): "T-INV-1"},
)


def _refund(**row: Any) -> SourceRecord:
    values = {
        "id": "ref-1",
        "business_id": "biz-1",
        "invoice_id": "inv-1",
        "amount_cents": 500,
        "method": "CARD",
    }
    return SourceRecord(
        entity="refunds",
        source_id="ref-1",
        business_id="biz-1",
        updated_at=datetime(2025, 3, 1, tzinfo=UTC),
        row={**values, **row},
    )


# --- parents: declared once, read by the order and the mapper -----------------------------------


def test_a_mapper_resolves_a_declared_parent():
    mapped = entities.get("refunds").mapper(_refund(), CTX)
    assert mapped.body["invoice_id"] == "T-INV-1"


def test_a_parent_not_yet_in_thred_defers_the_record():
    with pytest.raises(ParentNotSynced) as caught:
        entities.get("refunds").mapper(_refund(invoice_id="inv-9"), CTX)
    assert (caught.value.entity, caught.value.source_id) == ("invoices", "inv-9")


def test_dropping_a_parent_from_the_declaration_breaks_loudly_not_silently():
    """Without the ``Ref`` the order would not wait for invoices; the mapper must not either."""
    undeclared = dataclasses.replace(entities.get("refunds"), refs=())
    with pytest.raises(UndeclaredParent, match="refunds does not declare"):
        undeclared.mapper(_refund(), CTX)
    assert "invoices" not in undeclared.depends_on


def test_parents_only_resolve_declared_bindings():
    parents = Parents("refunds", (ar.REFUNDED_INVOICE,), CTX)
    assert parents.thred_id(Ref("invoices", "invoice_id"), "inv-1", "invoice_id") == "T-INV-1"
    with pytest.raises(UndeclaredParent):
        parents.thred_id(ar.CUSTOMER, "cus-1", "customer_id")


def test_the_order_waits_for_every_declared_parent_and_the_business():
    """The same ``refs`` the mapper resolves through (every mapper test goes through
    ``spec.mapper``, which refuses an undeclared parent) decide what the entity waits for."""
    for spec in entities.ENTITIES:
        declared = {ref.entity for ref in spec.refs}
        business = set() if spec.is_business_root else {"businesses"}
        assert spec.depends_on == tuple(sorted(declared | business)), spec.name


def test_refs_on_children_must_name_a_declared_child():
    spec = entities.get("invoice_payments")
    with pytest.raises(ValueError, match="undeclared children"):
        dataclasses.replace(spec, children=())


# --- reconciliation rules: typed, checked when declared -------------------------------------------


def test_a_misspelt_measure_cannot_be_declared():
    with pytest.raises(AttributeError):
        Measure.TOTAL_CENT  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(TypeError, match="Measure members"):
        Reconciliation((Compared("total_cent"),), {"total_cent": lambda i, r: 1}, no_rows)  # type: ignore[arg-type,dict-item]


def test_a_compared_measure_needs_a_thred_reader():
    with pytest.raises(ValueError, match="without a Thred reader"):
        Reconciliation((Compared(Measure.TOTAL_CENTS), flag(Measure.VOIDED)), {}, no_rows)


def test_warehouse_only_values_name_compared_measures():
    with pytest.raises(ValueError, match="uncompared"):
        Reconciliation(
            (flag(Measure.ARCHIVED),),
            {Measure.ARCHIVED: lambda i, r: False},
            no_rows,
            warehouse_only={Measure.VOIDED: True},
        )


def test_thred_values_read_a_listed_item_by_measure():
    rule = entities.get("invoice_payments").reconcile
    item = {"customer": {"id": "T-CUS-1"}, "total_amount_cents": 900, "allocated_amount": "4.00"}
    values = rule.thred_values(item, {"customers": {"T-CUS-1": "cus-1"}})
    assert values["customer_id"] == "cus-1"
    assert values["total_cents"] == 900
    assert isinstance(values["allocated_cents"], Unreadable)
    assert values["unallocated_cents"] is None
    assert [c.column for c in rule.columns] == [
        "customer_id",
        "total_cents",
        "allocated_cents",
        "unallocated_cents",
        "fee_cents",
    ]


def test_every_entity_declares_what_reconciliation_compares():
    for spec in entities.ENTITIES:
        rule = spec.reconcile
        assert rule.columns, spec.name
        assert {c.measure for c in rule.columns} <= set(rule.thred), spec.name


def test_the_balances_name_registered_entities_and_their_allocation_tables():
    by_name = entities.BY_NAME
    for side in entities.BALANCES:
        assert side.party in by_name and side.document in by_name
        for settlement in side.settlements:
            spec = by_name[settlement.entity]
            assert settlement.allocations in {child.table for child in spec.children}
            assert settlement.settlement_column in settlement.allocations.c
            assert settlement.document_column in settlement.allocations.c
            assert side.document in {ref.entity for ref in spec.refs}
    assert entities.BALANCES[0].party_balance is Measure.OUTSTANDING_BALANCE


# --- the registry ---------------------------------------------------------------------------------


def test_the_registry_is_in_threds_order_with_one_business_root():
    for order in (entities.ENTITIES, entities.sync_order()):
        seen: set[str] = set()
        for spec in order:
            assert set(spec.depends_on) | set(spec.retry_after) <= seen, spec.name
            seen.add(spec.name)
    assert entities.business_root().name == "businesses"
    assert [s.name for s in entities.ENTITIES if s.is_business_root] == ["businesses"]


def test_the_refund_waits_for_the_payments_it_needs():
    order = [spec.name for spec in entities.sync_order()]
    assert order.index("invoice_payments") < order.index("refunds")
    assert entities.upstream("refund_payments") == {
        "businesses",
        "customers",
        "invoices",
        "invoice_payments",
        "refunds",
    }


def test_a_spec_carries_the_source_table_extraction_reads():
    source = entities.get("vendor_credits").source
    assert source.name == "vendor_credits" and source.table is wh.vendor_credits
    assert [child.key for child in source.children] == ["lines", "allocations"]
    assert source.external_id("vc-1") == "vendor-credit-vc-1"


def test_only_invoices_read_a_parent_flag():
    flagged = {s.name: s.flagged_parents for s in entities.ENTITIES if s.flagged_parents}
    assert list(flagged) == ["invoices"]
    assert flagged["invoices"] == entities.ParentFlag("customer_id", wh.customers, "tax_exempt")
