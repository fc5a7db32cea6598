"""Pages to disk: each scraped page of a batch scrape in a file of its own.

The program reads a batch scrape with ``iter_batch_scrape`` and writes one
file per item into ``--out``, named by the item's job id: ``JOB_ID.md``
holds a successful page's ``content``, ``JOB_ID.failed.json`` a failed
job's url, ``error_code`` and ``error``. Each file is written to a temporary
file, flushed to disk and renamed over its name, so a file is either whole
or absent.

After each item it commits ``ReadProgress.offset`` to ``checkpoint.json``,
the same way. Restarted after a crash, it reads on from the stored offset;
an item written but not yet committed is read again and its file replaced
by the same one, so every item ends up in exactly one file.

Crash after 13 items, then restart::

    python examples/pages_to_disk.py --out /tmp/pages --size 40 \
        --crash-after 13
    python examples/pages_to_disk.py --out /tmp/pages --size 40

With ``BLAT_API_KEY`` set, give a real BATCH_ID instead of ``--size``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Final
from urllib.parse import quote

from blat_async import BatchScrapeData, BlatClient, ReadProgress

CRASHED: Final = 70
"""The exit status of a simulated crash."""

CHECKPOINT: Final = "checkpoint.json"
"""The checkpoint's name in the output folder; no job's file has it."""


@contextlib.asynccontextmanager
async def open_batch(
    batch_id: str | None, size: int
) -> AsyncIterator[tuple[BlatClient, str]]:
    """A client and a batch scrape's id.

    The real API with ``BLAT_API_KEY``, else the fake server.
    """
    if os.environ.get("BLAT_API_KEY"):
        if batch_id is None:
            raise SystemExit("BLAT_API_KEY is set: give the BATCH_ID to read")
        async with BlatClient() as client:
            yield client, batch_id
        return
    from blat_async.testing import FakeBlatServer

    # The same id, size and seed on every run: a restart reads the same batch.
    async with FakeBlatServer() as server:
        batch = server.add_batch(
            "pages-demo", size, kind="scrape", failed=0.1, seed=1
        )
        async with BlatClient(
            server.api_key, base_url=server.base_url
        ) as client:
            yield client, batch.batch_id


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one step: a crash leaves the old file or the new."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)


def file_stem(item: BatchScrapeData, offset: int) -> str:
    """The item's job id as one safe file name, or its offset without one.

    The job id comes from the server: percent-encoded, it cannot name
    another folder (``/``, ``..``) or a hidden file.
    """
    job_id = item.metadata.job_id if item.metadata else None
    if not job_id:
        return f"offset-{offset:09d}"
    stem = quote(job_id, safe="")
    return "%2E" + stem[1:] if stem.startswith(".") else stem


def save(item: BatchScrapeData, offset: int, out: Path) -> Path:
    """Write one item's file: its content, or why it failed."""
    stem = file_stem(item, offset)
    if item.success:
        path = out / f"{stem}.md"
        write_atomically(path, item.content or "")
    else:
        path = out / f"{stem}.failed.json"
        failure = {
            "url": item.metadata.url if item.metadata else None,
            "error_code": item.error_code,
            "error": item.error,
        }
        write_atomically(path, json.dumps(failure) + "\n")
    return path


def prepare(out: Path) -> int:
    """Make the folder, drop what a crash left, return the stored offset."""
    out.mkdir(parents=True, exist_ok=True)
    # A crash in the middle of a write leaves its temporary file.
    for stale in out.glob(".*.tmp"):
        stale.unlink()
    try:
        return int(json.loads((out / CHECKPOINT).read_text())["offset"])
    except FileNotFoundError:
        return 0


def commit(out: Path, offset: int) -> None:
    """Store where the read stands: every item before ``offset`` is on disk."""
    write_atomically(out / CHECKPOINT, json.dumps({"offset": offset}))


def count_files(out: Path) -> int:
    return sum(path.name != CHECKPOINT for path in out.iterdir())


async def run(args: argparse.Namespace) -> None:
    out: Path = args.out
    start = prepare(out)
    print(f"resuming from offset {start}")
    progress = ReadProgress()
    pages = failed = 0
    async with open_batch(args.batch_id, args.size) as (client, batch_id):
        items = client.iter_batch_scrape(
            batch_id, start=start, progress=progress
        )
        async with contextlib.aclosing(items):
            async for item in items:
                # progress.offset already points past this item. The writes
                # wait for the disk in a thread, while the next pages arrive.
                await asyncio.to_thread(save, item, progress.offset - 1, out)
                pages += bool(item.success)
                failed += not item.success
                if progress.items == args.crash_after:
                    # The worst moment: the file is written, the checkpoint
                    # not committed.
                    print(
                        f"simulated crash after {progress.items} items",
                        flush=True,
                    )
                    os._exit(CRASHED)
                await asyncio.to_thread(commit, out, progress.offset)
    print(
        f"wrote {pages} pages and {failed} failures in this run,"
        f" ended at offset {progress.offset}"
    )
    print(f"{count_files(out)} files in {out}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "batch_id", nargs="?", help="the batch scrape (needs BLAT_API_KEY)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="the folder of the files"
    )
    parser.add_argument(
        "--size", type=int, default=40, help="jobs in the fake batch"
    )
    parser.add_argument(
        "--crash-after", type=int, help="crash after writing this many items"
    )
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
