"""The warehouse read as text, for the expected side of reconciliation.

Never the ledger or the payloads we sent: a mapper bug, a lost write or a record refused for
bad data must all show as a difference. Every value is read as text (or NULL), so no driver can
refuse a row (a pre-year-1 timestamp, an infinite number); turning text into expected values
is defensive — one unreadable value makes that record's money unknown (``pd.NA``), it never
stops the comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, String, Table, cast, select

from thred_pipeline.core.money import line_net_cents

if TYPE_CHECKING:
    import pandas as pd

TRUE_TEXT = frozenset({"1", "true", "t", "yes", "y"})


def is_true(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in TRUE_TEXT
    return bool(value) if value is not None else False


def timestamps(values: pd.Series) -> pd.Series:
    """Text timestamps (read as text so a pre-year-1 or infinite value cannot crash) as UTC."""
    import pandas as pd  # here, not at import: `sync` never needs it

    return pd.to_datetime(values, utc=True, errors="coerce", format="mixed")


def cents(values: pd.Series) -> pd.Series:
    """Whole numbers as nullable integers; text, fractions and blanks become ``pd.NA``."""
    import pandas as pd  # here, not at import: `sync` never needs it

    numbers = pd.to_numeric(values, errors="coerce")
    whole = numbers.where(numbers.notna() & (numbers == numbers.round()))
    return whole.astype("Int64")


def lookup(ids: pd.Series, per_record: pd.Series) -> pd.Series:
    """Each id's value; 0 where the id has no rows at all, ``pd.NA`` where they are unreadable."""
    values = ids.map(per_record)
    return cents(values.where(ids.isin(per_record.index), 0))


class TextReads:
    """One reconciliation's reads of the warehouse, each table and column set read once."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._raw: dict[str, pd.DataFrame] = {}

    def read(self, table: Table, columns: Iterable[str]) -> pd.DataFrame:
        """Columns of a table, every value as text (or NULL), so no driver can refuse a row."""
        import pandas as pd  # here, not at import: `sync` never needs it

        columns = tuple(columns)
        key = f"{table.name}:{','.join(columns)}"
        if key not in self._raw:
            rows = self._fetch(table, columns)
            self._raw[key] = pd.DataFrame(rows, columns=list(columns), dtype=object)
        return self._raw[key]

    def _fetch(self, table: Table, columns: tuple[str, ...]) -> Sequence[Any]:
        """Every row of ``read``, as text; a narrower reader (one window's records) overrides it."""
        query = select(*(cast(table.c[c], String).label(c) for c in columns))
        with self.engine.connect() as conn:
            return conn.execute(query).all()

    def records(self, table: Table, *columns: str) -> pd.DataFrame:
        """A record table as ``source_id``, ``business_id``, ``updated_at`` and ``columns``."""
        raw = self.read(table, ("id", "business_id", "updated_at", *columns))
        frame = raw.rename(columns={"id": "source_id"}).copy()
        frame["source_id"] = frame["source_id"].astype(str)
        frame["business_id"] = frame["business_id"].astype(str)
        return frame

    def sum_by(self, table: Table, parent: str, amount: str = "amount_cents") -> pd.Series:
        """Per parent id, the sum of a child table's amounts; unknown if any one is unreadable."""
        rows = self.read(table, (parent, amount))
        amounts = cents(rows[amount])
        return (
            amounts.groupby(rows[parent].astype(str))
            .sum(min_count=1)
            .where(amounts.notna().groupby(rows[parent].astype(str)).all())
        )

    def document_totals(
        self, lines: Table, parent: str, discount: str | None
    ) -> dict[str, int | None]:
        """Each document's total from its lines: rounded net plus stated tax, per line."""
        columns = [parent, "quantity", "unit_price_cents", "tax_amount_cents"]
        if discount:
            columns.append(discount)
        totals: dict[str, int | None] = {}
        for row in self.read(lines, columns).itertuples(index=False):
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


# One entity's expected records from the warehouse: ``source_id``, ``business_id``,
# ``updated_at`` and a column per compared measure (the business root also ``active``).
WarehouseValues = Callable[[TextReads], "pd.DataFrame"]
