"""The client's exceptions: one line, pickling, the context they carry."""

from __future__ import annotations

import pickle

from thred_pipeline.thred import (
    RequestNotSendable,
    ThredAuthError,
    ThredDuplicateExternalId,
    ThredError,
    ThredTransientError,
    ThredValidationError,
)


def test_errors_pickle_and_render() -> None:
    err = ThredTransientError(
        "boom", outcome_uncertain=True, attempts=3, status=503, method="POST", path="/v1/x/"
    )
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is ThredTransientError
    assert (again.outcome_uncertain, again.attempts, again.status) == (True, 3, 503)
    assert str(again) == "POST /v1/x/: HTTP 503: boom"
    val = ThredValidationError("bad", status=400, error_code="validation_error", details={"a": 1})
    assert pickle.loads(pickle.dumps(val)).details == {"a": 1}
    assert isinstance(val, ThredError)


def test_subclass_defaults_and_extras_survive_pickling() -> None:
    dup = ThredDuplicateExternalId("exists", external_id="cus-1", method="POST", path="/p/")
    assert (dup.status, dup.error_code) == (409, "duplicate_external_id")
    unsendable = RequestNotSendable("bad header", details={"h": ["x"]})
    assert (unsendable.status, unsendable.error_code) == (None, "unsendable_request")
    for err in (dup, unsendable):
        again = pickle.loads(pickle.dumps(err))
        assert type(again) is type(err) and again.context() == err.context()
    assert "external_id='cus-1'" in repr(dup)
    moved = ThredAuthError(dup.message, **dup.context())
    assert (moved.status, moved.path, moved.method) == (409, "/p/", "POST")
    assert len(ThredError("x" * 2000).message) == 501
