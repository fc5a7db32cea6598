"""Scrapy: crawl every link of a batch while Blat still scrapes its sitemaps.

The spider's ``async def start()`` (Scrapy 2.13 or newer, on the asyncio
reactor) reads the batch with ``BlatClient`` and yields a ``Request`` for each
link as the items arrive. It follows a running batch (``follow=True``): the
first pages are crawled while the batch is still scraping the other sitemaps,
and ``start()`` ends once every sitemap job is read. Scrapy's scheduler,
downloader and duplicate filter take it from there: a link that several
sitemaps list is fetched once.

Given a batch scrape instead (``kind="scrape"``, ``--kind scrape``), Blat has
already downloaded the pages: ``start()`` reads them with
``iter_batch_scrape`` and yields an item per page, built from its
``content``, without fetching it again.

Install Scrapy with ``pip install 'blat-async[scrapy]'``. Run it against the
embedded fake server and a local site to crawl (no key needed)::

    python examples/scrapy_spider.py --size 30 --jobs-per-second 10
    python examples/scrapy_spider.py --kind scrape --size 30

or against a real batch, with ``BLAT_API_KEY`` set, writing one line per page::

    python examples/scrapy_spider.py BATCH_ID -o pages.jsonl
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from typing import Any, Final

import scrapy
from blat_async import (
    BatchScrapeData,
    BatchScrapeMetadata,
    BlatClient,
    BlatError,
    ReadProgress,
)
from scrapy import signals
from scrapy.crawler import CrawlerProcess
from scrapy.http import Response

# BlatClient runs on asyncio: Scrapy must run on Twisted's asyncio reactor
# (its default since 2.13; said here so that a project setting cannot change
# it).
ASYNCIO_REACTOR: Final = (
    "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
)


KINDS: Final = ("sitemap", "scrape")
"""What the spider reads: a batch sitemap's links, or a batch scrape's pages."""


def title_of(content: str) -> str | None:
    """A page's title: its HTML ``<title>``, or its first Markdown heading."""
    if content.lstrip().startswith("<"):
        html = scrapy.Selector(text=content)
        title: str | None = html.css("title::text").get()
        return title
    for line in content.splitlines():
        if line.startswith("# "):
            return line.removeprefix("# ").strip()
    return None


class BatchLinksSpider(scrapy.Spider):
    """Crawls the links of one Blat batch; your parsing goes in ``parse``.

    With ``kind="scrape"``, it reads a batch scrape's pages instead, and
    ``parse_scraped`` makes their items.
    """

    name = "blat_batch_links"

    def __init__(
        self,
        batch_id: str,
        *,
        kind: str = "sitemap",
        follow: bool | str = True,
        poll_interval: float | str = 2.0,
        api_key: str | None = None,
        base_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.batch_id = batch_id
        self.kind = kind
        # `scrapy crawl -a follow=false -a poll_interval=5` passes strings.
        self.follow = (
            follow
            if isinstance(follow, bool)
            else follow.lower() in ("1", "true", "yes")
        )
        self.poll_interval = float(poll_interval)
        # None: BlatClient reads BLAT_API_KEY and BLAT_BASE_URL, as in
        # production.
        self.api_key = api_key
        self.base_url = base_url

    async def start(self) -> AsyncIterator[scrapy.Request | dict[str, Any]]:
        """Yield the batch's requests (or items), as its jobs come in."""
        stats = self.crawler.stats
        assert stats is not None
        progress = ReadProgress()
        try:
            async with BlatClient(
                self.api_key, base_url=self.base_url
            ) as client:
                found: AsyncGenerator[scrapy.Request | dict[str, Any], None]
                if self.kind == "scrape":
                    found = self.scraped_pages(client, progress)
                else:
                    found = self.sitemap_links(client, progress)
                async with contextlib.aclosing(found):
                    async for request_or_item in found:
                        yield request_or_item
        except BlatError as error:
            # Raised out of start(), the error would be logged with a traceback,
            # and the crawl would end as "finished" all the same (raising
            # CloseSpider from start() needs Scrapy 2.18). Log it, keep it in
            # the stats for the program's exit status, and end start(): the
            # pages already queued are crawled, and the spider closes.
            self.logger.error(
                "reading batch %s failed: %s", self.batch_id, error
            )
            stats.set_value("blat/read_error", str(error))
            return
        self.logger.info(
            "batch %s read to offset %d, status %s",
            self.batch_id,
            progress.offset,
            progress.status,
        )

    async def sitemap_links(
        self, client: BlatClient, progress: ReadProgress
    ) -> AsyncGenerator[scrapy.Request, None]:
        """A request for every link of a batch sitemap."""
        stats = self.crawler.stats
        assert stats is not None
        items = client.iter_batch_scrape_sitemap(
            self.batch_id,
            follow=self.follow,
            poll_interval=self.poll_interval,
            progress=progress,
        )
        async with contextlib.aclosing(items):
            async for item in items:
                stats.inc_value("blat/sitemap_jobs")
                if not item.success:
                    stats.inc_value("blat/sitemap_jobs_failed")
                    continue
                sitemap = item.metadata.url if item.metadata else None
                for link in item.links:
                    await self.wait_while_busy()
                    stats.inc_value("blat/links")
                    yield scrapy.Request(
                        link,
                        callback=self.parse,
                        cb_kwargs={"sitemap": sitemap},
                    )

    async def scraped_pages(
        self, client: BlatClient, progress: ReadProgress
    ) -> AsyncGenerator[dict[str, Any], None]:
        """An item for every page of a batch scrape, from its content.

        Nothing is downloaded: Scrapy sends an item that ``start()`` yields
        straight to the item pipelines and feed exports.
        """
        stats = self.crawler.stats
        assert stats is not None
        items = client.iter_batch_scrape(
            self.batch_id,
            follow=self.follow,
            poll_interval=self.poll_interval,
            progress=progress,
        )
        async with contextlib.aclosing(items):
            async for item in items:
                stats.inc_value("blat/scrape_jobs")
                if not item.success:
                    stats.inc_value("blat/scrape_jobs_failed")
                    continue
                stats.inc_value("blat/scraped_pages")
                yield self.parse_scraped(item)

    async def wait_while_busy(self) -> None:
        """While Scrapy needs to back out, wait until its scheduler is empty.

        Scrapy reads ``start()`` ahead of its downloader, so without this wait
        every link of the batch would queue in its scheduler's memory. With it,
        the batch is read at the pace of the crawl and the client's read-ahead
        stops at its bounded buffer (Scrapy's "lazy start requests").
        """
        engine = self.crawler.engine
        if engine is not None and engine.needs_backout():
            await self.crawler.signals.wait_for(signals.scheduler_empty)

    def parse(
        self, response: Response, **kwargs: Any
    ) -> Iterator[dict[str, Any]]:
        """One item per page; replace with your own extraction."""
        yield {
            "url": response.url,
            "status": response.status,
            "title": response.css("title::text").get(),
            "sitemap": kwargs.get("sitemap"),
        }

    def parse_scraped(self, item: BatchScrapeData) -> dict[str, Any]:
        """One item per page the batch scraped; replace with your own."""
        metadata = item.metadata or BatchScrapeMetadata()
        return {
            "url": metadata.final_url or metadata.url,
            "status": metadata.status_code,
            "title": title_of(item.content or ""),
            "job_id": metadata.job_id,
        }


def crawl(
    spider_args: dict[str, Any], output: str | None, concurrency: int
) -> dict[str, Any]:
    """Run the spider to the end in this process; return Scrapy's stats."""
    settings: dict[str, Any] = {
        "TWISTED_REACTOR": ASYNCIO_REACTOR,
        "LOG_LEVEL": "INFO",
        "TELNETCONSOLE_ENABLED": False,
        "ROBOTSTXT_OBEY": True,
        "CONCURRENT_REQUESTS": concurrency,
        "FEEDS": {output: {"format": "jsonlines"}} if output else {},
    }
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(BatchLinksSpider)
    process.crawl(crawler, **spider_args)
    process.start()  # Blocks until the crawl is over.
    assert crawler.stats is not None
    return crawler.stats.get_stats()


@contextlib.contextmanager
def spider_args(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """The spider's arguments.

    The real API with ``BLAT_API_KEY``, else fake servers.
    """
    common = {
        "kind": args.kind,
        "follow": args.follow,
        "poll_interval": args.poll_interval,
    }
    if os.environ.get("BLAT_API_KEY"):
        if args.batch_id is None:
            raise SystemExit("BLAT_API_KEY is set: give the BATCH_ID to read")
        yield {"batch_id": args.batch_id, **common}
        return
    from blat_async.testing import FakeBlatServer, FakeSite

    # In threads: Scrapy runs its own event loop in this one. The batch is still
    # running when the crawl starts: jobs_per_second more of it appear each
    # second.
    with (
        FakeSite().run_in_thread() as site,
        FakeBlatServer().run_in_thread() as server,
    ):
        batch = server.add_batch(
            "scrapy-demo",
            args.size,
            kind=args.kind,
            failed=0.1,
            links_per_job=3,
            link_base=site.link_base,
            jobs_per_second=args.jobs_per_second,
        )
        yield {
            "batch_id": batch.batch_id,
            "api_key": server.api_key,
            "base_url": server.base_url,
            **common,
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "batch_id", nargs="?", help="the batch to read (needs BLAT_API_KEY)"
    )
    parser.add_argument(
        "--kind",
        choices=KINDS,
        default="sitemap",
        help="crawl a batch sitemap's links, or take a batch scrape's pages",
    )
    parser.add_argument(
        "-o", "--output", help="write one JSON line per page to this file"
    )
    parser.add_argument(
        "--concurrency", type=int, default=16, help="pages fetched at once"
    )
    parser.add_argument(
        "--no-follow",
        dest="follow",
        action="store_false",
        help="take the jobs finished so far"
        " instead of following a running batch",
    )
    parser.add_argument(
        "--poll-interval", type=float, default=2.0, help="seconds between polls"
    )
    parser.add_argument(
        "--size", type=int, default=30, help="jobs in the fake batch"
    )
    parser.add_argument(
        "--jobs-per-second",
        type=float,
        default=10.0,
        help="how fast the fake batch runs",
    )
    args = parser.parse_args(argv)
    if not os.environ.get("BLAT_API_KEY"):
        args.poll_interval = min(args.poll_interval, 0.2)

    with spider_args(args) as arguments:
        stats = crawl(arguments, args.output, args.concurrency)
    reason = stats.get("finish_reason")
    if args.kind == "scrape":
        found = f"{stats.get('blat/scraped_pages', 0)} pages scraped by Blat"
    else:
        found = f"{stats.get('blat/links', 0)} links"
    print(
        f"batch {arguments['batch_id']}: "
        f"{stats.get(f'blat/{args.kind}_jobs', 0)} {args.kind} jobs, "
        f"{stats.get(f'blat/{args.kind}_jobs_failed', 0)} failed, {found}"
    )
    pages = stats.get("response_received_count", 0) - stats.get(
        "robotstxt/response_count", 0
    )
    print(
        f"pages crawled: {pages}, "
        f"items scraped: {stats.get('item_scraped_count', 0)}"
    )
    print(f"spider closed: {reason}")
    if error := stats.get("blat/read_error"):
        print(f"reading the batch failed: {error}")
    return 0 if reason == "finished" and not stats.get("log_count/ERROR") else 1


if __name__ == "__main__":
    raise SystemExit(main())
