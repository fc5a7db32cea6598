"""The API's data, as frozen attrs classes named after its OpenAPI schemas.

The schema marks no field as required, so every field has a default: ``None``,
or an empty tuple for a list. Field names are the JSON keys. How JSON becomes
these classes lives in ``_converter.py``, not here.
"""

from __future__ import annotations

from datetime import UTC, datetime

import attrs

__all__ = [
    "BatchScrapeSitemapData",
    "BatchScrapeSitemapMetadata",
    "BatchScrapeSitemapStatusResponse",
]


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
        if not self.expires_at:
            return None
        try:
            moment = datetime.fromisoformat(self.expires_at)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment
