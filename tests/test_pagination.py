"""The end-of-read rules and the read plan, without I/O: every item once, in order, no waste."""

from __future__ import annotations

import math
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blat_async._batch import BatchView, is_final_status
from blat_async._pagination import Delivery, PageSize, ReadEnd, ReadPlan, end_of_read
from blat_async._reorder import ReorderBuffer
from blat_async.errors import BlatError, InternalServerError, PaginationError
from blat_async.models import (
    BatchScrapeSitemapData,
    BatchScrapeSitemapMetadata,
    BatchScrapeSitemapStatusResponse,
)


def _item(index: int) -> BatchScrapeSitemapData:
    return BatchScrapeSitemapData(
        metadata=BatchScrapeSitemapMetadata(batch_id="b1", job_id=f"job-{index}"),
        success=True,
        links=(f"https://site{index}.example/",),
    )


def _page(
    indexes: Iterable[int],
    *,
    total: int | None = None,
    status: str | None = "completed",
    processed: int | None = None,
) -> BatchScrapeSitemapStatusResponse:
    return BatchScrapeSitemapStatusResponse(
        processed=processed,
        total=total,
        status=status,
        data=tuple(_item(i) for i in indexes),
    )


def _at(
    offset: int,
    count: int,
    *,
    total: int | None = 1_000,
    status: str | None = "completed",
    processed: int | None = None,
) -> BatchScrapeSitemapStatusResponse:
    """The page a correct server returns at ``offset``, holding ``count`` items."""
    return _page(range(offset, offset + count), total=total, status=status, processed=processed)


def _asks(plan: ReadPlan, limit: int = 100) -> list[int]:
    """Every offset the plan asks for now, as the runner would send them."""
    offsets = []
    while (offset := plan.next_offset(limit)) is not None:
        offsets.append(offset)
    return offsets


def _take(plan: ReadPlan) -> list[Delivery]:
    """Hand out every page that is ready, as a caller that keeps up would take them."""
    taken = []
    while (delivery := plan.next_delivery()) is not None:
        taken.append(delivery)
        plan.handed_out()
    return taken


def _ids(deliveries: Iterable[Delivery]) -> list[str]:
    return [
        str(item.metadata.job_id) if item.metadata else "?"
        for delivery in deliveries
        for item in delivery.page.data
    ]


def _expected(first: int, end: int) -> list[str]:
    return [f"job-{i}" for i in range(first, end)]


def _after_first_page(
    start: int = 0,
    *,
    count: int = 10,
    window: int = 8,
    stop: int | None = None,
    total: int | None = 1_000,
    status: str | None = "completed",
    processed: int | None = None,
    follow: bool = False,
) -> ReadPlan:
    """A plan whose first page (``count`` items) has arrived and been handed out."""
    plan = ReadPlan(start, stop=stop, window=window, follow=follow)
    assert _asks(plan) == [start]
    plan.arrived(start, _at(start, count, total=total, status=status, processed=processed))
    _take(plan)
    return plan


# -- end_of_read ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("next_offset", "page_items", "total", "stop", "expected"),
    [
        pytest.param(10, 10, None, 10, ReadEnd.STOP, id="stop-reached"),
        pytest.param(12, 12, None, 10, ReadEnd.STOP, id="stop-passed"),
        pytest.param(10, 0, None, 10, ReadEnd.STOP, id="stop-reached-by-empty-page"),
        pytest.param(5, 5, 10, 5, ReadEnd.STOP, id="stop-before-total"),
        pytest.param(10, 10, 10, 10, ReadEnd.STOP, id="stop-equals-total"),
        pytest.param(9, 9, None, 10, None, id="stop-not-reached"),
        pytest.param(5, 0, None, None, ReadEnd.EMPTY_PAGE, id="empty-page"),
        pytest.param(5, 0, 10, None, ReadEnd.EMPTY_PAGE, id="empty-page-before-total"),
        pytest.param(5, 0, None, 20, ReadEnd.EMPTY_PAGE, id="empty-page-before-stop"),
        pytest.param(0, 0, 0, None, ReadEnd.TOTAL, id="empty-batch-is-read-to-its-total"),
        pytest.param(10, 10, 10, None, ReadEnd.TOTAL, id="total-reached"),
        pytest.param(12, 12, 10, None, ReadEnd.TOTAL, id="total-passed"),
        pytest.param(10, 10, 10, 20, ReadEnd.TOTAL, id="total-before-stop"),
        pytest.param(10, 10, None, None, None, id="total-unknown"),
        pytest.param(5, 5, 10, None, None, id="processed-reached-not-total"),
        pytest.param(13, 3, None, None, None, id="short-page-not-end"),
        pytest.param(13, 3, 20, None, None, id="short-page-before-total"),
        pytest.param(13, 3, 20, 30, None, id="short-page-before-total-and-stop"),
        pytest.param(1, 1, None, None, None, id="one-item"),
    ],
)
def test_end_of_read(
    next_offset: int, page_items: int, total: int | None, stop: int | None, expected: ReadEnd | None
) -> None:
    assert (
        end_of_read(next_offset=next_offset, page_items=page_items, total=total, stop=stop)
        is expected
    )


@pytest.mark.parametrize(
    ("status", "final"),
    [
        ("completed", True),
        ("COMPLETED", True),
        (" failed ", True),
        ("cancelled", True),
        ("expired", True),
        ("running", False),
        ("processing", False),
        ("", False),
        (None, False),
    ],
)
def test_is_final_status(status: str | None, final: bool) -> None:
    assert is_final_status(status) is final


# -- what is known to exist ------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "status", "processed", "known"),
    [
        pytest.param(200, "completed", 150, 200, id="finished-total"),
        pytest.param(200, None, None, 200, id="no-status-total"),
        pytest.param(200, "running", 150, 150, id="running-processed"),
        pytest.param(200, "running", None, 0, id="running-no-processed"),
        pytest.param(100, "running", 150, 100, id="running-processed-past-total"),
        pytest.param(None, "running", 40, 40, id="running-no-total"),
        pytest.param(None, "completed", 40, None, id="finished-no-total"),
        pytest.param(None, None, None, None, id="nothing-said"),
    ],
)
def test_what_is_known_to_exist(
    total: int | None, status: str | None, processed: int | None, known: int | None
) -> None:
    batch = BatchView(total=total, status=status, processed=processed)
    assert batch.known_end() == known


# -- the first request -------------------------------------------------------------


def test_the_first_request_goes_alone() -> None:
    plan = ReadPlan(0, window=16)

    assert _asks(plan, limit=8) == [0]


def test_read_ahead_starts_once_the_first_page_shows_size_and_total() -> None:
    plan = _after_first_page(window=16)

    assert _asks(plan, limit=8) == [10, 20, 30, 40, 50, 60, 70, 80]


def test_offsets_are_aligned_to_the_servers_pages_from_any_start() -> None:
    plan = _after_first_page(42, count=10, window=8)

    assert _asks(plan, limit=4) == [52, 62, 72, 82]


@pytest.mark.parametrize("size", [0, 1, 9, 10])
def test_a_batch_of_one_page_costs_one_request(size: int) -> None:
    plan = ReadPlan(0, window=16)
    assert _asks(plan, limit=8) == [0]

    plan.arrived(0, _at(0, size, total=size))

    assert _ids(_take(plan)) == _expected(0, size)
    assert plan.ended is ReadEnd.TOTAL
    assert _asks(plan) == []


@pytest.mark.parametrize(("start", "stop"), [(0, 0), (5, 5), (5, 3)])
def test_start_at_or_after_stop_ends_with_no_request(start: int, stop: int) -> None:
    plan = ReadPlan(start, stop=stop)

    assert plan.ended is ReadEnd.STOP
    assert _asks(plan) == []


# -- how far ahead -------------------------------------------------------------------


def test_read_ahead_is_bounded_by_the_limit() -> None:
    plan = _after_first_page(window=16)

    assert _asks(plan, limit=3) == [10, 20, 30]


def test_read_ahead_is_bounded_by_the_window() -> None:
    plan = _after_first_page(window=4)

    assert _asks(plan, limit=8) == [10, 20, 30, 40]


def test_pages_buffered_and_being_handed_out_count_in_the_window() -> None:
    plan = _after_first_page(window=4)
    assert _asks(plan) == [10, 20, 30, 40]
    plan.arrived(30, _at(30, 10))  # buffered behind a gap
    plan.arrived(10, _at(10, 10))
    assert plan.next_delivery() is not None  # being handed out
    assert plan.next_delivery() is None

    # In flight: 20, 40; buffered: 30; being handed out: 10.
    assert _asks(plan) == []
    plan.handed_out()
    assert _asks(plan) == [50]


def test_pages_waiting_for_the_caller_stop_even_the_cursor_request() -> None:
    plan = ReadPlan(0, window=2)
    assert _asks(plan) == [0]
    plan.arrived(0, _at(0, 10))
    assert _asks(plan) == [10]
    plan.arrived(10, _at(10, 10))

    # Two pages wait for the caller: nothing more is asked until it takes one.
    assert _asks(plan) == []
    assert plan.next_delivery() is not None
    plan.handed_out()
    assert _asks(plan) == [20]


def test_the_cursor_is_asked_for_even_when_buffered_pages_fill_the_window() -> None:
    plan = ReadPlan(0, window=4, window_bytes=1_000)
    _asks(plan)
    plan.arrived(0, _at(0, 10), size=10)
    _take(plan)
    assert _asks(plan) == [10, 20, 30, 40]
    for offset in (20, 30, 40):
        plan.arrived(offset, _at(offset, 10), size=10)
    # A short, heavy page: the window shrinks below the pages held past its gap.
    plan.arrived(10, _at(10, 4), size=600)
    _take(plan)

    assert plan.held > plan.effective_window()
    assert _asks(plan) == [14]


def test_large_bodies_shrink_the_window_to_the_byte_budget() -> None:
    plan = ReadPlan(0, window=12, window_bytes=2_000_000)
    assert _asks(plan) == [0]

    plan.arrived(0, _at(0, 10), size=900_000)
    _take(plan)

    assert plan.effective_window() == 2
    assert _asks(plan, limit=6) == [10, 20]


def test_the_window_keeps_two_pages_whatever_the_bodies_weigh() -> None:
    plan = ReadPlan(0, window=12, window_bytes=2_000_000)
    _asks(plan)

    plan.arrived(0, _at(0, 10), size=50_000_000)

    assert plan.effective_window() == 2


def test_small_bodies_keep_the_whole_window() -> None:
    plan = ReadPlan(0, window=12, window_bytes=2_000_000)
    _asks(plan)

    plan.arrived(0, _at(0, 10), size=10_000)

    assert plan.effective_window() == 12


def test_read_ahead_is_bounded_by_the_total() -> None:
    plan = _after_first_page(total=45)

    assert _asks(plan) == [10, 20, 30, 40]


def test_read_ahead_is_bounded_by_stop() -> None:
    plan = _after_first_page(42, stop=61)

    assert _asks(plan) == [52]


def test_a_running_batch_is_read_ahead_only_as_far_as_processed() -> None:
    plan = _after_first_page(status="running", processed=35, total=200)

    assert _asks(plan) == [10, 20, 30]


def test_a_running_batch_without_processed_is_read_one_page_at_a_time() -> None:
    plan = _after_first_page(status="running", processed=None, total=200)

    assert _asks(plan) == [10]


def test_without_total_the_read_ahead_goes_on_until_a_page_shows_the_end() -> None:
    plan = _after_first_page(total=None, window=4)
    assert _asks(plan) == [10, 20, 30, 40]

    plan.arrived(20, _page([], total=None))  # nothing from 20 on: 30 and 40 are lost
    plan.arrived(10, _at(10, 10, total=None))

    assert _asks(plan) == []
    assert _ids(_take(plan)) == _expected(10, 20)
    assert plan.ended is ReadEnd.EMPTY_PAGE


def test_read_ahead_goes_on_as_pages_are_handed_out() -> None:
    plan = _after_first_page(window=2)
    assert _asks(plan) == [10, 20]
    plan.arrived(10, _at(10, 10))
    _take(plan)

    assert _asks(plan) == [30]


# -- pages of any length, in any order --------------------------------------------------


def test_out_of_order_pages_are_handed_out_in_order() -> None:
    plan = _after_first_page()
    assert _asks(plan, limit=3) == [10, 20, 30]
    plan.arrived(30, _at(30, 10))
    plan.arrived(20, _at(20, 10))
    assert _take(plan) == []

    plan.arrived(10, _at(10, 10))

    assert [d.offset for d in _take(plan)] == [10, 20, 30]


def test_a_short_page_leaves_a_gap_that_is_asked_for_next() -> None:
    plan = _after_first_page(window=8)
    assert _asks(plan, limit=2) == [10, 20]

    plan.arrived(10, _at(10, 7))

    assert _asks(plan, limit=2) == [17]


def test_a_gap_is_asked_for_at_once_even_ahead_of_the_cursor() -> None:
    plan = _after_first_page(window=8)
    assert _asks(plan, limit=3) == [10, 20, 30]

    plan.arrived(20, _at(20, 6))

    assert _asks(plan, limit=3) == [26]


def test_a_gap_past_what_is_known_to_exist_is_not_asked_for_ahead() -> None:
    plan = _after_first_page(status="running", processed=26, total=100, window=8)
    assert _asks(plan, limit=3) == [10, 20]

    plan.arrived(20, _at(20, 6, status="running", processed=26, total=100))

    assert _asks(plan, limit=3) == []


def test_filling_a_gap_hands_out_the_page_after_it() -> None:
    plan = _after_first_page()
    assert _asks(plan, limit=2) == [10, 20]
    plan.arrived(20, _at(20, 10))
    plan.arrived(10, _at(10, 7))
    assert _ids(_take(plan)) == _expected(10, 17)
    assert _asks(plan, limit=1) == [17]

    plan.arrived(17, _at(17, 10))

    assert _ids(_take(plan)) == _expected(17, 30)


def test_a_short_page_is_not_the_end() -> None:
    plan = _after_first_page(total=None)
    assert _asks(plan, limit=1) == [10]

    plan.arrived(10, _at(10, 3, total=None))

    assert not plan.done
    assert _asks(plan, limit=1) == [13]


def test_no_request_is_sent_inside_a_long_page_that_arrived_ahead() -> None:
    plan = _after_first_page()
    assert _asks(plan, limit=4) == [10, 20, 30, 40]
    plan.arrived(20, _at(20, 40))
    # Longer still, and reaching past every page the read asked for.
    plan.arrived(30, _at(30, 45))

    # 60, where the first long page ends, is inside the second one.
    assert _asks(plan, limit=4) == [75, 120]


def test_a_long_page_overlapping_the_next_hands_out_no_duplicates() -> None:
    plan = _after_first_page()
    assert _asks(plan, limit=2) == [10, 20]
    plan.arrived(10, _at(10, 15))
    plan.arrived(20, _at(20, 10))

    assert _ids(_take(plan)) == _expected(10, 30)


def test_a_longer_page_shows_a_larger_page_size() -> None:
    plan = _after_first_page(count=5, window=8)
    assert _asks(plan, limit=1) == [5]

    plan.arrived(5, _at(5, 10))

    assert plan.page_size == 10
    assert _asks(plan, limit=2) == [15, 25]


def test_a_page_wholly_behind_the_cursor_is_dropped() -> None:
    plan = _after_first_page()
    assert _asks(plan, limit=2) == [10, 20]
    plan.arrived(10, _at(10, 20))
    _take(plan)

    plan.arrived(20, _at(20, 10))

    assert _take(plan) == []
    assert plan.held == 0


def test_stop_trims_the_items_of_the_last_page() -> None:
    plan = _after_first_page(stop=15)
    assert _asks(plan) == [10]

    plan.arrived(10, _at(10, 10))

    assert _ids(_take(plan)) == _expected(10, 15)
    assert plan.ended is ReadEnd.STOP


# -- the end of a read -------------------------------------------------------------------


def test_an_empty_first_page_ends_the_read() -> None:
    plan = ReadPlan(0)
    _asks(plan)

    plan.arrived(0, _page([], status="running"))

    assert _take(plan) == []
    assert plan.ended is ReadEnd.EMPTY_PAGE


def test_an_empty_page_after_items_ends_the_read() -> None:
    plan = _after_first_page(total=None)
    _asks(plan, limit=1)

    plan.arrived(10, _page([], total=None))

    assert plan.ended is ReadEnd.EMPTY_PAGE
    assert _asks(plan) == []


def test_an_empty_read_ahead_page_ends_the_read_when_the_cursor_reaches_it() -> None:
    plan = _after_first_page(total=None)
    assert _asks(plan, limit=2) == [10, 20]
    plan.arrived(20, _page([], total=None))
    assert not plan.done

    plan.arrived(10, _at(10, 10, total=None))

    assert _ids(_take(plan)) == _expected(10, 20)
    assert plan.ended is ReadEnd.EMPTY_PAGE


def test_the_total_reached_ends_the_read() -> None:
    plan = ReadPlan(0)
    _asks(plan)

    plan.arrived(0, _at(0, 10, total=10))

    assert plan.ended is ReadEnd.TOTAL
    assert _asks(plan) == []


def test_processed_reached_does_not_end_the_read() -> None:
    plan = ReadPlan(0)
    _asks(plan)

    plan.arrived(0, _at(0, 5, total=10, processed=5))

    assert not plan.done
    assert _asks(plan, limit=1) == [5]


def test_a_page_after_the_end_hands_out_nothing() -> None:
    plan = _after_first_page(total=None, stop=15)
    assert _asks(plan) == [10]
    plan.arrived(10, _at(10, 10, total=None))
    assert plan.ended is ReadEnd.STOP

    assert _take(plan) != []
    assert plan.next_delivery() is None


# -- the batch's fields, judged in the order requests were sent -----------------------


def test_batch_fields_come_from_the_latest_sent_page() -> None:
    plan = _after_first_page(status="running", processed=40, total=100)
    assert _asks(plan, limit=2) == [10, 20]

    plan.arrived(20, _at(20, 10, status="completed", processed=100, total=100))
    plan.arrived(10, _at(10, 10, status="running", processed=40, total=100))

    assert (plan.batch.status, plan.batch.processed) == ("completed", 100)


def test_a_total_that_grows_while_pages_arrive_out_of_order_is_no_contradiction() -> None:
    plan = _after_first_page(total=100)
    assert _asks(plan, limit=2) == [10, 20]

    plan.arrived(20, _at(20, 10, total=120))  # sent later, answered first, batch grew
    plan.arrived(10, _at(10, 10, total=100))  # sent before the larger total was known

    assert _ids(_take(plan)) == _expected(10, 30)
    assert plan.batch.total == 120


def test_a_total_that_shrinks_after_a_larger_one_arrived_is_a_pagination_error() -> None:
    plan = _after_first_page(total=30)
    assert _asks(plan, limit=1) == [10]

    plan.arrived(10, _at(10, 10, total=20))

    with pytest.raises(PaginationError, match="shrank from 30 to 20"):
        plan.next_delivery()


# -- failed requests --------------------------------------------------------------


def test_an_offset_that_gave_up_is_never_asked_for_again() -> None:
    plan = _after_first_page(window=4)
    assert _asks(plan) == [10, 20, 30, 40]

    plan.gave_up(20, InternalServerError(500))
    plan.arrived(10, _at(10, 10))

    assert 20 not in _asks(plan)


def test_pages_before_an_offset_that_gave_up_are_handed_out_then_its_error() -> None:
    plan = _after_first_page(window=4)
    assert _asks(plan) == [10, 20, 30, 40]
    error = InternalServerError(500)
    plan.gave_up(20, error)
    assert plan.next_delivery() is None

    plan.arrived(10, _at(10, 10))

    assert _ids([d for d in [plan.next_delivery()] if d]) == _expected(10, 20)
    with pytest.raises(InternalServerError) as caught:
        plan.next_delivery()
    assert caught.value is error


def test_an_offset_that_gave_up_is_forgotten_once_a_page_covers_it() -> None:
    plan = _after_first_page(window=4)
    assert _asks(plan, limit=2) == [10, 20]
    plan.gave_up(20, InternalServerError(500))

    plan.arrived(10, _at(10, 15))

    assert _ids(_take(plan)) == _expected(10, 25)
    assert _asks(plan, limit=1) == [25]
    assert plan._buffer.failures == 0  # forgotten, so a long read keeps no list of them


# -- follow mode ---------------------------------------------------------------------


def _following(
    *, count: int = 10, processed: int = 30, window: int = 8, total: int | None = 1_000
) -> ReadPlan:
    """A follow-mode plan that has handed out items 0 to ``count`` of a running batch."""
    plan = ReadPlan(0, follow=True, window=window)
    assert _asks(plan) == [0]
    plan.arrived(0, _at(0, count, status="running", processed=processed, total=total))
    _take(plan)
    return plan


def test_follow_a_short_page_at_the_front_of_a_running_batch_waits() -> None:
    plan = _following(count=4, processed=4)

    assert plan.waiting
    assert _asks(plan) == []


def test_follow_asks_the_cursor_again_after_poll() -> None:
    plan = _following(count=4, processed=4)

    plan.poll()

    assert not plan.waiting
    assert _asks(plan) == [4]


def test_follow_a_full_page_at_the_front_asks_the_next_page_at_once() -> None:
    plan = ReadPlan(0, follow=True, window=8)
    _asks(plan)
    plan.arrived(0, _at(0, 10, status="running", processed=40, total=1_000))
    _take(plan)
    assert _asks(plan, limit=4) == [10, 20, 30]
    for offset in (10, 20, 30):
        plan.arrived(offset, _at(offset, 10, status="running", processed=40, total=1_000))
    _take(plan)

    assert not plan.waiting
    assert _asks(plan, limit=4) == [40]


def test_follow_an_empty_page_of_a_running_batch_waits() -> None:
    plan = _following()
    assert _asks(plan, limit=1) == [10]

    plan.arrived(10, _page([], status="running", total=1_000))

    assert plan.waiting
    assert not plan.done
    assert _asks(plan) == []


@pytest.mark.parametrize("status", ["completed", "FAILED", " done ", "cancelled"])
def test_follow_an_empty_page_of_a_finished_batch_ends_the_read(status: str) -> None:
    plan = _following(total=None)
    assert _asks(plan, limit=1) == [10]

    plan.arrived(10, _page([], status=status, total=None))

    assert plan.ended is ReadEnd.EMPTY_PAGE
    assert not plan.waiting


@pytest.mark.parametrize("status", ["completed", "Done", "succeeded"])
@pytest.mark.parametrize("follow", [False, True])
def test_a_completed_batch_that_ends_before_its_total_is_a_pagination_error(
    follow: bool, status: str
) -> None:
    plan = ReadPlan(0, follow=follow)
    _asks(plan)
    plan.arrived(0, _at(0, 10, total=15, status=status))
    assert _asks(plan) == [10]

    plan.arrived(10, _page([], total=15, status=status))

    assert _ids([d for d in [plan.next_delivery()] if d]) == _expected(0, 10)
    with pytest.raises(PaginationError, match="lost 5 items"):
        plan.next_delivery()


@pytest.mark.parametrize("status", ["running", "cancelled", "failed", "expired", None])
def test_a_batch_that_did_not_complete_may_end_before_its_total(status: str | None) -> None:
    plan = ReadPlan(0)
    _asks(plan)
    plan.arrived(0, _at(0, 10, total=15, status=status))
    assert _asks(plan) == [10]

    plan.arrived(10, _page([], total=15, status=status))

    assert _ids(_take(plan)) == _expected(0, 10)
    assert plan.ended is ReadEnd.EMPTY_PAGE


def test_follow_a_short_page_of_a_finished_batch_asks_the_gap_at_once() -> None:
    plan = _following(count=10, processed=30)
    assert _asks(plan, limit=1) == [10]

    plan.arrived(10, _at(10, 4, status="completed", total=1_000))

    assert not plan.waiting
    assert _asks(plan, limit=1) == [14]


def test_follow_the_total_reached_ends_the_read_of_a_running_batch() -> None:
    plan = ReadPlan(0, follow=True)
    _asks(plan)

    plan.arrived(0, _at(0, 10, total=10, status="running"))

    assert plan.ended is ReadEnd.TOTAL


def test_follow_from_the_end_of_a_batch_ends_at_once() -> None:
    plan = ReadPlan(20, follow=True)
    _asks(plan)

    plan.arrived(20, BatchScrapeSitemapStatusResponse(total=20, status="running"))

    assert plan.ended is ReadEnd.TOTAL
    assert not plan.waiting


def test_follow_an_empty_read_ahead_page_stops_the_read_ahead_until_a_full_page() -> None:
    plan = _following(processed=40)
    assert _asks(plan, limit=2) == [10, 20]
    plan.arrived(20, _page([], status="running", total=1_000, processed=40))

    assert _asks(plan, limit=2) == []  # 10 is in flight; nothing past the empty page
    plan.arrived(10, _at(10, 10, status="running", total=1_000, processed=40))

    assert _ids(_take(plan)) == _expected(10, 20)
    assert not plan.done
    assert not plan.waiting
    # The stale empty page is not kept: the cursor is asked for afresh.
    assert _asks(plan, limit=2) == [20, 30]


def test_follow_does_not_wait_while_a_request_is_in_flight() -> None:
    # Nothing says where the batch ends: the read reads ahead, and catches up
    # with requests still in flight past the front.
    plan = ReadPlan(0, follow=True, window=8)
    _asks(plan)
    plan.arrived(0, _at(0, 10, total=None, status=None))
    _take(plan)
    assert _asks(plan, limit=3) == [10, 20, 30]

    plan.arrived(10, _at(10, 4, total=None, status=None))
    _take(plan)

    assert not plan.waiting
    plan.arrived(20, _page([], total=None, status=None))
    plan.arrived(30, _page([], total=None, status=None))
    assert plan.waiting


def test_follow_without_total_asks_only_the_cursor_until_a_poll_brings_a_full_page() -> None:
    plan = ReadPlan(0, follow=True, window=8)
    _asks(plan)
    plan.arrived(0, _at(0, 10, total=None, status=None))
    _take(plan)
    assert _asks(plan, limit=3) == [10, 20, 30]
    plan.arrived(20, _page([], total=None, status=None))
    plan.arrived(30, _page([], total=None, status=None))
    plan.arrived(10, _at(10, 4, total=None, status=None))
    _take(plan)
    assert plan.waiting

    plan.poll()
    assert _asks(plan, limit=3) == [14]
    plan.arrived(14, _at(14, 3, total=None, status=None))
    _take(plan)
    plan.poll()
    assert _asks(plan, limit=3) == [17]
    plan.arrived(17, _at(17, 10, total=None, status=None))
    _take(plan)

    assert _asks(plan, limit=3) == [27, 37, 47]


def test_follow_after_catching_up_a_poll_asks_the_cursor_alone() -> None:
    plan = ReadPlan(0, follow=True, window=8)
    _asks(plan)
    plan.arrived(0, _at(0, 10, total=None, status=None))
    _take(plan)
    assert _asks(plan, limit=1) == [10]
    plan.arrived(10, _at(10, 4, total=None, status=None))
    _take(plan)
    assert plan.waiting

    plan.poll()

    assert _asks(plan, limit=3) == [14]


def test_follow_a_short_page_before_what_is_known_to_exist_asks_the_gap_at_once() -> None:
    plan = _following(count=10, processed=30)
    assert _asks(plan, limit=1) == [10]

    plan.arrived(10, _at(10, 4, status="running", total=1_000, processed=30))
    _take(plan)

    assert not plan.waiting
    assert _asks(plan, limit=1) == [14]


def test_follow_a_short_page_of_a_finished_batch_without_total_asks_the_gap_at_once() -> None:
    plan = _following(count=10, processed=30, total=None)
    assert _asks(plan, limit=1) == [10]

    plan.arrived(10, _at(10, 4, status="completed", total=None))
    _take(plan)

    assert not plan.waiting
    assert _asks(plan, limit=1) == [14]


def test_an_empty_page_behind_the_cursor_does_not_hold_back_the_read_ahead() -> None:
    plan = _after_first_page(total=None, window=8)
    assert _asks(plan, limit=2) == [10, 20]
    plan.arrived(10, _at(10, 15, total=None))  # reaches past 20
    _take(plan)

    plan.arrived(20, _page([], total=None))  # answered late, and behind the cursor

    assert _asks(plan, limit=3) == [25, 40, 55]


def test_follow_read_ahead_resumes_when_processed_shows_more() -> None:
    plan = _following(count=4, processed=4)
    plan.poll()
    assert _asks(plan) == [4]

    plan.arrived(4, _at(4, 10, status="running", processed=60, total=1_000))

    assert _ids(_take(plan)) == _expected(4, 14)
    assert _asks(plan, limit=8) == [14, 24, 34, 44, 54]


def test_follow_a_read_that_caught_up_then_learns_of_more_asks_the_cursor_alone() -> None:
    # Caught up at 15 while the request at 20 was in flight; its page shows
    # items up to 50 before any poll. The cursor is asked for alone, as after
    # a poll, until a full page comes.
    plan = ReadPlan(0, follow=True, window=8)
    assert _asks(plan) == [0]
    plan.arrived(0, _at(0, 10, status="running", processed=25, total=100))
    assert _asks(plan) == [10, 20]
    plan.arrived(10, _at(10, 5, status="running", processed=15, total=100))
    assert _asks(plan) == []  # caught up at 15
    assert not plan.waiting  # the request at 20 is in flight

    plan.arrived(20, _at(20, 10, status="running", processed=50, total=100))

    assert not plan.waiting
    assert _asks(plan) == [15]


# -- servers that repeat themselves -------------------------------------------------------


def test_a_server_that_ignores_from_is_a_pagination_error() -> None:
    plan = _after_first_page(total=None)
    _asks(plan, limit=1)

    plan.arrived(10, _at(0, 10, total=None))

    with pytest.raises(PaginationError, match="ignore `from`"):
        plan.next_delivery()


def test_good_pages_before_a_repeat_are_handed_out_then_the_read_fails() -> None:
    plan = ReadPlan(0, window=8)
    _asks(plan)
    plan.arrived(0, _at(0, 10, total=None))
    assert _asks(plan, limit=2) == [10, 20]
    plan.arrived(20, _page([10, 11], total=None))
    plan.arrived(10, _at(10, 10, total=None))

    assert _ids([d for d in [plan.next_delivery(), plan.next_delivery()] if d]) == _expected(0, 20)
    with pytest.raises(PaginationError, match="'job-10'"):
        plan.next_delivery()
    assert _asks(plan) == []


# -- the parts of the plan -----------------------------------------------------------------


def test_batch_state_is_what_the_read_knows_of_its_batch() -> None:
    plan = ReadPlan(0)
    assert plan.batch_state() == (None, None, None)
    _asks(plan)

    plan.arrived(0, _at(0, 10, status="running", processed=40, total=100))

    assert plan.batch_state() == (40, 100, "running")


def test_a_page_is_full_only_once_a_page_short_of_known_items_shows_the_page_size() -> None:
    sizes = PageSize(4, None)
    # Ends where known items end: the batch's end, maybe, not the page size.
    assert not sizes.note(0, 10, known_end=10)
    assert sizes.size == 10
    assert sizes.note(10, 10, known_end=100)
    assert not sizes.note(20, 5, known_end=100)
    assert sizes.size == 10


def test_the_page_size_is_the_longest_page_seen() -> None:
    sizes = PageSize(4, None)
    sizes.note(0, 5, known_end=None)
    sizes.note(5, 12, known_end=None)
    assert sizes.size == 12


def _failure() -> InternalServerError:
    return InternalServerError(500)


def test_the_buffer_hands_out_queued_pages_then_raises_its_error() -> None:
    buffer = ReorderBuffer()
    buffer.queue(Delivery(0, _at(0, 10)))
    buffer.error = PaginationError("the read failed")

    delivery = buffer.next_delivery()
    assert delivery is not None
    assert delivery.offset == 0
    buffer.handed_out()
    with pytest.raises(PaginationError, match="the read failed"):
        buffer.next_delivery()


def test_the_buffer_holds_pages_failures_queued_and_handed_out_pages() -> None:
    buffer = ReorderBuffer()
    buffer.keep(20, _at(20, 10), full=True)
    buffer.fail(30, 40, _failure())
    buffer.queue(Delivery(0, _at(0, 10)))
    buffer.queue(Delivery(10, _at(10, 10)))
    assert buffer.held == 4
    assert buffer.next_delivery() is not None
    assert buffer.held == 4  # the page being handed out still counts
    assert buffer.with_caller

    buffer.handed_out()

    assert buffer.held == 3


def test_the_buffer_takes_the_page_that_holds_the_cursor() -> None:
    buffer = ReorderBuffer()
    page = _at(5, 10)
    buffer.keep(5, page, full=False)

    assert buffer.take_at(4) is None
    assert buffer.take_at(8) == (5, page, False)
    assert buffer.held == 0


def test_the_buffer_keeps_the_first_page_at_an_offset_over_an_empty_one() -> None:
    buffer = ReorderBuffer()
    page = _at(10, 10)
    buffer.keep(10, page, full=True)

    buffer.keep_end(10, _at(10, 0))

    assert buffer.take_at(10) == (10, page, True)


def test_the_buffer_forgets_what_the_cursor_passed_but_an_empty_page_at_it() -> None:
    buffer = ReorderBuffer()
    buffer.keep(0, _at(0, 10), full=True)
    buffer.keep_end(10, _at(10, 0))
    buffer.fail(5, 15, _failure())
    failure = _failure()
    buffer.fail(10, 20, failure)

    buffer.discard_passed(10)

    assert buffer.held == 2
    assert buffer.failures == 1
    assert buffer.failure_at(10) is failure
    assert buffer.span_end(10) == 10  # the empty page: it covers nothing


def test_the_buffer_knows_its_empty_pages_until_they_leave() -> None:
    buffer = ReorderBuffer()
    buffer.keep_end(10, _at(10, 0))
    buffer.keep_end(30, _at(30, 0))
    buffer.keep_end(50, _at(50, 0))
    assert sorted(buffer.empty_offsets()) == [10, 30, 50]

    buffer.keep(50, _at(50, 10), full=True)  # a page with items takes its place
    assert buffer.take_at(10) is not None  # the cursor takes an empty page
    buffer.discard_passed(31)  # the cursor passes another

    assert buffer.empty_offsets() == []


def test_a_failure_covers_only_its_own_offset() -> None:
    buffer = ReorderBuffer()
    buffer.fail(10, 20, _failure())
    buffer.keep(30, _at(30, 10), full=True)

    assert buffer.span_end(10) == 20
    assert buffer.inner_span_end(15) is None
    assert buffer.inner_span_end(35) == 40


# -- properties over any server -------------------------------------------------------------


class _Server:
    """A batch of ``n`` items served in pages that may vary, with or without ``total``."""

    def __init__(self, n: int, *, send_total: bool) -> None:
        self.n = n
        self.send_total = send_total

    def page(self, offset: int, length: int) -> BatchScrapeSitemapStatusResponse:
        return _page(
            range(offset, min(self.n, offset + length)),
            total=self.n if self.send_total else None,
            status="completed",
        )


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_page_lengths_order_and_failures_give_every_item_once_in_order(
    data: st.DataObject,
) -> None:
    """Every item from start to stop once and in order, or every item before a failed offset."""
    n = data.draw(st.integers(0, 300), label="items")
    start = data.draw(st.integers(0, n + 5), label="start")
    stop = data.draw(st.none() | st.integers(0, n + 30), label="stop")
    limit = data.draw(st.integers(1, 8), label="limit")
    window = data.draw(st.integers(max(2, limit), 3 * limit + 2), label="window")
    server = _Server(n, send_total=data.draw(st.booleans(), label="send_total"))
    failures = data.draw(st.booleans(), label="failures")
    plan = ReadPlan(start, stop=stop, window=window)
    outstanding: list[int] = []
    asked: list[int] = []
    delivered: list[str] = []
    failed_offsets: set[int] = set()
    failed = False
    steps = 0
    # What each request asked for, as far as the plan knew the page size,
    # and what each page that came back holds.
    spans: list[tuple[int, int]] = []

    while True:
        while (offset := plan.next_offset(limit)) is not None:
            # No request for items that a request in flight or a page
            # that arrived already covers.
            assert not any(o <= offset < e for o, e in spans), (offset, spans)
            spans.append((offset, offset + (plan.page_size or 1)))
            outstanding.append(offset)
            asked.append(offset)
        assert len(outstanding) <= limit
        assert plan.held <= max(window, len(outstanding) + 1) + 1
        if data.draw(st.booleans(), label="take") or not outstanding:
            try:
                delivery = plan.next_delivery()
            except BlatError:
                failed = True
                break
            if delivery is not None:
                assert delivery.offset == start + len(delivered)
                delivered += _ids([delivery])
                plan.handed_out()
                continue
        if plan.done:
            break
        assert outstanding, f"the plan stalled at {plan.cursor}"
        steps += 1
        assert steps <= 3 * (n + 2) + 2 * window, "the read does not terminate"
        offset = outstanding.pop(data.draw(st.integers(0, len(outstanding) - 1)))
        if failures and data.draw(st.integers(0, 9), label="fail") == 0:
            plan.gave_up(offset, InternalServerError(500))
            failed_offsets.add(offset)
            # A failure covers only its own offset, never asked again.
            spans = [span for span in spans if span[0] != offset]
            continue
        length = data.draw(st.integers(1, 25), label="page length")
        page = server.page(offset, length)
        plan.arrived(offset, page)
        spans = [span for span in spans if span[0] != offset]
        spans.append((offset, offset + len(page.data)))

    while not failed and (delivery := plan.next_delivery()) is not None:
        delivered += _ids([delivery])
        plan.handed_out()
    end = n if stop is None else min(stop, n)
    # No offset is asked twice in a read that does not follow.
    assert len(set(asked)) == len(asked)
    if failed:
        # Every item before an offset that failed, and not one more.
        assert delivered == _expected(start, start + len(delivered))
        assert start + len(delivered) in failed_offsets
    else:
        assert delivered == _expected(start, end)


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(0, 250),
    page_size=st.integers(1, 25),
    start=st.integers(0, 40),
    limit=st.integers(1, 8),
    send_total=st.booleans(),
    data=st.data(),
)
def test_a_read_asks_for_the_pages_it_needs_and_no_more(
    n: int, page_size: int, start: int, limit: int, send_total: bool, data: st.DataObject
) -> None:
    """With ``total``, requests = pages; without, at most ``limit - 1`` past the last page."""
    plan = ReadPlan(start, window=2 * limit)
    server = _Server(n, send_total=send_total)
    outstanding: list[int] = []
    asked: list[int] = []
    delivered: list[str] = []

    while not plan.done:
        while (offset := plan.next_offset(limit)) is not None:
            outstanding.append(offset)
            asked.append(offset)
        assert outstanding, f"the plan stalled at {plan.cursor}"
        offset = outstanding.pop(data.draw(st.integers(0, len(outstanding) - 1)))
        plan.arrived(offset, server.page(offset, page_size))
        delivered += _ids(_take(plan))

    pages = max(1, math.ceil((n - start) / page_size)) if n > start else 1
    assert delivered == _expected(start, max(start, n))
    assert sorted(asked)[: min(pages, len(asked))] == [
        start + k * page_size for k in range(min(pages, len(asked)))
    ]
    if send_total:
        assert len(asked) == pages
    else:
        # The page that shows the end (empty, or a gap after a short page) is
        # needed; what was in flight past it then is the only waste.
        assert len(asked) <= pages + 1 + (limit - 1)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_follow_over_a_growing_batch_gives_every_item_once_and_asks_once_a_poll(
    data: st.DataObject,
) -> None:
    """A running batch that grows while it is read: every item once, in order, no idle asks."""
    final_size = data.draw(st.integers(0, 150), label="final size")
    available = data.draw(st.integers(0, final_size), label="available at first")
    page_size = data.draw(st.integers(1, 25), label="page size")
    limit = data.draw(st.integers(1, 8), label="limit")
    plan = ReadPlan(0, follow=True, window=2 * limit)
    outstanding: list[int] = []
    delivered: list[str] = []
    requests = polls = pages_with_items = 0

    while not plan.done:
        while (offset := plan.next_offset(limit)) is not None:
            outstanding.append(offset)
            requests += 1
        assert len(set(outstanding)) == len(outstanding), "an offset is asked twice at once"
        if plan.waiting:
            # Time passes while the read waits: the batch grows.
            available = min(final_size, available + data.draw(st.integers(1, 10)))
            polls += 1
            assert polls <= 10 * (final_size + 2), "the read does not terminate"
            plan.poll()
            continue
        assert outstanding, f"the plan stalled at {plan.cursor}"
        offset = outstanding.pop(data.draw(st.integers(0, len(outstanding) - 1)))
        status = "completed" if available == final_size else "running"
        page = _page(
            range(offset, min(available, offset + page_size)),
            total=final_size,
            status=status,
            processed=available,
        )
        pages_with_items += bool(page.data)
        plan.arrived(offset, page)
        for delivery in _take(plan):
            assert delivery.offset == len(delivered)
            delivered += _ids([delivery])

    assert delivered == _expected(0, final_size)
    # One request a poll while caught up, one a page with items, and the first.
    assert requests <= polls + pages_with_items + 1


# -- no verb walks more than the read holds ----------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    outcomes=st.lists(st.sampled_from(["fail", "arrive", "short"]), min_size=1, max_size=300),
    limit=st.integers(1, 8),
)
def test_no_verb_walks_more_than_what_is_in_flight_buffered_or_failed(
    outcomes: list[str], limit: int
) -> None:
    # The request at the cursor never answers, and every other one fails or
    # arrives at once (a closing client fails them all with no await): the
    # read must neither walk the batch nor walk the failures at each call.
    plan = _after_first_page(total=1_000_000, window=2 * limit)
    walked = 0
    span_end = plan._span_end

    def counting(offset: int) -> int | None:
        nonlocal walked
        walked += 1
        return span_end(offset)

    plan._span_end = counting  # type: ignore[method-assign]
    stuck = plan.next_offset(limit)
    assert stuck == plan.cursor
    for outcome in outcomes:
        walked = 0
        offset = plan.next_offset(limit)
        assert walked <= plan.held + 2
        if offset is None:
            break
        walked = 0
        if outcome == "fail":
            plan.gave_up(offset, InternalServerError(500))
        else:
            plan.arrived(offset, _at(offset, 10 if outcome == "arrive" else 3, total=1_000_000))
        assert walked <= plan.held + 2
        assert plan.held <= 2 * limit
