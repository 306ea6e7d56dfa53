"""Thred's documented fields read as comparable values (reconciliation's actual side).

Money in an unsuffixed field whose unit the docs do not state is accepted only as an integer;
anything else is ``Unreadable`` — a failing "cannot compare", never a skip.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Item = Mapping[str, Any]
RefMap = Mapping[str, Mapping[str, str]]  # entity -> Thred id -> warehouse source id
ThredField = Callable[[Item, RefMap], Any]  # one item -> one compared value


class Unreadable:
    """A value Thred returned in a shape we cannot compare (e.g. ``"45.00"`` for cents)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def __repr__(self) -> str:
        return f"unreadable {self.raw!r}"

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = None  # type: ignore[assignment]


def money(item: Item, *keys: str) -> int | Unreadable | None:
    """The first present key as integer minor units; ``None`` when no key is present."""
    for key in keys:
        if key in item and item[key] is not None:
            value = item[key]
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            return Unreadable(value)
    return None


def nested_id(item: Item, key: str) -> str | None:
    """``customer{id}`` or ``customer_id``: both documented shapes of a party reference."""
    nested = item.get(key)
    if isinstance(nested, Mapping) and nested.get("id"):
        return str(nested["id"])
    flat = item.get(f"{key}_id")
    return str(flat) if flat else None


def ref(refs: RefMap, entity: str, thred_id: str | None) -> str | None:
    """The warehouse id of a Thred id, or a marker naming the unknown Thred id."""
    if thred_id is None:
        return None
    return refs.get(entity, {}).get(thred_id, f"thred:{thred_id}")


def total(rows: Any, *keys: str) -> int | Unreadable | None:
    """The sum of one money key over a list of rows (bill lines); unreadable if any row is."""
    if not isinstance(rows, list):
        return None
    result = 0
    for row in rows:
        value = money(row, *keys) if isinstance(row, Mapping) else Unreadable(row)
        if not isinstance(value, int):
            return value if value is not None else Unreadable(row)
        result += value
    return result


def status_is(item: Item, *values: str) -> bool:
    """Thred's ``status`` is one of ``values`` (any case)."""
    return str(item.get("status") or "").upper() in values


def first_allocation(item: Item, key: str) -> str | None:
    """``key`` of the first allocation: a refund lists the invoice it credits there."""
    allocations = item.get("allocations")
    if isinstance(allocations, list) and allocations and isinstance(allocations[0], Mapping):
        value = allocations[0].get(key)
        return str(value) if value else None
    return None
