"""What may become a Thred external_id: printable ASCII, at most 255 characters."""

from __future__ import annotations

import pytest

from thred_pipeline.core.external_ids import check_external_id
from thred_pipeline.core.records import RecordInvalid


def test_check_external_id_accepts_printable_ascii_up_to_255() -> None:
    longest = "invoice-" + "a" * (255 - len("invoice-"))
    assert check_external_id(longest, "id", source_id=longest[8:]) == longest
    assert check_external_id("payment-a b~!", "id") == "payment-a b~!"


@pytest.mark.parametrize(
    ("source_id", "fragment"),
    [
        pytest.param("pay-é1", "non-ASCII character 'é' (U+00E9) at position 4", id="accent"),
        pytest.param("pay-😀", "non-ASCII character", id="emoji"),
        pytest.param("pay-\n1", "control character '\\n' (U+000A) at position 4", id="newline"),
        pytest.param("pay-\x001", "control character", id="NUL"),
        pytest.param("p" * 248, "is 248 characters long", id="too long with prefix"),
    ],
)
def test_check_external_id_refuses_what_cannot_be_a_key(source_id: str, fragment: str) -> None:
    with pytest.raises(RecordInvalid) as caught:
        check_external_id(f"payment-{source_id}", "id", source_id=source_id)
    assert caught.value.field_path == "id"
    assert fragment in caught.value.message
    if len(source_id) > 200:
        assert "it would be 256, and Thred accepts at most 255" in caught.value.message
