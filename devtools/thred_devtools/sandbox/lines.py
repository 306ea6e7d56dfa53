"""Line items of invoices and bills: aliases, accounts, tax codes and amounts.

Line net = round_half_up(quantity x unit_price) - discount_amount. Tax comes from the line's
``tax_code`` and/or ``sales_taxes[].code`` ([doc] tax-vat page): unknown or inactive codes,
conflicting codes, a name without a code, or an explicit amount that disagrees with the
rounded net x rate by more than the tolerance shared with the client
(``explicit_tax_problem``) are refused; a taxable line for a tax-exempt customer is refused;
a line without a code carries no tax. Amounts are recomputed from the stored inputs by
``compute_line`` so a tampered input re-derives consistently.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from thred_devtools.sandbox import rules
from thred_devtools.sandbox.core import (
    account_ref,
    add_error,
    resolve_account,
    round_half_up,
    tax_code_map,
)
from thred_devtools.sandbox.errors import Details
from thred_devtools.sandbox.models import LineItemIn, SalesTaxIn
from thred_devtools.sandbox.state import Sandbox
from thred_devtools.sandbox.store import Obj
from thred_pipeline.core.money import TAX_TOLERANCE_CENTS, tax_cents, tax_within_tolerance

__all__ = ["build_extra_taxes", "build_lines", "compute_line", "explicit_tax_problem", "line_view"]


def explicit_tax_problem(amount: int, net: int, rate: Decimal) -> str | None:
    """Why an explicit line tax is refused, or None.

    The tolerance rule is the client's own (``thred_pipeline.core.money``): within
    ``TAX_TOLERANCE_CENTS`` of the rounded ``net x rate``, so both sides accept the same rows.
    """
    if tax_within_tolerance(amount, net, rate):
        return None
    expected = tax_cents(net, rate)
    return (
        f"Tax amount {amount} does not match {net} x {rate} = {expected} "
        f"(±{TAX_TOLERANCE_CENTS} cent)."
    )


def compute_line(line: Obj) -> None:
    gross = round_half_up(Decimal(line["quantity"]) * line["unit_price"])
    net = gross - int(line.get("discount_amount") or 0)
    explicit = line.get("_explicit_tax")
    if explicit is not None:
        tax = int(explicit)
    elif line.get("tax_rate") is not None:
        tax = round_half_up(net * Decimal(line["tax_rate"]))
    else:
        tax = 0
    line["gross_amount"] = gross
    line["subtotal"] = net
    line["sales_taxes_total"] = tax
    line["total_amount"] = net + tax


def build_lines(
    sb: Sandbox,
    business: Obj,
    items: list[LineItemIn],
    details: Details,
    *,
    account_types: tuple[str, ...],
    default_account: str,
    tax_exempt: bool = False,
) -> list[Obj]:
    scope = business["id"]
    codes = tax_code_map(business)
    out: list[Obj] = []
    for i, item in enumerate(items):
        p = f"line_items[{i}]"
        price = _line_price(sb, item, p, details)
        if item.account_code is not None and item.account_identifier is None:
            sb.note_alias("line.account_code")
        account = resolve_account(
            sb,
            scope,
            details,
            [
                (f"{p}.account_identifier", item.account_identifier),
                (f"{p}.account_code", item.account_code),
            ],
            account_types,
            default_account,
        )
        gross = round_half_up(Decimal(item.quantity) * price)
        if item.discount_amount > gross:
            add_error(details, f"{p}.discount_amount", "Discount exceeds quantity x unit_price.")
        net = gross - item.discount_amount
        tax_code, explicit, tax_name = _line_tax(item, p, details)
        rate = None
        if tax_code is not None:
            where = f"{p}.tax_code" if item.tax_code else f"{p}.sales_taxes[0].code"
            rate = _line_rate(business, codes.get(tax_code), tax_code, where, tax_exempt, details)
        if rate is not None and explicit is not None and net >= 0:
            problem = explicit_tax_problem(explicit, net, rate)
            if problem is not None:
                add_error(details, f"{p}.sales_taxes[0].amount", problem)
        line: Obj = {
            "id": sb.store.new_id(),
            "external_id": item.external_id,
            "description": item.description,
            "product": item.product,
            "quantity": item.quantity,
            "unit_price": price,
            "discount_amount": item.discount_amount,
            "account_code": account,
            "tax_code": tax_code,
            "tax_name": tax_name or (codes[tax_code].name if tax_code in codes else None),
            "tax_rate": None if rate is None else str(rate),
            "_explicit_tax": explicit,
        }
        compute_line(line)
        out.append(line)
    return out


def _line_price(sb: Sandbox, item: LineItemIn, p: str, details: Details) -> int:
    """unit_price (API reference) or unit_price_cents (guides); both given must agree."""
    price = item.unit_price if item.unit_price is not None else item.unit_price_cents
    if item.unit_price is None and item.unit_price_cents is not None:
        sb.note_alias("line.unit_price_cents")
    if (
        item.unit_price is not None
        and item.unit_price_cents is not None
        and item.unit_price != item.unit_price_cents
    ):
        add_error(details, f"{p}.unit_price_cents", "Disagrees with unit_price.")
    if price is None:
        add_error(details, f"{p}.unit_price", rules.REQUIRED_MSG)
        return 0
    return price


def _line_rate(
    business: Obj,
    spec: rules.TaxCodeSpec | None,
    tax_code: str,
    where: str,
    tax_exempt: bool,
    details: Details,
) -> Decimal | None:
    """The rate of a known, active code; a taxable code is refused for an exempt party."""
    if spec is None:
        add_error(details, where, f"Unknown tax code '{tax_code}' for {business['country']}.")
        return None
    if not spec.is_active:
        add_error(details, where, f"Tax code '{tax_code}' is inactive.")
        return None
    if tax_exempt and spec.rate > 0:
        add_error(
            details,
            where,
            f"Customer is tax exempt; taxable code '{tax_code}' is not allowed "
            "(use EXEMPT or a zero-rated code).",
        )
        add_error(details, "customer_id", "Customer is tax exempt.")
    return spec.rate


def _line_tax(
    item: LineItemIn, p: str, details: Details
) -> tuple[str | None, int | None, str | None]:
    found: set[str] = set()
    if item.tax_code:
        found.add(item.tax_code.strip().upper())
    explicit: int | None = None
    name: str | None = None
    if len(item.sales_taxes) > rules.MAX_SALES_TAXES_PER_LINE:
        add_error(details, f"{p}.sales_taxes", "Only one sales tax per line is supported.")
    for j, st in enumerate(item.sales_taxes):
        sp = f"{p}.sales_taxes[{j}]"
        if not st.code:
            if st.name:
                add_error(
                    details, f"{sp}.code", "A tax name is only accepted together with a code."
                )
            elif st.amount is not None:
                add_error(details, f"{sp}.code", rules.REQUIRED_MSG)
            continue
        found.add(st.code.strip().upper())
        if st.amount is not None:
            explicit = st.amount
        name = st.name or name
    if len(found) > 1:
        add_error(
            details,
            f"{p}.tax_code",
            f"Conflicting tax codes on one line: {', '.join(sorted(found))}.",
        )
        return None, None, None
    return (next(iter(found)) if found else None), explicit, name


def build_extra_taxes(
    business: Obj, taxes: list[SalesTaxIn], total: int | None, details: Details
) -> tuple[list[Obj], int]:
    """Invoice-level ``additional_sales_taxes`` / ``additional_sales_taxes_total``."""
    codes = tax_code_map(business)
    out: list[Obj] = []
    for j, st in enumerate(taxes):
        sp = f"additional_sales_taxes[{j}]"
        if st.amount is None:
            add_error(details, f"{sp}.amount", rules.REQUIRED_MSG)
            continue
        if st.code and (st.code.upper() not in codes or not codes[st.code.upper()].is_active):
            add_error(details, f"{sp}.code", f"Unknown or inactive tax code '{st.code}'.")
        if st.name and not st.code:
            add_error(details, f"{sp}.code", "A tax name is only accepted together with a code.")
        out.append(
            {"code": st.code.upper() if st.code else None, "name": st.name, "amount": st.amount}
        )
    listed = sum(t["amount"] for t in out)
    if total is not None and out and total != listed:
        add_error(details, "additional_sales_taxes_total", "Disagrees with additional_sales_taxes.")
    return out, (listed if out else (total or 0))


def line_view(
    sb: Sandbox, scope: str, line: Obj, parent_key: str, parent_id: str, currency: str
) -> dict[str, Any]:
    out = {k: v for k, v in line.items() if not k.startswith("_")}
    out[parent_key] = parent_id
    out["unit_price_cents"] = line["unit_price"]
    out["currency"] = currency
    out["account_identifier"] = account_ref(sb, scope, line["account_code"])
    out["sales_taxes"] = (
        [
            {
                "code": line["tax_code"],
                "name": line.get("tax_name"),
                "rate": line.get("tax_rate"),
                "amount": line["sales_taxes_total"],
            }
        ]
        if line.get("tax_code")
        else []
    )
    return out
