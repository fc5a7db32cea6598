"""`BlatClient`: the session, timeouts, retries, and the batch sitemap endpoint's methods."""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import random
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from types import TracebackType
from typing import Final, Self

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from . import _defaults
from ._logging import configure_from_env, logger
from ._pagination import Delivery, ReadPlan
from ._protocol import (
    PagePath,
    build_headers,
    decode_page_response,
    normalize_base_url,
)
from ._readahead import Fetched, PollPolicy, ReadAhead, ReadProgress, RequestHooks
from ._retry import DEFAULT_RETRY, RatePause, RetryPolicy, retrying
from ._version import __version__
from .errors import APIConnectionError, APITimeoutError, BlatError, ResponseTooLargeError
from .models import BatchScrapeSitemapData, BatchScrapeSitemapStatusResponse

__all__ = ["BlatClient"]

_Page = BatchScrapeSitemapStatusResponse


def _check_int(name: str, value: object, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_positive(name: str, value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return float(value)


def _without_key(error: BaseException) -> BaseException:
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


def _transport_error(
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


def _nothing() -> None:
    pass


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


class BlatClient:
    """An asyncio client for Blat's batch sitemap scrape results.

    Use it as an async context manager, or call `close` when done:

    ```python
    async with BlatClient() as client:
        async for item in client.iter_batch_scrape_sitemap(batch_id):
            print(item.metadata.url if item.metadata else None, len(item.links))
    ```

    Args:
        api_key: The API key; defaults to the ``BLAT_API_KEY`` environment
            variable. It is sent as ``Authorization: Bearer`` and never shown
            in ``repr``, logs or errors.
        base_url: The API's address; defaults to ``BLAT_BASE_URL``, then
            ``https://api.blat.ai``. A path prefix (``http://host/v9/``) is kept.
        timeout: Seconds (or an `aiohttp.ClientTimeout`) that each attempt of
            a request may take; a retry gets a fresh timeout. 30 s by default.
        retry: When and how failed requests are retried; by default 3
            retries, backing off from 0.5 s to at most 8 s.
        session: An `aiohttp.ClientSession` to borrow. The client uses it and
            never closes it. Without one, the client opens its own on first
            use and closes it in `close`.
        concurrency: Page requests a read keeps in flight (read-ahead), 6 by
            default; each iterator call can override it.
        max_in_flight: Requests the whole client keeps in flight, across all
            its reads and calls (64 by default). Requests beyond it wait their
            turn, first come first served, and the wait is not part of any
            request's ``timeout``.
        max_response_bytes: The largest body the client reads, after
            decompression (16 MiB by default); a larger one raises
            `ResponseTooLargeError` without being read whole.
        allow_insecure_http: Accept a plain ``http://`` base URL to a host
            that is not loopback, sending the key unencrypted. Defaults to
            the ``BLAT_ALLOW_INSECURE_HTTP`` environment variable.

    Raises:
        BlatError: No API key was given and ``BLAT_API_KEY`` is not set.
        ValueError: An argument is out of range, or the base URL is unusable.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | URL | None = None,
        timeout: float | aiohttp.ClientTimeout = _defaults.DEFAULT_TIMEOUT,
        retry: RetryPolicy = DEFAULT_RETRY,
        session: aiohttp.ClientSession | None = None,
        concurrency: int = _defaults.DEFAULT_CONCURRENCY,
        max_in_flight: int = _defaults.DEFAULT_MAX_IN_FLIGHT,
        max_response_bytes: int = _defaults.DEFAULT_MAX_RESPONSE_BYTES,
        allow_insecure_http: bool | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(_defaults.API_KEY_ENV)
        if not key:
            raise BlatError(
                f"no API key: pass api_key= to BlatClient or set {_defaults.API_KEY_ENV}"
            )
        if not isinstance(key, str):
            raise TypeError(f"api_key must be a str, got {type(key).__name__}")
        if not key.isprintable() or not key.isascii() or key != key.strip():
            # The key is not echoed: it is a secret even when malformed.
            raise ValueError("api_key holds characters that cannot be sent in an HTTP header")
        if allow_insecure_http is None:
            allow_insecure_http = _env_flag(_defaults.ALLOW_INSECURE_HTTP_ENV)
        if base_url is None:
            base_url = os.environ.get(_defaults.BASE_URL_ENV) or _defaults.DEFAULT_BASE_URL
        elif not str(base_url):
            # An empty string is a configuration mistake, not a request for the default.
            raise ValueError("base_url must not be empty; pass None for the default")
        self._base_url = normalize_base_url(base_url, allow_insecure_http=allow_insecure_http)
        if isinstance(timeout, aiohttp.ClientTimeout):
            self._timeout = timeout
        else:
            self._timeout = aiohttp.ClientTimeout(total=_check_positive("timeout", timeout))
        if not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise TypeError(f"session must be an aiohttp.ClientSession, got {type(session)}")
        self._retry = retry
        self._concurrency = _check_int("concurrency", concurrency, 1)
        self._max_in_flight = _check_int("max_in_flight", max_in_flight, 1)
        # One slot a request, taken before its attempt starts and its timeout
        # runs; asyncio's semaphore serves waiters in the order they came.
        self._slots = asyncio.Semaphore(self._max_in_flight)
        self._max_response_bytes = _check_int("max_response_bytes", max_response_bytes, 1)
        self._headers = build_headers(key, f"blat-async/{__version__}")
        # To take the key out of any text the server echoes back.
        self._secret = key.encode()
        self._session = session
        self._owns_session = session is None
        self._tasks: set[asyncio.Task[None]] = set()
        self._rng = random.Random()
        self._pause = RatePause()
        # Set by close(); it also wakes a follow-mode read waiting between polls.
        self._closing = asyncio.Event()
        # close()'s work, in a task of its own that every close() waits for, so
        # that a close() cancelled half-way (by asyncio.timeout or a TaskGroup
        # around `async with`) does not leave the session open.
        self._shutdown: asyncio.Task[None] | None = None
        configure_from_env()

    # -- lifecycle -----------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API's address, with a trailing slash."""
        return str(self._base_url)

    @property
    def closed(self) -> bool:
        """Whether `close` has been called."""
        return self._closing.is_set()

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<BlatClient base_url={self.base_url!r} api_key=<hidden>{state}>"

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop every read in flight and close the session the client opened.

        A borrowed session is left open. Calling `close` again waits until
        the first call's work is done. A `close` that is cancelled raises the
        cancellation at once and its work goes on in the background, so the
        session is closed all the same.
        """
        self._closing.set()
        if self._shutdown is None:
            self._shutdown = asyncio.get_running_loop().create_task(
                self._shut_down(), name="blat-close"
            )
        await asyncio.shield(self._shutdown)

    async def _shut_down(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        try:
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            # Even when this task is cancelled too, as asyncio.run does on the way out.
            if self._owns_session and self._session is not None:
                await self._session.close()
            self._session = None

    def _check_open(self) -> None:
        if self.closed:
            raise BlatError("this BlatClient is closed; create a new one")

    def _get_session(self) -> aiohttp.ClientSession:
        self._check_open()
        if self._session is None:
            # The pool holds as many connections as the client has slots, so
            # that no request waits for a connection while its timeout runs.
            connector = aiohttp.TCPConnector(limit=self._max_in_flight)
            self._session = aiohttp.ClientSession(connector=connector)
        elif self._session.closed:
            raise BlatError("the aiohttp session given to BlatClient has been closed")
        return self._session

    # -- one page ------------------------------------------------------------

    async def get_batch_scrape_sitemap_status(
        self, batch_id: str, *, from_: int = 0
    ) -> BatchScrapeSitemapStatusResponse:
        """Fetch one page of a batch's results: the batch's status and up to a page of items.

        Sends ``GET {base_url}batch/scrape_sitemap/{batch_id}?from={from_}``,
        retrying as the client's `RetryPolicy` says.

        ```python
        page = await client.get_batch_scrape_sitemap_status("b-123", from_=20)
        print(page.status, page.processed, page.total, len(page.data))  # running 18 500 10
        ```
        """
        url = PagePath(self._base_url, batch_id).url(_check_int("from_", from_))
        self._check_open()
        fetched = await self._fetch(
            url, RequestHooks(itertools.count().__next__, _nothing, _nothing)
        )
        return fetched.page

    async def _fetch(self, url: URL, hooks: RequestHooks) -> Fetched:
        """Fetch and decode a page, retrying what the policy allows; the last error is raised."""
        return await retrying(
            functools.partial(self._attempt, url, hooks.on_answer),
            self._retry,
            self._pause,
            count_failure=hooks.count_failure,
            what=f"GET {url}",
            rng=self._rng,
            on_rate_limit=hooks.on_rate_limit,
        )

    async def _attempt(self, url: URL, on_answer: Callable[[], None]) -> Fetched:
        """Send one request and decode its answer; every failure becomes a `BlatError`."""
        session = self._get_session()
        async with self._slots:
            logger.debug("GET %s", url)
            try:
                # Redirects are not followed, so the key never reaches another
                # origin; raise_for_status is off even on a borrowed session
                # that turned it on, so that error bodies become typed errors.
                async with session.get(
                    url,
                    headers=self._headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                    raise_for_status=False,
                ) as response:
                    on_answer()
                    body = await self._read_body(response, url)
                    status, headers = response.status, response.headers
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise _transport_error(exc, url, self._timeout) from _without_key(exc)
        try:
            page = decode_page_response(status, headers, body, url=str(url))
        except BlatError:
            if self._secret in body:
                # The server echoed the key: the error is built again without it.
                hidden = body.replace(self._secret, b"<hidden>")
                decode_page_response(status, headers, hidden, url=str(url))
            raise
        return Fetched(page, len(body))

    async def _read_body(self, response: aiohttp.ClientResponse, url: URL) -> bytes:
        """Read a whole body, decompressed, refusing one over ``max_response_bytes``."""
        limit = self._max_response_bytes
        if response.content_length is not None and response.content_length > limit:
            raise ResponseTooLargeError(limit, url=str(url))
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

    # -- every page, every item ----------------------------------------------

    def iter_batch_scrape_sitemap_pages(
        self,
        batch_id: str,
        start: int = 0,
        stop: int | None = None,
        *,
        concurrency: int | None = None,
        follow: bool = False,
        poll_interval: float = _defaults.DEFAULT_POLL_INTERVAL,
        progress: ReadProgress | None = None,
    ) -> AsyncGenerator[BatchScrapeSitemapStatusResponse, None]:
        """Yield the pages of a batch from offset ``start``, each with only its new items.

        Every item appears in exactly one page, in offset order: a page's
        ``data`` holds the items not yielded before, cut at ``stop``. The
        other fields (``status``, ``processed``, ``total``, ``expires_at``)
        are the server's, from that page. The read ends as the end-of-read
        rules say (see `iter_batch_scrape_sitemap`).
        """
        return self._pages(
            *self._read_args(batch_id, start, stop, concurrency, follow, poll_interval, progress),
            progress,
        )

    def iter_batch_scrape_sitemap(
        self,
        batch_id: str,
        start: int = 0,
        stop: int | None = None,
        *,
        concurrency: int | None = None,
        follow: bool = False,
        poll_interval: float = _defaults.DEFAULT_POLL_INTERVAL,
        progress: ReadProgress | None = None,
    ) -> AsyncGenerator[BatchScrapeSitemapData, None]:
        """Yield every item (sitemap job) of a batch, exactly once, in offset order.

        Failed sitemap jobs are items too (``success=False``). The read ends
        when a page comes back empty, when the offset reaches the batch's
        ``total``, or at ``stop``; ``processed`` counts only successful jobs,
        so it never ends a read.

        Args:
            batch_id: The batch to read.
            start: The first offset to read, for example to resume a read.
            stop: The offset to stop before, to read one slice of a batch.
            concurrency: Page requests to keep in flight; defaults to the
                client's. 1 reads one page at a time.
            follow: Keep reading a batch that is still running: wait when
                caught up, and end once every job up to ``total`` has been
                read or the batch's status is final and nothing more comes.
                Bound it with ``asyncio.timeout()`` if needed.
            poll_interval: The first wait, in seconds, when a followed batch
                has nothing new; it grows up to 30 s while nothing comes.
            progress: A `ReadProgress` to update in place while reading.

        Raises:
            TypeError: An argument of the wrong type, before any request.
            ValueError: An argument out of range, before any request.
            BlatError: A subclass says what went wrong; see `blat_async.errors`.

        ```python
        async for item in client.iter_batch_scrape_sitemap("b-123"):
            for link in item.links:
                await queue.put(link)
        ```
        """
        return self._items(
            *self._read_args(batch_id, start, stop, concurrency, follow, poll_interval, progress),
            progress,
        )

    def _read_args(
        self,
        batch_id: str,
        start: int,
        stop: int | None,
        concurrency: int | None,
        follow: bool,
        poll_interval: float,
        progress: ReadProgress | None,
    ) -> tuple[PagePath, ReadPlan, int, PollPolicy | None]:
        """Check an iterator's arguments before any request, and build its plan."""
        path = PagePath(self._base_url, batch_id)
        start = _check_int("start", start)
        if stop is not None:
            stop = _check_int("stop", stop)
            if stop < start:
                raise ValueError(f"stop ({stop}) must be >= start ({start})")
        limit = (
            self._concurrency if concurrency is None else _check_int("concurrency", concurrency, 1)
        )
        if progress is not None and not isinstance(progress, ReadProgress):
            raise TypeError(f"progress must be a ReadProgress, got {type(progress).__name__}")
        poll = None
        if follow:
            interval = _check_positive("poll_interval", poll_interval)
            poll = PollPolicy(interval, max(interval, _defaults.MAX_POLL_INTERVAL))
        self._check_open()
        plan = ReadPlan(
            start,
            stop,
            follow=bool(follow),
            window=limit * _defaults.READ_AHEAD_PAGES_PER_REQUEST,
            window_bytes=_defaults.READ_AHEAD_BYTES,
        )
        return path, plan, limit, poll

    def _deliveries(
        self,
        path: PagePath,
        plan: ReadPlan,
        concurrency: int,
        poll: PollPolicy | None,
        progress: ReadProgress | None,
    ) -> AsyncGenerator[Delivery, None]:
        async def fetch(offset: int, hooks: RequestHooks) -> Fetched:
            return await self._fetch(path.url(offset), hooks)

        if progress is not None:
            progress.offset = plan.start
        return ReadAhead(
            plan,
            fetch,
            concurrency=concurrency,
            tasks_owner=self._tasks,
            check_open=self._check_open,
            closing=self._closing,
            poll=poll,
            progress=progress,
        ).deliveries()

    async def _pages(
        self,
        path: PagePath,
        plan: ReadPlan,
        concurrency: int,
        poll: PollPolicy | None,
        progress: ReadProgress | None,
    ) -> AsyncGenerator[_Page, None]:
        deliveries = self._deliveries(path, plan, concurrency, poll, progress)
        async with aclosing(deliveries):
            async for delivery in deliveries:
                if progress is not None:
                    progress.offset = delivery.offset + len(delivery.page.data)
                    progress.items += len(delivery.page.data)
                    progress.pages += 1
                yield delivery.page

    async def _items(
        self,
        path: PagePath,
        plan: ReadPlan,
        concurrency: int,
        poll: PollPolicy | None,
        progress: ReadProgress | None,
    ) -> AsyncGenerator[BatchScrapeSitemapData, None]:
        deliveries = self._deliveries(path, plan, concurrency, poll, progress)
        async with aclosing(deliveries):
            if progress is None:
                async for delivery in deliveries:
                    for item in delivery.page.data:
                        yield item
                return
            async for delivery in deliveries:
                progress.pages += 1
                offset = delivery.offset
                for item in delivery.page.data:
                    # Counted before the yield: while the caller handles an
                    # item, `offset` already points past it, where to resume.
                    offset += 1
                    progress.offset = offset
                    progress.items += 1
                    yield item
