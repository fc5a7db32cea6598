"""Requests in the corner cases of the zero-waste rules, counted against servers on 127.0.0.1.

Each case reads once, in this process, and compares the requests the server
answered with what the read needed: a finished batch costs one request a
page, a slice only the pages it covers, a batch without ``total`` at most
``concurrency - 1`` requests past its end, a followed batch one request a
poll while caught up plus one a page of items, and an offset that always
fails at most ``max_retries + 1`` attempts.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

from aiohttp import web

from blat_async import BlatClient, BlatError, RetryPolicy
from blat_async.testing import FakeBlatServer, Fault


@dataclass(frozen=True, slots=True)
class Case:
    """One case: what the read sent, and the most it may send."""

    name: str
    requests: int
    allowed: int
    rule: str

    @property
    def passed(self) -> bool:
        return self.requests <= self.allowed

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return f"| {self.name} | {self.requests} | {self.allowed} | **{verdict}** |"


async def _read(client: BlatClient, batch_id: str, **kwargs: object) -> int:
    count = 0
    async for _item in client.iter_batch_scrape_sitemap(batch_id, **kwargs):  # type: ignore[arg-type]
        count += 1
    return count


async def _finished(server: FakeBlatServer) -> list[Case]:
    cases = []
    for size in (0, 5, 95, 200):
        for concurrency in (1, 3, 8):
            batch = server.add_batch(size=size)
            server.reset_requests()
            async with BlatClient(server.api_key, base_url=server.base_url) as client:
                await _read(client, batch.batch_id, concurrency=concurrency)
            pages = max(1, math.ceil(size / 10))
            name = f"finished, {size} items in pages of 10, concurrency={concurrency}"
            cases.append(Case(name, len(server.requests), pages, "one request a page"))
    batch = server.add_batch(size=1_000)
    server.reset_requests()
    async with BlatClient(server.api_key, base_url=server.base_url) as client:
        await _read(client, batch.batch_id, start=42, stop=61)
    name = "start=42, stop=61, pages of 10"
    cases.append(Case(name, len(server.requests), 2, "one request a page the slice covers"))
    return cases


@asynccontextmanager
async def _without_total(size: int) -> AsyncIterator[tuple[str, list[int]]]:
    """A server whose pages of 10 carry neither ``total`` nor ``processed``."""
    asked: list[int] = []

    async def page(request: web.Request) -> web.Response:
        offset = int(request.query["from"])
        asked.append(offset)
        data = [
            {"metadata": {"job_id": f"job-{i}"}, "success": True}
            for i in range(offset, min(size, offset + 10))
        ]
        return web.json_response({"status": "completed", "data": data})

    app = web.Application()
    app.router.add_get("/batch/scrape_sitemap/{batch_id}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/", asked
    finally:
        await runner.cleanup()


async def _no_total() -> list[Case]:
    cases = []
    for concurrency in (1, 4, 8):
        async with (
            _without_total(95) as (base_url, asked),
            BlatClient("key", base_url=base_url) as client,
        ):
            await _read(client, "b", concurrency=concurrency)
        # Ten pages with items, and the one that shows the end.
        name = f"no total, 95 items in pages of 10, concurrency={concurrency}"
        rule = "the pages with items, the empty page after them, and concurrency - 1 more"
        cases.append(Case(name, len(asked), 11 + concurrency - 1, rule))
    return cases


async def _follow(server: FakeBlatServer) -> list[Case]:
    cases = []
    poll = 0.05
    for concurrency in (1, 6):
        batch = server.add_batch(size=60, jobs_per_second=60)
        server.reset_requests()
        started = time.monotonic()
        async with BlatClient(server.api_key, base_url=server.base_url) as client:
            pages = client.iter_batch_scrape_sitemap_pages(
                batch.batch_id, concurrency=concurrency, follow=True, poll_interval=poll
            )
            # Each page handed out holds items no page before it had.
            with_items = len([page async for page in pages])
        polls = math.ceil((time.monotonic() - started) / poll)
        name = f"follow, 60 jobs at 60/s, poll 50 ms, concurrency={concurrency}"
        rule = "one request a poll interval of the read's time, and one a page with items"
        cases.append(Case(name, len(server.requests), polls + with_items, rule))
    return cases


async def _failing(server: FakeBlatServer) -> list[Case]:
    cases = []
    retry = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.002)
    for concurrency in (1, 4, 8):
        batch = server.add_batch(size=200)
        server.inject(Fault.status(500), batch_id=batch.batch_id, from_=50, times=None)
        server.reset_requests()
        async with BlatClient(server.api_key, base_url=server.base_url, retry=retry) as client:
            with suppress(BlatError):  # the read ends on that offset's error
                await _read(client, batch.batch_id, concurrency=concurrency)
        server.clear_faults()
        attempts = sum(1 for r in server.requests if r.from_ == 50)
        name = f"from=50 always fails, max_retries=2, concurrency={concurrency}"
        cases.append(Case(name, attempts, 3, "max_retries + 1 attempts at the offset that fails"))
    return cases


async def _all() -> list[Case]:
    async with FakeBlatServer() as server:
        cases = await _finished(server)
        cases += await _no_total()
        cases += await _follow(server)
        cases += await _failing(server)
    return cases


def waste_table() -> tuple[list[str], bool]:
    """The table of the cases, and whether every one kept to its rule."""
    cases = asyncio.run(_all())
    lines = ["| case | requests | at most | result |", "| --- | ---: | ---: | --- |"]
    lines += [case.line() for case in cases]
    # Each kind of case, named by the start of its cases' names, and its bound.
    rules = {case.name.split(",")[0]: case.rule for case in cases}
    lines += ["", "At most:", ""]
    lines += [f"- {kind}: {rule};" for kind, rule in rules.items()]
    lines[-1] = lines[-1].removesuffix(";") + "."
    return lines, all(case.passed for case in cases)
