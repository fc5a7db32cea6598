"""What a read knows of its batch: its status, ``processed`` and ``total``. No I/O."""

from __future__ import annotations

from typing import Final

import attrs

from ._endpoints import Page
from .errors import PaginationError

__all__ = ["FINAL_STATUSES", "BatchView", "is_final_status"]

_Page = Page

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

_COMPLETE_STATUSES: Final = frozenset(
    {"complete", "completed", "done", "finished", "success", "succeeded"}
)
"""Final statuses of a batch that ran to its end: it holds ``total`` items.

A batch that was cancelled, failed or expired may stop short of ``total``.
"""


def is_final_status(status: str | None) -> bool:
    """Whether a batch with this status will get no more items."""
    return status is not None and status.strip().lower() in FINAL_STATUSES


_NOT_YET: Final = object()


@attrs.define
class BatchView:
    """What a read knows of its batch, from the pages that arrived.

    Pages may arrive in another order than their requests were sent.
    ``total`` is the largest any page gave; a smaller one is a contradiction
    only if a page with the larger one had arrived before its request was
    sent. ``status`` and ``processed`` are taken from a page only if it was
    sent after every page taken in before it, so a late answer to an older
    request never overwrites them; a page without them leaves them as they were.
    """

    total: int | None = None
    status: str | None = None
    processed: int | None = None
    _order: int = 0
    # `final` for the status `_final_of`: a read asks a few times a page, and
    # each page brings the same status again as a new string.
    _final_of: object = attrs.field(default=_NOT_YET, init=False, eq=False, repr=False)
    _final: bool = attrs.field(default=False, init=False, eq=False, repr=False)

    @property
    def final(self) -> bool:
        """Whether the batch's status says no more items will appear."""
        status = self.status
        if status != self._final_of:
            self._final_of = status
            self._final = is_final_status(status)
        return self._final

    @property
    def complete(self) -> bool:
        """Whether the batch's status says it ran to its end, so it holds ``total`` items."""
        return self.status is not None and self.status.strip().lower() in _COMPLETE_STATUSES

    def note(self, page: _Page, offset: int, *, order: int, total_then: int | None) -> None:
        """Take in the page fetched at ``offset``; raise `PaginationError` if it contradicts.

        ``order`` counts the read's requests in the order they were sent, and
        ``total_then`` is the ``total`` the read knew when this one was sent.
        """
        if page.total is not None:
            if total_then is not None and page.total < total_then:
                # The request went out after a page with the larger total had
                # arrived: the server's total went down in between.
                raise PaginationError(
                    f"the batch's total shrank from {total_then} to {page.total} "
                    f"(page at from={offset}); the server contradicts itself"
                )
            self.total = page.total if self.total is None else max(self.total, page.total)
        if order > self._order:
            self._order = order
            if page.status is not None:
                self.status = page.status
            if page.processed is not None:
                self.processed = page.processed

    def known_end(self) -> int | None:
        """The offset below which items are known to exist; ``None`` when nothing says.

        A finished batch (or one whose status is not given) holds ``total``
        items. A running batch holds at least its ``processed`` successful
        jobs: every job is an item, failed or not.
        """
        running = self.status is not None and not self.final
        if not running:
            return self.total
        known = self.processed or 0
        return known if self.total is None else min(known, self.total)
