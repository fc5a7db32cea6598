"""One reader process: read a whole batch one way, then print a `ReadResult` as a JSON line.

Each reader does the same work per item (count it and its links), so they
differ only in how pages are fetched and turned into objects. ``--kind``
chooses the endpoint: ``sitemap`` (``GET /batch/scrape_sitemap/{id}``, the
default) or ``scrape`` (``GET /batch/scrape/{id}``)::

    python benchmarks/readers.py raw --base-url http://127.0.0.1:8089/ --batch-id bench

The timer starts before the HTTP session is opened and stops after it is
closed; the interpreter's start and the imports are not timed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from _common import API_KEY, BATCH_ID, ReadResult, current_rss_kib, peak_rss_kib

from blat_async import BlatClient

Counts = tuple[int, int, int]
"""Items, links and pages read."""

Reader = Callable[[argparse.Namespace], Coroutine[None, None, Counts]]

_SERVER_WORKERS: Final = 8

_PATHS: Final = {"sitemap": "batch/scrape_sitemap/", "scrape": "batch/scrape/"}
"""Each endpoint's path, written out as a user without the library writes it."""
_LINKS: Final = {"sitemap": "links", "scrape": "extracted_links"}
"""The field of an item that holds its links, on each endpoint."""


def _page_url(args: argparse.Namespace) -> str:
    return f"{args.base_url}{_PATHS[args.kind]}{args.batch_id}"


async def read_raw(args: argparse.Namespace) -> Counts:
    """What a user writes without a client library: aiohttp, ``from`` by hand, dicts."""
    url = _page_url(args)
    links_field = _LINKS[args.kind]
    headers = {"Authorization": f"Bearer {args.api_key}"}
    items = links = pages = offset = 0
    async with aiohttp.ClientSession(headers=headers) as session:
        while True:
            async with session.get(url, params={"from": offset}) as response:
                response.raise_for_status()
                page = await response.json()
            pages += 1
            data = page.get("data") or []
            for item in data:
                items += 1
                links += len(item.get(links_field) or ())
            offset += len(data)
            total = page.get("total")
            if not data or (total is not None and offset >= total):
                return items, links, pages


async def read_collect(args: argparse.Namespace) -> Counts:
    """The raw loop, but every page is kept in a list and the items are read at the end."""
    url = _page_url(args)
    links_field = _LINKS[args.kind]
    headers = {"Authorization": f"Bearer {args.api_key}"}
    all_pages: list[dict[str, Any]] = []
    offset = 0
    async with aiohttp.ClientSession(headers=headers) as session:
        while True:
            async with session.get(url, params={"from": offset}) as response:
                response.raise_for_status()
                page = await response.json()
            all_pages.append(page)
            data = page.get("data") or []
            offset += len(data)
            total = page.get("total")
            if not data or (total is not None and offset >= total):
                break
    items = links = 0
    for page in all_pages:
        for item in page.get("data") or ():
            items += 1
            links += len(item.get(links_field) or ())
    return items, links, len(all_pages)


async def _read_blat(args: argparse.Namespace, concurrency: int | None) -> Counts:
    items = links = 0
    async with BlatClient(args.api_key, base_url=args.base_url) as client:
        if args.kind == "scrape":
            async for page in client.iter_batch_scrape(args.batch_id, concurrency=concurrency):
                items += 1
                links += len(page.extracted_links)
        else:
            async for item in client.iter_batch_scrape_sitemap(
                args.batch_id, concurrency=concurrency
            ):
                items += 1
                links += len(item.links)
    return items, links, 0


async def read_blat(args: argparse.Namespace) -> Counts:
    """blat_async with every default (six requests in flight)."""
    return await _read_blat(args, None)


async def read_blat_c8(args: argparse.Namespace) -> Counts:
    """blat_async with eight requests in flight."""
    return await _read_blat(args, 8)


@dataclass(frozen=True, slots=True)
class _Generated:
    """The parts of the generated package that the loop uses."""

    client_class: Any
    get_page: Callable[..., Awaitable[object]]
    response_class: Any
    unset_class: Any
    links_field: str


_GENERATED: Final = {
    # kind: the package, its endpoint module and its page model, as generated.
    "sitemap": (
        "blat_openapi_client",
        "get_batch_scrape_sitemap_batch_id",
        "ApiBatchScrapeSitemapStatusResponse",
    ),
    "scrape": (
        "blat_openapi_scrape_client",
        "get_batch_scrape_batch_id",
        "ApiBatchScrapeStatusResponse",
    ),
}


def _load_generated(folder: str, kind: str) -> _Generated:
    sys.path.insert(0, folder)
    package, module, model = _GENERATED[kind]
    endpoint = importlib.import_module(f"{package}.api.scraping.{module}")
    return _Generated(
        client_class=importlib.import_module(package).AuthenticatedClient,
        get_page=endpoint.asyncio,
        response_class=getattr(importlib.import_module(f"{package}.models"), model),
        unset_class=importlib.import_module(f"{package}.types").Unset,
        links_field=_LINKS[kind],
    )


async def read_generated(args: argparse.Namespace) -> Counts:
    """The openapi-python-client package generated from the spec, with ``from`` by hand."""
    generated: _Generated = args.loaded
    unset = generated.unset_class
    items = links = pages = offset = 0
    async with generated.client_class(base_url=args.base_url, token=args.api_key) as client:
        while True:
            page: Any = await generated.get_page(args.batch_id, client=client, from_=offset)
            if not isinstance(page, generated.response_class):
                raise RuntimeError(f"from={offset} answered {page!r}")
            pages += 1
            data = [] if isinstance(page.data, unset) else page.data
            for item in data:
                items += 1
                item_links = getattr(item, generated.links_field)
                if not isinstance(item_links, unset):
                    links += len(item_links)
            offset += len(data)
            if not data or (not isinstance(page.total, unset) and offset >= page.total):
                return items, links, pages


async def _fetch_bytes(
    session: aiohttp.ClientSession, url: str, offsets: Iterable[int], workers: int
) -> int:
    """Fetch the page at each offset, ``workers`` at a time, and read the bodies as bytes.

    Each worker sends its next request as soon as its body is in, so
    ``workers`` requests are in flight while that many offsets are left.
    Returns the number of pages fetched.
    """
    pending = iter(offsets)
    pages = 0

    async def worker() -> None:
        nonlocal pages
        for offset in pending:
            async with session.get(f"{url}?from={offset}") as response:
                response.raise_for_status()
                await response.read()
            pages += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return pages


async def read_server_ceiling(args: argparse.Namespace) -> Counts:
    """How fast the fake server serves: eight workers fetch every page and decode nothing.

    The page size must be known (``--page-size``); items are counted from the
    page size and the batch's size (``--expect``), links are not counted.
    """
    if args.page_size is None:
        raise SystemExit("the server reader needs --page-size")
    url = _page_url(args)
    headers = {"Authorization": f"Bearer {args.api_key}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        offsets = range(0, args.expect, args.page_size)
        pages = await _fetch_bytes(session, url, offsets, _SERVER_WORKERS)
    return args.expect, -1, pages


async def _zero_waste(args: argparse.Namespace, workers: int) -> Counts:
    """The least a client that knows nothing in advance can do with ``workers`` in flight.

    It sends the first page's request alone and decodes that page only, for
    the batch's ``total`` and the page size (its length); then ``workers``
    workers fetch the pages at every later multiple of the page size below
    ``total`` and read their bodies as bytes. Every request is one the read
    needs. Items are counted from ``total``, links are not counted.
    """
    url = _page_url(args)
    headers = {"Authorization": f"Bearer {args.api_key}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(f"{url}?from=0") as response:
            response.raise_for_status()
            first = await response.json()
        total = first.get("total")
        page_size = len(first.get("data") or ())
        if not isinstance(total, int) or (page_size == 0 and total > 0):
            raise RuntimeError(f"the first page shows no usable total and page size: {first!r}")
        offsets = range(page_size, total, page_size) if page_size else range(0)
        pages = 1 + await _fetch_bytes(session, url, offsets, workers)
    return total, -1, pages


async def read_zero_waste_floor(args: argparse.Namespace) -> Counts:
    """The zero-waste reader with eight requests in flight, as ``concurrency=8``."""
    return await _zero_waste(args, 8)


async def read_zero_waste_c6(args: argparse.Namespace) -> Counts:
    """The zero-waste reader with six requests in flight, as blat_async's default."""
    return await _zero_waste(args, 6)


READERS: Final[dict[str, Reader]] = {
    "raw": read_raw,
    "generated": read_generated,
    "blat_async": read_blat,
    "blat_async-c8": read_blat_c8,
    "collect-all": read_collect,
    "server": read_server_ceiling,
    "zero-waste": read_zero_waste_floor,
    "zero-waste-c6": read_zero_waste_c6,
}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("reader", choices=sorted(READERS))
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", default=API_KEY)
    parser.add_argument("--batch-id", default=BATCH_ID)
    parser.add_argument("--kind", choices=sorted(_PATHS), default="sitemap", help="the endpoint")
    parser.add_argument("--expect", type=int, default=0, help="items in the batch")
    # No default: run.py passes its scenario's, and importing the fake server's
    # default would grow every reader's measured memory.
    parser.add_argument("--page-size", type=int, help="items per page (the server reader's)")
    parser.add_argument("--generated", help="the folder that holds the generated package")
    parser.add_argument("--profile", help="write a cProfile of the read to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    reader = READERS[args.reader]
    if args.reader == "generated":
        if not args.generated:
            raise SystemExit("the generated reader needs --generated FOLDER")
        # Imported before the timer starts, as the other readers' libraries are.
        args.loaded = _load_generated(args.generated, args.kind)
    baseline = current_rss_kib()
    profiler = cProfile.Profile() if args.profile else None
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    items, links, pages = asyncio.run(reader(args))
    if profiler is not None:
        profiler.disable()
    seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.dump_stats(args.profile)
    result = ReadResult(
        reader=args.reader,
        items=items,
        links=links,
        pages=pages,
        seconds=seconds,
        baseline_rss_kib=baseline,
        peak_rss_kib=peak_rss_kib(),
    )
    print(result.to_json())


if __name__ == "__main__":
    main()
