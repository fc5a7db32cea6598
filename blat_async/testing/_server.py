"""`FakeBlatServer`: the fake endpoints on loopback, and the requests it recorded."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import count
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote

from aiohttp import hdrs, web
from multidict import CIMultiDictProxy

from blat_async._protocol import PAGE_PATH

from ._batch import DEFAULT_LINK_BASE, DEFAULT_PAGE_SIZE, BatchKind, FakeBatch
from ._faults import DropConnection, Fault, IgnoreFrom, Latency, WrongType
from ._threads import serve_in_thread
from ._wire import (
    Incoming,
    Reply,
    close_connection,
    encode,
    error_reply,
    read_request,
    replacement,
    send,
    with_wrong_type,
    without_authorization,
)

DEFAULT_API_KEY: Final = "fake-blat-key"
"""The API key a `FakeBlatServer` accepts unless told otherwise."""

ENDPOINT_PATHS: Final[Mapping[BatchKind, str]] = {
    "sitemap": PAGE_PATH,
    "scrape": "batch/scrape/",
}
"""Each kind of batch's endpoint path below the base URL, before the batch id."""

_DEFAULT_PAGE_CACHE_BYTES: Final = 64 * 1024 * 1024
# How long closing waits for requests still being answered before cancelling
# them; requests still waiting out a delay are dropped at once instead.
_SHUTDOWN_GRACE: Final = 0.1


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the server answered, as `FakeBlatServer.requests` lists it.

    Neither the API key nor the ``Authorization`` header is kept: only whether
    it matched.
    """

    method: str
    """The HTTP method, such as ``"GET"``."""
    path: str
    """The raw path, still percent-encoded, without the query."""
    query: str
    """The raw query string."""
    from_: int | None
    """The ``from`` parameter, or ``None`` if absent or malformed."""
    batch_id: str | None
    """The decoded batch id, or ``None`` if the path is no endpoint's."""
    authorized: bool
    """Whether ``Authorization`` was ``Bearer`` and the server's API key."""
    headers: CIMultiDictProxy[str]
    """The request headers, without ``Authorization``."""
    status: int | None
    """The status answered, or ``None`` if the connection closed before one was sent."""
    fault: Fault | None
    """The fault this request got, if any."""
    started: float
    """When the request arrived, by ``time.monotonic()``."""
    finished: float
    """When its handling ended, by ``time.monotonic()``."""
    kind: BatchKind | None
    """Which endpoint the path is: ``"sitemap"`` for ``batch/scrape_sitemap/{batch_id}``,
    ``"scrape"`` for ``batch/scrape/{batch_id}``, or ``None`` for neither.

    It says what was asked for: a request for a batch of the other kind is
    recorded with the kind of its path, and answered 404.
    """

    @property
    def duration(self) -> float:
        """How long the server took to answer, in seconds."""
        return self.finished - self.started


@dataclass(slots=True)
class _Injected:
    """A fault queued by `FakeBlatServer.inject`, with what it matches."""

    fault: Fault
    batch_id: str | None
    from_: int | None
    remaining: int | None

    def matches(self, batch_id: str | None, from_: int | None) -> bool:
        return (self.batch_id is None or self.batch_id == batch_id) and (
            self.from_ is None or self.from_ == from_
        )


class _PageCache:
    """Encoded pages of complete batches, up to a budget of bytes."""

    def __init__(self, limit: int) -> None:
        self._pages: dict[tuple[str, int], bytes] = {}
        self._limit = limit
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> bytes | None:
        return self._pages.get(key)

    def put(self, key: tuple[str, int], body: bytes) -> None:
        with self._lock:
            if key not in self._pages and self._size + len(body) <= self._limit:
                self._pages[key] = body
                self._size += len(body)


class FakeBlatServer:
    """An embedded fake of Blat's batch results endpoints on loopback.

    It serves ``GET /batch/scrape_sitemap/{batch_id}`` for sitemap batches and
    ``GET /batch/scrape/{batch_id}`` for scrape batches (see
    [`add_batch`][blat_async.testing.FakeBlatServer.add_batch]'s ``kind``).

    Use it as ``async with FakeBlatServer() as server``, or with
    [`start`][blat_async.testing.FakeBlatServer.start] and
    [`close`][blat_async.testing.FakeBlatServer.close], or from synchronous code
    with [`run_in_thread`][blat_async.testing.FakeBlatServer.run_in_thread].

    ``prefix`` puts the API under a path (``"v9"`` serves
    ``http://127.0.0.1:PORT/v9/batch/...``). ``clock`` is what makes
    ``jobs_per_second`` batches grow; pass a fake one to control time.
    Complete batches' pages are encoded once and kept, up to
    ``page_cache_bytes``, so the server keeps up with a client reading at full
    speed.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        prefix: str = "",
        clock: Callable[[], float] = time.monotonic,
        page_cache_bytes: int = _DEFAULT_PAGE_CACHE_BYTES,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        self.host: Final = host
        """The address the server listens on, loopback by default."""
        self.api_key: Final = api_key
        """The API key the server accepts as ``Authorization: Bearer <api_key>``."""
        self._requested_port = port
        self._prefix = "/" + "".join(f"{part}/" for part in prefix.split("/") if part)
        self._roots = {kind: f"{self._prefix}{path}" for kind, path in ENDPOINT_PATHS.items()}
        self._clock = clock
        self._expected_authorization = f"Bearer {api_key}".encode()

        self._lock = threading.Lock()
        self._batches: dict[str, FakeBatch] = {}
        self._batch_numbers = count(1)
        self._injected: list[_Injected] = []
        self._requests: list[RecordedRequest] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._page_cache = _PageCache(page_cache_bytes)

        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._closed = False
        self._handlers: set[asyncio.Task[Any]] = set()
        # Requests waiting out a latency; closing the server answers them False.
        self._delayed: set[asyncio.Future[bool]] = set()

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not started"
        return f"<FakeBlatServer {where} batches={len(self._batches)}>"

    # --- Lifecycle ---

    async def start(self) -> None:
        """Start listening; `base_url` is known from now on."""
        if self._runner is not None or self._closed:
            raise RuntimeError("a FakeBlatServer can be started only once")
        app = web.Application()
        # One catch-all route: the batch id is cut from the raw path by hand, so that
        # a percent-encoded "/" stays inside it. Routes match the decoded path, and
        # "." would not match a "%0A" in it.
        app.router.add_route("*", r"/{path:[\s\S]*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_GRACE)
        await runner.setup()
        self._runner = runner
        try:
            site = web.TCPSite(runner, self.host, self._requested_port)
            await site.start()
        except BaseException:
            await self.close()
            raise
        self._port = runner.addresses[0][1]

    async def close(self) -> None:
        """Stop listening and close every connection; calling it again does nothing.

        Requests still waiting out a latency have their connection dropped.
        """
        self._closed = True
        for waiter in self._delayed:
            _resolve(waiter, False)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        # aiohttp forgets the handlers of connections the client already closed
        # (a client that timed out during a delay): wait for them here.
        if self._handlers:
            await asyncio.wait(set(self._handlers))

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @contextlib.contextmanager
    def run_in_thread(self) -> Iterator[Self]:
        """Run the server on its own event loop in a daemon thread for a ``with`` block.

        The server stops, and the thread ends, when the block exits:

        ```python
        with FakeBlatServer().run_in_thread() as server:
            batch = server.add_batch(size=25)
        ```
        """
        with serve_in_thread(self.start, self.close, "FakeBlatServer"):
            yield self

    # --- Where it listens ---

    @property
    def port(self) -> int:
        """The port the server listens on."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """The API's base URL, with a trailing slash: ``http://127.0.0.1:PORT/PREFIX/``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self._prefix}"

    def batch_url(
        self, batch_id: str, from_: int | None = None, *, kind: BatchKind | None = None
    ) -> str:
        """Return the URL of a batch's page, the batch id percent-encoded as one segment.

        The path is that of ``kind``'s endpoint; by default, of the kind of the
        batch the server holds with that id, or ``"sitemap"`` if it holds none.
        """
        if kind is None:
            with self._lock:
                batch = self._batches.get(batch_id)
            kind = batch.kind if batch is not None else "sitemap"
        url = f"{self.base_url}{ENDPOINT_PATHS[kind]}{quote(batch_id, safe='')}"
        return url if from_ is None else f"{url}?from={from_}"

    # --- Configuration, safe from any thread ---

    def add_batch(
        self,
        batch_id: str | None = None,
        size: int = 25,
        *,
        kind: BatchKind = "sitemap",
        page_size: int = DEFAULT_PAGE_SIZE,
        links_per_job: int = 3,
        link_base: str = DEFAULT_LINK_BASE,
        content_bytes: int | None = None,
        failed: Iterable[int] | float = (),
        visible: int | None = None,
        jobs_per_second: float | None = None,
        running_status: str = "running",
        final_status: str = "completed",
        expires_at: str | None = None,
        latency: float = 0.0,
        forbidden: bool = False,
        faults: Iterable[Fault] = (),
        fault_rate: float = 1.0,
        seed: int | None = 0,
        preencode: bool = False,
    ) -> FakeBatch:
        """Add a batch of ``size`` jobs and return it.

        ```python
        batch = server.add_batch(size=100, page_size=7, failed=0.1, latency=0.02)
        pages = server.add_batch(size=30, kind="scrape", content_bytes=50_000)
        ```

        Every argument but ``preencode`` is a setting of the new
        [`FakeBatch`][blat_async.testing.FakeBatch], described there.

        Args:
            batch_id: Its id; by default a new one, ``"batch-000001"`` and on.
            size: How many jobs it holds, the response's ``total``.
            kind: ``"sitemap"`` to serve it at ``batch/scrape_sitemap/{batch_id}``,
                ``"scrape"`` at ``batch/scrape/{batch_id}``.
            page_size: The most items one page holds.
            links_per_job: How many links each successful job extracted.
            link_base: Where the links point.
            content_bytes: How many bytes of ``content`` each successful job of
                a scrape batch holds; only for ``kind="scrape"``.
            failed: The indices of the jobs that fail, or the fraction of
                them, chosen with ``seed``.
            visible: How many jobs are visible at first.
            jobs_per_second: How fast more jobs become visible.
            running_status: ``status`` while some jobs are not visible.
            final_status: ``status`` once every job is visible.
            expires_at: ``expires_at``; by default a day from now.
            latency: Seconds the server waits before each answer.
            forbidden: Whether every request for it is answered 403.
            faults: Faults, one drawn for a ``fault_rate`` share of its requests.
            fault_rate: The share of its requests that get one of ``faults``.
            seed: Seeds the random choices of failed jobs and faults.
            preencode: Encode now every page a client reading from offset 0
                asks for, so that even the first read is served from memory
                (for benchmarks; the batch must be complete).
        """
        with self._lock:
            if batch_id is None:
                batch_id = f"batch-{next(self._batch_numbers):06d}"
                while batch_id in self._batches:
                    batch_id = f"batch-{next(self._batch_numbers):06d}"
            elif batch_id in self._batches:
                raise ValueError(f"a batch with id {batch_id!r} already exists")
            batch = FakeBatch(
                batch_id=batch_id,
                size=size,
                kind=kind,
                page_size=page_size,
                links_per_job=links_per_job,
                link_base=link_base,
                content_bytes=content_bytes,
                failed=failed,
                visible=visible,
                jobs_per_second=jobs_per_second,
                running_status=running_status,
                final_status=final_status,
                expires_at=expires_at,
                latency=latency,
                forbidden=forbidden,
                faults=faults,
                fault_rate=fault_rate,
                seed=seed,
                clock=self._clock,
            )
            if preencode and not batch.is_complete:
                raise ValueError("preencode needs a complete batch: every job visible")
            self._batches[batch_id] = batch
        if preencode:
            for from_ in range(0, size, batch.page_size):
                self._page_body(batch, from_, None)
        return batch

    def inject(
        self,
        fault: Fault,
        *,
        batch_id: str | None = None,
        from_: int | None = None,
        times: int | None = 1,
    ) -> None:
        """Queue ``fault`` for the next ``times`` matching requests (``None``: every one).

        A request matches when it is for ``batch_id`` and asks for offset
        ``from_``, each when given. Injected faults take precedence over a
        batch's own, and are used in the order they were queued.
        """
        if not isinstance(fault, Fault):
            raise TypeError(f"fault must be a Fault, got {fault!r}")
        if times is not None and times < 1:
            raise ValueError(f"times must be >= 1 or None, got {times!r}")
        with self._lock:
            self._injected.append(_Injected(fault, batch_id, from_, times))

    def clear_faults(self) -> None:
        """Forget every fault queued by [`inject`][blat_async.testing.FakeBlatServer.inject]."""
        with self._lock:
            self._injected.clear()

    # --- Inspection, safe from any thread ---

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests answered so far, in the order they finished."""
        with self._lock:
            return list(self._requests)

    @property
    def max_in_flight(self) -> int:
        """The most requests handled at the same time since the start.

        [`reset_requests`][blat_async.testing.FakeBlatServer.reset_requests] restarts it.
        """
        with self._lock:
            return self._max_in_flight

    def reset_requests(self) -> None:
        """Forget the requests recorded so far, and restart `max_in_flight`."""
        with self._lock:
            self._requests.clear()
            self._max_in_flight = self._in_flight

    # --- Handling a request ---

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        incoming = read_request(request, self._roots, self._expected_authorization)
        with self._lock:
            batch = self._batches.get(incoming.batch_id) if incoming.batch_id else None
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        # A batch is served only at its kind's path: at the other, it is not found.
        if batch is not None and batch.kind != incoming.kind:
            batch = None
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        fault: Fault | None = None
        status: int | None = None
        try:
            fault = self._take_fault(incoming, batch)
            delay = batch.latency if batch is not None else 0.0
            if isinstance(fault, Latency):
                delay += fault.seconds
            if delay and not await self._wait_unless_closing(delay):
                close_connection(request)
                return web.Response()
            if isinstance(fault, DropConnection) and not fault.send_headers:
                close_connection(request)
                return web.Response()
            reply = replacement(fault) or self._answer(incoming, batch, fault)
            status = reply.status
            return await send(request, reply, fault)
        finally:
            record = RecordedRequest(
                method=request.method,
                path=incoming.path,
                query=incoming.query,
                from_=incoming.from_,
                batch_id=incoming.batch_id,
                authorized=incoming.authorized,
                headers=without_authorization(request.headers),
                status=status,
                fault=fault,
                started=started,
                finished=time.monotonic(),
                kind=incoming.kind,
            )
            with self._lock:
                self._in_flight -= 1
                self._requests.append(record)
            self._handlers.discard(task)

    async def _wait_unless_closing(self, delay: float) -> bool:
        """Wait ``delay`` seconds; return ``False`` early if the server closes meanwhile."""
        if self._closed:
            return False
        # One future and one timer: `asyncio.wait_for` on the closing event
        # would start a task and cancel it again, a few more turns of the
        # loop per request, which add up as late answers under load.
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        timer = loop.call_later(delay, _resolve, waiter, True)
        self._delayed.add(waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            self._delayed.discard(waiter)

    def _answer(self, incoming: Incoming, batch: FakeBatch | None, fault: Fault | None) -> Reply:
        """Answer as the API does, in the order it checks things."""
        if not incoming.segment:
            return error_reply(404, message="Not found", details={"path": incoming.path})
        if incoming.method != hdrs.METH_GET:
            # RFC 9110 requires a 405 to say which methods the resource allows.
            return error_reply(
                405, details={"method": incoming.method}, headers={hdrs.ALLOW: hdrs.METH_GET}
            )
        if not incoming.authorized:
            return error_reply(401)
        if incoming.from_error is not None:
            return error_reply(400, message=incoming.from_error, details={"parameter": "from"})
        if incoming.batch_id is None:
            return error_reply(400, details={"batch_id": incoming.segment})
        if batch is None:
            return error_reply(404, details={"batch_id": incoming.batch_id})
        if batch.forbidden:
            return error_reply(403, details={"batch_id": incoming.batch_id})
        return Reply(200, self._page_body(batch, incoming.from_ or 0, fault))

    def _take_fault(self, incoming: Incoming, batch: FakeBatch | None) -> Fault | None:
        with self._lock:
            for position, injected in enumerate(self._injected):
                if injected.matches(incoming.batch_id, incoming.from_):
                    if injected.remaining is not None:
                        injected.remaining -= 1
                        if injected.remaining == 0:
                            del self._injected[position]
                    return injected.fault
        return batch._draw_fault() if batch is not None else None

    def _page_body(self, batch: FakeBatch, from_: int, fault: Fault | None) -> bytes:
        if isinstance(fault, IgnoreFrom):
            from_ = 0
        if isinstance(fault, WrongType):
            return encode(with_wrong_type(batch.page(from_), fault, batch.links_field))
        if not batch.is_complete:
            return encode(batch.page(from_))
        # A complete batch never changes again: encode each page once.
        key = (batch.batch_id, from_)
        body = self._page_cache.get(key)
        if body is None:
            body = encode(batch.page(from_))
            self._page_cache.put(key, body)
        return body


def _resolve(waiter: asyncio.Future[bool], value: bool) -> None:
    if not waiter.done():
        waiter.set_result(value)
