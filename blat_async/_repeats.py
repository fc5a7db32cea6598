"""Catching a server that repeats itself, so that no item is yielded twice: no I/O."""

from __future__ import annotations

from itertools import islice
from typing import Final, NoReturn, cast

from .errors import PaginationError
from .models import BatchScrapeSitemapData

__all__ = ["RepeatGuard"]

_RECENT_JOB_IDS: Final = 2048
"""How many recent job ids, at least, are remembered to catch a server that repeats itself."""

_UNIFORM_REPEATS: Final = 3
"""Pages of one repeated item, without job id, tolerated in a row before calling it a loop."""


class RepeatGuard:
    """Refuses items that a read already delivered, in the order the read delivers them.

    Items are recognised by job id; items without one can only be compared
    whole, page against the page before.
    """

    __slots__ = ("_last_data", "_last_offset", "_recent", "_repeats")

    def __init__(self) -> None:
        self._recent: dict[str, int] = {}
        """Offsets of the job ids delivered lately: at least the last 2,048 of them."""
        self._last_data: tuple[BatchScrapeSitemapData, ...] = ()
        self._last_offset = 0
        self._repeats = 0

    def check(self, offset: int, items: tuple[BatchScrapeSitemapData, ...]) -> None:
        """Accept the items about to be delivered from ``offset``, or raise `PaginationError`."""
        # A page equal to the one before is a repeat, unless all its items are
        # alike (one failed job after another, with no metadata): those may
        # legitimately follow each other, so only a run of them is taken as a
        # server that ignores `from`, which without job ids or `total` would
        # never end.
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
        # item walk only runs to name a repeat.
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
