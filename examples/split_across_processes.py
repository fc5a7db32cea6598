"""Split one large batch across processes, each with its own client.

Each worker reads one offset range.

The parent asks for the batch's first page to learn ``total`` and the page
size, cuts ``[0, total)`` into slices of whole pages, and hands each
``(start, stop)`` to a worker process. A worker opens its own ``BlatClient``
(a client, like any asyncio object, belongs to one event loop in one process)
and reads its slice with ``iter_batch_scrape_sitemap(batch_id, start, stop)``.
Slices do not overlap, so every item is read by exactly one worker.

Run it against the embedded fake server (no key needed)::

    python examples/split_across_processes.py --size 1000 --processes 4

or against a real, finished batch, with ``BLAT_API_KEY`` set::

    python examples/split_across_processes.py BATCH_ID --processes 4
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor

import attrs
from blat_async import BlatClient


@attrs.frozen
class Source:
    """Where workers find the batch: plain strings, sent to another process."""

    batch_id: str
    api_key: str | None = None
    base_url: str | None = None


@attrs.frozen
class SliceResult:
    """What one worker read.

    Counts, and the first and last job ids, to check the cut.
    """

    start: int
    stop: int
    items: int
    failed: int
    links: int
    first_job: str | None
    last_job: str | None


@contextlib.contextmanager
def open_source(batch_id: str | None, size: int) -> Iterator[Source]:
    """The real API with ``BLAT_API_KEY``; else the fake server, in a thread."""
    if os.environ.get("BLAT_API_KEY"):
        if batch_id is None:
            raise SystemExit("BLAT_API_KEY is set: give the BATCH_ID to read")
        # Workers read the key from the environment they inherit, as the parent
        # does.
        yield Source(batch_id)
        return
    from blat_async.testing import FakeBlatServer

    # In a thread, so that the parent's event loops and the pool can come and go
    # around it.
    with FakeBlatServer().run_in_thread() as server:
        batch = server.add_batch("split-demo", size, page_size=20, failed=0.1)
        yield Source(batch.batch_id, server.api_key, server.base_url)


def plan_slices(
    total: int, page_size: int, processes: int
) -> list[tuple[int, int]]:
    """Cut ``[0, total)`` into at most ``processes`` ranges of whole pages."""
    pages = math.ceil(total / page_size)
    per_slice = math.ceil(pages / processes) * page_size
    return [
        (start, min(start + per_slice, total))
        for start in range(0, total, per_slice)
    ]


async def first_page(source: Source) -> tuple[int, int]:
    """Return the batch's ``total`` and page size, from its first page."""
    async with BlatClient(source.api_key, base_url=source.base_url) as client:
        page = await client.get_batch_scrape_sitemap_status(source.batch_id)
    if page.total is None or not page.data:
        raise SystemExit(
            f"batch {source.batch_id} has no total or no items: read it whole"
        )
    return page.total, len(page.data)


async def read_slice(source: Source, start: int, stop: int) -> SliceResult:
    """Read the offsets ``start`` to ``stop - 1`` with a client of its own."""
    items = failed = links = 0
    first_job = last_job = None
    async with BlatClient(source.api_key, base_url=source.base_url) as client:
        async for item in client.iter_batch_scrape_sitemap(
            source.batch_id, start, stop
        ):
            items += 1
            failed += not item.success
            links += len(item.links)  # Real work on the item goes here.
            job_id = item.metadata.job_id if item.metadata else None
            first_job = first_job or job_id
            last_job = job_id
    return SliceResult(start, stop, items, failed, links, first_job, last_job)


def read_slice_in_process(source: Source, start: int, stop: int) -> SliceResult:
    """The worker process's entry point: one event loop for one slice."""
    return asyncio.run(read_slice(source, start, stop))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "batch_id", nargs="?", help="the batch to read (needs BLAT_API_KEY)"
    )
    parser.add_argument(
        "--size", type=int, default=1000, help="jobs in the fake batch"
    )
    parser.add_argument(
        "--processes", type=int, default=4, help="worker processes"
    )
    args = parser.parse_args(argv)

    with open_source(args.batch_id, args.size) as source:
        total, page_size = asyncio.run(first_page(source))
        slices = plan_slices(total, page_size, args.processes)
        # "spawn": a fresh interpreter per worker, the default on macOS and
        # Windows, and safe where "fork" is not (this process runs the fake
        # server in a thread).
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(len(slices), mp_context=context) as pool:
            futures = [
                pool.submit(read_slice_in_process, source, *cut)
                for cut in slices
            ]
            results = [future.result() for future in futures]

    for result in results:
        print(
            f"slice [{result.start}, {result.stop}): {result.items} items, "
            f"{result.failed} failed, {result.links} links, "
            f"jobs {result.first_job} .. {result.last_job}"
        )
    items = sum(result.items for result in results)
    links = sum(result.links for result in results)
    print(
        f"{len(results)} processes read {items} of {total} items, {links} links"
    )
    if items != total:
        raise SystemExit(f"expected {total} items, read {items}")


if __name__ == "__main__":
    main()
