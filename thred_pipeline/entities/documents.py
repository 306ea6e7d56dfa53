"""Document lines and allocations: what invoices, bills, payments and credits share.

A line's money is validated against Thred's rounding and tax rules (``core/money.py``); an
allocation's parent is checked first and resolved last, through its entity's declared ``Ref``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from thred_pipeline.core.external_ids import check_external_id
from thred_pipeline.core.money import (
    TAX_TOLERANCE_CENTS,
    line_gross_cents,
    tax_cents,
    to_cents,
    to_quantity,
)
from thred_pipeline.core.records import MapContext, RecordInvalid, SourceRecord
from thred_pipeline.entities.mapping import (
    blank,
    cents_or_zero,
    child_rows,
    put,
    required_text,
    source_ref,
    text_field,
)
from thred_pipeline.entities.spec import Parents, Ref


def line_external_id(line: Mapping[str, Any], path: str) -> str:
    source_id = text_field(line.get("id"), f"{path}.external_id", required=True)
    assert source_id is not None
    return check_external_id(f"line-{source_id}", f"{path}.external_id", source_id=source_id)


def account_ref(code: Any, ctx: MapContext, path: str) -> dict[str, str]:
    if blank(code):
        raise RecordInvalid(path, "account code is required")
    return {"type": "AccountId", "id": ctx.account_id(code, path)}


def quantity_text(quantity: Decimal) -> str:
    """Normalised decimal string: Decimal("1.5000") → "1.5", Decimal("10") → "10"."""
    return format(quantity.normalize(), "f")


# --- Shared line and allocation handling ------------------------------------------------------


def document_lines(
    record: SourceRecord,
    ctx: MapContext,
    account_column: str,
    *,
    noun: str,
    sales: bool = False,
    exempt_customer: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """An invoice's or a bill's line items as Thred takes them, and their total with tax.

    ``sales`` lines (invoices) also carry a product and a discount; ``noun`` names the document
    in the message when it has no line ("an invoice").
    """
    lines = child_rows(record, "line_items")
    if not lines:
        raise RecordInvalid("line_items", f"{noun} needs at least one line item; none found")
    items: list[dict[str, Any]] = []
    total = 0
    for index, line in enumerate(lines):
        path = f"line_items[{index}]"
        item: dict[str, Any] = {"external_id": line_external_id(line, path)}
        description = text_field(line.get("description"), f"{path}.description", multiline=True)
        put(item, "description", description)
        if sales:
            put(item, "product", text_field(line.get("product"), f"{path}.product"))
        quantity, unit_price, gross = priced_line(line, path)
        discount = _line_discount(line, path, quantity, unit_price, gross) if sales else None
        item["quantity"] = quantity_text(quantity)
        item["unit_price"] = unit_price
        if discount is not None:
            item["discount_amount"] = discount
        net = gross - (discount or 0)
        item["account_identifier"] = account_ref(
            line.get(account_column), ctx, f"{path}.account_identifier"
        )
        tax_fields, tax = line_taxes(line, path, net, ctx, exempt_customer=exempt_customer)
        item.update(tax_fields)
        items.append(item)
        total += net + tax
    return items, total


def _line_discount(
    line: Mapping[str, Any], path: str, quantity: Decimal, unit_price: int, gross: int
) -> int:
    discount = cents_or_zero(line.get("discount_cents"), f"{path}.discount_amount")
    if discount > gross:
        raise RecordInvalid(
            f"{path}.discount_amount",
            f"discount {discount} is more than the line amount {gross} "
            f"(quantity {quantity_text(quantity)} x unit price {unit_price})",
        )
    return discount


def line_taxes(
    line: Mapping[str, Any],
    path: str,
    net: int,
    ctx: MapContext,
    *,
    exempt_customer: str | None = None,
) -> tuple[dict[str, Any], int]:
    """A line's ``tax_code``/``sales_taxes`` fields and its tax in cents (contract 4.3)."""
    raw_amount = line.get("tax_amount_cents")
    amount_path = f"{path}.sales_taxes[0].amount"
    amount = None if raw_amount is None else to_cents(raw_amount, amount_path)
    if blank(line.get("tax_code")):
        if amount:
            raise RecordInvalid(
                f"{path}.tax_code",
                f"the line has tax_amount_cents {amount} but no tax_code; "
                "Thred needs a tax code to accept a tax amount",
            )
        return {}, 0
    code = required_text(line.get("tax_code"), f"{path}.tax_code")
    tax_code = ctx.tax_code(code, f"{path}.tax_code")
    if exempt_customer is not None and tax_code.rate > 0:
        raise RecordInvalid(
            f"{path}.tax_code",
            f"customer {exempt_customer!r} is tax-exempt but this line uses {code} "
            f"({tax_code.rate:%}); use EXEMPT or a zero-rated code",
        )
    expected = tax_cents(net, tax_code.rate)
    if amount is None:
        amount = expected
    elif abs(amount - expected) > TAX_TOLERANCE_CENTS:
        raise RecordInvalid(
            amount_path,
            f"tax_amount_cents {amount} disagrees with {code} at rate {tax_code.rate} of net "
            f"{net}: expected {expected} (±{TAX_TOLERANCE_CENTS} cent)",
        )
    return {"tax_code": code, "sales_taxes": [{"code": code, "amount": amount}]}, amount


def priced_line(line: Mapping[str, Any], path: str) -> tuple[Decimal, int, int]:
    """Quantity, unit price and gross cents of an invoice or bill line."""
    quantity = to_quantity(line.get("quantity"), f"{path}.quantity")
    unit_price = to_cents(line.get("unit_price_cents"), f"{path}.unit_price")
    return quantity, unit_price, line_gross_cents(quantity, unit_price)


def checked_allocations(
    rows: Sequence[Mapping[str, Any]], ref_column: str, total: int, total_label: str
) -> list[tuple[str, int, str]]:
    """Validated (parent source id, amount, path) triples; Σ may not exceed ``total``."""
    checked: list[tuple[str, int, str]] = []
    for index, row in enumerate(rows):
        path = f"allocations[{index}]"
        amount = to_cents(row.get("amount_cents"), f"{path}.amount_cents", minimum=1)
        checked.append((source_ref(row.get(ref_column), f"{path}.{ref_column}"), amount, path))
    allocated = sum(amount for _, amount, _ in checked)
    if allocated > total:
        raise RecordInvalid(
            "allocations",
            f"allocations add up to {allocated} cents, more than the {total_label} of {total}",
        )
    return checked


def resolve_allocations(
    checked: Sequence[tuple[str, int, str]], ref: Ref, parents: Parents
) -> list[dict[str, Any]]:
    """Allocations as Thred takes them: the parent's Thred id under the binding's column."""
    key = ref.column
    return [
        {key: parents.thred_id(ref, source, f"{path}.{key}"), "amount_cents": amount}
        for source, amount, path in checked
    ]
