"""A realistic, deterministic demo warehouse that is valid against every Thred rule.

The demo has to end with every reconciliation check green, so the generator keeps the books as
it goes: it walks each business's events in time order and only ever allocates, refunds or pays
out what is actually outstanding at that moment. It also plants the awkward cases a real
warehouse has — invoices edited after sending, voided invoices, partial and multi-invoice
payments, fractional quantities with half-cent products, tax-exempt customers, archived
records and a few "late parents" (a customer, invoice or vendor whose ``updated_at`` is after
the rows that reference it, so the sync must defer those rows and release them later).

Output is a pure function of ``SeedConfig``: one ``random.Random`` per business seeded from a
string (stable across processes and PYTHONHASHSEED), integer arithmetic for time and money,
no wall clock and no iteration over sets. Every ``updated_at`` falls in
``[start, start + days)``, so a backfill of those daily partitions picks everything up.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sqlalchemy import URL, Engine

from thred_pipeline.warehouse.db import (
    create_schema,
    create_warehouse_engine,
    drop_schema,
    is_postgresql,
)
from thred_pipeline.warehouse.schema import metadata

__all__ = [
    "CARD_FEE_FIXED_CENTS",
    "CARD_FEE_RATE",
    "EXEMPT_SAFE_TAX_CODES",
    "TAX_RATES",
    "SeedConfig",
    "generate",
    "line_amounts",
    "load",
    "round_half_up",
    "row_counts",
    "seed_warehouse",
]

Row = dict[str, Any]
Data = dict[str, list[Row]]
T = TypeVar("T")

# The GB codes the sandbox's tax-code list carries; rates as decimal fractions like Thred's.
TAX_RATES: dict[str, Decimal] = {
    "VAT_20": Decimal("0.20"),
    "VAT_5": Decimal("0.05"),
    "ZERO_RATED": Decimal("0"),
    "EXEMPT": Decimal("0"),
}
EXEMPT_SAFE_TAX_CODES = frozenset({"ZERO_RATED", "EXEMPT"})
# UK card pricing of the kind Stripe charges: 1.5% + 20p per charge.
CARD_FEE_RATE = Decimal("0.015")
CARD_FEE_FIXED_CENTS = 20
_CARD_METHODS = ("credit_card", "debit_card", "stripe")
_ONE_HOUR = timedelta(hours=1)


def round_half_up(value: Decimal) -> int:
    """Round to whole minor units, halves away from zero (what Thred's VAT maths uses)."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def line_amounts(
    quantity: Decimal, unit_price_cents: int, discount_cents: int, tax_code: str
) -> tuple[int, int]:
    """(net, tax) of a line: net = round(quantity * price) - discount; tax = round(net * rate)."""
    net = round_half_up(quantity * unit_price_cents) - discount_cents
    return net, round_half_up(net * TAX_RATES[tax_code])


class SeedConfig(BaseModel):
    """Shape of the demo warehouse; volumes are per business.

    Volumes are targets: an event with nothing valid to act on (a payment when every invoice is
    settled, a refund payment beyond two per refund) is skipped rather than made invalid.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 7
    businesses: int = Field(3, ge=1, le=50)
    start: date = date(2026, 9, 1)
    days: int = Field(30, ge=7, le=366)
    customers: int = Field(25, ge=4, le=5000)
    vendors: int = Field(12, ge=4, le=5000)
    invoices: int = Field(120, ge=0, le=100_000)
    payments: int = Field(90, ge=0, le=100_000)
    refunds: int = Field(10, ge=0, le=10_000)
    refund_payments: int = Field(8, ge=0, le=20_000)
    payouts: int = Field(6, ge=0, le=366)
    bills: int = Field(40, ge=0, le=100_000)
    bill_payments: int = Field(30, ge=0, le=100_000)
    vendor_credits: int = Field(6, ge=0, le=10_000)

    @property
    def window_start(self) -> datetime:
        return datetime.combine(self.start, time(0), UTC)

    @property
    def window_end(self) -> datetime:
        return self.window_start + timedelta(days=self.days)


# -- reference data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Product:
    name: str
    price: int
    tax_code: str
    qty: str


@dataclass(frozen=True)
class _Template:
    base: str
    suffix: str
    entity_type: str
    prefix: str
    city: int  # index into _GB_CITIES
    products: tuple[_Product, ...]


@dataclass(frozen=True)
class _VendorLine:
    description: str
    low: int
    high: int
    tax_code: str
    qty: str


@dataclass(frozen=True)
class _VendorKind:
    company: str | None
    individual: str | None
    prefix: str
    vat_registered: bool
    terms: int
    lines: tuple[_VendorLine, ...]


_QTY: dict[str, tuple[str, ...]] = {
    "one": ("1",),
    "unit": ("1", "1", "1", "2", "2", "3", "4"),
    "bulk": ("2", "3", "4", "5", "6", "8", "10", "12", "15", "20", "24", "30"),
    "hours": ("0.25", "0.5", "1", "1", "1.5", "2", "2", "2.5", "3", "3.75", "4", "6", "7.5"),
    "days": ("0.5", "1", "1", "1.5", "2", "3", "5"),
    "metres": ("2.5", "4", "6", "7.25", "10", "12.5", "18"),
    "seats": ("1", "2", "3", "5", "8", "10"),
    "litres": ("250", "500", "750", "1000"),
}

_P = _Product
_TEMPLATES: tuple[_Template, ...] = (
    _Template(
        "Harbour & Finch Coffee Roasters",
        " Ltd",
        "limited",
        "HF",
        1,
        (
            _P("Espresso blend 1kg", 2450, "ZERO_RATED", "bulk"),
            _P("Single origin beans 250g", 995, "ZERO_RATED", "bulk"),
            _P("Decaf blend 1kg", 2600, "ZERO_RATED", "unit"),
            _P("Cold brew concentrate 5L", 3850, "VAT_20", "unit"),
            _P("Compostable cups 12oz, box of 1000", 6875, "VAT_20", "unit"),
            _P("Espresso machine service", 9500, "VAT_20", "one"),
            _P("Barista training (hours)", 6250, "VAT_20", "hours"),
            _P("Delivery", 1250, "VAT_20", "one"),
        ),
    ),
    _Template(
        "Maya Patel Design",
        "",
        "sole_trader",
        "MPD",
        0,
        (
            _P("Design consultancy (hours)", 7250, "VAT_20", "hours"),
            _P("Brand identity package", 185000, "VAT_20", "one"),
            _P("Website maintenance, monthly", 24000, "VAT_20", "one"),
            _P("Printed brochures, per 100", 14500, "ZERO_RATED", "unit"),
            _P("Stock photo licence", 1999, "VAT_20", "unit"),
            _P("Postage (Royal Mail)", 285, "EXEMPT", "bulk"),
            _P("Illustration (days)", 42000, "VAT_20", "days"),
        ),
    ),
    _Template(
        "Kestrel Build Partners",
        " LLP",
        "llp",
        "KBP",
        3,
        (
            _P("Labour (days)", 28000, "VAT_20", "days"),
            _P("Residential conversion labour (days)", 26000, "VAT_5", "days"),
            _P("New-build labour (days)", 30000, "ZERO_RATED", "days"),
            _P("Plasterboard 2400x1200", 1150, "VAT_20", "bulk"),
            _P("Treated timber (metres)", 425, "VAT_20", "metres"),
            _P("Skip hire", 28500, "VAT_20", "one"),
            _P("Site survey", 45000, "VAT_20", "one"),
        ),
    ),
    _Template(
        "Oakridge Veterinary Surgeons",
        "",
        "partnership",
        "OVS",
        2,
        (
            _P("Consultation", 5800, "VAT_20", "unit"),
            _P("Vaccination booster", 6450, "VAT_20", "unit"),
            _P("Prescription diet 2kg", 3199, "VAT_20", "unit"),
            _P("Nursing care (hours)", 3500, "VAT_20", "hours"),
            _P("Livestock feed, 25kg sack", 2850, "ZERO_RATED", "bulk"),
            _P("Insurance claim handling", 2500, "EXEMPT", "one"),
            _P("Home visit", 9000, "VAT_20", "one"),
        ),
    ),
    _Template(
        "Meridian Freight",
        " plc",
        "plc",
        "MFR",
        4,
        (
            _P("Pallet delivery", 8500, "VAT_20", "bulk"),
            _P("Warehousing (pallet-weeks)", 650, "VAT_20", "bulk"),
            _P("Fuel surcharge", 1575, "VAT_20", "one"),
            _P("International freight", 120000, "ZERO_RATED", "one"),
            _P("Goods-in-transit insurance", 4500, "EXEMPT", "one"),
            _P("Heating oil delivery (litres)", 89, "VAT_5", "litres"),
        ),
    ),
)

_V = _VendorLine
_VENDOR_KINDS: tuple[_VendorKind, ...] = (
    _VendorKind(
        "Northern Grid Energy Ltd",
        None,
        "NGE",
        True,
        14,
        (
            _V("Electricity, business tariff", 18000, 65000, "VAT_20", "one"),
            _V("Standing charge", 2500, 4000, "VAT_20", "one"),
        ),
    ),
    _VendorKind(
        "Brightline Telecom plc",
        None,
        "BLT",
        True,
        30,
        (_V("Fibre broadband and VoIP", 4500, 9500, "VAT_20", "one"),),
    ),
    _VendorKind(
        "Cloudledger Software Ltd",
        None,
        "CLS",
        True,
        7,
        (_V("Software subscription, per seat", 900, 2900, "VAT_20", "seats"),),
    ),
    _VendorKind(
        "Parcelway Couriers Ltd",
        None,
        "PWC",
        True,
        30,
        (
            _V("Next-day parcels", 650, 1250, "VAT_20", "bulk"),
            _V("Pallet collection", 4500, 7500, "VAT_20", "one"),
        ),
    ),
    _VendorKind(
        "Greenleaf Office Supplies Ltd",
        None,
        "GOS",
        True,
        30,
        (
            _V("Printer paper, box of 5 reams", 2499, 3299, "VAT_20", "unit"),
            _V("Toner cartridge", 5999, 8999, "VAT_20", "unit"),
            _V("Desk chair", 14999, 24999, "VAT_20", "one"),
        ),
    ),
    _VendorKind(
        "Hartley & Co Accountants LLP",
        None,
        "HCA",
        True,
        30,
        (_V("Bookkeeping (hours)", 4500, 6500, "VAT_20", "hours"),),
    ),
    _VendorKind(
        "Castlegate Property Lettings Ltd",
        None,
        "CPL",
        True,
        14,
        (_V("Unit rent, monthly", 95000, 240000, "EXEMPT", "one"),),
    ),
    _VendorKind(
        "Shieldwell Insurance Ltd",
        None,
        "SWI",
        True,
        30,
        (_V("Business insurance premium", 12000, 45000, "EXEMPT", "one"),),
    ),
    _VendorKind(
        "Jones Plumbing & Heating",
        "Gareth Jones",
        "JPH",
        False,
        7,
        (
            _V("Call-out and repair (hours)", 4500, 6000, "ZERO_RATED", "hours"),
            _V("Parts", 800, 9500, "ZERO_RATED", "one"),
        ),
    ),
    _VendorKind(
        "Printworks Leeds Ltd",
        None,
        "PWL",
        True,
        30,
        (_V("Printed leaflets, per 1000", 8500, 15000, "ZERO_RATED", "unit"),),
    ),
    _VendorKind(
        "Freshfield Wholesale Foods Ltd",
        None,
        "FWF",
        True,
        14,
        (
            _V("Milk, crate of 12 litres", 1850, 2450, "ZERO_RATED", "bulk"),
            _V("Cleaning supplies", 1500, 6500, "VAT_20", "unit"),
        ),
    ),
    _VendorKind(
        "Rapid Rail Travel Ltd",
        None,
        "RRT",
        True,
        7,
        (_V("Rail tickets", 2500, 18000, "ZERO_RATED", "one"),),
    ),
    _VendorKind(
        "Blue Flame Gas Ltd",
        None,
        "BFG",
        True,
        14,
        (_V("Gas supply, low-usage rate", 3000, 9000, "VAT_5", "one"),),
    ),
    _VendorKind(
        None,
        "Sophie Turner",
        "SJT",
        True,
        14,
        (_V("Freelance photography (days)", 30000, 45000, "VAT_20", "days"),),
    ),
    _VendorKind(
        "Anchor Waste Services Ltd",
        None,
        "AWS",
        True,
        30,
        (_V("Commercial waste collection", 3500, 7500, "VAT_20", "unit"),),
    ),
    _VendorKind(
        "Metro Hardware Ltd",
        None,
        "MHW",
        True,
        30,
        (
            _V("Hand tools", 1299, 8999, "VAT_20", "unit"),
            _V("Fixings and fasteners", 350, 2499, "VAT_20", "bulk"),
        ),
    ),
)

_GB_CITIES: tuple[tuple[str, str], ...] = (
    ("London", "EC1V 9HX"),
    ("Bristol", "BS1 5TR"),
    ("York", "YO1 7HH"),
    ("Leeds", "LS1 4DY"),
    ("Manchester", "M1 4BT"),
    ("Glasgow", "G1 3SL"),
    ("Edinburgh", "EH1 1YZ"),
    ("Cardiff", "CF10 1EP"),
    ("Birmingham", "B1 1BB"),
    ("Brighton", "BN1 1AE"),
    ("Norwich", "NR2 1NT"),
    ("Belfast", "BT1 5GS"),
    ("Sheffield", "S1 2HE"),
    ("Newcastle upon Tyne", "NE1 4ST"),
)
_OVERSEAS: tuple[tuple[str, str, str], ...] = (
    ("Dublin", "D02 X285", "IE"),
    ("Paris", "75002", "FR"),
    ("Berlin", "10115", "DE"),
    ("Amsterdam", "1012 AB", "NL"),
)


def _names(text: str, sep: str = "|") -> tuple[str, ...]:
    return tuple(text.split(sep))


_STREETS = _names(
    "High Street|Station Road|Church Lane|Mill Road|Victoria Street|Queen's Road|"
    "Park Avenue|King Street|Market Place|Harbour Walk"
)
_FIRST = _names(
    "Olivia Amelia Isla Ava Grace Freya Priya Aisha Niamh Eilidh Oliver George Harry "
    "Noah Leo Arthur Rhys Callum Tomasz Kwame Hamish Dev Chen Siobhan",
    " ",
)
_LAST = _names(
    "Smith Jones Taylor Brown Williams Wilson Evans Roberts Khan Patel Murphy O'Neill "
    "Campbell Hughes Walsh Nowak Okafor Ahmed MacLeod Davies Wright Green",
    " ",
)
_COMPANY_A = _names(
    "Bramble|Copper Kettle|Juniper|Northgate|Willow|Foxglove|Redbrick|Saltmarsh|"
    "Ashdown|Lark|Thistle|Hazel|Kingfisher|Ember|Oak & Ivy|Marlow|Greystone|Riverside|"
    "Beacon|Blackthorn"
)
_COMPANY_B = _names(
    "Café|Kitchen|Studios|Bakery|Dental Practice|Yoga|Books|Architects|Homes|Deli|"
    "Hotel|Events|Gallery|Brewing Co|Interiors|Lettings"
)
_REFUND_REASONS = _names(
    "Damaged goods|Service not delivered|Goodwill gesture|Duplicate charge|"
    "Returned items|Pricing error"
)
_CREDIT_REASONS = _names(
    "Credit for damaged delivery|Service outage credit|Overcharge correction|"
    "Returned goods|Volume rebate"
)


# -- per-business state -----------------------------------------------------------------------


@dataclass
class _Customer:
    row: Row
    weight: int
    archived: bool
    exempt: bool
    overseas: bool
    terms: int


@dataclass
class _Vendor:
    row: Row
    kind: _VendorKind
    weight: int
    archived: bool


@dataclass
class _Doc:
    """An invoice or a bill with the running balances the generator must respect."""

    row: Row
    lines: list[Row]
    party: str
    total: int
    outstanding: int
    paid: int = 0
    refunded: int = 0
    last_paid: datetime | None = None
    paid_by_card: bool = False
    paid_by_card_only: bool = True
    voided: bool = False
    edited: bool = False


@dataclass
class _Refund:
    row: Row
    remaining: int
    card: bool


@dataclass
class _Tracked:
    """A stripe charge or refund payment waiting to be paid out."""

    ts: datetime
    payment: Row | None = None
    refund_payment: Row | None = None


@dataclass
class _Builder:
    config: SeedConfig
    index: int
    out: Data
    rng: random.Random = field(init=False)
    customers: list[_Customer] = field(default_factory=list)
    vendors: list[_Vendor] = field(default_factory=list)
    invoices: list[_Doc] = field(default_factory=list)
    bills: list[_Doc] = field(default_factory=list)
    refunds: list[_Refund] = field(default_factory=list)
    stripe_items: list[_Tracked] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Demo data, not security: a seeded PRNG is the point (S311).
        self.rng = random.Random(f"thred-pipeline-seed:{self.config.seed}:{self.index}")  # noqa: S311
        self.t0 = self.config.window_start
        self.end = self.config.window_end
        self.days = self.config.days
        self.tag = f"{self.index + 1:02d}"
        self.bid = f"biz-{self.tag}"
        cycle, slot = divmod(self.index, len(_TEMPLATES))
        self.template = _TEMPLATES[slot]
        self.cycle = cycle
        self.currency = "GBP"

    # -- helpers --------------------------------------------------------------------------

    def at(self, day: int, lo_hour: int = 8, hi_hour: int = 18) -> datetime:
        seconds = self.rng.randrange(lo_hour * 3600, hi_hour * 3600)
        micros = self.rng.randrange(1_000_000)
        return self.t0 + timedelta(days=day, seconds=seconds, microseconds=micros)

    def later(self, ts: datetime, min_hours: int, max_hours: int) -> datetime | None:
        """A time min..max hours after ts, or None when that leaves the window."""
        room = int((self.end - ts).total_seconds()) - 600
        lo, hi = min_hours * 3600, min(max_hours * 3600, room)
        if hi <= lo:
            return None
        return ts + timedelta(seconds=self.rng.randrange(lo, hi), microseconds=0)

    def lagged(self, anchors: Sequence[datetime], count: int) -> list[datetime]:
        """``count`` times, each 2 hours to 12 days after a random anchor (payments follow
        the documents they pay, so the open pool never runs dry early in the window)."""
        times: list[datetime] = []
        if not anchors:
            return times
        for _ in range(count * 20):
            if len(times) == count:
                break
            ts = self.later(self.pick(anchors), 2, 24 * 12)
            if ts is not None:
                times.append(ts)
        return times

    def pick(self, items: Sequence[T], weights: Sequence[int] | None = None) -> T:
        return self.rng.choices(items, weights=weights, k=1)[0]

    def digits(self, n: int) -> str:
        return "".join(self.rng.choice(string.digits) for _ in range(n))

    def token(self, n: int) -> str:
        alphabet = string.ascii_letters + string.digits
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def emit(self, table: str, row: Row) -> Row:
        self.out[table].append(row)
        return row

    # -- build ----------------------------------------------------------------------------

    def build(self) -> None:
        business_ts = self.at(0, 6, 7)
        self.business(business_ts)
        self.make_customers(business_ts)
        self.make_vendors(business_ts)
        self.make_invoices()
        self.ar_events()
        self.make_refund_payments()
        self.make_payouts()
        self.make_bills()
        self.ap_events()
        self.late_parents()

    def business(self, ts: datetime) -> None:
        tpl = self.template
        city, postcode = _GB_CITIES[(tpl.city + self.cycle) % len(_GB_CITIES)]
        base = tpl.base if self.cycle == 0 else f"{tpl.base} {city}"
        self.city, self.postcode = city, postcode
        slug = _slug(base)
        if tpl.entity_type in ("limited", "plc"):
            company_number: str | None = "0" + self.digits(7)
        elif tpl.entity_type == "llp":
            company_number = "OC" + self.digits(6)
        else:
            company_number = None
        self.emit(
            "businesses",
            {
                "id": self.bid,
                "legal_name": base + tpl.suffix,
                "entity_type": tpl.entity_type,
                "email": f"accounts@{slug}.example.com",
                "phone_number": "+4420794600" + self.digits(2),
                "country": "GB",
                "base_currency": self.currency,
                "vat_number": "GB" + self.digits(9),
                "company_number": company_number,
                "accounting_method": "accrual",
                "is_active": True,
                "created_at": ts,
                "updated_at": ts,
            },
        )
        self.business_ts = ts
        self.inv_prefix = tpl.prefix + (str(self.cycle + 1) if self.cycle else "")

    def make_customers(self, after: datetime) -> None:
        n = self.config.customers
        n_archived = max(1, round(n * 0.08))
        n_exempt = max(1, round(n * 0.15))
        archived = set(self.rng.sample(range(n), n_archived))
        exempt = set(self.rng.sample(sorted(set(range(n)) - archived), n_exempt))
        used: set[str] = set()
        for k in range(n):
            is_exempt = k in exempt
            is_archived = k in archived
            overseas = is_exempt and self.rng.random() < 0.5
            company = is_exempt or self.rng.random() < 0.65
            city, postcode = self.pick(_GB_CITIES)
            country = "GB"
            if self.rng.random() < 0.6:
                city, postcode = self.city, self.postcode
            individual_name: str | None = None
            company_name: str | None = None
            vat_number: str | None = None
            if overseas:
                city, postcode, country = self.pick(_OVERSEAS)
                company_name = self.unique_company(used, " Ltd" if country == "IE" else "")
                vat_number = _eu_vat(country, self)
            elif is_exempt:
                a = self.unique_word(used)
                company_name = f"{a} {self.pick(('Community Trust', 'Foundation', 'Hospice'))}"
                used.add(company_name)
            elif company:
                company_name = self.unique_company(used, None)
                if self.rng.random() < 0.5:
                    individual_name = f"{self.pick(_FIRST)} {self.pick(_LAST)}"
                if self.rng.random() < 0.4:
                    vat_number = "GB" + self.digits(9)
            else:
                individual_name = f"{self.pick(_FIRST)} {self.pick(_LAST)}"
            if company_name:
                email = f"accounts@{_slug(company_name)}.example.com"
            else:
                assert individual_name is not None
                email = f"{_slug(individual_name).replace('-', '.')}{k}@mail.example.com"
            if is_archived:
                created = self.at(self.rng.randrange(min(6, self.days // 2)))
            elif k < round(n * 0.6):
                created = self.at(0, 7, 12)
            else:
                created = self.at(self.rng.randrange(1, max(2, self.days * 2 // 3)))
            created = max(created, after + timedelta(minutes=5))
            archived_at = self.later(created, 72, 288) if is_archived else None
            terms = self.pick((7, 14, 14, 30, 30, 30, 45))
            row = self.emit(
                "customers",
                {
                    "id": f"cus-{self.tag}-{k + 1:04d}",
                    "business_id": self.bid,
                    "individual_name": individual_name,
                    "company_name": company_name,
                    "email": email,
                    "phone": None if overseas else "+447700900" + self.digits(3),
                    "address_line1": f"{self.rng.randint(1, 240)} {self.pick(_STREETS)}",
                    "city": city,
                    "postal_code": postcode,
                    "country": country,
                    "vat_number": vat_number,
                    "tax_exempt": is_exempt,
                    "payment_terms_days": terms,
                    "archived_at": archived_at,
                    "created_at": created,
                    "updated_at": archived_at or created,
                },
            )
            self.customers.append(
                _Customer(
                    row,
                    weight=self.pick((1, 1, 2, 3, 5, 8)),
                    archived=archived_at is not None,
                    exempt=is_exempt,
                    overseas=overseas,
                    terms=terms,
                )
            )

    def unique_word(self, used: set[str]) -> str:
        for _ in range(50):
            word = self.pick(_COMPANY_A)
            if word not in used:
                used.add(word)
                return word
        word = f"{self.pick(_COMPANY_A)} {self.pick(_LAST)}"
        used.add(word)
        return word

    def unique_company(self, used: set[str], suffix: str | None) -> str:
        for attempt in range(100):
            name = f"{self.pick(_COMPANY_A)} {self.pick(_COMPANY_B)}"
            if attempt >= 50:
                name = f"{name} {self.pick(_LAST)}"
            if name not in used:
                used.add(name)
                break
        chosen = suffix if suffix is not None else self.pick((" Ltd", " Ltd", " Ltd", "", " & Co"))
        return name + chosen

    def make_vendors(self, after: datetime) -> None:
        n = self.config.vendors
        n_archived = max(1, round(n * 0.08))
        kinds = list(_VENDOR_KINDS)
        self.rng.shuffle(kinds)
        archived = set(self.rng.sample(range(n), n_archived))
        for k in range(n):
            kind = kinds[k % len(kinds)]
            repeat = k // len(kinds)
            company = (
                kind.company if not repeat or not kind.company else f"{kind.company} ({repeat + 1})"
            )
            city, postcode = self.pick(_GB_CITIES)
            created = max(
                self.at(0, 7, 12)
                if k < n * 0.75
                else self.at(self.rng.randrange(1, min(8, self.days - 1))),
                after + timedelta(minutes=5),
            )
            archived_at = self.later(created, 48, 240) if k in archived else None
            display = company or kind.individual or kind.prefix
            row = self.emit(
                "vendors",
                {
                    "id": f"ven-{self.tag}-{k + 1:04d}",
                    "business_id": self.bid,
                    "individual_name": kind.individual,
                    "company_name": company,
                    "email": f"billing@{_slug(display)}.example.com",
                    "phone": "+44113496" + self.digits(4),
                    "address": (
                        f"{self.rng.randint(1, 240)} {self.pick(_STREETS)}, {city} {postcode}, "
                        "United Kingdom"
                    ),
                    "country": "GB",
                    "vat_number": "GB" + self.digits(9) if kind.vat_registered else None,
                    "archived_at": archived_at,
                    "created_at": created,
                    "updated_at": archived_at or created,
                },
            )
            self.vendors.append(
                _Vendor(row, kind, self.pick((1, 2, 3, 4)), archived=archived_at is not None)
            )

    # -- AR -------------------------------------------------------------------------------

    def make_invoices(self) -> None:
        n = self.config.invoices
        times = sorted(self.at(self.rng.randrange(self.days), 9, 18) for _ in range(n))
        times = [max(ts, self.business_ts + timedelta(hours=6)) for ts in times]
        times.sort()
        active = [c for c in self.customers if not c.archived]
        for k, ts in enumerate(times):
            eligible = [c for c in active if c.row["created_at"] + timedelta(minutes=30) <= ts]
            if not eligible:
                eligible = active[:1]
                ts = max(ts, active[0].row["created_at"] + timedelta(minutes=30))
            customer = self.pick(eligible, [c.weight for c in eligible])
            inv_id = f"inv-{self.tag}-{k + 1:05d}"
            lines, total = self.invoice_lines(inv_id, customer)
            discount = 0
            if self.rng.random() < 0.1 and total >= 5000:
                discount = max(100, round_half_up(Decimal(total) * Decimal("0.05") / 100) * 100)
                discount = min(discount, total - 100)
            total -= discount
            memo = None
            if self.rng.random() < 0.2:
                memo = f"PO {self.digits(5)}"
            row = self.emit(
                "invoices",
                {
                    "id": inv_id,
                    "business_id": self.bid,
                    "customer_id": customer.row["id"],
                    "invoice_number": f"{self.inv_prefix}-{1001 + k}",
                    "currency": self.currency,
                    "sent_at": ts,
                    "due_at": ts + timedelta(days=customer.terms),
                    "voided_at": None,
                    "memo": memo,
                    "additional_discount_cents": discount,
                    "created_at": ts,
                    "updated_at": ts,
                },
            )
            for line in lines:
                line["updated_at"] = ts
                self.emit("invoice_line_items", line)
            self.invoices.append(_Doc(row, lines, customer.row["id"], total, total))
        self.edit_and_void()

    def invoice_lines(self, inv_id: str, customer: _Customer) -> tuple[list[Row], int]:
        count = self.pick((1, 2, 3, 4, 5), (30, 30, 20, 12, 8))
        products = self.rng.sample(self.template.products, min(count, len(self.template.products)))
        lines: list[Row] = []
        total = 0
        for pos, product in enumerate(products, start=1):
            quantity = Decimal(self.pick(_QTY[product.qty])).quantize(Decimal("0.0001"))
            price = product.price
            if self.rng.random() < 0.25:
                price = round_half_up(price * Decimal(self.rng.randrange(85, 121)) / 100)
            gross = round_half_up(quantity * price)
            discount = 0
            if self.rng.random() < 0.12 and gross >= 1000:
                discount = (
                    round_half_up(Decimal(gross) / 10)
                    if self.rng.random() < 0.6
                    else min(gross // 2, self.pick((500, 1000, 2500)))
                )
            code = product.tax_code
            if customer.exempt and code not in EXEMPT_SAFE_TAX_CODES:
                code = "ZERO_RATED" if customer.overseas else "EXEMPT"
            net, tax = line_amounts(quantity, price, discount, code)
            total += net + tax
            lines.append(
                {
                    "id": f"ili-{inv_id[4:]}-{pos}",
                    "invoice_id": inv_id,
                    "position": pos,
                    "description": product.name,
                    "product": _slug(product.name),
                    "quantity": quantity,
                    "unit_price_cents": price,
                    "discount_cents": discount,
                    "tax_code": code,
                    "tax_amount_cents": tax,
                    "revenue_account_code": "4000",
                    "updated_at": None,
                }
            )
        return lines, total

    def edit_and_void(self) -> None:
        n = len(self.invoices)
        room = self.end - timedelta(days=6)
        pool = [i for i, doc in enumerate(self.invoices) if doc.row["created_at"] < room]
        n_edit = min(len(pool), max(1, round(n * 0.04))) if n else 0
        n_void = min(len(pool) - n_edit, max(1, round(n * 0.03))) if n else 0
        chosen = self.rng.sample(pool, n_edit + n_void)
        for j, i in enumerate(chosen):
            doc = self.invoices[i]
            ts = self.later(doc.row["created_at"], 24, 24 * 4)
            if ts is None:
                continue
            if j < n_edit:
                doc.edited = True
                doc.row["memo"] = "Revised: quantities updated after delivery check"
            else:
                doc.voided = True
                doc.outstanding = 0
                doc.row["voided_at"] = ts
                doc.row["memo"] = "Voided: raised in error"
            self.touch(doc, ts)

    @staticmethod
    def touch(doc: _Doc, ts: datetime) -> None:
        doc.row["updated_at"] = ts
        for line in doc.lines:
            line["updated_at"] = ts

    def ar_events(self) -> None:
        events: list[tuple[datetime, int, str]] = []
        for ts in self.lagged([d.row["updated_at"] for d in self.invoices], self.config.payments):
            events.append((ts, 0, "payment"))
        lo = max(2, self.days // 4)
        for _ in range(self.config.refunds):
            events.append((self.at(self.rng.randrange(lo, self.days), 9, 17), 1, "refund"))
        events.sort()
        self.n_payments = 0
        self.n_refunds = 0
        for ts, _, kind in events:
            if kind == "payment":
                self.payment(ts)
            else:
                self.refund(ts)

    def payment(self, ts: datetime) -> None:
        open_docs = [
            d
            for d in self.invoices
            if not d.voided and d.outstanding > 0 and d.row["updated_at"] + _ONE_HOUR <= ts
        ]
        if not open_docs:
            return
        kind = self.pick(("full", "partial", "multi"), (55, 20, 25))
        by_customer: dict[str, list[_Doc]] = {}
        for d in open_docs:
            by_customer.setdefault(d.party, []).append(d)
        allocations: list[tuple[_Doc, int]] = []
        if kind == "multi":
            multi = [docs for docs in by_customer.values() if len(docs) >= 2]
            if multi:
                docs = self.pick(multi)
                take = docs[: self.pick((2, 2, 3))]
                for j, d in enumerate(take):
                    amount = d.outstanding
                    if j == len(take) - 1 and self.rng.random() < 0.3:
                        amount = self.partial(d.outstanding)
                    allocations.append((d, amount))
            else:
                kind = "full"
        if not allocations:
            weights = [
                max(1, int((ts - d.row["sent_at"]).total_seconds() // 86400) + 1) for d in open_docs
            ]
            d = self.pick(open_docs, weights)
            amount = self.partial(d.outstanding) if kind == "partial" else d.outstanding
            allocations.append((d, amount))
        total = sum(a for _, a in allocations)
        method = self.payment_method(total)
        card = method in _CARD_METHODS
        fee = round_half_up(total * CARD_FEE_RATE) + CARD_FEE_FIXED_CENTS if card else 0
        self.n_payments += 1
        pid = f"pay-{self.tag}-{self.n_payments:05d}"
        first = allocations[0][0]
        reference: str | None
        if card:
            reference = "ch_" + self.token(24)
        elif method == "bank_transfer":
            reference = f"FPS {first.row['invoice_number']}"
        elif method == "check":
            reference = f"Cheque {self.digits(6)}"
        else:
            reference = None
        row = self.emit(
            "payments",
            {
                "id": pid,
                "business_id": self.bid,
                "customer_id": first.party,
                "amount_cents": total,
                "currency": self.currency,
                "payment_date": ts.date(),
                "payment_method": method,
                "reference": reference,
                "processing_fee_cents": fee,
                "processor": "stripe" if card else None,
                "created_at": ts,
                "updated_at": ts,
            },
        )
        for j, (d, amount) in enumerate(allocations, start=1):
            self.emit(
                "payment_allocations",
                {
                    "id": f"pal-{pid[4:]}-{j}",
                    "payment_id": pid,
                    "invoice_id": d.row["id"],
                    "amount_cents": amount,
                    "updated_at": ts,
                },
            )
            d.outstanding -= amount
            d.paid += amount
            d.last_paid = ts
            d.paid_by_card = d.paid_by_card or card
            d.paid_by_card_only = d.paid_by_card_only and card
        if card:
            self.stripe_items.append(_Tracked(ts, payment=row))

    def partial(self, outstanding: int) -> int:
        if outstanding < 400:
            return outstanding
        share = Decimal(self.rng.randrange(25, 76)) / 100
        step = 1000 if outstanding >= 20000 else 100
        amount = round_half_up(outstanding * share / step) * step
        return min(max(amount, 100), outstanding - 100)

    def payment_method(self, amount: int) -> str:
        if amount > 500_000:
            return "bank_transfer"
        methods = ("bank_transfer", "credit_card", "debit_card", "stripe", "cash", "check")
        weights = (40, 18, 14, 6, 8 if amount <= 50_000 else 0, 4)
        return self.pick(methods, weights)

    def refund(self, ts: datetime) -> None:
        paid = [
            d
            for d in self.invoices
            if not d.voided
            and d.outstanding == 0
            and d.paid > d.refunded
            and d.last_paid is not None
            and d.last_paid + timedelta(days=1) <= ts
        ]
        if not paid:
            return
        d = self.pick(paid)
        available = d.paid - d.refunded
        if self.rng.random() < 0.4 or available < 500:
            amount = available
        else:
            line_totals = [
                line_amounts(
                    line["quantity"],
                    line["unit_price_cents"],
                    line["discount_cents"],
                    line["tax_code"],
                )
                for line in d.lines
            ]
            candidates = [net + tax for net, tax in line_totals if 0 < net + tax < available]
            if candidates and self.rng.random() < 0.6:
                amount = self.pick(candidates)
            else:
                amount = max(
                    100, round_half_up(available * Decimal(self.rng.randrange(10, 51)) / 100)
                )
        d.refunded += amount
        card = d.paid_by_card_only and d.paid_by_card
        method = "CARD" if card else self.pick(("BANK_TRANSFER", "CASH"), (80, 20))
        self.n_refunds += 1
        row = self.emit(
            "refunds",
            {
                "id": f"ref-{self.tag}-{self.n_refunds:04d}",
                "business_id": self.bid,
                "invoice_id": d.row["id"],
                "amount_cents": amount,
                "method": method,
                "completed_at": ts,
                "reason": self.pick(_REFUND_REASONS),
                "created_at": ts,
                "updated_at": ts,
            },
        )
        self.refunds.append(_Refund(row, amount, card))

    def make_refund_payments(self) -> None:
        refunds = self.refunds  # already in time order
        count = len(refunds)
        if not count:
            return
        unpaid = max(1, round(count * 0.3)) if count > 1 else 0
        plan = [0] * count
        budget = self.config.refund_payments
        for i in range(count - unpaid):
            if budget == 0:
                break
            plan[i] = 1
            budget -= 1
        for i in range(count):
            if budget == 0:
                break
            if plan[i] == 1:
                plan[i] = 2
                budget -= 1
        for i in range(count):  # refunds reserved as unpaid absorb whatever is still left
            if budget == 0:
                break
            if plan[i] == 0:
                plan[i] = 1
                budget -= 1
        n = 0
        for i, (refund, k) in enumerate(zip(refunds, plan, strict=True)):
            ts: datetime | None = refund.row["created_at"]
            amounts: list[int] = []
            if k == 1:
                partial = i % 3 == 1 and refund.remaining >= 200
                amounts = [self.split(refund.remaining) if partial else refund.remaining]
            elif k == 2:
                first = (
                    self.split(refund.remaining) if refund.remaining >= 200 else refund.remaining
                )
                amounts = [first, refund.remaining - first] if first < refund.remaining else [first]
            for amount in amounts:
                assert ts is not None
                ts = self.later(ts, 1, 48)
                if ts is None:
                    break
                n += 1
                rp = self.emit(
                    "refund_payments",
                    {
                        "id": f"rfp-{self.tag}-{n:04d}",
                        "business_id": self.bid,
                        "refund_id": refund.row["id"],
                        "amount_cents": amount,
                        "method": refund.row["method"],
                        "processor": "stripe" if refund.card else None,
                        "completed_at": ts,
                        "created_at": ts,
                        "updated_at": ts,
                    },
                )
                refund.remaining -= amount
                if refund.card:
                    self.stripe_items.append(_Tracked(ts, refund_payment=rp))

    def split(self, amount: int) -> int:
        share = Decimal(self.rng.randrange(30, 71)) / 100
        return min(max(1, round_half_up(amount * share)), amount - 1)

    def make_payouts(self) -> None:
        n = self.config.payouts
        charges = sorted(
            (t for t in self.stripe_items if t.payment is not None), key=lambda t: t.ts
        )
        if not n or not charges:
            return
        first_day = (charges[0].ts - self.t0).days
        lo, hi = first_day + 3, self.days - 1
        if hi < lo:
            return
        spread = [hi] if n == 1 else [lo + round((hi - lo) * k / (n - 1)) for k in range(n)]
        days = sorted(set(spread))
        pending = sorted(self.stripe_items, key=lambda t: t.ts)
        count = 0
        for day in days:
            cutoff = self.t0 + timedelta(days=day - 2)
            due = [t for t in pending if t.ts < cutoff]
            payments = [t for t in due if t.payment is not None]
            refund_payments = [t for t in due if t.refund_payment is not None]
            if not payments:
                continue
            gross = sum(int(t.payment["amount_cents"]) for t in payments if t.payment)
            fee = sum(int(t.payment["processing_fee_cents"]) for t in payments if t.payment)
            refunded = sum(
                int(t.refund_payment["amount_cents"]) for t in refund_payments if t.refund_payment
            )
            if gross - refunded - fee <= 0:  # refunds roll into the next payout
                refund_payments, refunded = [], 0
            items = payments + refund_payments
            for t in items:
                pending.remove(t)
            count += 1
            paid_ts = self.at(day, 5, 9)
            created = cutoff + timedelta(seconds=self.rng.randrange(3600, 12 * 3600))
            po_id = f"po-{self.tag}-{count:03d}"
            self.emit(
                "payouts",
                {
                    "id": po_id,
                    "business_id": self.bid,
                    "processor": "stripe",
                    "processor_payout_id": "po_" + self.token(24),
                    "paid_out_amount_cents": gross - refunded - fee,
                    "fee_cents": fee,
                    "currency": self.currency,
                    "status": "paid",
                    "completed_at": paid_ts,
                    "created_at": created,
                    "updated_at": paid_ts,
                },
            )
            for j, t in enumerate(items, start=1):
                self.emit(
                    "payout_items",
                    {
                        "id": f"poi-{po_id[3:]}-{j:03d}",
                        "payout_id": po_id,
                        "payment_id": t.payment["id"] if t.payment else None,
                        "refund_payment_id": t.refund_payment["id"] if t.refund_payment else None,
                        "updated_at": paid_ts,
                    },
                )
            if count >= n:
                break

    # -- AP -------------------------------------------------------------------------------

    def make_bills(self) -> None:
        n = self.config.bills
        times = sorted(self.at(self.rng.randrange(self.days), 9, 18) for _ in range(n))
        active = [v for v in self.vendors if not v.archived]
        for k, raw_ts in enumerate(times):
            ts = max(raw_ts, self.business_ts + timedelta(hours=6))
            eligible = [v for v in active if v.row["created_at"] + timedelta(minutes=30) <= ts]
            if not eligible:
                eligible = active[:1]
                ts = max(ts, active[0].row["created_at"] + timedelta(minutes=30))
            vendor = self.pick(eligible, [v.weight for v in eligible])
            bill_id = f"bill-{self.tag}-{k + 1:05d}"
            bill_date = max(
                self.config.start, (ts - timedelta(days=self.rng.randrange(0, 4))).date()
            )
            lines: list[Row] = []
            total = 0
            count = self.pick((1, 1, 2, 2, 3))
            for pos, tpl in enumerate(
                self.rng.sample(vendor.kind.lines, min(count, len(vendor.kind.lines))), start=1
            ):
                quantity = Decimal(self.pick(_QTY[tpl.qty])).quantize(Decimal("0.0001"))
                price = self.rng.randrange(tpl.low, tpl.high + 1)
                net, tax = line_amounts(quantity, price, 0, tpl.tax_code)
                total += net + tax
                lines.append(
                    {
                        "id": f"bli-{bill_id[5:]}-{pos}",
                        "bill_id": bill_id,
                        "position": pos,
                        "description": tpl.description,
                        "quantity": quantity,
                        "unit_price_cents": price,
                        "tax_code": tpl.tax_code,
                        "tax_amount_cents": tax,
                        "expense_account_code": "5000",
                        "updated_at": ts,
                    }
                )
            row = self.emit(
                "bills",
                {
                    "id": bill_id,
                    "business_id": self.bid,
                    "vendor_id": vendor.row["id"],
                    "bill_number": f"BILL-{self.tag}{k + 1:04d}",
                    "vendor_bill_number": f"{vendor.kind.prefix}-{self.digits(6)}",
                    "currency": self.currency,
                    "bill_date": bill_date,
                    "due_at": datetime.combine(
                        bill_date + timedelta(days=vendor.kind.terms), time(0), UTC
                    ),
                    "memo": self.pick((None, None, None, "Monthly account", "Ref: site works")),
                    "created_at": ts,
                    "updated_at": ts,
                },
            )
            for line in lines:
                self.emit("bill_line_items", line)
            self.bills.append(_Doc(row, lines, vendor.row["id"], total, total))
        room = self.end - timedelta(days=5)
        pool = [d for d in self.bills if d.row["created_at"] < room]
        for doc in self.rng.sample(pool, min(len(pool), max(1, round(n * 0.05)) if n else 0)):
            edited_at = self.later(doc.row["created_at"], 24, 72)
            if edited_at is not None:
                doc.edited = True
                doc.row["memo"] = "Revised after vendor correction"
                self.touch(doc, edited_at)

    def ap_events(self) -> None:
        events: list[tuple[datetime, int, str]] = []
        for ts in self.lagged([d.row["updated_at"] for d in self.bills], self.config.bill_payments):
            events.append((ts, 0, "payment"))
        for _ in range(self.config.vendor_credits):
            events.append((self.at(self.rng.randrange(3, self.days), 9, 17), 1, "credit"))
        events.sort()
        self.n_bill_payments = 0
        self.n_credits = 0
        self.check_number = 100200 + self.rng.randrange(500)
        for ts, _, kind in events:
            if kind == "payment":
                self.bill_payment(ts)
            else:
                self.vendor_credit(ts)

    def open_bills(self, ts: datetime) -> list[_Doc]:
        return [
            d
            for d in self.bills
            if d.outstanding > 0
            and d.row["updated_at"] + _ONE_HOUR <= ts
            and d.row["bill_date"] <= ts.date()
        ]

    def bill_payment(self, ts: datetime) -> None:
        open_docs = self.open_bills(ts)
        if not open_docs:
            return
        kind = self.pick(("full", "partial", "multi"), (60, 15, 25))
        allocations: list[tuple[_Doc, int]] = []
        if kind == "multi":
            by_vendor: dict[str, list[_Doc]] = {}
            for d in open_docs:
                by_vendor.setdefault(d.party, []).append(d)
            multi = [docs for docs in by_vendor.values() if len(docs) >= 2]
            if multi:
                docs = self.pick(multi)
                allocations = [(d, d.outstanding) for d in docs[: self.pick((2, 2, 3))]]
        if not allocations:
            d = self.pick(open_docs)
            allocations = [(d, self.partial(d.outstanding) if kind == "partial" else d.outstanding)]
        total = sum(a for _, a in allocations)
        methods = ("bank_transfer", "check", "credit_card", "wire", "ach", "cash")
        method = self.pick(methods, (50, 14, 14, 8, 5, 9 if total <= 30_000 else 0))
        check_number = None
        first = allocations[0][0]
        reference: str | None
        if method == "check":
            self.check_number += 1
            check_number = f"{self.check_number:06d}"
            reference = f"Cheque {check_number}"
        elif method == "bank_transfer":
            reference = f"BACS {first.row['vendor_bill_number']}"
        elif method == "wire":
            reference = "SWIFT " + self.token(12).upper()
        elif method == "ach":
            reference = "ACH " + self.digits(10)
        elif method == "credit_card":
            reference = f"Company card ending {self.digits(4)}"
        else:
            reference = None
        self.n_bill_payments += 1
        bp_id = f"bp-{self.tag}-{self.n_bill_payments:05d}"
        self.emit(
            "bill_payments",
            {
                "id": bp_id,
                "business_id": self.bid,
                "vendor_id": first.party,
                "amount_cents": total,
                "currency": self.currency,
                "payment_method": method,
                "payment_date": ts.date(),
                "check_number": check_number,
                "reference": reference,
                "created_at": ts,
                "updated_at": ts,
            },
        )
        for j, (d, amount) in enumerate(allocations, start=1):
            self.emit(
                "bill_payment_allocations",
                {
                    "id": f"bpa-{bp_id[3:]}-{j}",
                    "bill_payment_id": bp_id,
                    "bill_id": d.row["id"],
                    "amount_cents": amount,
                    "updated_at": ts,
                },
            )
            d.outstanding -= amount
            d.paid += amount
            d.last_paid = ts

    def vendor_credit(self, ts: datetime) -> None:
        open_docs = self.open_bills(ts)
        candidates = [v for v in self.vendors if not v.archived and v.row["created_at"] < ts]
        if not candidates:
            return
        vendor: _Vendor
        with_open = [v for v in candidates if any(d.party == v.row["id"] for d in open_docs)]
        if with_open and self.rng.random() < 0.7:
            vendor = self.pick(with_open)
        else:
            vendor = self.pick(candidates)
        self.n_credits += 1
        vc_id = f"vc-{self.tag}-{self.n_credits:04d}"
        lines: list[Row] = []
        for pos in range(1, self.pick((1, 1, 2)) + 1):
            lines.append(
                {
                    "id": f"vcl-{vc_id[3:]}-{pos}",
                    "vendor_credit_id": vc_id,
                    "position": pos,
                    "description": self.pick(_CREDIT_REASONS),
                    "amount_cents": self.rng.randrange(500, 15001),
                    "expense_account_code": "5000",
                    "updated_at": ts,
                }
            )
        total = sum(int(line["amount_cents"]) for line in lines)
        self.emit(
            "vendor_credits",
            {
                "id": vc_id,
                "business_id": self.bid,
                "vendor_id": vendor.row["id"],
                "credit_number": f"CN-{vendor.kind.prefix}-{self.digits(4)}",
                "currency": self.currency,
                "received_at": ts,
                "memo": lines[0]["description"],
                "created_at": ts,
                "updated_at": ts,
            },
        )
        for line in lines:
            self.emit("vendor_credit_lines", line)
        if self.rng.random() < 0.6:
            remaining = total
            mine = [d for d in open_docs if d.party == vendor.row["id"]]
            for j, d in enumerate(mine[:2], start=1):
                amount = min(remaining, d.outstanding)
                if amount <= 0:
                    break
                self.emit(
                    "vendor_credit_allocations",
                    {
                        "id": f"vca-{vc_id[3:]}-{j}",
                        "vendor_credit_id": vc_id,
                        "bill_id": d.row["id"],
                        "amount_cents": amount,
                        "updated_at": ts,
                    },
                )
                d.outstanding -= amount
                remaining -= amount

    # -- late parents ---------------------------------------------------------------------

    def late_parents(self) -> None:
        """Bump one customer, one invoice and one vendor past rows that reference them."""
        # An invoice amended (memo) after a non-card payment, and never refunded.
        refunded = {r.row["invoice_id"] for r in self.refunds}
        candidates = [
            d
            for d in self.invoices
            if not d.voided
            and not d.edited
            and d.last_paid is not None
            and not d.paid_by_card
            and d.row["id"] not in refunded
            and d.last_paid < self.end - timedelta(days=3)
        ]
        if candidates:
            doc = self.pick(candidates)
            assert doc.last_paid is not None
            ts = self.later(doc.last_paid, 24, 72)
            if ts is not None:
                doc.row["memo"] = f"PO {self.digits(5)} (added after payment)"
                doc.edited = True
                self.touch(doc, ts)
        self.bump_party(
            [c.row for c in self.customers if not c.archived],
            [d.row for d in self.invoices],
            "customer_id",
            {"phone": "+447700900" + self.digits(3)},
        )
        self.bump_party(
            [v.row for v in self.vendors if v.row["archived_at"] is None],
            [d.row for d in self.bills],
            "vendor_id",
            {"address": f"Unit {self.rng.randint(1, 30)}, {self.pick(_STREETS)}, {self.city}"},
        )

    def bump_party(
        self, parties: list[Row], docs: list[Row], column: str, change: dict[str, Any]
    ) -> None:
        first_doc: dict[str, datetime] = {}
        for doc in docs:
            first_doc.setdefault(doc[column], doc["updated_at"])
            first_doc[doc[column]] = min(first_doc[doc[column]], doc["updated_at"])
        candidates = [
            p
            for p in parties
            if p["id"] in first_doc and first_doc[p["id"]] < self.end - timedelta(days=4)
        ]
        if not candidates:
            return
        party = self.pick(candidates)
        ts = self.later(first_doc[party["id"]], 24, 72)
        if ts is not None:
            party.update(change)
            party["updated_at"] = ts


def _slug(text: str) -> str:
    cleaned = "".join(ch.lower() if ch.isalnum() else "-" for ch in text.replace("'", ""))
    return "-".join(part for part in cleaned.split("-") if part)


def _eu_vat(country: str, builder: _Builder) -> str:
    if country == "IE":
        return "IE" + builder.digits(7) + builder.pick(tuple(string.ascii_uppercase))
    if country == "NL":
        return "NL" + builder.digits(9) + "B01"
    if country == "FR":
        return "FR" + builder.digits(11)
    return country + builder.digits(9)


# -- public API -------------------------------------------------------------------------------


def generate(config: SeedConfig | None = None) -> Data:
    """All rows of the demo warehouse, keyed by table name (every contract table present)."""
    config = config or SeedConfig()
    out: Data = {name: [] for name in metadata.tables}
    for index in range(config.businesses):
        _Builder(config, index, out).build()
    _check_window(config, out)
    return out


def _check_window(config: SeedConfig, data: Data) -> None:
    start, end = config.window_start, config.window_end
    for name, rows in data.items():
        for row in rows:
            updated = row["updated_at"]
            if not start <= updated < end:
                raise RuntimeError(f"seed bug: {name} {row['id']} updated_at outside the window")
            created = row.get("created_at")
            if created is not None and created > updated:
                raise RuntimeError(f"seed bug: {name} {row['id']} created after updated")


def row_counts(data: Data) -> dict[str, int]:
    return {name: len(rows) for name, rows in data.items()}


def load(engine: Engine, data: Data, *, replace: bool = True) -> dict[str, int]:
    """Create the schema and bulk-insert ``data``; ``replace`` drops the contract tables first."""
    unknown = sorted(set(data) - set(metadata.tables))
    if unknown:
        raise ValueError(f"not contract tables: {', '.join(unknown)}")
    if replace:
        drop_schema(engine)
    create_schema(engine)
    aware = is_postgresql(engine)
    with engine.begin() as conn:
        for table in metadata.tables.values():
            rows = data.get(table.name) or []
            for batch in _batches(rows, 1000):
                conn.execute(table.insert(), [_to_db(row, aware) for row in batch])
    return row_counts({name: data.get(name) or [] for name in metadata.tables})


def _to_db(row: Row, aware: bool) -> Row:
    """UTC datetimes as the engine wants them: aware for timestamptz, naive UTC for SQLite."""
    if aware:
        return row
    return {
        key: value.astimezone(UTC).replace(tzinfo=None)
        if isinstance(value, datetime) and value.tzinfo is not None
        else value
        for key, value in row.items()
    }


def _batches(rows: Sequence[Row], size: int) -> Iterable[Sequence[Row]]:
    for offset in range(0, len(rows), size):
        yield rows[offset : offset + size]


def seed_warehouse(url: str | URL | SecretStr, config: SeedConfig | None = None) -> dict[str, int]:
    """Generate and load the demo warehouse at ``url`` (replacing its contract tables)."""
    engine = create_warehouse_engine(url)
    try:
        return load(engine, generate(config or SeedConfig()), replace=True)
    finally:
        engine.dispose()
