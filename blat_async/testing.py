"""A fake Blat server for tests, demos and benchmarks.

[`FakeBlatServer`][blat_async.testing.FakeBlatServer] serves
``GET /batch/scrape_sitemap/{batch_id}?from=N`` from an
``aiohttp.web`` application on loopback, with real sockets, the API's pagination,
status codes and error bodies, and faults to inject (latency, 429s, proxy pages,
broken bodies, dropped connections):

```python
async with FakeBlatServer() as server:
    batch = server.add_batch(size=25, failed=[3])
    async with BlatClient(server.api_key, base_url=server.base_url) as client:
        items = [item async for item in client.iter_batch_scrape_sitemap(batch.batch_id)]
    assert len(items) == batch.size
```

From synchronous code, or a test framework without asyncio, run it on its own
event loop in a background thread:

```python
with FakeBlatServer().run_in_thread() as server:
    batch = server.add_batch(size=25)
    ...  # any HTTP client against server.base_url
```

With pytest, the [`fake_blat_server`][blat_async.pytest_plugin.fake_blat_server]
fixture of `blat_async.pytest_plugin` does exactly that. Configuring and
inspecting the server
([`add_batch`][blat_async.testing.FakeBlatServer.add_batch],
[`inject`][blat_async.testing.FakeBlatServer.inject],
[`requests`][blat_async.testing.FakeBlatServer.requests],
[`FakeBatch.reveal`][blat_async.testing.FakeBatch.reveal]) is safe from any thread.

Faults are small frozen classes made by the factories on
[`Fault`][blat_async.testing.Fault]:

```python
server.inject(Fault.status(429, retry_after=0.05))           # the next request
server.add_batch(faults=[Fault.html(502)], fault_rate=0.3)   # 30 % of this batch's requests
```
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import random
import re
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from itertools import count
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import parse_qs, quote, unquote

from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = [
    "DEFAULT_API_KEY",
    "DropConnection",
    "FakeBatch",
    "FakeBlatServer",
    "Fault",
    "HtmlError",
    "IgnoreFrom",
    "Latency",
    "MalformedJson",
    "RecordedRequest",
    "StatusError",
    "TruncatedJson",
    "WrongType",
]

DEFAULT_API_KEY: Final = "fake-blat-key"
"""The API key a `FakeBlatServer` accepts unless told otherwise."""

_PAGE_PATH: Final = "batch/scrape_sitemap/"
_DEFAULT_PAGE_SIZE: Final = 10
_DEFAULT_PAGE_CACHE_BYTES: Final = 64 * 1024 * 1024
_EXPIRY: Final = timedelta(days=1)
# How long closing waits for requests still being answered before cancelling
# them; requests still waiting out a delay are dropped at once instead.
_SHUTDOWN_GRACE: Final = 0.1
_JSON: Final = "application/json"
_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)

# The messages of the statuses the OpenAPI contract documents.
_ERROR_MESSAGES: Final[Mapping[int, str]] = {
    400: "Invalid batch ID",
    401: "Unauthorized - Make sure you have a valid API key",
    403: "Forbidden - You do not have access to this batch",
    404: "Batch not found",
    500: "Internal server error",
}

# (error_code, error) of failed jobs, chosen by the job's index.
_JOB_ERRORS: Final = (
    ("SITEMAP_NOT_FOUND", "sitemap returned HTTP 404"),
    ("SITEMAP_TIMEOUT", "timed out fetching the sitemap"),
    ("SITEMAP_INVALID", "sitemap is not valid XML"),
)

_NGINX_PAGE: Final = """<html>
<head><title>{status} {phrase}</title></head>
<body>
<center><h1>{status} {phrase}</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""


# --- Faults -----------------------------------------------------------------------------


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
    def wrong_type(field: str = "links", value: Any = "not-a-list") -> WrongType:
        """Answer 200 with ``field`` set to ``value``, a value of the wrong type."""
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
    (``"links"``, ``"metadata.job_id"``).
    """

    field: str = "links"
    """The key replaced: of the response, or else of every item, dotted for nested keys."""
    value: Any = "not-a-list"
    """What the key is set to instead."""


@dataclass(frozen=True, slots=True)
class IgnoreFrom(Fault):
    """Answer the page at offset 0 whatever ``from`` asks for."""


def _check_error_status(status: int) -> None:
    if not 400 <= status <= 599:
        raise ValueError(f"an error status must be 4xx or 5xx, got {status!r}")


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


# --- Batches ----------------------------------------------------------------------------


class FakeBatch:
    """One batch sitemap scrape the server knows, returned by `FakeBlatServer.add_batch`.

    Jobs are computed from their index on demand, so a batch of 200,000 jobs
    costs little more than its list of failed indices.
    [`visible`][blat_async.testing.FakeBatch.visible] jobs are served; it grows by
    [`reveal`][blat_async.testing.FakeBatch.reveal],
    [`complete`][blat_async.testing.FakeBatch.complete] and, with
    ``jobs_per_second``, with time.
    """

    def __init__(
        self,
        batch_id: str,
        size: int,
        *,
        page_size: int,
        links_per_job: int,
        failed: Iterable[int] | float,
        visible: int | None,
        jobs_per_second: float | None,
        running_status: str,
        final_status: str,
        expires_at: str,
        latency: float,
        forbidden: bool,
        faults: Iterable[Fault],
        fault_rate: float,
        seed: int | None,
        clock: Callable[[], float],
    ) -> None:
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size!r}")
        if page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {page_size!r}")
        if links_per_job < 0:
            raise ValueError(f"links_per_job must be >= 0, got {links_per_job!r}")
        if jobs_per_second is not None and not jobs_per_second > 0:
            raise ValueError(f"jobs_per_second must be > 0, got {jobs_per_second!r}")
        if visible is None:
            visible = 0 if jobs_per_second is not None else size
        if not 0 <= visible <= size:
            raise ValueError(f"visible must be between 0 and size={size}, got {visible!r}")
        if not latency >= 0:
            raise ValueError(f"latency must be >= 0, got {latency!r}")
        if not 0 <= fault_rate <= 1:
            raise ValueError(f"fault_rate must be between 0 and 1, got {fault_rate!r}")
        self.faults: Final = tuple(faults)
        """The faults drawn for a ``fault_rate`` share of this batch's requests."""
        for fault in self.faults:
            if not isinstance(fault, Fault):
                raise TypeError(f"faults must be Fault instances, got {fault!r}")

        self.batch_id: Final = batch_id
        """The batch's id, as it appears in the URL path once decoded."""
        self.size: Final = size
        """How many sitemap jobs the batch holds, the response's ``total``."""
        self.page_size: Final = page_size
        """The most items one page holds."""
        self.links_per_job: Final = links_per_job
        """How many links each successful job extracted."""
        self.jobs_per_second: Final = jobs_per_second
        """How fast more jobs become visible, or ``None`` if only by hand."""
        self.running_status: Final = running_status
        """The response's ``status`` while some jobs are not visible yet."""
        self.final_status: Final = final_status
        """The response's ``status`` once every job is visible."""
        self.expires_at: Final = expires_at
        """The response's ``expires_at``; by default a day after the batch was added, in UTC."""
        self.latency: Final = latency
        """Seconds the server waits before answering each request for this batch."""
        self.forbidden: Final = forbidden
        """Whether every request for this batch is answered 403."""
        self.fault_rate: Final = fault_rate
        """The share of this batch's requests that get one of ``faults``, 0 to 1."""
        self._random = random.Random(seed)
        self._failed = tuple(sorted(_failed_indices(failed, size, self._random)))
        self.failed: Final = frozenset(self._failed)
        """The indices of the jobs that fail."""
        self._clock = clock
        self._added_at = clock()
        self._shown = visible
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"<FakeBatch {self.batch_id!r} size={self.size} visible={self.visible} "
            f"failed={len(self._failed)}>"
        )

    @property
    def visible(self) -> int:
        """How many jobs the server shows now: the first ``visible`` of ``size``."""
        with self._lock:
            shown = self._shown
        if self.jobs_per_second is not None:
            shown += int((self._clock() - self._added_at) * self.jobs_per_second)
        return min(shown, self.size)

    @property
    def is_complete(self) -> bool:
        """Whether every job is visible, so ``status`` is ``final_status``."""
        return self.visible == self.size

    def reveal(self, count: int = 1) -> None:
        """Make ``count`` more jobs visible (no more than ``size`` in all)."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count!r}")
        with self._lock:
            self._shown = min(self._shown + count, self.size)

    def complete(self) -> None:
        """Make every job visible: the batch is finished."""
        with self._lock:
            self._shown = self.size

    def processed(self, visible: int | None = None) -> int:
        """Count the successful jobs among the first ``visible`` (default: those visible now)."""
        if visible is None:
            visible = self.visible
        return visible - bisect_left(self._failed, visible)

    def job_id(self, index: int) -> str:
        """Return the id of job ``index``."""
        return f"{self.batch_id}-job-{index:06d}"

    def job(self, index: int) -> dict[str, Any]:
        """Return job ``index`` as the API sends it in ``data``."""
        if not 0 <= index < self.size:
            raise IndexError(f"job index {index} out of range for a batch of {self.size}")
        metadata = {
            "batch_id": self.batch_id,
            "job_id": self.job_id(index),
            "url": f"https://example.com/sitemaps/{index:06d}.xml",
        }
        if index in self.failed:
            error_code, error = _JOB_ERRORS[index % len(_JOB_ERRORS)]
            return {
                "metadata": metadata,
                "success": False,
                "error": error,
                "error_code": error_code,
            }
        links = [f"https://example.com/pages/{index:06d}/{n}" for n in range(self.links_per_job)]
        return {"metadata": metadata, "success": True, "links": links}

    @property
    def jobs(self) -> list[dict[str, Any]]:
        """Every job, in order, as the API sends them (built on each access)."""
        return [self.job(index) for index in range(self.size)]

    @property
    def job_ids(self) -> list[str]:
        """Every job id, in order (built on each access)."""
        return [self.job_id(index) for index in range(self.size)]

    def page(self, from_: int = 0) -> dict[str, Any]:
        """Return the response body the server sends now for offset ``from_``."""
        if from_ < 0:
            raise ValueError(f"from_ must be >= 0, got {from_!r}")
        visible = self.visible
        end = min(from_ + self.page_size, visible)
        return {
            "status": self.final_status if visible == self.size else self.running_status,
            "total": self.size,
            "processed": self.processed(visible),
            "expires_at": self.expires_at,
            "data": [self.job(index) for index in range(from_, end)],
        }

    def _draw_fault(self) -> Fault | None:
        if not self.faults:
            return None
        with self._lock:
            if self._random.random() >= self.fault_rate:
                return None
            return self._random.choice(self.faults)


def _failed_indices(failed: Iterable[int] | float, size: int, rng: random.Random) -> set[int]:
    if isinstance(failed, int):  # bool too
        raise TypeError(
            f"failed must be job indices or a fraction, got {failed!r}: "
            f"pass [{failed:d}] for one job, or {float(failed)!r} for a fraction"
        )
    if isinstance(failed, float):
        if not 0 <= failed <= 1:
            raise ValueError(f"a fraction of failed jobs must be between 0 and 1, got {failed!r}")
        return set(rng.sample(range(size), k=round(size * failed)))
    indices = set(failed)
    for index in indices:
        if not 0 <= index < size:
            raise ValueError(f"failed job index {index!r} out of range for a batch of {size}")
    return indices


# --- Request log ------------------------------------------------------------------------


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
    """The decoded batch id, or ``None`` if the path is not the endpoint's."""
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

    @property
    def duration(self) -> float:
        """How long the server took to answer, in seconds."""
        return self.finished - self.started


# --- The server -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Incoming:
    """What the server reads from a request before answering it."""

    method: str
    path: str
    query: str
    segment: str
    """The batch id as sent, still percent-encoded; empty if the path is not the endpoint's."""
    batch_id: str | None
    """The batch id decoded once, or ``None`` if absent or not UTF-8."""
    from_: int | None
    from_error: str | None
    authorized: bool


@dataclass(frozen=True, slots=True)
class _Reply:
    """An answer before it is sent, so that faults can cut it short."""

    status: int
    body: bytes
    content_type: str = _JSON
    headers: Mapping[str, str] = field(default_factory=dict)


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
    """An embedded fake of Blat's ``GET /batch/scrape_sitemap/{batch_id}`` on loopback.

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
        # a percent-encoded "/" stays inside it.
        app.router.add_route("*", "/{path:.*}", self._handle)
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
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=_run_loop, args=(loop,), name="FakeBlatServer", daemon=True
        )
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result()
            yield self
        finally:
            try:
                asyncio.run_coroutine_threadsafe(self.close(), loop).result()
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join()

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

    def batch_url(self, batch_id: str, from_: int | None = None) -> str:
        """Return the URL of a batch's page, the batch id percent-encoded as one segment."""
        url = f"{self.base_url}{_PAGE_PATH}{quote(batch_id, safe='')}"
        return url if from_ is None else f"{url}?from={from_}"

    # --- Configuration, safe from any thread ---

    def add_batch(
        self,
        batch_id: str | None = None,
        size: int = 25,
        *,
        page_size: int = _DEFAULT_PAGE_SIZE,
        links_per_job: int = 3,
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
        """Add a batch of ``size`` sitemap jobs and return it.

        Args:
            batch_id: Its id; by default a new one, ``"batch-000001"`` and on.
            size: How many sitemap jobs it holds, the response's ``total``.
            page_size: The most items one page holds.
            links_per_job: How many links each successful job extracted.
            failed: The indices of the jobs that fail, or the fraction of jobs
                that fail, chosen at random with ``seed``.
            visible: How many jobs are visible at first; by default all of
                them, or none when ``jobs_per_second`` is given.
            jobs_per_second: How fast more jobs become visible after this call.
            running_status: ``status`` while some jobs are not visible yet.
            final_status: ``status`` once every job is visible.
            expires_at: ``expires_at``; by default a day from now, in UTC.
            latency: Seconds to wait before answering each request for this batch.
            forbidden: Answer 403 to every request for this batch.
            faults: Faults for this batch's requests, one drawn at random for a
                ``fault_rate`` share of them (all of them by default).
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
            if expires_at is None:
                expires_at = (datetime.now(UTC) + _EXPIRY).strftime("%Y-%m-%dT%H:%M:%SZ")
            batch = FakeBatch(
                batch_id,
                size,
                page_size=page_size,
                links_per_job=links_per_job,
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
            for from_ in range(0, size, page_size):
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
        incoming = self._parse(request)
        with self._lock:
            batch = self._batches.get(incoming.batch_id) if incoming.batch_id else None
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
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
                _close_connection(request)
                return web.Response()
            if isinstance(fault, DropConnection) and not fault.send_headers:
                _close_connection(request)
                return web.Response()
            reply = _replacement(fault) or self._answer(incoming, batch, fault)
            status = reply.status
            return await _send(request, reply, fault)
        finally:
            record = RecordedRequest(
                method=request.method,
                path=incoming.path,
                query=incoming.query,
                from_=incoming.from_,
                batch_id=incoming.batch_id,
                authorized=incoming.authorized,
                headers=_without_authorization(request.headers),
                status=status,
                fault=fault,
                started=started,
                finished=time.monotonic(),
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

    def _parse(self, request: web.Request) -> _Incoming:
        path, _, query = request.raw_path.partition("?")
        root = f"{self._prefix}{_PAGE_PATH}"
        segment = path[len(root) :] if path.startswith(root) else ""
        if "/" in segment:
            segment = ""
        from_values = parse_qs(query, keep_blank_values=True).get("from")
        from_, from_error = _parse_from(from_values[0] if from_values else None)
        authorization = request.headers.get(hdrs.AUTHORIZATION, "").encode(errors="replace")
        return _Incoming(
            method=request.method,
            path=path,
            query=query,
            segment=segment,
            batch_id=_decode_segment(segment) if segment else None,
            from_=from_,
            from_error=from_error,
            authorized=hmac.compare_digest(authorization, self._expected_authorization),
        )

    def _answer(self, incoming: _Incoming, batch: FakeBatch | None, fault: Fault | None) -> _Reply:
        """Answer as the API does, in the order it checks things."""
        if not incoming.segment:
            return _error_reply(404, message="Not found", details={"path": incoming.path})
        if incoming.method != hdrs.METH_GET:
            return _error_reply(405, details={"method": incoming.method})
        if not incoming.authorized:
            return _error_reply(401)
        if incoming.from_error is not None:
            return _error_reply(400, message=incoming.from_error, details={"parameter": "from"})
        if incoming.batch_id is None:
            return _error_reply(400, details={"batch_id": incoming.segment})
        if batch is None:
            return _error_reply(404, details={"batch_id": incoming.batch_id})
        if batch.forbidden:
            return _error_reply(403, details={"batch_id": incoming.batch_id})
        return _Reply(200, self._page_body(batch, incoming.from_ or 0, fault))

    def _take_fault(self, incoming: _Incoming, batch: FakeBatch | None) -> Fault | None:
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
            return _encode(_with_wrong_type(batch.page(from_), fault))
        if not batch.is_complete:
            return _encode(batch.page(from_))
        # A complete batch never changes again: encode each page once.
        key = (batch.batch_id, from_)
        body = self._page_cache.get(key)
        if body is None:
            body = _encode(batch.page(from_))
            self._page_cache.put(key, body)
        return body


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Run ``loop`` until stopped, then clean it up and close it (in its own thread)."""
    try:
        loop.run_forever()
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def _parse_from(value: str | None) -> tuple[int | None, str | None]:
    """Return ``(offset, None)``, or ``(None, why it is malformed)``."""
    if value is None:
        return None, None
    if not _INTEGER.fullmatch(value):
        return None, f"from must be an integer, got {value!r}"
    offset = int(value)
    if offset < 0:
        return None, f"from must not be negative, got {offset}"
    return offset, None


def _decode_segment(segment: str) -> str | None:
    """Percent-decode a path segment once, or return ``None`` if it is not UTF-8."""
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return None


def _without_authorization(headers: Mapping[str, str]) -> CIMultiDictProxy[str]:
    kept = CIMultiDict(
        (name, value) for name, value in headers.items() if name.lower() != "authorization"
    )
    return CIMultiDictProxy(kept)


def _encode(document: object) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _error_reply(
    status: int,
    *,
    code: str | None = None,
    message: str | None = None,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> _Reply:
    """Build the API's JSON error ``{"code", "message", "details"}`` for ``status``."""
    phrase = HTTPStatus(status).phrase
    body = {
        "code": code or phrase.upper().replace(" ", "_").replace("-", "_"),
        "message": message or _ERROR_MESSAGES.get(status, phrase),
        "details": dict(details or {}),
    }
    return _Reply(status, _encode(body), headers=headers or {})


def _replacement(fault: Fault | None) -> _Reply | None:
    """Return the answer a fault puts in place of the normal one, if it does."""
    match fault:
        case StatusError(status_code=status, retry_after=retry_after, code=code, message=message):
            if retry_after is None:
                return _error_reply(status, code=code, message=message)
            return _error_reply(
                status,
                code=code,
                message=message,
                details={"retry_after": retry_after},
                headers={hdrs.RETRY_AFTER: _format_seconds(retry_after)},
            )
        case HtmlError(status_code=status):
            page = _NGINX_PAGE.format(status=status, phrase=HTTPStatus(status).phrase)
            return _Reply(status, page.encode(), "text/html", {hdrs.SERVER: "nginx"})
        case MalformedJson():
            return _Reply(200, b'{"status": "completed", "total": 3, "data": [}')
    return None


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if seconds == int(seconds) else str(seconds)


def _with_wrong_type(page: dict[str, Any], fault: WrongType) -> dict[str, Any]:
    if fault.field in page:
        page[fault.field] = fault.value
        return page
    *parents, name = fault.field.split(".")
    for item in page["data"]:
        target = item
        for parent in parents:
            target = target.setdefault(parent, {})
        target[name] = fault.value
    return page


async def _send(request: web.Request, reply: _Reply, fault: Fault | None) -> web.StreamResponse:
    """Send ``reply``, or half of it when ``fault`` cuts it short."""
    if not isinstance(fault, TruncatedJson | DropConnection):
        return web.Response(
            status=reply.status,
            body=reply.body,
            content_type=reply.content_type,
            headers=reply.headers,
        )
    response = web.StreamResponse(status=reply.status, headers=reply.headers)
    response.content_type = reply.content_type
    if isinstance(fault, TruncatedJson):
        response.content_length = len(reply.body)
    else:
        response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(reply.body[: len(reply.body) // 2])
    _close_connection(request)
    return response


def _resolve(waiter: asyncio.Future[bool], value: bool) -> None:
    if not waiter.done():
        waiter.set_result(value)


def _close_connection(request: web.Request) -> None:
    # aiohttp ignores the connection error of finishing a response on a closed
    # transport, so the handler can simply return afterwards.
    if request.transport is not None:
        request.transport.close()
