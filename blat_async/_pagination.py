"""When a batch has been fully read, and which offsets to fetch next: no I/O.

The end-of-read rules
=====================

A read yields every item of a batch exactly once, in offset order, and ends:

1. at ``stop``, when the caller gave one (items past it are not yielded);
2. when a page comes back with no items (in follow mode: when the batch's
   status is final, or otherwise it waits and asks again);
3. when the offset reaches ``total``, when the server sends one.

``processed`` never ends a read: it counts *successful* scrapes only, and
failed sitemap jobs are items too. A page shorter than the one before is
not, by itself, the end: the next offset is asked for.

`end_of_read` states these rules as one function; `ReadPlan` applies them to
pages that may arrive out of order from concurrent requests.
"""

from __future__ import annotations

import enum
from itertools import islice
from typing import Final, NoReturn, cast

import attrs

from .errors import PaginationError
from .models import BatchScrapeSitemapData, BatchScrapeSitemapStatusResponse

__all__ = [
    "FINAL_STATUSES",
    "Delivery",
    "PageSizeGuess",
    "ReadEnd",
    "ReadPlan",
    "end_of_read",
    "is_final_status",
]

FINAL_STATUSES: Final = frozenset(
    {
        "aborted",
        "canceled",
        "cancelled",
        "complete",
        "completed",
        "done",
        "error",
        "expired",
        "failed",
        "failure",
        "finished",
        "success",
        "succeeded",
    }
)
"""Batch statuses after which no more items appear (compared without case)."""

_RECENT_JOB_IDS: Final = 2048
"""How many recent job ids, at least, are remembered to catch a server that repeats itself."""

_UNIFORM_REPEATS: Final = 3
"""Pages of one repeated item, without job id, tolerated in a row before calling it a loop."""


def is_final_status(status: str | None) -> bool:
    """Whether a batch with this status will get no more items."""
    return status is not None and status.strip().lower() in FINAL_STATUSES


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
    on at ``next_offset``.
    """
    if stop is not None and next_offset >= stop:
        return ReadEnd.STOP
    if page_items == 0:
        return ReadEnd.EMPTY_PAGE
    if total is not None and next_offset >= total:
        return ReadEnd.TOTAL
    return None


@attrs.frozen
class Delivery:
    """A page ready to hand to the caller: its first item's offset and its new items."""

    offset: int
    page: BatchScrapeSitemapStatusResponse


@attrs.define
class PageSizeGuess:
    """The page size a read assumes before its first page shows the real one.

    Shared by the reads of one client: a page that stops short of the batch's
    ``total`` shows the server's page size, and the next read starts from it.
    """

    size: int


@attrs.define
class ReadPlan:
    """The state of one read: which offsets to fetch, and what to yield when a page arrives.

    Pages are addressed by offset, so after the first page shows the page
    size, later offsets can be fetched before they are needed; with a
    `PageSizeGuess`, the first round already asks for several pages. Whatever order
    pages arrive in and whatever length they have, items are delivered once
    and in order: a short page leaves a gap that is fetched next, a long page
    overlaps the next one and the overlap is dropped.

    The caller (the read-ahead engine) asks `to_fetch` what to request,
    reports each answer with `arrived` or `failed`, and yields what `arrived`
    returns until `ended` is set. In follow mode, `waiting` means the read
    has caught up with a running batch; `resume` asks again.
    """

    start: int
    stop: int | None = None
    follow: bool = False
    window: int = 2
    """How many pages may be in flight, buffered, or being handed out, at once."""
    guess: PageSizeGuess | None = None
    """The page size to assume until a page shows it; ``None``: ask for the first page alone."""

    cursor: int = attrs.field(init=False)
    """The offset of the next item to deliver."""
    page_size: int | None = attrs.field(default=None, init=False)
    total: int | None = attrs.field(default=None, init=False)
    status: str | None = attrs.field(default=None, init=False)
    processed: int | None = attrs.field(default=None, init=False)
    ended: ReadEnd | None = attrs.field(default=None, init=False)
    waiting: bool = attrs.field(default=False, init=False)
    in_flight: set[int] = attrs.field(factory=set, init=False)
    uneven: bool = attrs.field(default=False, init=False)
    """A page before the batch's end held another number of items than the largest so far."""
    handing_out: int = attrs.field(default=0, init=False)
    """Pages delivered but not yet handed to the caller; they count in the window."""
    _ready: dict[int, BatchScrapeSitemapStatusResponse] = attrs.field(factory=dict, init=False)
    _frontier: int = attrs.field(init=False)
    _recent: dict[str, int] = attrs.field(factory=dict, init=False)
    """Offsets of the job ids delivered lately: at least the last 2,048 of them."""
    _last_data: tuple[BatchScrapeSitemapData, ...] = attrs.field(default=(), init=False)
    _last_offset: int = attrs.field(default=0, init=False)
    _repeats: int = attrs.field(default=0, init=False)
    contradiction: PaginationError | None = attrs.field(default=None, init=False)
    """A repeat found after good pages of the same arrival; raised once those are handed out."""
    _probing: bool = attrs.field(default=False, init=False)
    """Caught up with a running batch: ask for the cursor alone until items come."""

    def __attrs_post_init__(self) -> None:
        self.cursor = self._frontier = self.start
        if self.stop is not None and self.stop <= self.start:
            self.ended = ReadEnd.STOP

    @property
    def done(self) -> bool:
        """Whether the read has ended."""
        return self.ended is not None

    # -- what to fetch -------------------------------------------------------

    def _bound(self) -> int | None:
        """The offset no fetch needs to reach: the lowest of stop, total and an empty page's."""
        bounds = [b for b in (self.stop, self.total) if b is not None]
        if not self.follow:
            # A buffered empty page ends the read when the read reaches it
            # (it is dropped if a page before it reaches past it).
            bounds += [offset for offset, page in self._ready.items() if not page.data]
        return min(bounds) if bounds else None

    def _stride(self) -> int | None:
        """The page size to plan with: the one seen, else the guess."""
        if self.page_size is not None:
            return self.page_size
        return None if self.guess is None else self.guess.size

    def _cursor_covered(self) -> bool:
        if self.cursor in self.in_flight or self.cursor in self._ready:
            return True
        size = self._stride() or 1
        return any(o <= self.cursor < o + size for o in self.in_flight)

    def _covered_until(self, offset: int, stride: int) -> int | None:
        """The end of what a request in flight or a buffered page holds from ``offset``."""
        page = self._ready.get(offset)
        if page is not None and not page.data:
            # An empty page is the end of the batch when the read reaches it.
            return offset + stride
        ends = [o + stride for o in self.in_flight if o <= offset < o + stride]
        ends += [o + len(p.data) for o, p in self._ready.items() if o <= offset < o + len(p.data)]
        return max(ends, default=None)

    def to_fetch(self, limit: int) -> list[int]:
        """Return the offsets to request now, with at most ``limit`` requests in flight."""
        if self.ended is not None or self.waiting or self.contradiction is not None:
            return []
        offsets = []
        held = len(self.in_flight) + len(self._ready) + self.handing_out
        if (
            not self._cursor_covered()
            and len(self.in_flight) < limit
            # The cursor is asked for even in a full window, or pages buffered
            # past a gap would wait forever; but not while pages wait for the
            # caller, who frees the window by taking them.
            and (self.handing_out == 0 or held < self.window)
        ):
            offsets.append(self.cursor)
            self._mark_in_flight(self.cursor)
        stride = self._stride()
        if stride is None or self._probing:
            # Without a page size seen or guessed, nothing can be fetched ahead;
            # past the end of a running batch, guesses would all come back empty.
            return offsets
        bound = self._bound()
        self._frontier = max(self._frontier, self.cursor)
        while (
            len(self.in_flight) < limit
            and len(self.in_flight) + len(self._ready) + self.handing_out < self.window
            and (bound is None or self._frontier < bound)
        ):
            covered = self._covered_until(self._frontier, stride)
            if covered is not None:
                self._frontier = covered
                continue
            offsets.append(self._frontier)
            self._mark_in_flight(self._frontier)
        return offsets

    def _mark_in_flight(self, offset: int) -> None:
        self.in_flight.add(offset)
        self._frontier = max(self._frontier, offset + (self._stride() or 1))

    # -- what came back ------------------------------------------------------

    def failed(self, offset: int) -> bool:
        """Record that the request for ``offset`` failed; return whether the read needs it.

        A failed read-ahead request is only a lost guess: the offset is asked
        for again when the read reaches it. The request for the offset the
        read is waiting on is needed, and its error ends the read.
        """
        self.in_flight.discard(offset)
        return offset == self.cursor and self.ended is None

    def needed_from(self) -> int:
        """The first offset the read still needs: items before it were delivered."""
        return self.cursor

    def arrived(
        self, offset: int, page: BatchScrapeSitemapStatusResponse, *, skipped: int = 0
    ) -> list[Delivery]:
        """Record the page fetched at ``offset``; return what can now be delivered, in order.

        ``skipped`` says how many of the page's leading items were left out
        (see `needed_from`): ``page.data`` starts at ``offset + skipped``.
        """
        self.in_flight.discard(offset)
        if self.contradiction is not None:
            raise self.contradiction
        if self.ended is not None:
            return []
        self._note_batch(offset, page)
        count = skipped + len(page.data)
        if count:
            if (
                self.page_size is not None
                and count != self.page_size
                and (self.total is None or offset + count < self.total)
            ):
                self.uneven = True
            if count > (self.page_size or 0):
                self.page_size = count
                # Offsets planned with a guessed or smaller size are walked
                # again from the cursor: what they left uncovered is fetched.
                self._frontier = self.cursor
            if self.guess is not None and self.total is not None and offset + count < self.total:
                # A page that stops short of the batch's end shows the server's page size.
                self.guess.size = self.page_size or count
            if offset + count > self.cursor:
                first = offset + skipped
                held = self._ready.get(first)
                if held is None or len(held.data) < len(page.data):
                    self._ready[first] = page
        elif offset == self.cursor or (offset > self.cursor and not self.follow):
            # An empty page ends the read when the read reaches its offset.
            # In follow mode an empty read-ahead page is stale by then.
            self._ready[offset] = page
        elif offset > self.cursor:
            # A running batch ends, for now, before this offset: pages further
            # ahead would come back empty too. Only the cursor is asked for
            # until items come, then the read-ahead starts again from there.
            self._probing = True
            self._frontier = self.cursor
        return self._drain()

    def _note_batch(self, offset: int, page: BatchScrapeSitemapStatusResponse) -> None:
        if page.total is not None:
            if self.total is not None and page.total < self.total:
                raise PaginationError(
                    f"the batch's total shrank from {self.total} to {page.total} "
                    f"(page at from={offset}); the server contradicts itself"
                )
            self.total = page.total
        if page.status is not None:
            self.status = page.status
        if page.processed is not None:
            self.processed = page.processed

    def _next_ready(self) -> tuple[int, BatchScrapeSitemapStatusResponse] | None:
        cursor = self.cursor
        page = self._ready.pop(cursor, None)
        if page is not None:
            return cursor, page
        for offset in sorted(self._ready):
            candidate = self._ready[offset]
            if offset < cursor < offset + len(candidate.data):
                del self._ready[offset]
                return offset, candidate
        return None

    def _drain(self) -> list[Delivery]:
        deliveries: list[Delivery] = []
        while self.ended is None and (found := self._next_ready()) is not None:
            offset, page = found
            items = page.data[self.cursor - offset :]
            if self.stop is not None:
                items = items[: self.stop - self.cursor]
            if not items:
                self._on_empty_page()
            else:
                try:
                    self._check_new(self.cursor, items)
                except PaginationError as contradiction:
                    if not deliveries:
                        raise
                    # The pages before the contradiction are good: hand them
                    # out first; the read fails when the caller reaches it.
                    self.contradiction = contradiction
                    return deliveries
                self._probing = False
                deliveries.append(Delivery(self.cursor, attrs.evolve(page, data=items)))
                self.cursor += len(items)
                self.ended = end_of_read(
                    next_offset=self.cursor,
                    page_items=len(items),
                    total=self.total,
                    stop=self.stop,
                )
            self._discard_passed()
        return deliveries

    def _on_empty_page(self) -> None:
        if self.total is not None and self.cursor >= self.total:
            self.ended = ReadEnd.TOTAL
        elif self.follow and not is_final_status(self.status):
            self.waiting = self._probing = True
            self._frontier = self.cursor
        else:
            self.ended = ReadEnd.EMPTY_PAGE

    def _discard_passed(self) -> None:
        """Drop buffered pages whose items have all been delivered."""
        cursor = self.cursor
        for offset in [o for o, p in self._ready.items() if o + len(p.data) <= cursor]:
            if offset < cursor or self._ready[offset].data:
                del self._ready[offset]

    def resume(self) -> None:
        """After waiting on a running batch, ask for the next offset again."""
        self.waiting = False

    # -- hostile servers -----------------------------------------------------

    def _check_new(self, offset: int, items: tuple[BatchScrapeSitemapData, ...]) -> None:
        """Refuse items that were already delivered: the server is repeating itself."""
        # Items without job ids can only be compared whole. A page equal to the
        # one before is a repeat, unless all its items are alike (one failed
        # job after another, with no metadata): those may legitimately follow
        # each other, so only a run of them is taken as a server that ignores
        # `from`, which without job ids or `total` would never end.
        if items == self._last_data:
            self._repeats += 1
            uniform = items.count(items[0]) == len(items)
            if not uniform or self._repeats >= _UNIFORM_REPEATS:
                raise PaginationError(
                    f"the page at from={offset} repeats the {len(items)} items delivered at "
                    f"from={self._last_offset}; the server seems to ignore `from`"
                )
        else:
            self._repeats = 0
        # One pass in C for the usual page, whose ids are all new; the item by
        # item walk below only runs to name a repeat.
        keys = [None if (m := item.metadata) is None else (m.job_id or None) for item in items]
        fresh = dict(zip(keys, range(offset, offset + len(keys)), strict=True))
        fresh.pop(None, None)  # items without an id: compared whole, above
        recent = self._recent
        if len(fresh) != len(keys) - keys.count(None) or not recent.keys().isdisjoint(fresh):
            self._raise_repeat(offset, keys)
        recent.update(cast("dict[str, int]", fresh))
        if len(recent) > 2 * _RECENT_JOB_IDS:
            # Dicts keep insertion order, and no id is inserted twice: the
            # first ones are the oldest.
            self._recent = dict(islice(recent.items(), len(recent) - _RECENT_JOB_IDS, None))
        self._last_data = items
        self._last_offset = offset

    def _raise_repeat(self, offset: int, keys: list[str | None]) -> NoReturn:
        """Raise the `PaginationError` that names the first repeated job id of a page."""
        seen = dict(self._recent)
        for index, key in enumerate(keys):
            if key is None:
                continue
            seen_at = seen.get(key)
            if seen_at is not None:
                raise PaginationError(
                    f"job {key!r} at offset {offset + index} was already delivered at offset "
                    f"{seen_at}; the server repeats items, so the read stops rather than "
                    "yield one twice"
                )
            seen[key] = offset + index
        raise AssertionError("a repeat was found but not named")  # pragma: no cover
