"""Tables that the tests of more than one module check against."""

from __future__ import annotations

from typing import Final

from blat_async.errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)

STATUS_ERROR_CLASSES: Final[list[tuple[int, type[APIStatusError]]]] = [
    (400, BadRequestError),
    (401, AuthenticationError),
    (403, PermissionDeniedError),
    (404, NotFoundError),
    (429, RateLimitError),
    (500, InternalServerError),
    (501, InternalServerError),
    (502, InternalServerError),
    (503, InternalServerError),
    (504, InternalServerError),
    (599, InternalServerError),
    (302, APIStatusError),
    (405, APIStatusError),
    (418, APIStatusError),
    (422, APIStatusError),
]
"""Each status and the exception class it is raised as: the statuses with a class of
their own, 5xx across the range, and statuses without one."""
