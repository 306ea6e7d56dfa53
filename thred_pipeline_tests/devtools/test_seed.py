"""The demo warehouse: deterministic, realistic, and valid against every Thred rule.

The rules are recomputed here from the rows alone (own rates, own rounding, own chronology), so
a generator bug cannot hide behind a helper it shares with its test.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from thred_devtools.seed import SeedConfig, generate, load, seed_warehouse

from thred_pipeline.warehouse import schema
from thred_pipeline.warehouse.db import create_warehouse_engine

Data = dict[str, list[dict[str, Any]]]

RATES = {"VAT_20": "0.2", "VAT_5": "0.05", "ZERO_RATED": "0", "EXEMPT": "0"}
GB_ENTITY_TYPES = {"limited", "sole_trader", "llp", "partnership", "plc"}
INVOICE_METHODS = {"bank_transfer", "credit_card", "debit_card", "cash", "stripe", "check"}
BILL_METHODS = {"bank_transfer", "ach", "wire", "check", "credit_card", "cash"}
REFUND_METHODS = {"BANK_TRANSFER", "CARD", "CASH"}

DEFAULT_COUNTS = {
    "businesses": 3,
    "customers": 75,
    "vendors": 36,
    "invoices": 360,
    "payments": 270,
    "refunds": 30,
    "refund_payments": 24,
    "payouts": 18,
    "bills": 120,
    "bill_payments": 90,
    "vendor_credits": 18,
}


def half_up(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in rows}


def group(rows: list[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        out[row[key]].append(row)
    return out


def digest(data: Data) -> str:
    return hashlib.sha256(repr(data).encode()).hexdigest()


def invoice_totals(data: Data) -> dict[str, int]:
    lines = group(data["invoice_line_items"], "invoice_id")
    totals = {}
    for inv in data["invoices"]:
        total = 0
        for line in lines[inv["id"]]:
            net = half_up(line["quantity"] * line["unit_price_cents"]) - line["discount_cents"]
            total += net + line["tax_amount_cents"]
        totals[inv["id"]] = total - inv["additional_discount_cents"]
    return totals


def bill_totals(data: Data) -> dict[str, int]:
    lines = group(data["bill_line_items"], "bill_id")
    return {
        bill["id"]: sum(
            half_up(line["quantity"] * line["unit_price_cents"]) + line["tax_amount_cents"]
            for line in lines[bill["id"]]
        )
        for bill in data["bills"]
    }


@pytest.fixture(scope="module")
def data(default_data: Data) -> Data:
    return default_data


# -- determinism ------------------------------------------------------------------------------


def test_same_config_gives_identical_data():
    config = SeedConfig(businesses=2, invoices=40, payments=30)
    assert digest(generate(config)) == digest(generate(config))
    assert generate(config) == generate(config)


def test_output_does_not_depend_on_hash_seed_or_process(default_config: SeedConfig, data: Data):
    code = (
        "import hashlib; from thred_devtools.seed import generate, SeedConfig; "
        "print(hashlib.sha256(repr(generate(SeedConfig())).encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == digest(data)


def test_different_seed_gives_different_data(data: Data):
    other = generate(SeedConfig(seed=8))
    assert digest(other) != digest(data)
    assert [c["company_name"] for c in other["customers"]] != [
        c["company_name"] for c in data["customers"]
    ]


def test_config_is_validated():
    with pytest.raises(ValidationError):
        SeedConfig(businesses=0)
    with pytest.raises(ValidationError):
        SeedConfig(days=3)
    with pytest.raises(ValidationError):
        SeedConfig(unknown=1)  # type: ignore[call-arg]


def test_default_volumes(data: Data):
    counts = {name: len(rows) for name, rows in data.items()}
    assert set(counts) == set(schema.metadata.tables)
    assert {name: counts[name] for name in DEFAULT_COUNTS} == DEFAULT_COUNTS
    for child in ("invoice_line_items", "payment_allocations", "payout_items", "bill_line_items"):
        assert counts[child] > 0


@pytest.mark.parametrize(
    "config",
    [
        SeedConfig(seed=1, businesses=7, days=10),
        SeedConfig(seed=2, businesses=1, days=7, invoices=5, payments=20, refunds=3),
        SeedConfig(seed=3, businesses=2, days=90, invoices=300, payments=250, bills=100),
        SeedConfig(seed=4, businesses=1, invoices=0, payments=5, bills=0, bill_payments=5),
    ],
    ids=["many-businesses", "tiny", "long", "empty-docs"],
)
def test_other_configs_stay_valid(config: SeedConfig):
    generated = generate(config)
    check_all_rules(generated, config)
    assert len(generated["businesses"]) == config.businesses
    assert len({b["legal_name"] for b in generated["businesses"]}) == config.businesses


# -- Thred rules, recomputed ------------------------------------------------------------------


def check_all_rules(data: Data, config: SeedConfig) -> None:
    check_timestamps(data, config)
    check_businesses(data)
    check_invoice_tax(data)
    check_receivables(data)
    check_payouts(data)
    check_payables(data)


def test_default_data_obeys_every_rule(data: Data, default_config: SeedConfig):
    check_all_rules(data, default_config)


def check_timestamps(data: Data, config: SeedConfig) -> None:
    start = datetime.combine(config.start, datetime.min.time(), UTC)
    end = datetime.combine(
        date.fromordinal(config.start.toordinal() + config.days), datetime.min.time(), UTC
    )
    for name, rows in data.items():
        for row in rows:
            assert row["updated_at"].tzinfo is not None, (name, row["id"])
            assert start <= row["updated_at"] < end, (name, row["id"])
            if "created_at" in row:
                assert row["created_at"] <= row["updated_at"], (name, row["id"])
    parents = {
        "invoice_line_items": ("invoices", "invoice_id"),
        "payment_allocations": ("payments", "payment_id"),
        "payout_items": ("payouts", "payout_id"),
        "bill_line_items": ("bills", "bill_id"),
        "bill_payment_allocations": ("bill_payments", "bill_payment_id"),
        "vendor_credit_lines": ("vendor_credits", "vendor_credit_id"),
        "vendor_credit_allocations": ("vendor_credits", "vendor_credit_id"),
    }
    for child, (parent, column) in parents.items():
        owners = by_id(data[parent])
        for row in data[child]:
            assert row["updated_at"] == owners[row[column]]["updated_at"], (child, row["id"])
    ids = [row["id"] for rows in data.values() for row in rows]
    assert len(ids) == len(set(ids)), "ids must be unique"


def check_businesses(data: Data) -> None:
    currencies = {b["id"]: b["base_currency"] for b in data["businesses"]}
    for b in data["businesses"]:
        assert b["country"] == "GB" and b["base_currency"] == "GBP"
        assert b["entity_type"] in GB_ENTITY_TYPES
        assert b["is_active"] is True
        assert "@" in b["email"] and len(b["vat_number"]) <= 20
    for table in ("invoices", "payments", "payouts", "bills", "bill_payments", "vendor_credits"):
        for row in data[table]:
            assert row["currency"] == currencies[row["business_id"]], (table, row["id"])
    for table in ("customers", "vendors"):
        for row in data[table]:
            assert row["individual_name"] or row["company_name"], (table, row["id"])


def check_invoice_tax(data: Data) -> None:
    customers = by_id(data["customers"])
    invoices = by_id(data["invoices"])
    for table in ("invoice_line_items", "bill_line_items"):
        for line in data[table]:
            assert line["tax_code"] in RATES
            net = half_up(line["quantity"] * line["unit_price_cents"]) - line.get(
                "discount_cents", 0
            )
            assert net >= 0
            assert line["tax_amount_cents"] == half_up(net * Decimal(RATES[line["tax_code"]]))
    for line in data["invoice_line_items"]:
        customer = customers[invoices[line["invoice_id"]]["customer_id"]]
        if customer["tax_exempt"]:
            assert line["tax_code"] in {"ZERO_RATED", "EXEMPT"}, line["id"]
        assert line["revenue_account_code"] == "4000"
    for line in data["bill_line_items"]:
        assert line["expense_account_code"] == "5000"
    totals = invoice_totals(data)
    assert all(total > 0 for total in totals.values())
    for lines in group(data["invoice_line_items"], "invoice_id").values():
        assert [line["position"] for line in lines] == list(range(1, len(lines) + 1))


def check_receivables(data: Data) -> None:
    invoices = by_id(data["invoices"])
    customers = by_id(data["customers"])
    totals = invoice_totals(data)
    payments = by_id(data["payments"])
    allocations = group(data["payment_allocations"], "payment_id")
    outstanding = dict(totals)
    paid: Counter[str] = Counter()
    last_paid: dict[str, datetime] = {}
    events: list[tuple[datetime, int, str, dict[str, Any]]] = [
        (p["updated_at"], 0, "payment", p) for p in data["payments"]
    ] + [(r["updated_at"], 1, "refund", r) for r in data["refunds"]]
    refunded: Counter[str] = Counter()
    for ts, _, kind, row in sorted(events, key=lambda e: (e[0], e[1])):
        if kind == "payment":
            allocs = allocations[row["id"]]
            assert allocs, row["id"]
            assert sum(a["amount_cents"] for a in allocs) == row["amount_cents"]
            assert row["amount_cents"] >= 1
            assert row["payment_method"] in INVOICE_METHODS
            assert row["payment_date"] == ts.date()
            is_card = row["processor"] == "stripe"
            assert is_card == (row["payment_method"] in {"credit_card", "debit_card", "stripe"})
            expected_fee = half_up(row["amount_cents"] * Decimal("0.015")) + 20 if is_card else 0
            assert row["processing_fee_cents"] == expected_fee
            assert len({a["invoice_id"] for a in allocs}) == len(allocs)
            for a in allocs:
                inv = invoices[a["invoice_id"]]
                assert inv["voided_at"] is None, "voided invoices are never paid"
                assert inv["customer_id"] == row["customer_id"]
                assert inv["sent_at"].date() <= row["payment_date"]
                assert 1 <= a["amount_cents"] <= outstanding[inv["id"]], a["id"]
                outstanding[inv["id"]] -= a["amount_cents"]
                paid[inv["id"]] += a["amount_cents"]
                last_paid[inv["id"]] = ts
        else:
            inv_id = row["invoice_id"]
            assert invoices[inv_id]["voided_at"] is None, "voided invoices are never refunded"
            assert row["method"] in REFUND_METHODS
            assert 1 <= row["amount_cents"] <= paid[inv_id] - refunded[inv_id], row["id"]
            refunded[inv_id] += row["amount_cents"]
    assert all(value >= 0 for value in outstanding.values())
    for inv in data["invoices"]:
        assert inv["due_at"] is not None and inv["due_at"] >= inv["sent_at"]
        customer = customers[inv["customer_id"]]
        assert customer["archived_at"] is None, "archived customers have no invoices"

    refunds = by_id(data["refunds"])
    remaining = {r["id"]: r["amount_cents"] for r in data["refunds"]}
    for rp in sorted(data["refund_payments"], key=lambda r: r["updated_at"]):
        refund = refunds[rp["refund_id"]]
        assert rp["updated_at"] > refund["updated_at"]
        assert rp["method"] == refund["method"]
        assert 1 <= rp["amount_cents"] <= remaining[refund["id"]], rp["id"]
        remaining[refund["id"]] -= rp["amount_cents"]
    _ = payments


def check_payouts(data: Data) -> None:
    payments = by_id(data["payments"])
    refund_payments = by_id(data["refund_payments"])
    items = group(data["payout_items"], "payout_id")
    seen: set[str] = set()
    for payout in data["payouts"]:
        assert payout["processor"] == "stripe" and payout["status"] == "paid"
        assert payout["completed_at"] is not None
        gross = fees = refunds = 0
        assert items[payout["id"]], payout["id"]
        for item in items[payout["id"]]:
            assert (item["payment_id"] is None) != (item["refund_payment_id"] is None)
            source = item["payment_id"] or item["refund_payment_id"]
            assert source not in seen, "an item is paid out once"
            seen.add(source)
            if item["payment_id"]:
                payment = payments[item["payment_id"]]
                assert payment["processor"] == "stripe"
                assert payment["updated_at"] < payout["updated_at"]
                gross += payment["amount_cents"]
                fees += payment["processing_fee_cents"]
            else:
                rp = refund_payments[item["refund_payment_id"]]
                assert rp["processor"] == "stripe"
                assert rp["updated_at"] < payout["updated_at"]
                refunds += rp["amount_cents"]
        assert payout["fee_cents"] == fees
        assert payout["paid_out_amount_cents"] == gross - refunds - fees > 0


def check_payables(data: Data) -> None:
    bills = by_id(data["bills"])
    totals = bill_totals(data)
    outstanding = dict(totals)
    bp_allocs = group(data["bill_payment_allocations"], "bill_payment_id")
    vc_allocs = group(data["vendor_credit_allocations"], "vendor_credit_id")
    vc_lines = group(data["vendor_credit_lines"], "vendor_credit_id")
    events = [(p["updated_at"], "payment", p) for p in data["bill_payments"]] + [
        (c["updated_at"], "credit", c) for c in data["vendor_credits"]
    ]
    for ts, kind, row in sorted(events, key=lambda e: e[0]):
        if kind == "payment":
            assert row["payment_method"] in BILL_METHODS
            assert (row["check_number"] is not None) == (row["payment_method"] == "check")
            allocs = bp_allocs[row["id"]]
            assert allocs and sum(a["amount_cents"] for a in allocs) == row["amount_cents"]
        else:
            lines = vc_lines[row["id"]]
            assert lines and all(line["amount_cents"] >= 1 for line in lines)
            assert all(line["expense_account_code"] == "5000" for line in lines)
            allocs = vc_allocs[row["id"]]
            assert sum(a["amount_cents"] for a in allocs) <= sum(x["amount_cents"] for x in lines)
        for a in allocs:
            bill = bills[a["bill_id"]]
            assert bill["vendor_id"] == row["vendor_id"]
            assert bill["updated_at"] < ts
            assert 1 <= a["amount_cents"] <= outstanding[bill["id"]], a["id"]
            outstanding[bill["id"]] -= a["amount_cents"]
    for bill in data["bills"]:
        assert bill["bill_date"] <= bill["created_at"].date()
        assert bill["due_at"].date() >= bill["bill_date"]


# -- realism ----------------------------------------------------------------------------------


def test_variety(data: Data):
    customers = data["customers"]
    exempt = [c for c in customers if c["tax_exempt"]]
    assert 0.08 <= len(exempt) / len(customers) <= 0.25
    assert sum(1 for c in customers if c["archived_at"] is not None) >= 3
    assert sum(1 for v in data["vendors"] if v["archived_at"] is not None) >= 3
    assert any(c["company_name"] is None for c in customers)
    assert any(c["individual_name"] is None for c in customers)
    assert {b["entity_type"] for b in data["businesses"]} == {"limited", "sole_trader", "llp"}

    lines = data["invoice_line_items"]
    quantities = [line["quantity"] for line in lines]
    fractional = [q for q in quantities if q != q.to_integral_value()]
    assert 0.03 < len(fractional) / len(quantities) < 0.4, "mostly whole, some fractional"
    half_cents = [
        line
        for line in lines
        if (line["quantity"] * line["unit_price_cents"]) % 1 == Decimal("0.5")
    ]
    assert half_cents, "some lines need ROUND_HALF_UP on quantity * unit price"
    assert {line["tax_code"] for line in lines} == set(RATES)
    assert any(line["discount_cents"] > 0 for line in lines)
    assert any(inv["additional_discount_cents"] > 0 for inv in data["invoices"])
    assert len(Counter(a["payment_id"] for a in data["payment_allocations"])) < len(
        data["payment_allocations"]
    ), "some payments settle several invoices"

    methods = Counter(p["payment_method"] for p in data["payments"])
    assert {"bank_transfer", "credit_card", "debit_card", "cash"} <= set(methods)
    assert Counter(p["payment_method"] for p in data["bill_payments"]).keys() >= {
        "bank_transfer",
        "check",
    }
    assert any(rp["processor"] == "stripe" for rp in data["refund_payments"])
    assert any(i["refund_payment_id"] for i in data["payout_items"]), "payouts net refunds"
    assert data["vendor_credit_allocations"], "some vendor credits are applied to bills"


def test_invoice_lifecycle_cases(data: Data):
    edited = [
        inv
        for inv in data["invoices"]
        if inv["updated_at"] > inv["created_at"] and not inv["voided_at"]
    ]
    voided = [inv for inv in data["invoices"] if inv["voided_at"] is not None]
    assert len(edited) >= 6 and len(voided) >= 3
    for inv in voided:
        assert inv["updated_at"] == inv["voided_at"] > inv["sent_at"]
    totals = invoice_totals(data)
    paid: Counter[str] = Counter()
    for a in data["payment_allocations"]:
        paid[a["invoice_id"]] += a["amount_cents"]
    status = Counter(
        "unpaid" if not paid[i] else "paid" if paid[i] == totals[i] else "partial" for i in totals
    )
    assert status["unpaid"] and status["paid"] and status["partial"]

    refunds = data["refunds"]
    rp_total: Counter[str] = Counter()
    for rp in data["refund_payments"]:
        rp_total[rp["refund_id"]] += rp["amount_cents"]
    states = Counter(
        "unpaid"
        if not rp_total[r["id"]]
        else "paid"
        if rp_total[r["id"]] == r["amount_cents"]
        else "partial"
        for r in refunds
    )
    assert states["unpaid"] and states["paid"] and states["partial"]


def late_parents(data: Data) -> dict[str, set[tuple[str, str]]]:
    """Per business, the (table, id) of parents whose updated_at is after a referencing row's."""
    relations = [
        ("invoices", "customer_id", "customers"),
        ("payments", "customer_id", "customers"),
        ("refunds", "invoice_id", "invoices"),
        ("bills", "vendor_id", "vendors"),
        ("bill_payments", "vendor_id", "vendors"),
        ("vendor_credits", "vendor_id", "vendors"),
        ("refund_payments", "refund_id", "refunds"),
    ]
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for child, column, parent in relations:
        parents = by_id(data[parent])
        for row in data[child]:
            owner = parents[row[column]]
            if owner["updated_at"] > row["updated_at"]:
                found[row["business_id"]].add((parent, owner["id"]))
    payments = by_id(data["payments"])
    invoices = by_id(data["invoices"])
    for a in data["payment_allocations"]:
        payment = payments[a["payment_id"]]
        if invoices[a["invoice_id"]]["updated_at"] > payment["updated_at"]:
            found[payment["business_id"]].add(("invoices", a["invoice_id"]))
    return found


def test_late_parents_exist_in_every_business(data: Data):
    found = late_parents(data)
    for business in data["businesses"]:
        cases = found[business["id"]]
        assert 2 <= len(cases) <= 4, (business["id"], cases)
        assert {table for table, _ in cases} >= {"customers", "vendors"}
    assert any(table == "invoices" for cases in found.values() for table, _ in cases)


# -- loading ----------------------------------------------------------------------------------


def test_generate_and_load_is_fast_and_replaceable(tmp_path):
    url = f"sqlite:///{tmp_path / 'deep' / 'demo' / 'warehouse.db'}"
    started = time.perf_counter()
    counts = seed_warehouse(url, SeedConfig())
    elapsed = time.perf_counter() - started
    assert elapsed < 5, f"default seed took {elapsed:.2f}s (budget ~3s)"
    assert counts["invoices"] == DEFAULT_COUNTS["invoices"]
    # Reseeding replaces, it does not duplicate.
    counts_again = seed_warehouse(url, SeedConfig())
    assert counts_again == counts
    engine = create_warehouse_engine(url)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(schema.invoices)).scalar_one()
    engine.dispose()
    assert stored == counts["invoices"]


def test_load_without_replace_keeps_existing_rows(tmp_path):
    engine = create_warehouse_engine(f"sqlite:///{tmp_path / 'w.db'}")
    one = generate(SeedConfig(businesses=1, invoices=10))
    load(engine, {"businesses": one["businesses"]})
    load(engine, {"customers": one["customers"]}, replace=False)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.businesses)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(schema.customers)).scalar_one() == 25
    with pytest.raises(ValueError, match="not contract tables"):
        load(engine, {"nope": []}, replace=False)
    engine.dispose()
