"""Warehouse frames against Thred frames: every difference, with its record, business and money.

Two comparisons: per record (``compare_records``: each warehouse record in Thred with the same
documented values; nothing in Thred the warehouse does not have) and per party
(``compare_parties``: each customer's and vendor's open balance and aging, and each business's
aging total). The ledger labels each difference (``explain``), nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from thred_pipeline.core.records import Status
from thred_pipeline.ledger import LedgerRow
from thred_pipeline.reconcile.explain import explain
from thred_pipeline.reconcile.findings import Cause, Kind
from thred_pipeline.reconcile.thred_side import Unreadable


@dataclass(frozen=True)
class Compared:
    column: str
    money: bool = True  # a difference puts |thred - expected| at stake


@dataclass(frozen=True)
class RecordRule:
    """What reconciliation compares for one entity (all of it documented on Thred's side)."""

    entity: str
    label: str
    external_prefix: str
    headline: str | None  # the record's money: at stake when it is missing or extra
    columns: tuple[Compared, ...]
    # column -> a warehouse value Thred cannot take (no documented endpoint): noted, counted
    # and named in the check's summary, not a difference in the books
    warehouse_only: Mapping[str, Any] | None = None


def _flag(column: str) -> Compared:
    return Compared(column, money=False)


RULES: dict[str, RecordRule] = {
    rule.entity: rule
    for rule in (
        RecordRule(
            "businesses",
            "business",
            "business",
            None,
            (_flag("active"), _flag("base_currency")),
        ),
        RecordRule("customers", "customer", "customer", None, (_flag("archived"),)),
        # Thred documents no vendor archive (only unarchive): archived stays warehouse-only.
        RecordRule("vendors", "vendor", "vendor", None, (_flag("archived"),), {"archived": True}),
        RecordRule(
            "invoices",
            "invoice",
            "invoice",
            "total_cents",  # not in Thred's documented invoice shape: compared via AR
            (_flag("customer_id"), _flag("voided")),
        ),
        RecordRule(
            "invoice_payments",
            "invoice payment",
            "payment",
            "total_cents",
            (
                _flag("customer_id"),
                Compared("total_cents"),
                Compared("allocated_cents"),
                Compared("unallocated_cents"),
                Compared("fee_cents"),
            ),
        ),
        RecordRule(
            "refunds",
            "refund",
            "refund",
            "amount_cents",
            (_flag("invoice_id"), Compared("amount_cents")),
        ),
        RecordRule(
            "refund_payments",
            "refund payment",
            "refund-payment",
            "amount_cents",
            (_flag("refund_id"), Compared("amount_cents")),
        ),
        RecordRule(
            "payouts",
            "payout",
            "payout",
            "paid_out_amount_cents",
            (
                Compared("paid_out_amount_cents"),
                Compared("fee_cents"),
                Compared("gross_payments_amount_cents"),
                Compared("total_refunds_amount_cents"),
                Compared("expected_net_amount_cents"),
                Compared("amount_variance_cents"),
                _flag("payment_count"),
                _flag("refund_payment_count"),
            ),
        ),
        RecordRule(
            "bills", "bill", "bill", "total_cents", (_flag("vendor_id"), Compared("total_cents"))
        ),
        RecordRule(
            "bill_payments",
            "bill payment",
            "bill-payment",
            "amount_cents",
            (
                _flag("vendor_id"),
                Compared("amount_cents"),
                Compared("allocated_cents"),
                Compared("unallocated_cents"),
            ),
        ),
        RecordRule(
            "vendor_credits",
            "vendor credit",
            "vendor-credit",
            "total_cents",
            (_flag("vendor_id"), Compared("total_cents"), Compared("applied_cents")),
        ),
    )
}


def _plain(value: Any) -> Any:
    """Frame cells as plain Python values (``pd.NA``/NaN -> None, numpy ints -> int)."""
    if isinstance(value, Unreadable):
        return value
    if value is None or (not isinstance(value, str | bool) and pd.isna(value)):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def _int(value: Any) -> int | None:
    value = _plain(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _shown(value: Any) -> Any:
    value = _plain(value)
    return repr(value) if isinstance(value, Unreadable) else value


class RecordComparison:
    """One entity: the warehouse frame, Thred's items and the ledger, compared once."""

    def __init__(
        self,
        rule: RecordRule,
        expected: pd.DataFrame,
        thred: pd.DataFrame,
        ledger: Mapping[str, LedgerRow],
        as_of: pd.Timestamp,
        check: str,
    ) -> None:
        self.rule = rule
        self.expected = expected
        self.thred = thred
        self.ledger = ledger
        self.as_of = as_of
        self.check = check
        self.rows: list[dict[str, Any]] = []
        self.matched = 0
        self.warehouse_only: dict[str, list[str]] = {}  # column -> source ids

    def _add(
        self,
        kind: Kind,
        business_id: str,
        source_id: str | None,
        *,
        thred_id: str | None = None,
        external_id: str | None = None,
        field: str | None = None,
        expected: Any = None,
        thred: Any = None,
        money: int = 0,
        cause: Cause,
        explanation: str,
    ) -> None:
        if external_id is None and source_id is not None:
            external_id = f"{self.rule.external_prefix}-{source_id}"
        self.rows.append(
            {
                "check": self.check,
                "entity": self.rule.entity,
                "business_id": business_id,
                "source_id": source_id,
                "external_id": external_id,
                "thred_id": thred_id,
                "kind": kind.value,
                "field": field,
                "expected": _shown(expected),
                "thred": _shown(thred),
                "money_cents": abs(money),
                "cause": cause.value,
                "explanation": explanation,
            }
        )

    def run(self, *, all_extras: bool = True) -> list[dict[str, Any]]:
        """Compare; ``all_extras=False`` (a window) reports only duplicates of its records."""
        rule = self.rule
        ours = set(self.expected["source_id"])
        our_external = {f"{rule.external_prefix}-{s}" for s in ours}
        self._extras(ours, our_external, all_extras)
        found = self.thred[self.thred["source_id"].isin(ours)]
        merged = self.expected.merge(
            found, on="source_id", how="left", suffixes=("", "_thred"), indicator=True
        )
        for row in merged.to_dict("records"):
            if row["_merge"] == "left_only":
                self._missing(row)
            else:
                self.matched += 1
                self._fields(row)
        return self.rows

    def _extras(self, ours: set[str], our_external: set[str], all_extras: bool) -> None:
        rule = self.rule
        for row in self.thred.to_dict("records"):
            source_id = row["source_id"]
            if source_id in ours:
                continue
            headline = _int(row.get(rule.headline)) if rule.headline else None
            external = row.get("external_id")
            if source_id is None and external in our_external:
                kind, why = (
                    Kind.DUPLICATE,
                    (
                        f"a second {rule.label} under our external_id; the ledger holds another "
                        "Thred id for it"
                    ),
                )
            elif not all_extras:
                continue
            elif source_id is None:
                kind, why = Kind.EXTRA, f"a {rule.label} in Thred that this pipeline never created"
            else:
                kind, why = (
                    Kind.EXTRA,
                    (
                        f"synced from warehouse record {source_id}, which is no longer in the "
                        "warehouse (or its business is inactive)"
                    ),
                )
            self._add(
                kind,
                row["business_id"],
                source_id,
                thred_id=row["thred_id"],
                external_id=external,
                thred=headline,
                money=headline or 0,
                cause=Cause.UNEXPLAINED,
                explanation=why,
            )

    def _missing(self, row: dict[str, Any]) -> None:
        ledger_row = self.ledger.get(row["source_id"])
        cause, why = explain(ledger_row, row["version"], self.as_of)
        if (
            ledger_row is not None
            and ledger_row.status is Status.SYNCED
            and cause is (Cause.UNEXPLAINED)
        ):
            why = f"the ledger says Thred holds it (Thred id {ledger_row.thred_id}); Thred does not"
        headline = _int(row.get(self.rule.headline)) if self.rule.headline else None
        self._add(
            Kind.MISSING,
            row["business_id"],
            row["source_id"],
            thred_id=ledger_row.thred_id if ledger_row else None,
            field=self.rule.headline,
            expected=headline,
            money=headline or 0,
            cause=cause,
            explanation=why,
        )

    def _fields(self, row: dict[str, Any]) -> None:
        rule = self.rule
        record_money = 0  # fields of one record restate the same money: count it once
        for compared in rule.columns:
            want = _plain(row[compared.column])
            got = _plain(row.get(f"{compared.column}_thred"))
            if isinstance(got, Unreadable):
                kind = Kind.UNREADABLE
            elif want is None:
                kind = Kind.UNREADABLE  # the warehouse value itself cannot be read
            elif got == want:
                continue
            else:
                kind = Kind.DIFFERENT
            money = 0
            if compared.money:
                w, g = _int(want), _int(got)
                money = abs(g - w) if w is not None and g is not None else (w or 0)
                money, record_money = max(0, money - record_money), max(money, record_money)
            unreachable = (rule.warehouse_only or {}).get(compared.column)
            if unreachable is not None and want == unreachable and kind is Kind.DIFFERENT:
                self.warehouse_only.setdefault(compared.column, []).append(row["source_id"])
                continue
            ledger_row = self.ledger.get(row["source_id"])
            cause, why = explain(ledger_row, row["version"], self.as_of)
            if kind is Kind.UNREADABLE and want is None:
                why = f"the warehouse value cannot be read; {why}"
            elif cause is Cause.UNEXPLAINED:
                why = "Thred's value differs from the version the ledger says it confirmed"
            self._add(
                kind,
                row["business_id"],
                row["source_id"],
                thred_id=_plain(row.get("thred_id")),
                field=compared.column,
                expected=want,
                thred=got,
                money=money,
                cause=cause,
                explanation=why,
            )


# --- party balances --------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """AR or AP: the party, its documents and the settlements that reduce what is open."""

    name: str  # "ar" / "ap"
    party: str
    party_column: str
    document: str
    settlements: tuple[str, ...]


AR = Side("ar", "customers", "customer_id", "invoices", ("invoice_payments",))
AP = Side("ap", "vendors", "vendor_id", "bills", ("bill_payments", "vendor_credits"))


def expected_open(documents: pd.DataFrame, allocations: pd.DataFrame, side: Side) -> pd.DataFrame:
    """Open balance per party: document totals (not voided) minus allocated settlements."""
    docs = documents
    if "voided" in docs.columns:
        docs = docs[~docs["voided"]]
    owed = docs.groupby(["business_id", side.party_column])["total_cents"].sum(min_count=1)
    owner = documents.set_index("source_id")[["business_id", side.party_column]]
    settled = allocations.join(owner, on="document_id", how="inner")
    paid = settled.groupby(["business_id", side.party_column])["amount_cents"].sum(min_count=1)
    balance = owed.sub(paid, fill_value=0)
    frame = balance.rename("expected").reset_index()
    return frame.rename(columns={side.party_column: "party_id"})


def compare_parties(
    side: Side,
    expected: pd.DataFrame,
    parties: pd.DataFrame,
    thred_values: Mapping[tuple[str, str], dict[str, Any]],
    aging_totals: Mapping[str, Any],
    record_differences: pd.DataFrame,
    check: str,
) -> list[dict[str, Any]]:
    """Each party's open balance in Thred (per measure) against the warehouse's.

    ``parties``: every warehouse party (business_id, source_id) so a party with nothing open
    is still compared; ``thred_values``: (business, party source id) -> measure -> value.
    """
    want: dict[tuple[str, str], int | None] = {
        (str(b), str(p)): _int(v)
        for b, p, v in expected[["business_id", "party_id", "expected"]].itertuples(index=False)
    }
    for business_id, party_id in parties[["business_id", "source_id"]].itertuples(index=False):
        want.setdefault((business_id, party_id), 0)
    rows: list[dict[str, Any]] = []
    keys = set(want) | set(thred_values)
    explained = _explanations(side, record_differences)
    counted: dict[str, int] = {}  # business -> money already at stake in its party rows
    for business_id, party_id in sorted(keys):
        expected_cents = want.get((business_id, party_id), 0)
        party_money = 0  # two measures of one balance put the same money at stake once
        for measure, got in sorted(thred_values.get((business_id, party_id), {}).items()):
            got_value = _plain(got)
            if got_value is None:
                got_value = 0  # absent from the aging report: nothing open
            if isinstance(got_value, int) and got_value == expected_cents:
                continue
            kind = Kind.UNREADABLE if isinstance(got_value, Unreadable) else Kind.DIFFERENT
            if expected_cents is None:
                kind = Kind.UNREADABLE
            money = (
                abs(got_value - expected_cents)
                if isinstance(got_value, int) and expected_cents is not None
                else abs(expected_cents or 0)
            )
            money, party_money = max(0, money - party_money), max(money, party_money)
            counted[business_id] = counted.get(business_id, 0) + money
            cause, why = explained.get(
                (business_id, party_id),
                (Cause.UNEXPLAINED, "no record of this party differs: Thred's balance moved"),
            )
            rows.append(
                _party_row(
                    check,
                    side,
                    business_id,
                    party_id,
                    measure,
                    expected_cents,
                    got_value,
                    money,
                    kind,
                    cause,
                    why,
                )
            )
    for business_id, total in sorted(aging_totals.items()):
        expected_total = sum((v or 0) for (b, _), v in want.items() if b == business_id)
        got_total = _plain(total)
        if isinstance(got_total, int) and got_total == expected_total:
            continue
        business_causes = [c for (b, _), c in explained.items() if b == business_id]
        cause, why = (
            (business_causes[0][0], "explained by the parties' differences")
            if business_causes and all(c is not Cause.UNEXPLAINED for c, _ in business_causes)
            else (Cause.UNEXPLAINED, "the aging total differs from the sum of open balances")
        )
        rows.append(
            _party_row(
                check,
                side,
                business_id,
                None,
                "aging total",
                expected_total,
                got_total,
                # the parties' rows already put their share of this total at stake
                max(
                    0,
                    (
                        abs(got_total - expected_total)
                        if isinstance(got_total, int)
                        else expected_total
                    )
                    - counted.get(business_id, 0),
                ),
                Kind.UNREADABLE if isinstance(got_total, Unreadable) else Kind.DIFFERENT,
                cause,
                why,
            )
        )
    return rows


def _party_row(
    check: str,
    side: Side,
    business_id: str,
    party_id: str | None,
    measure: str,
    expected: Any,
    thred: Any,
    money: int,
    kind: Kind,
    cause: Cause,
    why: str,
) -> dict[str, Any]:
    prefix = RULES[side.party].external_prefix
    return {
        "check": check,
        "entity": side.party,
        "business_id": business_id,
        "source_id": party_id,
        "external_id": f"{prefix}-{party_id}" if party_id else None,
        "thred_id": None,
        "kind": kind.value,
        "field": measure,
        "expected": _shown(expected),
        "thred": _shown(thred),
        "money_cents": abs(money),
        "cause": cause.value,
        "explanation": why,
    }


def _explanations(
    side: Side, differences: pd.DataFrame
) -> dict[tuple[str, str], tuple[Cause, str]]:
    """Per party: the record differences (documents, settlements) that account for it."""
    relevant = (
        differences[
            differences["entity"].isin((side.document, *side.settlements))
            & differences["party_id"].notna()
        ]
        if "party_id" in differences.columns
        else differences.iloc[0:0]
    )
    out: dict[tuple[str, str], tuple[Cause, str]] = {}
    for (business_id, party_id), group in relevant.groupby(["business_id", "party_id"]):
        causes = [Cause(c) for c in group["cause"]]
        cause = Cause.UNEXPLAINED if Cause.UNEXPLAINED in causes else causes[0]
        named = [
            f"{e} {s} ({c}: {x})"
            for e, s, c, x in group[["entity", "source_id", "cause", "explanation"]]
            .head(5)
            .itertuples(index=False)
        ]
        more = f" and {len(group) - 5} more" if len(group) > 5 else ""
        out[(str(business_id), str(party_id))] = (cause, "; ".join(named) + more)
    return out


def parties_of(frames: Mapping[str, pd.DataFrame], side: Side) -> dict[tuple[str, str], str]:
    """(entity, source id) -> the party (customer/vendor) the record's money belongs to."""
    out: dict[tuple[str, str], str] = {}
    for entity in (side.document, *side.settlements):
        frame = frames.get(entity)
        if frame is None or side.party_column not in frame.columns:
            continue
        for source_id, party in frame[["source_id", side.party_column]].itertuples(index=False):
            out[(entity, str(source_id))] = str(party)
    return out


def with_parties(
    differences: pd.DataFrame, owners: Iterable[Mapping[tuple[str, str], str]]
) -> pd.DataFrame:
    """Add ``party_id`` to record differences, so party balances can name what explains them."""
    lookup: dict[tuple[str, str], str] = {}
    for mapping in owners:
        lookup.update(mapping)
    frame = differences.copy()
    frame["party_id"] = [
        lookup.get((e, str(s))) for e, s in zip(frame["entity"], frame["source_id"], strict=True)
    ]
    return frame
