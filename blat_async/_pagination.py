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
  batch means the read has caught up: it is `waiting`, and asks again only
  when the runner calls `poll` after the poll interval; it reads ahead again
  once a poll brings a full page.

`ReadPlan` holds every count of a read (in flight, buffered, handed out,
retries per offset); the runner in ``_readahead.py`` only calls its verbs.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Final

import attrs

from ._batch import BatchView
from ._endpoints import Page
from ._repeats import RepeatGuard
from .errors import BlatError, PaginationError

__all__ = ["Delivery", "ReadEnd", "ReadPlan", "end_of_read"]

_Page = Page


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


@attrs.frozen
class Delivery:
    """A page ready to hand to the caller: its first item's offset and its new items."""

    offset: int
    page: _Page


@attrs.frozen
class _Sent:
    """A request in flight."""

    end: int
    """The offset past the page it asks for, as far as the plan knows the page size."""
    order: int
    """When it was sent, counting the read's requests from 1."""
    total: int | None
    """The batch's ``total`` that the read knew when it was sent."""


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
        self.window: Final = window
        """How many pages may be in flight, buffered, or being handed out, at once."""
        self.window_bytes: Final = window_bytes
        """How many bytes of page bodies those pages may hold; ``None``: no bound."""
        self.batch = BatchView()
        self.cursor = start
        """The offset of the next item to hand out."""
        self.page_size: int | None = None
        """The server's page size, once a page shows it; until then, the longest page seen."""
        self.ended: ReadEnd | None = None
        self._trusted_size = False
        """Whether a page stopped short of items known to exist, showing the page size."""
        self._in_flight: dict[int, _Sent] = {}
        self._sent = 0
        self._ready: dict[int, tuple[_Page, bool]] = {}
        """Pages arrived but not handed out, by offset, with whether each was full."""
        self._gave_up: dict[int, tuple[int, BlatError]] = {}
        """Offsets whose request gave up: the end of the page asked for, and the error."""
        self._out: deque[Delivery] = deque()
        self._handing_out = 0
        self._error: BlatError | None = None
        """The error that ends the read once the pages before it are handed out."""
        self._largest_body = 0
        self._short_at_cursor = False
        """Whether the last page handed out at the cursor was short or empty."""
        self._empty_at_cursor = False
        """Whether the last page at the cursor was empty."""
        self._caught_up = False
        self._probing = False
        """Caught up before: only the cursor is asked for until a full page comes."""
        self._repeats = RepeatGuard()
        if stop is not None and stop <= start:
            self.ended = ReadEnd.STOP

    # -- state ---------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Whether the read has ended."""
        return self.ended is not None

    @property
    def held(self) -> int:
        """Pages the read holds: in flight, buffered, queued or being handed out, and failed.

        A failed page holds its place until the read reaches it and raises its
        error, so that failures, too, fill the window and stop the read-ahead.
        """
        return (
            len(self._in_flight)
            + len(self._ready)
            + len(self._gave_up)
            + len(self._out)
            + self._handing_out
        )

    @property
    def waiting(self) -> bool:
        """Caught up with a running batch, nothing in flight: wait, then `poll`."""
        return self._caught_up and not self._in_flight and self._error is None

    def effective_window(self) -> int:
        """The page window, lowered so that the pages held fit in ``window_bytes``."""
        if self.window_bytes is None or not self._largest_body:
            return self.window
        return max(2, min(self.window, self.window_bytes // self._largest_body))

    # -- what to fetch -------------------------------------------------------

    def next_offset(self, limit: int) -> int | None:
        """Return the next offset to request and count it in flight; ``None``: nothing now.

        ``limit`` is how many requests the read may have in flight.
        """
        if self.ended is not None or self._error is not None or self._caught_up:
            return None
        if len(self._in_flight) >= limit:
            return None
        held, window = self.held, self.effective_window()
        if self._span_end(self.cursor) is None:
            # The cursor is asked for even in a full window, or pages buffered
            # past a gap would wait forever; but not while pages wait for the
            # caller, who frees the window by taking them.
            if held < window or not (self._out or self._handing_out):
                return self._send(self.cursor)
            return None
        if self.page_size is None or self._probing or held >= window:
            return None
        offset = self._first_uncovered(self._bound())
        return None if offset is None else self._send(offset)

    def _bound(self) -> int | None:
        """The offset no read-ahead reaches, or ``None``: nothing bounds it.

        That is ``stop``, the end of what is known to exist, or the offset of
        an empty page that arrived (nothing is known past it).
        """
        ends = [end for end in (self.stop, self.batch.known_end()) if end is not None]
        ends += [offset for offset, (page, _) in self._ready.items() if not page.data]
        return min(ends) if ends else None

    def _first_uncovered(self, bound: int | None) -> int | None:
        """The first offset from the cursor that no request or page covers, below ``bound``."""
        offset = self.cursor
        while bound is None or offset < bound:
            end = self._span_end(offset)
            if end is None:
                return offset
            offset = end  # an empty page ends no span: it is in the bound instead
        return None

    def _span_end(self, offset: int) -> int | None:
        """The end of what a request, a page or a failure covers from ``offset``; ``None``: nothing.

        An empty page covers nothing: its end is its own offset.
        """
        sent = self._in_flight.get(offset)
        if sent is not None:
            return sent.end
        ready = self._ready.get(offset)
        if ready is not None:
            return offset + len(ready[0].data)
        failed = self._gave_up.get(offset)
        if failed is not None:
            return failed[0]
        # Off the page grid (a gap, or pages of uneven length): look inside each
        # span. A failed request covers only its own offset: another offset
        # inside its page is another request.
        ends = [s.end for o, s in self._in_flight.items() if o < offset < s.end]
        ends += [
            o + len(p.data) for o, (p, _) in self._ready.items() if o < offset < o + len(p.data)
        ]
        return max(ends, default=None)

    def _send(self, offset: int) -> int:
        self._sent += 1
        stride = self.page_size or 1
        self._in_flight[offset] = _Sent(offset + stride, self._sent, self.batch.total)
        return offset

    def poll(self) -> None:
        """After waiting on a running batch, ask for the cursor again."""
        self._caught_up = False

    # -- what came back ------------------------------------------------------

    def gave_up(self, offset: int, error: BlatError) -> None:
        """Record that the request at ``offset`` failed for good.

        The offset is not asked for again; ``error`` ends the read when the
        read reaches the offset, after every item before it.
        """
        sent = self._in_flight.pop(offset)
        if self.ended is None:
            self._gave_up[offset] = (sent.end, error)
            self._drain()

    def arrived(self, offset: int, page: _Page, *, size: int = 0) -> None:
        """Record the page fetched at ``offset``, whose body was ``size`` bytes long."""
        sent = self._in_flight.pop(offset)
        self._largest_body = max(self._largest_body, size)
        if self.ended is not None or self._error is not None:
            return
        try:
            self.batch.note(page, offset, order=sent.order, total_then=sent.total)
        except PaginationError as contradiction:
            self._error = contradiction
            return
        count = len(page.data)
        if count:
            known = self.batch.known_end()
            if known is None or offset + count < known:
                # The page stopped short of items that exist: it shows the page size.
                self._trusted_size = True
            self.page_size = max(self.page_size or 0, count)
            full = self._trusted_size and count >= self.page_size
            if offset + count > self.cursor:
                self._ready[offset] = (page, full)
        elif offset == self.cursor or (offset > self.cursor and not self.follow):
            # The end of the batch when the read reaches it.
            self._ready.setdefault(offset, (page, False))
        elif offset > self.cursor:
            # A running batch ends before this offset for now, and the page
            # will be stale by the time the read gets there: ask for the
            # cursor alone until a full page comes.
            self._probing = True
        self._drain()

    # -- what to hand out ----------------------------------------------------

    def next_delivery(self) -> Delivery | None:
        """Return the next page to hand to the caller, or ``None`` if none is ready.

        Raises the error that ends the read, once every page before it is out.
        """
        if self._out:
            self._handing_out += 1
            return self._out.popleft()
        if self._error is not None:
            raise self._error
        return None

    def handed_out(self) -> None:
        """The caller is done with the page `next_delivery` returned: it leaves the window."""
        self._handing_out -= 1

    def _page_at_cursor(self) -> tuple[int, _Page, bool] | None:
        cursor = self.cursor
        ready = self._ready.pop(cursor, None)
        if ready is not None:
            return cursor, *ready
        for offset, (page, full) in sorted(self._ready.items()):
            if offset < cursor < offset + len(page.data):
                del self._ready[offset]
                return offset, page, full
        return None

    def _drain(self) -> None:
        """Move the pages that continue the cursor to the queue the caller takes from."""
        while self.ended is None and self._error is None:
            found = self._page_at_cursor()
            if found is None:
                self._error = self._failure_at_cursor()
                self._caught_up = self._at_running_front()
                self._probing = self._probing or self._caught_up
                return
            offset, page, full = found
            items = page.data[self.cursor - offset :]
            if self.stop is not None:
                items = items[: self.stop - self.cursor]
            repeat = None
            if items:
                new, repeat = self._repeats.check(
                    self.cursor, items, bounded=self.batch.total is not None
                )
                items = items[:new]
            if items:
                if len(items) != len(page.data):
                    # Every page model is an attrs class (`Page`), which
                    # mypy's attrs plugin cannot see through a protocol.
                    page = attrs.evolve(page, data=items)  # type: ignore[misc]
                self._out.append(Delivery(self.cursor, page))
                self.cursor += len(items)
            if repeat is not None:
                # The new items before the repeat are handed out first.
                self._error = repeat
                return
            self._short_at_cursor = not full
            self._empty_at_cursor = not items
            self._probing = self._probing and not full
            self.ended = end_of_read(
                next_offset=self.cursor,
                page_items=len(items),
                total=self.batch.total,
                stop=self.stop,
            )
            total = self.batch.total
            if self.ended is ReadEnd.EMPTY_PAGE and self.batch.complete and total is not None:
                self.ended = None
                self._error = self._missing_items(total)
                return
            if self.ended is ReadEnd.EMPTY_PAGE and self.follow and not self.batch.final:
                self.ended = None  # caught up with a running batch: wait, and ask again
            self._discard_passed()

    def _missing_items(self, total: int) -> PaginationError:
        """The error of a finished batch whose pages end before its ``total``."""
        return PaginationError(
            f"the batch's status is {self.batch.status!r} and its total {total}, but the page "
            f"at from={self.cursor} is empty: the server lost {total - self.cursor} items, "
            "or its `from` is off"
        )

    def _failure_at_cursor(self) -> BlatError | None:
        failed = self._gave_up.get(self.cursor)
        return None if failed is None else failed[1]

    def _at_running_front(self) -> bool:
        """Whether a follow-mode read has read all a running batch has shown for now."""
        if not self.follow or self.batch.final or not self._short_at_cursor:
            return False
        # An empty page says so whatever `processed` claims; asking again at
        # once would only get it again.
        known = self.batch.known_end()
        return self._empty_at_cursor or known is None or self.cursor >= known

    def _discard_passed(self) -> None:
        """Forget pages and failures the cursor has passed."""
        cursor = self.cursor
        for offset in [o for o, (p, _) in self._ready.items() if o + len(p.data) <= cursor]:
            if offset < cursor or self._ready[offset][0].data:
                del self._ready[offset]
        for offset in [o for o in self._gave_up if o < cursor]:
            del self._gave_up[offset]
