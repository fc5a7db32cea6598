"""The read-ahead runner: sends the requests a `Plan` asks for, in tasks it owns.

The plan (no I/O, ``_pagination.py``) decides which offsets to request,
counts everything, and says what to hand out; `ReadAhead` only calls the
verbs that the `Plan` protocol lists, and learns the batch's state for
`ReadProgress` through `Plan.batch_state`. It owns every task
it starts: when the read ends, fails, is closed or is cancelled, the tasks
still in flight are cancelled and awaited before the generator returns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, NamedTuple

import attrs

from ._defaults import POLL_GROWTH
from ._endpoints import Page
from ._pagination import Delivery, Plan, ReadEnd
from ._retry import Throttle
from .errors import BlatError, PaginationError

__all__ = [
    "Fetch",
    "Fetched",
    "PollPolicy",
    "ReadAhead",
    "ReadProgress",
    "RequestHooks",
    "items_of",
    "pages_of",
]


class Fetched(NamedTuple):
    """A page that arrived and decoded, and the length of its body in bytes."""

    page: Page
    size: int


@attrs.frozen
class RequestHooks:
    """What a read's requests report to it; one for the whole read, not one a request."""

    on_rate_limit: Callable[[], None] | None = None
    """The API answered 429."""
    on_answer: Callable[[], None] | None = None
    """The server answered an attempt, whatever the status."""


Fetch = Callable[[int, RequestHooks], Awaitable[Fetched]]
"""Fetch and decode the page at an offset, retrying; raises the `BlatError` that ended it."""


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
    """Requests the server answered, whatever the status: retries and read-ahead included."""
    processed: int | None = None
    """The batch's successful scrapes, from the latest page."""
    total: int | None = None
    """The batch's item count (sitemaps, or URLs to scrape), as the read knows it."""
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
        return min(self.max_interval, self.interval * POLL_GROWTH**idle_polls)


class ReadAhead:
    """Runs one read: up to ``concurrency`` requests in flight, as its plan asks.

    Each task is a chain: when its page is in, it asks the plan for the next
    offset at once, so a slot never waits for the caller. A 429 halves the
    read's requests in flight (`Throttle`).

    ``tasks_owner`` is the client's set of running requests, so that closing
    the client can cancel them; ``check_open`` raises once it is closed, and
    ``closing`` is set then, to cut short a wait between polls.
    """

    def __init__(
        self,
        plan: Plan,
        fetch: Fetch,
        *,
        concurrency: int,
        tasks_owner: set[asyncio.Task[None]],
        check_open: Callable[[], None],
        closing: asyncio.Event,
        poll: PollPolicy | None = None,
        progress: ReadProgress | None = None,
    ) -> None:
        self._plan = plan
        self._fetch = fetch
        self._throttle = Throttle(concurrency)
        self._owner = tasks_owner
        self._check_open = check_open
        self._closing = closing
        self._poll = poll
        self._progress = progress
        self._tasks: set[asyncio.Task[None]] = set()
        self._hooks = RequestHooks(
            self._throttle.rate_limited, None if progress is None else self._answered
        )
        self._wake = asyncio.Event()
        self._crash: BaseException | None = None
        """Why a task ended other than through the plan: a bug, or the client closing."""
        if progress is not None:
            progress.offset = plan.cursor

    async def deliveries(self) -> AsyncGenerator[Delivery, None]:
        """Yield the plan's pages in order, until the read ends or fails."""
        plan = self._plan
        idle_polls = 0
        try:
            while True:
                self._check_open()
                if self._crash is not None:
                    raise self._crash
                self._launch()
                delivery = plan.next_delivery()
                if delivery is not None:
                    idle_polls = 0
                    yield delivery
                    plan.handed_out()
                    continue
                if plan.done:
                    break
                if plan.waiting:
                    assert self._poll is not None, "only a follow-mode plan waits"
                    await self._wait_for_poll(self._poll.delay(idle_polls))
                    idle_polls += 1
                    plan.poll()
                    continue
                if not self._tasks:
                    # A plan that neither ended nor asked for a page would hang.
                    raise PaginationError(
                        f"the read stalled at offset {plan.cursor} with nothing to fetch"
                    )
                # Cleared and awaited with no await in between: no wake-up is lost.
                self._wake.clear()
                await self._wake.wait()
        finally:
            if self._progress is not None:
                self._progress.ended = plan.ended
            for task in self._tasks:
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _wait_for_poll(self, delay: float) -> None:
        """Sleep ``delay`` seconds, or less if the client closes meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), delay)

    def _launch(self) -> None:
        while (offset := self._plan.next_offset(self._throttle.limit)) is not None:
            task = asyncio.create_task(self._chain(offset), name=f"blat-from-{offset}")
            self._tasks.add(task)
            self._owner.add(task)
            task.add_done_callback(self._finished)

    async def _chain(self, offset: int | None) -> None:
        plan = self._plan
        while offset is not None:
            try:
                fetched = await self._fetch(offset, self._hooks)
            except BlatError as error:
                plan.gave_up(offset, error)
                self._wake.set()
                if self._closing.is_set():
                    return  # a closing client fails every request at once: stop here
                # A request can fail without awaiting anything: let the loop run
                # before the next one, whatever the plan asks for next.
                await asyncio.sleep(0)
            else:
                self._throttle.succeeded()
                plan.arrived(offset, fetched.page, size=fetched.size)
                self._note_batch()
                self._wake.set()
            offset = plan.next_offset(self._throttle.limit)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._owner.discard(task)
        if task.cancelled():
            if self._crash is None:
                self._crash = BlatError("the read was interrupted: its client was closed")
        elif (error := task.exception()) is not None and self._crash is None:
            self._crash = error
        self._wake.set()

    def _answered(self) -> None:
        assert self._progress is not None, "only a read with progress counts answers"
        self._progress.requests += 1

    def _note_batch(self) -> None:
        progress = self._progress
        if progress is not None:
            progress.processed, progress.total, progress.status = self._plan.batch_state()


# -- what the iterators hand out ------------------------------------------------------
#
# With the runner above, the only writers of a read's `ReadProgress`.


async def pages_of(
    deliveries: AsyncGenerator[Delivery, None], progress: ReadProgress | None
) -> AsyncGenerator[Any, None]:
    """Yield each delivered page, counting it in ``progress``."""
    async with aclosing(deliveries):
        async for delivery in deliveries:
            if progress is not None:
                progress.offset = delivery.offset + len(delivery.page.data)
                progress.items += len(delivery.page.data)
                progress.pages += 1
            yield delivery.page


async def items_of(
    deliveries: AsyncGenerator[Delivery, None], progress: ReadProgress | None
) -> AsyncGenerator[Any, None]:
    """Yield each delivered item, counting it in ``progress``."""
    async with aclosing(deliveries):
        if progress is None:
            async for delivery in deliveries:
                for item in delivery.page.data:
                    yield item
            return
        async for delivery in deliveries:
            progress.pages += 1
            offset = delivery.offset
            for item in delivery.page.data:
                # Counted before the yield: while the caller handles an item,
                # `offset` already points past it, where to resume.
                offset += 1
                progress.offset = offset
                progress.items += 1
                yield item
