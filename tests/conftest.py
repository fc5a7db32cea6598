"""Fixtures shared by the test suite: mocked HTTP, sample pages, and a strict event loop."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, cast

import aioresponses.core as aioresponses_core
import pytest
from aiohttp import ClientResponse, web
from aiohttp.abc import AbstractStreamWriter
from aioresponses import aioresponses

API_KEY = "sk-test-SECRET-4242"
BASE = "https://api.test.example/"


class _NoStreamWriter:
    """Stands in for the request's stream writer, which a mocked response never had."""

    output_size = 0


class _CompatClientResponse(ClientResponse):
    # aiohttp 3.14 made `stream_writer` a required argument of ClientResponse,
    # and aioresponses 0.7.9 does not pass it (aioresponses#289).
    def __init__(
        self, *args: Any, stream_writer: AbstractStreamWriter | None = None, **kwargs: Any
    ) -> None:
        if stream_writer is None:
            # A stand-in, not a writer: a mocked response only reads `output_size`.
            stream_writer = cast(AbstractStreamWriter, _NoStreamWriter())
        super().__init__(*args, stream_writer=stream_writer, **kwargs)


def _needs_shim() -> bool:
    parameter = inspect.signature(ClientResponse.__init__).parameters.get("stream_writer")
    return parameter is not None and parameter.default is inspect.Parameter.empty


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    """aioresponses, made to work with the installed aiohttp."""
    if _needs_shim():
        monkeypatch.setattr(aioresponses_core, "ClientResponse", _CompatClientResponse)
    with aioresponses() as mock:
        yield mock


@pytest.fixture(autouse=True)
async def strict_loop() -> AsyncIterator[None]:
    """Fail the test if the loop reports an error, such as a task exception never retrieved."""
    loop = asyncio.get_running_loop()
    reports: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reports.append(context))
    yield
    # Let callbacks scheduled by the test's last steps (generator finalizers) run.
    for _ in range(3):
        await asyncio.sleep(0)
    loop.set_exception_handler(previous)
    assert not reports, f"the event loop reported: {[r.get('message') for r in reports]}"


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own environment out of the tests."""
    for name in ("BLAT_API_KEY", "BLAT_BASE_URL", "BLAT_ALLOW_INSECURE_HTTP"):
        monkeypatch.delenv(name, raising=False)


def job(index: int, *, batch_id: str = "b1", success: bool = True) -> dict[str, Any]:
    """The JSON of sitemap job ``index``."""
    item: dict[str, Any] = {
        "metadata": {
            "batch_id": batch_id,
            "job_id": f"{batch_id}-job-{index}",
            "url": f"https://site{index}.example/sitemap.xml",
        },
        "success": success,
    }
    if success:
        item["links"] = [f"https://site{index}.example/a", f"https://site{index}.example/b"]
    else:
        item.update(error="sitemap unreachable", error_code="FETCH_FAILED", links=[])
    return item


def page(
    start: int,
    count: int,
    *,
    total: int | None,
    status: str = "completed",
    failed: Callable[[int], bool] = lambda _i: False,
) -> dict[str, Any]:
    """The JSON of a page holding jobs ``start`` to ``start + count``."""
    data = [job(i, success=not failed(i)) for i in range(start, start + count)]
    body: dict[str, Any] = {
        "status": status,
        "processed": sum(1 for i in range(start, start + count) if not failed(i)),
        "expires_at": "2026-12-05T12:00:00Z",
        "data": data,
    }
    if total is not None:
        body["total"] = total
    return body


def job_ids(items: Any) -> list[str]:
    """The job ids of items, in order."""
    return [item.metadata.job_id for item in items]


@asynccontextmanager
async def loopback_app(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """Serve ``handler`` for every GET on a free port of 127.0.0.1; yield its base URL."""
    app = web.Application()
    app.router.add_route("GET", r"/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()
