"""The models: plain frozen data with defaults for every field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import attrs
import pytest

from blat_async.models import (
    BatchScrapeSitemapData,
    BatchScrapeSitemapMetadata,
    BatchScrapeSitemapStatusResponse,
)


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


def test_status_response_defaults_are_none_and_no_data() -> None:
    response = BatchScrapeSitemapStatusResponse()

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


def test_models_have_no_wire_helpers() -> None:
    assert not hasattr(BatchScrapeSitemapStatusResponse, "from_dict")


def _expires(value: str | None) -> datetime | None:
    return BatchScrapeSitemapStatusResponse(expires_at=value).expires_at_datetime


def test_expires_at_with_z_is_utc() -> None:
    assert _expires("2026-12-01T10:00:00Z") == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def test_expires_at_with_offset_keeps_the_offset() -> None:
    moment = _expires("2026-12-01T12:00:00+02:00")

    assert moment == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert moment is not None
    assert moment.utcoffset() == timedelta(hours=2)


def test_expires_at_with_fraction_of_seconds() -> None:
    assert _expires("2026-12-01T10:00:00.123456Z") == datetime(
        2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC
    )


def test_expires_at_without_offset_is_taken_as_utc() -> None:
    moment = _expires("2026-12-01T10:00:00")

    assert moment == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert moment is not None
    assert moment.tzinfo is UTC


def test_expires_at_is_aware_for_a_negative_offset() -> None:
    moment = _expires("2026-12-01T05:00:00-05:00")

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
def test_expires_at_that_is_not_iso_8601_is_none(value: str | None) -> None:
    assert _expires(value) is None
