"""What the documentation's fragments take for granted, for tests/test_docs_examples.py.

A fragment (a block fenced ``python {test="fragment"}``) runs as the body of
``async def fragment(client, server, batch_id)``: `client` is a `BlatClient`
connected to `server`, a `FakeBlatServer`, and `batch_id` names a batch it
holds. The helpers below stand for the reader's own code.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from blat_async import BatchScrapeSitemapData, BlatClient
from blat_async.testing import FakeBlatServer

__all__ = [
    "BlatClient",
    "FakeBlatServer",
    "found",
    "handle",
    "log",
    "save_checkpoint",
    "store",
    "store_many",
]

BATCH_ID: Final = "b-123"
"""The batch the documentation reads, as the fake server holds it."""

SCRAPE_BATCH_ID: Final = "b-456"
"""The batch scrape the documentation reads, as the fake server holds it."""

log = logging.getLogger("docs")


def handle(item: BatchScrapeSitemapData) -> None:
    """Handle one item."""


async def store(item: BatchScrapeSitemapData) -> None:
    """Store one item."""


async def store_many(items: Sequence[BatchScrapeSitemapData]) -> None:
    """Store a page of items."""


def found(item: BatchScrapeSitemapData) -> bool:
    """Whether ``item`` is the one a search looks for."""
    return item.success is False


def save_checkpoint(offset: int) -> None:
    """Remember where a read stands."""


def add_batches(server: FakeBlatServer) -> None:
    """Add the batches that the documentation reads: a batch sitemap and a batch scrape."""
    server.add_batch(BATCH_ID, size=120, failed=0.1)
    server.add_batch(SCRAPE_BATCH_ID, size=40, kind="scrape", failed=0.1)


async def run_fragment(
    fragment: Callable[[BlatClient, FakeBlatServer, str], Awaitable[None]],
    server: FakeBlatServer,
) -> None:
    """Run ``fragment`` with a client of ``server``, closed afterwards."""
    async with BlatClient(server.api_key, base_url=server.base_url) as client:
        await fragment(client, server, BATCH_ID)
