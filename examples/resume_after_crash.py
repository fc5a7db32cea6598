"""Resume after a crash: store where the read stands, restart from there.

Each item is handled exactly once.

The program appends one line per item to ``handled.jsonl`` and, after each
item, commits a checkpoint to ``checkpoint.json``: ``ReadProgress.offset``
(which, while an item is being handled, already points past it) and the size
of the output file at that moment. The checkpoint is written to a temporary
file and renamed over the old one, so it is always whole.

A crash can come between handling an item and committing its checkpoint. On
restart the program cuts the output file back to the size in the checkpoint,
dropping what was written after the last commit, and reads on from the
stored offset: every item ends up in the output exactly once.

Simulate a crash after 17 items, then restart::

    python examples/resume_after_crash.py --state /tmp/resume --size 45 \
        --crash-after 17
    python examples/resume_after_crash.py --state /tmp/resume --size 45

With ``BLAT_API_KEY`` set, give a real BATCH_ID instead of ``--size``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import IO, Final

from blat_async import BatchScrapeSitemapData, BlatClient, ReadProgress

CRASHED: Final = 70
"""The exit status of a simulated crash."""


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

    # The same id, size and seed on every run: the restarted program reads the
    # same batch.
    async with FakeBlatServer() as server:
        batch = server.add_batch(
            "resume-demo", size, page_size=5, failed=0.2, seed=1
        )
        async with BlatClient(
            server.api_key, base_url=server.base_url
        ) as client:
            yield client, batch.batch_id


def load_checkpoint(path: Path) -> tuple[int, int]:
    """Return the stored ``(offset, output_bytes)``, or ``(0, 0)`` at first."""
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return 0, 0
    return int(state["offset"]), int(state["output_bytes"])


def commit_checkpoint(path: Path, offset: int, output_bytes: int) -> None:
    """Replace the checkpoint in one step: a crash leaves the old or the new."""
    temporary = path.with_suffix(".tmp")
    with temporary.open("w") as file:
        json.dump({"offset": offset, "output_bytes": output_bytes}, file)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)


def handle(item: BatchScrapeSitemapData, output: IO[str]) -> None:
    """The work done for each item: here, append one line to the output file."""
    record = {
        "job_id": item.metadata.job_id if item.metadata else None,
        "success": item.success,
        "links": len(item.links),
    }
    output.write(json.dumps(record) + "\n")
    output.flush()
    os.fsync(output.fileno())


async def run(args: argparse.Namespace) -> None:
    args.state.mkdir(parents=True, exist_ok=True)
    checkpoint = args.state / "checkpoint.json"
    handled = args.state / "handled.jsonl"
    offset, output_bytes = load_checkpoint(checkpoint)
    with handled.open("a+") as output:
        dropped = output.tell() - output_bytes
        # Anything written after the last commit belongs to an item that is read
        # again.
        output.truncate(output_bytes)
        output.seek(output_bytes)
        print(
            f"resuming from offset {offset}"
            f" (dropped {dropped} uncommitted bytes)"
        )
        progress = ReadProgress()
        async with open_batch(args.batch_id, args.size) as (client, batch_id):
            items = client.iter_batch_scrape_sitemap(
                batch_id, start=offset, progress=progress
            )
            async with contextlib.aclosing(items):
                async for item in items:
                    handle(item, output)
                    if progress.items == args.crash_after:
                        # The worst moment: the item is handled, its checkpoint
                        # not committed.
                        print(
                            f"simulated crash after {progress.items} items",
                            flush=True,
                        )
                        os._exit(CRASHED)
                    # progress.offset already points past this item: where to
                    # resume.
                    commit_checkpoint(
                        checkpoint, progress.offset, output.tell()
                    )
    print(
        f"read {progress.items} items in this run,"
        f" ended at offset {progress.offset}"
    )
    job_ids = [
        json.loads(line)["job_id"] for line in handled.read_text().splitlines()
    ]
    once = len(job_ids) == len(set(job_ids)) == progress.offset
    print(
        f"{len(job_ids)} items handled overall, "
        f"{'each exactly once' if once else 'NOT once'}"
    )
    if not once:
        sys.exit(1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "batch_id", nargs="?", help="the batch to read (needs BLAT_API_KEY)"
    )
    parser.add_argument(
        "--state", type=Path, required=True, help="the checkpoint's folder"
    )
    parser.add_argument(
        "--size", type=int, default=45, help="jobs in the fake batch"
    )
    parser.add_argument(
        "--crash-after", type=int, help="crash after handling this many items"
    )
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
