"""Every default of the client in one place; each is overridable per client or per call."""

from __future__ import annotations

from typing import Final

DEFAULT_BASE_URL: Final = "https://api.blat.ai"
API_KEY_ENV: Final = "BLAT_API_KEY"
BASE_URL_ENV: Final = "BLAT_BASE_URL"
ALLOW_INSECURE_HTTP_ENV: Final = "BLAT_ALLOW_INSECURE_HTTP"

DEFAULT_TIMEOUT: Final = 30.0
"""Seconds one attempt (connect, send, read the whole body) may take."""

DEFAULT_CONCURRENCY: Final = 6
"""Page requests a read keeps in flight.

Six hides nearly all the network wait of a long read (at 100 ms a request,
a read of 10-item pages goes from 100 to about 600 items a second) while
staying at the per-host connection count browsers use, which servers are
sized for. A 429 lowers it for the rest of the read.
"""

GUESSED_PAGE_SIZE: Final = 10
"""The page size a client assumes until a page shows the server's own.

The API's batch endpoints document pages of 10. With a guess, a read's first
round already asks ``concurrency`` pages instead of waiting a round trip for
the first one; the cost of a wrong guess is bounded by that first round.
"""

READ_AHEAD_PAGES_PER_REQUEST: Final = 2
"""Pages a read may hold at once, per request it keeps in flight.

Counting those in flight, those buffered, and those being handed out.
"""

DEFAULT_POLL_INTERVAL: Final = 2.0
"""Seconds a follow-mode read first waits when it has caught up with a running batch."""

MAX_POLL_INTERVAL: Final = 30.0
"""The longest wait between two polls of a running batch that brought nothing new."""
