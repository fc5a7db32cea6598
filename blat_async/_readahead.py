"""The read-ahead engine: runs a `ReadPlan` over a fetch function with concurrent tasks.

The plan decides (without I/O) which offsets to request and what to yield;
this module runs the requests in tasks and owns every task it starts: when
the read ends, fails, is closed or is cancelled, the tasks still in flight
are cancelled and awaited before the generator returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Final

import attrs

from ._pagination import Delivery, ReadEnd, ReadPlan
from ._protocol import Answer
from ._retry import Throttle
from .errors import BlatError, PaginationError

__all__ = ["PollPolicy", "ReadProgress", "Receive", "RetryDelay", "read_pages"]

logger = logging.getLogger("blat_async")

Receive = Callable[[int, Throttle, int], Coroutine[None, None, Answer]]
"""Send the request for the page at an offset until an answer is in, retrying.

The last argument counts the retries already taken; a 429 lowers the read's
`Throttle`. The answer is decoded later, by the read.
"""

RetryDelay = Callable[[BlatError, int, int], float | None]
"""The wait before retrying the request at an offset whose answer did not decode.

Called with the error, the retries already taken and the offset; ``None``
means give up.
"""

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
    receive: Receive,
    retry_delay: RetryDelay,
    plan: ReadPlan,
    throttle: Throttle,
    *,
    tasks_owner: set[asyncio.Task[None]],
    check_open: Callable[[], None],
    closing: asyncio.Event,
    poll: PollPolicy | None = None,
    progress: ReadProgress | None = None,
) -> AsyncGenerator[Delivery, None]:
    """Yield the plan's deliveries in order, with up to ``throttle.limit`` requests in flight.

    Each task started here is a chain of requests: when an answer is in, it
    sends the next request the plan asks for at once, before that answer or
    the ones that arrived alongside are decoded, so no request waits for
    decoding. The generator decodes the answers, hands them to the plan,
    hands the deliveries out, and starts new chains when the window frees up.
    A chain decodes first until the batch's ``total`` is known, and, in
    follow mode or once pages have varied in length, when its answer holds
    the item the read waits for: those answers decide what to ask next.

    ``tasks_owner`` is the client's set of running fetches, so that closing
    the client can cancel them; ``check_open`` raises once it is closed, and
    ``closing`` is set then, to cut short a wait between polls.
    """
    tasks: set[asyncio.Task[None]] = set()
    answers: deque[tuple[int, Answer]] = deque()
    """Answers in, not decoded yet; their offsets stay in the plan's ``in_flight``."""
    retries: deque[tuple[int, int, float]] = deque()
    """Requests to send again, as (offset, retries taken, wait): their answers did not decode."""
    ready: deque[Delivery] = deque()
    wake = asyncio.Event()
    failure: BaseException | None = None
    idle_polls = 0

    def fail(error: BaseException) -> None:
        nonlocal failure
        if failure is None:
            failure = error
        wake.set()

    def next_request(sending: int) -> tuple[int, int, float] | None:
        """The request a chain sends next, if ``sending`` others leave it room."""
        if failure is not None or plan.done or sending >= throttle.limit:
            return None
        if retries:
            return retries.popleft()
        # The plan counts undecoded answers in flight: one more than it holds.
        following = plan.to_fetch(len(plan.in_flight) + 1)
        return (following[0], 0, 0.0) if following else None

    async def chain(offset: int, retry: int, wait: float) -> None:
        while True:
            if wait:
                await asyncio.sleep(wait)
            try:
                answer = await receive(offset, throttle, retry)
            # Whatever a read-ahead request raises is only a lost guess; the
            # plan says whether the read needed it, and then it is raised.
            except Exception as error:  # noqa: BLE001
                _note(progress, plan)
                if plan.failed(offset):
                    fail(error)
                else:
                    logger.debug("read-ahead of from=%d failed, will ask again: %r", offset, error)
                    wake.set()
                return
            if failure is not None:
                _note(progress, plan)
                return
            throttle.succeeded()
            answers.append((offset, answer))
            if plan.total is None or (offset <= plan.cursor and (plan.follow or plan.uneven)):
                # Decoded first: until a page shows the batch's total, nothing
                # bounds the read-ahead. And the page the read waits for, from
                # a running batch or a server whose pages vary in length, may
                # be short or empty, which changes what to ask for next.
                decode_answers()
            wake.set()
            following = next_request(len(tasks) - 1)
            if following is None:
                return
            offset, retry, wait = following

    def finished(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        tasks_owner.discard(task)
        if task.cancelled():
            fail(BlatError("the read was interrupted: its client was closed"))
        elif (error := task.exception()) is not None:
            fail(error)
        wake.set()

    def start(offset: int, retry: int, wait: float) -> None:
        task = asyncio.create_task(chain(offset, retry, wait), name=f"blat-from-{offset}")
        tasks.add(task)
        tasks_owner.add(task)
        task.add_done_callback(finished)

    def launch() -> None:
        # One request at a time, as a chain picks its next: each started task
        # counts against the limit before the next is chosen.
        while (following := next_request(len(tasks))) is not None:
            start(*following)

    def decode_answers() -> None:
        while answers and failure is None and not plan.done:
            offset, answer = answers.popleft()
            try:
                # Asked only now: items delivered meanwhile are not structured.
                page, skipped = answer.decode(plan.needed_from() - offset)
            except BlatError as error:
                wait = retry_delay(error, answer.retries, offset)
                if wait is not None:
                    retries.append((offset, answer.retries + 1, wait))
                    continue
                _note(progress, plan)
                if plan.failed(offset):
                    fail(error)
                else:
                    logger.debug("read-ahead of from=%d failed, will ask again: %r", offset, error)
                continue
            try:
                deliveries = plan.arrived(offset, page, skipped=skipped)
            except PaginationError as contradiction:
                fail(contradiction)
                return
            finally:
                _note(progress, plan)
            if deliveries:
                ready.extend(deliveries)
                # Pages waiting to be handed out count against the read's window.
                plan.handing_out += len(deliveries)
            if plan.contradiction is not None:
                fail(plan.contradiction)

    try:
        while True:
            check_open()
            decode_answers()
            if failure is None:
                launch()
            if ready:
                idle_polls = 0
                yield ready.popleft()
                plan.handing_out -= 1
                continue
            if failure is not None:
                raise failure
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
            # Cleared and awaited with no await in between: no wake-up is lost.
            wake.clear()
            await wake.wait()
    finally:
        if progress is not None:
            progress.ended = plan.ended
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _note(progress: ReadProgress | None, plan: ReadPlan) -> None:
    """Count an answered request, and copy the batch's latest fields."""
    if progress is None:
        return
    progress.requests += 1
    progress.processed = plan.processed
    progress.total = plan.total
    progress.status = plan.status
