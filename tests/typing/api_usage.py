"""The public API used the way a user would; checked by ``mypy --strict`` in CI, never run."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from datetime import datetime

import aiohttp

from blat_async import (
    APIStatusError,
    BatchScrapeData,
    BatchScrapeMetadata,
    BatchScrapeSitemapData,
    BatchScrapeSitemapStatusResponse,
    BatchScrapeStatusResponse,
    BlatClient,
    BlatError,
    RateLimitError,
    ReadProgress,
    RetryPolicy,
)


async def stream_links(batch_id: str, queue: asyncio.Queue[str]) -> int:
    retry = RetryPolicy(max_retries=5, initial_delay=0.2, max_delay=4.0)
    progress = ReadProgress()
    async with BlatClient("key", timeout=10.0, retry=retry, concurrency=4) as client:
        page: BatchScrapeSitemapStatusResponse = await client.get_batch_scrape_sitemap_status(
            batch_id, from_=0
        )
        expires: datetime | None = page.expires_at_datetime
        assert expires is None or expires.tzinfo is not None
        items = client.iter_batch_scrape_sitemap(batch_id, 0, None, progress=progress)
        async with aclosing(items):
            async for item in items:
                checked: BatchScrapeSitemapData = item
                for link in checked.links:
                    await queue.put(link)
        fraction: float | None = progress.fraction
        assert fraction is None or 0.0 <= fraction <= 1.0
    return progress.offset


async def pages_with_borrowed_session(batch_id: str) -> list[int | None]:
    totals: list[int | None] = []
    async with aiohttp.ClientSession() as session:
        client = BlatClient(
            base_url="https://api.blat.ai",
            timeout=aiohttp.ClientTimeout(total=5),
            session=session,
        )
        try:
            async for page in client.iter_batch_scrape_sitemap_pages(
                batch_id, start=10, stop=100, concurrency=2, follow=True, poll_interval=1.0
            ):
                totals.append(page.total)
        except RateLimitError as error:
            delay: float | None = error.retry_after
            assert delay is None or delay >= 0
        except APIStatusError as error:
            status: int = error.status
            assert status >= 400
        except BlatError:
            raise
        finally:
            await client.close()
    return totals


async def store_scraped_pages(batch_id: str, pages: dict[str, str]) -> int | None:
    async with BlatClient("key", max_retries=2) as client:
        first: BatchScrapeStatusResponse = await client.get_batch_scrape_status(batch_id)
        async for item in client.iter_batch_scrape(batch_id, stop=first.total):
            scraped: BatchScrapeData = item
            meta: BatchScrapeMetadata | None = scraped.metadata
            if scraped.success and meta is not None and meta.final_url is not None:
                status: int | None = meta.status_code
                assert status is None or status >= 0
                pages[meta.final_url] = scraped.content or ""
            links: tuple[str, ...] = scraped.extracted_links
            assert all(isinstance(link, str) for link in links)
        async for page in client.with_options(max_retries=0).iter_batch_scrape_pages(batch_id):
            checked: BatchScrapeStatusResponse = page
            assert checked.status is not None
        return first.total
