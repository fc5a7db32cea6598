"""The plan of one read: what to fetch, what arrived, what to hand out, and when it ends. No I/O.

The end-of-read rules
=====================

A read yields every item of a batch exactly once, in offset order, and ends:

1. at ``stop``, when the caller gave one (items past it are not yielded);
2. when the offset reaches ``total``, when the server sends one;
3. when the page at the read's offset comes back with no items (in follow
   mode, only once the batch's status is final; before, it waits and asks
   again).

``processed`` never ends a read: it counts *successful* scrapes only, and
failed sitemap jobs are items too. A page shorter than the one before is
not, by itself, the end: the offset after its last item is asked for.

What a read asks for
====================

A read asks only for items it knows it still needs:

- Its first request goes alone: it shows the page size and ``total``.
- Then it reads ahead at ``start + k * page_size``, aligned to the server's
  pages, but only below ``stop`` and below the end of what is known to
  exist: ``total`` once the batch is finished, and while it runs, its
  ``processed`` jobs (`BatchView.known_end`). Without a ``total``,
  nothing is known, and the read-ahead past the end costs at most the
  requests that were already in flight when the end showed.
- A page shorter than the page size leaves a gap, asked for next.
- A request's retries are counted where they happen, in the retry loop
  (``_retry.retrying``); an offset whose request gave up is never asked for
  again: its error is raised when the read reaches it, after every item
  before it, and until then the failure holds its place in the window.
- In follow mode, a short or empty page at the read's offset of a running
  batch means the read has caught up (a short one, once the offset reaches
  what is known to exist): it is `waiting`, and asks again only when the
  runner calls `poll` after the poll interval, or at once if a page that
  was still in flight shows more. From then on, and after an empty page
  past its offset, it asks for its offset alone; it reads ahead again once
  a full page comes there.

The classes
===========

`ReadPlan` owns a read's state and applies the rules above: it schedules
offsets (`next_offset`), takes what came back (`arrived`, `gave_up`), and
judges each page that continues the cursor against the end-of-read rules. It
keeps its parts apart:

- `InFlight`: the requests in flight, and how many the read has sent;
- `ReorderBuffer` (``_reorder.py``): pages and failures ahead of the
  cursor, the queue for the caller and the page being handed out, and the
  error raised after the pages before it;
- `PageSize`: the page size a read infers from its pages, and the window
  that the pages' bodies leave;
- `Front` and `CursorPage`: where a follow-mode read stands against a
  running batch, and what the last page at the cursor was;
- `BatchView` (``_batch.py``): what the read knows of its batch.

The runner in ``_readahead.py`` calls only the verbs of `Plan`, which
`ReadPlan` implements.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, Final, NamedTuple, Protocol

import attrs

from ._batch import BatchView
from ._endpoints import Page
from ._reorder import Delivery, ReorderBuffer
from ._repeats import RepeatGuard
from .errors import BlatError, PaginationError

__all__ = [
    "BatchState",
    "CursorPage",
    "Delivery",
    "Front",
    "InFlight",
    "PageSize",
    "Plan",
    "ReadEnd",
    "ReadPlan",
    "end_of_read",
]

_Page = Page

BatchState = tuple[int | None, int | None, str | None]
"""What a read knows of its batch: ``processed``, ``total`` and ``status``."""


class ReadEnd(enum.Enum):
    """Why a read ended."""

    STOP = "stop"
    """The offset reached the caller's ``stop``."""
    TOTAL = "total"
    """The offset reached the batch's ``total``."""
    EMPTY_PAGE = "empty page"
    """A page came back with no items."""


def end_of_read(
    *, next_offset: int, page_items: int, total: int | None, stop: int | None
) -> ReadEnd | None:
    """Decide whether a read is over after a page.

    ``next_offset`` is the offset after the page's items, ``page_items`` how
    many items the page held. Returns why the read ended, or ``None`` to go
    on at ``next_offset``. In follow mode, an empty page of a running batch
    is not the end: the read waits instead (see `ReadPlan`).
    """
    if stop is not None and next_offset >= stop:
        return ReadEnd.STOP
    if total is not None and next_offset >= total:
        return ReadEnd.TOTAL
    if page_items == 0:
        return ReadEnd.EMPTY_PAGE
    return None


class Plan(Protocol):
    """The verbs the runner (``_readahead.py``) calls on a read's plan, and nothing else.

    The runner reports each offset `next_offset` returned with `arrived` or
    `gave_up`, unless the read is closed first.
    """

    @property
    def cursor(self) -> int:
        """The offset of the next item to hand out."""
        ...

    @property
    def ended(self) -> ReadEnd | None:
        """Why the read ended, once it has."""
        ...

    @property
    def done(self) -> bool:
        """Whether the read has ended."""
        ...

    @property
    def waiting(self) -> bool:
        """Caught up with a running batch, nothing in flight: wait, then `poll`."""
        ...

    def next_offset(self, limit: int) -> int | None:
        """The next offset to request, with at most ``limit`` in flight; ``None``: nothing now."""
        ...

    def arrived(self, offset: int, page: _Page, *, size: int = 0) -> None:
        """Take in the page fetched at ``offset``, whose body was ``size`` bytes long."""
        ...

    def gave_up(self, offset: int, error: BlatError) -> None:
        """Take in that the request at ``offset`` failed for good."""
        ...

    def next_delivery(self) -> Delivery | None:
        """The next page for the caller, or ``None``; raises the error that ends the read."""
        ...

    def handed_out(self) -> None:
        """The caller is done with the page `next_delivery` returned."""
        ...

    def poll(self) -> None:
        """After waiting on a running batch, ask again."""
        ...

    def batch_state(self) -> BatchState:
        """What the read knows of its batch, for `ReadProgress`."""
        ...


class Front(enum.Enum):
    """Where a read stands against the end of what its batch has shown.

    Only a follow-mode read leaves `READING`.
    """

    READING = "reading"
    """It reads ahead, as far as its window and what is known to exist allow."""
    CAUGHT_UP = "caught up"
    """It has read all a running batch has shown for now: it asks for nothing until `poll`."""
    PROBING = "probing"
    """It asks for the cursor alone until a full page comes."""


class CursorPage(enum.Enum):
    """What the last page the read took at its cursor was."""

    FULL = "full"
    """A full page, or the read has taken no page yet."""
    SHORT = "short"
    """A page with items, not known to be full."""
    EMPTY = "empty"
    """A page with no new items."""


class _Sent(NamedTuple):
    """A request in flight."""

    end: int
    """The offset past the page it asks for, as far as the plan knows the page size."""
    order: int
    """When it was sent, counting the read's requests from 1."""
    total: int | None
    """The batch's ``total`` that the read knew when it was sent."""


class InFlight(dict[int, _Sent]):
    """A read's requests in flight, by offset, and how many it has sent.

    A dict of offset to `_Sent`, so that counting and taking out a request
    (`len`, `pop`) are the dict's own.
    """

    __slots__ = ("_sent",)

    def __init__(self) -> None:
        super().__init__()
        self._sent = 0

    def send(self, offset: int, end: int, total: int | None) -> None:
        """Count the request at ``offset``, asking for items up to ``end``, in flight."""
        self._sent += 1
        self[offset] = _Sent(end, self._sent, total)

    def span_end(self, offset: int) -> int | None:
        """The end of the page the request at ``offset`` asks for; ``None``: no request there."""
        sent = self.get(offset)
        return None if sent is None else sent.end

    def inner_span_end(self, offset: int) -> int | None:
        """The furthest end of the requests that start before ``offset`` and cover it."""
        ends = [s.end for o, s in self.items() if o < offset < s.end]
        return max(ends, default=None)


class PageSize:
    """The page size a read infers from its pages, and the window their bodies leave."""

    __slots__ = ("_largest_body", "_trusted", "_window_now", "size", "window", "window_bytes")

    def __init__(self, window: int, window_bytes: int | None) -> None:
        self.window: Final = window
        """How many pages may be in flight, buffered, or being handed out, at once."""
        self.window_bytes: Final = window_bytes
        """How many bytes of page bodies those pages may hold; ``None``: no bound."""
        self.size: int | None = None
        """The server's page size, once a page shows it; until then, the longest page seen."""
        self._trusted = False
        """Whether a page stopped short of items known to exist, showing the page size."""
        self._largest_body = 0
        self._window_now = window
        """`effective_window`, worked out again only when the largest body grows."""

    def note_body(self, size: int) -> None:
        """Take in the length in bytes of a page's body."""
        if size > self._largest_body:
            self._largest_body = size
            if self.window_bytes is not None:
                self._window_now = max(2, min(self.window, self.window_bytes // size))

    def note(self, offset: int, count: int, known_end: int | None) -> bool:
        """Take in a page of ``count`` items at ``offset``; return whether it was full.

        ``count`` is more than 0, and ``known_end`` is the offset below which
        items are known to exist (`BatchView.known_end`). A page is full once
        the page size is trusted and the page is as long as the longest one.
        """
        if known_end is None or offset + count < known_end:
            # The page stopped short of items that exist: it shows the page size.
            self._trusted = True
        if self.size is None or count > self.size:
            self.size = count
        return self._trusted and count >= self.size

    def effective_window(self) -> int:
        """The page window, lowered so that the pages held fit in ``window_bytes``."""
        return self._window_now


class ReadPlan:
    """One read's state and its rules: which offsets to request, and what to hand out.

    The runner asks `next_offset` what to request, reports each request's
    outcome with `arrived` or `gave_up`, takes pages with `next_delivery`,
    and says when the caller is done with one with `handed_out`. The read is
    over when `ended` is set; in follow mode, `waiting` means it has caught
    up with a running batch, and `poll` lets it ask again. Whatever order
    pages arrive in and whatever length they have, items are handed out once
    and in order.
    """

    def __init__(
        self,
        start: int,
        stop: int | None = None,
        *,
        follow: bool = False,
        window: int = 2,
        window_bytes: int | None = None,
    ) -> None:
        self.start: Final = start
        self.stop: Final = stop
        self.follow: Final = follow
        self.batch = BatchView()
        self.cursor = start
        """The offset of the next item to hand out."""
        self.ended: ReadEnd | None = None
        self._sizes = PageSize(window, window_bytes)
        self._requests = InFlight()
        self._buffer = ReorderBuffer()
        self._front = Front.READING
        self._at_cursor = CursorPage.FULL
        self._repeats = RepeatGuard()
        self._reach = start
        """No request, page or failure the read holds covers this offset or any past it."""
        self._covered_to = start
        """Every offset from the cursor up to this one is covered: the next walk starts here.

        Coverage shrinks only where a page came back with another length than
        its request asked for, which resets it to the cursor. A failure covers
        what its request did; a failure the cursor passes leaves uncovered
        only offsets from the cursor, which `next_offset` asks for first.
        """
        if stop is not None and stop <= start:
            self.ended = ReadEnd.STOP

    # -- state ---------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Whether the read has ended."""
        return self.ended is not None

    @property
    def page_size(self) -> int | None:
        """The server's page size, once a page shows it; until then, the longest page seen."""
        return self._sizes.size

    @property
    def held(self) -> int:
        """Pages the read holds: in flight, buffered, queued or being handed out, and failed.

        A failed page holds its place until the read reaches it and raises its
        error, so that failures, too, fill the window and stop the read-ahead.
        """
        return len(self._requests) + self._buffer.held

    @property
    def waiting(self) -> bool:
        """Caught up with a running batch, nothing in flight: wait, then `poll`."""
        return (
            self._front is Front.CAUGHT_UP
            and not len(self._requests)
            and self._buffer.error is None
        )

    def effective_window(self) -> int:
        """The page window, lowered so that the pages held fit in ``window_bytes``."""
        return self._sizes.effective_window()

    def batch_state(self) -> BatchState:
        """What the read knows of its batch: ``processed``, ``total`` and ``status``."""
        batch = self.batch
        return batch.processed, batch.total, batch.status

    # -- what to fetch -------------------------------------------------------

    def next_offset(self, limit: int) -> int | None:
        """Return the next offset to request and count it in flight; ``None``: nothing now.

        ``limit`` is how many requests the read may have in flight.
        """
        # Nothing while the read has ended, failed, or caught up with a running batch.
        if (
            self.ended is not None
            or self._buffer.error is not None
            or self._front is Front.CAUGHT_UP
            or len(self._requests) >= limit
        ):
            return None
        if self._span_end(self.cursor) is None:
            return self._send(self.cursor) if self._may_ask_cursor() else None
        if not self._reads_ahead():
            return None
        offset = self._first_uncovered(self._bound())
        return None if offset is None else self._send(offset)

    def _may_ask_cursor(self) -> bool:
        """Whether the cursor, which nothing covers, may be asked for now.

        The cursor is asked for even in a full window, or pages buffered past
        a gap would wait forever; but not while pages wait for the caller, who
        frees the window by taking them.
        """
        return self.held < self.effective_window() or not self._buffer.with_caller

    def _reads_ahead(self) -> bool:
        """Whether the read may ask past the cursor: page size known, not probing, window open."""
        return (
            self._sizes.size is not None
            and self._front is Front.READING
            and self.held < self.effective_window()
        )

    def _bound(self) -> int | None:
        """The offset no read-ahead reaches, or ``None``: nothing bounds it.

        That is ``stop``, the end of what is known to exist, or the offset of
        an empty page that arrived (nothing is known past it).
        """
        bound = self.batch.known_end()
        if self.stop is not None and (bound is None or self.stop < bound):
            bound = self.stop
        empty = self._buffer.empty_offsets()
        if empty:
            first_empty = min(empty)
            if bound is None or first_empty < bound:
                bound = first_empty
        return bound

    def _first_uncovered(self, bound: int | None) -> int | None:
        """The first offset from the cursor that no request or page covers, below ``bound``."""
        # Resumed where the last walk stopped, not at the cursor: each call
        # steps over the span it last asked for, not over every span of the
        # window again. Where it stops, `_span_end` still looks inside each
        # request and page held, once.
        offset = max(self.cursor, self._covered_to)
        while bound is None or offset < bound:
            end = self._span_end(offset)
            if end is None:
                break
            offset = end  # an empty page ends no span: it is in the bound instead
        self._covered_to = offset
        return offset if bound is None or offset < bound else None

    def _span_end(self, offset: int) -> int | None:
        """The end of what a request, a page or a failure covers from ``offset``; ``None``: nothing.

        An empty page covers nothing: its end is its own offset.
        """
        end = self._requests.span_end(offset)
        if end is None:
            end = self._buffer.span_end(offset)
        if end is not None or offset >= self._reach:
            return end
        # Off the page grid (a gap, or pages of uneven length): look inside each
        # span. A failed request covers only its own offset.
        inner = (self._requests.inner_span_end(offset), self._buffer.inner_span_end(offset))
        return max((end for end in inner if end is not None), default=None)

    def _send(self, offset: int) -> int:
        end = offset + (self._sizes.size or 1)
        self._requests.send(offset, end, self.batch.total)
        self._reach = max(self._reach, end)
        return offset

    def poll(self) -> None:
        """After waiting on a running batch, ask for the cursor again."""
        if self._front is Front.CAUGHT_UP:
            self._front = Front.PROBING

    # -- what came back ------------------------------------------------------

    def gave_up(self, offset: int, error: BlatError) -> None:
        """Record that the request at ``offset`` failed for good.

        The offset is not asked for again; ``error`` ends the read when the
        read reaches the offset, after every item before it.
        """
        sent = self._requests.pop(offset)
        if self.ended is None:
            self._buffer.fail(offset, sent.end, error)
            self._drain()

    def arrived(self, offset: int, page: _Page, *, size: int = 0) -> None:
        """Record the page fetched at ``offset``, whose body was ``size`` bytes long."""
        sent = self._requests.pop(offset)
        if offset + len(page.data) != sent.end:
            self._covered_to = self.cursor  # a gap, or an overlap: walk again from the cursor
        self._sizes.note_body(size)
        if self.ended is not None or self._buffer.error is not None:
            return
        try:
            self.batch.note(page, offset, order=sent.order, total_then=sent.total)
        except PaginationError as contradiction:
            self._buffer.error = contradiction
            return
        self._hold(offset, page)
        self._drain()

    def _hold(self, offset: int, page: _Page) -> None:
        """Keep a page for the cursor, or learn from it that a running batch ends before it."""
        count = len(page.data)
        if count:
            full = self._sizes.note(offset, count, self.batch.known_end())
            if offset + count > self.cursor:
                self._buffer.keep(offset, page, full=full)
                self._reach = max(self._reach, offset + count)
        elif offset == self.cursor or (offset > self.cursor and not self.follow):
            # The end of the batch when the read reaches it.
            self._buffer.keep_end(offset, page)
        elif offset > self.cursor and self._front is Front.READING:
            # A running batch ends before this offset for now, and the page
            # will be stale by the time the read gets there: ask for the
            # cursor alone until a full page comes.
            self._front = Front.PROBING

    # -- what to hand out ----------------------------------------------------

    def next_delivery(self) -> Delivery | None:
        """Return the next page to hand to the caller, or ``None`` if none is ready.

        Raises the error that ends the read, once every page before it is out.
        """
        return self._buffer.next_delivery()

    def handed_out(self) -> None:
        """The caller is done with the page `next_delivery` returned: it leaves the window."""
        self._buffer.handed_out()

    def _drain(self) -> None:
        """Move the pages that continue the cursor to the queue the caller takes from."""
        while self.ended is None and self._buffer.error is None:
            found = self._buffer.take_at(self.cursor)
            if found is None:
                self._settle()
                return
            self._hand_on(*found)

    def _settle(self) -> None:
        """No page continues the cursor: its failure, if any, is the read's error; judge the front.

        A follow-mode read at the front of a running batch is caught up; one
        that was caught up and no longer is (a page showed more) asks for the
        cursor alone, as after a poll.
        """
        if self._buffer.failures:
            self._buffer.error = self._buffer.failure_at(self.cursor)
        if self.follow and self._at_running_front():
            self._front = Front.CAUGHT_UP
        elif self._front is Front.CAUGHT_UP:
            self._front = Front.PROBING

    def _hand_on(self, offset: int, page: _Page, full: bool) -> None:
        """Queue the new items of the page that continues the cursor, and judge the page.

        A repeated item makes the read's error, after the new items before it.
        """
        items, repeat = self._new_items(offset, page)
        if items:
            if len(items) != len(page.data):
                # Every page model is an attrs class (`Page`), which
                # mypy's attrs plugin cannot see through a protocol.
                page = attrs.evolve(page, data=items)  # type: ignore[misc]
            self._buffer.queue(Delivery(self.cursor, page))
            self.cursor += len(items)
        if repeat is not None:
            # The new items before the repeat are handed out first.
            self._buffer.error = repeat
            return
        self._note_at_cursor(full=full, empty=not items)
        self._judge_end(len(items))
        if self._buffer.error is None:
            self._buffer.discard_passed(self.cursor)

    def _new_items(self, offset: int, page: _Page) -> tuple[Sequence[Any], PaginationError | None]:
        """The page's items from the cursor, up to ``stop`` and to the first one repeated.

        Returns them, and the error of the repeat that cut them, if one did.
        """
        items = page.data[self.cursor - offset :]
        if self.stop is not None:
            items = items[: self.stop - self.cursor]
        if not items:
            return items, None
        new, repeat = self._repeats.check(self.cursor, items, bounded=self.batch.total is not None)
        return items[:new], repeat

    def _note_at_cursor(self, *, full: bool, empty: bool) -> None:
        """Remember what the page taken at the cursor was; a full one sets the read to reading."""
        if full:
            self._at_cursor = CursorPage.FULL
            self._front = Front.READING
        else:
            self._at_cursor = CursorPage.EMPTY if empty else CursorPage.SHORT

    def _judge_end(self, page_items: int) -> None:
        """Apply the end-of-read rules to the page just taken, with its ``page_items`` new items."""
        self.ended = end_of_read(
            next_offset=self.cursor, page_items=page_items, total=self.batch.total, stop=self.stop
        )
        total = self.batch.total
        if self.ended is not ReadEnd.EMPTY_PAGE:
            return
        if self.batch.complete and total is not None:
            self.ended = None
            self._buffer.error = self._missing_items(total)
        elif self.follow and not self.batch.final:
            self.ended = None  # caught up with a running batch: wait, and ask again

    def _missing_items(self, total: int) -> PaginationError:
        """The error of a finished batch whose pages end before its ``total``."""
        return PaginationError(
            f"the batch's status is {self.batch.status!r} and its total {total}, but the page "
            f"at from={self.cursor} is empty: the server lost {total - self.cursor} items, "
            "or its `from` is off"
        )

    def _at_running_front(self) -> bool:
        """Whether a follow-mode read has read all a running batch has shown for now."""
        if self.batch.final or self._at_cursor is CursorPage.FULL:
            return False
        # An empty page says so whatever `processed` claims; asking again at
        # once would only get it again.
        known = self.batch.known_end()
        return self._at_cursor is CursorPage.EMPTY or known is None or self.cursor >= known
