"""Businesses, tax codes and customers."""

from __future__ import annotations

import uuid

import httpx
import pytest

from .conftest import Api, Biz, stats


def test_create_business_then_replay(api: Api, http: httpx.Client):
    ext = f"biz-{uuid.uuid4().hex}"
    r1 = api.create_business(external_id=ext)
    assert r1.status_code == 201
    body = r1.json()
    assert body["_meta"]["created"] is True
    assert body["name"] == body["legal_name"] == "Acme Ltd"
    assert body["base_currency"] == "GBP" and body["accounting_method"] == "accrual"
    r2 = api.create_business(external_id=ext, legal_name="Changed")
    assert r2.status_code == 200
    assert r2.json()["_meta"]["created"] is False
    assert r2.json()["id"] == body["id"] and r2.json()["legal_name"] == "Acme Ltd"
    listed = http.get(
        "/v1/platform/businesses/", params={"external_id": ext}, headers=api.partner_headers
    ).json()
    assert listed["count"] == 1
    assert stats(http)["duplicate_external_ids"] == 0


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"entity_type": "gmbh"}, "entity_type"),
        ({"base_currency": "JPY"}, "base_currency"),
        ({"base_currency": None, "currency": "XXX"}, "currency"),
        ({"email": "not-an-email"}, "email"),
        ({"legal_name": ""}, "legal_name"),
        ({"legal_name": "x" * 256}, "legal_name"),
        ({"external_id": "x" * 256}, "external_id"),
        ({"country": "US"}, "country"),
        ({"vat_number": "1" * 21}, "vat_number"),
        ({"accounting_method": "hybrid"}, "accounting_method"),
        ({"fiscal_year_end": "31/12/2025"}, "fiscal_year_end"),
    ],
)
def test_create_business_validation(api: Api, fields, path):
    r = api.create_business(**fields)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error_code"] == "validation_error"
    assert path in body["details"], body


def test_entity_type_error_mentions_valid_options(api: Api):
    r = api.create_business(entity_type="gmbh")
    body = r.json()
    assert (
        "Valid options: limited, sole_trader, llp, partnership, plc"
        in body["details"]["entity_type"][0]
    )
    assert body["detail"] == body["details"]["entity_type"][0]  # the entity-types page's shape


def test_currency_alias_and_defaults(api: Api):
    r = api.create_business(base_currency=None, currency="EUR", country="NL", entity_type="bv")
    assert r.status_code == 201 and r.json()["base_currency"] == "EUR"
    r = api.create_business(base_currency=None, country="SE", entity_type="ab")  # SE: free text
    assert r.status_code == 201 and r.json()["base_currency"] == "SEK"
    r = api.create_business(base_currency="GBP", currency="EUR")
    assert r.status_code == 400


def test_patch_business(api: Api, http: httpx.Client):
    biz = api.new_business()
    url = f"/v1/platform/businesses/{biz.id}/"
    r = http.patch(
        url,
        json={"legal_name": "Renamed", "entity_type": "plc", "metadata": {"a": 1}},
        headers=api.partner_headers,
    )
    assert r.status_code == 200
    assert r.json()["legal_name"] == "Renamed" and r.json()["entity_type"] == "plc"
    r = http.patch(url, json={"entity_type": "gmbh"}, headers=api.partner_headers)
    assert r.status_code == 400 and "entity_type" in r.json()["details"]
    r = http.patch(url, json={"country": "DE"}, headers=api.partner_headers)
    assert r.status_code == 400 and "country" in r.json()["details"]
    r = http.patch(url, json={"country": "GB", "base_currency": "GBP"}, headers=api.partner_headers)
    assert r.status_code == 200  # unchanged values are fine
    r = http.patch(url, json={"base_currency": "EUR"}, headers=api.partner_headers)
    assert r.status_code == 400
    # the business token may read and patch its own business
    assert biz.get("").json()["legal_name"] == "Renamed"
    assert biz.patch("", {"phone_number": "+441234"}).status_code == 200


def test_list_businesses_filters(api: Api, http: httpx.Client):
    api.new_business(country="DE", entity_type="gmbh", base_currency="EUR")
    r = http.get(
        "/v1/platform/businesses/",
        params={"country": "DE", "page_size": 100},
        headers=api.partner_headers,
    )
    assert r.status_code == 200
    assert r.json()["count"] >= 1
    assert all(b["country"] == "DE" for b in r.json()["results"])


def test_tax_codes_gb(biz: Biz):
    r = biz.get("tax-codes/")
    assert r.status_code == 200
    body = r.json()
    assert body["business_id"] == biz.id and body["count"] == len(body["tax_codes"])
    codes = {c["code"]: c for c in body["tax_codes"]}
    assert codes["VAT_20"]["rate"] == "0.20" and codes["VAT_20"]["is_active"] is True
    assert codes["VAT_5"]["rate"] == "0.05"
    assert codes["ZERO_RATED"]["rate"] == "0.00" and codes["EXEMPT"]["rate"] == "0.00"
    assert codes["VAT_17_5"]["rate"] == "0.175" and codes["VAT_17_5"]["is_active"] is False
    assert {"name", "purchase_account", "sales_account", "effective_from"} <= set(codes["VAT_20"])


def test_tax_codes_other_countries(api: Api):
    nl = api.new_business(country="NL", entity_type="bv", base_currency="EUR")
    assert "BTW_21" in {c["code"] for c in nl.get("tax-codes/").json()["tax_codes"]}
    fr = api.new_business(country="FR", entity_type="sas", base_currency="EUR")
    assert "EXEMPT" in {c["code"] for c in fr.get("tax-codes/").json()["tax_codes"]}


# ---------------------------------------------------------------- customers


def test_customer_create_replay_and_fields(biz: Biz, http: httpx.Client):
    r1 = biz.post(
        "customers/",
        {"external_id": "c-1", "individual_name": "Jo Bloggs", "email": "jo@x.example"},
    )
    assert r1.status_code == 201
    c = r1.json()
    assert c["display_name"] == "Jo Bloggs" and c["outstanding_balance"] == 0
    assert c["status"] == "active" and c["is_archived"] is False and c["type"] == "Customer"
    r2 = biz.post("customers/", {"external_id": "c-1", "individual_name": "Someone Else"})
    assert (
        r2.status_code == 200
        and r2.json()["id"] == c["id"]
        and r2.json()["display_name"] == "Jo Bloggs"
    )
    assert biz.get("customers/", params={"external_id": "c-1"}).json()["count"] == 1
    assert biz.get(f"customers/{c['id']}/").json()["id"] == c["id"]
    company = biz.customer(company_name="Big Co", individual_name="Contact")
    assert company["display_name"] == "Big Co"
    assert stats(http)["objects"][biz.id]["customers"] == 2


def test_customer_name_alias_and_validation(biz: Biz):
    r = biz.post("customers/", {"name": "Guide Style"})
    assert r.status_code == 201 and r.json()["display_name"] == "Guide Style"
    for body, path in [
        ({}, "individual_name"),
        ({"company_name": "x", "email": "bad"}, "email"),
        ({"company_name": "x", "tax_exempt": "yes"}, "tax_exempt"),
        ({"company_name": "x", "credit_limit_cents": 0}, "credit_limit_cents"),
        ({"company_name": "x", "external_id": ""}, "external_id"),
        ({"company_name": "x" * 256}, "company_name"),
    ]:
        r = biz.post("customers/", body)
        assert r.status_code == 400 and path in r.json()["details"], (body, r.text)


def test_customer_archive(biz: Biz):
    c = biz.customer()
    r = biz.post(f"customers/{c['id']}/archive/", {"company_name": "ignored"})
    assert r.status_code == 200
    assert r.json()["is_archived"] is True and r.json()["archived_at"]
    assert biz.post(f"customers/{c['id']}/archive/").status_code == 200  # idempotent
    assert biz.get("customers/", params={"is_archived": "true"}).json()["count"] == 1
    assert biz.get("customers/", params={"is_archived": "false"}).json()["count"] == 0
    r = biz.post("invoices/", {"customer_id": c["id"], "line_items": [{"unit_price": 100}]})
    assert r.status_code == 400 and "customer_id" in r.json()["details"]
    assert (
        biz.get("customers/00000000-0000-0000-0000-000000000000/").json()["error_code"]
        == "customer_not_found"
    )
    assert biz.post("customers/nope/archive/").status_code == 404


def test_customers_list_leaves_archived_customers_out_by_default(biz: Biz):
    """Mirrors the vendors list's documented include_archived (default false)."""
    active, archived = biz.customer(), biz.customer()
    assert biz.post(f"customers/{archived['id']}/archive/").status_code == 200

    def ids(**params: str) -> set[str]:
        return {c["id"] for c in biz.get("customers/", params=params).json()["results"]}

    assert ids() == {active["id"]}
    assert ids(include_archived="false") == {active["id"]}
    assert ids(include_archived="true") == {active["id"], archived["id"]}
    assert ids(is_archived="true") == {archived["id"]}
    # the detail and the external_id lookup still find an archived customer
    got = biz.get(f"customers/{archived['id']}/")
    assert got.status_code == 200 and got.json()["is_archived"] is True
    # an external_id lookup follows the same default, as on the vendors list
    assert ids(external_id=archived["external_id"]) == set()
    by_ext = ids(external_id=archived["external_id"], include_archived="true")
    assert by_ext == {archived["id"]}
    # and a repeated create of an archived customer replays it (no second customer)
    again = biz.post("customers/", {"external_id": archived["external_id"], "company_name": "x"})
    assert again.status_code == 200 and again.json()["id"] == archived["id"]
