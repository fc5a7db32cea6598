"""The retry policy, its backoff arithmetic, the one retry loop, the 429 back-off, and the slots."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import attrs

from . import _defaults
from .errors import (
    BlatError,
    RateLimitError,
)

__all__ = [
    "DEFAULT_RETRY",
    "RatePause",
    "RetryPolicy",
    "Slots",
    "Throttle",
    "is_retryable",
    "retrying",
]

logger = logging.getLogger("blat_async")

_T = TypeVar("_T")


def _non_negative(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:  # also refuses NaN, which compares false to everything
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen
class RetryPolicy:
    """How a page request that failed for a passing reason is retried.

    Retried: 429, 500, 502, 503, 504 (any 5xx), a dropped connection, a
    timeout, and a 2xx body that is not JSON at all (a transfer cut short
    by a proxy). Never retried: any other 4xx, and a JSON body of the wrong
    shape, which a retry would only get again.

    ``max_retries`` is a budget per request: each request is attempted at
    most ``max_retries + 1`` times. A read never asks again for an offset
    whose request gave up (its error ends the read when the read gets there).

    The wait before retry ``n`` (from 0) is drawn uniformly from
    ``[0, min(max_delay, initial_delay * 2**n)]`` ("full jitter"), so that many
    clients that failed together do not retry together. When the server sends
    ``Retry-After``, that wait is used instead; one longer than
    ``max_retry_after`` is not waited for, and the error is raised at once.

    >>> RetryPolicy(max_retries=5, initial_delay=0.2)
    RetryPolicy(max_retries=5, initial_delay=0.2, max_delay=8.0, max_retry_after=60.0)
    """

    max_retries: int = attrs.field(
        default=_defaults.DEFAULT_MAX_RETRIES, validator=attrs.validators.instance_of(int)
    )
    """Retries after the first attempt; 0 disables retrying."""
    initial_delay: float = attrs.field(
        default=_defaults.DEFAULT_INITIAL_DELAY, validator=_non_negative
    )
    """The cap of the first backoff, in seconds."""
    max_delay: float = attrs.field(default=_defaults.DEFAULT_MAX_DELAY, validator=_non_negative)
    """The largest backoff, in seconds."""
    max_retry_after: float = attrs.field(
        default=_defaults.DEFAULT_MAX_RETRY_AFTER, validator=_non_negative
    )
    """The longest ``Retry-After`` the client will wait, in seconds."""

    def __attrs_post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or self.max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {self.max_retries!r}")

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """Return the jittered wait before retry number ``retry`` (counting from 0)."""
        # min() before the power would overflow a float on very long retry runs.
        cap = min(self.max_delay, self.initial_delay * 2.0 ** min(retry, 64))
        return (rng or random).uniform(0.0, cap)

    def delay_for(
        self, error: BlatError, retry: int, rng: random.Random | None = None
    ) -> float | None:
        """Return how long to wait before retrying after ``error``, or ``None`` to give up."""
        if retry >= self.max_retries or not is_retryable(error):
            return None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        return self.backoff(retry, rng)


DEFAULT_RETRY: Final = RetryPolicy()


def is_retryable(error: BlatError) -> bool:
    """Whether sending the same request again could succeed: the error's own ``retryable``.

    An error class without one (a `PaginationError`, a closed client) is never retried.
    """
    return getattr(error, "retryable", False) is True


async def retrying(
    attempt: Callable[[], Awaitable[_T]],
    policy: RetryPolicy,
    pause: RatePause,
    *,
    url: object,
    rng: random.Random | None = None,
    on_rate_limit: Callable[[], None] | None = None,
) -> _T:
    """Await ``attempt()`` until it succeeds or ``policy`` gives up; the last error is raised.

    The retries are counted here, one budget per call: ``max_retries``
    retries after the first attempt. A 429 extends the client's ``pause``,
    which ``attempt`` waits out once it holds its slot, and calls
    ``on_rate_limit``. Each retry is logged at INFO, naming the request
    (``GET <url>``) once; ``url`` becomes text only then.
    """
    retry = 0
    while True:
        try:
            return await attempt()
        except BlatError as failed:
            error = failed
        # Decided outside the ``except``, so that an error raised from here
        # has no other chained to it.
        delay = policy.delay_for(error, retry, rng)
        if delay is None:
            raise _given_up(error, policy, retry)
        if isinstance(error, RateLimitError):
            pause.extend(delay)
            if on_rate_limit is not None:
                on_rate_limit()
        retry += 1
        what = f"GET {url}"
        logger.info(
            "retry %d of %d for %s in %.2f s: %s",
            retry,
            policy.max_retries,
            what,
            delay,
            # The error names the URL too: once is enough.
            str(error).removesuffix(f" ({what})"),
        )
        await asyncio.sleep(delay)


def _given_up(error: BlatError, policy: RetryPolicy, retry: int) -> BlatError:
    """The error to raise when ``policy`` gives up after ``error``.

    A 429 that could have been retried but asked for a longer wait than the
    policy allows says so, and how to allow it.
    """
    if not isinstance(error, RateLimitError) or retry >= policy.max_retries:
        return error
    wait = error.retry_after
    if wait is None or wait <= policy.max_retry_after:
        return error
    return RateLimitError(
        error.status,
        code=error.code,
        message=(
            f"the server asked to wait {wait:g} s before retrying (Retry-After), longer than "
            f"this client waits (RetryPolicy.max_retry_after={policy.max_retry_after:g} s); "
            "pass retry=RetryPolicy(max_retry_after=...) to wait that long"
        ),
        details=error.details,
        body=error.body,
        retry_after=wait,
        url=error.url,
    )


class RatePause:
    """A pause that every request of one client honours after the API answered 429.

    The API limits a key, not a read: while one request waits out a
    ``Retry-After``, the client's other requests wait too.
    """

    __slots__ = ("_resume_at",)

    def __init__(self) -> None:
        self._resume_at = 0.0

    @property
    def ever(self) -> bool:
        """Whether a 429 ever paused this client: until then, `wait` has nothing to wait for."""
        return self._resume_at != 0.0

    async def wait(self) -> None:
        """Sleep until the pause, if any, is over."""
        loop = asyncio.get_running_loop()
        # A loop, not one sleep: another request's 429 may push the end further away.
        while (delay := self._resume_at - loop.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)

    def extend(self, delay: float) -> None:
        """Make every request wait at least ``delay`` seconds from now."""
        self._resume_at = max(self._resume_at, asyncio.get_running_loop().time() + delay)


class Slots:
    """A client's request slots: at most ``size`` requests in flight, first come, first served.

    `asyncio.Semaphore`'s rules, with a way in that needs no await: a request
    that finds a slot free and nobody waiting takes it at once (`take_nowait`).
    A slot given back goes straight to the first request still waiting.
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take_nowait(self) -> bool:
        """Take a free slot; return whether one was taken."""
        # No slot is free while a request waits: each freed one goes to a waiter.
        if self._free:
            self._free -= 1
            return True
        return False

    async def take(self) -> None:
        """Take a slot, waiting for one in turn if none is free."""
        if self.take_nowait():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if not waiter.cancelled():
                # Handed a slot, and cancelled before using it: pass it on.
                self.give_back()
            raise

    def give_back(self) -> None:
        """Free a slot: the first request still waiting gets it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # a cancelled waiter is done
                waiter.set_result(None)
                return
        self._free += 1


class Throttle:
    """How many of one read's requests may be in flight.

    A 429 halves it (while the client's `RatePause` holds every request);
    each success lets one more back in, up to the read's concurrency.
    """

    __slots__ = ("concurrency", "limit")

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.limit = concurrency

    def rate_limited(self) -> None:
        """Halve this read's limit, down to one request."""
        self.limit = max(1, self.limit // 2)

    def succeeded(self) -> None:
        """Let one more request be in flight, up to the read's concurrency."""
        if self.limit < self.concurrency:
            self.limit += 1
