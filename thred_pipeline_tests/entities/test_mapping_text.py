"""``text_field``'s control-character check: the precompiled class against the per-character
``unicodedata.category`` loop it replaced, over every code point and generated text."""

from __future__ import annotations

import sys
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thred_pipeline.core.records import RecordInvalid
from thred_pipeline.entities import mapping
from thred_pipeline.entities.mapping import text_field


def reference_text_field(
    value: Any,
    path: str,
    *,
    required: bool = False,
    max_length: int | None = None,
    multiline: bool = False,
) -> str | None:
    """The implementation before the precompiled class, verbatim (the specification)."""
    if mapping.blank(value):
        if required:
            raise RecordInvalid(path, "is required")
        return None
    if not isinstance(value, str):
        raise RecordInvalid(path, f"must be text, got {type(value).__name__} ({value!r})")
    if max_length is not None and len(value) > max_length:
        raise RecordInvalid(
            path, f"is {len(value)} characters long; Thred accepts at most {max_length}"
        )
    for position, char in enumerate(value):
        if multiline and char in "\n\t":
            continue
        if unicodedata.category(char) in ("Cc", "Cs"):
            allowed = " (only newlines and tabs are allowed here)" if multiline else ""
            raise RecordInvalid(
                path,
                f"contains control character U+{ord(char):04X} at position {position}{allowed}",
            )
    return value


def outcome(function: Any, value: Any, **options: Any) -> tuple[str, Any]:
    try:
        return "ok", function(value, "memo", **options)
    except RecordInvalid as exc:
        return "invalid", (exc.field_path, exc.message, str(exc))


@pytest.mark.parametrize("multiline", [False, True])
def test_every_code_point_is_judged_as_unicodedata_judges_it(multiline: bool) -> None:
    pattern = mapping._CONTROL_MULTILINE if multiline else mapping._CONTROL
    allowed = "\n\t" if multiline else ""
    wrong = [
        hex(point)
        for point in range(sys.maxunicode + 1)
        if (unicodedata.category(chr(point)) in ("Cc", "Cs") and chr(point) not in allowed)
        != bool(pattern.fullmatch(chr(point)))
    ]
    assert wrong == []


# Text weighted towards the characters that matter: controls, surrogates, newline, tab.
_SPECIAL = st.sampled_from(["\n", "\t", "\r", "\x00", "\x7f", "\x85", "\x9f", "\ud800", "\udfff"])
_TEXT = st.lists(st.one_of(st.characters(), _SPECIAL), max_size=40).map("".join)
_VALUES = st.one_of(_TEXT, st.none(), st.integers(), st.just("   "), st.binary(max_size=4))


@settings(max_examples=3000, deadline=None)
@given(
    value=_VALUES,
    required=st.booleans(),
    multiline=st.booleans(),
    max_length=st.one_of(st.none(), st.integers(0, 50)),
)
def test_text_field_outcomes_are_those_of_the_per_character_check(
    value: Any, required: bool, multiline: bool, max_length: int | None
) -> None:
    options = {"required": required, "multiline": multiline, "max_length": max_length}
    assert outcome(text_field, value, **options) == outcome(reference_text_field, value, **options)
