"""Reconciliation covers every entity of the registry, and both sides yield what it compares."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from thred_pipeline import entities
from thred_pipeline.checks import BOOKS_CHECKS
from thred_pipeline.entities import Balances, EntitySpec
from thred_pipeline.reconcile.parties import money_entities
from thred_pipeline.reconcile.warehouse_side import WarehouseBooks
from thred_pipeline.warehouse import schema as wh


def test_every_registry_entity_has_one_check_and_each_side_one_balance_check() -> None:
    names = [spec.name for spec in entities.ENTITIES]
    balances = [f"{side.name}_balances" for side in entities.BALANCES]
    assert sorted(BOOKS_CHECKS) == sorted([*names, *balances])


@pytest.mark.parametrize("spec", entities.ENTITIES, ids=lambda s: s.name)
def test_the_warehouse_side_yields_every_compared_column(spec: EntitySpec) -> None:
    """A measure only Thred's side fills would compare every record as "cannot compare"."""
    engine = create_engine("sqlite://")
    wh.metadata.create_all(engine)
    frame = WarehouseBooks(engine).frame(spec)
    wanted = {"business_id", "source_id", "version", *(c.column for c in spec.reconcile.columns)}
    assert wanted <= set(frame.columns)


@pytest.mark.parametrize("side", entities.BALANCES, ids=lambda s: s.name)
def test_balance_sides_name_registry_entities_and_real_columns(side: Balances) -> None:
    assert {side.party, *money_entities(side)} <= set(entities.BY_NAME)
    assert side.party_column in entities.get(side.document).table.c
    for settlement in side.settlements:
        columns = settlement.allocations.c
        assert settlement.settlement_column in columns and settlement.document_column in columns
        assert side.party_column in entities.get(settlement.entity).table.c
