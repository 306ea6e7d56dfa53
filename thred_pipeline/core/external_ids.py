"""What may become a Thred external_id: checked where ids are read (warehouse) and built (mappers).

Rules: printable ASCII (the payments' Idempotency-Key header carries the external_id, and HTTP
headers cannot carry other text) and at most ``EXTERNAL_ID_MAX_LENGTH`` characters, prefix
included ([doc] 2.1 "external_id string 1-255", applied to every entity).
"""

from __future__ import annotations

from typing import Final

from thred_pipeline.core.records import RecordInvalid

EXTERNAL_ID_MAX_LENGTH: Final = 255


def key_problem(text: str) -> str | None:
    """Why ``text`` cannot be (part of) an external_id, or None if it can."""
    if text.isascii() and text.isprintable():  # in C; for ASCII exactly " " <= c <= "~"
        return None
    for position, char in enumerate(text):
        if not " " <= char <= "~":
            kind = "non-ASCII" if ord(char) > 127 else "control"
            return (
                f"has the {kind} character {char!r} (U+{ord(char):04X}) at position {position}; "
                "ids must be printable ASCII (they become Thred external_ids and the "
                "Idempotency-Key header)"
            )
    return None


def check_external_id(external_id: str, path: str, *, source_id: str | None = None) -> str:
    """``external_id`` if Thred can take it as one, else ``RecordInvalid`` naming ``path``.

    ``source_id`` is the warehouse id the external_id was built from, so the message speaks
    about what the warehouse holds.
    """
    raw = external_id if source_id is None else source_id
    problem = key_problem(raw)
    if problem is not None:
        raise RecordInvalid(path, problem)
    if len(external_id) > EXTERNAL_ID_MAX_LENGTH:
        prefix = len(external_id) - len(raw)
        within = f" with its {prefix}-character prefix" if prefix else ""
        raise RecordInvalid(
            path,
            f"is {len(raw)} characters long; as a Thred external_id{within} it would be "
            f"{len(external_id)}, and Thred accepts at most {EXTERNAL_ID_MAX_LENGTH}",
        )
    return external_id
