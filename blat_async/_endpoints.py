"""The endpoints a read can page through, each described as data. No I/O.

An endpoint pages by ``from``: ``GET {base_url}{path}{batch_id}?from=N``
answers a page of a batch, whose ``data`` holds up to a page of items. What
differs from one endpoint to the next is data: the path, the page model and
how decoded JSON becomes it, the name errors and logs use, and how many bytes
its pages may take. The client, the read plan, the runner and the retry loop
take an `Endpoint` as a value and know nothing else of it.

A new ``from``-paged endpoint is one more `Endpoint` here (with its models
and converter hooks) and the public methods that pass it to the client's
shared implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, Generic, Protocol, TypeVar

import attrs

from ._converter import structure_page, structure_scrape_page
from .models import BatchScrapeSitemapStatusResponse, BatchScrapeStatusResponse

__all__ = ["SCRAPE", "SITEMAP", "Endpoint", "Page"]

MiB: Final = 1024 * 1024


class Page(attrs.AttrsInstance, Protocol):
    """What the engine reads of a page: its items and what it says of its batch.

    An attrs class, so that the engine can hand out a page cut to its new items.
    """

    @property
    def data(self) -> Sequence[Any]: ...
    @property
    def total(self) -> int | None: ...
    @property
    def processed(self) -> int | None: ...
    @property
    def status(self) -> str | None: ...


PageT = TypeVar("PageT", bound=Page)


@attrs.frozen
class Endpoint(Generic[PageT]):
    """One ``from``-paged endpoint: where it is, what its pages are, and their size."""

    name: str
    """What errors and logs call its pages (``"batch scrape sitemap page"``)."""
    path: str
    """Its path below the base URL, before the batch id (``"batch/scrape_sitemap/"``)."""
    structure: Callable[[Any], PageT]
    """Turns decoded JSON into a page; raises `StructureError` naming a bad field."""
    max_response_bytes: int
    """The largest body the client reads by default (``max_response_bytes=`` overrides)."""
    read_ahead_bytes: int
    """The page bodies a read may hold at once; never fewer than two pages."""


SITEMAP: Final[Endpoint[BatchScrapeSitemapStatusResponse]] = Endpoint(
    name="batch scrape sitemap page",
    path="batch/scrape_sitemap/",
    structure=structure_page,
    # A page of 1,000 sitemaps of 20 links is about 1 MB: sixteen times that is
    # generous, and a server that sends more (or a small body that inflates to
    # gigabytes) cannot exhaust the memory of the application.
    max_response_bytes=16 * MiB,
    # Pages of 10 sitemaps (about 10 KB) keep the whole window; pages of 1,000
    # (about 1 MB, several once decoded) are read one page ahead, which keeps a
    # read's memory close to a loop that reads one page at a time.
    read_ahead_bytes=2 * MiB,
)
"""``GET /batch/scrape_sitemap/{batch_id}``: each item is a sitemap and its links."""

SCRAPE: Final[Endpoint[BatchScrapeStatusResponse]] = Endpoint(
    name="batch scrape page",
    path="batch/scrape/",
    structure=structure_scrape_page,
    # A page holds 10 scraped pages. Large HTML documents run to a few MB
    # (5 MB is past the 99th percentile of the web's pages), and escaping them
    # as JSON strings adds up to a quarter: 10 x 5 MB x 1.25 is about 62 MB.
    max_response_bytes=64 * MiB,
    # A page of 10 Markdown pages of ~50 KB is ~0.5 MB: 4 MiB holds 8 such
    # pages, enough to hide the network's wait; a page of HTML ten times that
    # size is read two pages at a time, never a dozen.
    read_ahead_bytes=4 * MiB,
)
"""``GET /batch/scrape/{batch_id}``: each item is a scraped page, its content and links."""
