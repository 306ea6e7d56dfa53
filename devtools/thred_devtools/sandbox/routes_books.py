"""The books: AR/AP aging, reports and the general ledger (chart of accounts, journal)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from thred_devtools.sandbox import aging, core, ledger, reports
from thred_devtools.sandbox import documented as doc
from thred_devtools.sandbox.errors import validation_error
from thred_devtools.sandbox.models import AccountCreate
from thred_devtools.sandbox.routes import (
    B,
    Business,
    SandboxDep,
    add_write,
    in_range,
    one,
    page,
)
from thred_devtools.sandbox.sides import AP, AR
from thred_devtools.sandbox.state import today
from thred_devtools.sandbox.web import paginate, q_bool, q_date, q_str, respond

router = APIRouter()


# ====================================================================== insights & reports


def _as_of(request: Request) -> dt.date:
    return q_date(request, "as_of_date") or today()


@router.get(B + "/insights/ar-aging/")
async def ar_aging(sb: SandboxDep, business: Business, request: Request) -> Response:
    with sb.store.lock:
        group_by = q_str(request, "group_by") or "customer"
        return one(sb, doc.AR_AGING, aging.aging(sb, AR, business, _as_of(request), group_by))


@router.get(B + "/insights/ap-aging/")
async def ap_aging(sb: SandboxDep, business: Business, request: Request) -> Response:
    with sb.store.lock:
        group_by = q_str(request, "group_by") or "vendor"
        return one(sb, doc.AP_AGING, aging.aging(sb, AP, business, _as_of(request), group_by))


@router.get(B + "/reports/profit-and-loss/")
async def profit_and_loss(sb: SandboxDep, business: Business, request: Request) -> Response:
    with sb.store.lock:
        start, end = q_date(request, "start_date"), q_date(request, "end_date")
        reports.check_dates(start, end)
        level = q_str(request, "detail_level") or "summary"
        if level not in ("summary", "detailed"):
            raise validation_error({"detail_level": ['Must be "summary" or "detailed".']})
        return respond(200, reports.profit_and_loss(sb, business, start, end, level))


@router.get(B + "/reports/balance-sheet/")
async def balance_sheet(sb: SandboxDep, business: Business, request: Request) -> Response:
    with sb.store.lock:
        return respond(200, reports.balance_sheet(sb, business, _as_of(request)))


@router.get(B + "/reports/cash-flow/")
async def cash_flow(sb: SandboxDep, business: Business, request: Request) -> Response:
    with sb.store.lock:
        start, end = q_date(request, "start_date"), q_date(request, "end_date")
        reports.check_dates(start, end)
        return respond(200, reports.cash_flow(sb, business, start, end))


# ====================================================================== general ledger


@router.get(B + "/general-ledger/chart-of-accounts/")
async def chart_of_accounts(sb: SandboxDep, business: Business, request: Request) -> Response:
    with sb.store.lock:
        account_type = q_str(request, "account_type")
        search = (q_str(request, "search") or "").lower()
        parent = q_str(request, "parent")
        include_zero = q_bool(request, "include_zero_balance")
        items = sorted(sb.store.scan(business["id"], ledger.ACCOUNTS), key=lambda a: a["code"])
        out = []
        for acc in items:
            if account_type is not None and acc["account_type"] != account_type:
                continue
            if search and search not in acc["code"].lower() and search not in acc["name"].lower():
                continue
            if parent is not None and acc.get("parent_account_code") != parent:
                continue
            if include_zero is False:
                d, c = sb.balances.debit_credit(business["id"], acc["code"])
                if d == c:
                    continue
            out.append(acc)
        return page(sb, request, out, doc.ACCOUNT, lambda a: reports.account_view(sb, a))


add_write(
    router,
    "POST",
    "/general-ledger/chart-of-accounts/",
    AccountCreate,
    reports.create_account,
    doc.ACCOUNT,
    "accounts",
)


@router.get(B + "/general-ledger/journal-entries/")
async def journal_entries(sb: SandboxDep, business: Business, request: Request) -> Response:
    with sb.store.lock:
        scope = business["id"]
        start, end = q_date(request, "date_from"), q_date(request, "date_to")
        account = q_str(request, "account")
        if account is not None:
            acc = sb.store.get_in(ledger.ACCOUNTS, scope, account)
            account = acc["code"] if acc else account
        source_type = q_str(request, "source_type")
        source_id = q_str(request, "source_id")
        search = (q_str(request, "search") or "").lower()
        items = (
            sb.store.lookup("je_by_source", source_id)
            if source_id
            else sb.store.scan(scope, ledger.JE)
        )
        out = [
            e
            for e in items
            if e["_scope"] == scope
            and in_range(e["entry_date"], start, end)
            and (account is None or any(ln["account"] == account for ln in e["lines"]))
            and (source_type is None or e["source_type"] == source_type)
            and (not search or search in e["memo"].lower())
        ]
        return respond(200, paginate(request, out, lambda e: reports.journal_entry_view(sb, e)))


@router.get(B + "/general-ledger/journal-entries/{entry_id}/")
async def journal_entry(sb: SandboxDep, business: Business, entry_id: str) -> Response:
    with sb.store.lock:
        return respond(
            200, reports.journal_entry_view(sb, core.get_owned(sb, ledger.JE, business, entry_id))
        )
