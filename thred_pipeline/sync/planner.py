"""The pure half of a sync: what to do with one record, decided from what is known about it.

:func:`plan_record` turns the facts about a mapped record — its ledger row, the digest of the
payload it maps to, its warehouse version, whether a void/archive is wanted and what blocks it,
whether its business is paused — and the entity's declared behaviour (:class:`Rule`) into a
:class:`Plan`: steps run in order until one does not complete. What Thred answers to a create
is planned again by :func:`plan_confirm` (a new object, a replay of one Thred already holds, an
upsert). No HTTP, no database, no asyncio here: the executor carries plans out.

The rules, in words:

- a record quarantined at exactly this payload is not sent again (it would be refused again),
  unless an upstream record changed since Thred refused it;
- a record Thred holds (the ledger has its Thred id and a confirmed payload) is never created
  again: a change is applied (PUT/PATCH/upsert) or flagged as drift, measured against what
  Thred confirmed; an update whose outcome was not heard is re-sent (updates are idempotent);
- a void/archive is made once no dependant waits to be sent, else it waits (named);
- a full refresh re-sends every create (creates are idempotent) and re-asserts updatable
  records, never inventing drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from thred_pipeline.core.records import Status
from thred_pipeline.entities import ChangePolicy
from thred_pipeline.ledger.rows import RETRY_FIRST, LedgerRow
from thred_pipeline.sync.outcomes import Outcome
from thred_pipeline.sync.versions import bound_inputs

# Stand-ins for confirmed_hash that match no payload, so the next pass re-applies the change.
REPLAYED = "replayed"  # full refresh: re-apply the warehouse's version over Thred's
IN_DOUBT = "in-doubt"  # an update may or may not have landed

# Past tense of each terminal call the entities declare, for ledger messages.
PAST_TENSE = {"void": "voided", "archive": "archived"}


@dataclass(frozen=True)
class Rule:
    """What the entity declares about changes and lifecycle (from its ``EntitySpec``)."""

    label: str
    change_policy: ChangePolicy
    terminal: str | None = None  # "void", "archive"

    @property
    def terminal_past(self) -> str:
        """The terminal call in the past tense, as ledger messages name it ("voided")."""
        return PAST_TENSE.get(self.terminal or "", self.terminal or "")


@dataclass(frozen=True)
class Facts:
    """What is known about one mapped record when its plan is made."""

    prior: LedgerRow | None
    digest: str  # of the payload the record maps to
    version: datetime  # its warehouse version
    wants_terminal: bool = False  # the warehouse says voided/archived
    blockers: tuple[str, ...] = ()  # dependants a void/archive would wait for
    paused: bool = False  # the business's credentials were refused this run
    resend: bool = False  # refused earlier; an upstream record changed since
    full_refresh: bool = False


# --- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Create:
    """POST the create (written ahead). ``keep_if_refused``: Thred already confirmed exactly
    this payload, so a refusal of the re-send leaves the record synced."""

    keep_if_refused: bool = False


@dataclass(frozen=True)
class Update:
    """Apply the change to the object Thred holds, with the entity's change policy."""

    thred_id: str
    policy: ChangePolicy
    count_as: Outcome = Outcome.UPDATED  # UNCHANGED when a full refresh re-asserts it


@dataclass(frozen=True)
class Terminal:
    """Void/archive the object now."""

    thred_id: str
    name: str


@dataclass(frozen=True)
class WaitForDependants:
    """Leave the void/archive waiting (``terminal_waiting``) for the dependants named."""

    thred_id: str
    blockers: tuple[str, ...]


@dataclass(frozen=True)
class Defer:
    """The business is paused: the record waits for a run that can send it."""


@dataclass(frozen=True)
class Drift:
    """The warehouse changed something Thred cannot apply: flag it."""

    thred_id: str | None
    reason: str


@dataclass(frozen=True)
class Keep:
    """Thred holds the warehouse's version: nothing to send (``touch`` the ledger's version)."""

    touch: bool


@dataclass(frozen=True)
class Skip:
    """Count the record as its ledger row says, without a request (quarantine, as recorded)."""

    outcome: Outcome
    code: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Confirm:
    """Record that Thred holds this payload as ``thred_id`` (after a create answered)."""

    thred_id: str
    terminal_done: bool
    count_as: Outcome


@dataclass(frozen=True)
class Replay:
    """A create was answered with an object Thred held already, whose content may differ:
    record what Thred holds, then plan the change against it (:func:`plan_change`)."""

    thred_id: str
    confirmed_hash: str
    confirmed_updated_at: datetime
    keep_body: bool  # the confirmed payload is kept to explain drift
    released_from: Status
    reasserting: str | None
    terminal_done: bool


Action = (
    Create | Update | Terminal | WaitForDependants | Defer | Drift | Keep | Skip | Confirm | Replay
)


@dataclass(frozen=True)
class Plan:
    """Steps run in order until one does not complete; ``released`` counts the record as
    released from deferral once all have; ``resend_intent`` writes the intent first (a
    refused record re-sent after upstream progress: its refusal's time moves either way)."""

    steps: tuple[Action, ...]
    released: bool = False
    resend_intent: bool = False


# --- planning --------------------------------------------------------------------------------


def writes_ahead(plan: Plan) -> bool:
    """The plan's first request needs an intent (a create or an update; a refused record
    re-sent), so the record's intent is written with its chunk's, before any request."""
    return plan.resend_intent or any(isinstance(step, Create | Update) for step in plan.steps)


def sends(plan: Plan) -> bool:
    """The plan may make a request; one that does not is carried out without waiting."""
    return any(isinstance(step, Create | Update | Terminal | Replay) for step in plan.steps)


def plan_record(facts: Facts, rule: Rule) -> Plan:
    """The plan for a mapped record (see the module docstring for the rules)."""
    prior = facts.prior
    resend_intent = facts.resend and prior is not None and prior.status is Status.REJECTED
    if prior is not None and not facts.full_refresh:
        if (
            prior.status is Status.REJECTED
            and prior.intended_hash == facts.digest
            and not facts.resend
        ):
            return Plan((Skip(Outcome.REJECTED, prior.error_code, prior.error_message),))
        if prior.thred_id and prior.confirmed_hash:
            plan = plan_change(facts, rule)
            return replace(plan, resend_intent=True) if resend_intent else plan
    if facts.paused:
        return Plan((Defer(),), resend_intent=resend_intent)
    return Plan((Create(keep_if_refused=_held_same(facts)),), resend_intent=resend_intent)


def plan_change(
    facts: Facts,
    rule: Rule,
    *,
    released_from: Status | None = None,
    reasserting: str | None = None,
) -> Plan:
    """Bring a record Thred holds up to date, or flag what cannot be applied.

    ``reasserting`` (full refresh): the hash Thred confirmed before a replay; an update of that
    very payload counts as ``unchanged``.
    """
    prior = facts.prior
    assert prior is not None and prior.thred_id is not None
    released = (released_from or prior.status) is Status.DEFERRED
    changed = facts.digest != prior.confirmed_hash or update_in_doubt(prior)
    terminal_pending = facts.wants_terminal and not prior.terminal_done
    if not changed and not terminal_pending:
        if not facts.wants_terminal and prior.terminal_done:
            reason = f"{rule.label} was {rule.terminal_past} in Thred and cannot be reopened"
            return Plan((Drift(prior.thred_id, reason),))
        touch = prior.status is not Status.SYNCED or prior.confirmed_updated_at != facts.version
        return Plan((Keep(touch),), released=released)
    steps: list[Action] = []
    if changed:
        if prior.terminal_done or rule.change_policy is ChangePolicy.DRIFT:
            reason = (
                f"{rule.label} is {rule.terminal_past} in Thred; it cannot change"
                if prior.terminal_done and rule.terminal
                else f"Thred has no update for a created {rule.label}"
            )
            return Plan((Drift(prior.thred_id, reason),))
        if facts.paused:
            return Plan((Defer(),))
        same = reasserting is not None and reasserting == facts.digest
        count_as = Outcome.UNCHANGED if same else Outcome.UPDATED
        steps.append(Update(prior.thred_id, rule.change_policy, count_as))
    if terminal_pending:
        steps.append(terminal_step(facts, rule, prior.thred_id))
    return Plan(tuple(steps), released=released)


def plan_confirm(facts: Facts, rule: Rule, thred_id: str, *, created: bool, applied: bool) -> Plan:
    """What a create's answer means: a new object, or one Thred already held.

    ``applied`` is False when the object was adopted after a 409 (Thred applied nothing); a
    payout's 200 is an upsert that applied this payload.
    """
    prior = facts.prior
    released = prior is not None and prior.status is Status.DEFERRED
    if not created:
        # A replay: Thred holds whatever the first successful attempt sent. If that may differ
        # from this payload, bring it up to date now (or flag it as drift).
        held = held_by_thred(prior)
        stale = held is not None and held.digest != facts.digest
        kept = prior is not None and prior.thred_id == thred_id and prior.terminal_done
        if rule.change_policy is ChangePolicy.UPSERT and applied:
            count_as = Outcome.UPDATED if stale else Outcome.UNCHANGED
            return Plan((Confirm(thred_id, kept, count_as),), released=released)
        reapply = (
            facts.full_refresh
            and rule.change_policy in (ChangePolicy.PUT, ChangePolicy.PATCH)
            and prior is not None
            and not prior.terminal_done
        )
        if prior is not None and (stale or reapply):
            replay = Replay(
                thred_id=thred_id,
                confirmed_hash=held.digest if stale and held else REPLAYED,
                confirmed_updated_at=(held.updated_at if held else None) or facts.version,
                keep_body=bool(prior.confirmed_hash),
                released_from=prior.status,
                reasserting=None if stale else prior.confirmed_hash,
                terminal_done=prior.terminal_done,
            )
            return Plan((replay,))
    # Confirm the object before any lifecycle call, so a failed void/archive keeps it.
    terminal_done = prior is not None and prior.thred_id == thred_id and prior.terminal_done
    steps: list[Action] = [
        Confirm(thred_id, terminal_done, Outcome.CREATED if created else Outcome.UNCHANGED)
    ]
    if facts.wants_terminal and not terminal_done:
        steps.append(terminal_step(facts, rule, thred_id))
    return Plan(tuple(steps), released=released)


def terminal_step(facts: Facts, rule: Rule, thred_id: str) -> Action:
    """Void/archive now, or wait for the dependants it would block, or for the business."""
    assert rule.terminal is not None
    if facts.blockers:
        return WaitForDependants(thred_id, facts.blockers)
    if facts.paused:
        return Defer()
    return Terminal(thred_id, rule.terminal)


def settled_by_inputs(
    prior: LedgerRow | None,
    inputs: str,
    version: datetime,
    *,
    wants_terminal: bool,
    resend: bool = False,
    full_refresh: bool = False,
) -> bool:
    """The record would map to the payload Thred confirmed at this very version (its inputs
    digest, bound to that payload's hash, is the one the ledger keeps: ``versions``), so
    :func:`plan_record` would only keep it (``Keep(touch=False)``): no need to map it."""
    return (
        prior is not None
        and not (resend or full_refresh)
        and prior.status is Status.SYNCED
        and prior.error_code is None
        and prior.thred_id is not None
        and prior.confirmed_hash is not None
        and prior.inputs_hash is not None
        and prior.inputs_hash == bound_inputs(inputs, prior.confirmed_hash)
        and prior.confirmed_updated_at == version
        and prior.terminal_done == wants_terminal
    )


def plan_paused(prior: LedgerRow | None, version: datetime) -> Plan:
    """The business was paused before Thred's reference data could be read, so no payload
    can be built: a record whose warehouse version has not moved is counted as recorded
    (synced stays synced, a quarantine stays), any other waits."""
    if prior is not None and prior.source_updated_at == version:
        if prior.status is Status.SYNCED and prior.confirmed_updated_at == version:
            return Plan((Skip(Outcome.UNCHANGED),))
        if prior.status in (Status.REJECTED, Status.DRIFT):
            outcome = Outcome(prior.status.value)
            return Plan((Skip(outcome, prior.error_code, prior.error_message),))
    return Plan((Defer(),))


# --- what the ledger row says ------------------------------------------------------------------


@dataclass(frozen=True)
class Held:
    """The payload version Thred holds after an earlier attempt, as far as the ledger knows."""

    digest: str  # or IN_DOUBT
    updated_at: datetime | None  # the warehouse version of that payload


def update_in_doubt(prior: LedgerRow) -> bool:
    """An update was attempted after the last confirmation and its outcome is unknown."""
    return (
        prior.status in RETRY_FIRST
        and prior.intended_hash is not None
        and prior.intended_hash != prior.confirmed_hash
    )


def held_by_thred(prior: LedgerRow | None) -> Held | None:
    """What a replayed create tells us Thred holds, or None when there is nothing to go on."""
    if prior is None:
        return None
    if prior.confirmed_hash:
        if update_in_doubt(prior):  # the confirmed version, or the update: re-send it
            return Held(IN_DOUBT, prior.confirmed_updated_at)
        return Held(prior.confirmed_hash, prior.confirmed_updated_at)
    if prior.intended_hash:  # a create whose outcome was not heard: that payload landed
        return Held(prior.intended_hash, prior.source_updated_at)
    return None


def _held_same(facts: Facts) -> bool:
    """Thred already confirmed exactly this payload (a full refresh re-sends it anyway)."""
    prior = facts.prior
    return (
        prior is not None
        and prior.thred_id is not None
        and prior.confirmed_hash == facts.digest
        and not update_in_doubt(prior)
    )


def waiting_to_be_sent(row: LedgerRow | None, version: datetime | None) -> bool:
    """A dependant Thred does not hold at its warehouse version yet, and that will be sent.

    Quarantined ones (rejected, drift) wait for a human, not for a send.
    """
    if row is None:
        return True
    if row.status in (Status.PENDING, Status.UNKNOWN, Status.DEFERRED):
        return True
    if row.status is Status.SYNCED:
        return version is None or row.confirmed_updated_at != version
    return False


def choose_adoptee(
    candidates: Sequence[str], own: str | None, taken: set[str], label: str
) -> tuple[str | None, str]:
    """After a 409, which listed object matching our content is ours: (Thred id, "") or
    (None, why not). One we already hold wins; else the single one no ledger row owns."""
    if own is not None and own in candidates:
        return own, ""
    free = [c for c in candidates if c not in taken]
    if len(free) == 1:
        return free[0], ""
    if not free:
        return None, f"no listed {label} without a ledger record matches its content"
    return None, (
        f"{len(free)} listed {label}s match its content "
        f"({', '.join(free[:5])}); cannot tell which is ours"
    )
