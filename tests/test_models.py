"""The models: plain frozen data with defaults for every field."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import attrs
import pytest

from blat_async.models import (
    BatchScrapeData,
    BatchScrapeMetadata,
    BatchScrapeSitemapData,
    BatchScrapeSitemapMetadata,
    BatchScrapeSitemapStatusResponse,
    BatchScrapeStatusResponse,
)

_Expires = Callable[[str | None], datetime | None]


def test_metadata_defaults_are_none() -> None:
    metadata = BatchScrapeSitemapMetadata()

    assert (metadata.batch_id, metadata.job_id, metadata.url) == (None, None, None)


def test_data_defaults_are_none_and_no_links() -> None:
    item = BatchScrapeSitemapData()

    assert (item.metadata, item.success, item.error, item.error_code, item.links) == (
        None,
        None,
        None,
        None,
        (),
    )


def test_scrape_metadata_defaults_are_none() -> None:
    metadata = BatchScrapeMetadata()

    assert attrs.astuple(metadata) == (None, None, None, None, None)


def test_scrape_data_defaults_are_none_and_no_links() -> None:
    item = BatchScrapeData()

    assert (
        item.metadata,
        item.success,
        item.error,
        item.error_code,
        item.content,
        item.extracted_links,
    ) == (None, None, None, None, None, ())


@pytest.mark.parametrize(
    "response_class", [BatchScrapeSitemapStatusResponse, BatchScrapeStatusResponse]
)
def test_status_response_defaults_are_none_and_no_data(
    response_class: type[BatchScrapeSitemapStatusResponse | BatchScrapeStatusResponse],
) -> None:
    response = response_class()

    assert (
        response.processed,
        response.total,
        response.status,
        response.expires_at,
        response.data,
    ) == (None, None, None, None, ())


@pytest.mark.parametrize(
    ("instance", "field"),
    [
        pytest.param(BatchScrapeSitemapMetadata(), "job_id", id="metadata"),
        pytest.param(BatchScrapeSitemapData(), "links", id="data"),
        pytest.param(BatchScrapeSitemapStatusResponse(), "total", id="status-response"),
        pytest.param(BatchScrapeMetadata(), "status_code", id="scrape-metadata"),
        pytest.param(BatchScrapeData(), "content", id="scrape-data"),
        pytest.param(BatchScrapeStatusResponse(), "total", id="scrape-status-response"),
    ],
)
def test_models_are_frozen(instance: object, field: str) -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(instance, field, "changed")


def test_models_compare_by_value() -> None:
    first = BatchScrapeSitemapData(metadata=BatchScrapeSitemapMetadata(job_id="j"), links=("a",))
    second = BatchScrapeSitemapData(metadata=BatchScrapeSitemapMetadata(job_id="j"), links=("a",))

    assert first == second
    assert hash(first) == hash(second)


@pytest.mark.parametrize(
    "response_class", [BatchScrapeSitemapStatusResponse, BatchScrapeStatusResponse]
)
def test_models_have_no_wire_helpers(response_class: type) -> None:
    assert not hasattr(response_class, "from_dict")


@pytest.fixture(
    params=[BatchScrapeSitemapStatusResponse, BatchScrapeStatusResponse],
    ids=["sitemap", "scrape"],
)
def expires(request: pytest.FixtureRequest) -> _Expires:
    """`expires_at_datetime` of a response of each kind with ``expires_at=value``."""
    response_class: type[BatchScrapeSitemapStatusResponse | BatchScrapeStatusResponse]
    response_class = request.param
    return lambda value: response_class(expires_at=value).expires_at_datetime


def test_expires_at_with_z_is_utc(expires: _Expires) -> None:
    assert expires("2026-12-01T10:00:00Z") == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def test_expires_at_with_offset_keeps_the_offset(expires: _Expires) -> None:
    moment = expires("2026-12-01T12:00:00+02:00")

    assert moment == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert moment is not None
    assert moment.utcoffset() == timedelta(hours=2)


def test_expires_at_with_fraction_of_seconds(expires: _Expires) -> None:
    assert expires("2026-12-01T10:00:00.123456Z") == datetime(
        2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC
    )


def test_expires_at_without_offset_is_taken_as_utc(expires: _Expires) -> None:
    moment = expires("2026-12-01T10:00:00")

    assert moment == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert moment is not None
    assert moment.tzinfo is UTC


def test_expires_at_is_aware_for_a_negative_offset(expires: _Expires) -> None:
    moment = expires("2026-12-01T05:00:00-05:00")

    assert moment is not None
    assert moment.tzinfo == timezone(timedelta(hours=-5))


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="none"),
        pytest.param("", id="empty"),
        pytest.param("tomorrow", id="garbage"),
        pytest.param("2026-13-01T00:00:00Z", id="month-13"),
        pytest.param("expires_at", id="schema-example"),
    ],
)
def test_expires_at_that_is_not_iso_8601_is_none(expires: _Expires, value: str | None) -> None:
    assert expires(value) is None
