"""The ledger behind balances: aging, chart of accounts, journal entries, reports."""

from __future__ import annotations

import pytest
from thred_devtools.sandbox import rules

from .conftest import Biz


def _account(biz: Biz, code: str) -> dict:
    results = biz.get(
        "general-ledger/chart-of-accounts/", params={"search": code, "page_size": 100}
    ).json()["results"]
    return next(a for a in results if a["code"] == code)


def _open_invoice_total(biz: Biz) -> int:
    invoices = biz.get("invoices/", params={"page_size": 100}).json()["results"]
    return sum(i["outstanding_balance"] for i in invoices if i["status"] != "VOIDED")


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_aging_buckets_and_totals(biz: Biz):
    a, b = biz.customer(), biz.customer()
    # as of 2025-06-30: due dates give current, 1-30, 31-60, 61-90, >90
    due = {
        "2025-07-15": 100,
        "2025-06-20": 200,
        "2025-05-20": 400,
        "2025-04-20": 800,
        "2025-01-01": 1600,
    }
    for i, (due_at, amount) in enumerate(due.items()):
        biz.invoice((a if i % 2 else b)["id"], [{"unit_price": amount}], due_at=due_at)
    part = biz.invoice(a["id"], [{"unit_price": 3200}], due_at="2025-06-29")
    biz.pay(a["id"], [(part["id"], 1200)])
    voided = biz.invoice(b["id"], [{"unit_price": 9999}])
    biz.post(f"invoices/{voided['id']}/void/")
    paid = biz.invoice(b["id"], [{"unit_price": 10}])
    biz.pay(b["id"], [(paid["id"], 10)])

    r = biz.get("insights/ar-aging/", params={"as_of_date": "2025-06-30"})
    assert r.status_code == 200
    aging = r.json()
    assert aging["as_of_date"] == "2025-06-30"
    assert aging["total_aging_buckets"] == {
        "current": 100,
        "days_1_30": 200 + 2000,
        "days_31_60": 400,
        "days_61_90": 800,
        "over_90_days": 1600,
    }
    total = 100 + 200 + 400 + 800 + 1600 + 2000
    assert aging["total_outstanding_cents"] == total == _open_invoice_total(biz)
    per_customer = {c["customer_id"]: c for c in aging["customers"]}
    for cust in (a, b):
        entry = per_customer[cust["id"]]
        balance = biz.get(f"customers/{cust['id']}/").json()["outstanding_balance"]
        assert entry["total_outstanding_cents"] == balance
        assert entry["customer_external_id"] == cust["external_id"]
        assert entry["customer_name"] == cust["display_name"]
        assert sum(entry["aging_buckets"].values()) == balance
    assert sum(c["total_outstanding_cents"] for c in aging["customers"]) == total
    assert _account(biz, "1200")["current_balance"] == total
    totals_only = biz.get(
        "insights/ar-aging/", params={"as_of_date": "2025-06-30", "group_by": "total"}
    ).json()
    assert totals_only["customers"] == [] and totals_only["total_outstanding_cents"] == total
    assert biz.get("insights/ar-aging/", params={"group_by": "vendor"}).status_code == 400
    assert biz.get("insights/ar-aging/", params={"as_of_date": "30/06/2025"}).status_code == 400
    assert biz.get("insights/ar-aging/").json()["as_of_date"]  # defaults to today


def test_invoice_and_payment_journal_entries(biz: Biz):
    c = biz.customer()
    inv = biz.invoice(c["id"], [{"unit_price": 450000, "tax_code": "VAT_20"}])  # doc example
    entries = biz.get("general-ledger/journal-entries/", params={"source_id": inv["id"]}).json()[
        "results"
    ]
    assert len(entries) == 1
    lines = {
        (ln["account_code"], ln["debit_cents"], ln["credit_cents"]) for ln in entries[0]["lines"]
    }
    assert lines == {("1200", 540000, 0), ("4000", 0, 450000), ("2200", 0, 90000)}
    pay = biz.pay(c["id"], [(inv["id"], 540000)])
    pe = biz.get("general-ledger/journal-entries/", params={"source_id": pay["id"]}).json()[
        "results"
    ][0]
    assert {(ln["account_code"], ln["debit_cents"], ln["credit_cents"]) for ln in pe["lines"]} == {
        ("1000", 540000, 0),
        ("1200", 0, 540000),
    }
    assert pe["entry_date"] == "2025-01-20"
    detail = biz.get(f"general-ledger/journal-entries/{pe['id']}/").json()
    assert detail["total_debit_cents"] == detail["total_credit_cents"] == 540000
    assert _account(biz, "1200")["current_balance"] == 0
    assert _account(biz, "1000")["current_balance"] == 540000
    assert _account(biz, "2200")["current_balance"] == 90000
    listed = biz.get("general-ledger/journal-entries/", params={"account": "2200"}).json()
    assert listed["count"] == 1


def test_reports_balance(biz: Biz):
    c = biz.customer()
    v = biz.vendor()
    inv = biz.invoice(
        c["id"], [{"unit_price": 10000, "tax_code": "VAT_20"}], additional_discount=500, tips=300
    )
    biz.pay(
        c["id"],
        [(inv["id"], 5000)],
        total=6000,
        payment_method="credit_card",
        processing_fee_cents=100,
    )
    biz.bill(v["id"], [{"unit_price": 4000, "tax_code": "VAT_20"}])
    bs = biz.get("reports/balance-sheet/").json()
    s = bs["summary"]
    assert s["total_assets_cents"] == s["total_liabilities_cents"] + s["total_equity_cents"]
    assert s["is_balanced"] is True
    pl = biz.get(
        "reports/profit-and-loss/", params={"start_date": "2025-01-01", "end_date": "2025-12-31"}
    ).json()
    summ = pl["summary"]
    assert summ["net_revenue_cents"] == 10000 - 500
    assert summ["total_operating_income_cents"] == 10000 - 500 + 300
    assert summ["total_operating_expenses_cents"] == 4000 + 100
    assert summ["net_profit_cents"] == 10000 - 500 + 300 - 4100
    # net profit flows into equity on the balance sheet
    equity = bs["equity"]["line_items"]
    assert any(
        li["account_name"] == "Current Period Profit"
        and li["value_cents"] == summ["net_profit_cents"]
        for li in equity
    )
    cf = biz.get("reports/cash-flow/").json()
    assert cf["cash_reconciliation"]["reconciles"] is True
    assert cf["summary"]["closing_cash_cents"] == 6000 - 100
    assert (
        biz.get(
            "reports/profit-and-loss/",
            params={"start_date": "2025-02-01", "end_date": "2025-01-01"},
        ).status_code
        == 400
    )
    assert biz.get("reports/profit-and-loss/", params={"detail_level": "huge"}).status_code == 400


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_chart_of_accounts(biz: Biz):
    r = biz.get("general-ledger/chart-of-accounts/", params={"page_size": 100})
    assert r.status_code == 200
    accounts = {a["code"]: a for a in r.json()["results"]}
    assert accounts["1200"]["name"] == "Accounts Receivable"
    assert accounts["2200"]["name"] == "VAT Payable" and accounts["4000"]["name"] == "Sales Revenue"
    assert accounts["2100"]["account_type"] == "liability"
    assert {"current_balance", "debit_balance", "credit_balance", "account_subtype"} <= set(
        accounts["1200"]
    )
    created = biz.post(
        "general-ledger/chart-of-accounts/",
        {"code": "4300", "name": "Consulting", "account_type": "revenue"},
    )
    assert created.status_code == 201
    assert (
        biz.post(
            "general-ledger/chart-of-accounts/",
            {"code": "4300", "name": "Dup", "account_type": "revenue"},
        ).status_code
        == 400
    )
    c = biz.customer()
    inv = biz.invoice(c["id"], [{"unit_price": 100, "account_code": "4300"}])
    assert inv["line_items"][0]["account_code"] == "4300"
    nonzero = biz.get(
        "general-ledger/chart-of-accounts/", params={"include_zero_balance": "false"}
    ).json()
    assert {a["code"] for a in nonzero["results"]} == {"1200", "4300"}


def test_aging_as_of_ledger_dates_switch(biz: Biz, monkeypatch: pytest.MonkeyPatch):
    """rules.AGING_USES_LEDGER_AS_OF=True ages balances as they stood on as_of_date."""
    monkeypatch.setattr(rules, "AGING_USES_LEDGER_AS_OF", True)  # the server runs in-process
    c = biz.customer()
    inv = biz.invoice(c["id"], [{"unit_price": 1000}], sent_at="2025-01-15", due_at="2025-01-31")
    biz.pay(c["id"], [(inv["id"], 400)], payment_date="2025-01-20")

    def total(as_of: str) -> int:
        params = {"as_of_date": as_of}
        return int(biz.get("insights/ar-aging/", params=params).json()["total_outstanding_cents"])

    assert total("2025-01-10") == 0  # not issued yet
    assert total("2025-01-17") == 1000  # issued, not yet paid
    assert total("2025-02-28") == 600
