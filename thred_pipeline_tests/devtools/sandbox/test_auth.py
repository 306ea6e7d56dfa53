"""Two-tier auth, token scoping and expiry."""

from __future__ import annotations

import base64
import time

import httpx
import pytest
from thred_devtools.sandbox import SandboxConfig, start_sandbox

from .conftest import PARTNER, Api, Biz, bearer, partner_token

TOKEN = "/v1/platform/oauth2/token/"


def _basic(pid: str, key: str) -> dict[str, str]:
    raw = base64.b64encode(f"{pid}:{key}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": {"grant_type": "client_credentials", "client_id": "demo-partner"}},
        {"json": {"grant_type": "client_credentials"}},
        {"files": {"grant_type": (None, "client_credentials")}},
        {"headers": {"Content-Type": "application/json"}},
        {},
    ],
    ids=["form", "json", "multipart", "empty-json", "empty"],
)
def test_partner_token_accepts_every_documented_encoding(http: httpx.Client, kwargs):
    headers = {**_basic(*PARTNER), **kwargs.pop("headers", {})}
    r = http.post(TOKEN, headers=headers, **kwargs)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"].count(".") == 2  # JWT-looking


def test_partner_token_errors(http: httpx.Client):
    r = http.post(TOKEN)
    assert r.status_code == 401 and r.json()["error_code"] == "authentication_required"
    r = http.post(TOKEN, headers=_basic("demo-partner", "wrong"))
    assert r.status_code == 401
    assert set(r.json()) == {"error", "error_code", "details"}
    assert "sandbox-demo-key" not in r.text
    r = http.post(TOKEN, headers={"Authorization": "Basic !!!notbase64"})
    assert r.status_code == 401
    r = http.post(TOKEN, headers=_basic(*PARTNER), data={"grant_type": "password"})
    assert r.status_code == 400
    r = http.post(TOKEN, headers=_basic(*PARTNER), data={"client_id": "someone-else"})
    assert r.status_code == 401


def test_missing_and_malformed_bearer(http: httpx.Client, biz: Biz):
    r = http.get(biz.url("customers/"))
    assert r.status_code == 401 and r.json()["error_code"] == "authentication_required"
    for header in ("Bearer", "Bearer abc", "Bearer a.b.c", "Token x", "Bearer ünï.cödé.x".encode()):
        r = http.get(biz.url("customers/"), headers={"Authorization": header})
        assert r.status_code == 401, header
        assert r.json()["error_code"] == "invalid_token"
    forged = biz.token[:-4] + ("AAAA" if not biz.token.endswith("AAAA") else "BBBB")
    r = http.get(biz.url("customers/"), headers=bearer(forged))
    assert r.status_code == 401 and r.json()["error_code"] == "invalid_token"


def test_business_token_scoping(api: Api, http: httpx.Client):
    one, two = api.new_business(), api.new_business()
    token = http.post(f"/v1/platform/{one.id}/oauth2/token/", headers=bearer(api.partner)).json()
    assert token["scope"] == "business_access" and token["business_id"] == one.id
    assert http.get(one.url("customers/"), headers=bearer(token["access_token"])).status_code == 200
    # a business token on another business: 403
    r = http.get(two.url("customers/"), headers=bearer(token["access_token"]))
    assert r.status_code == 403 and r.json()["error_code"] == "permission_denied"
    r = http.post(
        two.url("customers/"), json={"company_name": "x"}, headers=bearer(token["access_token"])
    )
    assert r.status_code == 403
    # partner-only endpoints refuse a business token
    r = http.get("/v1/platform/businesses/", headers=bearer(token["access_token"]))
    assert r.status_code == 403
    r = http.post(f"/v1/platform/{two.id}/oauth2/token/", headers=bearer(token["access_token"]))
    assert r.status_code == 403
    # the partner token works on every business of the partner
    assert http.get(two.url("customers/"), headers=bearer(api.partner)).status_code == 200


def test_business_token_for_unknown_or_foreign_business(http: httpx.Client, api: Api):
    r = http.post(
        "/v1/platform/00000000-0000-0000-0000-000000000000/oauth2/token/",
        headers=bearer(api.partner),
    )
    assert r.status_code == 404 and r.json()["error_code"] == "business_not_found"
    r = http.get("/v1/platform/businesses/not-a-uuid/customers/", headers=bearer(api.partner))
    assert r.status_code == 404 and r.json()["error_code"] == "business_not_found"


def test_other_partner_cannot_see_business():
    config = SandboxConfig(partners={"p1": "k1", "p2": "k2"})
    with start_sandbox(config) as sb, httpx.Client(base_url=sb.url, timeout=10) as http:
        t1 = partner_token(http, ("p1", "k1"))
        t2 = partner_token(http, ("p2", "k2"))
        body = {
            "external_id": "same",
            "legal_name": "A",
            "email": "a@b.co",
            "country": "GB",
            "entity_type": "llp",
        }
        r1 = http.post("/v1/platform/businesses/", json=body, headers=bearer(t1))
        r2 = http.post("/v1/platform/businesses/", json=body, headers=bearer(t2))
        assert r1.status_code == 201 and r2.status_code == 201  # external_id is per partner
        bid = r1.json()["id"]
        assert http.get(f"/v1/platform/businesses/{bid}/", headers=bearer(t2)).status_code == 404
        r = http.post(f"/v1/platform/{bid}/oauth2/token/", headers=bearer(t2))
        assert r.status_code == 404 and r.json()["error_code"] == "business_not_found"
        listed = http.get("/v1/platform/businesses/", headers=bearer(t2)).json()
        assert [b["id"] for b in listed["results"]] == [r2.json()["id"]]


def test_tokens_expire_after_ttl():
    with (
        start_sandbox(SandboxConfig(token_ttl_s=1)) as sb,
        httpx.Client(base_url=sb.url, timeout=10) as http,
    ):
        token = partner_token(http)
        assert http.get("/v1/platform/businesses/", headers=bearer(token)).status_code == 200
        time.sleep(1.1)
        r = http.get("/v1/platform/businesses/", headers=bearer(token))
        assert r.status_code == 401 and r.json()["error_code"] == "invalid_token"
        fresh = partner_token(http)  # re-authenticating is the documented recovery
        assert http.get("/v1/platform/businesses/", headers=bearer(fresh)).status_code == 200


def test_admin_expire_tokens(api: Api, http: httpx.Client):
    one = api.new_business()
    two = api.new_business()
    # expire only one business's tokens
    assert http.post("/_sandbox/expire-tokens", json={"business_id": one.id}).status_code == 200
    assert one.get("customers/").json()["error_code"] == "invalid_token"
    assert two.get("customers/").status_code == 200
    assert http.get(one.url("customers/"), headers=api.partner_headers).status_code == 200
    # then everything of the partner, including the partner token
    token = partner_token(http)
    assert (
        http.post("/_sandbox/expire-tokens", json={"partner_id": "demo-partner"}).status_code == 200
    )
    r = http.get("/v1/platform/businesses/", headers=bearer(token))
    assert r.status_code == 401 and r.json()["error_code"] == "invalid_token"
    assert two.get("customers/").status_code == 401
    # new tokens work again; keep the shared fixtures usable
    api.partner = partner_token(http)
    api.partner_headers = bearer(api.partner)
    assert http.get("/v1/platform/businesses/", headers=api.partner_headers).status_code == 200
