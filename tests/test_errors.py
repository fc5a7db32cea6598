"""The exception tree, the status-to-class table, retryable flags and messages."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable

import pytest

from blat_async import errors
from blat_async.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BlatError,
    InternalServerError,
    NotFoundError,
    PaginationError,
    PermissionDeniedError,
    RateLimitError,
    ResponseTooLargeError,
    ResponseValidationError,
    status_error_class,
)

from ._tables import STATUS_ERROR_CLASSES

_PARENTS: dict[type[Exception], type[Exception]] = {
    BlatError: Exception,
    APIStatusError: BlatError,
    BadRequestError: APIStatusError,
    AuthenticationError: APIStatusError,
    PermissionDeniedError: APIStatusError,
    NotFoundError: APIStatusError,
    RateLimitError: APIStatusError,
    InternalServerError: APIStatusError,
    APIConnectionError: BlatError,
    APITimeoutError: APIConnectionError,
    ResponseValidationError: BlatError,
    ResponseTooLargeError: BlatError,
    PaginationError: BlatError,
}
"""The tree drawn in errors.py's docstring, as child: parent."""


@pytest.mark.parametrize(
    ("error_class", "parent"), list(_PARENTS.items()), ids=lambda c: c.__name__
)
def test_direct_parent_is_as_drawn(error_class: type[Exception], parent: type[Exception]) -> None:
    assert error_class.__bases__ == (parent,)


def test_every_public_error_is_in_the_tree() -> None:
    public = {
        getattr(errors, name) for name in errors.__all__ if isinstance(getattr(errors, name), type)
    }

    assert public == set(_PARENTS)


@pytest.mark.parametrize("error_class", list(_PARENTS), ids=lambda c: c.__name__)
def test_every_error_is_a_blat_error(error_class: type[Exception]) -> None:
    assert issubclass(error_class, BlatError)


@pytest.mark.parametrize(
    ("error_class", "not_parent"),
    [
        (APITimeoutError, APIStatusError),
        (ResponseValidationError, APIStatusError),
        (PaginationError, APIStatusError),
        (RateLimitError, InternalServerError),
        (APIConnectionError, APITimeoutError),
    ],
    ids=lambda c: c.__name__,
)
def test_unrelated_branches_do_not_overlap(
    error_class: type[Exception], not_parent: type[Exception]
) -> None:
    assert not issubclass(error_class, not_parent)


def test_docstring_draws_every_class() -> None:
    assert errors.__doc__ is not None
    for error_class in _PARENTS:
        if error_class is not BlatError:
            assert f"── {error_class.__name__}" in errors.__doc__


@pytest.mark.parametrize(("status", "error_class"), STATUS_ERROR_CLASSES)
def test_status_error_class(status: int, error_class: type[APIStatusError]) -> None:
    assert status_error_class(status) is error_class


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (403, False), (404, False), (418, False), (429, True)]
    + [(status, True) for status in (500, 502, 503, 504, 599)],
)
def test_status_error_retryable(status: int, retryable: bool) -> None:
    assert status_error_class(status)(status).retryable is retryable


@pytest.mark.parametrize("error_class", [APIConnectionError, APITimeoutError])
def test_connection_errors_are_retryable(error_class: type[APIConnectionError]) -> None:
    assert error_class("dropped").retryable


def test_validation_error_of_a_non_json_body_is_retryable() -> None:
    assert ResponseValidationError("not JSON", decodable=False).retryable


def test_validation_error_of_json_of_wrong_shape_is_not_retryable() -> None:
    assert not ResponseValidationError("wrong shape", path="total").retryable


def test_status_error_defaults() -> None:
    error = APIStatusError(500)

    assert (error.code, error.message, dict(error.details), error.body) == (None, None, {}, None)
    assert (error.retry_after, error.url) == (None, None)


def test_status_error_str_has_status_code_message_and_url() -> None:
    error = NotFoundError(
        404, code="NOT_FOUND", message="no such batch", url="https://api.blat.ai/x?from=0"
    )

    assert str(error) == "HTTP 404 NOT_FOUND: no such batch (GET https://api.blat.ai/x?from=0)"


def test_status_error_str_with_only_a_status() -> None:
    assert str(InternalServerError(503)) == "HTTP 503"


def test_status_error_str_shows_the_body_when_there_is_no_message() -> None:
    error = InternalServerError(502, body="502 Bad Gateway")

    assert str(error) == "HTTP 502: '502 Bad Gateway'"


def test_status_error_str_prefers_the_message_to_the_body() -> None:
    error = BadRequestError(400, message="bad id", body="ignored")

    assert str(error) == "HTTP 400: bad id"


def test_status_error_keeps_details() -> None:
    error = BadRequestError(400, details={"field": "batch_id"})

    assert error.details == {"field": "batch_id"}


def test_validation_error_str_names_the_url() -> None:
    error = ResponseValidationError("bad body", path="total", url="https://u/")

    assert str(error) == "bad body (GET https://u/)"
    assert (error.path, error.url, error.status) == ("total", "https://u/", None)


def test_validation_error_str_without_url_is_the_message() -> None:
    assert str(ResponseValidationError("bad body")) == "bad body"


def test_pagination_error_str_is_its_message() -> None:
    assert str(PaginationError("the server repeats itself")) == "the server repeats itself"


def _pickled(error: BlatError) -> BlatError:
    restored: BlatError = pickle.loads(pickle.dumps(error))  # noqa: S301
    return restored


@pytest.mark.parametrize(
    "round_trip",
    [
        pytest.param(_pickled, id="pickle"),
        pytest.param(copy.copy, id="copy"),
        pytest.param(copy.deepcopy, id="deepcopy"),
    ],
)
def test_status_error_survives_pickling_and_copying(
    round_trip: Callable[[BlatError], BlatError],
) -> None:
    """Errors cross process boundaries (multiprocessing, xdist) with their message intact."""
    error = NotFoundError(404, code="NOT_FOUND", message="no batch", url="https://u/")

    restored = round_trip(error)

    assert isinstance(restored, NotFoundError)
    assert (restored.status, restored.code, restored.message, restored.url) == (
        404,
        "NOT_FOUND",
        "no batch",
        "https://u/",
    )
    assert str(restored) == str(error)


def test_validation_error_survives_pickling() -> None:
    error = ResponseValidationError("bad body", path="total", url="https://u/", decodable=False)

    restored = _pickled(error)

    assert isinstance(restored, ResponseValidationError)
    assert (str(restored), restored.path, restored.retryable) == (str(error), "total", True)
