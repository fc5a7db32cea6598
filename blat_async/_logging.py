"""Logging to stderr on request, from the ``BLAT_LOG`` environment variable.

The library logs on the ``blat_async`` logger: each request at DEBUG
(``GET <url>``), each retry at INFO, a 429's pause included (``retry 1 of 3
for GET <url> in 2.00 s: 429 ...``). The key is in a header, never in a URL
or a message, so it never appears.

Like ``OPENAI_LOG`` for the OpenAI SDK, ``BLAT_LOG=info`` or ``BLAT_LOG=debug``
turns this on without code. `configure_from_env` runs each time a
`BlatClient` is created and does the least that shows the records:

- If the application already set the ``blat_async`` logger's level or gave it
  a handler, it has decided, and ``BLAT_LOG`` changes nothing.
- Otherwise the logger gets ``BLAT_LOG``'s level. A handler on stderr is
  added only if no handler would print the records (the root logger has
  none); an application that configured logging (``logging.basicConfig``)
  prints them through its own handlers, once.
- Once configured, the logger has a level, so later calls change nothing.

Any other value of ``BLAT_LOG`` is ignored, with one warning a call.
"""

from __future__ import annotations

import logging
import os
from typing import Final

__all__ = ["LOG_ENV", "configure_from_env", "logger"]

LOG_ENV: Final = "BLAT_LOG"

LOG_FORMAT: Final = "[%(asctime)s %(levelname)s %(name)s] %(message)s"

_LEVELS: Final = {"info": logging.INFO, "debug": logging.DEBUG}

logger = logging.getLogger("blat_async")


def configure_from_env() -> None:
    """Show the ``blat_async`` logger's records at ``BLAT_LOG``'s level, if it is set."""
    value = os.environ.get(LOG_ENV, "")
    if not value.strip():
        return
    level = _LEVELS.get(value.strip().lower())
    if level is None:
        logger.warning("%s=%r is not one of %s: ignored", LOG_ENV, value, ", ".join(_LEVELS))
        return
    if logger.level != logging.NOTSET or logger.handlers:
        return
    logger.setLevel(level)
    if not logger.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(handler)
