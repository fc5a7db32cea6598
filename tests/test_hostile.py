"""Promises kept against a misbehaving server: each fault, on the call and on the iterator."""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from blat_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    BlatClient,
    BlatError,
    InternalServerError,
    NotFoundError,
    PaginationError,
    RateLimitError,
    ResponseValidationError,
    RetryPolicy,
)
from blat_async.testing import FakeBlatServer, Fault

from .conftest import job_ids, loopback_app

SECRET = "sk-hostile-SECRET-0123"
NO_RETRY = RetryPolicy(max_retries=0)
QUICK_RETRY = RetryPolicy(max_retries=4, initial_delay=0.001, max_delay=0.005)


@pytest.fixture
async def server() -> AsyncIterator[FakeBlatServer]:
    async with FakeBlatServer(api_key=SECRET) as server:
        yield server


def client_for(server: FakeBlatServer, **kwargs: Any) -> BlatClient:
    return BlatClient(server.api_key, base_url=server.base_url, **kwargs)


async def read_all(client: BlatClient, batch_id: str, **kwargs: Any) -> list[str]:
    return job_ids([item async for item in client.iter_batch_scrape_sitemap(batch_id, **kwargs)])


async def read_into(seen: list[str | None], client: BlatClient, batch_id: str) -> None:
    """Read a batch, keeping the job ids yielded before any error."""
    async for item in client.iter_batch_scrape_sitemap(batch_id):
        seen.append(item.metadata.job_id if item.metadata else None)


# (fault, error when it never stops, whether a retry gets past it)
FAULTS = [
    pytest.param(Fault.status(429, retry_after=0), RateLimitError, True, id="429"),
    pytest.param(Fault.status(500), InternalServerError, True, id="500"),
    pytest.param(Fault.status(502), InternalServerError, True, id="502"),
    pytest.param(Fault.status(503), InternalServerError, True, id="503"),
    pytest.param(Fault.html(502), InternalServerError, True, id="html-502"),
    pytest.param(Fault.malformed_json(), ResponseValidationError, True, id="malformed-json"),
    pytest.param(Fault.truncated_json(), APIConnectionError, True, id="truncated-json"),
    pytest.param(Fault.drop_connection(), APIConnectionError, True, id="dropped-mid-body"),
    pytest.param(
        Fault.drop_connection(send_headers=False), APIConnectionError, True, id="dropped-early"
    ),
    pytest.param(Fault.wrong_type(), ResponseValidationError, False, id="wrong-type-links"),
    pytest.param(
        Fault.wrong_type("total", "ten"), ResponseValidationError, False, id="wrong-type-total"
    ),
    pytest.param(
        Fault.wrong_type("metadata.job_id", 7), ResponseValidationError, False, id="wrong-job-id"
    ),
    pytest.param(Fault.status(400), APIStatusError, False, id="400"),
]


@pytest.mark.parametrize(("fault", "error", "_retryable"), FAULTS)
async def test_a_lasting_fault_is_a_typed_error_from_the_call(
    server: FakeBlatServer, fault: Fault, error: type[BlatError], _retryable: bool
) -> None:
    batch = server.add_batch(size=25)
    server.inject(fault, times=None)
    async with client_for(server, retry=NO_RETRY) as client:
        with pytest.raises(error) as caught:
            await client.get_batch_scrape_sitemap_status(batch.batch_id, from_=10)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(("fault", "error", "_retryable"), FAULTS)
async def test_a_lasting_fault_is_a_typed_error_from_the_iterator(
    server: FakeBlatServer, fault: Fault, error: type[BlatError], _retryable: bool
) -> None:
    batch = server.add_batch(size=45)
    server.inject(fault, from_=20, times=None)
    seen: list[str | None] = []
    async with client_for(server, retry=NO_RETRY) as client:
        with pytest.raises(error):
            await read_into(seen, client, batch.batch_id)
    # What came before the broken page was yielded once, in order, and nothing after it.
    assert seen == batch.job_ids[:20]


@pytest.mark.parametrize(
    "fault", [p.values[0] for p in FAULTS if p.values[2]], ids=[p.id for p in FAULTS if p.values[2]]
)
async def test_a_passing_fault_loses_nothing(server: FakeBlatServer, fault: Fault) -> None:
    batch = server.add_batch(size=45)
    server.inject(fault, from_=20, times=2)
    async with client_for(server, retry=QUICK_RETRY) as client:
        assert await read_all(client, batch.batch_id) == batch.job_ids
        page = await client.get_batch_scrape_sitemap_status(batch.batch_id, from_=40)
    assert job_ids(page.data) == batch.job_ids[40:]


async def test_extra_fields_and_nulls_are_read(server: FakeBlatServer) -> None:
    batch = server.add_batch(size=40)
    server.inject(Fault.wrong_type("surprise", {"new": [1, 2]}), from_=0, times=None)
    server.inject(Fault.wrong_type("metadata.region", "eu"), from_=10, times=None)
    server.inject(Fault.wrong_type("links", None), from_=20, times=None)
    server.inject(Fault.wrong_type("metadata", None), from_=30, times=None)
    async with client_for(server, concurrency=1) as client:
        items = [item async for item in client.iter_batch_scrape_sitemap(batch.batch_id)]
    assert job_ids(items[:30]) == batch.job_ids[:30]
    assert len(items) == 40
    assert all(item.links == () for item in items[20:30])
    assert all(item.metadata is None for item in items[30:])


async def test_a_server_that_ignores_from_raises_after_few_requests(
    server: FakeBlatServer,
) -> None:
    batch = server.add_batch(size=500)
    server.inject(Fault.ignore_from(), times=None)
    seen: list[str | None] = []
    async with client_for(server, concurrency=1) as client:
        with pytest.raises(PaginationError, match="from=10"):
            await read_into(seen, client, batch.batch_id)
    assert seen == batch.job_ids[:10]
    assert len(server.requests) <= 3


async def test_read_ahead_against_a_server_that_ignores_from(server: FakeBlatServer) -> None:
    batch = server.add_batch(size=500)
    server.inject(Fault.ignore_from(), times=None)
    async with client_for(server, concurrency=6) as client:
        with pytest.raises(PaginationError):
            await read_all(client, batch.batch_id)
    assert len(server.requests) <= 12


async def test_the_soak_read_of_a_flaky_server_is_complete(server: FakeBlatServer) -> None:
    faults = [
        Fault.status(429, retry_after=0),
        Fault.status(500),
        Fault.status(502),
        Fault.status(503),
        Fault.html(502),
        Fault.malformed_json(),
        Fault.truncated_json(),
        Fault.drop_connection(),
        Fault.drop_connection(send_headers=False),
    ]
    batch = server.add_batch(size=300, faults=faults, fault_rate=0.3, seed=20261128)
    retry = RetryPolicy(max_retries=12, initial_delay=0.001, max_delay=0.01)
    async with client_for(server, retry=retry) as client:
        assert await read_all(client, batch.batch_id) == batch.job_ids
    failed = sum(1 for r in server.requests if r.fault is not None)
    assert failed >= 5


async def test_the_key_never_shows(
    server: FakeBlatServer, caplog: pytest.LogCaptureFixture
) -> None:
    batch = server.add_batch(size=30)
    server.inject(Fault.status(503), times=2)
    server.inject(Fault.status(401), from_=20, times=None)
    caplog.set_level(logging.DEBUG)
    client = client_for(server, retry=QUICK_RETRY)
    async with client:
        with pytest.raises(APIStatusError) as caught:
            await read_all(client, batch.batch_id)
    texts = [repr(client), str(caught.value), repr(caught.value)]
    texts += [record.getMessage() for record in caplog.records]
    cause = caught.value.__cause__
    texts += [str(cause), repr(cause)]
    assert any("retry" in text for text in texts)
    assert not [text for text in texts if SECRET in text]


async def test_a_borrowed_session_that_raises_for_status_still_gives_typed_errors(
    server: FakeBlatServer,
) -> None:
    async with aiohttp.ClientSession(raise_for_status=True) as session:
        client = BlatClient(server.api_key, base_url=server.base_url, session=session)
        async with client:
            with pytest.raises(NotFoundError) as caught:
                await client.get_batch_scrape_sitemap_status("no-such-batch")
        assert not session.closed
    assert caught.value.status == 404
    assert caught.value.code is not None


def reachable_texts(error: BaseException) -> Iterator[tuple[str, str]]:
    """Yield (path, text): the repr and str of everything reachable from an error.

    Errors are walked through their args, attributes, ``__cause__`` and
    ``__context__``; tuples, lists and mappings (request infos, headers) item
    by item. The formatted traceback comes last.
    """
    seen: set[int] = set()
    pending: list[tuple[str, object]] = [("error", error)]
    while pending:
        path, value = pending.pop()
        if value is None or id(value) in seen:
            continue
        seen.add(id(value))
        yield path, repr(value)
        yield path, str(value)
        if isinstance(value, BaseException):
            pending += [(f"{path}.args", value.args), (f"{path}.__cause__", value.__cause__)]
            pending += [(f"{path}.__context__", value.__context__)]
            pending += [(f"{path}.{name}", item) for name, item in vars(value).items()]
        elif isinstance(value, Mapping):
            pending += [(f"{path}[{key!r}]", item) for key, item in value.items()]
        elif isinstance(value, tuple | list):
            pending += [(f"{path}[{index}]", item) for index, item in enumerate(value)]
    yield "traceback", "".join(traceback.format_exception(error))


async def _answer_bad_status_line(reader: asyncio.StreamReader) -> bytes:
    await reader.readuntil(b"\r\n\r\n")
    return b"FOO BAR BAZ\r\n\r\n"


async def _answer_a_9_kib_header(reader: asyncio.StreamReader) -> bytes:
    await reader.readuntil(b"\r\n\r\n")
    padding = b"a" * 9 * 1024
    return b"HTTP/1.1 200 OK\r\nX-Padding: " + padding + b"\r\nContent-Length: 2\r\n\r\n{}"


@pytest.mark.parametrize("answer", [_answer_bad_status_line, _answer_a_9_kib_header])
async def test_no_trace_of_the_key_is_reachable_from_a_chained_aiohttp_error(
    answer: Callable[[asyncio.StreamReader], Awaitable[bytes]],
) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await answer(reader))
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        async with BlatClient(SECRET, base_url=f"http://127.0.0.1:{port}", retry=NO_RETRY) as c:
            with pytest.raises(APIConnectionError) as caught:
                await c.get_batch_scrape_sitemap_status("b")
    finally:
        listener.close()
        await listener.wait_closed()
    cause = caught.value.__cause__
    assert isinstance(cause, aiohttp.ClientResponseError)
    assert cause.history == ()
    # The request info is still there, in the attribute and in args, without the key.
    assert isinstance(cause.args[0], aiohttp.RequestInfo)
    assert "application/json" in repr(cause.args[0])
    assert "application/json" in repr(cause.request_info)
    texts = list(reachable_texts(caught.value))
    # The walk went through the cause's args (reached as __cause__ or __context__).
    assert any(path.endswith("__.args[0]") and "application/json" in text for path, text in texts)
    assert [path for path, text in texts if SECRET in text] == []


async def test_a_slow_answer_times_out_on_the_call_and_the_iterator(
    server: FakeBlatServer,
) -> None:
    batch = server.add_batch(size=45)
    server.inject(Fault.latency(1.0), from_=20, times=None)
    seen: list[str | None] = []
    async with client_for(server, retry=NO_RETRY, timeout=0.1) as client:
        with pytest.raises(APITimeoutError):
            await client.get_batch_scrape_sitemap_status(batch.batch_id, from_=20)
        with pytest.raises(APITimeoutError):
            await read_into(seen, client, batch.batch_id)
    assert seen == batch.job_ids[:20]


async def test_a_slow_answer_once_is_retried_with_a_fresh_timeout(
    server: FakeBlatServer,
) -> None:
    batch = server.add_batch(size=45)
    server.inject(Fault.latency(1.0), from_=20, times=1)
    async with client_for(server, retry=QUICK_RETRY, timeout=0.2) as client:
        assert await read_all(client, batch.batch_id) == batch.job_ids


# -- values and pages no honest batch has, and some that honest batches do ------------------


def _job(index: int, *, job_id: str | None = None) -> dict[str, Any]:
    return {"metadata": {"job_id": job_id or f"job-{index}"}, "success": True, "links": []}


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[str, dict[int, bytes]]]:
    """A server on 127.0.0.1 that answers each ``from`` with the body the test set for it."""
    bodies: dict[int, bytes] = {}

    async def page(request: web.Request) -> web.Response:
        body = bodies.get(int(request.query.get("from", "0")), b'{"data": []}')
        return web.Response(body=body, content_type="application/json")

    async with loopback_app(page) as base_url:
        yield base_url, bodies


def _body(document: Any) -> bytes:
    return json.dumps(document).encode()


@pytest.mark.parametrize("field", ["total", "processed"])
async def test_a_negative_count_is_a_response_validation_error(
    scripted: tuple[str, dict[int, bytes]], field: str
) -> None:
    base_url, bodies = scripted
    bodies[0] = _body({field: -100, "status": "completed", "data": [_job(0)]})
    async with BlatClient(SECRET, base_url=base_url, retry=NO_RETRY) as client:
        with pytest.raises(ResponseValidationError, match=f"at {field}: expected a count >= 0"):
            await read_all(client, "b")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            b'{"total": 1, "processed": 123456789012345678901234567890, "data": [{}]}',
            id="integer-past-64-bits",
        ),
        pytest.param(b'{"total": 1, "data": [{"links": ["\\ud800"]}]}', id="lone-surrogate"),
    ],
)
async def test_json_that_the_fast_decoder_refuses_is_still_read(
    scripted: tuple[str, dict[int, bytes]], body: bytes
) -> None:
    base_url, bodies = scripted
    bodies[0] = body
    async with BlatClient(SECRET, base_url=base_url, retry=NO_RETRY) as client:
        assert len([item async for item in client.iter_batch_scrape_sitemap("b")]) == 1


async def test_the_specs_own_example_yields_its_items_then_stops_on_the_repeat(
    scripted: tuple[str, dict[int, bytes]],
) -> None:
    base_url, bodies = scripted
    # The OpenAPI document's example, as a mock server answers it for any `from`.
    item = {
        "metadata": {"batch_id": "batch_id", "job_id": "job_id", "url": "url"},
        "success": True,
        "error_code": "error_code",
        "links": ["links", "links"],
        "error": "error",
    }
    example = _body(
        {
            "processed": 0,
            "total": 6,
            "expires_at": "expires_at",
            "status": "status",
            "data": [item, item],
        }
    )
    bodies.update(dict.fromkeys(range(7), example))
    seen: list[str | None] = []
    async with BlatClient(SECRET, base_url=base_url, retry=NO_RETRY) as client:
        with pytest.raises(PaginationError, match="'job_id' at offset 2 was already delivered"):
            await read_into(seen, client, "b")
    assert seen == ["job_id", "job_id"]


async def test_a_batch_of_alike_failed_jobs_without_metadata_is_read_whole(
    scripted: tuple[str, dict[int, bytes]],
) -> None:
    base_url, bodies = scripted
    failed = {"success": False, "error_code": "FETCH_FAILED"}
    for offset in range(0, 100, 10):
        bodies[offset] = _body({"total": 100, "status": "completed", "data": [failed] * 10})
    async with BlatClient(SECRET, base_url=base_url, retry=NO_RETRY) as client:
        assert len([item async for item in client.iter_batch_scrape_sitemap("b")]) == 100


async def test_a_completed_batch_that_ends_before_its_total_is_a_pagination_error(
    scripted: tuple[str, dict[int, bytes]],
) -> None:
    base_url, bodies = scripted
    bodies[0] = _body({"total": 15, "status": "completed", "data": [_job(i) for i in range(10)]})
    bodies[10] = _body({"total": 15, "status": "completed", "data": []})
    seen: list[str | None] = []
    async with BlatClient(SECRET, base_url=base_url, retry=NO_RETRY) as client:
        with pytest.raises(PaginationError, match="lost 5 items"):
            await read_into(seen, client, "b")
    assert seen == [f"job-{i}" for i in range(10)]


# -- a server that echoes the key back -------------------------------------------------


async def drain_pages(pages: AsyncIterator[object]) -> None:
    async for _page in pages:
        pass


def _echo_body(where: str, header: str) -> tuple[str, str]:
    """An error body holding ``header`` (the request's Authorization) in one place."""
    if where == "html":
        return f"<html><title>Refused {header}</title><p>{header}</p></html>", "text/html"
    error: dict[str, Any] = {"code": "REFUSED", "message": "refused"}
    if where == "message":
        error["message"] = f"bad header {header}"
    else:
        error["details"] = {"header": header, "nested": [header]}
    return json.dumps(error), "application/json"


@pytest.mark.parametrize("retries", [0, 2])
@pytest.mark.parametrize("via", ["call", "items", "pages"])
@pytest.mark.parametrize("where", ["message", "details", "html"])
@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500])
async def test_an_echoed_key_is_nowhere_in_the_error_chain(
    status: int, where: str, via: str, retries: int
) -> None:
    async def echo(request: web.Request) -> web.Response:
        text, content_type = _echo_body(where, request.headers["Authorization"])
        return web.Response(text=text, status=status, content_type=content_type)

    policy = RetryPolicy(max_retries=retries, initial_delay=0, max_delay=0)
    async with (
        loopback_app(echo) as base_url,
        BlatClient(SECRET, base_url=base_url, retry=policy) as client,
    ):
        reads: dict[str, Callable[[], Awaitable[object]]] = {
            "call": lambda: client.get_batch_scrape_sitemap_status("b1"),
            "items": lambda: read_all(client, "b1"),
            "pages": lambda: drain_pages(client.iter_batch_scrape_sitemap_pages("b1")),
        }
        with pytest.raises(APIStatusError) as caught:
            await reads[via]()
    assert caught.value.status == status
    texts = list(reachable_texts(caught.value))
    assert any("<hidden>" in text for _path, text in texts)
    assert [path for path, text in texts if SECRET in text] == []
