"""Running a fake server's event loop in a background thread, for synchronous code."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator


@contextlib.contextmanager
def serve_in_thread(
    start: Callable[[], Awaitable[None]], close: Callable[[], Awaitable[None]], name: str
) -> Iterator[None]:
    """Run ``start()`` on a new event loop in a daemon thread, and ``close()`` on leaving."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=_run_loop, args=(loop,), name=name, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(_await(start), loop).result()
        yield
    finally:
        try:
            asyncio.run_coroutine_threadsafe(_await(close), loop).result()
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()


async def _await(step: Callable[[], Awaitable[None]]) -> None:
    await step()


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Run ``loop`` until stopped, then clean it up and close it (in its own thread)."""
    try:
        loop.run_forever()
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
