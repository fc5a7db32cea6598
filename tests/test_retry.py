"""The retry policy's rules and arithmetic, and the throttle shared by a read's fetches."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

import pytest

from blat_async._retry import (
    DEFAULT_RETRY,
    RatePause,
    RetryPolicy,
    Slots,
    Throttle,
    is_retryable,
    retrying,
)
from blat_async.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    BlatError,
    PaginationError,
    RateLimitError,
    ResponseValidationError,
    status_error_class,
)


def _status(status: int, *, retry_after: float | None = None) -> APIStatusError:
    return status_error_class(status)(status, retry_after=retry_after)


# -- the policy ----------------------------------------------------------------


def test_defaults() -> None:
    policy = RetryPolicy()

    assert (
        policy.max_retries,
        policy.initial_delay,
        policy.max_delay,
        policy.max_retry_after,
    ) == (3, 0.5, 8.0, 60.0)


def test_default_retry_is_the_default_policy() -> None:
    assert RetryPolicy() == DEFAULT_RETRY


@pytest.mark.parametrize("field", ["initial_delay", "max_delay", "max_retry_after"])
def test_negative_delay_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        # mypy checks the dict of floats against max_retries too, an int.
        RetryPolicy(**{field: -0.1})  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["initial_delay", "max_delay", "max_retry_after"])
def test_nan_delay_is_refused(field: str) -> None:
    """NaN is not below zero, yet it is no delay: backoff and Retry-After would silently break."""
    with pytest.raises(ValueError, match=field):
        # mypy checks the dict of floats against max_retries too, an int.
        RetryPolicy(**{field: float("nan")})  # type: ignore[arg-type]


def test_negative_max_retries_is_refused() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)


@pytest.mark.parametrize("value", [True, False])
def test_bool_max_retries_is_refused(value: bool) -> None:
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=value)


def test_float_max_retries_is_refused() -> None:
    with pytest.raises(TypeError, match="max_retries"):
        RetryPolicy(max_retries=2.0)  # type: ignore[arg-type]  # the wrong type under test


def test_zero_everywhere_is_valid() -> None:
    policy = RetryPolicy(max_retries=0, initial_delay=0, max_delay=0, max_retry_after=0)

    assert policy.max_retries == 0


@pytest.mark.parametrize("retry", [0, 1, 2, 3, 4, 5, 6, 10, 20, 63, 64, 65])
def test_backoff_is_within_full_jitter_bounds(retry: int) -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=8.0)
    rng = random.Random(retry)
    cap = min(8.0, 0.5 * 2**retry)

    delays = [policy.backoff(retry, rng) for _ in range(200)]

    assert all(0.0 <= delay <= cap for delay in delays)


def test_backoff_uses_the_whole_range() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=8.0)
    rng = random.Random(4)

    delays = [policy.backoff(2, rng) for _ in range(500)]

    assert min(delays) < 0.5
    assert max(delays) > 3.5


def test_backoff_is_reproducible_with_a_seeded_rng() -> None:
    policy = RetryPolicy()

    first = [policy.backoff(n, random.Random(7)) for n in range(6)]
    second = [policy.backoff(n, random.Random(7)) for n in range(6)]

    assert first == second


@pytest.mark.parametrize("retry", [1_000, 10**6, 10**100])
def test_backoff_for_huge_retry_number_does_not_overflow(retry: int) -> None:
    delay = RetryPolicy(max_delay=8.0).backoff(retry, random.Random(0))

    assert 0.0 <= delay <= 8.0


def test_backoff_is_zero_when_delays_are_zero() -> None:
    assert RetryPolicy(initial_delay=0.0).backoff(5, random.Random(0)) == 0.0


# -- delay_for -----------------------------------------------------------------


def test_delay_for_gives_up_after_max_retries() -> None:
    policy = RetryPolicy(max_retries=2)
    error = _status(503)

    assert policy.delay_for(error, 1, random.Random(0)) is not None
    assert policy.delay_for(error, 2, random.Random(0)) is None


def test_delay_for_never_retries_with_max_retries_zero() -> None:
    assert RetryPolicy(max_retries=0).delay_for(_status(503), 0) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 418, 422])
def test_delay_for_never_retries_a_client_error(status: int) -> None:
    assert RetryPolicy(max_retries=10).delay_for(_status(status), 0) is None


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(_status(429), id="429"),
        pytest.param(_status(500), id="500"),
        pytest.param(_status(502), id="502"),
        pytest.param(_status(503), id="503"),
        pytest.param(_status(504), id="504"),
        pytest.param(APIConnectionError("reset"), id="connection"),
        pytest.param(APITimeoutError("slow"), id="timeout"),
        pytest.param(ResponseValidationError("cut short", decodable=False), id="not-json"),
    ],
)
def test_delay_for_retries_a_passing_failure(error: BlatError) -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=8.0)

    delay = policy.delay_for(error, 1, random.Random(0))

    assert delay is not None
    assert 0.0 <= delay <= 1.0


def test_delay_for_does_not_retry_json_of_the_wrong_shape() -> None:
    error = ResponseValidationError("wrong shape", path="total")

    assert RetryPolicy().delay_for(error, 0) is None


def test_delay_for_does_not_retry_a_pagination_error() -> None:
    assert RetryPolicy().delay_for(PaginationError("repeats"), 0) is None


def test_delay_for_uses_retry_after_when_set() -> None:
    error = RateLimitError(429, retry_after=12.5)

    assert RetryPolicy(max_delay=1.0).delay_for(error, 0) == 12.5


def test_delay_for_uses_retry_after_of_zero() -> None:
    assert RetryPolicy().delay_for(_status(503, retry_after=0.0), 0) == 0.0


def test_delay_for_refuses_retry_after_longer_than_max_retry_after() -> None:
    error = RateLimitError(429, retry_after=61.0)

    assert RetryPolicy(max_retry_after=60.0).delay_for(error, 0) is None


def test_delay_for_accepts_retry_after_equal_to_max_retry_after() -> None:
    error = RateLimitError(429, retry_after=60.0)

    assert RetryPolicy(max_retry_after=60.0).delay_for(error, 0) == 60.0


def test_delay_for_gives_up_after_max_retries_even_with_retry_after() -> None:
    error = RateLimitError(429, retry_after=1.0)

    assert RetryPolicy(max_retries=1).delay_for(error, 1) is None


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(_status(429), True, id="429"),
        pytest.param(_status(599), True, id="599"),
        pytest.param(_status(404), False, id="404"),
        pytest.param(APITimeoutError(), True, id="timeout"),
        pytest.param(ResponseValidationError("x", decodable=False), True, id="not-json"),
        pytest.param(ResponseValidationError("x"), False, id="wrong-shape"),
        pytest.param(PaginationError(), False, id="pagination"),
        pytest.param(BlatError(), False, id="base"),
    ],
)
def test_is_retryable(error: BlatError, expected: bool) -> None:
    assert is_retryable(error) is expected


# -- Throttle and RatePause ----------------------------------------------------


async def test_throttle_starts_at_its_concurrency() -> None:
    throttle = Throttle(6)

    assert (throttle.concurrency, throttle.limit) == (6, 6)


async def test_rate_limited_halves_the_limit_down_to_one() -> None:
    throttle = Throttle(6)
    limits = []

    for _ in range(4):
        throttle.rate_limited()
        limits.append(throttle.limit)

    assert limits == [3, 1, 1, 1]


async def test_wait_without_a_pause_returns_at_once() -> None:
    pause = RatePause()
    loop = asyncio.get_running_loop()
    started = loop.time()

    await pause.wait()

    assert loop.time() - started < 0.04


async def test_extend_pauses_wait_for_about_the_delay() -> None:
    pause = RatePause()
    loop = asyncio.get_running_loop()
    started = loop.time()

    pause.extend(0.05)
    await pause.wait()

    assert 0.045 <= loop.time() - started < 0.5


async def test_a_later_rate_limit_extends_the_pause_of_a_waiting_request() -> None:
    pause = RatePause()
    loop = asyncio.get_running_loop()
    started = loop.time()
    pause.extend(0.03)

    async def second_rate_limit() -> None:
        await asyncio.sleep(0.01)
        pause.extend(0.08)

    await asyncio.gather(pause.wait(), second_rate_limit())

    assert 0.085 <= loop.time() - started < 0.5


async def test_a_shorter_rate_limit_does_not_shorten_the_pause() -> None:
    pause = RatePause()
    loop = asyncio.get_running_loop()
    started = loop.time()

    pause.extend(0.08)
    pause.extend(0.01)
    await pause.wait()

    assert 0.075 <= loop.time() - started < 0.5


async def test_succeeded_raises_the_limit_back_to_the_concurrency() -> None:
    throttle = Throttle(6)
    throttle.rate_limited()
    throttle.rate_limited()
    limits = []

    for _ in range(7):
        throttle.succeeded()
        limits.append(throttle.limit)

    assert limits == [2, 3, 4, 5, 6, 6, 6]


async def test_succeeded_at_full_concurrency_changes_nothing() -> None:
    throttle = Throttle(3)

    throttle.succeeded()

    assert throttle.limit == 3


async def test_one_reads_rate_limit_halves_only_its_own_limit() -> None:
    limited, other = Throttle(4), Throttle(4)

    limited.rate_limited()

    # The pause is the client's (RatePause); the limit is each read's own.
    assert (limited.limit, other.limit) == (2, 4)


# -- the retry loop --------------------------------------------------------------------------


def _failing(errors: list[BlatError]) -> tuple[list[int], Callable[[], Awaitable[str]]]:
    """An attempt that raises ``errors`` one by one, then succeeds; and its call count."""
    calls: list[int] = []

    async def attempt() -> str:
        calls.append(len(calls))
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "ok"

    return calls, attempt


async def test_each_call_of_the_retry_loop_has_its_own_budget() -> None:
    policy = RetryPolicy(max_retries=2, initial_delay=0, max_delay=0)
    for _ in range(2):  # a second call starts with a whole budget again
        calls, attempt = _failing([_status(500)] * 2)
        assert await retrying(attempt, policy, RatePause(), url="u") == "ok"
        assert len(calls) == 3
    calls, attempt = _failing([_status(500)] * 3)
    with pytest.raises(APIStatusError):
        await retrying(attempt, policy, RatePause(), url="u")
    assert len(calls) == 3


async def test_an_error_given_up_on_has_no_other_error_chained() -> None:
    policy = RetryPolicy(max_retries=1, initial_delay=0, max_delay=0)
    _calls, attempt = _failing([_status(503), _status(500)])
    with pytest.raises(APIStatusError) as caught:
        await retrying(attempt, policy, RatePause(), url="u")
    assert caught.value.status == 500
    assert caught.value.__context__ is None
    assert caught.value.__cause__ is None


async def test_a_retry_after_longer_than_allowed_says_so_and_how_to_allow_it() -> None:
    policy = RetryPolicy(max_retries=3, max_retry_after=60)
    error = RateLimitError(429, code="RATE", retry_after=120, url="http://x/b?from=0")
    _calls, attempt = _failing([error])
    with pytest.raises(RateLimitError) as caught:
        await retrying(attempt, policy, RatePause(), url="http://x/b?from=0")
    text = str(caught.value)
    assert "wait 120 s" in text
    assert "max_retry_after=60 s" in text
    assert "RetryPolicy(max_retry_after=" in text
    assert caught.value.retry_after == 120
    assert caught.value.code == "RATE"
    assert caught.value.url == "http://x/b?from=0"
    assert caught.value.__context__ is None


async def test_a_429_given_up_for_its_budget_is_raised_as_it_came() -> None:
    # Out of retries, the long wait is not why the loop gave up.
    policy = RetryPolicy(max_retries=0, max_retry_after=60)
    error = RateLimitError(429, retry_after=120)
    _calls, attempt = _failing([error])
    with pytest.raises(RateLimitError) as caught:
        await retrying(attempt, policy, RatePause(), url="u")
    assert caught.value is error


async def test_a_retry_log_line_names_the_url_once(caplog: pytest.LogCaptureFixture) -> None:
    policy = RetryPolicy(max_retries=1, initial_delay=0, max_delay=0)
    url = "http://x/batch/scrape/b?from=10"
    _calls, attempt = _failing([status_error_class(503)(503, url=url)])
    with caplog.at_level(logging.INFO, logger="blat_async"):
        await retrying(attempt, policy, RatePause(), url=url)
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retry")]
    assert line.count(url) == 1, line
    assert line == f"retry 1 of 1 for GET {url} in 0.00 s: HTTP 503"


# -- the client's request slots ------------------------------------------------------


async def test_slots_are_taken_at_once_while_free_and_given_back() -> None:
    slots = Slots(2)

    assert [slots.take_nowait() for _ in range(3)] == [True, True, False]
    slots.give_back()
    assert slots.take_nowait()


async def test_slots_serve_waiters_in_the_order_they_came() -> None:
    slots = Slots(1)
    assert slots.take_nowait()
    served: list[int] = []

    async def request(number: int) -> None:
        await slots.take()
        served.append(number)

    waiting = [asyncio.create_task(request(number)) for number in range(4)]
    await asyncio.sleep(0)
    for _ in range(4):
        assert not slots.take_nowait()  # a newcomer never jumps the queue
        slots.give_back()
        await asyncio.sleep(0)

    async with asyncio.timeout(5):
        await asyncio.gather(*waiting)
    assert served == [0, 1, 2, 3]


async def _two_waiting() -> tuple[Slots, asyncio.Task[None], asyncio.Task[None]]:
    """One slot, taken, and two requests waiting for it in turn."""
    slots = Slots(1)
    assert slots.take_nowait()
    first = asyncio.create_task(slots.take())
    second = asyncio.create_task(slots.take())
    await asyncio.sleep(0)
    return slots, first, second


async def test_a_waiter_cancelled_in_the_queue_takes_no_slot() -> None:
    slots, first, second = await _two_waiting()

    first.cancel()
    await asyncio.sleep(0)
    slots.give_back()
    async with asyncio.timeout(5):
        await second

    assert first.cancelled()
    assert not slots.take_nowait()  # the second holds the only slot
    slots.give_back()
    assert slots.take_nowait()


async def test_a_waiter_cancelled_after_it_was_handed_a_slot_passes_it_on() -> None:
    slots, first, second = await _two_waiting()

    slots.give_back()  # handed to the first, which has not run yet
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    async with asyncio.timeout(5):
        await second

    assert first.cancelled()
    assert not slots.take_nowait()  # the second holds the only slot
