"""Dask: read many batches, or one huge batch in slices, on a cluster's workers.

The driver asks each batch for its first page to learn its ``total``, and
cuts ``[0, total)`` into slices of ``--slice-jobs`` jobs. Each slice,
``(batch_id, start, stop)``, is one Dask task. On a worker, the task opens
its own ``BlatClient``, reads its slice with
``iter_batch_scrape_sitemap(batch_id, start, stop)``, fetches the links of
each job, and writes one JSON line per job to a file of its own,
``OUT/BATCH_ID/START-STOP.jsonl``, which appears whole or not at all. Slices
do not overlap, so each job is read by exactly one task; a task that Dask
runs again (its worker died) writes the same file again, so each job is in
the output once. Only a few counts per slice travel back to the driver.

Without ``--scheduler``, the program starts a ``LocalCluster`` of worker
processes, one thread each. With ``--scheduler tcp://HOST:8786`` the same
code runs on a real cluster, whose workers need blat_async installed,
``BLAT_API_KEY`` set, and ``OUT`` on a file system they share.

Install Dask with ``pip install 'blat-async[dask]'``. Run it against the
embedded fake server and a local site to crawl (no key needed)::

    python examples/dask_batches.py --out /tmp/dask-out

or against real batches, with ``BLAT_API_KEY`` set::

    python examples/dask_batches.py b-1 b-2 b-3 --out /shared/crawl \
        --scheduler tcp://sched:8786
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

import aiohttp
import attrs
import distributed
from blat_async import BlatClient, BlatError


@attrs.frozen
class Source:
    """Where tasks find the API: plain strings, sent to the workers with a task.

    ``None`` for both on a real cluster: each worker's client then reads
    ``BLAT_API_KEY`` and ``BLAT_BASE_URL`` from its own environment, and the
    key never travels through the scheduler.
    """

    api_key: str | None = None
    base_url: str | None = None


@attrs.frozen
class Slice:
    """A task's work: the jobs at offsets ``start`` to ``stop - 1``."""

    batch_id: str
    start: int
    stop: int


@attrs.frozen
class SliceResult:
    """What a task sends back.

    Counts, where it wrote, and which worker process it ran in.
    """

    slice: Slice
    jobs: int
    failed: int
    links: int
    fetched: int
    output: str
    worker: str


async def plan(
    source: Source, batch_ids: Sequence[str], slice_jobs: int
) -> list[Slice]:
    """Cut each batch into slices of ``slice_jobs`` jobs.

    A batch's first page gives its ``total``.
    """
    async with BlatClient(source.api_key, base_url=source.base_url) as client:
        first_pages = await asyncio.gather(
            *(
                client.get_batch_scrape_sitemap_status(batch_id)
                for batch_id in batch_ids
            )
        )
    slices = []
    for batch_id, page in zip(batch_ids, first_pages, strict=True):
        if page.total is None:
            raise SystemExit(
                f"batch {batch_id} sends no total: read it in one task"
            )
        slices += [
            Slice(batch_id, start, min(start + slice_jobs, page.total))
            for start in range(0, page.total, slice_jobs)
        ]
    return slices


async def fetch(session: aiohttp.ClientSession, url: str) -> int | None:
    """Fetch one page; return its status, or ``None`` if it failed."""
    try:
        async with session.get(url) as response:
            await response.read()
    except (aiohttp.ClientError, TimeoutError):
        return None
    return response.status


async def write_jobs(
    client: BlatClient,
    session: aiohttp.ClientSession,
    piece: Slice,
    follow: bool,
    output: TextIO,
) -> tuple[int, int, int, int]:
    """Read a slice, fetch its links, write a line per job; return counts."""
    jobs = failed = links = fetched = 0
    items = client.iter_batch_scrape_sitemap(
        piece.batch_id, piece.start, piece.stop, follow=follow
    )
    async with contextlib.aclosing(items):
        async for item in items:
            statuses = await asyncio.gather(
                *(fetch(session, url) for url in item.links)
            )
            record = {
                "offset": piece.start + jobs,
                "job_id": item.metadata.job_id if item.metadata else None,
                "success": item.success,
                "pages": dict(zip(item.links, statuses, strict=True)),
            }
            output.write(json.dumps(record) + "\n")
            jobs += 1
            failed += not item.success
            links += len(item.links)
            fetched += statuses.count(200)
    return jobs, failed, links, fetched


async def read_slice(
    source: Source, piece: Slice, out: Path, concurrency: int, follow: bool
) -> SliceResult:
    """Read one slice into its own file, written whole.

    The file is ``OUT/BATCH_ID/START-STOP.jsonl``.
    """
    path = out / piece.batch_id / f"{piece.start:012d}-{piece.stop:012d}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of this attempt's own: a rerun of the slice elsewhere never writes
    # into it.
    partial = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
    try:
        async with (
            BlatClient(
                source.api_key,
                base_url=source.base_url,
                concurrency=concurrency,
            ) as client,
            aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=30)
            ) as session,
        ):
            with partial.open("w") as output:
                counts = await write_jobs(
                    client, session, piece, follow, output
                )
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)  # The slice's file appears whole, or not at all.
    return SliceResult(
        piece,
        *counts,
        output=str(path),
        worker=distributed.get_worker().address,
    )


def read_slice_task(
    piece: Slice, *, source: Source, out: Path, concurrency: int, follow: bool
) -> SliceResult:
    """The Dask task: one event loop, in the worker's thread, for one slice."""
    return asyncio.run(read_slice(source, piece, out, concurrency, follow))


@contextlib.contextmanager
def connect(
    scheduler: str | None, workers: int
) -> Iterator[distributed.Client]:
    """A Dask client of the cluster at ``scheduler``, or a ``LocalCluster``."""
    if scheduler:
        with distributed.Client(scheduler) as client:
            yield client
        return
    # Processes, one thread each: each task has a process, a client and a loop
    # to itself.
    with (
        distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.wait_for_workers(workers)
        yield client


@contextlib.contextmanager
def open_batches(
    args: argparse.Namespace,
) -> Iterator[tuple[Source, list[str]]]:
    """The real API with ``BLAT_API_KEY``.

    Otherwise fake batches and a site, in threads.
    """
    if os.environ.get("BLAT_API_KEY"):
        if not args.batch_ids:
            raise SystemExit("BLAT_API_KEY is set: give the BATCH_IDs to read")
        yield Source(), args.batch_ids
        return
    if args.scheduler:
        raise SystemExit(
            "the fake batches are on this machine's loopback: give BATCH_IDs"
        )
    from blat_async.testing import FakeBlatServer, FakeSite

    with (
        FakeSite().run_in_thread() as site,
        FakeBlatServer().run_in_thread() as server,
    ):
        batch_ids = []
        for number, size in enumerate((45, 30, 8), 1):
            batch = server.add_batch(
                f"dask-demo-{number}",
                size,
                failed=0.1,
                seed=number,
                link_base=site.link_base,
            )
            batch_ids.append(batch.batch_id)
        yield Source(server.api_key, server.base_url), batch_ids


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "batch_ids", nargs="*", help="the batches to read (needs BLAT_API_KEY)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="where the slices' files go"
    )
    parser.add_argument(
        "--scheduler", help="a Dask scheduler's address; else a LocalCluster"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="the LocalCluster's processes"
    )
    parser.add_argument(
        "--slice-jobs", type=int, default=1000, help="jobs per task"
    )
    parser.add_argument(
        "--concurrency", type=int, default=2, help="page requests per task"
    )
    parser.add_argument(
        "--follow", action="store_true", help="wait for a running batch's jobs"
    )
    args = parser.parse_args(argv)

    with (
        open_batches(args) as (source, batch_ids),
        connect(args.scheduler, args.workers) as dask,
    ):
        try:
            slices = asyncio.run(plan(source, batch_ids, args.slice_jobs))
            futures = dask.map(
                read_slice_task,
                slices,
                source=source,
                out=args.out.resolve(),
                concurrency=args.concurrency,
                follow=args.follow,
                pure=False,
            )
            # The first task to fail raises its exception here, as it was raised
            # on the worker (a BlatError, say); the others are then cancelled.
            results: list[SliceResult] = dask.gather(futures)
        except BlatError as error:
            print(f"reading failed: {error}", file=sys.stderr)
            return 1

    by_batch: dict[str, list[SliceResult]] = defaultdict(list)
    for result in results:
        by_batch[result.slice.batch_id].append(result)
    for batch_id in batch_ids:
        done = by_batch[batch_id]
        print(
            f"batch {batch_id}: {sum(r.jobs for r in done)} jobs"
            f" in {len(done)} slices, {sum(r.failed for r in done)} failed, "
            f"{sum(r.links for r in done)} links, "
            f"{sum(r.fetched for r in done)} pages fetched"
        )
    jobs = sum(result.jobs for result in results)
    expected = sum(piece.stop - piece.start for piece in slices)
    workers = len({result.worker for result in results})
    print(
        f"{len(batch_ids)} batches, {jobs} of {expected} jobs"
        f" in {len(slices)} slices, "
        f"read by {workers} worker processes"
    )
    return 0 if jobs == expected else 1


if __name__ == "__main__":
    raise SystemExit(main())
