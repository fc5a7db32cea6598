"""The API's data, as frozen attrs classes named after its OpenAPI schemas.

Two endpoints, two families: the batch sitemap results
(``BatchScrapeSitemap*``) and the batch scrape results (``BatchScrape*``).
Neither schema marks a field as required, so every field has a default: ``None``,
or an empty tuple for a list. Field names are the JSON keys. How JSON becomes
these classes lives in ``_converter.py``, not here.
"""

from __future__ import annotations

from datetime import UTC, datetime

import attrs

__all__ = [
    "BatchScrapeData",
    "BatchScrapeMetadata",
    "BatchScrapeSitemapData",
    "BatchScrapeSitemapMetadata",
    "BatchScrapeSitemapStatusResponse",
    "BatchScrapeStatusResponse",
]


def _aware_datetime(text: str | None) -> datetime | None:
    """``text`` as an aware `datetime`, UTC when it has no offset; ``None`` unless ISO 8601."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


@attrs.frozen
class BatchScrapeSitemapMetadata:
    """Which batch and job an item belongs to, and the sitemap it read.

    ``api.BatchScrapeSitemapMetadata`` in the schema.
    """

    batch_id: str | None = None
    """The ID of the batch scrape."""
    job_id: str | None = None
    """The ID of this sitemap's scrape job in the batch."""
    url: str | None = None
    """The sitemap URL of the job."""


@attrs.frozen
class BatchScrapeSitemapData:
    """One sitemap job of a batch: its links, or why it failed.

    ``api.BatchScrapeSitemapData`` in the schema. A failed job is an item
    too, with ``success=False`` and ``error`` / ``error_code`` set.
    """

    metadata: BatchScrapeSitemapMetadata | None = None
    """The job's batch id, job id and sitemap URL."""
    success: bool | None = None
    """Whether the sitemap was scraped; a failed job is still an item."""
    error: str | None = None
    """Why the job failed, in words, when it did."""
    error_code: str | None = None
    """Why the job failed, as a code, when it did."""
    links: tuple[str, ...] = ()
    """The links extracted from the sitemap."""


@attrs.frozen
class BatchScrapeSitemapStatusResponse:
    """One page of a batch's results, with the batch's status.

    ``api.BatchScrapeSitemapStatusResponse`` in the schema.
    """

    processed: int | None = None
    """The number of *successful* scrapes so far; failed jobs are not counted."""
    total: int | None = None
    """The number of sitemaps in the batch."""
    status: str | None = None
    """The status of the batch scrape, as the server spells it."""
    expires_at: str | None = None
    """When the batch's results expire, as the server sent it."""
    data: tuple[BatchScrapeSitemapData, ...] = ()
    """This page's items; ``"data": null`` is an empty page."""

    @property
    def expires_at_datetime(self) -> datetime | None:
        """`expires_at` as an aware `datetime`, or ``None`` when it is not ISO 8601.

        A time without an offset is taken as UTC.

        >>> BatchScrapeSitemapStatusResponse(expires_at="2026-12-01T10:00:00Z").expires_at_datetime
        datetime.datetime(2026, 12, 1, 10, 0, tzinfo=datetime.timezone.utc)
        """
        return _aware_datetime(self.expires_at)


@attrs.frozen
class BatchScrapeMetadata:
    """Which batch and job an item belongs to, the page it read and how the site answered.

    ``api.BatchScrapeMetadata`` in the schema.
    """

    batch_id: str | None = None
    """The ID of the batch scrape."""
    job_id: str | None = None
    """The ID of this page's scrape job in the batch."""
    url: str | None = None
    """The URL the job was given."""
    final_url: str | None = None
    """The URL of the page after redirects."""
    status_code: int | None = None
    """The HTTP status the scraped site answered: an integer from 0 to 999.

    An HTTP status has three digits (RFC 9110), and sites answer codes beyond
    the registered 100 to 599, such as 999; 0 is accepted because the API's
    own example sends it.
    """


@attrs.frozen
class BatchScrapeData:
    """One scraped page of a batch: its content and links, or why it failed.

    ``api.BatchScrapeData`` in the schema. A failed job is an item too, with
    ``success=False`` and ``error`` / ``error_code`` set.
    """

    metadata: BatchScrapeMetadata | None = None
    """The job's batch id, job id, URLs and the site's HTTP status."""
    success: bool | None = None
    """Whether the page was scraped; a failed job is still an item."""
    error: str | None = None
    """Why the job failed, in words, when it did."""
    error_code: str | None = None
    """Why the job failed, as a code, when it did."""
    content: str | None = None
    """The page's content, as HTML or Markdown as the batch asked; it can be megabytes."""
    extracted_links: tuple[str, ...] = ()
    """The links found on the page."""


@attrs.frozen
class BatchScrapeStatusResponse:
    """One page of a batch scrape's results, with the batch's status.

    ``api.BatchScrapeStatusResponse`` in the schema.
    """

    processed: int | None = None
    """The number of *successful* scrapes so far; failed jobs are not counted."""
    total: int | None = None
    """The number of URLs in the batch."""
    status: str | None = None
    """The status of the batch scrape, as the server spells it."""
    expires_at: str | None = None
    """When the batch's results expire, as the server sent it."""
    data: tuple[BatchScrapeData, ...] = ()
    """This page's items; ``"data": null`` is an empty page."""

    @property
    def expires_at_datetime(self) -> datetime | None:
        """`expires_at` as an aware `datetime`, or ``None`` when it is not ISO 8601.

        A time without an offset is taken as UTC.

        >>> BatchScrapeStatusResponse(expires_at="2026-12-01T10:00:00Z").expires_at_datetime
        datetime.datetime(2026, 12, 1, 10, 0, tzinfo=datetime.timezone.utc)
        """
        return _aware_datetime(self.expires_at)
