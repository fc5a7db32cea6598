"""Catching a server that repeats itself, so that no item is yielded twice: no I/O."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any, Final

from .errors import PaginationError

__all__ = ["RepeatGuard"]

_RECENT_JOB_IDS: Final = 2048
"""How many recent job ids, at least, are remembered to catch a server that repeats itself."""

_UNIFORM_REPEATS: Final = 3
"""Pages of one repeated item, without job id, tolerated in a row before calling it a loop."""


class RepeatGuard:
    """Finds items that a read already delivered, in the order the read delivers them.

    Items are recognised by job id across pages; within one page, two items
    with one job id are data (the API's own example has two), not a repeat.
    Items without a job id can only be compared whole, page against the page
    before.
    """

    __slots__ = ("_last_data", "_last_offset", "_pages", "_recent", "_repeats")

    def __init__(self) -> None:
        self._recent: set[str | None] = set()
        """The job ids delivered lately: at least the last 2,048 of them. Never ``None``."""
        self._pages: deque[tuple[int, list[str | None]]] = deque()
        """The offset and the ids of each page that brought ids to ``_recent``, oldest first."""
        self._last_data: Sequence[Any] = ()
        self._last_offset = 0
        self._repeats = 0

    def check(
        self, offset: int, items: Sequence[Any], *, bounded: bool
    ) -> tuple[int, PaginationError | None]:
        """Take in the items about to be delivered from ``offset``.

        Returns how many leading items are new, and, when that is not all of
        them, the `PaginationError` that the rest stand for. ``bounded``
        says whether the batch's ``total`` bounds the read.
        """
        repeat = self._page_repeat(offset, items, bounded=bounded)
        if repeat is not None:
            return 0, repeat
        keys = _job_ids(items)
        # One pass in C for the usual page, whose ids are all new.
        new = len(keys) if self._recent.isdisjoint(keys) else self._first_seen(keys)
        error = None
        if new < len(keys):
            # Looked up before `_remember`, which may forget the oldest ids.
            key = keys[new]
            error = PaginationError(
                f"job {key!r} at offset {offset + new} was already delivered at offset "
                f"{self._offset_of(key)}; the server repeats items, so the read stops rather "
                "than yield one twice"
            )
        self._remember(offset, keys[:new])
        self._last_data = items
        self._last_offset = offset
        return new, error

    def _page_repeat(
        self, offset: int, items: Sequence[Any], *, bounded: bool
    ) -> PaginationError | None:
        """The error of a page equal to the one before, when it stands for a repeat."""
        if items != self._last_data:
            self._repeats = 0
            return None
        # A page equal to the one before is a server ignoring `from`, unless
        # all its items are alike (one failed job after another, with no
        # metadata): those may follow each other. Only without a `total`,
        # which would end the read, is a long run of them taken for a server
        # ignoring `from` with no job ids, a read that would never end.
        self._repeats += 1
        uniform = items.count(items[0]) == len(items)
        if uniform and (bounded or self._repeats < _UNIFORM_REPEATS):
            return None
        return PaginationError(
            f"the page at from={offset} repeats the {len(items)} items delivered at "
            f"from={self._last_offset}; the server seems to ignore `from`"
        )

    def _remember(self, offset: int, keys: list[str | None]) -> None:
        """Remember the ids in ``keys``: those of the items from ``offset`` on."""
        recent = self._recent
        recent.update(keys)  # set operations in C: a long read does this millions of times
        recent.discard(None)
        self._pages.append((offset, keys))
        if len(recent) > 2 * _RECENT_JOB_IDS:
            self._forget()

    def _forget(self) -> None:
        """Forget the oldest pages' ids, as long as the last 2,048 ids stay."""
        pages, recent = self._pages, self._recent
        # No id is in two pages: a repeat across pages stops the read.
        while len(recent) - len(pages[0][1]) >= _RECENT_JOB_IDS:
            recent.difference_update(pages.popleft()[1])

    def _first_seen(self, keys: list[str | None]) -> int:
        """The index of the first key that an earlier page delivered."""
        recent = self._recent
        return next(i for i, key in enumerate(keys) if key is not None and key in recent)

    def _offset_of(self, key: str | None) -> int:
        """The offset at which a remembered id was first delivered."""
        for offset, keys in self._pages:
            if key in keys:
                return offset + keys.index(key)
        raise AssertionError(f"{key!r} is not remembered")  # pragma: no cover - see check()


def _job_ids(items: Sequence[Any]) -> list[str | None]:
    """Each item's ``metadata.job_id``, or ``None`` where it has none."""
    # Both batch endpoints' items carry ``metadata.job_id``; an item of an
    # endpoint without one has no id, and is judged by the page check alone.
    try:
        return [None if (m := item.metadata) is None else (m.job_id or None) for item in items]
    except AttributeError:
        return [
            None if (m := getattr(item, "metadata", None)) is None else (m.job_id or None)
            for item in items
        ]
