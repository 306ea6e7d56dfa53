"""The ledger's account of a record: why Thred may not hold the warehouse's version of it.

Used only to label a difference (``Cause`` + a sentence); a label never removes a difference.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from thred_pipeline.core.records import Status
from thred_pipeline.ledger import LedgerRow
from thred_pipeline.ledger.codes import LedgerCode
from thred_pipeline.reconcile.findings import Cause


def _ts(value: datetime | None) -> pd.Timestamp | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _reason(row: LedgerRow) -> str:
    code = f"{row.error_code}: " if row.error_code else ""
    return f"{code}{row.error_message or 'no reason recorded'}"


def explain(
    row: LedgerRow | None, version: pd.Timestamp | None, as_of: pd.Timestamp
) -> tuple[Cause, str]:
    """Cause and sentence for a record whose Thred state differs from the warehouse."""
    late = version is not None and not pd.isna(version) and version >= as_of
    if row is None:
        if late:
            return Cause.IN_FLIGHT, f"changed {version:%Y-%m-%d %H:%M} UTC, after the synced window"
        if version is None or pd.isna(version):
            return Cause.UNEXPLAINED, "never synced; its updated_at cannot be read"
        return (
            Cause.UNEXPLAINED,
            f"never synced (updated {version:%Y-%m-%d %H:%M} UTC): "
            "sync or backfill the partition that holds it",
        )
    if row.status is Status.REJECTED:
        return Cause.QUARANTINED, f"quarantined: {_reason(row)}"
    if row.status is Status.DEFERRED:
        return Cause.WAITING, f"deferred: {_reason(row)}"
    if row.status in (Status.PENDING, Status.UNKNOWN):
        return Cause.IN_FLIGHT, f"outcome uncertain ({_reason(row)}); re-sent first next run"
    if row.status is Status.DRIFT:
        return Cause.DRIFT, f"drift: {_reason(row)}"
    if row.error_code == LedgerCode.TERMINAL_WAITING:  # a void/archive waits for dependants
        return Cause.WAITING, _reason(row)
    confirmed = _ts(row.confirmed_updated_at)
    if version is not None and not pd.isna(version) and confirmed != version:
        if late:
            return Cause.IN_FLIGHT, (
                f"changed {version:%Y-%m-%d %H:%M} UTC, after the synced window; "
                "Thred holds the version the ledger confirmed"
            )
        return Cause.UNEXPLAINED, (
            f"the ledger confirmed the version of {confirmed:%Y-%m-%d %H:%M} UTC but the "
            f"warehouse holds {version:%Y-%m-%d %H:%M} UTC, and its window was synced"
            if confirmed is not None
            else "the ledger has no confirmed version"
        )
    return Cause.UNEXPLAINED, "the ledger says Thred confirmed this version"
