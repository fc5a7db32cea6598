"""The faults a `FakeBlatServer` can put into its answers, made by the factories on `Fault`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Fault:
    """Something going wrong with one answer; make one with the factories below.

    A request gets at most one fault: the first matching one queued with
    [`FakeBlatServer.inject`][blat_async.testing.FakeBlatServer.inject], otherwise
    possibly one of its batch's ``faults``.
    [`Latency`][blat_async.testing.Latency], [`WrongType`][blat_async.testing.WrongType]
    and [`IgnoreFrom`][blat_async.testing.IgnoreFrom] change a normal answer;
    [`StatusError`][blat_async.testing.StatusError],
    [`HtmlError`][blat_async.testing.HtmlError] and
    [`MalformedJson`][blat_async.testing.MalformedJson] replace it;
    [`TruncatedJson`][blat_async.testing.TruncatedJson] and
    [`DropConnection`][blat_async.testing.DropConnection] cut it short.
    """

    def __post_init__(self) -> None:
        if type(self) is Fault:
            raise TypeError("Fault is abstract: make one with a factory such as Fault.status(500)")

    @staticmethod
    def latency(seconds: float) -> Latency:
        """Wait ``seconds`` before answering normally."""
        return Latency(seconds)

    @staticmethod
    def status(
        status: int,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> StatusError:
        """Answer ``status`` with the API's JSON error body, and ``Retry-After`` if given."""
        return StatusError(status, retry_after=retry_after, code=code, message=message)

    @staticmethod
    def html(status: int = 502) -> HtmlError:
        """Answer ``status`` with the HTML page a proxy such as nginx sends."""
        return HtmlError(status)

    @staticmethod
    def malformed_json() -> MalformedJson:
        """Answer 200 with a JSON content type and a body that is not JSON."""
        return MalformedJson()

    @staticmethod
    def truncated_json() -> TruncatedJson:
        """Send half the body under a ``Content-Length`` of all of it, then close."""
        return TruncatedJson()

    @staticmethod
    def drop_connection(*, send_headers: bool = True) -> DropConnection:
        """Close the connection mid-body, or before any byte if not ``send_headers``."""
        return DropConnection(send_headers=send_headers)

    @staticmethod
    def wrong_type(field: str | None = None, value: Any = "not-a-list") -> WrongType:
        """Answer 200 with ``field`` set to ``value``, a value of the wrong type.

        ``field=None`` names each item's links: ``links`` in a sitemap batch,
        ``extracted_links`` in a scrape batch.
        """
        return WrongType(field, value)

    @staticmethod
    def ignore_from() -> IgnoreFrom:
        """Answer the first page whatever ``from`` asks for, as a server repeating itself."""
        return IgnoreFrom()


@dataclass(frozen=True, slots=True)
class Latency(Fault):
    """Wait ``seconds`` before answering normally."""

    seconds: float
    """How long to wait, in seconds, before the normal answer."""

    def __post_init__(self) -> None:
        if not self.seconds >= 0:
            raise ValueError(f"seconds must be >= 0, got {self.seconds!r}")


@dataclass(frozen=True, slots=True)
class StatusError(Fault):
    """Answer ``status_code`` with the API's JSON error body ``{"code", "message", "details"}``.

    ``retry_after`` (seconds) is sent as the ``Retry-After`` header; a fraction
    is sent as is (``"0.05"``), which is not standard HTTP but keeps tests fast.
    """

    status_code: int
    """The error status answered, 4xx or 5xx."""
    retry_after: float | None = None
    """Seconds sent as ``Retry-After`` and as ``details.retry_after``; ``None``: neither."""
    code: str | None = None
    """The body's ``code``; ``None``: made from the status phrase (``"TOO_MANY_REQUESTS"``)."""
    message: str | None = None
    """The body's ``message``; ``None`` for the API's own message for the status, or its phrase."""

    def __post_init__(self) -> None:
        _check_error_status(self.status_code)
        if self.retry_after is not None and not self.retry_after >= 0:
            raise ValueError(f"retry_after must be >= 0, got {self.retry_after!r}")


@dataclass(frozen=True, slots=True)
class HtmlError(Fault):
    """Answer ``status_code`` with an nginx-like ``text/html`` error page."""

    status_code: int = 502
    """The error status answered, 4xx or 5xx."""

    def __post_init__(self) -> None:
        _check_error_status(self.status_code)


@dataclass(frozen=True, slots=True)
class MalformedJson(Fault):
    """Answer 200, ``application/json``, with a body that is not JSON."""


@dataclass(frozen=True, slots=True)
class TruncatedJson(Fault):
    """Claim the whole body in ``Content-Length``, send half of it, then close.

    The client sees a payload error (``aiohttp.ClientPayloadError``).
    """


@dataclass(frozen=True, slots=True)
class DropConnection(Fault):
    """Close the connection in the middle of a chunked body.

    With ``send_headers=False`` the connection closes before the status line,
    as a server that went away (``aiohttp.ServerDisconnectedError``).
    """

    send_headers: bool = True
    """Whether the status line and headers are sent before the connection closes."""


@dataclass(frozen=True, slots=True)
class WrongType(Fault):
    """Answer 200 with ``field`` replaced by ``value``.

    ``field`` names a key of the response (``"total"``, ``"data"``...) or,
    failing that, a key of every item in ``data``, dotted for nested keys
    (``"links"``, ``"metadata.job_id"``). ``None`` names each item's links, in
    either kind of batch: ``links`` of a sitemap, ``extracted_links`` of a
    scraped page.
    """

    field: str | None = None
    """The key replaced: of the response, or else of every item, dotted for nested keys.

    ``None``: the items' links, ``links`` or ``extracted_links`` by the batch's kind.
    """
    value: Any = "not-a-list"
    """What the key is set to instead."""


@dataclass(frozen=True, slots=True)
class IgnoreFrom(Fault):
    """Answer the page at offset 0 whatever ``from`` asks for."""


def _check_error_status(status: int) -> None:
    if not 400 <= status <= 599:
        raise ValueError(f"an error status must be 4xx or 5xx, got {status!r}")
