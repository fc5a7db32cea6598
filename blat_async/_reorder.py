"""The reorder buffer and the delivery window of one read. No I/O.

Pages and failures may arrive in any order; `ReorderBuffer` keeps them by
offset until the read's cursor reaches them, then queues the pages for the
caller, in order, and raises the read's error once every page before it is
out. It counts what it holds (`ReorderBuffer.held`) so that the plan can keep
the read inside its window; which offsets to request, and when the read
ends, are the plan's (``_pagination.py``).
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from ._endpoints import Page
from .errors import BlatError

__all__ = ["Delivery", "ReorderBuffer"]

_Page = Page


class Delivery(NamedTuple):
    """A page ready to hand to the caller: its first item's offset and its new items."""

    offset: int
    page: _Page


class ReorderBuffer:
    """What a read holds past its requests: pages and failures ahead of the cursor, and the queue.

    A page arrives with `keep` (or `keep_end`, for an empty one), a failed
    request with `fail`; the plan takes the one that continues the cursor with
    `take_at` or `failure_at`, queues its new items with `queue`, and forgets
    what the cursor passed with `discard_passed`. The caller takes from the
    queue with `next_delivery` and returns with `handed_out`.
    """

    __slots__ = ("_empty", "_failed", "_handing_out", "_out", "_ready", "error")

    def __init__(self) -> None:
        self._ready: dict[int, tuple[_Page, bool]] = {}
        """Pages arrived but not handed out, by offset, with whether each was full."""
        self._empty: set[int] = set()
        """The offsets of the empty pages in ``_ready``."""
        self._failed: dict[int, tuple[int, BlatError]] = {}
        """Offsets whose request gave up: the end of the page asked for, and the error."""
        self._out: deque[Delivery] = deque()
        """Pages queued for the caller, in offset order."""
        self._handing_out = 0
        """Pages `next_delivery` returned that the caller is not done with."""
        self.error: BlatError | None = None
        """The error that ends the read once the pages before it are handed out."""

    @property
    def held(self) -> int:
        """Pages held: buffered, failed, queued or being handed out.

        A failed page holds its place until the read reaches it and raises its
        error, so that failures, too, fill the window and stop the read-ahead.
        """
        return len(self._ready) + len(self._failed) + len(self._out) + self._handing_out

    @property
    def with_caller(self) -> bool:
        """Whether pages are queued for the caller or being handed out."""
        return bool(self._out) or self._handing_out > 0

    @property
    def failures(self) -> int:
        """How many failed requests wait for the cursor."""
        return len(self._failed)

    # -- what arrived --------------------------------------------------------

    def keep(self, offset: int, page: _Page, *, full: bool) -> None:
        """Hold the page fetched at ``offset`` until the cursor reaches it."""
        self._ready[offset] = (page, full)
        if self._empty:
            self._empty.discard(offset)

    def keep_end(self, offset: int, page: _Page) -> None:
        """Hold the empty page fetched at ``offset``, unless a page is held there already."""
        if offset not in self._ready:
            self._ready[offset] = (page, False)
            self._empty.add(offset)

    def fail(self, offset: int, end: int, error: BlatError) -> None:
        """Hold the failure of the request at ``offset``, which asked for items up to ``end``."""
        self._failed[offset] = (end, error)

    def span_end(self, offset: int) -> int | None:
        """The end of what a held page or failure starting at ``offset`` covers; ``None``: none.

        An empty page covers nothing: its end is its own offset.
        """
        ready = self._ready.get(offset)
        if ready is not None:
            return offset + len(ready[0].data)
        failed = self._failed.get(offset)
        return None if failed is None else failed[0]

    def inner_span_end(self, offset: int) -> int | None:
        """The furthest end of the held pages that start before ``offset`` and cover it.

        A failure covers only its own offset: another offset inside its page
        is another request.
        """
        ends = [
            o + len(p.data) for o, (p, _) in self._ready.items() if o < offset < o + len(p.data)
        ]
        return max(ends, default=None)

    def empty_offsets(self) -> list[int]:
        """The offsets of the empty pages held: nothing is known past them."""
        return list(self._empty)

    # -- what continues the cursor -------------------------------------------

    def take_at(self, cursor: int) -> tuple[int, _Page, bool] | None:
        """Remove and return the held page that holds the item at ``cursor``, with its offset.

        The page starting at ``cursor`` comes first; else the one that starts
        before it and reaches past it. ``None``: no page holds it.
        """
        ready = self._ready.pop(cursor, None)
        if ready is not None:
            self._empty.discard(cursor)
            return cursor, *ready
        for offset, (page, full) in sorted(self._ready.items()):
            if offset < cursor < offset + len(page.data):
                del self._ready[offset]
                return offset, page, full
        return None

    def failure_at(self, cursor: int) -> BlatError | None:
        """The error of the request at ``cursor`` that gave up, if one did."""
        failed = self._failed.get(cursor)
        return None if failed is None else failed[1]

    def queue(self, delivery: Delivery) -> None:
        """Queue a page for the caller, after those queued before it."""
        self._out.append(delivery)

    def discard_passed(self, cursor: int) -> None:
        """Forget pages and failures the cursor has passed.

        An empty page at ``cursor`` itself is kept: the read takes it next.
        """
        passed = [o for o, (p, _) in self._ready.items() if o + len(p.data) <= cursor]
        for offset in passed:
            if offset < cursor or self._ready[offset][0].data:
                del self._ready[offset]
                self._empty.discard(offset)
        if self._failed:
            for offset in [o for o in self._failed if o < cursor]:
                del self._failed[offset]

    # -- what to hand out ----------------------------------------------------

    def next_delivery(self) -> Delivery | None:
        """Return the next queued page, or ``None`` if none is queued.

        Raises `error`, once every page queued before it is out.
        """
        if self._out:
            self._handing_out += 1
            return self._out.popleft()
        if self.error is not None:
            raise self.error
        return None

    def handed_out(self) -> None:
        """The caller is done with the page `next_delivery` returned: it leaves the window."""
        self._handing_out -= 1
