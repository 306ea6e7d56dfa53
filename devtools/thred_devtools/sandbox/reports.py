"""Reads of the ledger: chart of accounts, journal entries, P&L, balance sheet, cash flow.

All amounts are cents in the business's base currency. The balance sheet folds the
cumulative profit into equity ("retained earnings include current-period profit" [doc]),
so ``total_assets_cents == total_liabilities_cents + total_equity_cents`` always holds for a
balanced journal.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from thred_devtools.sandbox import ledger, rules
from thred_devtools.sandbox.core import Result, add_error, fail_if, public, replay_existing
from thred_devtools.sandbox.errors import Details
from thred_devtools.sandbox.models import AccountCreate
from thred_devtools.sandbox.state import Sandbox, now_iso
from thred_devtools.sandbox.store import Obj

SUBTYPE_NAMES = {
    "current_assets": "Current Assets",
    "non_current_assets": "Non-current Assets",
    "current_liabilities": "Current Liabilities",
    "non_current_liabilities": "Non-current Liabilities",
    "share_capital": "Share Capital",
    "share_premium": "Share Premium",
    "reserves": "Reserves",
    "retained_earnings": "Retained Earnings",
    "revenue": "Revenue",
    "other_operating_income": "Other Operating Income",
    "finance_income": "Finance Income",
    "direct_costs": "Direct Costs",
    "operating_expenses": "Operating Expenses",
    "finance_costs": "Finance Costs",
    "income_tax": "Income Tax",
}


def fmt_money(cents: int, currency: str) -> str:
    return rules.display_amount(cents, currency)


def account_view(sb: Sandbox, acc: Obj) -> dict[str, Any]:
    debit, credit = sb.balances.debit_credit(acc["_scope"], acc["code"])
    balance = ledger.natural_balance(acc["account_type"], debit, credit)
    out = public(acc)
    out.update(
        {
            "account_type_display": acc["account_type"].capitalize(),
            "account_subtype_display": SUBTYPE_NAMES.get(
                acc.get("account_subtype") or "", acc.get("account_subtype")
            ),
            "current_balance": balance,
            "current_balance_formatted": fmt_money(balance, acc["currency"]),
            "debit_balance": debit,
            "credit_balance": credit,
            "period_balance": balance,
            "has_children": any(
                a.get("parent_account_code") == acc["code"]
                for a in sb.store.scan(acc["_scope"], ledger.ACCOUNTS)
            ),
            "hierarchy_level": 1 if acc.get("parent_account_code") else 0,
        }
    )
    return out


def create_account(sb: Sandbox, business: Obj, body: AccountCreate) -> Result:
    store = sb.store
    scope = business["id"]
    if body.external_id is not None:
        existing = store.find(scope, ledger.ACCOUNTS, "external_id", body.external_id)
        if existing is not None:
            return replay_existing(sb, "account", existing, lambda a: account_view(sb, a))
    details: Details = {}
    if ledger.account_by_code(store, scope, body.code) is not None:
        add_error(details, "code", f"Account code {body.code} already exists.")
    subtype = body.account_subtype or rules.ACCOUNT_SUBTYPES[body.account_type][0]
    if subtype not in rules.ACCOUNT_SUBTYPES[body.account_type]:
        add_error(
            details, "account_subtype", f"Not a valid subtype for {body.account_type} accounts."
        )
    parent_code = None
    if body.parent_id is not None:
        parent = store.get_in(ledger.ACCOUNTS, scope, body.parent_id)
        if parent is None:
            add_error(details, "parent_id", "Parent account not found.")
        else:
            parent_code = parent["code"]
    fail_if(details)
    now = now_iso()
    acc: Obj = {
        "id": store.new_id(),
        "_scope": scope,
        "_key": body.code,
        "business_id": scope,
        "external_id": body.external_id,
        "code": body.code,
        "name": body.name,
        "account_type": body.account_type,
        "account_subtype": subtype,
        "parent_account_code": parent_code,
        "currency": business["base_currency"],
        "description": body.description or "",
        "is_cash_account": body.is_cash_account,
        "is_active": True,
        "is_system": False,
        "created_at": now,
        "updated_at": now,
    }
    store.put(ledger.ACCOUNTS, acc)
    return 201, account_view(sb, acc)


def journal_entry_view(sb: Sandbox, entry: Obj) -> dict[str, Any]:
    scope = entry["_scope"]
    out = public(entry)
    lines = []
    for i, ln in enumerate(entry["lines"]):
        acc = ledger.account_by_code(sb.store, scope, ln["account"]) or {}
        lines.append(
            {
                "line_number": i + 1,
                "account_id": acc.get("id"),
                "account_code": ln["account"],
                "account_name": acc.get("name"),
                "debit_cents": ln["debit"],
                "credit_cents": ln["credit"],
                "description": ln.get("description"),
                "tags": ln.get("tags", {}),
            }
        )
    out["lines"] = lines
    out["total_debit_cents"] = sum(ln["debit"] for ln in entry["lines"])
    out["total_credit_cents"] = sum(ln["credit"] for ln in entry["lines"])
    return out


def _period_sums(
    sb: Sandbox, scope: str, start: dt.date | None, end: dt.date | None
) -> dict[str, list[int]]:
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for _, ln in ledger.iter_lines(sb.store, scope, start, end):
        sums[ln["account"]][0] += ln["debit"]
        sums[ln["account"]][1] += ln["credit"]
    return sums


def _section(
    sb: Sandbox, scope: str, sums: dict[str, list[int]], subtypes: tuple[str, ...], name: str
) -> dict[str, Any]:
    items = []
    total = 0
    for acc in sb.store.scan(scope, ledger.ACCOUNTS):
        if acc.get("account_subtype") not in subtypes:
            continue
        debit, credit = sums.get(acc["code"], [0, 0])
        value = ledger.natural_balance(acc["account_type"], debit, credit)
        if value == 0 and (debit == 0 and credit == 0):
            continue
        items.append(
            {
                "account_id": acc["id"],
                "account_code": acc["code"],
                "account_name": acc["name"],
                "value_cents": value,
            }
        )
        total += value
    return {"display_name": name, "total_cents": total, "line_items": items}


def profit_and_loss(
    sb: Sandbox, business: Obj, start: dt.date | None, end: dt.date | None, detail_level: str
) -> dict[str, Any]:
    scope = business["id"]
    sums = _period_sums(sb, scope, start, end)
    sections = {
        "revenue": _section(sb, scope, sums, ("revenue",), "Revenue"),
        "other_operating_income": _section(
            sb, scope, sums, ("other_operating_income",), "Other Operating Income"
        ),
        "direct_costs": _section(sb, scope, sums, ("direct_costs",), "Direct Costs"),
        "operating_expenses": _section(
            sb, scope, sums, ("operating_expenses",), "Operating Expenses"
        ),
        "finance_income": _section(sb, scope, sums, ("finance_income",), "Finance Income"),
        "finance_costs": _section(sb, scope, sums, ("finance_costs",), "Finance Costs"),
        "income_tax": _section(sb, scope, sums, ("income_tax",), "Income Tax"),
    }
    net_revenue = sections["revenue"]["total_cents"]
    operating_income = net_revenue + sections["other_operating_income"]["total_cents"]
    gross_profit = operating_income - sections["direct_costs"]["total_cents"]
    opex = sections["operating_expenses"]["total_cents"]
    operating_profit = gross_profit - opex
    before_tax = (
        operating_profit
        + sections["finance_income"]["total_cents"]
        - sections["finance_costs"]["total_cents"]
    )
    net_profit = before_tax - sections["income_tax"]["total_cents"]
    return {
        "business_id": scope,
        "currency": business["base_currency"],
        "start_date": start.isoformat() if start else None,
        "end_date": end.isoformat() if end else None,
        "detail_level": detail_level,
        "summary": {
            "net_revenue_cents": net_revenue,
            "total_operating_income_cents": operating_income,
            "gross_profit_cents": gross_profit,
            "total_operating_expenses_cents": opex,
            "operating_profit_cents": operating_profit,
            "profit_before_tax_cents": before_tax,
            "net_profit_cents": net_profit,
        },
        **sections,
    }


def balance_sheet(sb: Sandbox, business: Obj, as_of: dt.date) -> dict[str, Any]:
    scope = business["id"]
    sums = _period_sums(sb, scope, None, as_of)
    current_assets = _section(sb, scope, sums, ("current_assets",), "Current Assets")
    non_current_assets = _section(sb, scope, sums, ("non_current_assets",), "Non-current Assets")
    current_liabilities = _section(sb, scope, sums, ("current_liabilities",), "Current Liabilities")
    non_current_liabilities = _section(
        sb, scope, sums, ("non_current_liabilities",), "Non-current Liabilities"
    )
    equity = _section(
        sb,
        scope,
        sums,
        ("share_capital", "share_premium", "reserves", "retained_earnings"),
        "Equity",
    )
    profit = 0
    for acc in sb.store.scan(scope, ledger.ACCOUNTS):
        if acc["account_type"] in ("revenue", "expense"):
            debit, credit = sums.get(acc["code"], [0, 0])
            profit += credit - debit
    equity["line_items"].append(
        {
            "account_id": None,
            "account_code": None,
            "account_name": "Current Period Profit",
            "value_cents": profit,
        }
    )
    equity["total_cents"] += profit
    assets = current_assets["total_cents"] + non_current_assets["total_cents"]
    liabilities = current_liabilities["total_cents"] + non_current_liabilities["total_cents"]
    return {
        "business_id": scope,
        "currency": business["base_currency"],
        "as_of_date": as_of.isoformat(),
        "summary": {
            "total_assets_cents": assets,
            "total_non_current_assets_cents": non_current_assets["total_cents"],
            "total_current_assets_cents": current_assets["total_cents"],
            "total_liabilities_cents": liabilities,
            "total_current_liabilities_cents": current_liabilities["total_cents"],
            "total_non_current_liabilities_cents": non_current_liabilities["total_cents"],
            "total_equity_cents": equity["total_cents"],
            "net_assets_cents": assets - liabilities,
            "is_balanced": assets == liabilities + equity["total_cents"],
        },
        "current_assets": current_assets,
        "non_current_assets": non_current_assets,
        "current_liabilities": current_liabilities,
        "non_current_liabilities": non_current_liabilities,
        "equity": equity,
    }


def cash_flow(
    sb: Sandbox, business: Obj, start: dt.date | None, end: dt.date | None
) -> dict[str, Any]:
    """Cash accounts only: every movement counts as operating ([inferred] simplification)."""
    scope = business["id"]
    cash_codes = {
        a["code"] for a in sb.store.scan(scope, ledger.ACCOUNTS) if a.get("is_cash_account")
    }
    opening = 0
    change = 0
    for entry, ln in ledger.iter_lines(sb.store, scope, None, end):
        if ln["account"] not in cash_codes:
            continue
        amount = ln["debit"] - ln["credit"]
        if start is not None and dt.date.fromisoformat(entry["entry_date"]) < start:
            opening += amount
        else:
            change += amount
    closing = opening + change
    return {
        "business_id": scope,
        "currency": business["base_currency"],
        "start_date": start.isoformat() if start else None,
        "end_date": end.isoformat() if end else None,
        "summary": {
            "net_cash_from_operating_cents": change,
            "net_cash_from_investing_cents": 0,
            "net_cash_from_financing_cents": 0,
            "net_change_in_cash_cents": change,
            "opening_cash_cents": opening,
            "closing_cash_cents": closing,
        },
        "cash_reconciliation": {
            "opening_cash_cents": opening,
            "net_change_cents": change,
            "calculated_closing_cents": opening + change,
            "actual_closing_cents": closing,
            "reconciles": True,
        },
    }


def check_dates(start: dt.date | None, end: dt.date | None) -> None:
    details: Details = {}
    if start and end and start > end:
        add_error(details, "end_date", "end_date must not be before start_date.")
    fail_if(details)
