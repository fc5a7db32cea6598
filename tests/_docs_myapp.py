"""The reader's own code that docs/testing.md tests, copied as ``myapp.py`` beside the tests.

tests/test_docs_examples.py runs the page's test blocks in a project of their
own, where this module stands for the application under test.
"""

from __future__ import annotations

import asyncio
import csv
import sys
from pathlib import Path

from blat_async import BlatClient


async def export_csv(client: BlatClient, batch_id: str, path: Path) -> None:
    """Write one CSV row per item of the batch: job id, sitemap URL, links or error code."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        async for item in client.iter_batch_scrape_sitemap(batch_id):
            metadata = item.metadata
            writer.writerow(
                [
                    metadata.job_id if metadata else "",
                    metadata.url if metadata else "",
                    item.error_code or len(item.links),
                ]
            )


async def _print_links(batch_id: str) -> None:
    async with BlatClient() as client:
        async for item in client.iter_batch_scrape_sitemap(batch_id):
            for link in item.links:
                print(link)


def main(argv: list[str]) -> int:
    """``export BATCH_ID`` prints the batch's links; the client comes from the environment."""
    if len(argv) != 2 or argv[0] != "export":
        print("usage: myapp export BATCH_ID", file=sys.stderr)
        return 2
    asyncio.run(_print_links(argv[1]))
    return 0
