"""Recording outcomes: the one place a record's ledger row and the run's counters are written
for anything short of "Thred confirmed it" (see :class:`~thred_pipeline.sync.outcomes.Setback`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from thred_pipeline.core.records import RecordInvalid
from thred_pipeline.ledger import LedgerCode, SyncLedger
from thred_pipeline.sync.outcomes import Confirmation, Outcome, Setback
from thred_pipeline.sync.run import Job
from thred_pipeline.sync.versions import bound_inputs
from thred_pipeline.thred.errors import ThredError

log = logging.getLogger("thred_pipeline.sync")

_WAITING_NAMED = 20  # dependants named in a terminal_waiting message


class Recorder:
    def __init__(self, ledger: SyncLedger, secret: str) -> None:
        self.ledger = ledger
        self._secret = secret

    def record(
        self, job: Job, setback: Setback, *, count: bool = True, safely: bool = False
    ) -> None:
        """Write the setback to the record's ledger row and count it.

        ``safely`` (error paths): if even the ledger write fails, the record is only logged.
        """
        keep = setback.forget_intended or setback.keeps_versions
        try:
            self.ledger.record_outcome(
                **job.identity(),
                status=setback.outcome.ledger_status,
                error_code=setback.code,
                error_message=setback.message,
                error_details=setback.details,
                intended_hash=None if keep else (job.digest or None),
                source_updated_at=None if setback.keeps_versions else job.version,
                thred_id=setback.thred_id,
                forget_intended=setback.forget_intended,
            )
        except Exception as exc:
            if not safely:
                raise
            log.error(
                "%s: the ledger could not record the outcome (%s)", job.name, type(exc).__name__
            )
        if count:
            job.count(setback.outcome, job.sample(**setback.sample))

    def confirmed(self, job: Job, held: Confirmation) -> None:
        """Thred holds ``held``: the row is synced, its error cleared."""
        self.ledger.record_synced(
            entity=job.spec.name,
            source_id=job.source_id,
            thred_id=held.thred_id,
            confirmed_hash=held.digest,
            confirmed_updated_at=held.version,
            terminal_done=held.terminal_done,
            confirmed_body=held.body,
            inputs=self.inputs(job, held.digest),
        )

    @staticmethod
    def inputs(job: Job, confirmed_hash: str) -> tuple[str, int] | None:
        """What the ledger keeps of the record's mapping beside ``confirmed_hash``: only when
        this run's mapping made that very payload (``sync.versions``)."""
        if job.mapped is None or not job.inputs or job.digest != confirmed_hash:
            return None
        return bound_inputs(job.inputs, confirmed_hash), job.mapped.amount_cents

    def paused(self, job: Job) -> None:
        """The business's credentials were refused this run: a record that needs Thred waits."""
        reason = job.state.paused or "paused"
        message = f"business {job.business_id} paused: {reason}"
        setback = Setback(
            Outcome.DEFERRED, LedgerCode.BUSINESS_PAUSED, message, sample={"reason": reason}
        )
        self.record(job, setback)

    def invalid(
        self, job: Job, code: LedgerCode, exc: RecordInvalid, *, safely: bool = False
    ) -> None:
        """Rejected before any request: the message names record and field."""
        sample = {"code": code.value, "field": exc.field_path, "reason": exc.message}
        setback = Setback(
            Outcome.REJECTED,
            code,
            f"{job.name}: {exc.field_path}: {exc.message}",
            details={exc.field_path: [exc.message]},
            sample=sample,
            forget_intended=True,
        )
        self.record(job, setback, safely=safely)

    def internal_error(self, job: Job, exc: Exception) -> None:
        """Quarantine the record with the exception's type: no record stays ``pending``."""
        kind = type(exc).__name__
        text = self.redact(str(exc))[:500]
        reason = f"{kind}: {text}" if text else kind
        log.warning("%s: quarantined after %s", job.name, kind)
        setback = Setback(
            Outcome.REJECTED,
            LedgerCode.INTERNAL_ERROR,
            f"{job.name}: {reason}",
            details={"exception": [reason]},
            sample={"code": LedgerCode.INTERNAL_ERROR.value, "reason": reason},
        )
        self.record(job, setback, safely=True)

    def refused(self, job: Job, thred_id: str | None, exc: ThredError) -> None:
        """Thred refused the request: quarantined with Thred's code and field details."""
        sample = {"code": exc.error_code, "reason": exc.message, "details": exc.details}
        setback = Setback(
            Outcome.REJECTED,
            exc.error_code or LedgerCode.REJECTED,
            f"{job.name}: {exc}",
            details=exc.details,
            sample=sample,
            thred_id=thred_id,
        )
        self.record(job, setback)

    def waiting(
        self, job: Job, thred_id: str, blockers: Sequence[str], *, count: bool = True
    ) -> None:
        """The void/archive waits for the dependants named; the row stays ``synced``."""
        assert job.spec.terminal is not None
        named = ", ".join(blockers[:_WAITING_NAMED])
        more = len(blockers) - _WAITING_NAMED
        message = (
            f"{job.name}: {job.spec.terminal.name} waits until its dependants are in Thred: "
            f"{named}{f' and {more} more' if more > 0 else ''}"
        )
        setback = Setback(
            Outcome.TERMINAL_WAITING,
            LedgerCode.TERMINAL_WAITING,
            message,
            details={"waiting_for": list(blockers[:100])},
            sample={"waiting_for": list(blockers[:_WAITING_NAMED])},
            thred_id=thred_id,
            keeps_versions=True,
        )
        self.record(job, setback, count=count)

    def redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text
