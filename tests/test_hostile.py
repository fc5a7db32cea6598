"""Promises kept against a misbehaving server: each fault, on the call and on the iterator."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

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

from .conftest import job_ids

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


async def test_the_key_is_not_kept_in_a_chained_aiohttp_error() -> None:
    async def bad_status_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"FOO BAR\r\n\r\n")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(bad_status_line, "127.0.0.1", 0)
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
    assert "Accept" in repr(cause)
    assert SECRET not in repr(cause)
    assert SECRET not in "".join(traceback.format_exception(caught.value))


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
