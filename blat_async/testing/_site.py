"""`FakeSite`: web pages on loopback at the links of fake batches, for crawlers to fetch."""

from __future__ import annotations

import asyncio
import contextlib
import html
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

from aiohttp import web

from ._threads import serve_in_thread

_PAGES: Final = "pages/"
# How long closing waits for pages still being answered before cancelling them.
_SHUTDOWN_GRACE: Final = 0.1


@dataclass(frozen=True, slots=True)
class Visit:
    """One request a `FakeSite` answered, as `FakeSite.visits` lists it."""

    method: str
    """The HTTP method, such as ``"GET"``."""
    url: str
    """The URL asked for, as a crawler would write it: ``http://127.0.0.1:PORT/pages/...``."""
    status: int
    """The status answered: 200 for a page, 404 for anything else."""
    at: float
    """When the request arrived, by ``time.monotonic()``."""


class FakeSite:
    """A small website on loopback whose pages are the links of fake batches.

    Give its [`link_base`][blat_async.testing.FakeSite.link_base] to
    [`add_batch`][blat_async.testing.FakeBlatServer.add_batch], and every link
    of the batch is a page a crawler can fetch, without a network:

    ```python
    with FakeSite().run_in_thread() as site, FakeBlatServer().run_in_thread() as server:
        batch = server.add_batch(size=20, link_base=site.link_base)
        ...  # crawl the batch's links
        assert site.hits == Counter(batch.links)  # every page fetched once
    ```

    Every path under ``/pages/`` is a page: ``200`` and a little HTML whose
    ``<title>`` is the path. Anything else, ``/robots.txt`` included, is
    ``404``. ``latency`` delays each answer by that many seconds, as a slow
    site would. Use it as ``async with FakeSite() as site``, or with
    [`run_in_thread`][blat_async.testing.FakeSite.run_in_thread]; inspecting it
    is safe from any thread.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0) -> None:
        if not latency >= 0:
            raise ValueError(f"latency must be >= 0, got {latency!r}")
        self.host: Final = host
        """The address the site listens on, loopback by default."""
        self.latency: Final = latency
        """Seconds the site waits before answering each request."""
        self._requested_port = port
        self._lock = threading.Lock()
        self._visits: list[Visit] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._closed = False

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not started"
        return f"<FakeSite {where} visits={len(self._visits)}>"

    # --- Lifecycle ---

    async def start(self) -> None:
        """Start listening; `base_url` is known from now on."""
        if self._runner is not None or self._closed:
            raise RuntimeError("a FakeSite can be started only once")
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_GRACE)
        await runner.setup()
        self._runner = runner
        try:
            await web.TCPSite(runner, self.host, self._requested_port).start()
        except BaseException:
            await self.close()
            raise
        self._port = runner.addresses[0][1]

    async def close(self) -> None:
        """Stop listening and close every connection; calling it again does nothing."""
        self._closed = True
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

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
        """Run the site on its own event loop in a daemon thread for a ``with`` block."""
        with serve_in_thread(self.start, self.close, "FakeSite"):
            yield self

    # --- Where it listens ---

    @property
    def port(self) -> int:
        """The port the site listens on."""
        if self._port is None:
            raise RuntimeError("the site is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """The site's root, with a trailing slash: ``http://127.0.0.1:PORT/``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def link_base(self) -> str:
        """Where the pages are, ``http://127.0.0.1:PORT/pages/``: a batch's ``link_base``."""
        return f"{self.base_url}{_PAGES}"

    # --- Inspection, safe from any thread ---

    @property
    def visits(self) -> list[Visit]:
        """The requests answered so far, in the order they arrived."""
        with self._lock:
            return list(self._visits)

    @property
    def hits(self) -> Counter[str]:
        """How many times each page was fetched (``GET`` answered ``200``), by URL."""
        with self._lock:
            return Counter(
                visit.url for visit in self._visits if visit.method == "GET" and visit.status == 200
            )

    # --- Handling a request ---

    async def _handle(self, request: web.Request) -> web.Response:
        at = time.monotonic()
        path = request.raw_path.lstrip("/")
        status = 200 if path.startswith(_PAGES) and request.method in ("GET", "HEAD") else 404
        with self._lock:
            self._visits.append(Visit(request.method, f"{self.base_url}{path}", status, at))
        if self.latency:
            await asyncio.sleep(self.latency)
        if status != 200:
            return web.Response(status=status, text="Not found")
        title = html.escape(f"/{path}")
        body = f"<!doctype html>\n<title>{title}</title>\n<h1>{title}</h1>\n"
        return web.Response(text=body, content_type="text/html")
