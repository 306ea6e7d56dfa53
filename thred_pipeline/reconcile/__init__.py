"""Reconciliation: Thred's books against the warehouse's, record by record and party by party.

The expected side comes from warehouse rows alone, the actual side from Thred's documented
fields; the sync ledger only explains differences. See docs/reliability.md.
"""

from thred_pipeline.reconcile.findings import Cause, CheckReport, Kind, SeverityPolicy
from thred_pipeline.reconcile.reconciler import BooksReconciler, WindowReconciler
from thred_pipeline.reconcile.report import BooksReport
from thred_pipeline.reconcile.window_read import ReadMode

__all__ = [
    "BooksReconciler",
    "BooksReport",
    "Cause",
    "CheckReport",
    "Kind",
    "ReadMode",
    "SeverityPolicy",
    "WindowReconciler",
]
