"""`BlatClient`: the session, timeouts, retries, and the batch endpoints' methods."""

from __future__ import annotations

import asyncio
import copy
import functools
import os
import random
from collections.abc import AsyncGenerator, Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any, Self, cast

import aiohttp
import attrs
from yarl import URL

from . import _defaults, _options
from ._endpoints import SCRAPE, SITEMAP, Endpoint, PageT
from ._logging import configure_from_env, logger
from ._pagination import Delivery, ReadPlan
from ._protocol import PagePath, build_headers, decode_page_response, normalize_base_url
from ._readahead import (
    Fetched,
    PollPolicy,
    ReadAhead,
    ReadProgress,
    RequestHooks,
    items_of,
    pages_of,
)
from ._retry import DEFAULT_RETRY, RatePause, RetryPolicy, Slots, retrying
from ._transport import Request, Response, env_proxy, send
from ._version import __version__
from .errors import BlatError
from .models import (
    BatchScrapeData,
    BatchScrapeSitemapData,
    BatchScrapeSitemapStatusResponse,
    BatchScrapeStatusResponse,
)

__all__ = ["BlatClient"]


class _Shared:
    """What a client shares with the clients its `with_options` makes.

    The session, the request slots, the 429 pause, the running requests, and
    the lifetime: closing the client that made them closes them all.
    """

    def __init__(self, session: aiohttp.ClientSession | None, max_in_flight: int) -> None:
        self.session = session
        self.owns_session = session is None
        self.max_in_flight = max_in_flight
        # One slot a request, taken before its attempt starts and its timeout
        # runs; waiters are served in the order they came.
        self.slots = Slots(max_in_flight)
        self.pause = RatePause()
        self.rng = random.Random()
        self.tasks: set[asyncio.Task[None]] = set()
        # Set by close(); it also wakes a follow-mode read waiting between polls.
        self.closing = asyncio.Event()
        # close()'s work, in a task of its own that every close() waits for, so
        # that a close() cancelled half-way (by asyncio.timeout or a TaskGroup
        # around `async with`) does not leave the session open.
        self.shutdown: asyncio.Task[None] | None = None

    def check_open(self) -> None:
        if self.closing.is_set():
            raise BlatError("this BlatClient is closed; create a new one")

    def get_session(self) -> aiohttp.ClientSession:
        self.check_open()
        if self.session is None:
            # The pool holds as many connections as the client has slots, so
            # that no request waits for a connection while its timeout runs.
            connector = aiohttp.TCPConnector(limit=self.max_in_flight)
            # The API authenticates by header: a cookie that a server or a
            # proxy sets is neither kept nor sent back.
            self.session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar()
            )
        elif self.session.closed:
            raise BlatError("the aiohttp session given to BlatClient has been closed")
        return self.session

    async def close(self) -> None:
        self.closing.set()
        if self.shutdown is None:
            self.shutdown = asyncio.get_running_loop().create_task(
                self._shut_down(), name="blat-close"
            )
        await asyncio.shield(self.shutdown)

    async def _shut_down(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        try:
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            # Even when this task is cancelled too, as asyncio.run does on the way out.
            if self.owns_session and self.session is not None:
                await self.session.close()
            self.session = None


@attrs.frozen
class _Read:
    """One read's arguments, checked: where, its plan, and how."""

    endpoint: Endpoint[Any]
    path: PagePath
    plan: ReadPlan
    concurrency: int
    poll: PollPolicy | None


class BlatClient:
    """An asyncio client for Blat's batch results: batch sitemap and batch scrape.

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
            A timeout no request can have (infinite, NaN, zero or negative)
            raises `ValueError`.
        retry: When and how failed requests are retried; by default 3
            retries, backing off from 0.5 s to at most 8 s.
        max_retries: Retries after a request's first attempt, as
            ``RetryPolicy.max_retries``: it replaces ``retry``'s count and
            keeps the rest of its policy. 0 disables retrying.
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
            decompression; a larger one raises `ResponseTooLargeError`
            without being read whole. By default each endpoint's own: 16 MiB
            for a batch sitemap page, 64 MiB for a batch scrape page (ten
            scraped documents).
        allow_insecure_http: Accept a plain ``http://`` base URL to a host
            that is not loopback, sending the key unencrypted. Defaults to
            the ``BLAT_ALLOW_INSECURE_HTTP`` environment variable.
        proxy: The proxy to send requests through (``http://proxy:3128``).
            By default the client's own session takes it from
            ``HTTPS_PROXY``/``HTTP_PROXY``, minus the hosts in ``NO_PROXY``,
            as curl and httpx do; a borrowed session follows its own
            ``trust_env``.
        default_headers: Headers to send with every request, besides the
            client's own. They may replace the ``User-Agent``, and cannot set
            ``Authorization`` (pass ``api_key``) or ``Accept``.

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
        max_retries: int | None = None,
        session: aiohttp.ClientSession | None = None,
        concurrency: int = _defaults.DEFAULT_CONCURRENCY,
        max_in_flight: int = _defaults.DEFAULT_MAX_IN_FLIGHT,
        max_response_bytes: int | None = None,
        allow_insecure_http: bool | None = None,
        proxy: str | URL | None = None,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        key = _options.api_key(api_key)
        if allow_insecure_http is None:
            allow_insecure_http = _options.env_flag(_defaults.ALLOW_INSECURE_HTTP_ENV)
        if base_url is None:
            base_url = os.environ.get(_defaults.BASE_URL_ENV) or _defaults.DEFAULT_BASE_URL
        elif not str(base_url):
            # An empty string is a configuration mistake, not a request for the default.
            raise ValueError("base_url must not be empty; pass None for the default")
        self._base_url = normalize_base_url(base_url, allow_insecure_http=allow_insecure_http)
        self._retry = _options.retry_policy(retry, max_retries)
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise TypeError(f"session must be an aiohttp.ClientSession, got {type(session)}")
        self._concurrency = _options.check_int("concurrency", concurrency, 1)
        self._max_response_bytes = (
            None
            if max_response_bytes is None
            else _options.check_int("max_response_bytes", max_response_bytes, 1)
        )
        extra = _options.extra_headers(default_headers or {})
        self._request = Request(
            build_headers(key, f"blat-async/{__version__}", extra),
            _options.timeout(timeout),
            *self._choose_proxy(proxy, session),
        )
        # To take the key out of any text the server echoes back.
        self._secret = key.encode()
        self._shared = _Shared(session, _options.check_int("max_in_flight", max_in_flight, 1))
        self._made_by_with_options = False
        configure_from_env()

    def _choose_proxy(
        self, proxy: str | URL | None, session: aiohttp.ClientSession | None
    ) -> tuple[URL | None, aiohttp.BasicAuth | None]:
        if proxy is not None:
            return URL(str(proxy)), None
        if session is not None:
            return None, None  # a borrowed session follows its own trust_env
        return env_proxy(self._base_url)

    def with_options(
        self,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
        max_retries: int | None = None,
        concurrency: int | None = None,
    ) -> Self:
        """Return a client with other defaults that shares this one's session and limits.

        The new client uses this client's session, request slots
        (``max_in_flight``) and 429 pause, and lives as long as this one:
        closing this client closes it, and its own `close` does nothing.
        Arguments left out keep this client's values.

        ```python
        patient = client.with_options(timeout=120, max_retries=8)
        page = await patient.get_batch_scrape_sitemap_status("b-123")
        ```

        Args:
            timeout: Seconds (or an `aiohttp.ClientTimeout`) each attempt may take.
            retry: The `RetryPolicy` of the new client.
            max_retries: Retries after a request's first attempt; it replaces
                the count of ``retry`` (or of this client's policy).
            concurrency: Page requests a read keeps in flight.

        Raises:
            TypeError: An argument of the wrong type.
            ValueError: An argument out of range, such as an infinite timeout.
        """
        clone = copy.copy(self)
        if timeout is not None:
            clone._request = attrs.evolve(self._request, timeout=_options.timeout(timeout))
        if retry is not None or max_retries is not None:
            clone._retry = _options.retry_policy(retry or self._retry, max_retries)
        if concurrency is not None:
            clone._concurrency = _options.check_int("concurrency", concurrency, 1)
        clone._made_by_with_options = True
        return clone

    # -- lifecycle -----------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API's address, with a trailing slash."""
        return str(self._base_url)

    @property
    def closed(self) -> bool:
        """Whether `close` has been called (on the client whose `with_options` made this one)."""
        return self._shared.closing.is_set()

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<BlatClient base_url={self.base_url!r} api_key=<hidden>{state}>"

    async def __aenter__(self) -> Self:
        self._shared.check_open()
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
        session is closed all the same. On a client that `with_options` made,
        `close` does nothing: the client that made it owns the session.
        """
        if not self._made_by_with_options:
            await self._shared.close()

    # -- one page ------------------------------------------------------------

    async def get_batch_scrape_sitemap_status(
        self, batch_id: str, *, from_: int = 0
    ) -> BatchScrapeSitemapStatusResponse:
        """Fetch one page of a batch sitemap's results: its status and up to a page of items.

        Sends ``GET {base_url}batch/scrape_sitemap/{batch_id}?from={from_}``,
        retrying as the client's `RetryPolicy` says.

        ```python
        page = await client.get_batch_scrape_sitemap_status("b-123", from_=20)
        print(page.status, page.processed, page.total, len(page.data))  # running 18 500 10
        ```

        Args:
            batch_id: The batch to read.
            from_: The offset of the page's first item.

        Raises:
            TypeError: An argument of the wrong type, before any request.
            ValueError: An argument out of range, before any request.
            BlatError: A subclass says what went wrong; see `blat_async.errors`.
        """
        return await self._get_page(SITEMAP, batch_id, from_)

    async def get_batch_scrape_status(
        self, batch_id: str, *, from_: int = 0
    ) -> BatchScrapeStatusResponse:
        """Fetch one page of a batch scrape's results: its status and up to a page of items.

        Sends ``GET {base_url}batch/scrape/{batch_id}?from={from_}``, retrying
        as the client's `RetryPolicy` says. Each item is a scraped page, with
        its ``content`` and ``extracted_links``.

        ```python
        page = await client.get_batch_scrape_status("b-456", from_=10)
        print(page.status, page.total, [len(item.content or "") for item in page.data])
        ```

        Args:
            batch_id: The batch to read.
            from_: The offset of the page's first item.

        Raises:
            TypeError: An argument of the wrong type, before any request.
            ValueError: An argument out of range, before any request.
            BlatError: A subclass says what went wrong; see `blat_async.errors`.
        """
        return await self._get_page(SCRAPE, batch_id, from_)

    async def _get_page(self, endpoint: Endpoint[PageT], batch_id: str, from_: int) -> PageT:
        url = PagePath(self._base_url, batch_id, endpoint).url(_options.check_int("from_", from_))
        self._shared.check_open()
        fetched = await self._fetch(endpoint, url, RequestHooks())
        return cast(PageT, fetched.page)  # the page `endpoint` decoded

    def _fetch(
        self, endpoint: Endpoint[Any], url: URL, hooks: RequestHooks
    ) -> Coroutine[Any, Any, Fetched]:
        """Fetch and decode a page, retrying what the policy allows; the last error is raised."""
        # Returns the retry loop's coroutine rather than awaiting it: one
        # frame less for each of a request's many resumes.
        return retrying(
            functools.partial(self._attempt, endpoint, url, hooks.on_answer),
            self._retry,
            self._shared.pause,
            url=url,
            rng=self._shared.rng,
            on_rate_limit=hooks.on_rate_limit,
        )

    async def _attempt(
        self, endpoint: Endpoint[Any], url: URL, on_answer: Callable[[], None] | None
    ) -> Fetched:
        """Send one request in one of the client's slots, and decode its answer."""
        session = self._shared.get_session()
        limit = self._max_response_bytes or endpoint.max_response_bytes
        slots = self._shared.slots
        if not slots.take_nowait():
            await slots.take()
        try:
            # Waited here, with the slot held: a request that was waiting for
            # a slot when another one got a 429 waits out the pause too.
            # Skipped, await and all, by a client that never saw a 429.
            if self._shared.pause.ever:
                await self._shared.pause.wait()
            logger.debug("GET %s", url)
            response = await send(session, url, self._request, max_bytes=limit, on_answer=on_answer)
        finally:
            slots.give_back()
        return Fetched(self._decode(endpoint, response, url), len(response.body))

    def _decode(self, endpoint: Endpoint[PageT], response: Response, url: URL) -> PageT:
        """Decode a response; an error built from a body that echoes the key is never raised.

        The error is built again from the body with the key taken out, outside
        the ``except``: raised inside it, the first error would stay chained as
        the second one's ``__context__`` and show in every traceback.
        """
        status, headers, body = response.status, response.headers, response.body
        try:
            return decode_page_response(status, headers, body, url=url, endpoint=endpoint)
        except BlatError:
            if self._secret not in body:
                raise
        hidden = body.replace(self._secret, b"<hidden>")
        return decode_page_response(status, headers, hidden, url=url, endpoint=endpoint)

    # -- every page, every item ----------------------------------------------
    #
    # Both endpoints' iterators are one implementation (`_read`, `_deliveries`)
    # given the endpoint as a value; the public methods only name it.

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
        """Yield the pages of a batch sitemap from offset ``start``, each with only its new items.

        Every item appears in exactly one page, in offset order: a page's
        ``data`` holds the items not yielded before, cut at ``stop``. The
        other fields (``status``, ``processed``, ``total``, ``expires_at``)
        are the server's, from that page. The read ends as the end-of-read
        rules say, and takes the same arguments as `iter_batch_scrape_sitemap`.
        """
        read = self._read(SITEMAP, batch_id, start, stop, concurrency, follow, poll_interval)
        return pages_of(self._deliveries(read, progress), progress)

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
        """Yield every item (sitemap job) of a batch sitemap, exactly once, in offset order.

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
        read = self._read(SITEMAP, batch_id, start, stop, concurrency, follow, poll_interval)
        return items_of(self._deliveries(read, progress), progress)

    def iter_batch_scrape_pages(
        self,
        batch_id: str,
        start: int = 0,
        stop: int | None = None,
        *,
        concurrency: int | None = None,
        follow: bool = False,
        poll_interval: float = _defaults.DEFAULT_POLL_INTERVAL,
        progress: ReadProgress | None = None,
    ) -> AsyncGenerator[BatchScrapeStatusResponse, None]:
        """Yield the pages of a batch scrape from offset ``start``, each with only its new items.

        The batch scrape twin of `iter_batch_scrape_sitemap_pages`: every item
        in exactly one page, in offset order, with the same arguments as
        `iter_batch_scrape`.
        """
        read = self._read(SCRAPE, batch_id, start, stop, concurrency, follow, poll_interval)
        return pages_of(self._deliveries(read, progress), progress)

    def iter_batch_scrape(
        self,
        batch_id: str,
        start: int = 0,
        stop: int | None = None,
        *,
        concurrency: int | None = None,
        follow: bool = False,
        poll_interval: float = _defaults.DEFAULT_POLL_INTERVAL,
        progress: ReadProgress | None = None,
    ) -> AsyncGenerator[BatchScrapeData, None]:
        """Yield every item (scraped page) of a batch scrape, exactly once, in offset order.

        Failed scrapes are items too (``success=False``). The read ends as
        `iter_batch_scrape_sitemap`'s does, and takes the same arguments: at
        ``stop``, at the batch's ``total``, or at an empty page. A page of
        results holds up to ten scraped documents, so the read holds at most
        4 MiB of page bodies ahead of the caller (and always two pages).

        Args:
            batch_id: The batch to read.
            start: The first offset to read, for example to resume a read.
            stop: The offset to stop before, to read one slice of a batch.
            concurrency: Page requests to keep in flight; defaults to the
                client's. 1 reads one page at a time.
            follow: Keep reading a batch that is still running (see
                `iter_batch_scrape_sitemap`).
            poll_interval: The first wait, in seconds, when a followed batch
                has nothing new; it grows up to 30 s while nothing comes.
            progress: A `ReadProgress` to update in place while reading.

        Raises:
            TypeError: An argument of the wrong type, before any request.
            ValueError: An argument out of range, before any request.
            BlatError: A subclass says what went wrong; see `blat_async.errors`.

        ```python
        async for page in client.iter_batch_scrape("b-456"):
            if page.success and page.metadata:
                store(page.metadata.final_url, page.content)
        ```
        """
        read = self._read(SCRAPE, batch_id, start, stop, concurrency, follow, poll_interval)
        return items_of(self._deliveries(read, progress), progress)

    def _read(
        self,
        endpoint: Endpoint[Any],
        batch_id: str,
        start: int,
        stop: int | None,
        concurrency: int | None,
        follow: bool,
        poll_interval: float,
    ) -> _Read:
        """Check an iterator's arguments before any request, and plan the read."""
        path = PagePath(self._base_url, batch_id, endpoint)
        start = _options.check_int("start", start)
        if stop is not None:
            stop = _options.check_int("stop", stop)
            if stop < start:
                raise ValueError(f"stop ({stop}) must be >= start ({start})")
        limit = (
            self._concurrency
            if concurrency is None
            else _options.check_int("concurrency", concurrency, 1)
        )
        poll = None
        if follow:
            interval = _options.check_positive("poll_interval", poll_interval)
            poll = PollPolicy(interval, max(interval, _defaults.MAX_POLL_INTERVAL))
        self._shared.check_open()
        plan = ReadPlan(
            start,
            stop,
            follow=bool(follow),
            window=limit * _defaults.READ_AHEAD_PAGES_PER_REQUEST,
            window_bytes=endpoint.read_ahead_bytes,
        )
        return _Read(endpoint, path, plan, limit, poll)

    def _deliveries(
        self, read: _Read, progress: ReadProgress | None
    ) -> AsyncGenerator[Delivery, None]:
        if progress is not None and not isinstance(progress, ReadProgress):
            raise TypeError(f"progress must be a ReadProgress, got {type(progress).__name__}")

        def fetch(offset: int, hooks: RequestHooks) -> Coroutine[Any, Any, Fetched]:
            return self._fetch(read.endpoint, read.path.url(offset), hooks)

        shared = self._shared
        return ReadAhead(
            read.plan,
            fetch,
            concurrency=read.concurrency,
            tasks_owner=shared.tasks,
            check_open=shared.check_open,
            closing=shared.closing,
            poll=read.poll,
            progress=progress,
        ).deliveries()
