"""The entity registry: every object thred-pipeline syncs.

``ENTITIES`` lists them in area order (businesses, ar, ar_payouts, ap), each area's objects as
its module declares them; ``sync_order()`` gives Thred's order (parents first).

Each object is declared once, in its module (``businesses``, ``ar``, ``ar_payouts``, ``ap``):
warehouse table, mapper, parents, Thred paths, change handling and reconciliation side by
side. Assets, asset checks, the sync order, extraction, the engine and reconciliation are all
generated from this registry; adding an object type is one declaration in its module (and its
name in that module's ``DECLARED``). Nothing here imports Dagster, sync/ or reconcile/.
"""

from __future__ import annotations

from collections.abc import Iterable

from thred_pipeline.entities import ap, ar, ar_payouts, businesses
from thred_pipeline.entities.spec import (
    Balances,
    ChangePolicy,
    Compared,
    EntitySpec,
    ParentFlag,
    Ref,
    Settlement,
)
from thred_pipeline.warehouse.source import ChildTable, SourceTable

__all__ = [
    "BALANCES",
    "BY_NAME",
    "ENTITIES",
    "Balances",
    "ChangePolicy",
    "ChildTable",
    "Compared",
    "EntitySpec",
    "ParentFlag",
    "Ref",
    "Settlement",
    "SourceTable",
    "business_root",
    "dependants",
    "get",
    "sync_order",
    "upstream",
]

# The areas in Thred's order; each module lists its own objects, so adding one is one edit.
ENTITIES: tuple[EntitySpec, ...] = (
    *businesses.DECLARED,
    *ar.DECLARED,
    *ar_payouts.DECLARED,
    *ap.DECLARED,
)

# The two party balances reconciliation checks: what customers owe, what is owed to vendors.
BALANCES: tuple[Balances, ...] = (ar.AR, ap.AP)

BY_NAME: dict[str, EntitySpec] = {spec.name: spec for spec in ENTITIES}


def get(name: str) -> EntitySpec:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown entity {name!r}; known: {', '.join(BY_NAME)}") from None


def business_root() -> EntitySpec:
    """The entity whose records are the businesses every other record belongs to."""
    return _BUSINESS_ROOT


def dependants(name: str) -> list[tuple[EntitySpec, Ref]]:
    """Every (entity, reference) whose ``refs`` point at entity ``name``."""
    return [(spec, ref) for spec in ENTITIES for ref in spec.refs if ref.entity == name]


def upstream(name: str) -> frozenset[str]:
    """Entities whose records' state can decide whether Thred accepts a record of ``name``:
    its parents and ``retry_after``, transitively (``businesses`` included)."""
    found: set[str] = set()
    pending = [name]
    while pending:
        spec = get(pending.pop())
        for parent in (*spec.depends_on, *spec.retry_after):
            if parent not in found:
                found.add(parent)
                pending.append(parent)
    found.discard(name)
    return frozenset(found)


def sync_order(specs: Iterable[EntitySpec] = ENTITIES) -> list[EntitySpec]:
    """Topological order of the registry (parents first), stable in declaration order."""
    pending = list(specs)
    done: set[str] = set()
    ordered: list[EntitySpec] = []
    while pending:
        # retry_after orders too (a refund after the payments it needs) without being a ref.
        ready = [s for s in pending if all(d in done for d in (*s.depends_on, *s.retry_after))]
        if not ready:
            raise ValueError(f"dependency cycle among {[s.name for s in pending]}")
        for spec in ready:
            ordered.append(spec)
            done.add(spec.name)
            pending.remove(spec)
    return ordered


def _check(specs: tuple[EntitySpec, ...]) -> None:
    """Refuse a registry whose names repeat or whose parents are not in it (at import)."""
    roots = [spec.name for spec in specs if spec.is_business_root]
    if len(roots) != 1:
        raise ValueError(f"entity registry: exactly one business root expected, got {roots}")
    names = [spec.name for spec in specs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    unknown = sorted(
        {p for spec in specs for p in (*spec.depends_on, *spec.retry_after)} - set(names)
    )
    if repeated or unknown:
        raise ValueError(f"entity registry: repeated {repeated}, unknown parents {unknown}")
    sync_order(specs)  # raises on a cycle


_check(ENTITIES)
_BUSINESS_ROOT = next(spec for spec in ENTITIES if spec.is_business_root)
