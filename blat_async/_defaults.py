"""The client's defaults, in one place.

Most can be overridden per client or per call; the rest (the poll growth,
the read-ahead window) shape what every read does and are tuned here.
Constants private to one module's rules live beside the code that uses them
(the repeat check's in ``_repeats.py``, the error excerpt's in ``_protocol.py``).
"""

from __future__ import annotations

from typing import Final

DEFAULT_BASE_URL: Final = "https://api.blat.ai"
API_KEY_ENV: Final = "BLAT_API_KEY"
BASE_URL_ENV: Final = "BLAT_BASE_URL"
ALLOW_INSECURE_HTTP_ENV: Final = "BLAT_ALLOW_INSECURE_HTTP"

DEFAULT_PAGE_SIZE: Final = 10
"""The most items a page of a `FakeBlatServer`'s batch holds unless told otherwise.

Ten, as the API's batch endpoints send. Here rather than in
`blat_async.testing` so that the command line can show it without loading
the fake server.
"""

DEFAULT_TIMEOUT: Final = 30.0
"""Seconds one attempt (connect, send, read the whole body) may take."""

DEFAULT_CONCURRENCY: Final = 6
"""Page requests a read keeps in flight.

Six hides nearly all the network wait of a long read (at 100 ms a request,
a read of 10-item pages goes from 100 to about 600 items a second) while
staying at the per-host connection count browsers use, which servers are
sized for. A 429 halves the read's limit, and each success after it lets
one more request back in, up to this concurrency (`Throttle` in ``_retry.py``).
"""

READ_AHEAD_PAGES_PER_REQUEST: Final = 2
"""Pages a read may hold at once, per request it keeps in flight.

Counting those in flight, those buffered, and the one being handed out.
"""

DEFAULT_MAX_IN_FLIGHT: Final = 64
"""Requests a client keeps in flight across all its reads.

A crawler that reads fifty batches at once at ``concurrency=6`` would want
300: past this, requests wait their turn (not against their timeout), and
the client's connection pool is sized to match.
"""

DEFAULT_MAX_RETRIES: Final = 3
"""Retries after a request's first attempt (`RetryPolicy.max_retries`)."""

DEFAULT_INITIAL_DELAY: Final = 0.5
"""The cap of the first backoff, in seconds (`RetryPolicy.initial_delay`)."""

DEFAULT_MAX_DELAY: Final = 8.0
"""The largest backoff, in seconds (`RetryPolicy.max_delay`)."""

DEFAULT_MAX_RETRY_AFTER: Final = 60.0
"""The longest ``Retry-After`` a client waits, in seconds (`RetryPolicy.max_retry_after`)."""

DEFAULT_POLL_INTERVAL: Final = 2.0
"""Seconds a follow-mode read first waits when it has caught up with a running batch."""

POLL_GROWTH: Final = 1.5
"""How much longer each wait between polls gets while nothing new comes."""

MAX_POLL_INTERVAL: Final = 30.0
"""The longest wait between two polls of a running batch that brought nothing new."""
