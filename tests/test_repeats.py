"""Catching a server that repeats itself, without I/O: nothing twice, no honest batch refused."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from blat_async._repeats import RepeatGuard
from blat_async.models import (
    BatchScrapeSitemapData,
    BatchScrapeSitemapMetadata,
)


def _items(indexes: Iterable[int]) -> tuple[BatchScrapeSitemapData, ...]:
    return tuple(
        BatchScrapeSitemapData(metadata=BatchScrapeSitemapMetadata(job_id=f"job-{i}"), success=True)
        for i in indexes
    )


def _alike(count: int, *, job_id: str | None = None) -> tuple[BatchScrapeSitemapData, ...]:
    """Alike failed items whose metadata carries no usable job id."""
    metadata = None if job_id is None else BatchScrapeSitemapMetadata(job_id=job_id)
    item = BatchScrapeSitemapData(metadata=metadata, success=False, error_code="FETCH_FAILED")
    return (item,) * count


def _read(guard: RepeatGuard, first: int, end: int, size: int = 100) -> None:
    for offset in range(first, end, size):
        assert guard.check(
            offset, _items(range(offset, min(end, offset + size))), bounded=True
        ) == (
            min(size, end - offset),
            None,
        )


def test_new_items_are_all_accepted() -> None:
    guard = RepeatGuard()

    assert guard.check(0, _items(range(10)), bounded=True) == (10, None)
    assert guard.check(10, _items(range(10, 20)), bounded=True) == (10, None)


def test_a_page_repeating_the_one_before_is_a_server_ignoring_from() -> None:
    guard = RepeatGuard()
    guard.check(0, _items(range(10)), bounded=True)

    new, error = guard.check(10, _items(range(10)), bounded=True)

    assert new == 0
    assert error is not None
    assert "ignore `from`" in str(error)


def test_a_repeated_job_id_names_it_and_both_offsets_after_the_new_items() -> None:
    guard = RepeatGuard()
    guard.check(0, _items(range(10)), bounded=True)

    new, error = guard.check(10, _items([10, 11, 12, 3, 14]), bounded=True)

    assert new == 3
    message = str(error)
    assert "'job-3'" in message
    assert "offset 13" in message
    assert "offset 3" in message


def test_one_job_id_twice_within_a_page_is_data() -> None:
    guard = RepeatGuard()
    page = tuple(
        BatchScrapeSitemapData(metadata=BatchScrapeSitemapMetadata(job_id="job_id"), success=True)
        for _ in range(2)
    )

    assert guard.check(0, page, bounded=True) == (2, None)


def test_a_job_id_repeated_within_a_page_is_remembered_at_its_first_offset() -> None:
    guard = RepeatGuard()
    guard.check(0, _items([0, 1, 0]), bounded=True)

    _new, error = guard.check(3, _items([0]), bounded=True)

    assert "already delivered at offset 0" in str(error)


def test_items_without_job_id_are_compared_whole() -> None:
    guard = RepeatGuard()
    anonymous = BatchScrapeSitemapData(success=False, error="unreachable")
    different = BatchScrapeSitemapData(success=False, error="timeout")

    assert guard.check(0, (anonymous, anonymous), bounded=True) == (2, None)
    assert guard.check(2, (different, anonymous), bounded=True) == (2, None)


def test_empty_job_ids_are_not_taken_for_repeats() -> None:
    guard = RepeatGuard()

    assert guard.check(0, _alike(3, job_id=""), bounded=True) == (3, None)
    assert guard.check(3, _alike(3, job_id="") + _items([3]), bounded=True) == (4, None)


@pytest.mark.parametrize("pages", [3, 10, 100])
def test_a_bounded_batch_of_alike_jobs_is_read_whole(pages: int) -> None:
    guard = RepeatGuard()

    accepted = [guard.check(offset, _alike(1), bounded=True) for offset in range(pages)]

    assert accepted == [(1, None)] * pages


def test_pages_of_one_alike_item_may_follow_each_other_without_a_total() -> None:
    guard = RepeatGuard()

    assert [guard.check(offset, _alike(1), bounded=False) for offset in range(3)] == [(1, None)] * 3


def test_without_a_total_a_long_run_of_alike_pages_is_a_server_ignoring_from() -> None:
    guard = RepeatGuard()
    for offset in range(3):
        guard.check(offset, _alike(1), bounded=False)

    new, error = guard.check(3, _alike(1), bounded=False)

    assert new == 0
    assert "ignore `from`" in str(error)


def test_a_repeat_of_any_of_the_last_2048_job_ids_is_caught() -> None:
    guard = RepeatGuard()
    _read(guard, 0, 10_000)

    # job-7952 is 2,048 ids back.
    new, error = guard.check(10_000, _items([10_000, 7_952]), bounded=True)

    assert new == 1
    assert "job 'job-7952' at offset 10001" in str(error)


def test_a_repeat_on_the_page_that_makes_the_guard_forget_still_names_its_offset() -> None:
    guard = RepeatGuard()
    for start in range(0, 4096, 8):
        guard.check(start, _items(range(start, start + 8)), bounded=True)

    # job-4096 is the id that makes the guard forget its oldest half, job-0
    # among them; the repeat of job-0 right after it is still named.
    new, error = guard.check(4096, _items([4096, 0]), bounded=True)

    assert new == 1
    assert "job 'job-0' at offset 4097 was already delivered at offset 0" in str(error)


def test_the_memory_of_job_ids_stays_bounded() -> None:
    guard = RepeatGuard()
    _read(guard, 0, 50_000)

    assert 2048 <= len(guard._recent) <= 4096
