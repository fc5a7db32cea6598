"""Read-ahead and follow mode end to end, against the fake server over real sockets."""

from __future__ import annotations

import asyncio
import gc
import itertools
import random
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import attrs
import pytest
from aiohttp import web

from blat_async import (
    BatchScrapeSitemapData,
    BlatClient,
    BlatError,
    InternalServerError,
    ReadEnd,
    ReadProgress,
    ResponseValidationError,
    RetryPolicy,
    _readahead,
)
from blat_async._endpoints import Page
from blat_async._pagination import BatchState, Delivery, Plan, ReadPlan
from blat_async._readahead import Fetch, Fetched, PollPolicy, ReadAhead, RequestHooks
from blat_async._retry import Throttle
from blat_async.models import BatchScrapeSitemapMetadata, BatchScrapeSitemapStatusResponse
from blat_async.testing import FakeBlatServer, Fault

from .conftest import job_ids, page


@pytest.fixture
async def server() -> AsyncIterator[FakeBlatServer]:
    async with FakeBlatServer() as server:
        yield server


def client_for(server: FakeBlatServer, **kwargs: Any) -> BlatClient:
    return BlatClient(server.api_key, base_url=server.base_url, **kwargs)


async def drain(items: AsyncIterator[Any]) -> None:
    async for _item in items:
        pass


def offsets_asked(server: FakeBlatServer) -> list[int]:
    """The ``from`` of every request the server answered, sorted; each must have one."""
    froms = [r.from_ for r in server.requests]
    assert None not in froms, f"a request without a valid from: {froms}"
    return sorted(offset for offset in froms if offset is not None)


def blat_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t.get_name().startswith("blat-") and not t.done()}


async def test_concurrent_requests_really_overlap(server: FakeBlatServer) -> None:
    batch = server.add_batch(size=300, latency=0.02)
    async with client_for(server, concurrency=5) as client:
        items = [item async for item in client.iter_batch_scrape_sitemap(batch.batch_id)]
    assert job_ids(items) == batch.job_ids
    assert server.max_in_flight == 5
    # Read-ahead stops at total: no request past the end of the batch.
    assert offsets_asked(server) == list(range(0, 300, 10))


async def test_the_default_concurrency_reads_ahead(server: FakeBlatServer) -> None:
    batch = server.add_batch(size=200, latency=0.02)
    async with client_for(server) as client:
        assert len([i async for i in client.iter_batch_scrape_sitemap(batch.batch_id)]) == 200
    assert server.max_in_flight == 6


async def test_an_unusual_page_size_is_learned(server: FakeBlatServer) -> None:
    batch = server.add_batch(size=101, page_size=7, latency=0.005)
    async with client_for(server, concurrency=4) as client:
        items = [item async for item in client.iter_batch_scrape_sitemap(batch.batch_id)]
    assert job_ids(items) == batch.job_ids
    assert len(server.requests) == 15


async def test_the_first_request_goes_alone_then_the_read_fills_the_concurrency(
    server: FakeBlatServer,
) -> None:
    batch = server.add_batch(size=200, latency=0.02)
    async with client_for(server, concurrency=8) as client:
        items = [item async for item in client.iter_batch_scrape_sitemap(batch.batch_id)]
    assert job_ids(items) == batch.job_ids
    first, *rest = sorted(server.requests, key=lambda r: r.started)
    assert first.from_ == 0
    assert all(r.started >= first.finished for r in rest)
    assert server.max_in_flight == 8
    assert offsets_asked(server) == list(range(0, 200, 10))


@pytest.mark.parametrize("concurrency", [1, 3, 8])
@pytest.mark.parametrize("size", [0, 5, 10, 95, 200])
async def test_a_finished_batch_costs_one_request_a_page(
    server: FakeBlatServer, size: int, concurrency: int
) -> None:
    batch = server.add_batch(size=size, latency=0.002)
    async with client_for(server, concurrency=concurrency) as client:
        items = [item async for item in client.iter_batch_scrape_sitemap(batch.batch_id)]
    assert job_ids(items) == batch.job_ids
    assert offsets_asked(server) == list(range(0, max(size, 1), 10))


async def test_big_pages_are_asked_for_at_their_own_offsets(server: FakeBlatServer) -> None:
    batch = server.add_batch(size=20_000, page_size=1_000, links_per_job=0)
    async with client_for(server) as client:
        count = 0
        async for _item in client.iter_batch_scrape_sitemap(batch.batch_id):
            count += 1
    assert count == 20_000
    assert offsets_asked(server) == list(range(0, 20_000, 1_000))


async def test_a_slice_asks_only_the_pages_it_covers(server: FakeBlatServer) -> None:
    batch = server.add_batch(size=1_000)
    async with client_for(server) as client:
        items = [item async for item in client.iter_batch_scrape_sitemap(batch.batch_id, 42, 61)]
    assert job_ids(items) == batch.job_ids[42:61]
    assert [r.from_ for r in server.requests] == [42, 52]


@pytest.mark.parametrize("concurrency", [1, 4, 8])
async def test_an_offset_that_always_fails_is_tried_once_per_retry_at_any_concurrency(
    server: FakeBlatServer, concurrency: int
) -> None:
    batch = server.add_batch(size=200, latency=0.001)
    server.inject(Fault.status(500), batch_id=batch.batch_id, from_=50, times=None)
    retry = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.002)
    seen: list[BatchScrapeSitemapData] = []

    async def read(client: BlatClient) -> None:
        async for item in client.iter_batch_scrape_sitemap(batch.batch_id):
            seen.append(item)

    async with client_for(server, concurrency=concurrency, retry=retry) as client:
        with pytest.raises(InternalServerError):
            await read(client)
    assert job_ids(seen) == batch.job_ids[:50]
    assert [r.from_ for r in server.requests].count(50) == 3


async def test_a_running_batch_is_read_ahead_only_as_far_as_it_has_items(
    server: FakeBlatServer,
) -> None:
    batch = server.add_batch(size=200, visible=75)
    async with client_for(server) as client:
        items = [item async for item in client.iter_batch_scrape_sitemap(batch.batch_id)]
    assert job_ids(items) == batch.job_ids[:75]
    # Eight pages with items, and the one that shows the end for now.
    assert offsets_asked(server) == [0, 10, 20, 30, 40, 50, 60, 70, 75]


async def test_a_stalled_consumer_stops_the_requests(server: FakeBlatServer) -> None:
    batch = server.add_batch(size=5_000, latency=0.001)
    async with client_for(server, concurrency=2) as client:
        items = client.iter_batch_scrape_sitemap(batch.batch_id)
        first = await anext(items)
        await asyncio.sleep(0.3)  # the caller is busy with its first item
        # Two pages per request in flight: the window of four pages, no more.
        assert len(server.requests) <= 4
        rest = [item async for item in items]
    assert job_ids([first, *rest]) == batch.job_ids


async def test_big_pages_are_read_once_each_item_with_the_collector_on(
    server: FakeBlatServer,
) -> None:
    batch = server.add_batch(size=1_000, page_size=400, links_per_job=20)
    async with client_for(server, concurrency=4) as client:
        items = [item async for item in client.iter_batch_scrape_sitemap(batch.batch_id)]
    assert job_ids(items) == batch.job_ids
    assert all(len(item.links) == 20 for item in items if item.success)
    assert offsets_asked(server) == [0, 400, 800]
    assert gc.isenabled()


@pytest.mark.parametrize("seed", range(5))
async def test_any_page_lengths_give_every_item_once_in_order(seed: int) -> None:
    """A server whose every answer has a random length, some short, some long."""
    size = 157
    rng = random.Random(seed)

    async def handle(request: web.Request) -> web.Response:
        await asyncio.sleep(rng.random() * 0.01)
        offset = int(request.query["from"])
        count = max(0, min(rng.randint(1, 25), size - offset))
        return web.json_response(page(offset, count, total=size if seed % 2 else None))

    app = web.Application()
    app.router.add_get("/batch/scrape_sitemap/{batch_id}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with BlatClient("k", base_url=f"http://127.0.0.1:{port}/", concurrency=4) as c:
            items = [item async for item in c.iter_batch_scrape_sitemap("b1", 3, 150)]
    finally:
        await runner.cleanup()
    assert job_ids(items) == [f"b1-job-{i}" for i in range(3, 150)]


async def test_progress_is_updated_while_reading_ahead(server: FakeBlatServer) -> None:
    batch = server.add_batch(size=95, failed=[1, 2])
    progress = ReadProgress()
    async with client_for(server) as client:
        async for _item in client.iter_batch_scrape_sitemap(batch.batch_id, progress=progress):
            assert progress.total == 95
    assert (progress.offset, progress.items, progress.pages) == (95, 95, 10)
    assert progress.processed == 93
    assert progress.requests == 10
    assert progress.ended is ReadEnd.TOTAL


async def test_a_429_pauses_every_request_of_the_read(server: FakeBlatServer) -> None:
    batch = server.add_batch(size=400, latency=0.01)
    server.inject(Fault.status(429, retry_after=0.3), batch_id=batch.batch_id, from_=100)
    async with client_for(server, concurrency=6) as client:
        ids = job_ids([item async for item in client.iter_batch_scrape_sitemap(batch.batch_id)])
    assert ids == batch.job_ids
    [limited] = [r for r in server.requests if r.status == 429]
    # Apart from the requests already in flight, none starts during the pause.
    pause = (limited.finished + 0.02, limited.finished + 0.28)
    during = [r for r in server.requests if pause[0] < r.started < pause[1]]
    assert during == []
    later = [r for r in server.requests if r.started >= pause[1]]
    assert later


async def test_a_429_in_one_read_pauses_the_clients_other_reads(
    server: FakeBlatServer,
) -> None:
    limited = server.add_batch("limited", size=100, latency=0.01)
    other = server.add_batch("other", size=300, latency=0.01)
    server.inject(Fault.status(429, retry_after=0.3), batch_id="limited", from_=50)
    async with client_for(server, concurrency=2) as client:
        await asyncio.gather(
            drain(client.iter_batch_scrape_sitemap(limited.batch_id)),
            drain(client.iter_batch_scrape_sitemap(other.batch_id)),
        )
    [answer] = [r for r in server.requests if r.status == 429]
    pause = (answer.finished + 0.02, answer.finished + 0.28)
    assert not [r for r in server.requests if pause[0] < r.started < pause[1]]
    assert [r for r in server.requests if r.batch_id == "other" and r.started >= pause[1]]


# -- running batches --------------------------------------------------------------


async def test_without_follow_a_running_batch_gives_what_is_there(
    server: FakeBlatServer,
) -> None:
    batch = server.add_batch(size=100, visible=35)
    async with client_for(server) as client:
        items = [item async for item in client.iter_batch_scrape_sitemap(batch.batch_id)]
    assert job_ids(items) == batch.job_ids[:35]


async def test_follow_reads_a_growing_batch_to_the_end(server: FakeBlatServer) -> None:
    batch = server.add_batch(size=60, visible=5)

    async def grow() -> None:
        while not batch.is_complete:
            await asyncio.sleep(0.01)
            batch.reveal(7)

    async with client_for(server) as client:
        grower = asyncio.create_task(grow())
        items = [
            item
            async for item in client.iter_batch_scrape_sitemap(
                batch.batch_id, follow=True, poll_interval=0.005
            )
        ]
        await grower
    assert job_ids(items) == batch.job_ids


async def test_follow_polls_with_a_backoff_not_a_hot_loop(server: FakeBlatServer) -> None:
    batch = server.add_batch(size=50, visible=10)
    async with client_for(server) as client:
        items = client.iter_batch_scrape_sitemap(batch.batch_id, follow=True, poll_interval=0.02)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(drain(items), 0.5)
        assert not blat_tasks()
    # 0.02, 0.03, 0.045, ... seconds: a dozen polls at most in half a second.
    assert len(server.requests) < 15


async def test_follow_ends_when_the_status_is_final_and_nothing_comes(
    server: FakeBlatServer,
) -> None:
    batch = server.add_batch(size=40, visible=25, final_status="cancelled")

    async def cancel_batch() -> None:
        await asyncio.sleep(0.05)
        # The server has no "cancel": a final status with fewer items than total.
        batch.running_status = "cancelled"

    async with client_for(server) as client:
        stopper = asyncio.create_task(cancel_batch())
        async with asyncio.timeout(5):
            items = [
                i
                async for i in client.iter_batch_scrape_sitemap(
                    batch.batch_id, follow=True, poll_interval=0.01
                )
            ]
        await stopper
    assert job_ids(items) == batch.job_ids[:25]


# -- early exits --------------------------------------------------------------------


@pytest.mark.parametrize("after", [1, 10, 11, 57, 199, 200])
async def test_leaving_early_at_any_point_leaves_nothing_running(
    server: FakeBlatServer, after: int
) -> None:
    batch = server.add_batch(size=200, latency=0.01)
    async with client_for(server, concurrency=6) as client:
        seen = []
        async with aclosing(client.iter_batch_scrape_sitemap(batch.batch_id)) as items:
            async for item in items:
                seen.append(item)
                if len(seen) == after:
                    break
        assert not blat_tasks()
        assert not client._shared.tasks
    assert job_ids(seen) == batch.job_ids[:after]


async def test_a_dropped_iterator_is_finalized_without_noise(server: FakeBlatServer) -> None:
    batch = server.add_batch(size=200, latency=0.02)
    async with client_for(server, concurrency=6) as client:
        items = client.iter_batch_scrape_sitemap(batch.batch_id)
        await anext(items)
        del items
        gc.collect()
        for _ in range(10):
            await asyncio.sleep(0.01)
        assert not blat_tasks()


async def test_closing_the_client_wakes_a_follower_between_polls(
    server: FakeBlatServer,
) -> None:
    batch = server.add_batch(size=30, visible=10)
    client = client_for(server)
    reader = asyncio.create_task(
        drain(client.iter_batch_scrape_sitemap(batch.batch_id, follow=True, poll_interval=20))
    )
    # The first page reaches what the batch has processed: the read has caught
    # up, and waits 20 s before it polls.
    while not server.requests:  # noqa: ASYNC110 - the server has no event to wait on
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    await client.close()
    with pytest.raises(BlatError, match="closed"):
        await asyncio.wait_for(reader, 2)
    assert len(server.requests) == 1
    assert not blat_tasks()


async def test_the_next_request_travels_while_the_caller_handles_a_page(
    server: FakeBlatServer,
) -> None:
    batch = server.add_batch(size=30)
    finished_first_page = 0.0
    async with client_for(server, concurrency=1) as client:
        async for item in client.iter_batch_scrape_sitemap(batch.batch_id):
            await asyncio.sleep(0.005)  # the caller's own work on each item
            if item.metadata and item.metadata.job_id == batch.job_ids[9]:
                finished_first_page = time.monotonic()
    [second] = [r for r in server.requests if r.from_ == 10]
    assert second.started < finished_first_page
    assert server.max_in_flight == 1


async def test_an_answer_that_does_not_decode_is_asked_again_within_the_concurrency(
    server: FakeBlatServer,
) -> None:
    batch = server.add_batch(size=300, latency=0.002)
    for offset in (100, 150, 160, 250):
        server.inject(Fault.malformed_json(), from_=offset, times=2)
    retry = RetryPolicy(max_retries=3, initial_delay=0.001, max_delay=0.002)
    async with client_for(server, concurrency=3, retry=retry) as client:
        items = [item async for item in client.iter_batch_scrape_sitemap(batch.batch_id)]
    assert job_ids(items) == batch.job_ids
    asked = [r.from_ for r in server.requests]
    assert all(asked.count(offset) == 3 for offset in (100, 150, 160, 250))
    assert server.max_in_flight <= 3


async def test_an_answer_that_never_decodes_ends_the_read_after_its_retries(
    server: FakeBlatServer,
) -> None:
    batch = server.add_batch(size=300)
    server.inject(Fault.malformed_json(), from_=150, times=None)
    retry = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.002)
    seen: list[str | None] = []

    async def read() -> None:
        async for item in client.iter_batch_scrape_sitemap(batch.batch_id):
            seen.append(item.metadata.job_id if item.metadata else None)

    async with client_for(server, concurrency=4, retry=retry) as client:
        with pytest.raises(ResponseValidationError, match="not JSON"):
            await read()
        assert not blat_tasks()
    assert seen == batch.job_ids[:150]
    assert [r.from_ for r in server.requests].count(150) == 3


async def test_follow_does_not_run_ahead_of_a_growing_batch(server: FakeBlatServer) -> None:
    batch = server.add_batch(size=100_000, latency=0.002, jobs_per_second=200)
    items: list[Any] = []

    async def follow(client: BlatClient) -> None:
        async for item in client.iter_batch_scrape_sitemap(
            batch.batch_id, follow=True, poll_interval=0.05
        ):
            items.append(item)

    async with client_for(server, concurrency=6) as client:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(follow(client), 0.6)
    assert job_ids(items) == batch.job_ids[: len(items)]
    # Read-ahead past the batch's visible end stops at its first empty page:
    # at most the read's window (12 pages) is ever asked beyond what was read.
    assert max(r.from_ or 0 for r in server.requests) < len(items) + 250


async def test_follow_reads_ahead_again_after_catching_up(server: FakeBlatServer) -> None:
    batch = server.add_batch(size=400, visible=20, latency=0.005)
    items: list[Any] = []
    async with client_for(server, concurrency=4) as client:
        async for item in client.iter_batch_scrape_sitemap(
            batch.batch_id, follow=True, poll_interval=0.02
        ):
            items.append(item)
            if len(items) == 20:
                # Let the read catch up with the running batch and wait, then complete it.
                await asyncio.sleep(0.1)
                batch.complete()
                server.reset_requests()
    assert job_ids(items) == batch.job_ids
    # The rest of the batch is read four requests at a time again, not one by one.
    assert server.max_in_flight == 4


# -- the runner alone, over a scripted fetch ------------------------------------------


def _running_page(offset: int, count: int, total: int = 1_000) -> BatchScrapeSitemapStatusResponse:
    """A page of a running batch whose ``processed`` says nothing exists past it."""
    return BatchScrapeSitemapStatusResponse(
        status="running",
        total=total,
        processed=offset + count,
        data=tuple(
            BatchScrapeSitemapData(
                metadata=BatchScrapeSitemapMetadata(job_id=f"job-{i}"), success=True
            )
            for i in range(offset, offset + count)
        ),
    )


def _runner(
    plan: Plan,
    fetch: Fetch,
    *,
    concurrency: int = 2,
    poll: PollPolicy | None = None,
    progress: ReadProgress | None = None,
) -> ReadAhead:
    return ReadAhead(
        plan,
        fetch,
        concurrency=concurrency,
        tasks_owner=set(),
        check_open=lambda: None,
        closing=asyncio.Event(),
        poll=poll,
        progress=progress,
    )


class _TwoPagePlan:
    """A plan that is no `ReadPlan`: two pages of 10 from its cursor, and the read ends."""

    def __init__(self, cursor: int) -> None:
        self.cursor = cursor
        self.ended: ReadEnd | None = None
        self._to_ask = [cursor, cursor + 10]
        self._in_flight = 0
        self._arrived: dict[int, Page] = {}
        self._out: deque[Delivery] = deque()
        self._error: BlatError | None = None
        self._state: BatchState = (None, None, None)

    @property
    def done(self) -> bool:
        return self.ended is not None

    @property
    def waiting(self) -> bool:
        return False

    def next_offset(self, limit: int) -> int | None:
        if not self._to_ask or self._in_flight >= limit:
            return None
        self._in_flight += 1
        return self._to_ask.pop(0)

    def arrived(self, offset: int, page: Page, *, size: int = 0) -> None:
        self._in_flight -= 1
        self._arrived[offset] = page
        self._state = (page.processed, page.total, page.status)
        while self.cursor in self._arrived:
            page = self._arrived.pop(self.cursor)
            self._out.append(Delivery(self.cursor, page))
            self.cursor += len(page.data)
        if not (self._to_ask or self._in_flight or self._arrived):
            self.ended = ReadEnd.TOTAL

    def gave_up(self, offset: int, error: BlatError) -> None:
        self._in_flight -= 1
        self._error = error

    def next_delivery(self) -> Delivery | None:
        if self._out:
            return self._out.popleft()
        if self._error is not None:
            raise self._error
        return None

    def handed_out(self) -> None:
        pass

    def poll(self) -> None:
        pass

    def batch_state(self) -> BatchState:
        return self._state


async def test_the_runner_needs_no_more_of_its_plan_than_the_verbs_of_plan() -> None:
    """`ReadAhead` runs a plan that only has `Plan`'s verbs, and fills progress from them."""

    async def fetch(offset: int, hooks: RequestHooks) -> Fetched:
        page = _running_page(offset, 10)
        return Fetched(attrs.evolve(page, status="completed", processed=20, total=25), 0)

    progress = ReadProgress()
    runner = _runner(_TwoPagePlan(5), fetch, progress=progress)
    deliveries = [d async for d in runner.deliveries()]

    assert [d.offset for d in deliveries] == [5, 15]
    assert progress.offset == 5  # where the plan's cursor stood when the read began
    assert (progress.processed, progress.total, progress.status) == (20, 25, "completed")
    assert progress.ended is ReadEnd.TOTAL


async def test_the_poll_wait_grows_while_nothing_comes_and_starts_over_with_news(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What the batch shows at each request: 3 items, nothing twice, 2 items,
    # nothing, then it is cancelled.
    script = iter([3, 0, 0, 2, 0, None])
    waits: list[float] = []

    async def fetch(offset: int, hooks: RequestHooks) -> Fetched:
        count = next(script)
        if count is None:
            return Fetched(BatchScrapeSitemapStatusResponse(status="cancelled", total=10), 0)
        return Fetched(_running_page(offset, count, total=10), 0)

    async def no_wait(self: ReadAhead, delay: float) -> None:
        waits.append(delay)

    monkeypatch.setattr(ReadAhead, "_wait_for_poll", no_wait)
    runner = _runner(ReadPlan(0, follow=True, window=4), fetch, poll=PollPolicy(1.0, 30.0))
    deliveries = [d async for d in runner.deliveries()]

    assert [d.offset for d in deliveries] == [0, 3]
    assert waits == [1.0, 1.5, 2.25, 1.0, 1.5]


async def test_a_slot_sends_its_next_request_while_the_caller_holds_a_page() -> None:
    sent: list[int] = []
    answered = asyncio.Event()

    async def fetch(offset: int, hooks: RequestHooks) -> Fetched:
        sent.append(offset)
        await asyncio.sleep(0)
        if offset == 10:
            answered.set()
        page = _running_page(offset, 10)
        return Fetched(attrs.evolve(page, status="completed", processed=1_000), 0)

    runner = _runner(ReadPlan(0, window=4), fetch, concurrency=2)
    deliveries = runner.deliveries()
    async with aclosing(deliveries):
        await anext(deliveries)  # the caller holds the first page from here on
        await asyncio.wait_for(answered.wait(), 1)
        for _ in range(5):
            await asyncio.sleep(0)
        # The slot that brought 10 asked for 30 at once, without the caller.
        assert sorted(sent) == [0, 10, 20, 30]


async def test_a_429_lowers_the_reads_requests_in_flight_and_successes_restore_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    class RecordingThrottle(Throttle):
        def rate_limited(self) -> None:
            calls.append("rate_limited")
            super().rate_limited()

        def succeeded(self) -> None:
            calls.append("succeeded")
            super().succeeded()

    monkeypatch.setattr(_readahead, "Throttle", RecordingThrottle)

    async def fetch(offset: int, hooks: RequestHooks) -> Fetched:
        if offset == 0:
            assert hooks.on_rate_limit is not None
            hooks.on_rate_limit()  # as a retry after a 429 does
        page = _running_page(offset, 10)
        return Fetched(attrs.evolve(page, status="completed", total=30), 0)

    deliveries = [d async for d in _runner(ReadPlan(0, window=4), fetch).deliveries()]

    assert [d.offset for d in deliveries] == [0, 10, 20]
    assert calls == ["rate_limited", "succeeded", "succeeded", "succeeded"]


async def test_closing_stops_every_chain_at_once_however_long_the_batch() -> None:
    # The client, once closing, fails every request at once, with no await. A
    # request that wakes just then (its retry timer fired together with the
    # caller's close()) must not go on to ask for the rest of the batch.
    closing = asyncio.Event()
    release = asyncio.Event()
    owner: set[asyncio.Task[None]] = set()
    after_close: list[int] = []

    def check_open() -> None:
        if closing.is_set():
            raise BlatError("this BlatClient is closed; create a new one")

    async def fetch(offset: int, hooks: RequestHooks) -> Fetched:
        if offset == 10:
            await asyncio.Event().wait()  # an answer that never comes
        if offset > 10:
            await release.wait()
        if closing.is_set():
            after_close.append(offset)
            raise BlatError("this BlatClient is closed; create a new one")
        page = _running_page(offset, 10, total=100_000)
        return Fetched(attrs.evolve(page, status="completed", processed=100_000), 0)

    plan = ReadPlan(0, window=4)
    runner = ReadAhead(
        plan, fetch, concurrency=2, tasks_owner=owner, check_open=check_open, closing=closing
    )
    deliveries = runner.deliveries()
    async with aclosing(deliveries):
        await anext(deliveries)
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(owner) == 2  # 10 waits forever, 20 for the release
        closing.set()
        release.set()
        for _ in range(10):  # the released request runs before close() cancels
            await asyncio.sleep(0)
        assert after_close == [20]
        for task in list(owner):
            task.cancel()
        await asyncio.gather(*owner, return_exceptions=True)


async def test_a_failure_lets_the_loop_run_before_the_next_request() -> None:
    # Requests that fail without awaiting anything: each chain must give the
    # loop a turn (here, the ticker) between one failure and its next request.
    ticks = 0
    failures: dict[asyncio.Task[Any] | None, list[int]] = {}

    async def fetch(offset: int, hooks: RequestHooks) -> Fetched:
        if offset == 0:
            page = _running_page(0, 10, total=1_000)
            return Fetched(attrs.evolve(page, status="completed", processed=1_000), 0)
        if offset == 10:
            await asyncio.Event().wait()  # the cursor's answer never comes
        failures.setdefault(asyncio.current_task(), []).append(ticks)
        raise InternalServerError(500)

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    runner = _runner(ReadPlan(0, window=8), fetch, concurrency=3)
    deliveries = runner.deliveries()
    async with aclosing(deliveries):
        await anext(deliveries)
        for _ in range(40):
            await asyncio.sleep(0)
    ticker.cancel()
    await asyncio.gather(ticker, return_exceptions=True)
    assert sum(len(seen) for seen in failures.values()) >= 3
    assert any(len(seen) >= 2 for seen in failures.values())
    for seen in failures.values():
        assert all(a < b for a, b in itertools.pairwise(seen)), failures


async def test_close_during_a_long_read_does_not_walk_the_batch(
    server: FakeBlatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The case that froze the loop: a retry's timer and the caller's close()
    # fire in one turn of a loop that was busy, close() first.
    batch = server.add_batch(size=100_000)
    server.inject(Fault.latency(5.0), batch_id=batch.batch_id, from_=10, times=None)
    server.inject(Fault.status(503, retry_after=1), batch_id=batch.batch_id, from_=20)
    client = client_for(server, concurrency=2, retry=RetryPolicy(max_retries=3))
    refused: list[int] = []
    check_open = client._shared.check_open

    def counting_check_open() -> None:
        if client._shared.closing.is_set():
            refused.append(1)
        check_open()

    monkeypatch.setattr(client._shared, "check_open", counting_check_open)
    items = client.iter_batch_scrape_sitemap(batch.batch_id)
    await anext(items)
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, time.sleep, 1.0)  # the caller's loop is busy from 0.3 s to 1.3 s
    await asyncio.sleep(0.9)  # due before the retry's timer (about 1.0 s), both run at 1.3 s
    await client.close()
    with pytest.raises(BlatError, match="closed"):
        await drain(items)  # the rest of the first page, then the error
    # One refused request (the retry that woke), not one for each page left.
    assert len(refused) <= 2
