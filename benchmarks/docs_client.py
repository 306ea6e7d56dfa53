"""The anchors of B1 and B2: the client a developer writes from Thred's docs, in two speeds.

Both read the same warehouse rows with plain SQL (nothing of thred_pipeline is imported) and
build the payloads once, the way Thred's guides show them (businesses, customers, invoices,
invoice payments; then voids and archives). They differ only in how the requests go out:

- ``naive``: one request at a time with a blocking ``httpx.Client``, as in Thred's examples
  (B1's anchor);
- ``raw``: ``httpx.AsyncClient`` with ``concurrency`` requests in flight per business, entity
  after entity, with no ledger, no retries and no checks (B2's anchor: the fastest a Python
  client can post these payloads).

Ids Thred assigns (businesses, customers, invoices) are read from the responses, as any client
must, so a payment names its customer's and invoices' Thred ids.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import create_engine, text

PREFIX = "/v1/platform"


@dataclass
class Book:
    """One business's payloads in Thred's order, keyed by warehouse id."""

    business: dict[str, Any]
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    archived_customers: list[str] = field(default_factory=list)
    voided_invoices: list[str] = field(default_factory=list)

    def records(self) -> int:
        return 1 + len(self.customers) + len(self.invoices) + len(self.payments)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _clean(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None and v != ""}


def read_books(warehouse_url: str) -> list[Book]:
    """Every active business's payloads, read once before any request is timed."""
    engine = create_engine(warehouse_url)
    books: dict[str, Book] = {}
    with engine.connect() as conn:

        def rows(sql: str) -> Iterator[dict[str, Any]]:
            for row in conn.execute(text(sql)).mappings():
                yield dict(row)

        for r in rows("SELECT * FROM businesses WHERE is_active ORDER BY id"):
            books[r["id"]] = Book(
                _clean(
                    {
                        "external_id": f"business-{r['id']}",
                        "legal_name": r["legal_name"],
                        "entity_type": r["entity_type"],
                        "email": r["email"],
                        "phone_number": r["phone_number"],
                        "country": r["country"],
                        "base_currency": r["base_currency"],
                        "vat_number": r["vat_number"],
                        "company_number": r["company_number"],
                        "accounting_method": r["accounting_method"],
                    }
                )
            )
        for r in rows("SELECT * FROM customers ORDER BY business_id, id"):
            book = books.get(r["business_id"])
            if book is None:
                continue
            book.customers[r["id"]] = _clean(
                {
                    "external_id": f"customer-{r['id']}",
                    "individual_name": r["individual_name"],
                    "company_name": r["company_name"],
                    "email": r["email"],
                    "mobile_phone": r["phone"],
                    "address_line1": r["address_line1"],
                    "city": r["city"],
                    "postal_code": r["postal_code"],
                    "country": r["country"],
                    "vat_number": r["vat_number"],
                    "tax_exempt": bool(r["tax_exempt"]),
                    "payment_terms_days": r["payment_terms_days"],
                }
            )
            if r["archived_at"] is not None:
                book.archived_customers.append(r["id"])
        lines: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows("SELECT * FROM invoice_line_items ORDER BY invoice_id, position"):
            item: dict[str, Any] = {
                "external_id": f"line-{r['id']}",
                "description": r["description"],
                "product": r["product"],
                "quantity": format(Decimal(str(r["quantity"])).normalize(), "f"),
                "unit_price": int(r["unit_price_cents"]),
                "discount_amount": int(r["discount_cents"]),
                "account_code": r["revenue_account_code"],
            }
            if r["tax_code"]:
                item["tax_code"] = r["tax_code"]
                item["sales_taxes"] = [{"code": r["tax_code"], "amount": r["tax_amount_cents"]}]
            lines[r["invoice_id"]].append(_clean(item))
        for r in rows("SELECT * FROM invoices ORDER BY business_id, id"):
            book = books.get(r["business_id"])
            if book is None:
                continue
            book.invoices[r["id"]] = _clean(
                {
                    "external_id": f"invoice-{r['id']}",
                    "customer": r["customer_id"],
                    "invoice_number": r["invoice_number"],
                    "sent_at": _iso(r["sent_at"]),
                    "due_at": _iso(r["due_at"]),
                    "memo": r["memo"],
                    "additional_discount": int(r["additional_discount_cents"]),
                    "line_items": lines.get(r["id"], []),
                }
            )
            if r["voided_at"] is not None:
                book.voided_invoices.append(r["id"])
        allocations: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for r in rows("SELECT * FROM payment_allocations ORDER BY payment_id, id"):
            allocations[r["payment_id"]].append((r["invoice_id"], int(r["amount_cents"])))
        for r in rows("SELECT * FROM payments ORDER BY business_id, id"):
            book = books.get(r["business_id"])
            if book is None:
                continue
            book.payments[r["id"]] = _clean(
                {
                    "external_id": f"payment-{r['id']}",
                    "customer": r["customer_id"],
                    "total_amount_cents": int(r["amount_cents"]),
                    "payment_date": str(r["payment_date"])[:10],
                    "currency": r["currency"],
                    "payment_method": r["payment_method"],
                    "payment_reference": r["reference"],
                    "processing_fee_cents": int(r["processing_fee_cents"]),
                    "payment_processor": r["processor"],
                    "allocations": allocations.get(r["id"], []),
                }
            )
    engine.dispose()
    return list(books.values())


@dataclass
class Ids:
    """Thred ids learnt from the responses, per business."""

    business: str = ""
    token: str = ""
    accounts: dict[str, str] = field(default_factory=dict)
    customers: dict[str, str] = field(default_factory=dict)
    invoices: dict[str, str] = field(default_factory=dict)


def invoice_body(payload: dict[str, Any], ids: Ids) -> dict[str, Any]:
    body = {k: v for k, v in payload.items() if k != "customer"}
    body["customer_id"] = ids.customers[payload["customer"]]
    body["line_items"] = [
        {
            **{k: v for k, v in line.items() if k != "account_code"},
            "account_identifier": {"type": "AccountId", "id": ids.accounts[line["account_code"]]},
        }
        for line in payload["line_items"]
    ]
    return body


def payment_body(payload: dict[str, Any], ids: Ids) -> dict[str, Any]:
    body = {k: v for k, v in payload.items() if k != "customer"}
    body["customer_id"] = ids.customers[payload["customer"]]
    body["allocations"] = [
        {"invoice_id": ids.invoices[inv], "amount_cents": cents}
        for inv, cents in payload["allocations"]
    ]
    return body


def _id(response: httpx.Response) -> str:
    response.raise_for_status()
    body = response.json()
    return str(body["payment"]["id"] if "payment" in body else body["id"])


def _accounts(body: dict[str, Any]) -> dict[str, str]:
    return {str(a["code"]): str(a["id"]) for a in body["results"]}


@dataclass(frozen=True)
class ClientRun:
    records: int
    requests: int
    wall_s: float
    cpu_s: float

    @property
    def records_per_s(self) -> float:
        return self.records / self.wall_s if self.wall_s else 0.0


# --- the naive client ----------------------------------------------------------------------------


def naive_sync(base_url: str, partner: tuple[str, str], books: list[Book]) -> ClientRun:
    """One request at a time, as Thred's quickstart does it."""
    started, cpu0 = time.perf_counter(), time.process_time()
    requests = 0
    with httpx.Client(base_url=base_url, timeout=60) as http:

        def call(method: str, path: str, token: str, body: Any = None) -> httpx.Response:
            nonlocal requests
            requests += 1
            headers = {"Authorization": f"Bearer {token}"}
            return http.request(method, PREFIX + path, json=body, headers=headers)

        token = http.post(f"{PREFIX}/oauth2/token/", auth=partner, data={}).json()
        requests += 1
        partner_token = str(token["access_token"])
        for book in books:
            ids = Ids(business=_id(call("POST", "/businesses/", partner_token, book.business)))
            got = call("POST", f"/{ids.business}/oauth2/token/", partner_token).json()
            ids.token = str(got["access_token"])
            base = f"/businesses/{ids.business}"
            chart = call(
                "GET", f"{base}/general-ledger/chart-of-accounts/?page_size=100", ids.token
            )
            ids.accounts = _accounts(chart.json())
            for key, payload in book.customers.items():
                ids.customers[key] = _id(call("POST", f"{base}/customers/", ids.token, payload))
            for key, payload in book.invoices.items():
                body = invoice_body(payload, ids)
                ids.invoices[key] = _id(call("POST", f"{base}/invoices/", ids.token, body))
            for payload in book.payments.values():
                body = payment_body(payload, ids)
                _id(call("POST", f"{base}/invoices/payments/", ids.token, body))
            for key in book.voided_invoices:
                call("POST", f"{base}/invoices/{ids.invoices[key]}/void/", ids.token, {})
            for key in book.archived_customers:
                call("POST", f"{base}/customers/{ids.customers[key]}/archive/", ids.token, {})
    return ClientRun(
        sum(b.records() for b in books),
        requests,
        time.perf_counter() - started,
        time.process_time() - cpu0,
    )


# --- the raw async load generator ----------------------------------------------------------------


async def _raw(base_url: str, partner: tuple[str, str], books: list[Book], concurrency: int) -> int:
    limits = httpx.Limits(max_connections=concurrency * max(1, len(books)) + 4)
    requests = 0
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:

        async def call(
            gate: asyncio.Semaphore, method: str, path: str, token: str, body: Any = None
        ) -> httpx.Response:
            nonlocal requests
            async with gate:
                requests += 1
                headers = {"Authorization": f"Bearer {token}"}
                return await http.request(method, PREFIX + path, json=body, headers=headers)

        got = await http.post(f"{PREFIX}/oauth2/token/", auth=partner, data={})
        requests += 1
        partner_token = str(got.json()["access_token"])

        async def one_book(book: Book) -> None:
            gate = asyncio.Semaphore(concurrency)
            ids = Ids()
            ids.business = _id(
                await call(gate, "POST", "/businesses/", partner_token, book.business)
            )
            got = await call(gate, "POST", f"/{ids.business}/oauth2/token/", partner_token)
            ids.token = str(got.json()["access_token"])
            base = f"/businesses/{ids.business}"
            chart = await call(
                gate, "GET", f"{base}/general-ledger/chart-of-accounts/?page_size=100", ids.token
            )
            ids.accounts = _accounts(chart.json())

            async def post(
                path: str, items: dict[str, Any], build: Callable[[Any], Any]
            ) -> dict[str, str]:
                keys = list(items)
                answers = await asyncio.gather(
                    *(call(gate, "POST", path, ids.token, build(items[k])) for k in keys)
                )
                return {k: _id(a) for k, a in zip(keys, answers, strict=True)}

            ids.customers = await post(f"{base}/customers/", book.customers, lambda p: p)
            ids.invoices = await post(
                f"{base}/invoices/", book.invoices, lambda p: invoice_body(p, ids)
            )
            await post(f"{base}/invoices/payments/", book.payments, lambda p: payment_body(p, ids))
            await asyncio.gather(
                *(
                    call(gate, "POST", f"{base}/invoices/{ids.invoices[k]}/void/", ids.token, {})
                    for k in book.voided_invoices
                ),
                *(
                    call(
                        gate, "POST", f"{base}/customers/{ids.customers[k]}/archive/", ids.token, {}
                    )
                    for k in book.archived_customers
                ),
            )

        await asyncio.gather(*(one_book(b) for b in books))
    return requests


def raw_load(
    base_url: str, partner: tuple[str, str], books: list[Book], concurrency: int
) -> ClientRun:
    """The same payloads through ``httpx.AsyncClient``, ``concurrency`` per business."""
    started, cpu0 = time.perf_counter(), time.process_time()
    requests = asyncio.run(_raw(base_url, partner, books, concurrency))
    return ClientRun(
        sum(b.records() for b in books),
        requests,
        time.perf_counter() - started,
        time.process_time() - cpu0,
    )
