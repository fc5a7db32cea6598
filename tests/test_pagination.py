"""The end-of-read rules and the read plan, without I/O: every item once, in order."""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blat_async._pagination import (
    Delivery,
    PageSizeGuess,
    ReadEnd,
    ReadPlan,
    end_of_read,
    is_final_status,
)
from blat_async.errors import PaginationError
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
    total: int | None = None,
    status: str | None = "completed",
    processed: int | None = None,
) -> BatchScrapeSitemapStatusResponse:
    """The page a correct server returns at ``offset``, holding ``count`` items."""
    return _page(range(offset, offset + count), total=total, status=status, processed=processed)


def _as_fetched(
    plan: ReadPlan, offset: int, page: BatchScrapeSitemapStatusResponse
) -> tuple[BatchScrapeSitemapStatusResponse, int]:
    """The page as the client hands it over: without the items the plan no longer needs."""
    skip = plan.needed_from() - offset
    if skip <= 0 or len(page.data) < 2:
        return page, 0
    skipped = min(skip, len(page.data) - 1)
    return attrs.evolve(page, data=page.data[skipped:]), skipped


def _ids(deliveries: Iterable[Delivery]) -> list[str]:
    return [
        str(item.metadata.job_id) if item.metadata else "?"
        for delivery in deliveries
        for item in delivery.page.data
    ]


def _expected(first: int, end: int) -> list[str]:
    return [f"job-{i}" for i in range(first, end)]


def _after_first_page(
    *, count: int = 10, window: int = 8, stop: int | None = None, total: int | None = None
) -> ReadPlan:
    """A plan from offset 0 whose first page (``count`` items) has been delivered."""
    plan = ReadPlan(0, stop=stop, window=window)
    assert plan.to_fetch(1) == [0]
    plan.arrived(0, _at(0, count, total=total))
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
        pytest.param(0, 0, 0, None, ReadEnd.EMPTY_PAGE, id="empty-batch"),
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


# -- ReadPlan: the order of requests ------------------------------------------


def test_sequential_read_asks_each_offset_after_the_last_page() -> None:
    plan = ReadPlan(0, window=1)
    requested: list[int] = []
    delivered: list[Delivery] = []

    while not plan.done:
        (offset,) = plan.to_fetch(1)
        requested.append(offset)
        delivered += plan.arrived(offset, _at(offset, min(10, 25 - offset), total=25))

    assert requested == [0, 10, 20]
    assert _ids(delivered) == _expected(0, 25)
    assert plan.ended is ReadEnd.TOTAL


def test_nothing_is_fetched_ahead_before_the_first_page() -> None:
    plan = ReadPlan(0, window=16)

    assert plan.to_fetch(8) == [0]
    assert plan.to_fetch(8) == []


def test_a_guessed_page_size_fills_the_first_round() -> None:
    plan = ReadPlan(5, window=16, guess=PageSizeGuess(10))

    assert plan.to_fetch(4) == [5, 15, 25, 35]


def test_the_first_round_guess_is_bounded_by_stop() -> None:
    plan = ReadPlan(0, stop=25, window=16, guess=PageSizeGuess(10))

    assert plan.to_fetch(8) == [0, 10, 20]


def test_a_guess_too_large_leaves_gaps_that_are_fetched_together() -> None:
    plan = ReadPlan(0, window=16, guess=PageSizeGuess(10))
    plan.to_fetch(3)

    first = plan.arrived(0, _at(0, 5, total=100))

    assert _ids(first) == _expected(0, 5)
    assert plan.to_fetch(5) == [5, 15, 25]
    assert plan.page_size == 5


def test_a_guess_too_small_overlaps_and_delivers_each_item_once() -> None:
    plan = ReadPlan(0, window=16, guess=PageSizeGuess(10))
    assert plan.to_fetch(3) == [0, 10, 20]
    assert plan.arrived(20, _at(20, 30, total=200)) == []
    assert plan.arrived(10, _at(10, 30, total=200)) == []

    deliveries = plan.arrived(0, _at(0, 30, total=200))

    assert _ids(deliveries) == _expected(0, 50)
    assert plan.to_fetch(3) == [50, 80, 110]


def test_a_page_without_its_delivered_items_still_shows_the_page_size() -> None:
    plan = ReadPlan(0, window=16, guess=PageSizeGuess(10))
    plan.to_fetch(2)
    plan.arrived(0, _at(0, 100, total=500))
    assert plan.needed_from() == 100

    # The page at 10 held 100 items; the 90 already delivered were left out.
    deliveries = plan.arrived(10, _at(100, 10, total=500), skipped=90)

    assert _ids(deliveries) == _expected(100, 110)
    assert plan.page_size == 100


def test_a_page_short_of_the_total_teaches_the_guess() -> None:
    guess = PageSizeGuess(10)
    plan = ReadPlan(0, guess=guess)
    plan.to_fetch(1)
    plan.arrived(0, _at(0, 25, total=100))

    assert guess.size == 25


def test_the_last_page_of_a_batch_does_not_teach_the_guess() -> None:
    guess = PageSizeGuess(10)
    plan = ReadPlan(0, guess=guess)
    plan.to_fetch(1)
    plan.arrived(0, _at(0, 3, total=3))

    assert guess.size == 10


def test_first_request_is_at_start() -> None:
    assert ReadPlan(42).to_fetch(4) == [42]


def test_read_ahead_after_the_first_page_asks_several_offsets() -> None:
    plan = _after_first_page(window=8)

    assert plan.to_fetch(4) == [10, 20, 30, 40]


def test_read_ahead_is_bounded_by_the_limit() -> None:
    plan = _after_first_page(window=8)

    assert plan.to_fetch(2) == [10, 20]
    assert plan.to_fetch(2) == []


def test_read_ahead_is_bounded_by_the_window() -> None:
    plan = _after_first_page(window=3)

    assert plan.to_fetch(8) == [10, 20, 30]


def test_read_ahead_counts_buffered_pages_in_the_window() -> None:
    plan = _after_first_page(window=3)
    plan.to_fetch(8)
    plan.arrived(30, _at(30, 10))

    assert plan.to_fetch(8) == []


def test_read_ahead_is_bounded_by_the_total() -> None:
    plan = _after_first_page(total=25)

    assert plan.to_fetch(8) == [10, 20]


def test_read_ahead_is_bounded_by_stop() -> None:
    plan = _after_first_page(stop=35)

    assert plan.to_fetch(8) == [10, 20, 30]


def test_read_ahead_goes_on_as_pages_are_delivered() -> None:
    plan = _after_first_page(window=2)
    plan.to_fetch(2)
    plan.arrived(10, _at(10, 10))

    assert plan.to_fetch(2) == [30]


# -- ReadPlan: what is delivered -----------------------------------------------


def test_out_of_order_pages_are_delivered_in_order() -> None:
    plan = _after_first_page()
    plan.to_fetch(3)

    assert plan.arrived(30, _at(30, 10)) == []
    assert plan.arrived(20, _at(20, 10)) == []
    deliveries = plan.arrived(10, _at(10, 10))

    assert [d.offset for d in deliveries] == [10, 20, 30]
    assert _ids(deliveries) == _expected(10, 40)


def test_short_page_leaves_a_gap_that_is_fetched_next() -> None:
    plan = _after_first_page()
    plan.to_fetch(2)
    plan.arrived(20, _at(20, 10))

    short = plan.arrived(10, _at(10, 4))

    assert _ids(short) == _expected(10, 14)
    assert plan.to_fetch(2)[0] == 14


def test_filling_a_gap_delivers_the_buffered_page_after_it() -> None:
    plan = _after_first_page()
    plan.to_fetch(2)
    plan.arrived(20, _at(20, 10))
    plan.arrived(10, _at(10, 4))
    plan.to_fetch(2)

    deliveries = plan.arrived(14, _at(14, 6))

    assert [d.offset for d in deliveries] == [14, 20]
    assert _ids(deliveries) == _expected(14, 30)


def test_short_page_is_not_the_end() -> None:
    plan = _after_first_page()
    plan.to_fetch(1)
    plan.arrived(10, _at(10, 3))

    assert not plan.done


def test_long_page_overlapping_the_next_delivers_no_duplicates() -> None:
    plan = _after_first_page()
    plan.to_fetch(2)
    plan.arrived(20, _at(20, 10))

    deliveries = plan.arrived(10, _at(10, 15))

    assert [d.offset for d in deliveries] == [10, 25]
    assert _ids(deliveries) == _expected(10, 30)


def test_page_wholly_behind_the_cursor_is_dropped() -> None:
    plan = _after_first_page()
    plan.to_fetch(2)
    plan.arrived(10, _at(10, 20))

    assert plan.arrived(20, _at(20, 10)) == []
    assert plan.cursor == 30


def test_stop_trims_the_items_of_the_last_page() -> None:
    plan = ReadPlan(0, stop=7)
    plan.to_fetch(1)

    deliveries = plan.arrived(0, _at(0, 10))

    assert _ids(deliveries) == _expected(0, 7)
    assert plan.ended is ReadEnd.STOP


def test_start_and_stop_select_a_slice() -> None:
    plan = ReadPlan(3, stop=5)
    plan.to_fetch(1)

    assert _ids(plan.arrived(3, _at(3, 10))) == ["job-3", "job-4"]


@pytest.mark.parametrize(("start", "stop"), [(5, 5), (0, 0), (9, 4)])
def test_start_at_or_after_stop_ends_with_no_request(start: int, stop: int) -> None:
    plan = ReadPlan(start, stop=stop)

    assert plan.ended is ReadEnd.STOP
    assert plan.to_fetch(4) == []


def test_empty_first_page_ends_the_read() -> None:
    plan = ReadPlan(0)
    plan.to_fetch(1)

    assert plan.arrived(0, _page([], status="running")) == []
    assert plan.ended is ReadEnd.EMPTY_PAGE


def test_empty_page_after_items_ends_the_read() -> None:
    plan = _after_first_page()
    plan.to_fetch(1)

    assert plan.arrived(10, _page([])) == []
    assert plan.ended is ReadEnd.EMPTY_PAGE
    assert plan.to_fetch(4) == []


def test_empty_read_ahead_page_ends_the_read_when_the_cursor_reaches_it() -> None:
    plan = _after_first_page()
    plan.to_fetch(2)
    assert plan.arrived(20, _page([])) == []
    assert not plan.done

    deliveries = plan.arrived(10, _at(10, 10))

    assert _ids(deliveries) == _expected(10, 20)
    assert plan.ended is ReadEnd.EMPTY_PAGE


def test_total_reached_ends_the_read() -> None:
    plan = ReadPlan(0)
    plan.to_fetch(1)
    plan.arrived(0, _at(0, 10, total=10))

    assert plan.ended is ReadEnd.TOTAL
    assert plan.to_fetch(4) == []


def test_processed_reached_does_not_end_the_read() -> None:
    plan = ReadPlan(0)
    plan.to_fetch(1)

    plan.arrived(0, _at(0, 5, total=10, processed=5))

    assert not plan.done
    assert plan.to_fetch(1) == [5]


def test_batch_fields_are_kept_from_the_latest_page() -> None:
    plan = ReadPlan(0)
    plan.to_fetch(1)
    plan.arrived(0, _at(0, 5, total=10, processed=4, status="running"))

    assert (plan.total, plan.processed, plan.status) == (10, 4, "running")


def test_page_after_the_end_delivers_nothing() -> None:
    plan = ReadPlan(0, stop=5)
    plan.to_fetch(1)
    plan.arrived(0, _at(0, 5))

    assert plan.arrived(5, _at(5, 5)) == []


# -- ReadPlan: failed requests -------------------------------------------------


def test_failed_read_ahead_request_is_not_needed() -> None:
    plan = _after_first_page()
    plan.to_fetch(3)

    assert plan.failed(20) is False
    assert 20 not in plan.in_flight


def test_failed_request_at_the_cursor_is_needed() -> None:
    plan = _after_first_page()
    plan.to_fetch(3)

    assert plan.failed(10) is True


def test_failed_read_ahead_offset_is_asked_again_when_reached() -> None:
    plan = _after_first_page(window=2)
    plan.to_fetch(2)
    plan.failed(20)
    plan.arrived(10, _at(10, 10))

    assert plan.to_fetch(1) == [20]


# -- ReadPlan: follow mode -----------------------------------------------------


def _following_at(cursor: int, *, window: int = 4) -> ReadPlan:
    """A follow-mode plan that has delivered items 0 to ``cursor`` of a running batch."""
    plan = ReadPlan(0, follow=True, window=window)
    plan.to_fetch(1)
    plan.arrived(0, _at(0, cursor, status="running"))
    return plan


def test_follow_empty_page_of_a_running_batch_waits() -> None:
    plan = _following_at(10)
    plan.to_fetch(1)

    assert plan.arrived(10, _page([], status="running")) == []
    assert plan.waiting
    assert not plan.done
    assert plan.to_fetch(4) == []


def test_follow_resume_fetches_the_cursor_again() -> None:
    plan = _following_at(10)
    plan.to_fetch(1)
    plan.arrived(10, _page([], status="running"))

    plan.resume()

    assert not plan.waiting
    assert plan.to_fetch(1) == [10]


def test_follow_delivers_items_that_appeared_after_waiting() -> None:
    plan = _following_at(10)
    plan.to_fetch(1)
    plan.arrived(10, _page([], status="running"))
    plan.resume()
    plan.to_fetch(1)

    assert _ids(plan.arrived(10, _at(10, 3, status="running"))) == _expected(10, 13)


@pytest.mark.parametrize("status", ["completed", "FAILED", " done ", "cancelled"])
def test_follow_empty_page_of_a_finished_batch_ends_the_read(status: str) -> None:
    plan = _following_at(10)
    plan.to_fetch(1)

    plan.arrived(10, _page([], status=status))

    assert plan.ended is ReadEnd.EMPTY_PAGE
    assert not plan.waiting


def test_follow_total_reached_ends_the_read_of_a_running_batch() -> None:
    plan = ReadPlan(0, follow=True)
    plan.to_fetch(1)

    plan.arrived(0, _at(0, 10, total=10, status="running"))

    assert plan.ended is ReadEnd.TOTAL


def test_follow_empty_read_ahead_page_is_not_the_end() -> None:
    plan = _following_at(10)
    plan.to_fetch(2)
    plan.arrived(20, _page([], status="running"))

    deliveries = plan.arrived(10, _at(10, 10, status="running"))

    assert _ids(deliveries) == _expected(10, 20)
    assert not plan.done
    assert not plan.waiting
    assert plan.to_fetch(1) == [20]


def test_follow_empty_read_ahead_page_stops_the_read_ahead_until_items_come() -> None:
    plan = _following_at(10, window=6)
    assert plan.to_fetch(4) == [10, 20, 30, 40]
    plan.arrived(30, _page([], status="running"))

    # The batch ends before 30 for now: nothing is asked past what is in flight.
    plan.arrived(40, _page([], status="running"))
    assert plan.to_fetch(6) == []

    deliveries = plan.arrived(10, _at(10, 10, status="running"))

    assert _ids(deliveries) == _expected(10, 20)
    # Items came: the read-ahead starts again, from the cursor on.
    assert plan.to_fetch(6) == [30, 40, 50, 60, 70]


def test_nothing_is_asked_past_an_empty_read_ahead_page() -> None:
    plan = ReadPlan(0, window=8)
    plan.to_fetch(1)
    plan.arrived(0, _at(0, 10, total=1_000, status="running"))
    assert plan.to_fetch(4) == [10, 20, 30, 40]

    plan.arrived(30, _page([], total=1_000, status="running"))

    assert plan.to_fetch(8) == []
    plan.arrived(10, _at(10, 10, total=1_000, status="running"))
    plan.arrived(20, _at(20, 10, total=1_000, status="running"))
    assert plan.done
    assert plan.ended is ReadEnd.EMPTY_PAGE


def test_the_read_ahead_resumes_once_a_longer_page_reaches_past_an_empty_one() -> None:
    plan = ReadPlan(0, window=8)
    plan.to_fetch(1)
    plan.arrived(0, _at(0, 10, status="running"))
    assert plan.to_fetch(4) == [10, 20, 30, 40]
    plan.arrived(30, _page([], status="running"))
    plan.arrived(40, _page([], status="running"))
    plan.arrived(10, _at(10, 10, status="running"))
    # The batch grew: the page at 20 reaches past the empty page at 30.
    plan.arrived(20, _at(20, 15, status="running"))
    assert not plan.done
    assert plan.to_fetch(4) == [35]

    plan.arrived(35, _at(35, 15, status="running"))

    assert plan.cursor == 50
    assert plan.to_fetch(4) == [50, 65, 80, 95]


def test_a_page_of_another_length_before_the_end_marks_the_server_uneven() -> None:
    plan = ReadPlan(0, window=8)
    plan.to_fetch(1)
    plan.arrived(0, _at(0, 10, total=100))
    plan.to_fetch(3)
    plan.arrived(10, _at(10, 10, total=100))
    assert not plan.uneven

    plan.arrived(20, _at(20, 4, total=100))

    assert plan.uneven


def test_a_short_last_page_does_not_mark_the_server_uneven() -> None:
    plan = ReadPlan(0, window=8)
    plan.to_fetch(1)
    plan.arrived(0, _at(0, 10, total=14))
    plan.to_fetch(2)

    plan.arrived(10, _at(10, 4, total=14))

    assert plan.done
    assert not plan.uneven


def test_follow_resume_does_not_ask_for_an_offset_already_in_flight() -> None:
    plan = _following_at(10, window=4)
    assert plan.to_fetch(4) == [10, 20, 30, 40]
    plan.arrived(40, _page([], status="running"))
    plan.arrived(10, _page([], status="running"))
    assert plan.in_flight == {20, 30}
    plan.resume()

    requested = plan.to_fetch(4)

    assert not {20, 30} & set(requested)
    assert len(requested) + 2 <= 4


# -- ReadPlan: servers that contradict themselves ------------------------------


def test_server_that_ignores_from_is_a_pagination_error() -> None:
    plan = _after_first_page()
    plan.to_fetch(1)

    with pytest.raises(PaginationError, match="ignore `from`"):
        plan.arrived(10, _at(0, 10))


def test_repeated_job_id_is_a_pagination_error_naming_it_and_both_offsets() -> None:
    plan = _after_first_page()
    plan.to_fetch(1)

    with pytest.raises(PaginationError) as caught:
        plan.arrived(10, _page([10, 11, 12, 3, 14]))

    message = str(caught.value)
    assert "'job-3'" in message
    assert "offset 13" in message
    assert "offset 3" in message


def test_repeated_job_id_within_one_page_is_a_pagination_error() -> None:
    plan = ReadPlan(0)
    plan.to_fetch(1)

    with pytest.raises(PaginationError, match="'job-1'"):
        plan.arrived(0, _page([0, 1, 1]))


def test_items_without_job_id_are_not_checked_for_repeats() -> None:
    plan = ReadPlan(0, stop=4)
    plan.to_fetch(1)
    anonymous = BatchScrapeSitemapData(success=False, error="unreachable")
    page = BatchScrapeSitemapStatusResponse(data=(anonymous, anonymous))
    plan.arrived(0, page)
    plan.to_fetch(1)
    different = BatchScrapeSitemapData(success=False, error="timeout")
    deliveries = plan.arrived(2, BatchScrapeSitemapStatusResponse(data=(different, anonymous)))

    assert len(deliveries) == 1
    assert plan.ended is ReadEnd.STOP


def test_total_that_shrinks_is_a_pagination_error() -> None:
    plan = _after_first_page(total=30)
    plan.to_fetch(1)

    with pytest.raises(PaginationError, match="shrank from 30 to 20"):
        plan.arrived(10, _at(10, 10, total=20))


def test_total_that_grows_is_accepted() -> None:
    plan = _after_first_page(total=20)
    plan.to_fetch(1)
    plan.arrived(10, _at(10, 10, total=30))

    assert (plan.total, plan.done) == (30, False)


# -- ReadPlan: properties over any server --------------------------------------

_MAX_FAILURES = 30


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_page_sizes_and_order_deliver_every_item_once_in_order(data: st.DataObject) -> None:
    """Every item from start to stop, once and in order, whatever the pages and the order."""
    n = data.draw(st.integers(0, 300), label="items")
    start = data.draw(st.integers(0, n + 5), label="start")
    stop = data.draw(st.none() | st.integers(0, n + 30), label="stop")
    limit = data.draw(st.integers(1, 8), label="limit")
    window = data.draw(st.integers(limit, 3 * limit), label="window")
    send_total = data.draw(st.booleans(), label="send_total")
    fail_read_ahead = data.draw(st.booleans(), label="fail_read_ahead")
    guess = data.draw(st.none() | st.integers(1, 25), label="guess")
    plan = ReadPlan(
        start, stop=stop, window=window, guess=None if guess is None else PageSizeGuess(guess)
    )
    outstanding: list[int] = []
    delivered: list[str] = []
    held: list[Delivery] = []  # delivered by the plan, not yet taken by the caller
    failures = steps = 0

    while True:
        outstanding += plan.to_fetch(limit)
        assert len(outstanding) <= limit
        assert len(outstanding) + len(plan._ready) <= window
        # Pages held for a slow caller stop the requests: the window holds.
        assert len(outstanding) + len(plan._ready) + len(held) <= window + 1
        if held and (not outstanding or data.draw(st.booleans(), label="take")):
            delivered += _ids([held.pop(0)])
            plan.handing_out = len(held)
            continue
        if plan.done:
            break
        assert outstanding, f"the plan stalled at {plan.cursor}"
        steps += 1
        assert steps <= 3 * (n + 2) + 2 * window + 2 * failures, "the read does not terminate"
        offset = outstanding.pop(data.draw(st.integers(0, len(outstanding) - 1)))
        if (
            fail_read_ahead
            and offset != plan.cursor
            and failures < _MAX_FAILURES
            and data.draw(st.booleans(), label="fail")
        ):
            failures += 1
            assert plan.failed(offset) is False
            continue
        length = data.draw(st.integers(1, 25), label="page length")
        page = _page(range(offset, min(n, offset + length)), total=n if send_total else None)
        skipped = 0
        if data.draw(st.booleans(), label="trim"):
            page, skipped = _as_fetched(plan, offset, page)
        deliveries = plan.arrived(offset, page, skipped=skipped)
        for delivery in deliveries:
            assert delivery.offset == start + len(delivered) + sum(len(d.page.data) for d in held)
            held.append(delivery)
        plan.handing_out = len(held)

    delivered += _ids(held)
    end = n if stop is None else min(stop, n)
    assert delivered == _expected(start, end)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 120),
    page_size=st.integers(1, 25),
    limit=st.integers(1, 8),
    send_total=st.booleans(),
    guess=st.sampled_from(["none", "right", "wrong"]),
    wrong=st.integers(1, 25),
)
def test_in_order_answers_of_a_fixed_page_size_need_few_requests(
    n: int, page_size: int, limit: int, send_total: bool, guess: str, wrong: int
) -> None:
    """With steady pages answered in order, the read asks each page once, plus a few beyond."""
    size = {"none": None, "right": page_size, "wrong": wrong}[guess]
    plan = ReadPlan(0, window=2 * limit, guess=None if size is None else PageSizeGuess(size))
    outstanding: list[int] = []
    requests = 0
    delivered: list[str] = []

    while True:
        new = plan.to_fetch(limit)
        requests += len(new)
        outstanding += new
        if plan.done:
            break
        offset = min(outstanding)
        outstanding.remove(offset)
        page = _page(range(offset, min(n, offset + page_size)), total=n if send_total else None)
        delivered += _ids(plan.arrived(offset, page))

    pages = -(-n // page_size)
    assert delivered == _expected(0, n)
    assert len(set(outstanding)) == len(outstanding)
    if size is None:
        assert requests <= pages + (0 if send_total and n else 2 * limit + 1)
    elif size == page_size:
        # Only the first round, planned before `total` is known, may ask too far.
        assert requests <= pages + (limit - 1 if send_total and n else 2 * limit + 1)
    else:
        assert requests <= pages + 4 * limit + 1


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_follow_over_a_growing_batch_delivers_every_item_once_in_order(
    data: st.DataObject,
) -> None:
    """A running batch that grows while it is read: every item once, in order, within limits."""
    final_size = data.draw(st.integers(0, 150), label="final size")
    available = data.draw(st.integers(0, final_size), label="available at first")
    limit = data.draw(st.integers(1, 8), label="limit")
    window = data.draw(st.integers(limit, 3 * limit), label="window")
    send_total = data.draw(st.booleans(), label="send_total")
    guess = data.draw(st.none() | st.integers(1, 25), label="guess")
    finished = False
    plan = ReadPlan(
        0, follow=True, window=window, guess=None if guess is None else PageSizeGuess(guess)
    )
    outstanding: list[int] = []
    delivered: list[str] = []
    steps = 0

    while True:
        outstanding += plan.to_fetch(limit)
        assert len(outstanding) <= limit
        assert len(set(outstanding)) == len(outstanding), "an offset is asked twice at once"
        assert len(outstanding) + len(plan._ready) <= window
        if plan.done:
            break
        steps += 1
        assert steps <= 20 * (final_size + 2), "the read does not terminate"
        if plan.waiting:
            # Time passes while the read waits: the batch grows, or finally finishes.
            if available < final_size:
                available = min(final_size, available + data.draw(st.integers(1, 10)))
            else:
                finished = True
            plan.resume()
            continue
        assert outstanding, f"the plan stalled at {plan.cursor}"
        if data.draw(st.booleans(), label="grow"):
            available = min(final_size, available + data.draw(st.integers(0, 10)))
        offset = outstanding.pop(data.draw(st.integers(0, len(outstanding) - 1)))
        length = data.draw(st.integers(1, 25), label="page length")
        page = _page(
            range(offset, min(available, offset + length)),
            total=final_size if send_total else None,
            status="completed" if finished else "running",
        )
        skipped = 0
        if data.draw(st.booleans(), label="trim"):
            page, skipped = _as_fetched(plan, offset, page)
        for delivery in plan.arrived(offset, page, skipped=skipped):
            assert delivery.offset == len(delivered)
            delivered += _ids([delivery])

    assert delivered == _expected(0, final_size)


# -- review findings: ids that identify nothing, and runs of alike items ---------------


def _idless(
    offset: int, count: int, *, job_id: str | None = None
) -> BatchScrapeSitemapStatusResponse:
    """A page of alike failed items whose metadata carries no usable job id."""
    metadata = None if job_id is None else BatchScrapeSitemapMetadata(job_id=job_id)
    item = BatchScrapeSitemapData(metadata=metadata, success=False, error_code="FETCH_FAILED")
    return BatchScrapeSitemapStatusResponse(data=(item,) * count)


def test_empty_job_ids_are_not_taken_for_repeats() -> None:
    plan = ReadPlan(0)
    plan.to_fetch(1)
    assert len(plan.arrived(0, _idless(0, 3, job_id=""))[0].page.data) == 3


def test_pages_of_one_alike_item_may_follow_each_other() -> None:
    plan = ReadPlan(0)
    delivered = 0
    for offset in range(3):
        plan.to_fetch(1)
        delivered += sum(len(d.page.data) for d in plan.arrived(offset, _idless(offset, 1)))
    assert delivered == 3


def test_a_long_run_of_alike_pages_is_a_server_ignoring_from() -> None:
    plan = ReadPlan(0)
    for offset in range(3):
        plan.to_fetch(1)
        plan.arrived(offset, _idless(offset, 1))
    plan.to_fetch(1)
    with pytest.raises(PaginationError, match="ignore `from`"):
        plan.arrived(3, _idless(3, 1))


def test_following_from_the_end_of_a_batch_ends_at_once() -> None:
    plan = ReadPlan(20, follow=True)
    plan.to_fetch(1)
    empty = BatchScrapeSitemapStatusResponse(total=20, status="running")
    assert plan.arrived(20, empty) == []
    assert plan.ended is ReadEnd.TOTAL
    assert not plan.waiting


def test_pages_being_handed_out_count_against_the_window() -> None:
    plan = ReadPlan(0, window=4)
    plan.to_fetch(4)
    plan.arrived(0, _page(range(10), total=1000))
    plan.handing_out = 1
    assert len(plan.to_fetch(4)) == 3
    plan.handing_out = 3
    assert plan.to_fetch(4) == []


def test_pages_waiting_for_the_caller_stop_even_the_cursor_request() -> None:
    plan = ReadPlan(0, window=2)
    assert plan.to_fetch(1) == [0]
    deliveries = plan.arrived(0, _at(0, 10, total=1000))
    plan.handing_out = len(deliveries)
    assert plan.to_fetch(1) == [10]
    plan.handing_out += len(plan.arrived(10, _at(10, 10, total=1000)))

    # Two pages wait for the caller: nothing more is asked until it takes one.
    assert plan.to_fetch(1) == []
    plan.handing_out -= 1
    assert plan.to_fetch(1) == [20]


def test_good_pages_before_a_repeat_are_handed_out_then_the_read_fails() -> None:
    plan = ReadPlan(0, window=8)
    plan.to_fetch(1)
    plan.in_flight |= {10, 20}
    assert plan.arrived(20, _page([10, 11])) == []
    assert plan.arrived(10, _at(10, 10)) == []

    deliveries = plan.arrived(0, _at(0, 10))

    assert _ids(deliveries) == _expected(0, 20)
    assert plan.contradiction is not None
    assert "'job-10'" in str(plan.contradiction)
    assert plan.to_fetch(4) == []
    with pytest.raises(PaginationError):
        plan.arrived(30, _at(30, 10))


# -- the memory of job ids ---------------------------------------------------------------


def _read_in_order(plan: ReadPlan, first: int, end: int, size: int = 100) -> None:
    for offset in range(first, end, size):
        assert plan.to_fetch(1) == [offset]
        plan.arrived(offset, _at(offset, min(size, end - offset)))


def test_a_repeat_of_any_of_the_last_2048_job_ids_is_caught() -> None:
    plan = ReadPlan(0, window=1)
    _read_in_order(plan, 0, 10_000)
    assert plan.to_fetch(1) == [10_000]

    # job-7952 is 2,048 ids back.
    with pytest.raises(PaginationError, match="job 'job-7952' at offset 10001"):
        plan.arrived(10_000, _page([10_000, 7_952]))


def test_the_memory_of_job_ids_stays_bounded() -> None:
    plan = ReadPlan(0, window=1)
    _read_in_order(plan, 0, 50_000)
    assert 2048 <= len(plan._recent) <= 4096
