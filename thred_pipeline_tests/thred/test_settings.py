"""ThredSettings: defaults, validation, TLS guard, and that the key never shows."""

from __future__ import annotations

import logging
import uuid

import pytest
from pydantic import ValidationError

from thred_pipeline.thred import ThredClient, ThredSettings
from thred_pipeline_tests.thred.conftest import API_KEY, PARTNER_ID


def settings(**overrides: object) -> ThredSettings:
    values: dict[str, object] = {
        "base_url": "https://sandbox.thredfi.invalid",
        "partner_id": PARTNER_ID,
        "api_key": API_KEY,
    }
    values.update(overrides)
    return ThredSettings.model_validate(values)


def test_defaults() -> None:
    s = settings()
    assert (s.timeout_s, s.connect_timeout_s, s.max_attempts) == (30, 5, 6)
    assert (s.backoff_base_s, s.backoff_max_s, s.retry_budget_s) == (0.5, 30, 300)
    assert (s.token_refresh_margin_s, s.verify_tls, s.allow_insecure_tls) == (300, True, False)


def test_key_never_shown() -> None:
    s = settings()
    for text in (repr(s), str(s), s.model_dump_json(), str(s.model_dump())):
        assert API_KEY not in text
    assert s.api_key.get_secret_value() == API_KEY
    assert API_KEY not in repr(ThredClient(s))


def test_verify_tls_off_is_refused_without_the_second_switch() -> None:
    with pytest.raises(ValidationError) as info:
        settings(verify_tls=False)
    assert "allow_insecure_tls" in str(info.value)
    assert API_KEY not in str(info.value)


def test_insecure_tls_is_allowed_and_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    url = f"https://{uuid.uuid4().hex}.invalid"
    with caplog.at_level(logging.WARNING, logger="thred_pipeline.thred"):
        first = settings(base_url=url, verify_tls=False, allow_insecure_tls=True)
        settings(base_url=url, verify_tls=False, allow_insecure_tls=True)
    warnings = [r for r in caplog.records if "DISABLED" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].name == "thred_pipeline.thred"
    assert first.verify_tls is False


@pytest.mark.parametrize(
    "overrides",
    [
        {"base_url": "sandbox.thredfi.com"},
        {"base_url": "ftp://sandbox.thredfi.com"},
        {"base_url": "https://host/?x=1"},
        {"api_key": ""},
        {"partner_id": ""},
        {"max_attempts": 0},
        {"timeout_s": 0},
        {"retry_budget_s": -1},
        {"unknown_field": 1},
    ],
)
def test_invalid_settings(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        settings(**overrides)


def test_url_with_credentials_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as info:
        settings(base_url="https://user:hunter2secret@host.invalid")
    assert "hunter2secret" not in str(info.value)
