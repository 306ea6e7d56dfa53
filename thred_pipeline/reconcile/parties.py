"""Open balances per party: each customer's and vendor's balance and aging in Thred against
the warehouse's, and each business's aging total.

A balance difference names the record differences of that party (documents, settlements) that
account for it; only when none does is it unexplained.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from thred_pipeline import entities
from thred_pipeline.entities import Balances
from thred_pipeline.entities.thred_values import Unreadable
from thred_pipeline.reconcile.findings import Cause, Kind, Where, difference, plain, whole

PartyKey = tuple[str, str]  # (business source id, party source id)


def expected_open(
    documents: pd.DataFrame, allocations: pd.DataFrame, side: Balances
) -> pd.DataFrame:
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


def money_entities(side: Balances) -> tuple[str, ...]:
    """The entities whose records carry this side's money: documents and settlements."""
    return (side.document, *(s.entity for s in side.settlements))


class PartyComparison:
    """Each party's open balance in Thred (per measure) against the warehouse's.

    ``parties``: every warehouse party (business_id, source_id) so a party with nothing open
    is still compared; ``thred_values``: (business, party source id) -> measure -> value.
    """

    def __init__(
        self,
        side: Balances,
        expected: pd.DataFrame,
        parties: pd.DataFrame,
        record_differences: pd.DataFrame,
        check: str,
    ) -> None:
        self.side = side
        self.check = check
        self.prefix = entities.get(side.party).external_prefix
        self.want: dict[PartyKey, int | None] = {
            (str(b), str(p)): whole(v)
            for b, p, v in expected[["business_id", "party_id", "expected"]].itertuples(index=False)
        }
        for business_id, party_id in parties[["business_id", "source_id"]].itertuples(index=False):
            self.want.setdefault((business_id, party_id), 0)
        self.explained = _explanations(side, record_differences)
        self.counted: dict[str, int] = {}  # business -> money already at stake in party rows
        self.rows: list[dict[str, Any]] = []

    def run(
        self,
        thred_values: Mapping[PartyKey, dict[str, Any]],
        aging_totals: Mapping[str, Any],
    ) -> list[dict[str, Any]]:
        for key in sorted(set(self.want) | set(thred_values)):
            self._party(key, thred_values.get(key, {}))
        for business_id, total in sorted(aging_totals.items()):
            self._total(business_id, plain(total))
        return self.rows

    def _party(self, key: PartyKey, measures: Mapping[str, Any]) -> None:
        business_id, party_id = key
        expected = self.want.get(key, 0)
        party_money = 0  # two measures of one balance put the same money at stake once
        for measure, value in sorted(measures.items()):
            got = plain(value)
            if got is None:
                got = 0  # absent from the aging report: nothing open
            if isinstance(got, int) and got == expected:
                continue
            readable = not isinstance(got, Unreadable) and expected is not None
            comparable = isinstance(got, int) and expected is not None
            money = abs(got - expected) if comparable else abs(expected or 0)
            money, party_money = max(0, money - party_money), max(money, party_money)
            self.counted[business_id] = self.counted.get(business_id, 0) + money
            cause, why = self.explained.get(
                key, (Cause.UNEXPLAINED, "no record of this party differs: Thred's balance moved")
            )
            where = Where(
                self.check, self.side.party, business_id, party_id, f"{self.prefix}-{party_id}"
            )
            kind = Kind.DIFFERENT if readable else Kind.UNREADABLE
            self.rows.append(
                difference(
                    where,
                    kind,
                    cause,
                    why,
                    field=measure,
                    expected=expected,
                    thred=got,
                    money=money,
                )
            )

    def _total(self, business_id: str, got: Any) -> None:
        """A business's aging total; the parties' rows already put their share at stake."""
        expected = sum((v or 0) for (b, _), v in self.want.items() if b == business_id)
        if isinstance(got, int) and got == expected:
            return
        causes = [c for (b, _), c in self.explained.items() if b == business_id]
        if causes and all(c is not Cause.UNEXPLAINED for c, _ in causes):
            cause, why = causes[0][0], "explained by the parties' differences"
        else:
            cause, why = Cause.UNEXPLAINED, "the aging total differs from the sum of open balances"
        gap = abs(got - expected) if isinstance(got, int) else expected
        kind = Kind.UNREADABLE if isinstance(got, Unreadable) else Kind.DIFFERENT
        self.rows.append(
            difference(
                Where(self.check, self.side.party, business_id),
                kind,
                cause,
                why,
                field="aging total",
                expected=expected,
                thred=got,
                money=max(0, gap - self.counted.get(business_id, 0)),
            )
        )


def _explanations(side: Balances, differences: pd.DataFrame) -> dict[PartyKey, tuple[Cause, str]]:
    """Per party: the record differences (documents, settlements) that account for it."""
    relevant = (
        differences[
            differences["entity"].isin(money_entities(side)) & differences["party_id"].notna()
        ]
        if "party_id" in differences.columns
        else differences.iloc[0:0]
    )
    out: dict[PartyKey, tuple[Cause, str]] = {}
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


def parties_of(frames: Mapping[str, pd.DataFrame], side: Balances) -> dict[tuple[str, str], str]:
    """(entity, source id) -> the party (customer/vendor) the record's money belongs to."""
    out: dict[tuple[str, str], str] = {}
    for entity in money_entities(side):
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
