"""State in data_dir survives a restart; each write appends one journal line."""

from __future__ import annotations

from pathlib import Path

import httpx
from thred_devtools.sandbox import SandboxConfig, start_sandbox
from thred_devtools.sandbox.store import JOURNAL_NAME

from .conftest import Api, bearer, stats


def _line_count(path: Path) -> int:
    return len(path.read_bytes().splitlines())


def test_restart_keeps_state_and_tokens(tmp_path: Path):
    config = SandboxConfig(data_dir=tmp_path)
    journal = tmp_path / JOURNAL_NAME
    with start_sandbox(config) as sb, httpx.Client(base_url=sb.url, timeout=10) as http:
        api = Api(http)
        biz = api.new_business(external_id="persist-biz")
        c = biz.customer(external_id="persist-cust")
        inv = biz.invoice(
            c["id"], [{"unit_price": 1000, "tax_code": "VAT_20"}], external_id="persist-inv"
        )
        before = _line_count(journal)
        body = {
            "customer_id": c["id"],
            "total_amount_cents": 500,
            "payment_date": "2025-01-20",
            "allocations": [{"invoice_id": inv["id"], "amount_cents": 500}],
        }
        first = biz.post("invoices/payments/", body, headers={"Idempotency-Key": "persist-key"})
        assert first.status_code == 201
        # one write = one appended line, whatever the size of the state
        assert _line_count(journal) == before + 1
        partner_token, business_token = api.partner, biz.token
        aging_before = biz.get("insights/ar-aging/", params={"as_of_date": "2025-03-01"}).json()

    with start_sandbox(config) as sb, httpx.Client(base_url=sb.url, timeout=10) as http:
        base = f"/v1/platform/businesses/{biz.id}/"
        headers = bearer(business_token)
        got = http.get(base + f"invoices/{inv['id']}/", headers=headers)
        assert got.status_code == 200  # the old business token is still valid
        assert got.json()["status"] == "PARTIALLY_PAID"
        assert (
            http.get(base + f"customers/{c['id']}/", headers=headers).json()["outstanding_balance"]
            == 700
        )
        aging_after = http.get(
            base + "insights/ar-aging/", params={"as_of_date": "2025-03-01"}, headers=headers
        ).json()
        assert aging_after == aging_before
        # replays after the restart: same object, 200
        replay = http.post(
            base + "invoices/payments/",
            json=body,
            headers={**headers, "Idempotency-Key": "persist-key"},
        )
        assert replay.status_code == 200 and replay.json() == first.json()
        r = http.post(
            "/v1/platform/businesses/",
            json={"external_id": "persist-biz", "legal_name": "x", "email": "a@b.co"},
            headers=bearer(partner_token),
        )
        assert r.status_code == 200 and r.json()["id"] == biz.id
        r = http.post(
            base + "customers/",
            json={"external_id": "persist-cust", "company_name": "x"},
            headers=headers,
        )
        assert r.status_code == 200
        s = stats(http)
        assert s["objects"][biz.id]["invoice_payments"] == 1
        assert s["duplicate_external_ids"] == 0 and s["unbalanced_journal_entries"] == 0


def test_torn_last_line_and_reset(tmp_path: Path):
    config = SandboxConfig(data_dir=tmp_path)
    with start_sandbox(config) as sb, httpx.Client(base_url=sb.url, timeout=10) as http:
        biz = Api(http).new_business()
        biz.customer(external_id="kept")
    with (tmp_path / JOURNAL_NAME).open("a") as fh:
        fh.write('{"ops": [["p", "customers", {"id": "half')  # a crash mid-write
    with start_sandbox(config) as sb, httpx.Client(base_url=sb.url, timeout=10) as http:
        api = Api(http)
        r = http.get(
            f"/v1/platform/businesses/{biz.id}/customers/",
            params={"external_id": "kept"},
            headers=api.partner_headers,
        )
        assert r.json()["count"] == 1
        assert http.post("/_sandbox/reset").status_code == 200
        assert stats(http)["objects"] == {}
    with start_sandbox(config) as sb, httpx.Client(base_url=sb.url, timeout=10) as http:
        assert stats(http)["objects"] == {}


def test_journal_is_compacted_on_start(tmp_path: Path):
    config = SandboxConfig(data_dir=tmp_path)
    with start_sandbox(config) as sb, httpx.Client(base_url=sb.url, timeout=10) as http:
        api = Api(http)
        biz = api.new_business()
        for i in range(120):
            assert biz.patch("", {"phone_number": f"+44{i}"}).status_code == 200
        assert stats(http)["journal_lines"] > 120
    with start_sandbox(config) as sb, httpx.Client(base_url=sb.url, timeout=10) as http:
        s = stats(http)
        live = sum(s["objects"][biz.id].values()) + 1  # + the business itself
        assert s["journal_lines"] == live
        r = http.get(f"/v1/platform/businesses/{biz.id}/", headers=Api(http).partner_headers)
        assert r.json()["phone_number"] == "+44119"
