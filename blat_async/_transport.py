"""One request's bytes with aiohttp: sending it, the body's size cap, the proxy, and failures.

`send` is the only code in the request path that touches aiohttp: it sends
one GET and returns the status, the headers and the whole body, or raises
ours. Transport failures are mapped to our errors here, in one place
(`transport_error`), with aiohttp's error chained and the key taken out of
it. What the bytes mean is decided elsewhere, without I/O (``_protocol.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, NamedTuple

import aiohttp
import attrs
from aiohttp.helpers import get_env_proxy_for_url
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ._protocol import is_loopback
from .errors import APIConnectionError, APITimeoutError, ResponseTooLargeError

__all__ = [
    "Request",
    "Response",
    "env_proxy",
    "read_body",
    "send",
    "transport_error",
    "without_key",
]

# The first row whose class matches maps a transport failure to ours, as
# httpx's `_transports/default.py` does.
_TRANSPORT_ERRORS: Final[tuple[tuple[type[BaseException], type[APIConnectionError], str], ...]] = (
    (TimeoutError, APITimeoutError, "no complete response within {timeout} s"),
    (
        aiohttp.ClientPayloadError,
        APIConnectionError,
        "the connection dropped before the whole body arrived",
    ),
    (
        aiohttp.ServerDisconnectedError,
        APIConnectionError,
        "the server closed the connection without answering",
    ),
    (aiohttp.ClientConnectorError, APIConnectionError, "could not connect to {host}:{port}: {os}"),
    (BaseException, APIConnectionError, "{kind}: {error}"),
)


def _frozen_headers(headers: Mapping[str, str]) -> CIMultiDictProxy[str]:
    # aiohttp merges a multidict proxy into the session's headers as it is,
    # where a plain mapping is copied into a new multidict at every request.
    return CIMultiDictProxy(CIMultiDict(headers))


@attrs.frozen
class Request:
    """How a client sends every request: its headers, timeout and proxy."""

    headers: CIMultiDictProxy[str] = attrs.field(converter=_frozen_headers)
    timeout: aiohttp.ClientTimeout
    proxy: URL | None
    proxy_auth: aiohttp.BasicAuth | None


class Response(NamedTuple):
    """An answer: its status, its headers and its whole body, decompressed."""

    status: int
    headers: Mapping[str, str]
    body: bytes


async def send(
    session: aiohttp.ClientSession,
    url: URL,
    how: Request,
    *,
    max_bytes: int,
    on_answer: Callable[[], None] | None = None,
) -> Response:
    """Send ``GET url`` and return the answer, whatever its status.

    ``on_answer`` is called once the server has answered, before the body is
    read. Raises `APIConnectionError` (or `APITimeoutError`) when no whole
    answer came, and `ResponseTooLargeError` for a body over ``max_bytes``.
    """
    try:
        # Redirects are not followed, so the key never reaches another
        # origin; raise_for_status is off even on a borrowed session that
        # turned it on, so that error bodies become typed errors.
        async with session.get(
            url,
            headers=how.headers,
            timeout=how.timeout,
            allow_redirects=False,
            raise_for_status=False,
            proxy=how.proxy,
            proxy_auth=how.proxy_auth,
        ) as response:
            if on_answer is not None:
                on_answer()
            body = await read_body(response, max_bytes, url)
            return Response(response.status, response.headers, body)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise transport_error(exc, url, how.timeout) from without_key(exc)


def transport_error(
    error: BaseException, url: URL, timeout: aiohttp.ClientTimeout
) -> APIConnectionError:
    """Return our error for a request that got no whole response."""
    cls, template = next((c, t) for kind, c, t in _TRANSPORT_ERRORS if isinstance(error, kind))
    message = template.format(
        timeout=timeout.total,
        host=url.host,
        port=url.port,
        os=getattr(error, "os_error", None),
        kind=type(error).__name__,
        error=error,
    )
    return cls(f"{message} (GET {url})")


def without_key(error: BaseException) -> BaseException:
    """Drop the ``Authorization`` header that aiohttp keeps on some errors' request info.

    The error is chained as ``__cause__``, and tools that ``repr`` causes
    (error trackers, rich tracebacks) would show the key. aiohttp keeps the
    request info in ``args`` too, and chains errors of its own, so every
    error of the chain is cleaned, attribute and ``args``.
    """

    def cleaned(info: aiohttp.RequestInfo) -> aiohttp.RequestInfo:
        headers = CIMultiDict(info.headers)
        headers.popall("Authorization", None)
        return aiohttp.RequestInfo(info.url, info.method, CIMultiDictProxy(headers), info.real_url)

    seen: set[int] = set()
    chain: list[BaseException | None] = [error]
    while chain:
        link = chain.pop()
        if link is None or id(link) in seen:
            continue
        seen.add(id(link))
        info = getattr(link, "request_info", None)
        if isinstance(info, aiohttp.RequestInfo):
            link.request_info = cleaned(info)  # type: ignore[attr-defined]
        if any(isinstance(arg, aiohttp.RequestInfo) for arg in link.args):
            link.args = tuple(
                cleaned(arg) if isinstance(arg, aiohttp.RequestInfo) else arg for arg in link.args
            )
        chain += [link.__cause__, link.__context__]
    return error


async def read_body(response: aiohttp.ClientResponse, limit: int, url: URL) -> bytes:
    """Read a whole body, decompressed, refusing one over ``limit`` bytes."""
    length = response.content_length
    if length is not None and length > limit:
        raise ResponseTooLargeError(limit, url=str(url))
    if length is not None and "Content-Encoding" not in response.headers:
        # Read whole at once: the parser stops at the announced length, which
        # is within the limit, and nothing inflates it (aiohttp refuses an
        # answer that announces a length and is chunked too).
        return await response.read()
    chunks = []
    size = 0
    # aiohttp inflates a compressed body a bounded piece at a time, so a
    # small body that inflates to gigabytes stops at the limit.
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise ResponseTooLargeError(limit, url=str(url))
        chunks.append(chunk)
    return b"".join(chunks)


def env_proxy(url: URL) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """The proxy that ``HTTP_PROXY``, ``HTTPS_PROXY`` and ``NO_PROXY`` choose for ``url``.

    Looked up once per client, where aiohttp's ``trust_env`` would look it
    up (and read ``~/.netrc``) on a thread at every request. A loopback
    address never goes through a proxy, which could not reach it.
    """
    if url.host is None or is_loopback(url.host):
        return None, None
    try:
        return get_env_proxy_for_url(url)
    except LookupError:
        return None, None
