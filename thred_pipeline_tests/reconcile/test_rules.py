"""Reconciliation covers every entity of the registry, and its rules name real columns."""

from __future__ import annotations

import pytest

from thred_pipeline import entities
from thred_pipeline.checks import BOOKS_CHECKS
from thred_pipeline.entities import EntitySpec
from thred_pipeline.reconcile.rules import BALANCES, Balances, rule


def test_every_registry_entity_has_one_check_and_each_side_one_balance_check() -> None:
    names = [spec.name for spec in entities.ENTITIES]
    assert sorted(BOOKS_CHECKS) == sorted([*names, *(f"{s.name}_balances" for s in BALANCES)])


@pytest.mark.parametrize("spec", entities.ENTITIES, ids=lambda s: s.name)
def test_thred_side_yields_every_compared_column(spec: EntitySpec) -> None:
    """A column the rule compares but Thred's side never fills would compare as None."""
    values = rule(spec).thred_values({}, {})
    assert {c.column for c in rule(spec).columns} <= set(values)


@pytest.mark.parametrize("side", BALANCES, ids=lambda s: s.name)
def test_balance_sides_name_registry_entities_and_real_columns(side: Balances) -> None:
    names = {spec.name for spec in entities.ENTITIES}
    assert {side.party, *side.entities} <= names
    document = entities.get(side.document)
    assert side.party_column in document.table.c
    for settlement in side.settlements:
        columns = settlement.allocations.c
        assert settlement.settlement_column in columns and settlement.document_column in columns
        assert entities.get(settlement.entity).table.c[side.party_column] is not None
