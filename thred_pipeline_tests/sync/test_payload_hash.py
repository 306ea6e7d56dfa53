"""``payload_hash`` with its encoder built once: the digest of ``json.dumps`` as before, for any
payload (a changed digest would make every synced record look changed)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from thred_pipeline.core.records import Mapped
from thred_pipeline.sync.versions import payload_hash


def reference_hash(mapped: Mapped, body: dict[str, Any]) -> str:
    """The digest as first written (the specification)."""
    canonical = json.dumps(
        {"body": body, "path": mapped.path_params},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(),
    st.decimals(),
    st.datetimes(),
    st.dates(),
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=1000, deadline=None)
@given(
    body=st.dictionaries(st.text(), _JSON, max_size=6),
    path=st.dictionaries(st.text(), st.text(), max_size=3),
)
def test_digest_is_that_of_json_dumps(body: dict[str, Any], path: dict[str, str]) -> None:
    mapped = Mapped(body=body, path_params=path)
    assert payload_hash(mapped, body) == reference_hash(mapped, body)


def test_a_known_payload_keeps_its_digest() -> None:
    mapped = Mapped(body={"b": 1, "a": "é"}, path_params={"business_id": "x"})
    text = '{"body":{"a":"\\u00e9","b":1},"path":{"business_id":"x"}}'
    assert payload_hash(mapped, mapped.body) == hashlib.sha256(text.encode()).hexdigest()
