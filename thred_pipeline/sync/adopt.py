"""Finding the object Thred holds under our external_id after a 409 ``duplicate_external_id``.

Thred's create pages answer a repeated external_id with 200 and the stored object; its error
guide documents 409 ``duplicate_external_id``. On a 409 the object is looked up in the create
path's list (by external_id: with the documented filter where the list has one, otherwise the
list is read once per run and kept), or — where the documented list shape carries no
external_id (refunds) — by the entity's ``adopt_match`` among listed objects no other ledger
row owns. None or several candidates: the caller records ``unknown`` with the reason.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from thred_pipeline.ledger import LedgerRow, SyncLedger
from thred_pipeline.sync.planner import choose_adoptee
from thred_pipeline.sync.run import Job, Listing, Run

_NOT_LISTED = "no object with that external_id is listed"


async def find_ours(
    ledger: SyncLedger, job: Job, prior: LedgerRow | None, path: str, sent_at: float
) -> tuple[str | None, str]:
    """(the Thred id of our object, "") or (None, why it was not found)."""
    spec, external_id = job.spec, job.external_id
    business = None if spec.partner_scoped else job.state.thred_id
    if spec.external_id_filter:
        params = {**dict(spec.lookup_params), "external_id": external_id}
        item = await job.client.find_by_external_id(
            path, external_id, business_id=business, params=params
        )
        if item is not None and item.get("id"):
            return str(item["id"]), ""
        return None, _NOT_LISTED
    listing = await _listing(job, path, business, None)
    reason = _NOT_LISTED
    for attempt in (1, 2):
        item = listing.by_external_id.get(external_id)
        if item is not None and item.get("id"):
            return str(item["id"]), ""
        adopted, reason = _match(ledger, job, prior, listing)
        if adopted is not None:
            return adopted, ""
        if attempt == 1 and listing.built_at < sent_at:
            # The object may be younger than the list we hold: read it again, once.
            listing = await _listing(job, path, business, sent_at)
    return None, reason


def _match(
    ledger: SyncLedger, job: Job, prior: LedgerRow | None, listing: Listing
) -> tuple[str | None, str]:
    spec = job.spec
    if listing.carries_external_ids or spec.adopt_match is None:
        return None, _NOT_LISTED
    candidates = [
        str(item["id"])
        for item in listing.items
        if item.get("id") and spec.adopt_match(job.body, item)
    ]
    own = prior.thred_id if prior is not None else None
    if own is not None and own in candidates:
        return own, ""
    rows = ledger.iter_rows(spec.name, business_id=job.business_id)
    taken = {r.thred_id for r in rows if r.thred_id}
    return choose_adoptee(candidates, own, taken, spec.label)


async def _listing(job: Job, path: str, business: str | None, fresh_after: float | None) -> Listing:
    run: Run = job.run
    lock = run.listing_locks.setdefault(path, asyncio.Lock())
    async with lock:
        listing = run.listings.get(path)
        if listing is not None and (fresh_after is None or listing.built_at >= fresh_after):
            return listing
        built_at = time.monotonic()
        items: list[dict[str, Any]] = []
        params = dict(job.spec.lookup_params) or None
        async for item in run.client.iter_pages(path, business_id=business, params=params):
            if isinstance(item, dict):
                items.append(item)
        by_external_id = {
            str(i["external_id"]): i for i in items if isinstance(i.get("external_id"), str)
        }
        listing = Listing(items, by_external_id, built_at)
        run.listings[path] = listing
        return listing
