"""Crawler pipeline: every link of a batch to N workers through a bounded queue.

One producer reads the batch and puts each link on an ``asyncio.Queue`` with a
``maxsize``; N workers take links off it. When the workers fall behind, the
queue fills, ``put`` waits, the producer stops pulling items, and the client's
read-ahead stops at its bounded buffer: memory stays flat however large the
batch. When the batch is read, the producer puts one sentinel per worker, so
every worker finishes the links before it and returns. Everything runs under
an ``asyncio.TaskGroup``: if a worker or the read fails, the other tasks are
cancelled and the error is raised from ``main``.

Run it against the embedded fake server (no key needed)::

    python examples/crawler_pipeline.py --size 200 --workers 8

or against a real batch, with ``BLAT_API_KEY`` set::

    python examples/crawler_pipeline.py BATCH_ID
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Sequence

from blat_async import BlatClient


@contextlib.asynccontextmanager
async def open_batch(
    batch_id: str | None, size: int
) -> AsyncIterator[tuple[BlatClient, str]]:
    """A client and a batch id.

    The real API with ``BLAT_API_KEY``, else the fake server.
    """
    if os.environ.get("BLAT_API_KEY"):
        if batch_id is None:
            raise SystemExit("BLAT_API_KEY is set: give the BATCH_ID to read")
        async with BlatClient() as client:
            yield client, batch_id
        return
    from blat_async.testing import FakeBlatServer

    async with FakeBlatServer() as server:
        batch = server.add_batch(
            "crawl-demo", size, failed=0.1, links_per_job=3
        )
        async with BlatClient(
            server.api_key, base_url=server.base_url
        ) as client:
            yield client, batch.batch_id


async def produce(
    client: BlatClient,
    batch_id: str,
    queue: asyncio.Queue[str | None],
    workers: int,
) -> tuple[int, int]:
    """Put every link of the batch on the queue, then a sentinel per worker."""
    jobs = failed = 0
    async for item in client.iter_batch_scrape_sitemap(batch_id):
        jobs += 1
        if not item.success:
            failed += 1  # A failed sitemap job is an item too; it has no links.
            continue
        for link in item.links:
            await queue.put(
                link
            )  # Waits while the queue is full: back-pressure.
    for _ in range(workers):
        await queue.put(None)  # The sentinel: no link will follow.
    return jobs, failed


async def crawl(link: str, delay: float) -> str:
    """Stand-in for real work on a link: fetch the page, parse it, store it."""
    await asyncio.sleep(delay)
    return hashlib.sha256(link.encode()).hexdigest()


async def work(queue: asyncio.Queue[str | None], delay: float) -> int:
    """Crawl links until the sentinel comes; return how many it crawled."""
    done = 0
    while (link := await queue.get()) is not None:
        await crawl(link, delay)
        done += 1
    return done


async def run(args: argparse.Namespace) -> None:
    async with open_batch(args.batch_id, args.size) as (client, batch_id):
        queue: asyncio.Queue[str | None] = asyncio.Queue(
            maxsize=args.queue_size
        )
        async with asyncio.TaskGroup() as group:
            producer = group.create_task(
                produce(client, batch_id, queue, args.workers)
            )
            workers = [
                group.create_task(work(queue, args.delay))
                for _ in range(args.workers)
            ]
        # Leaving the TaskGroup means every task has finished without error.
        jobs, failed = producer.result()
        per_worker = [worker.result() for worker in workers]
    print(f"batch {batch_id}: {jobs} sitemap jobs, {failed} failed")
    print(f"links crawled: {sum(per_worker)} by {args.workers} workers")
    print(f"per worker: {' '.join(map(str, per_worker))}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "batch_id", nargs="?", help="the batch to read (needs BLAT_API_KEY)"
    )
    parser.add_argument(
        "--size", type=int, default=200, help="jobs in the fake batch"
    )
    parser.add_argument(
        "--workers", type=int, default=8, help="concurrent workers"
    )
    parser.add_argument(
        "--queue-size", type=int, default=100, help="the queue's maxsize"
    )
    parser.add_argument(
        "--delay", type=float, default=0.001, help="seconds of work per link"
    )
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
