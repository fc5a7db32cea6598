"""The public surface: what ``import blat_async`` offers, and what earlier code still imports."""

from __future__ import annotations

import blat_async


def test_the_public_names_are_what_a_user_needs() -> None:

    assert set(blat_async.__all__) == {
        "FINAL_STATUSES",
        "APIConnectionError",
        "APIStatusError",
        "APITimeoutError",
        "AuthenticationError",
        "BadRequestError",
        "BatchScrapeSitemapData",
        "BatchScrapeSitemapMetadata",
        "BatchScrapeSitemapStatusResponse",
        "BatchScrapeData",
        "BatchScrapeMetadata",
        "BatchScrapeStatusResponse",
        "BlatClient",
        "BlatError",
        "InternalServerError",
        "NotFoundError",
        "PaginationError",
        "PermissionDeniedError",
        "RateLimitError",
        "ReadEnd",
        "ReadProgress",
        "ResponseTooLargeError",
        "ResponseValidationError",
        "RetryPolicy",
        "__version__",
    }


def test_every_public_name_imports() -> None:
    for name in blat_async.__all__:
        assert getattr(blat_async, name) is not None


def test_names_that_left_the_public_surface_still_import() -> None:
    # Not exported on purpose, so strict typing refuses it; it still runs.
    from blat_async import end_of_read  # type: ignore[attr-defined]

    ended = end_of_read(next_offset=10, page_items=10, total=10, stop=None)
    assert ended is blat_async.ReadEnd.TOTAL
