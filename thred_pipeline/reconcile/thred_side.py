"""The actual side of reconciliation: Thred's records, read through documented fields only.

Every value comes from a field ``../shared/thred-api.md`` marks [doc] or [example]. Thred ids
are mapped back to warehouse records through the ledger's ``thred_id`` (list shapes of
payments and refunds carry no ``external_id``; aging rows carry only ``customer_id`` /
``vendor_id``). How one item becomes compared values is declared on each entity
(``spec.reconcile.thred``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from thred_pipeline.entities import EntitySpec
from thred_pipeline.entities.thred_values import Unreadable, money
from thred_pipeline.thred.client import ThredClient
from thred_pipeline.thred.errors import ThredNotFoundError
from thred_pipeline.thred.paths import business_resource


async def list_items(
    client: ThredClient, thred_business: str, spec: EntitySpec, *, parent_ids: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Every item of one entity's list for a business; a nested list once under each parent
    (refund payments under each refund), each item then naming its parent."""
    params = dict(spec.list_params) or None
    if spec.listed_under is None:
        lists: list[tuple[str, str | None]] = [(spec.create_path, None)]
        key = ""
    else:
        key = spec.listed_under[1]
        lists = [(spec.create_path.format(**{key: p}), p) for p in parent_ids]
    items: list[dict[str, Any]] = []
    for path, parent in lists:
        async for item in client.iter_pages(
            business_resource(thred_business, path), business_id=thred_business, params=params
        ):
            if parent is not None and not item.get(key):
                item = {**item, key: parent}
            items.append(item)
    return items


async def get_detail(
    client: ThredClient, thred_business: str, spec: EntitySpec, thred_id: str
) -> dict[str, Any] | None:
    """A record by Thred id (documented detail pages); ``None`` when Thred says not found."""
    path = business_resource(thred_business, spec.create_path, thred_id)
    try:
        response = await client.request("GET", path, business_id=thred_business)
    except ThredNotFoundError:
        return None
    return response.body if isinstance(response.body, dict) else None


async def read_aging(
    client: ThredClient, thred_business: str, side: str, party: str
) -> dict[str, Any]:
    """AR (``side="ar"``) or AP aging grouped by ``party`` ("customer"/"vendor"); [doc] path,
    [inferred] row keys."""
    response = await client.request(
        "GET",
        business_resource(thred_business, "insights", f"{side}-aging"),
        business_id=thred_business,
        params={"group_by": party},
    )
    return response.body if isinstance(response.body, dict) else {}


def aging_per_party(body: Mapping[str, Any], party: str) -> dict[str, int | Unreadable]:
    """Thred party id -> total outstanding cents, from the aging rows of ``party``."""
    rows = body.get(f"{party}s")
    out: dict[str, int | Unreadable] = {}
    if not isinstance(rows, list):
        return out
    for row in rows:
        if not isinstance(row, Mapping) or not row.get(f"{party}_id"):
            continue
        value = money(row, "total_outstanding_cents")
        out[str(row[f"{party}_id"])] = value if value is not None else Unreadable(None)
    return out
