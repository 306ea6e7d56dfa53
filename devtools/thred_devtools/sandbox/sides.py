"""The two sides of the books: receivables (AR) and payables (AP), as data.

Invoices and bills, customers and vendors, invoice and bill payments are the same machinery
seen from opposite sides of the ledger: a document raises the control account (AR 1200 is
debit-normal, AP 2100 credit-normal), settlements lower it per allocation, and the party's
balance is the control account tagged with the party. ``Side`` names everything that
differs, so documents.py, parties.py, settlements.py and aging.py are written once.
"""

from __future__ import annotations

from dataclasses import dataclass

from thred_devtools.sandbox import rules

__all__ = ["AP", "AR", "Side"]


@dataclass(frozen=True)
class Side:
    doc: str  # document noun, ledger key prefix and source_type
    docs: str  # document collection
    doc_id: str  # ledger tag and allocation field naming the document
    number_field: str  # the document's human number (journal memo)
    date_fields: tuple[str, ...]  # the ledger date: the first of these that is set
    party: str  # party noun
    parties: str  # party collection
    party_id: str  # the document's / ledger tag's party field
    name_required_path: str  # where "Either individual_name or company_name" is reported
    party_active: str
    party_archived: str
    archived_blocks: bool  # a new document for an archived party is refused
    control_account: str
    sign: int  # +1: the control account is debit-normal (AR); -1: credit-normal (AP)
    tax_account: str
    tax_label: str
    line_account_types: tuple[str, ...]
    default_line_account: str
    control_first: bool  # the control line opens the journal entry (AR) or closes it (AP)
    # (index, collection) of everything that settles a document: payments, credits
    settlements: tuple[tuple[str, str], ...]
    status_open: str
    status_partially_paid: str
    status_paid: str
    status_voided: str
    settled_words: str  # "payments" / "payments or credits" (refusal messages)
    settled_below: str  # why a total cannot drop below what is settled
    currency_alias: str | None  # counted when a create names its currency (guides only)

    @property
    def party_title(self) -> str:
        return self.party.capitalize()

    @property
    def party_external_id(self) -> str:
        return f"{self.party}_external_id"


AR = Side(
    doc="invoice",
    docs="invoices",
    doc_id="invoice_id",
    number_field="invoice_number",
    date_fields=("sent_at",),
    party="customer",
    parties="customers",
    party_id="customer_id",
    name_required_path="individual_name",
    party_active=rules.CUSTOMER_ACTIVE,
    party_archived=rules.CUSTOMER_ARCHIVED,
    archived_blocks=rules.ARCHIVED_CUSTOMER_BLOCKS_INVOICES,
    control_account=rules.ACC_AR,
    sign=1,
    tax_account=rules.ACC_VAT_PAYABLE,
    tax_label="VAT",
    line_account_types=rules.INVOICE_LINE_ACCOUNT_TYPES,
    default_line_account=rules.DEFAULT_INVOICE_LINE_ACCOUNT,
    control_first=True,
    settlements=(("payments_by_invoice", "invoice_payments"),),
    status_open=rules.INVOICE_SENT,
    status_partially_paid=rules.INVOICE_PARTIALLY_PAID,
    status_paid=rules.INVOICE_PAID,
    status_voided=rules.INVOICE_VOIDED,
    settled_words="payments",
    settled_below="already paid on this invoice.",
    currency_alias="invoice.currency",
)

AP = Side(
    doc="bill",
    docs="bills",
    doc_id="bill_id",
    number_field="bill_number",
    date_fields=("bill_date", "received_at"),
    party="vendor",
    parties="vendors",
    party_id="vendor_id",
    name_required_path="company_name",
    party_active=rules.VENDOR_ACTIVE,
    party_archived=rules.VENDOR_ARCHIVED,
    archived_blocks=rules.ARCHIVED_VENDOR_BLOCKS_BILLS,
    control_account=rules.ACC_AP,
    sign=-1,
    tax_account=rules.ACC_VAT_RECOVERABLE,
    tax_label="Input VAT",
    line_account_types=rules.BILL_LINE_ACCOUNT_TYPES,
    default_line_account=rules.DEFAULT_BILL_LINE_ACCOUNT,
    control_first=False,
    settlements=(
        ("bill_payments_by_bill", "bill_payments"),
        ("vendor_credits_by_bill", "vendor_credits"),
    ),
    status_open=rules.BILL_RECEIVED,
    status_partially_paid=rules.BILL_PARTIALLY_PAID,
    status_paid=rules.BILL_PAID,
    status_voided=rules.BILL_VOIDED,
    settled_words="payments or credits",
    settled_below="already paid or credited.",
    currency_alias=None,
)
