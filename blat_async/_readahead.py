"""The read-ahead engine: runs a `ReadPlan` over a fetch function with concurrent tasks.

The plan decides (without I/O) which offsets to request and what to yield;
this module starts a task per request, waits for whichever finishes first,
and owns every task it starts: when the read ends, fails, is closed or is
cancelled, the tasks still in flight are cancelled and awaited before the
generator returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Final

import attrs

from ._pagination import Delivery, ReadEnd, ReadPlan
from ._retry import Throttle
from .errors import BlatError, PaginationError
from .models import BatchScrapeSitemapStatusResponse

__all__ = ["Fetch", "PollPolicy", "ReadProgress", "read_pages"]

logger = logging.getLogger("blat_async")

Fetch = Callable[[int, Throttle], Coroutine[None, None, BatchScrapeSitemapStatusResponse]]
"""Fetch the page at an offset, retrying; a 429 lowers the read's `Throttle`."""

_POLL_GROWTH: Final = 1.5


@attrs.define
class ReadProgress:
    """Where a read stands, updated in place while it runs.

    Pass one as ``progress=`` to an iterator and read it between items: it
    costs one attribute update per item. ``offset`` is the offset after the
    last item handed out, so a read that stops can resume with
    ``start=progress.offset``.

    >>> progress = ReadProgress()
    >>> progress.fraction is None
    True
    """

    offset: int = 0
    """The offset after the last item handed out: where to resume."""
    items: int = 0
    """Items handed out by this read."""
    pages: int = 0
    """Pages handed out by this read."""
    requests: int = 0
    """Page requests answered, read-ahead included, and failed ones too."""
    processed: int | None = None
    """The batch's successful scrapes, from the latest page."""
    total: int | None = None
    """The batch's sitemap count, from the latest page."""
    status: str | None = None
    """The batch's status, from the latest page."""
    ended: ReadEnd | None = None
    """Why the read ended, once it has."""

    @property
    def fraction(self) -> float | None:
        """How much of the batch has been read, from 0 to 1, when ``total`` is known."""
        if not self.total:
            return None
        return min(1.0, self.offset / self.total)


@attrs.frozen
class PollPolicy:
    """How a follow-mode read waits for a running batch: a growing interval, reset by news."""

    interval: float
    max_interval: float

    def delay(self, idle_polls: int) -> float:
        """Return the wait after ``idle_polls`` polls in a row that brought nothing."""
        return min(self.max_interval, self.interval * _POLL_GROWTH**idle_polls)


async def read_pages(
    fetch: Fetch,
    plan: ReadPlan,
    throttle: Throttle,
    *,
    tasks_owner: set[asyncio.Task[BatchScrapeSitemapStatusResponse]],
    check_open: Callable[[], None],
    closing: asyncio.Event,
    poll: PollPolicy | None = None,
    progress: ReadProgress | None = None,
) -> AsyncGenerator[Delivery, None]:
    """Yield the plan's deliveries in order, fetching up to ``throttle.limit`` pages at once.

    ``tasks_owner`` is the client's set of running fetches, so that closing
    the client can cancel them; ``check_open`` raises once it is closed, and
    ``closing`` is set then, to cut short a wait between polls.
    """
    tasks: dict[asyncio.Task[BatchScrapeSitemapStatusResponse], int] = {}
    idle_polls = 0

    def launch() -> None:
        for offset in plan.to_fetch(throttle.limit):
            task = asyncio.create_task(fetch(offset, throttle), name=f"blat-from-{offset}")
            tasks[task] = offset
            tasks_owner.add(task)
            task.add_done_callback(tasks_owner.discard)

    try:
        while True:
            check_open()
            launch()
            if plan.done:
                break
            if plan.waiting:
                assert poll is not None, "only a follow-mode plan waits"
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(closing.wait(), poll.delay(idle_polls))
                idle_polls += 1
                plan.resume()
                continue
            if not tasks:
                # A plan that neither ended nor asked for a page would hang.
                raise PaginationError(
                    f"the read stalled at offset {plan.cursor} with nothing to fetch"
                )
            done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            deliveries: list[Delivery] = []
            failure: BaseException | None = None
            for task in sorted(done, key=tasks.__getitem__):
                offset = tasks.pop(task)
                if task.cancelled():
                    failure = failure or BlatError(
                        "the read was interrupted: its client was closed"
                    )
                    continue
                error = task.exception()
                if failure is not None:
                    continue
                if error is not None:
                    if plan.failed(offset):
                        failure = error
                    else:
                        logger.debug(
                            "read-ahead of from=%d failed, will ask again: %r", offset, error
                        )
                    continue
                throttle.succeeded()
                try:
                    deliveries += plan.arrived(offset, task.result())
                except PaginationError as contradiction:
                    failure = contradiction
            if progress is not None:
                _note(progress, plan, answered=len(done))
            if failure is None:
                # Refill the freed slots before handing out items, so that the
                # next requests travel while the caller works; the pages still
                # to hand out count against the read's window.
                plan.handing_out = len(deliveries)
                launch()
            for delivery in deliveries:
                idle_polls = 0
                check_open()
                yield delivery
                plan.handing_out -= 1
            plan.handing_out = 0
            if failure is not None:
                raise failure
    finally:
        if progress is not None:
            progress.ended = plan.ended
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _note(progress: ReadProgress, plan: ReadPlan, *, answered: int) -> None:
    progress.requests += answered
    progress.processed = plan.processed
    progress.total = plan.total
    progress.status = plan.status
