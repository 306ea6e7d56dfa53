"""The planner without HTTP or a database: each rule as a row of a table, and properties over
arbitrary ledger rows (hypothesis)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thred_pipeline.core.records import Status
from thred_pipeline.entities import ChangePolicy
from thred_pipeline.ledger import LedgerRow
from thred_pipeline.sync.outcomes import Outcome
from thred_pipeline.sync.planner import (
    IN_DOUBT,
    REPLAYED,
    Confirm,
    Create,
    Defer,
    Drift,
    Facts,
    Held,
    Keep,
    Plan,
    Replay,
    Rule,
    Skip,
    Terminal,
    Update,
    WaitForDependants,
    choose_adoptee,
    held_by_thred,
    plan_change,
    plan_confirm,
    plan_paused,
    plan_record,
    settled_by_inputs,
    waiting_to_be_sent,
)
from thred_pipeline.sync.versions import bound_inputs

V1 = datetime(2026, 9, 1, 10, tzinfo=UTC)
V2 = V1 + timedelta(hours=1)
INVOICE = Rule("invoice", ChangePolicy.PUT, terminal="void")
PAYMENT = Rule("invoice payment", ChangePolicy.DRIFT)
PAYOUT = Rule("payout", ChangePolicy.UPSERT)
CUSTOMER = Rule("customer", ChangePolicy.PATCH, terminal="archive")


def row(status: Status = Status.SYNCED, **kw: Any) -> LedgerRow:
    """A ledger row of an invoice Thred holds as t-1 at payload h1, warehouse version V1."""
    fields: dict[str, Any] = {
        "entity": "invoices",
        "source_id": "inv-1",
        "business_id": "biz-1",
        "external_id": "invoice-inv-1",
        "thred_id": "t-1",
        "status": status,
        "intended_hash": "h1",
        "confirmed_hash": "h1",
        "terminal_done": False,
        "source_updated_at": V1,
        "confirmed_updated_at": V1,
        "attempts": 0,
        "error_code": None,
        "error_message": None,
        "error_details": None,
        "first_seen_at": V1,
        "status_since": V1,
        "synced_at": V1,
    }
    fields.update(kw)
    return LedgerRow(**fields)


NEVER_SENT = {"thred_id": None, "confirmed_hash": None, "confirmed_updated_at": None}
REFUSED = {**NEVER_SENT, "error_code": "validation_error", "error_message": "total: too big"}


def facts(prior: LedgerRow | None, digest: str = "h1", **kw: Any) -> Facts:
    return Facts(prior=prior, digest=digest, version=kw.pop("version", V1), **kw)


RECORD_CASES: list[tuple[str, Facts, Rule, Plan]] = [
    ("new record: create", facts(None), INVOICE, Plan((Create(),))),
    ("new record, business paused: wait", facts(None, paused=True), INVOICE, Plan((Defer(),))),
    (
        "refused at this payload: not sent again",
        facts(row(Status.REJECTED, **REFUSED)),
        INVOICE,
        Plan((Skip(Outcome.REJECTED, "validation_error", "total: too big"),)),
    ),
    (
        "refused, upstream changed since: re-sent, intent first",
        facts(row(Status.REJECTED, **REFUSED), resend=True),
        INVOICE,
        Plan((Create(),), resend_intent=True),
    ),
    (
        "refused, payload changed: re-sent",
        facts(row(Status.REJECTED, **REFUSED), digest="h2"),
        INVOICE,
        Plan((Create(),)),
    ),
    (
        "refused update of an object Thred holds, upstream changed: the update again",
        facts(row(Status.REJECTED, intended_hash="h2"), digest="h2", resend=True),
        INVOICE,
        Plan((Update("t-1", ChangePolicy.PUT),), resend_intent=True),
    ),
    ("held, same payload and version", facts(row()), INVOICE, Plan((Keep(touch=False),))),
    (
        "held, re-saved without a change: note the version",
        facts(row(), version=V2),
        INVOICE,
        Plan((Keep(touch=True),)),
    ),
    (
        "held, deferred while paused, unchanged: released",
        facts(row(Status.DEFERRED)),
        INVOICE,
        Plan((Keep(touch=True),), released=True),
    ),
    (
        "held, changed, PUT: update",
        facts(row(), digest="h2"),
        INVOICE,
        Plan((Update("t-1", ChangePolicy.PUT),)),
    ),
    (
        "held, changed, no documented update: drift",
        facts(row(), digest="h2"),
        PAYMENT,
        Plan((Drift("t-1", "Thred has no update for a created invoice payment"),)),
    ),
    (
        "voided in Thred, changed since: drift",
        facts(row(terminal_done=True), digest="h2", wants_terminal=True),
        INVOICE,
        Plan((Drift("t-1", "invoice is voided in Thred; it cannot change"),)),
    ),
    (
        "voided in Thred, un-voided in the warehouse: drift",
        facts(row(terminal_done=True)),
        INVOICE,
        Plan((Drift("t-1", "invoice was voided in Thred and cannot be reopened"),)),
    ),
    (
        "archived in Thred, changed since: drift named in the past tense",
        facts(row(terminal_done=True), digest="h2", wants_terminal=True),
        CUSTOMER,
        Plan((Drift("t-1", "customer is archived in Thred; it cannot change"),)),
    ),
    (
        "archived in Thred, unarchived in the warehouse: drift",
        facts(row(terminal_done=True)),
        CUSTOMER,
        Plan((Drift("t-1", "customer was archived in Thred and cannot be reopened"),)),
    ),
    (
        "voided in the warehouse: void",
        facts(row(), wants_terminal=True),
        INVOICE,
        Plan((Terminal("t-1", "void"),)),
    ),
    (
        "voided in the warehouse, a payment still to send: wait",
        facts(row(), wants_terminal=True, blockers=("invoice payment p-1",)),
        INVOICE,
        Plan((WaitForDependants("t-1", ("invoice payment p-1",)),)),
    ),
    (
        "voided in the warehouse, business paused: wait for the business",
        facts(row(), wants_terminal=True, paused=True),
        INVOICE,
        Plan((Defer(),)),
    ),
    (
        "changed and voided: update, then void",
        facts(row(), digest="h2", wants_terminal=True),
        INVOICE,
        Plan((Update("t-1", ChangePolicy.PUT), Terminal("t-1", "void"))),
    ),
    (
        "changed, business paused: wait",
        facts(row(), digest="h2", paused=True),
        INVOICE,
        Plan((Defer(),)),
    ),
    (
        "an update whose outcome was not heard: re-sent, though the payload is the confirmed one",
        facts(row(Status.UNKNOWN, intended_hash="h2")),
        INVOICE,
        Plan((Update("t-1", ChangePolicy.PUT),)),
    ),
    (
        "changed payout: the upsert",
        facts(row(entity="payouts"), digest="h2"),
        PAYOUT,
        Plan((Update("t-1", ChangePolicy.UPSERT),)),
    ),
    (
        "full refresh of a record Thred holds at this payload: re-sent, kept if refused",
        facts(row(), full_refresh=True),
        INVOICE,
        Plan((Create(keep_if_refused=True),)),
    ),
    (
        "full refresh while an update is in doubt: re-sent, not kept",
        facts(row(Status.UNKNOWN, intended_hash="h2"), full_refresh=True),
        INVOICE,
        Plan((Create(),)),
    ),
    (
        "full refresh of a refused record: re-sent",
        facts(row(Status.REJECTED, **REFUSED), full_refresh=True),
        INVOICE,
        Plan((Create(),)),
    ),
]


@pytest.mark.parametrize(
    ("given_facts", "rule", "expected"),
    [case[1:] for case in RECORD_CASES],
    ids=[case[0] for case in RECORD_CASES],
)
def test_plan_record(given_facts: Facts, rule: Rule, expected: Plan) -> None:
    assert plan_record(given_facts, rule) == expected


CONFIRM_CASES: list[tuple[str, Facts, Rule, bool, bool, Plan]] = [
    ("created", facts(None), INVOICE, True, True, Plan((Confirm("t-1", False, Outcome.CREATED),))),
    (
        "created voided: confirm, then void",
        facts(None, wants_terminal=True),
        INVOICE,
        True,
        True,
        Plan((Confirm("t-1", False, Outcome.CREATED), Terminal("t-1", "void"))),
    ),
    (
        "created voided, a dependant to send: confirm, then wait",
        facts(None, wants_terminal=True, blockers=("refund r-1",)),
        INVOICE,
        True,
        True,
        Plan((Confirm("t-1", False, Outcome.CREATED), WaitForDependants("t-1", ("refund r-1",)))),
    ),
    (
        "replayed, nothing known: Thred holds this payload",
        facts(None),
        INVOICE,
        False,
        True,
        Plan((Confirm("t-1", False, Outcome.UNCHANGED),)),
    ),
    (
        "replay of the create whose answer was lost",
        facts(row(Status.PENDING, **NEVER_SENT)),
        INVOICE,
        False,
        True,
        Plan((Confirm("t-1", False, Outcome.UNCHANGED),)),
    ),
    (
        "replay of an earlier, different payload: record it, then apply the change",
        facts(row(Status.PENDING, **{**NEVER_SENT, "intended_hash": "h0"}), digest="h2"),
        INVOICE,
        False,
        True,
        Plan((Replay("t-1", "h0", V1, False, Status.PENDING, None, False),)),
    ),
    (
        "deferred record created: released",
        facts(row(Status.DEFERRED, **NEVER_SENT)),
        INVOICE,
        True,
        True,
        Plan((Confirm("t-1", False, Outcome.CREATED),), released=True),
    ),
    (
        "upsert applied a changed payout",
        facts(row(Status.UNKNOWN, intended_hash="h2"), digest="h2"),
        PAYOUT,
        False,
        True,
        Plan((Confirm("t-1", False, Outcome.UPDATED),)),
    ),
    (
        "upsert of the same payout",
        facts(row()),
        PAYOUT,
        False,
        True,
        Plan((Confirm("t-1", False, Outcome.UNCHANGED),)),
    ),
    (
        "payout adopted after a 409: nothing applied, so a change is replayed",
        facts(row(), digest="h2"),
        PAYOUT,
        False,
        False,
        Plan((Replay("t-1", "h1", V1, True, Status.SYNCED, None, False),)),
    ),
    (
        "full refresh of an updatable record: re-asserted with one update",
        facts(row(), full_refresh=True),
        INVOICE,
        False,
        True,
        Plan((Replay("t-1", REPLAYED, V1, True, Status.SYNCED, "h1", False),)),
    ),
    (
        "full refresh of a voided invoice: stays voided and synced",
        facts(row(terminal_done=True), full_refresh=True, wants_terminal=True),
        INVOICE,
        False,
        True,
        Plan((Confirm("t-1", True, Outcome.UNCHANGED),)),
    ),
    (
        "a different object than the ledger's: its void is not assumed",
        facts(row(terminal_done=True, thred_id="t-0"), wants_terminal=True),
        INVOICE,
        True,
        True,
        Plan((Confirm("t-1", False, Outcome.CREATED), Terminal("t-1", "void"))),
    ),
]


@pytest.mark.parametrize(
    ("given_facts", "rule", "created", "applied", "expected"),
    [case[1:] for case in CONFIRM_CASES],
    ids=[case[0] for case in CONFIRM_CASES],
)
def test_plan_confirm(
    given_facts: Facts, rule: Rule, created: bool, applied: bool, expected: Plan
) -> None:
    assert plan_confirm(given_facts, rule, "t-1", created=created, applied=applied) == expected


def test_a_replayed_change_is_planned_against_what_thred_holds() -> None:
    replayed = row(confirmed_hash=REPLAYED)
    assert plan_change(facts(replayed), INVOICE, reasserting="h1") == Plan(
        (Update("t-1", ChangePolicy.PUT, Outcome.UNCHANGED),)
    )
    assert plan_change(
        facts(replayed, digest="h2"), INVOICE, released_from=Status.DEFERRED, reasserting="h1"
    ) == Plan((Update("t-1", ChangePolicy.PUT, Outcome.UPDATED),), released=True)


@pytest.mark.parametrize(
    ("prior", "expected"),
    [
        (None, Plan((Defer(),))),
        (row(), Plan((Skip(Outcome.UNCHANGED),))),
        (
            row(Status.REJECTED, **REFUSED, source_updated_at=V1),
            Plan((Skip(Outcome.REJECTED, "validation_error", "total: too big"),)),
        ),
        (
            row(Status.DRIFT, error_code="drift", error_message="m"),
            Plan((Skip(Outcome.DRIFT, "drift", "m"),)),
        ),
        (row(source_updated_at=V2), Plan((Defer(),))),  # changed since: it needs Thred
        (row(Status.DEFERRED), Plan((Defer(),))),
        (row(confirmed_updated_at=V2, source_updated_at=V1), Plan((Defer(),))),
    ],
)
def test_plan_paused(prior: LedgerRow | None, expected: Plan) -> None:
    assert plan_paused(prior, V1) == expected


@pytest.mark.parametrize(
    ("prior", "expected"),
    [
        (None, None),
        (row(), Held("h1", V1)),
        (row(Status.UNKNOWN, intended_hash="h2"), Held(IN_DOUBT, V1)),
        (row(Status.PENDING, **{**NEVER_SENT, "intended_hash": "h0"}), Held("h0", V1)),
        (row(Status.REJECTED, **{**NEVER_SENT, "intended_hash": None}), None),
    ],
)
def test_held_by_thred(prior: LedgerRow | None, expected: Held | None) -> None:
    assert held_by_thred(prior) == expected


@pytest.mark.parametrize(
    ("dependant", "version", "waits"),
    [
        (None, V1, True),  # never seen
        (row(Status.PENDING), V1, True),
        (row(Status.UNKNOWN), V1, True),
        (row(Status.DEFERRED), V1, True),
        (row(), V1, False),
        (row(), V2, True),  # changed since Thred confirmed it
        (row(), None, True),  # unreadable now
        (row(Status.REJECTED), V1, False),  # waits for a human
        (row(Status.DRIFT), V1, False),
    ],
)
def test_waiting_to_be_sent(
    dependant: LedgerRow | None, version: datetime | None, waits: bool
) -> None:
    assert waiting_to_be_sent(dependant, version) is waits


@pytest.mark.parametrize(
    ("candidates", "own", "taken", "expected"),
    [
        (["t-1"], None, set(), ("t-1", "")),
        (["t-1", "t-2"], "t-2", {"t-2"}, ("t-2", "")),  # ours already
        (["t-1", "t-2"], None, {"t-1"}, ("t-2", "")),  # the other is another record's
        ([], None, set(), (None, "no listed refund without a ledger record matches its content")),
        (
            ["t-1"],
            None,
            {"t-1"},
            (None, "no listed refund without a ledger record matches its content"),
        ),
        (
            ["t-1", "t-2"],
            None,
            set(),
            (None, "2 listed refunds match its content (t-1, t-2); cannot tell which is ours"),
        ),
    ],
)
def test_choose_adoptee(
    candidates: list[str], own: str | None, taken: set[str], expected: tuple[str | None, str]
) -> None:
    assert choose_adoptee(candidates, own, taken, "refund") == expected


# --- properties over arbitrary rows ------------------------------------------------------------

HASHES = st.sampled_from(["h1", "h2", None])
rows = st.builds(
    row,
    status=st.sampled_from(list(Status)),
    thred_id=st.sampled_from(["t-1", None]),
    intended_hash=HASHES,
    confirmed_hash=HASHES,
    terminal_done=st.booleans(),
    source_updated_at=st.sampled_from([V1, V2, None]),
    confirmed_updated_at=st.sampled_from([V1, V2, None]),
)
any_facts = st.builds(
    Facts,
    prior=st.one_of(st.none(), rows),
    digest=st.sampled_from(["h1", "h2"]),
    version=st.sampled_from([V1, V2]),
    wants_terminal=st.booleans(),
    blockers=st.sampled_from([(), ("invoice payment p-1",)]),
    paused=st.booleans(),
    resend=st.booleans(),
    full_refresh=st.booleans(),
)
rules = st.sampled_from([INVOICE, PAYMENT, PAYOUT, Rule("business", ChangePolicy.PATCH)])
SENDS = (Create, Update, Terminal)
ENDS = (Defer, Drift, Skip, Create, Replay)  # steps after which nothing is planned


def _consistent(f: Facts, rule: Rule) -> Facts:
    """Only entities with a void/archive can want one."""
    return f if rule.terminal else replace(f, wants_terminal=False, blockers=())


@given(any_facts, rules)
def test_what_thred_holds_is_never_created_again(f: Facts, rule: Rule) -> None:
    f = _consistent(f, rule)
    plan = plan_record(f, rule)
    held = f.prior is not None and f.prior.thred_id and f.prior.confirmed_hash
    if held and not f.full_refresh:
        assert not any(isinstance(s, Create) for s in plan.steps)


@given(any_facts, rules)
def test_a_paused_business_sends_nothing(f: Facts, rule: Rule) -> None:
    plan = plan_record(_consistent(f, rule), rule)
    if f.paused:
        assert not any(isinstance(s, SENDS) for s in plan.steps)


@given(any_facts, rules)
def test_a_blocked_terminal_waits(f: Facts, rule: Rule) -> None:
    f = _consistent(f, rule)
    plan = plan_record(f, rule)
    if f.blockers or not f.wants_terminal:
        assert not any(isinstance(s, Terminal) for s in plan.steps)


@given(any_facts, rules)
def test_plans_are_well_formed(f: Facts, rule: Rule) -> None:
    f = _consistent(f, rule)
    plan = plan_record(f, rule)
    assert plan.steps
    assert all(not isinstance(s, ENDS) for s in plan.steps[:-1])
    if plan.released:
        assert f.prior is not None and f.prior.status is Status.DEFERRED
    if plan.resend_intent:
        assert f.resend and f.prior is not None and f.prior.status is Status.REJECTED
    if rule.change_policy is ChangePolicy.DRIFT:
        assert not any(isinstance(s, Update) for s in plan.steps)


@given(any_facts, rules, st.booleans(), st.booleans())
def test_a_create_answer_is_always_confirmed_or_replayed(
    f: Facts, rule: Rule, created: bool, applied: bool
) -> None:
    f = _consistent(f, rule)
    plan = plan_confirm(f, rule, "t-1", created=created, applied=applied)
    first = plan.steps[0]
    assert isinstance(first, Confirm | Replay)
    if created:
        assert first == Confirm("t-1", first.terminal_done, Outcome.CREATED)


# Facts about records Thred holds, where a settled record is likely (``any_facts`` rarely is).
held_facts = st.builds(
    Facts,
    prior=st.builds(
        row,
        status=st.just(Status.SYNCED),
        confirmed_hash=st.sampled_from(["h1", "h2"]),
        terminal_done=st.booleans(),
        confirmed_updated_at=st.sampled_from([V1, V2]),
    ),
    digest=st.sampled_from(["h1", "h2"]),
    version=st.sampled_from([V1, V2]),
    wants_terminal=st.booleans(),
    blockers=st.sampled_from([(), ("invoice payment p-1",)]),
    paused=st.booleans(),
    resend=st.booleans(),
    full_refresh=st.booleans(),
)


@settings(max_examples=500)
@given(st.one_of(any_facts, held_facts), rules)
def test_a_record_settled_by_its_inputs_is_one_the_planner_would_only_keep(
    f: Facts, rule: Rule
) -> None:
    """Skipping the mapper (``settled_by_inputs``) is never a decision the planner would not
    make: inputs bound to the confirmed hash mean the record maps to that very payload."""
    f = _consistent(f, rule)
    prior = f.prior
    if prior is not None:
        prior = replace(prior, inputs_hash=bound_inputs("in-1", prior.confirmed_hash or ""))
    settled = settled_by_inputs(
        prior,
        "in-1",
        f.version,
        wants_terminal=f.wants_terminal,
        resend=f.resend,
        full_refresh=f.full_refresh,
    )
    if settled:
        assert prior is not None and prior.confirmed_hash is not None
        # What mapping would have found: these inputs make the confirmed payload.
        plan = plan_record(replace(f, prior=prior, digest=prior.confirmed_hash), rule)
        assert plan == Plan((Keep(touch=False),))


def test_settled_by_inputs_needs_every_fact() -> None:
    good = row(Status.SYNCED, inputs_hash=bound_inputs("in-1", "h1"))
    assert settled_by_inputs(good, "in-1", V1, wants_terminal=False)
    assert not settled_by_inputs(good, "in-2", V1, wants_terminal=False)  # inputs moved
    assert not settled_by_inputs(good, "in-1", V2, wants_terminal=False)  # version moved
    assert not settled_by_inputs(good, "in-1", V1, wants_terminal=True)  # void wanted
    assert not settled_by_inputs(good, "in-1", V1, wants_terminal=False, resend=True)
    assert not settled_by_inputs(good, "in-1", V1, wants_terminal=False, full_refresh=True)
    assert not settled_by_inputs(None, "in-1", V1, wants_terminal=False)
    for changes in (
        {"status": Status.UNKNOWN},
        {"status": Status.REJECTED},
        {"error_code": "archived_in_warehouse_only"},
        {"confirmed_hash": "h2"},  # confirmed since by a path that did not map
        {"inputs_hash": None},  # an older ledger row
        {"thred_id": None},
    ):
        assert not settled_by_inputs(replace(good, **changes), "in-1", V1, wants_terminal=False)
