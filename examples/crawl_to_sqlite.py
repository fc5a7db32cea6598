"""Crawl a batch into SQLite with N workers, exactly once, across crashes.

A reader reads the batch page by page and puts each link on a bounded queue;
N workers fetch the links; a committer writes each page of the batch to
SQLite, its jobs and its fetched pages together with the read's checkpoint
(``ReadProgress.offset`` after that page), in one transaction. Pages are
committed in read order, each once all of its links are fetched, so the
checkpoint always means "every job before this offset is in the tables, and
nothing after it". Kill the process at any moment and run it again: it reads
on from the checkpoint, and the tables end up with every job and every page
exactly once. (The links of pages read but not committed are fetched again.)

Everything runs in an ``asyncio.TaskGroup``: when the read fails with a
``BlatError``, the group cancels the workers and raises an
``ExceptionGroup``, which ``except* BlatError`` catches.

A batch scrape (``--kind scrape``) has already fetched its pages: there is
nothing to crawl, and each page of the batch is stored as it is read, its
scraped pages (``content``, ``final_url``, ``status_code``) with the
checkpoint in one transaction, exactly once across crashes too.

Run it against the embedded fake server and a local site (no key needed),
with a simulated crash after 3 pages, then again to finish::

    python examples/crawl_to_sqlite.py --db /tmp/crawl.db --crash-after 3
    python examples/crawl_to_sqlite.py --db /tmp/crawl.db
    python examples/crawl_to_sqlite.py --db /tmp/crawl.db --kind scrape

or against a real batch, with ``BLAT_API_KEY`` set::

    python examples/crawl_to_sqlite.py BATCH_ID --db crawl.db --workers 16
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Final

import aiohttp
import attrs
from blat_async import (
    BatchScrapeData,
    BatchScrapeSitemapData,
    BlatClient,
    BlatError,
    ReadProgress,
)

CRASHED: Final = 70
"""The exit status of a simulated crash."""

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS checkpoint (
    batch_id TEXT PRIMARY KEY,
    -- Every job before next_offset is stored, none after it.
    next_offset INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    batch_id TEXT NOT NULL,
    job_offset INTEGER NOT NULL,
    job_id TEXT,
    sitemap TEXT,
    success INTEGER NOT NULL,
    error_code TEXT,
    PRIMARY KEY (batch_id, job_offset)
);
CREATE TABLE IF NOT EXISTS pages (
    batch_id TEXT NOT NULL,
    job_offset INTEGER NOT NULL,
    position INTEGER NOT NULL,  -- the link's place in its job's links
    url TEXT NOT NULL,
    status INTEGER,             -- NULL when the fetch failed
    bytes INTEGER,
    error TEXT,
    PRIMARY KEY (batch_id, job_offset, position)
);
CREATE TABLE IF NOT EXISTS scraped (  -- a batch scrape's jobs
    batch_id TEXT NOT NULL,
    job_offset INTEGER NOT NULL,
    job_id TEXT,
    url TEXT,
    final_url TEXT,                   -- after redirects
    status_code INTEGER,              -- what the site answered Blat
    success INTEGER NOT NULL,
    error_code TEXT,
    content TEXT,                     -- NULL when the job failed
    PRIMARY KEY (batch_id, job_offset)
);
"""


@attrs.frozen
class Fetched:
    """What a worker learned about one link."""

    status: int | None
    bytes: int | None
    error: str | None = None


@attrs.define(eq=False)
class PageOfWork:
    """One page of the batch: its jobs, and its links' results as they come.

    The workers report the results.
    """

    start: int
    """The offset of its first job."""
    end: int
    """The read's offset after it: the checkpoint once it is committed."""
    jobs: Sequence[BatchScrapeSitemapData]
    links: int = attrs.field(init=False)
    """How many links its jobs hold: the results it waits for."""
    results: dict[tuple[int, int], Fetched] = attrs.field(
        init=False, factory=dict
    )
    done: asyncio.Event = attrs.field(init=False, factory=asyncio.Event)
    """Set once every link has a result.

    A page of failed jobs only has no links: it is set at once.
    """

    def __attrs_post_init__(self) -> None:
        self.links = sum(len(job.links) for job in self.jobs)
        if self.links == 0:
            self.done.set()

    def record(self, job_offset: int, position: int, fetched: Fetched) -> None:
        """Keep one link's result; the page is done when every link has one."""
        self.results[job_offset, position] = fetched
        if len(self.results) == self.links:
            self.done.set()


@attrs.frozen
class Link:
    """One link to fetch, and the page of the batch it belongs to."""

    page: PageOfWork
    job_offset: int
    position: int
    url: str


def open_database(path: Path, batch_id: str) -> tuple[sqlite3.Connection, int]:
    """Open the database; return it with the batch's checkpoint (0 at first)."""
    db = sqlite3.connect(path)
    # WAL with synchronous=NORMAL: quick commits. A power cut may undo the
    # last commits, but each undoes a page and its checkpoint together, and
    # the next run reads those pages again.
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.executescript(SCHEMA)
    with db:
        db.execute(
            "INSERT OR IGNORE INTO checkpoint VALUES (?, 0)", (batch_id,)
        )
    return db, checkpoint(db, batch_id)


def checkpoint(db: sqlite3.Connection, batch_id: str) -> int:
    """Return the committed checkpoint: every job before it is stored."""
    (offset,) = db.execute(
        "SELECT next_offset FROM checkpoint WHERE batch_id = ?", (batch_id,)
    ).fetchone()
    return int(offset)


def store(db: sqlite3.Connection, batch_id: str, page: PageOfWork) -> None:
    """In one transaction, write a page's jobs, fetched pages and checkpoint."""
    jobs = [
        (
            batch_id,
            offset,
            job.metadata.job_id if job.metadata else None,
            job.metadata.url if job.metadata else None,
            job.success,
            job.error_code,
        )
        for offset, job in enumerate(page.jobs, page.start)
    ]
    pages = []
    for offset, job in enumerate(page.jobs, page.start):
        for position, url in enumerate(job.links):
            fetched = page.results[offset, position]
            pages.append(
                (
                    batch_id,
                    offset,
                    position,
                    url,
                    fetched.status,
                    fetched.bytes,
                    fetched.error,
                )
            )
    with db:  # COMMIT on success; ROLLBACK, all of it, on any error.
        move_checkpoint(db, batch_id, page.start, page.end)
        # Plain INSERT, not INSERT OR IGNORE: a job stored twice would be a bug,
        # and the primary key makes it fail loudly instead of hiding it.
        db.executemany("INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?)", jobs)
        db.executemany("INSERT INTO pages VALUES (?, ?, ?, ?, ?, ?, ?)", pages)


def move_checkpoint(
    db: sqlite3.Connection, batch_id: str, start: int, end: int
) -> None:
    """In the caller's transaction, move the checkpoint from start to end."""
    moved = db.execute(
        "UPDATE checkpoint SET next_offset = ?"
        " WHERE batch_id = ? AND next_offset = ?",
        (end, batch_id, start),
    )
    if moved.rowcount != 1:
        # The page does not follow the checkpoint: another run writes this
        # batch.
        raise RuntimeError(f"checkpoint of {batch_id} is not at {start}")


def store_scraped(
    db: sqlite3.Connection,
    batch_id: str,
    start: int,
    end: int,
    jobs: Sequence[BatchScrapeData],
) -> None:
    """In one transaction, write a batch scrape's page and its checkpoint."""
    rows = []
    for offset, job in enumerate(jobs, start):
        meta = job.metadata
        rows.append(
            (
                batch_id,
                offset,
                meta.job_id if meta else None,
                meta.url if meta else None,
                meta.final_url if meta else None,
                meta.status_code if meta else None,
                bool(job.success),
                job.error_code,
                job.content,
            )
        )
    with db:
        move_checkpoint(db, batch_id, start, end)
        db.executemany(
            "INSERT INTO scraped VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
        )


async def save_scraped(
    client: BlatClient,
    batch_id: str,
    db: sqlite3.Connection,
    start: int,
    args: argparse.Namespace,
) -> int:
    """Store a batch scrape from ``start``, a page per transaction.

    Return the pages read.
    """
    progress = ReadProgress()
    offset = start
    read_pages = client.iter_batch_scrape_pages(
        batch_id, start, follow=args.follow, progress=progress
    )
    async with contextlib.aclosing(read_pages):
        async for page in read_pages:
            store_scraped(db, batch_id, offset, progress.offset, page.data)
            offset = progress.offset
            if progress.pages == args.crash_after:
                print(
                    f"simulated crash after committing {progress.pages} pages",
                    flush=True,
                )
                os._exit(CRASHED)
    return progress.pages


async def read(
    client: BlatClient,
    batch_id: str,
    start: int,
    follow: bool,
    links: asyncio.Queue[Link | None],
    pages: asyncio.Queue[PageOfWork | None],
    window: asyncio.Semaphore,
    workers: int,
) -> int:
    """Read the batch from ``start``.

    Queue each page for the committer, and its links for the workers.
    """
    progress = ReadProgress()
    offset = start
    read_pages = client.iter_batch_scrape_sitemap_pages(
        batch_id, start, follow=follow, progress=progress
    )
    async with contextlib.aclosing(read_pages):
        async for batch_page in read_pages:
            await window.acquire()  # Released once the page is committed.
            page = PageOfWork(offset, progress.offset, batch_page.data)
            offset = progress.offset
            await pages.put(page)
            for job_offset, job in enumerate(page.jobs, page.start):
                for position, url in enumerate(job.links):
                    await links.put(Link(page, job_offset, position, url))
    for _ in range(workers):
        await links.put(None)
    await pages.put(None)
    return progress.pages


async def fetch(session: aiohttp.ClientSession, url: str) -> Fetched:
    """Fetch one page: a failed fetch is a result too, stored with its error."""
    try:
        async with session.get(url) as response:
            body = await response.read()
    except (aiohttp.ClientError, TimeoutError) as error:
        return Fetched(None, None, f"{type(error).__name__}: {error}")
    return Fetched(response.status, len(body))


async def work(
    session: aiohttp.ClientSession, links: asyncio.Queue[Link | None]
) -> None:
    """Fetch links until the sentinel comes; report each result to its page."""
    while (link := await links.get()) is not None:
        link.page.record(
            link.job_offset, link.position, await fetch(session, link.url)
        )


async def commit_in_order(
    db: sqlite3.Connection,
    batch_id: str,
    pages: asyncio.Queue[PageOfWork | None],
    window: asyncio.Semaphore,
    crash_after: int | None,
) -> None:
    """Commit each page once it is done, in read order, with its checkpoint."""
    committed = 0
    while (page := await pages.get()) is not None:
        await page.done.wait()
        # On the event loop's thread, not in asyncio.to_thread: a commit is
        # quick, and a cancelled to_thread would go on writing while the
        # TaskGroup unwinds and the connection is used or closed.
        store(db, batch_id, page)
        window.release()
        committed += 1
        if committed == crash_after:
            # Later pages are being fetched, and are lost: as with kill -9.
            print(
                f"simulated crash after committing {committed} pages",
                flush=True,
            )
            os._exit(CRASHED)


@contextlib.asynccontextmanager
async def open_batch(
    args: argparse.Namespace,
) -> AsyncIterator[tuple[BlatClient, str]]:
    """A client and a batch id.

    The real API with ``BLAT_API_KEY``, else fake servers.
    """
    if os.environ.get("BLAT_API_KEY"):
        if args.batch_id is None:
            raise SystemExit("BLAT_API_KEY is set: give the BATCH_ID to read")
        async with BlatClient() as client:
            yield client, args.batch_id
        return
    from blat_async.testing import FakeBlatServer, FakeSite

    # The same batch on every run, with links on a site at the same port, so
    # that a restarted run reads the links the first one stored.
    async with (
        FakeSite(port=args.site_port) as site,
        FakeBlatServer() as server,
    ):
        batch = server.add_batch(
            "sqlite-demo" if args.kind == "sitemap" else "sqlite-scrape-demo",
            45,
            kind=args.kind,
            page_size=5,
            failed=0.1,
            seed=1,
            link_base=site.link_base,
        )
        async with BlatClient(
            server.api_key, base_url=server.base_url
        ) as client:
            yield client, batch.batch_id


def report(db: sqlite3.Connection, batch_id: str) -> bool:
    """Print what the tables hold for the batch.

    Return whether each job is there exactly once.
    """
    offset = checkpoint(db, batch_id)
    jobs, distinct, top = db.execute(
        "SELECT COUNT(*), COUNT(DISTINCT job_id), MAX(job_offset)"
        " FROM jobs WHERE batch_id = ?",
        (batch_id,),
    ).fetchone()
    (pages,) = db.execute(
        "SELECT COUNT(*) FROM pages WHERE batch_id = ?", (batch_id,)
    ).fetchone()
    once = jobs == distinct == offset and (top is None or top == offset - 1)
    print(
        f"stored {jobs} jobs and {pages} pages, "
        f"{'each exactly once' if once else 'NOT once'}"
    )
    return bool(once)


def report_scraped(db: sqlite3.Connection, batch_id: str) -> bool:
    """Print what the table holds for a batch scrape.

    Return whether each job is there exactly once.
    """
    offset = checkpoint(db, batch_id)
    jobs, distinct, top, failed = db.execute(
        "SELECT COUNT(*), COUNT(DISTINCT job_id), MAX(job_offset),"
        " COUNT(*) - SUM(success) FROM scraped WHERE batch_id = ?",
        (batch_id,),
    ).fetchone()
    once = jobs == distinct == offset and (top is None or top == offset - 1)
    print(
        f"stored {jobs} scraped pages ({failed or 0} failed), "
        f"{'each exactly once' if once else 'NOT once'}"
    )
    return bool(once)


async def crawl(
    client: BlatClient,
    batch_id: str,
    db: sqlite3.Connection,
    start: int,
    args: argparse.Namespace,
) -> int:
    """Run the reader, the workers and the committer to the end.

    Return the pages read.
    """
    links: asyncio.Queue[Link | None] = asyncio.Queue(maxsize=args.queue_size)
    pages: asyncio.Queue[PageOfWork | None] = asyncio.Queue()
    # At most this many pages read and not committed: the memory bound when
    # one slow link holds up the commit of the pages behind it.
    window = asyncio.Semaphore(args.window)
    async with (
        aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=30)
        ) as session,
        asyncio.TaskGroup() as group,
    ):
        reader = group.create_task(
            read(
                client,
                batch_id,
                start,
                args.follow,
                links,
                pages,
                window,
                args.workers,
            )
        )
        for _ in range(args.workers):
            group.create_task(work(session, links))
        group.create_task(
            commit_in_order(db, batch_id, pages, window, args.crash_after)
        )
    return reader.result()


async def run(args: argparse.Namespace) -> int:
    async with open_batch(args) as (client, batch_id):
        db, start = open_database(args.db, batch_id)
        with contextlib.closing(db):
            print(f"resuming batch {batch_id} from offset {start}", flush=True)
            pages_read: int | None = None
            try:
                if args.kind == "scrape":
                    pages_read = await save_scraped(
                        client, batch_id, db, start, args
                    )
                else:
                    pages_read = await crawl(client, batch_id, db, start, args)
            except* BlatError as group:
                # The read failed: the TaskGroup cancelled the workers and the
                # committer, and raised an ExceptionGroup holding the BlatError.
                # (`return` is not allowed in an except* clause.)
                for error in group.exceptions:
                    print(
                        f"reading batch {batch_id} failed: {error}",
                        file=sys.stderr,
                    )
            if pages_read is None:
                offset = checkpoint(db, batch_id)
                print(
                    f"committed up to offset {offset}: run again to resume",
                    file=sys.stderr,
                )
                return 1
            print(f"read {pages_read} pages in this run")
            if args.kind == "scrape":
                return 0 if report_scraped(db, batch_id) else 1
            return 0 if report(db, batch_id) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "batch_id", nargs="?", help="the batch to read (needs BLAT_API_KEY)"
    )
    parser.add_argument(
        "--db", type=Path, required=True, help="the SQLite database file"
    )
    parser.add_argument(
        "--kind",
        choices=("sitemap", "scrape"),
        default="sitemap",
        help="crawl a batch sitemap's links, or store a batch scrape's pages",
    )
    parser.add_argument(
        "--workers", type=int, default=8, help="links fetched at once"
    )
    parser.add_argument(
        "--queue-size", type=int, default=100, help="the link queue's maxsize"
    )
    parser.add_argument(
        "--window", type=int, default=16, help="most pages read, not committed"
    )
    parser.add_argument(
        "--follow", action="store_true", help="follow a running batch"
    )
    parser.add_argument(
        "--crash-after", type=int, help="exit at once after committing N pages"
    )
    parser.add_argument(
        "--site-port", type=int, default=8808, help="the demo site's port"
    )
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
