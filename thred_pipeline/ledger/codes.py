"""The ``error_code`` values the pipeline itself writes into the ledger.

Thred's own codes (``validation_error``, ...) are stored as Thred sends them; these are the
local ones, which reconciliation, the status command and the runbook read back.
"""

from __future__ import annotations

from enum import StrEnum


class LedgerCode(StrEnum):
    INVALID_SOURCE_DATA = "invalid_source_data"  # the mapper refused a value (field named)
    DUPLICATE_SOURCE_ID = "duplicate_source_id"  # the warehouse returned one id twice
    UNREADABLE_SOURCE_ROW = "unreadable_source_row"  # the warehouse row could not be read
    INTERNAL_ERROR = "internal_error"  # mapping, keying or sending raised unexpectedly
    UNSENDABLE_REQUEST = "unsendable_request"  # the client could not put the request on the wire
    TERMINAL_WAITING = "terminal_waiting"  # synced; void/archive waits for dependants (named)
    DUPLICATE_UNRESOLVED = "duplicate_external_id_unresolved"  # 409, object not found: unknown
    PARENT_NOT_SYNCED = "parent_not_synced"  # deferred: a referenced record is not in Thred
    BUSINESS_PAUSED = "business_paused"  # deferred: the business's credentials were refused
    TRANSIENT = "transient"  # unknown: a timeout or 5xx
    UNCERTAIN = "uncertain"  # unknown: the request may have landed
    REJECTED = "rejected"  # Thred refused without a code
    DRIFT = "drift"  # changed after sync and Thred cannot apply it
    RETRY_REQUESTED = "retry_requested"  # rejected rows released for retry (quarantine retry)


# Quarantines caused by the warehouse row or by this process: re-sent on change or release,
# never because an upstream record changed.
LOCAL_CODES = frozenset(
    {
        LedgerCode.INVALID_SOURCE_DATA,
        LedgerCode.DUPLICATE_SOURCE_ID,
        LedgerCode.UNREADABLE_SOURCE_ROW,
        LedgerCode.INTERNAL_ERROR,
        LedgerCode.UNSENDABLE_REQUEST,
    }
)
