"""Every guarantee of a read holds on both batch endpoints: sitemap and scrape.

Each test runs once per endpoint, against the fake server serving a batch of
that kind, through the endpoint's own public methods.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from blat_async import (
    APIStatusError,
    BatchScrapeData,
    BatchScrapeSitemapData,
    BlatClient,
    InternalServerError,
    ReadEnd,
    ReadProgress,
    ResponseTooLargeError,
    ResponseValidationError,
    RetryPolicy,
)
from blat_async.testing import BatchKind, FakeBatch, FakeBlatServer, Fault

from .conftest import loopback_app

NO_WAIT = RetryPolicy(max_retries=2, initial_delay=0, max_delay=0)


@pytest.fixture(params=["sitemap", "scrape"])
def kind(request: pytest.FixtureRequest) -> BatchKind:
    value: BatchKind = request.param
    return value


@pytest.fixture
async def server() -> AsyncIterator[FakeBlatServer]:
    async with FakeBlatServer() as server:
        yield server


def client_for(server: FakeBlatServer, **kwargs: Any) -> BlatClient:
    return BlatClient(server.api_key, base_url=server.base_url, **kwargs)


def items(client: BlatClient, kind: BatchKind, batch_id: str, **kwargs: Any) -> Any:
    """The endpoint's item iterator."""
    if kind == "scrape":
        return client.iter_batch_scrape(batch_id, **kwargs)
    return client.iter_batch_scrape_sitemap(batch_id, **kwargs)


def pages(client: BlatClient, kind: BatchKind, batch_id: str, **kwargs: Any) -> Any:
    """The endpoint's page iterator."""
    if kind == "scrape":
        return client.iter_batch_scrape_pages(batch_id, **kwargs)
    return client.iter_batch_scrape_sitemap_pages(batch_id, **kwargs)


def one_page(client: BlatClient, kind: BatchKind, batch_id: str, from_: int = 0) -> Any:
    """The endpoint's single-page call."""
    if kind == "scrape":
        return client.get_batch_scrape_status(batch_id, from_=from_)
    return client.get_batch_scrape_sitemap_status(batch_id, from_=from_)


def ids(read: list[Any]) -> list[str]:
    return [item.metadata.job_id for item in read]


def froms(server: FakeBlatServer) -> list[int]:
    return sorted(r.from_ for r in server.requests if r.from_ is not None)


def add(server: FakeBlatServer, kind: BatchKind, size: int, **kwargs: Any) -> FakeBatch:
    if kind == "scrape":
        kwargs.setdefault("content_bytes", 2_000)
    return server.add_batch(size=size, kind=kind, **kwargs)


@pytest.mark.parametrize("concurrency", [1, 3, 8])
@pytest.mark.parametrize("size", [0, 5, 95])
async def test_every_item_once_in_order_failed_ones_included_one_request_a_page(
    server: FakeBlatServer, kind: BatchKind, size: int, concurrency: int
) -> None:
    failed = [i for i in (1, 3, 50) if i < size]
    batch = add(server, kind, size, failed=failed, latency=0.002)
    async with client_for(server, concurrency=concurrency) as client:
        read = [item async for item in items(client, kind, batch.batch_id)]
    assert ids(read) == batch.job_ids
    expected_type = BatchScrapeData if kind == "scrape" else BatchScrapeSitemapData
    assert all(type(item) is expected_type for item in read)
    assert [item.success for item in read] == [i not in failed for i in range(size)]
    assert froms(server) == list(range(0, max(size, 1), 10))
    assert {r.kind for r in server.requests} == {kind}


async def test_scraped_pages_carry_their_content_links_and_final_url(
    server: FakeBlatServer,
) -> None:
    batch = server.add_batch(size=12, kind="scrape", content_bytes=5_000, failed=[2])
    async with client_for(server) as client:
        read = [item async for item in client.iter_batch_scrape(batch.batch_id)]
    for index, item in enumerate(read):
        if index == 2:
            assert item.success is False
            assert item.content is None
            continue
        assert item.content == batch.content_of(index)
        assert len(item.content or "") == 5_000
        assert list(item.extracted_links) == batch.links_of(index)
        assert item.metadata is not None
        assert item.metadata.final_url == batch.final_url_of(index)
        assert item.metadata.status_code == 200


async def test_pages_hold_each_item_once_and_the_single_page_call_reads_one(
    server: FakeBlatServer, kind: BatchKind
) -> None:
    batch = add(server, kind, 35)
    async with client_for(server) as client:
        read = [page async for page in pages(client, kind, batch.batch_id, start=5, stop=33)]
        single = await one_page(client, kind, batch.batch_id, from_=10)
    # The server's page at from=5 holds 10 items; the last is cut at stop.
    assert [len(page.data) for page in read] == [10, 10, 8]
    assert ids([item for page in read for item in page.data]) == batch.job_ids[5:33]
    assert ids(list(single.data)) == batch.job_ids[10:20]
    assert single.total == 35


async def test_start_stop_and_progress(server: FakeBlatServer, kind: BatchKind) -> None:
    batch = add(server, kind, 100)
    progress = ReadProgress()
    async with client_for(server) as client:
        read = [
            item
            async for item in items(
                client, kind, batch.batch_id, start=15, stop=62, progress=progress
            )
        ]
    assert ids(read) == batch.job_ids[15:62]
    assert (progress.offset, progress.items, progress.total) == (62, 47, 100)
    assert progress.ended is ReadEnd.STOP
    assert progress.requests == len(server.requests) == len(froms(server))


async def test_follow_reads_a_growing_batch_to_the_end(
    server: FakeBlatServer, kind: BatchKind
) -> None:
    batch = add(server, kind, 60, visible=5)

    async def grow() -> None:
        while not batch.is_complete:
            await asyncio.sleep(0.01)
            batch.reveal(7)

    async with client_for(server) as client:
        grower = asyncio.create_task(grow())
        read = [
            item
            async for item in items(client, kind, batch.batch_id, follow=True, poll_interval=0.01)
        ]
        await grower
    assert ids(read) == batch.job_ids


async def test_one_retry_budget_a_request_and_the_items_before_a_failure(
    server: FakeBlatServer, kind: BatchKind
) -> None:
    batch = add(server, kind, 50)
    server.inject(Fault.status(500), batch_id=batch.batch_id, from_=20, times=None)
    seen: list[Any] = []
    async with client_for(server, retry=NO_WAIT, concurrency=4) as client:
        with pytest.raises(InternalServerError):
            await collect(items(client, kind, batch.batch_id), seen)
    assert ids(seen) == batch.job_ids[:20]
    assert [r.from_ for r in server.requests].count(20) == 3


async def test_a_429_pauses_the_clients_other_reads_and_the_in_flight_limit_holds(
    server: FakeBlatServer, kind: BatchKind
) -> None:
    limited = add(server, kind, 100, batch_id="limited", latency=0.01)
    other = add(server, kind, 300, batch_id="other", latency=0.01)
    server.inject(Fault.status(429, retry_after=0.3), batch_id="limited", from_=50)
    async with client_for(server, concurrency=4, max_in_flight=3) as client:
        await asyncio.gather(
            drain(items(client, kind, limited.batch_id)),
            drain(items(client, kind, other.batch_id)),
        )
    assert server.max_in_flight <= 3
    [answer] = [r for r in server.requests if r.status == 429]
    pause = (answer.finished + 0.02, answer.finished + 0.28)
    assert not [r for r in server.requests if pause[0] < r.started < pause[1]]


async def collect(iterator: Any, into: list[Any]) -> None:
    async for item in iterator:
        into.append(item)


async def drain(iterator: Any) -> None:
    async for _item in iterator:
        pass


@pytest.mark.parametrize(
    "fault", [Fault.html(502), Fault.malformed_json(), Fault.wrong_type(value=7)]
)
async def test_a_bad_page_is_a_typed_error_after_every_item_before_it(
    server: FakeBlatServer, kind: BatchKind, fault: Fault
) -> None:
    batch = add(server, kind, 40)
    server.inject(fault, batch_id=batch.batch_id, from_=30, times=None)
    seen: list[Any] = []
    async with client_for(server, retry=NO_WAIT) as client:
        with pytest.raises((APIStatusError, ResponseValidationError)) as caught:
            await collect(items(client, kind, batch.batch_id), seen)
    assert ids(seen) == batch.job_ids[:30]
    if isinstance(caught.value, ResponseValidationError) and caught.value.path:
        links = "extracted_links" if kind == "scrape" else "links"
        assert caught.value.path == f"data[0].{links}"


async def test_the_body_cap_names_itself(server: FakeBlatServer, kind: BatchKind) -> None:
    batch = add(server, kind, 30)
    async with client_for(server, max_response_bytes=2_000, max_retries=0) as client:
        with pytest.raises(ResponseTooLargeError, match="max_response_bytes") as caught:
            await drain(items(client, kind, batch.batch_id))
    assert caught.value.limit == 2_000


async def test_a_scrape_page_bigger_than_a_sitemap_pages_cap_is_read_by_default(
    server: FakeBlatServer,
) -> None:
    # Ten scraped documents of 2 MB: past the 16 MiB a sitemap page may take.
    batch = server.add_batch(size=10, kind="scrape", content_bytes=2_000_000)
    async with client_for(server) as client:
        page = await client.get_batch_scrape_status(batch.batch_id)
    assert sum(len(item.content or "") for item in page.data) == 20_000_000


@pytest.mark.parametrize("status", [401, 403, 500])
async def test_an_echoed_key_is_nowhere_in_a_scrape_reads_error(status: int) -> None:
    secret = "sk-both-endpoints-SECRET"

    async def echo(request: web.Request) -> web.Response:
        header = request.headers["Authorization"]
        return web.json_response({"code": "NO", "message": f"bad {header}"}, status=status)

    async with (
        loopback_app(echo) as base_url,
        BlatClient(secret, base_url=base_url, retry=NO_WAIT) as client,
    ):
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: client.get_batch_scrape_status("b1"),
            lambda: drain(client.iter_batch_scrape("b1")),
        ]
        for call in calls:
            with pytest.raises(APIStatusError) as caught:
                await call()
            text = "".join(traceback.format_exception(caught.value))
            assert "<hidden>" in text
            assert secret not in text
