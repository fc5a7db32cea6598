"""The exceptions blat_async raises, and the table that maps a status to one.

Every exception the library raises on purpose derives from `BlatError`:

```text
BlatError
├── APIStatusError            .status .code .message .details (the error body)
│   ├── BadRequestError       400
│   ├── AuthenticationError   401
│   ├── PermissionDeniedError 403
│   ├── NotFoundError         404
│   ├── RateLimitError        429
│   └── InternalServerError   5xx
├── APIConnectionError        could not connect, connection dropped
│   └── APITimeoutError
├── ResponseValidationError   a 2xx body: not JSON, not an object, or off schema
├── ResponseTooLargeError     a body over the client's max_response_bytes
└── PaginationError           the server does not advance or contradicts itself
```

Misuse (a bad argument) raises `ValueError` or `TypeError` before any request is
sent. Nothing from aiohttp, json or cattrs reaches the caller unwrapped: the
original exception is kept as ``__cause__``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BlatError",
    "InternalServerError",
    "NotFoundError",
    "PaginationError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseTooLargeError",
    "ResponseValidationError",
    "status_error_class",
]


class BlatError(Exception):
    """Base class of every error blat_async raises on purpose."""


class APIStatusError(BlatError):
    """The API answered with a status that is not a success.

    ``code``, ``message`` and ``details`` come from the API's JSON error body
    when it sent one; an error page that is not JSON (an HTML page from a
    proxy) leaves them ``None`` and keeps the start of the body in ``body``.
    Each argument of the constructor sets the attribute of its name.
    """

    def __init__(
        self,
        status: int,
        *,
        code: str | None = None,
        message: str | None = None,
        details: Mapping[str, Any] | None = None,
        body: str | None = None,
        retry_after: float | None = None,
        url: str | None = None,
    ) -> None:
        self.status: int = status
        """The HTTP status of the response, such as ``404``."""
        self.code: str | None = code
        """The ``code`` of the API's JSON error body; ``None`` without one."""
        self.message: str | None = message
        """The ``message`` of the API's JSON error body; ``None`` without one.

        For a redirect, which is never followed, blat_async's own explanation
        and the ``Location`` the server named.
        """
        self.details: Mapping[str, Any] = details if details is not None else {}
        """The ``details`` object of the API's JSON error body; empty without one."""
        self.body: str | None = body
        """An excerpt of a body that was not the API's JSON error body.

        The title of an HTML page (a proxy's error page), else the start of
        the body, cut at 200 characters; ``None`` when the body was the
        API's JSON, or empty.
        """
        self.retry_after: float | None = retry_after
        """The server's ``Retry-After``, in seconds; ``None`` without one.

        An HTTP date is turned into the seconds until it; a value that is
        neither is ignored.
        """
        self.url: str | None = url
        """The URL requested; it holds no key, which travels in a header."""
        super().__init__(self._describe())

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions are rebuilt from `args`, which here holds the message,
        # not the status: rebuild from the fields instead (pickle, copy).
        fields = {name: getattr(self, name) for name in _STATUS_ERROR_FIELDS}
        return (functools.partial(type(self), self.status, **fields), ())

    @property
    def retryable(self) -> bool:
        """Whether repeating the same request could succeed (429 and 5xx)."""
        return self.status == 429 or self.status >= 500

    def _describe(self) -> str:
        text = f"HTTP {self.status}"
        if self.code:
            text += f" {self.code}"
        if self.message:
            text += f": {self.message}"
        elif self.body:
            text += f": {self.body!r}"
        if self.url:
            text += f" (GET {self.url})"
        return text


_STATUS_ERROR_FIELDS: Final = ("code", "message", "details", "body", "retry_after", "url")


class BadRequestError(APIStatusError):
    """400: the API refused the request (for example an invalid batch id).

    Its constructor and attributes are `APIStatusError`'s.
    """


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong or expired.

    Its constructor and attributes are `APIStatusError`'s.
    """


class PermissionDeniedError(APIStatusError):
    """403: the key is valid but may not read this batch.

    Its constructor and attributes are `APIStatusError`'s.
    """


class NotFoundError(APIStatusError):
    """404: no batch has this id (or it has expired).

    Its constructor and attributes are `APIStatusError`'s.
    """


class RateLimitError(APIStatusError):
    """429: too many requests; ``retry_after`` holds the server's advice.

    Its constructor and attributes are `APIStatusError`'s.
    """


class InternalServerError(APIStatusError):
    """5xx: the API or a proxy in front of it failed.

    Its constructor and attributes are `APIStatusError`'s.
    """


class APIConnectionError(BlatError):
    """The request did not get a whole response: no connection, or it dropped."""

    @property
    def retryable(self) -> bool:
        """Always true: a GET that did not complete is safe to send again."""
        return True


class APITimeoutError(APIConnectionError):
    """An attempt took longer than the client's ``timeout``.

    Retryable, as every `APIConnectionError` is.
    """


class ResponseValidationError(BlatError):
    """A successful response whose body is not JSON, not an object, or does not fit the schema.

    ``path`` names the offending field (``data[3].links[0]``) when the body
    was JSON of the wrong shape, and is ``None`` when it was not JSON at all.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        status: int | None = None,
        url: str | None = None,
        decodable: bool = True,
    ) -> None:
        self.path: str | None = path
        """The offending field, such as ``data[3].links[0]``.

        ``None`` for a body that is not JSON, and when the fault is in the
        body as a whole rather than in one field.
        """
        self.status: int | None = status
        """The HTTP status of the response, a success such as ``200``."""
        self.url: str | None = url
        """The URL requested; it holds no key, which travels in a header."""
        self.decodable: bool = decodable
        """Whether the body was JSON at all (of the wrong shape, if so)."""
        text = message if url is None else f"{message} (GET {url})"
        super().__init__(text)

    @property
    def retryable(self) -> bool:
        """True for a body that was not JSON at all, which a retry may fix.

        A body that is JSON of the wrong shape is the server's deliberate
        answer; sending the request again would only get it again.
        """
        return not self.decodable


class ResponseTooLargeError(BlatError):
    """A response's body is larger than the client's ``max_response_bytes``.

    Not retried: the same request would get the same body.
    """

    def __init__(self, limit: int, *, url: str | None = None) -> None:
        self.limit: int = limit
        """The client's ``max_response_bytes``: the most bytes of a body it reads."""
        self.url: str | None = url
        """The URL requested; it holds no key, which travels in a header."""
        text = f"the response body is over the client's limit of {limit:,} bytes"
        text += " (max_response_bytes)" if url is None else f" (max_response_bytes; GET {url})"
        super().__init__(text)

    def __reduce__(self) -> tuple[Any, ...]:
        return (functools.partial(type(self), self.limit, url=self.url), ())


class PaginationError(BlatError):
    """The server's pages contradict each other, so the read cannot go on safely.

    For example a server that ignores ``from`` and repeats a page, a page
    whose items were already yielded, or a ``total`` that shrinks.
    """


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}


def status_error_class(status: int) -> type[APIStatusError]:
    """Return the `APIStatusError` subclass for an HTTP status."""
    if status >= 500:
        return InternalServerError
    return _STATUS_CLASSES.get(status, APIStatusError)
