"""BlatClient over real sockets on 127.0.0.1: timeouts, redirects, drops, lifecycle.

aioresponses patches aiohttp below timeouts and redirects, so these run
against a small aiohttp.web server of their own.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import traceback
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import pytest
from aiohttp import web

from blat_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    BlatClient,
    BlatError,
    ResponseTooLargeError,
    ResponseValidationError,
    RetryPolicy,
)

from .conftest import API_KEY, page

NO_RETRY = RetryPolicy(max_retries=0)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class LocalServer:
    """A one-route aiohttp server on a free loopback port, recording what it saw."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.seen: list[web.Request] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.base_url = ""

    async def _route(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self.handler(request)
        finally:
            self.in_flight -= 1


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[LocalServer]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> LocalServer:
        server = LocalServer(handler)
        app = web.Application()
        app.router.add_route("GET", r"/{tail:[\s\S]*}", server._route)
        runner = web.AppRunner(app, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        server.base_url = f"http://{host}:{port}/"
        return server

    yield start
    for runner in runners:
        await runner.cleanup()


def batch_handler(size: int, page_size: int = 10, delay: float = 0.0) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        if delay:
            await asyncio.sleep(delay)
        offset = int(request.query.get("from", "0"))
        count = max(0, min(page_size, size - offset))
        return web.json_response(page(offset, count, total=size))

    return handle


async def test_a_slow_attempt_times_out_as_api_timeout_error(serve: Any) -> None:
    server = await serve(batch_handler(5, delay=1.0))
    async with BlatClient(API_KEY, base_url=server.base_url, timeout=0.1, retry=NO_RETRY) as c:
        with pytest.raises(APITimeoutError):
            await c.get_batch_scrape_sitemap_status("b1")


async def test_each_retry_gets_a_fresh_timeout(serve: Any) -> None:
    calls = 0

    async def slow_then_fast(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(1.0)
        return web.json_response(page(0, 1, total=1))

    server = await serve(slow_then_fast)
    retry = RetryPolicy(max_retries=1, initial_delay=0.0)
    async with BlatClient(API_KEY, base_url=server.base_url, timeout=0.2, retry=retry) as c:
        result = await c.get_batch_scrape_sitemap_status("b1")
    assert len(result.data) == 1
    assert calls == 2


async def test_a_redirect_to_another_origin_is_not_followed(serve: Any) -> None:
    other = await serve(batch_handler(5))

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{other.base_url}batch/scrape_sitemap/b1?from=0")

    server = await serve(redirect)
    async with BlatClient(API_KEY, base_url=server.base_url, retry=NO_RETRY) as c:
        with pytest.raises(APIStatusError, match="redirect") as caught:
            await c.get_batch_scrape_sitemap_status("b1")
    assert caught.value.status == 302
    assert other.seen == []


async def test_a_cookie_the_server_sets_is_never_sent_back(serve: Any) -> None:
    def setting_a_cookie(handle: Handler) -> Handler:
        async def answer(request: web.Request) -> web.StreamResponse:
            response = await handle(request)
            response.set_cookie("lb", "sticky-1")
            return response

        return answer

    server = await serve(setting_a_cookie(batch_handler(30)))
    # By name: aiohttp's own jar keeps no cookie of an IP address.
    base_url = server.base_url.replace("127.0.0.1", "localhost")
    async with BlatClient(API_KEY, base_url=base_url, concurrency=1) as c:
        items = [item async for item in c.iter_batch_scrape_sitemap("b1")]
    assert len(items) == 30
    assert len(server.seen) == 3
    assert [request.headers.get("Cookie") for request in server.seen] == [None] * 3


async def test_a_connection_dropped_mid_body_is_a_connection_error(serve: Any) -> None:
    async def drop(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 1000
        await response.prepare(request)
        await response.write(b'{"data": [')
        assert request.transport is not None
        request.transport.close()
        return response

    server = await serve(drop)
    async with BlatClient(API_KEY, base_url=server.base_url, retry=NO_RETRY) as c:
        with pytest.raises(APIConnectionError):
            await c.get_batch_scrape_sitemap_status("b1")


async def test_nobody_listening_is_a_connection_error() -> None:
    # Port 9 (discard) has no listener on a test machine: the connection is refused.
    async with BlatClient(API_KEY, base_url="http://127.0.0.1:9/", retry=NO_RETRY) as c:
        with pytest.raises(APIConnectionError, match="could not connect"):
            await c.get_batch_scrape_sitemap_status("b1")


@pytest.mark.parametrize(
    "batch_id", ["a/b", "a?b", "a#b", "a%2Fb", "a b", "søk", "x\r\nHost: y", "%"]
)
async def test_the_batch_id_arrives_as_one_segment(serve: Any, batch_id: str) -> None:
    server = await serve(batch_handler(1))
    async with BlatClient(API_KEY, base_url=server.base_url) as c:
        await c.get_batch_scrape_sitemap_status(batch_id)
    [request] = server.seen
    prefix = "/batch/scrape_sitemap/"
    assert request.raw_path.startswith(prefix)
    segment = request.raw_path.removeprefix(prefix).split("?")[0]
    assert "/" not in segment
    assert unquote(segment) == batch_id
    assert dict(request.query) == {"from": "0"}
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"


# -- read-ahead and lifecycle ---------------------------------------------------


async def test_read_ahead_overlaps_requests(serve: Any) -> None:
    server = await serve(batch_handler(200, delay=0.02))
    async with BlatClient(API_KEY, base_url=server.base_url, concurrency=4) as c:
        ids = [i.metadata.job_id async for i in c.iter_batch_scrape_sitemap("b1") if i.metadata]
    assert ids == [f"b1-job-{i}" for i in range(200)]
    assert server.max_in_flight == 4
    assert len(server.seen) == 20


async def test_concurrency_one_reads_one_page_at_a_time(serve: Any) -> None:
    server = await serve(batch_handler(50, delay=0.01))
    async with BlatClient(API_KEY, base_url=server.base_url) as c:
        items = [i async for i in c.iter_batch_scrape_sitemap("b1", concurrency=1)]
    assert len(items) == 50
    assert server.max_in_flight == 1


def other_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()}


async def test_breaking_out_leaves_no_task_running(serve: Any) -> None:
    server = await serve(batch_handler(500, delay=0.05))
    async with BlatClient(API_KEY, base_url=server.base_url, concurrency=6) as c:
        async for _item in c.iter_batch_scrape_sitemap("b1"):
            break
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)
        assert not {t for t in other_tasks() if t.get_name().startswith("blat-")}
    assert not other_tasks() - {t for t in other_tasks() if "web" in repr(t)}


async def test_cancelling_the_reader_leaves_no_task_running(serve: Any) -> None:
    server = await serve(batch_handler(500, delay=0.05))
    async with BlatClient(API_KEY, base_url=server.base_url, concurrency=6) as c:
        started = asyncio.Event()

        async def read() -> None:
            async for _item in c.iter_batch_scrape_sitemap("b1"):
                started.set()

        reader = asyncio.create_task(read())
        await started.wait()
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        assert not {t for t in other_tasks() if t.get_name().startswith("blat-")}
        assert not c._shared.tasks


async def test_closing_the_client_mid_read_ends_the_read(serve: Any) -> None:
    server = await serve(batch_handler(500, delay=0.05))
    client = BlatClient(API_KEY, base_url=server.base_url, concurrency=6)
    items = client.iter_batch_scrape_sitemap("b1")
    await anext(items)
    await client.close()
    assert not client._shared.tasks
    with pytest.raises(BlatError, match="closed"):
        async for _item in items:
            pass
    assert not {t for t in other_tasks() if t.get_name().startswith("blat-")}


@pytest.mark.parametrize("ticks", [0, 1, 2, 3])
async def test_a_cancelled_close_still_closes_the_session(serve: Any, ticks: int) -> None:
    # asyncio.timeout or a TaskGroup can cancel the close() that ends `async with BlatClient()`.
    server = await serve(batch_handler(500, delay=0.05))
    client = BlatClient(API_KEY, base_url=server.base_url, concurrency=6)
    items = client.iter_batch_scrape_sitemap("b1")
    await anext(items)
    session = client._shared.session
    assert session is not None
    assert client._shared.tasks
    closing = asyncio.create_task(client.close())
    for _ in range(ticks):
        await asyncio.sleep(0)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    if client.closed:
        # The close() got to start: its work goes on without being waited for.
        for _ in range(500):
            if session.closed:
                break
            await asyncio.sleep(0.01)
        assert session.closed
    # And a later close() finishes the work, or waits for it.
    await client.close()
    assert client.closed
    assert session.closed
    assert not client._shared.tasks
    with pytest.raises(BlatError, match="closed"):
        async for _item in items:
            pass
    gc.collect()
    assert not {t for t in other_tasks() if t.get_name().startswith("blat-")}


# -- the client's limits ----------------------------------------------------------------


async def _read_batches(client: BlatClient, count: int) -> list[int]:
    async def read(batch_id: str) -> int:
        return len([item async for item in client.iter_batch_scrape_sitemap(batch_id)])

    return await asyncio.gather(*(read(f"b{n}") for n in range(count)))


async def test_the_client_keeps_at_most_max_in_flight_requests_across_its_reads(
    serve: Any,
) -> None:
    server = await serve(batch_handler(60, delay=0.01))
    async with BlatClient(API_KEY, base_url=server.base_url, max_in_flight=5) as client:
        assert await _read_batches(client, 8) == [60] * 8
    assert server.max_in_flight == 5


async def test_waiting_for_a_slot_does_not_count_against_the_timeout(serve: Any) -> None:
    # 30 requests through 2 slots take about 0.75 s: most wait longer than
    # the timeout before they are sent.
    server = await serve(batch_handler(50, delay=0.05))
    async with BlatClient(
        API_KEY, base_url=server.base_url, max_in_flight=2, timeout=0.3, retry=NO_RETRY
    ) as client:
        assert await _read_batches(client, 6) == [50] * 6


async def test_reads_share_the_clients_slots_first_come_first_served(serve: Any) -> None:
    server = await serve(batch_handler(50, delay=0.01))
    loop = asyncio.get_running_loop()
    first_item: dict[str, float] = {}
    finished: dict[str, float] = {}
    async with BlatClient(API_KEY, base_url=server.base_url, max_in_flight=2) as client:

        async def read(batch_id: str) -> None:
            async for _item in client.iter_batch_scrape_sitemap(batch_id):
                first_item.setdefault(batch_id, loop.time())
            finished[batch_id] = loop.time()

        await asyncio.gather(*(read(f"b{n}") for n in range(8)))
    # No read runs ahead to its end while another waits for its first page.
    assert max(first_item.values()) < min(finished.values())


@pytest.mark.parametrize("value", [0, -1])
def test_max_in_flight_below_one_is_refused(value: int) -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        BlatClient(API_KEY, max_in_flight=value)


def _chunked(body: bytes, *, encoding: str | None = None) -> Handler:
    """A handler that streams ``body`` without a Content-Length."""

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if encoding is not None:
            response.headers["Content-Encoding"] = encoding
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), 16 * 1024):
            await response.write(body[start : start + 16 * 1024])
        await response.write_eof()
        return response

    return handle


async def test_a_body_announced_over_the_limit_is_refused_naming_the_limit(serve: Any) -> None:
    server = await serve(batch_handler(1_000, page_size=1_000))
    async with BlatClient(
        API_KEY, base_url=server.base_url, max_response_bytes=10_000, retry=NO_RETRY
    ) as client:
        with pytest.raises(ResponseTooLargeError, match="10,000 bytes") as caught:
            await client.get_batch_scrape_sitemap_status("b1")
    assert caught.value.limit == 10_000


async def test_a_streamed_body_over_the_limit_is_refused(serve: Any) -> None:
    server = await serve(_chunked(json.dumps(page(0, 1_000, total=1_000)).encode()))
    async with BlatClient(
        API_KEY, base_url=server.base_url, max_response_bytes=10_000, retry=NO_RETRY
    ) as client:
        with pytest.raises(ResponseTooLargeError):
            await client.get_batch_scrape_sitemap_status("b1")


def _announced(body: bytes, *, encoding: str) -> Handler:
    """A handler that sends ``body`` with its Content-Length and a Content-Encoding."""

    async def handle(request: web.Request) -> web.Response:
        headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
        return web.Response(body=body, headers=headers)

    return handle


@pytest.mark.parametrize("send", [_chunked, _announced], ids=["chunked", "with-length"])
async def test_a_body_that_inflates_past_the_limit_stops_without_inflating_whole(
    serve: Any, send: Callable[..., Handler]
) -> None:
    # 64 MiB of JSON whitespace, gzipped to a few dozen KB: its Content-Length,
    # when it has one, is far below the limit.
    bomb = gzip.compress(b" " * (64 * 1024 * 1024) + b"{}", compresslevel=9)
    server = await serve(send(bomb, encoding="gzip"))
    tracemalloc.start()
    try:
        async with BlatClient(
            API_KEY, base_url=server.base_url, max_response_bytes=1024 * 1024, retry=NO_RETRY
        ) as client:
            with pytest.raises(ResponseTooLargeError):
                await client.get_batch_scrape_sitemap_status("b1")
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024


async def test_a_key_the_server_echoes_back_is_hidden_from_the_error(serve: Any) -> None:
    async def echo(request: web.Request) -> web.Response:
        header = request.headers["Authorization"]
        return web.json_response(
            {"code": "UNAUTHORIZED", "message": f"refused {header}", "details": {"got": header}},
            status=401,
        )

    server = await serve(echo)
    async with BlatClient(API_KEY, base_url=server.base_url, retry=NO_RETRY) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.get_batch_scrape_sitemap_status("b1")
    error = caught.value
    assert error.status == 401
    assert "<hidden>" in str(error)
    for text in (str(error), repr(error), repr(error.details), repr(error.__cause__)):
        assert API_KEY not in text


async def test_a_key_echoed_in_a_page_that_is_not_json_is_hidden(serve: Any) -> None:
    async def echo(request: web.Request) -> web.Response:
        header = request.headers["Authorization"]
        return web.Response(text=f"<html><title>Hello {header}</title></html>", status=200)

    server = await serve(echo)
    async with BlatClient(API_KEY, base_url=server.base_url, retry=NO_RETRY) as client:
        with pytest.raises(ResponseValidationError) as caught:
            await client.get_batch_scrape_sitemap_status("b1")
    text = "".join(traceback.format_exception(caught.value))
    assert "<hidden>" in text
    assert API_KEY not in text


async def test_a_body_announced_over_the_limit_is_refused_before_it_is_read(
    serve: Any,
) -> None:
    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(50 * 1024 * 1024)})
        await response.prepare(request)
        await response.write(b"{")
        await asyncio.sleep(5)  # the rest never comes in time
        return response

    server = await serve(huge)
    async with BlatClient(
        API_KEY,
        base_url=server.base_url,
        max_response_bytes=1024,
        timeout=2,
        retry=NO_RETRY,
    ) as client:
        with pytest.raises(ResponseTooLargeError):
            await client.get_batch_scrape_sitemap_status("b1")
