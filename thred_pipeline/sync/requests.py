"""One request to Thred for one record: any failure is recorded, and ``None`` returned."""

from __future__ import annotations

from typing import Any

from thred_pipeline.entities import EntitySpec
from thred_pipeline.ledger import LedgerCode, LedgerRow, SyncLedger
from thred_pipeline.sync.outcomes import Confirmation, Outcome, Setback
from thred_pipeline.sync.recorder import Recorder
from thred_pipeline.sync.run import Job
from thred_pipeline.thred import errors
from thred_pipeline.thred.client import ThredResponse
from thred_pipeline.thred.paths import business_resource


class Requests:
    def __init__(self, ledger: SyncLedger, recorder: Recorder) -> None:
        self.ledger = ledger
        self.recorder = recorder

    @staticmethod
    def path(job: Job, template: str, params: dict[str, str]) -> str:
        """The spec's path template, under the record's business unless partner-scoped."""
        relative = template.format(**params)
        if job.spec.partner_scoped:
            return relative
        assert job.state.thred_id is not None
        return business_resource(job.state.thred_id, relative)

    async def call(
        self,
        job: Job,
        method: str,
        path: str,
        body: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        thred_id: str | None = None,
        duplicates_raise: bool = False,
        keep_if_refused: LedgerRow | None = None,
    ) -> ThredResponse | None:
        """One request; any failure is written to the ledger and ``None`` returned.

        ``duplicates_raise``: a 409 ``duplicate_external_id`` is raised for the caller to
        adopt the object. ``keep_if_refused``: the ledger row of a record Thred already holds
        at exactly this payload; a refusal (not transient, not auth) leaves it synced.
        """
        business = None if job.spec.partner_scoped else job.state.thred_id
        try:
            return await job.client.request(
                method, path, business_id=business, json=body, idempotency_key=idempotency_key
            )
        except errors.ThredDuplicateExternalId as exc:
            if duplicates_raise:
                raise
            self.recorder.refused(job, thred_id, exc)
        except errors.ThredError as exc:
            self._failed(job, exc, thred_id, keep_if_refused)
        return None

    def _failed(
        self,
        job: Job,
        exc: errors.ThredError,
        thred_id: str | None,
        keep_if_refused: LedgerRow | None,
    ) -> None:
        if isinstance(exc, errors.ThredAuthError):
            job.state.paused = f"auth refused ({exc.status}, {exc.error_code})"
            sample = {"reason": job.state.paused}
            setback = Setback(
                Outcome.DEFERRED,
                LedgerCode.BUSINESS_PAUSED,
                str(exc),
                sample=sample,
                thred_id=thred_id,
            )
            self.recorder.record(job, setback)
        elif isinstance(exc, errors.ThredTransientError):
            code = exc.error_code or (
                LedgerCode.UNCERTAIN if exc.outcome_uncertain else LedgerCode.TRANSIENT
            )
            sample = {"reason": str(exc)}
            setback = Setback(Outcome.UNKNOWN, code, str(exc), sample=sample, thred_id=thred_id)
            self.recorder.record(job, setback)
        elif keep_if_refused is not None and keep_if_refused.thred_id is not None:
            # Thred holds this very payload (the ledger confirmed it) and refuses to take it
            # again (a payout reconciled in Thred): nothing to change, nothing invented.
            self._restore(job, keep_if_refused)
            job.count(Outcome.UNCHANGED, job.sample(reason=f"re-send refused: {exc}"))
        else:
            self.recorder.refused(job, thred_id, exc)

    def _restore(self, job: Job, prior: LedgerRow) -> None:
        assert prior.thred_id is not None and prior.confirmed_hash is not None
        kept = Confirmation(
            prior.thred_id, prior.confirmed_hash, job.version, prior.terminal_done, None
        )
        self.recorder.confirmed(job, kept)


def response_thred_id(spec: EntitySpec, response: ThredResponse) -> str:
    """The created object's Thred id (some creates wrap the object in ``response_key``)."""
    body = response.body if isinstance(response.body, dict) else {}
    if spec.response_key and isinstance(body.get(spec.response_key), dict):
        body = body[spec.response_key]
    value = body.get("id")
    if not value:
        raise errors.ThredError(f"{spec.label} response has no id", status=response.status_code)
    return str(value)
