"""Reconciliation covers every entity of the registry, the same way the registry names it."""

from __future__ import annotations

from thred_pipeline import entities
from thred_pipeline.checks import BOOKS_CHECKS
from thred_pipeline.reconcile.compare import RULES
from thred_pipeline.reconcile.thred_side import LIST_PATHS, SHAPES
from thred_pipeline.reconcile.warehouse_side import TABLES


def test_every_registry_entity_has_one_rule_and_one_check() -> None:
    names = [spec.name for spec in entities.ENTITIES]
    assert sorted(RULES) == sorted(names)
    assert set(BOOKS_CHECKS) == set(names) | {"ar_balances", "ap_balances"}


def test_rules_agree_with_the_registry() -> None:
    for spec in entities.ENTITIES:
        rule = RULES[spec.name]
        assert rule.external_prefix == spec.external_prefix, spec.name
        assert rule.label == spec.label, spec.name
        assert TABLES[spec.name] is spec.table, spec.name
        assert spec.name in SHAPES, spec.name
        if not spec.partner_scoped:
            assert LIST_PATHS[spec.name] == spec.create_path, spec.name
