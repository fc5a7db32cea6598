"""The HTTP protocol of the ``from``-paged batch endpoints, without any I/O.

Building a page's URL and turning a response's ``(status, headers, body)``
into a model or an exception are plain functions here, so they are tested
without a socket; ``_transport.py`` only moves bytes. What differs from one
endpoint to another (its path, its page model) comes in as an `Endpoint`.
"""

from __future__ import annotations

import email.utils
import gc
import ipaddress
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, overload
from urllib.parse import quote

from yarl import URL

from ._converter import StructureError
from ._endpoints import SITEMAP, Endpoint, PageT
from .errors import APIStatusError, ResponseValidationError, status_error_class
from .models import BatchScrapeSitemapStatusResponse

__all__ = [
    "PAGE_PATH",
    "PagePath",
    "build_headers",
    "decode_page_response",
    "error_from_response",
    "is_loopback",
    "loads",
    "normalize_base_url",
    "parse_retry_after",
]

_fast_loads: Callable[[bytes], Any]
try:  # orjson, when installed (the ``speed`` extra), decodes several times faster.
    import orjson

    _fast_loads = orjson.loads
except ImportError:  # pragma: no cover - depends on the environment
    _fast_loads = json.loads


def loads(body: bytes) -> Any:
    """Decode JSON bytes with the fastest decoder available; raise `ValueError` if not JSON.

    orjson refuses some JSON that the standard library reads (lone
    surrogates in strings): such a body is decoded again with the standard
    library, so that only a body that is not JSON is refused.
    """
    try:
        return _fast_loads(body)
    except ValueError:
        if _fast_loads is json.loads:  # pragma: no cover - without orjson
            raise
    return json.loads(body)


PAGE_PATH: Final = SITEMAP.path
"""The batch sitemap endpoint's path below the base URL, before the batch id."""
_EXCERPT_CHARS: Final = 200
_EXCERPT_SCAN_BYTES: Final = 64 * 1024
"""Only this much of a body that is not JSON is searched for an excerpt."""
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine: ``localhost`` or a loopback address."""
    if host.lower() in _LOOPBACK_NAMES or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def normalize_base_url(base_url: str | URL, *, allow_insecure_http: bool = False) -> URL:
    """Check a base URL and return it with a trailing slash, keeping any path prefix.

    Plain ``http://`` would send the API key in clear text, so it is refused
    for any host but loopback unless ``allow_insecure_http`` is true.
    """
    url = base_url if isinstance(base_url, URL) else URL(str(base_url))
    if url.scheme not in {"http", "https"} or not url.host:
        raise ValueError(f"base_url must be an http:// or https:// URL with a host, got {url!s}")
    if url.user is not None or url.password is not None:
        raise ValueError("base_url must not carry credentials; pass the key as api_key")
    if url.query_string or url.fragment:
        raise ValueError(f"base_url must not have a query or fragment, got {url!s}")
    if url.scheme == "http" and not allow_insecure_http and not is_loopback(url.host):
        raise ValueError(
            f"base_url {url!s} is plain http:// to a host that is not loopback, so the API key "
            "would cross the network in clear text; use https://, or pass "
            "allow_insecure_http=True (or set BLAT_ALLOW_INSECURE_HTTP=1) to accept that"
        )
    # Always set the path: yarl prints a bare host without its "/" path.
    path = url.raw_path if url.raw_path.endswith("/") else url.raw_path + "/"
    return url.with_path(path, encoded=True)


def encode_batch_id(batch_id: str) -> str:
    """Percent-encode a batch id as exactly one path segment.

    Every byte outside RFC 3986's unreserved set is encoded, so ``/``, ``?``,
    ``#``, ``%``, spaces, CR and LF stay inside the segment. ``.`` and ``..``
    cannot be sent as one: every URL library and server resolves them as
    "this folder" and "the parent", even percent-encoded.
    """
    if not isinstance(batch_id, str):
        raise TypeError(f"batch_id must be a str, got {type(batch_id).__name__}")
    if not batch_id:
        raise ValueError("batch_id must not be empty")
    if batch_id in {".", ".."}:
        raise ValueError(f"batch_id {batch_id!r} cannot be sent as a path segment")
    try:
        return quote(batch_id, safe="", encoding="utf-8", errors="strict")
    except UnicodeEncodeError:
        raise ValueError(f"batch_id {batch_id!r} is not valid Unicode text") from None


class PagePath:
    """Builds the URL of one batch's pages: ``{base}{endpoint.path}{batch_id}?from=N``."""

    __slots__ = ("_base",)

    def __init__(self, base_url: URL, batch_id: str, endpoint: Endpoint[Any] = SITEMAP) -> None:
        # Already encoded: yarl must not encode the segment a second time.
        self._base = URL(f"{base_url}{endpoint.path}{encode_batch_id(batch_id)}", encoded=True)

    def url(self, offset: int) -> URL:
        """Return the URL of the page that starts at ``offset``."""
        # A third of the time of parsing the whole URL again for each page.
        return self._base.with_query(f"from={offset}")


def build_headers(
    api_key: str, user_agent: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Return the headers of every request, with ``extra`` ones; those may set the User-Agent."""
    headers = {"User-Agent": user_agent}
    for name, value in (extra or {}).items():
        headers["User-Agent" if name.lower() == "user-agent" else name] = value
    headers["Accept"] = "application/json"
    headers["Authorization"] = f"Bearer {api_key}"
    return headers


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Return a ``Retry-After`` header's delay in seconds, or ``None`` if absent or unreadable.

    The header holds either seconds (``"120"``) or an HTTP date; a date in the
    past means no wait. Any other value, such as a date whose year does not
    fit a `datetime`, is ignored: this never raises.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds != float("inf") else None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    # A year, day or hour too big for a C long overflows instead of a ValueError.
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def _title(head: bytes) -> bytes | None:
    """Return the text of the first ``<title>`` element in ``head``, if it is closed.

    Plain searches, each from where the previous one stopped, so the time is
    linear in ``head`` whatever it holds (a regular expression took seconds on
    ``<title>`` repeated).
    """
    lowered = head.lower()
    start = lowered.find(b"<title")
    if start < 0:
        return None
    opened = lowered.find(b">", start)
    if opened < 0:
        return None
    closed = lowered.find(b"</title", opened)
    return None if closed < 0 else head[opened + 1 : closed]


def _excerpt(body: bytes) -> str | None:
    """Return a short, readable excerpt of a body that is not the API's JSON.

    The excerpt is an HTML page's title, or else the start of the body; only
    the body's first 64 KiB are looked at, however long it is.
    """
    if not body:
        return None
    head = body[:_EXCERPT_SCAN_BYTES]
    title = _title(head)
    text = (head if title is None else title).decode("utf-8", errors="replace")
    text = " ".join(text.split())
    if len(text) > _EXCERPT_CHARS:
        text = text[:_EXCERPT_CHARS] + "..."
    return text or None


def error_from_response(
    status: int, headers: Mapping[str, str], body: bytes, *, url: str | URL | None = None
) -> APIStatusError:
    """Build the typed error for a response that is not a success.

    The API's error body is ``{"code", "message", "details"}``; any other body
    (an HTML page from a proxy, an empty body) still gives the class of its
    status, with an excerpt of the body.
    """
    code = message = None
    details: Mapping[str, Any] | None = None
    excerpt = None
    try:
        decoded = loads(body)
    except (ValueError, RecursionError):
        decoded = None
    if isinstance(decoded, dict) and ("code" in decoded or "message" in decoded):
        code = decoded.get("code") if isinstance(decoded.get("code"), str) else None
        message = decoded.get("message") if isinstance(decoded.get("message"), str) else None
        raw_details = decoded.get("details")
        details = raw_details if isinstance(raw_details, dict) else None
    else:
        excerpt = _excerpt(body)
    if 300 <= status < 400:
        location = headers.get("Location")
        message = (
            f"unexpected redirect to {location}; blat_async does not follow redirects, "
            "so set base_url to the address the API answers at"
        )
    return status_error_class(status)(
        status,
        code=code,
        message=message,
        details=details,
        body=excerpt,
        retry_after=parse_retry_after(headers.get("Retry-After")),
        url=_text(url),
    )


_GC_PAUSE_BYTES: Final = 64 * 1024
"""Bodies at least this large are decoded and structured with the cyclic GC paused."""


@overload
def decode_page_response(
    status: int, headers: Mapping[str, str], body: bytes, *, url: str | URL | None = None
) -> BatchScrapeSitemapStatusResponse: ...
@overload
def decode_page_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    url: str | URL | None = None,
    endpoint: Endpoint[PageT],
) -> PageT: ...
def decode_page_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    url: str | URL | None = None,
    endpoint: Endpoint[Any] = SITEMAP,
) -> Any:
    """Turn a response into a page of ``endpoint`` (the batch sitemap endpoint's by default).

    Raises the typed error the response stands for when it is not a page. The
    ``url`` the errors name is made text only when one is raised.
    """
    if not 200 <= status < 300:
        raise error_from_response(status, headers, body, url=url)
    # Decoding a large page allocates tens of thousands of containers that
    # live only until the page is structured. With the cyclic collector on,
    # every allocation threshold crossed walks them, and again once promoted;
    # reference counting frees them either way. Paused, the collector sees
    # only what survives, once, after (Mercurial's `util.nogc` does the same).
    if len(body) < _GC_PAUSE_BYTES or not gc.isenabled():
        return _decode(endpoint, status, body, url)
    gc.disable()
    try:
        return _decode(endpoint, status, body, url)
    finally:
        gc.enable()


def _decode(endpoint: Endpoint[PageT], status: int, body: bytes, url: str | URL | None) -> PageT:
    try:
        decoded = loads(body)
    except (ValueError, RecursionError) as exc:
        excerpt = _excerpt(body)
        raise ResponseValidationError(
            f"HTTP {status} body is not JSON: {excerpt!r}",
            status=status,
            url=_text(url),
            decodable=False,
        ) from exc
    problem: StructureError
    try:
        return endpoint.structure(decoded)
    except StructureError as error:
        problem = error
    if _fast_loads is not json.loads:
        # orjson reads an integer past 64 bits as a float; the standard
        # library reads it as the integer it is, and its problem is the one
        # to report.
        try:
            return endpoint.structure(json.loads(body))
        except StructureError as error:
            problem = error
    where = problem.path or "the body"
    raise ResponseValidationError(
        f"HTTP {status} body does not fit the {endpoint.name} schema at {where}: {problem.problem}",
        path=problem.path,
        status=status,
        url=_text(url),
    ) from problem


def _text(url: str | URL | None) -> str | None:
    """The URL an error names, as text."""
    return None if url is None else str(url)
