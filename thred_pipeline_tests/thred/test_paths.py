"""Every Thred URL path the client builds, and the ones it refuses."""

from __future__ import annotations

import pytest

from thred_pipeline.thred import (
    business_resource,
    business_token_path,
    chart_of_accounts_path,
    partner_token_path,
    platform_path,
    tax_codes_path,
)


def test_token_paths_are_asymmetric() -> None:
    assert partner_token_path() == "/v1/platform/oauth2/token/"
    assert business_token_path("b-1") == "/v1/platform/b-1/oauth2/token/"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("businesses/", "/v1/platform/businesses/"),
        ("businesses", "/v1/platform/businesses/"),
        ("/businesses/b1/invoices/payments", "/v1/platform/businesses/b1/invoices/payments/"),
        ("/v1/platform/businesses/", "/v1/platform/businesses/"),
    ],
)
def test_platform_path(given: str, expected: str) -> None:
    assert platform_path(given) == expected


@pytest.mark.parametrize(
    "bad",
    ["https://evil.example/businesses/", "//evil/x", "businesses/?page=2", "a/../b", "", "a b"],
)
def test_platform_path_refuses_unsafe(bad: str) -> None:
    with pytest.raises(ValueError):
        platform_path(bad)


def test_business_resource() -> None:
    assert business_resource("b1", "invoices", "payments") == "businesses/b1/invoices/payments/"
    assert business_resource("b1") == "businesses/b1/"
    with pytest.raises(ValueError):
        business_resource("../other", "invoices")


def test_reference_data_paths() -> None:
    assert tax_codes_path("b1") == "businesses/b1/tax-codes/"
    assert chart_of_accounts_path("b1") == "businesses/b1/general-ledger/chart-of-accounts/"
