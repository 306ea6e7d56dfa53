"""The expected side of reconciliation, computed from raw warehouse rows alone.

Never from the ledger or from the payloads we sent: a mapper bug, a lost write or a record
refused for bad data must all show as a difference. Scope (documented in docs/reliability.md):
every row of every entity that belongs to an *active* business; inactive businesses are
reported once, at the business level. Values are read defensively — one unreadable row makes
that record's money unknown (``pd.NA``), it never stops the comparison.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd
from sqlalchemy import Engine, String, Table, cast, select

from thred_pipeline.core.money import line_net_cents
from thred_pipeline.entities import EntitySpec
from thred_pipeline.warehouse import schema as wh
from thred_pipeline.warehouse.source import ChildTable

TRUE_TEXT = frozenset({"1", "true", "t", "yes", "y"})


def _is_true(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in TRUE_TEXT
    return bool(value) if value is not None else False


def _timestamps(values: pd.Series) -> pd.Series:
    """Text timestamps (read as text so a pre-year-1 or infinite value cannot crash) as UTC."""
    return pd.to_datetime(values, utc=True, errors="coerce", format="mixed")


def _lookup(ids: pd.Series, per_record: pd.Series) -> pd.Series:
    """Each id's value; 0 where the id has no rows at all, ``pd.NA`` where they are unreadable."""
    values = ids.map(per_record)
    return _cents(values.where(ids.isin(per_record.index), 0))


def _cents(values: pd.Series) -> pd.Series:
    """Whole numbers as nullable integers; text, fractions and blanks become ``pd.NA``."""
    numbers = pd.to_numeric(values, errors="coerce")
    whole = numbers.where(numbers.notna() & (numbers == numbers.round()))
    return whole.astype("Int64")


class WarehouseBooks:
    """Reads the warehouse once per reconciliation and hands out one frame per entity."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._raw: dict[str, pd.DataFrame] = {}
        self._frames: dict[str, pd.DataFrame] = {}

    # --- raw reads ---------------------------------------------------------------------------

    def _read(self, table: Table, columns: Iterable[str]) -> pd.DataFrame:
        """Columns of a table, every value as text (or NULL), so no driver can refuse a row."""
        key = f"{table.name}:{','.join(columns)}"
        if key not in self._raw:
            query = select(*(cast(table.c[c], String).label(c) for c in columns))
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            self._raw[key] = pd.DataFrame(rows, columns=list(columns), dtype=object)
        return self._raw[key]

    def _versions(self, children: Iterable[ChildTable], base: pd.DataFrame) -> pd.Series:
        """A record's version: its own updated_at or a child row's, whichever is later."""
        version = _timestamps(base["updated_at"])
        version.index = base["source_id"]
        for child in children:
            rows = self._read(child.table, (child.parent_column, "updated_at"))
            if rows.empty:
                continue
            latest = _timestamps(rows["updated_at"]).groupby(rows[child.parent_column]).max()
            version = pd.concat([version, latest.reindex(version.index)], axis=1).max(axis=1)
        return version.reset_index(drop=True)

    # --- businesses --------------------------------------------------------------------------

    def businesses(self) -> pd.DataFrame:
        """Every business row: source_id, active, base_currency, version."""
        if "businesses" not in self._frames:
            raw = self._read(wh.businesses, ("id", "is_active", "base_currency", "updated_at"))
            frame = pd.DataFrame(
                {
                    "business_id": raw["id"].astype(str),
                    "source_id": raw["id"].astype(str),
                    "active": raw["is_active"].map(_is_true).astype(bool),
                    "base_currency": raw["base_currency"],
                    "updated_at": raw["updated_at"],
                }
            )
            frame["version"] = self._versions((), frame)
            self._frames["businesses"] = frame.drop(columns=["updated_at"])
        return self._frames["businesses"]

    def active_businesses(self) -> set[str]:
        frame = self.businesses()
        return set(frame.loc[frame["active"], "source_id"])

    # --- entity frames -----------------------------------------------------------------------

    def frame(self, spec: EntitySpec) -> pd.DataFrame:
        """Expected values of every record of the entity that belongs to an active business."""
        if spec.is_business_root:  # the records are the businesses themselves
            frame = self.businesses()
            return frame[frame["active"]].reset_index(drop=True)
        if spec.name not in self._frames:
            build = getattr(self, f"_expect_{spec.name}")
            frame = build(spec.table)
            frame["version"] = self._versions(spec.children, frame)
            frame = frame.drop(columns=["updated_at"])
            self._frames[spec.name] = frame
        frame = self._frames[spec.name]
        return frame[frame["business_id"].isin(self.active_businesses())].reset_index(drop=True)

    def _base(self, table: Table, *columns: str) -> pd.DataFrame:
        raw = self._read(table, ("id", "business_id", "updated_at", *columns))
        frame = raw.rename(columns={"id": "source_id"}).copy()
        frame["source_id"] = frame["source_id"].astype(str)
        frame["business_id"] = frame["business_id"].astype(str)
        return frame

    def _sum_by(self, table: Table, parent: str, amount: str = "amount_cents") -> pd.Series:
        rows = self._read(table, (parent, amount))
        amounts = _cents(rows[amount])
        # any unreadable amount makes the whole sum unknown
        return (
            amounts.groupby(rows[parent].astype(str))
            .sum(min_count=1)
            .where(amounts.notna().groupby(rows[parent].astype(str)).all())
        )

    def _expect_customers(self, table: Table) -> pd.DataFrame:
        frame = self._base(table, "archived_at")
        frame["archived"] = frame.pop("archived_at").notna()
        return frame

    def _expect_vendors(self, table: Table) -> pd.DataFrame:
        frame = self._base(table, "archived_at")
        frame["archived"] = frame.pop("archived_at").notna()
        return frame

    def _document_totals(
        self, lines: Table, parent: str, discount: str | None
    ) -> dict[str, int | None]:
        """Each document's total from its lines: rounded net plus stated tax, per line."""
        columns = [parent, "quantity", "unit_price_cents", "tax_amount_cents"]
        if discount:
            columns.append(discount)
        totals: dict[str, int | None] = {}
        for row in self._read(lines, columns).itertuples(index=False):
            values = row._asdict()
            doc = str(values[parent])
            try:
                net = line_net_cents(
                    Decimal(str(values["quantity"])),
                    int(str(values["unit_price_cents"])),
                    int(str(values.get(discount) or 0)) if discount else 0,
                )
                line = net + int(str(values["tax_amount_cents"] or 0))
            except (ArithmeticError, InvalidOperation, TypeError, ValueError):
                totals[doc] = None
                continue
            if doc not in totals:
                totals[doc] = 0
            current = totals[doc]
            totals[doc] = None if current is None else current + line
        return totals

    def _expect_invoices(self, table: Table) -> pd.DataFrame:
        frame = self._base(table, "customer_id", "voided_at", "additional_discount_cents")
        totals = self._document_totals(wh.invoice_line_items, "invoice_id", "discount_cents")
        discount = _cents(frame.pop("additional_discount_cents").fillna("0"))
        lines = pd.array([totals.get(i, 0) for i in frame["source_id"]], dtype="Int64")
        frame["total_cents"] = pd.Series(lines, index=frame.index) - discount
        frame["voided"] = frame.pop("voided_at").notna()
        frame["customer_id"] = frame["customer_id"].astype(str)
        return frame

    def _expect_invoice_payments(self, table: Table) -> pd.DataFrame:
        frame = self._base(table, "customer_id", "amount_cents", "processing_fee_cents")
        frame["customer_id"] = frame["customer_id"].astype(str)
        frame["total_cents"] = _cents(frame.pop("amount_cents"))
        allocated = self._sum_by(wh.payment_allocations, "payment_id")
        frame["allocated_cents"] = _lookup(frame["source_id"], allocated)
        frame["unallocated_cents"] = frame["total_cents"] - frame["allocated_cents"]
        frame["fee_cents"] = _cents(frame.pop("processing_fee_cents").fillna("0"))
        return frame

    def _expect_refunds(self, table: Table) -> pd.DataFrame:
        frame = self._base(table, "invoice_id", "amount_cents")
        frame["invoice_id"] = frame["invoice_id"].astype(str)
        frame["amount_cents"] = _cents(frame["amount_cents"])
        return frame

    def _expect_refund_payments(self, table: Table) -> pd.DataFrame:
        frame = self._base(table, "refund_id", "amount_cents")
        frame["refund_id"] = frame["refund_id"].astype(str)
        frame["amount_cents"] = _cents(frame["amount_cents"])
        return frame

    def _expect_payouts(self, table: Table) -> pd.DataFrame:
        frame = self._base(table, "paid_out_amount_cents", "fee_cents")
        frame["paid_out_amount_cents"] = _cents(frame["paid_out_amount_cents"])
        frame["fee_cents"] = _cents(frame["fee_cents"].fillna("0"))
        items = self._read(wh.payout_items, ("payout_id", "payment_id", "refund_payment_id"))
        payments = self._read(wh.payments, ("id", "amount_cents"))
        refund_payments = self._read(wh.refund_payments, ("id", "amount_cents"))
        pay_amount = _cents(payments["amount_cents"]).set_axis(payments["id"].astype(str))
        rp_amount = _cents(refund_payments["amount_cents"]).set_axis(
            refund_payments["id"].astype(str)
        )
        payout = items["payout_id"].astype(str)
        paid = items["payment_id"].dropna().astype(str)
        refunded = items["refund_payment_id"].dropna().astype(str)
        gross = paid.map(pay_amount).groupby(payout[paid.index]).sum(min_count=1)
        refunds = refunded.map(rp_amount).groupby(payout[refunded.index]).sum(min_count=1)
        ids = frame["source_id"]
        frame["gross_payments_amount_cents"] = _lookup(ids, gross)
        frame["total_refunds_amount_cents"] = _lookup(ids, refunds)
        frame["payment_count"] = _cents(ids.map(paid.groupby(payout[paid.index]).size()).fillna(0))
        frame["refund_payment_count"] = _cents(
            ids.map(refunded.groupby(payout[refunded.index]).size()).fillna(0)
        )
        frame["expected_net_amount_cents"] = (
            frame["gross_payments_amount_cents"]
            - frame["total_refunds_amount_cents"]
            - frame["fee_cents"]
        )
        frame["amount_variance_cents"] = (
            frame["paid_out_amount_cents"] - frame["expected_net_amount_cents"]
        )
        return frame

    def _expect_bills(self, table: Table) -> pd.DataFrame:
        frame = self._base(table, "vendor_id")
        frame["vendor_id"] = frame["vendor_id"].astype(str)
        totals = self._document_totals(wh.bill_line_items, "bill_id", None)
        frame["total_cents"] = pd.array([totals.get(i, 0) for i in frame["source_id"]], "Int64")
        return frame

    def _expect_bill_payments(self, table: Table) -> pd.DataFrame:
        frame = self._base(table, "vendor_id", "amount_cents")
        frame["vendor_id"] = frame["vendor_id"].astype(str)
        frame["amount_cents"] = _cents(frame["amount_cents"])
        allocated = self._sum_by(wh.bill_payment_allocations, "bill_payment_id")
        frame["allocated_cents"] = _lookup(frame["source_id"], allocated)
        frame["unallocated_cents"] = frame["amount_cents"] - frame["allocated_cents"]
        return frame

    def _expect_vendor_credits(self, table: Table) -> pd.DataFrame:
        frame = self._base(table, "vendor_id")
        frame["vendor_id"] = frame["vendor_id"].astype(str)
        totals = self._sum_by(wh.vendor_credit_lines, "vendor_credit_id")
        applied = self._sum_by(wh.vendor_credit_allocations, "vendor_credit_id")
        frame["total_cents"] = _lookup(frame["source_id"], totals)
        frame["applied_cents"] = _lookup(frame["source_id"], applied)
        return frame

    # --- allocations, for party balances -----------------------------------------------------

    def allocations(self, table: Table, parent: str, document: str) -> pd.DataFrame:
        """Settlement allocations: settlement source id, document source id, amount."""
        rows = self._read(table, (parent, document, "amount_cents"))
        return pd.DataFrame(
            {
                "settlement_id": rows[parent].astype(str),
                "document_id": rows[document].astype(str),
                "amount_cents": _cents(rows["amount_cents"]),
            }
        )
