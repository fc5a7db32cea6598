"""The fake server used the way a user's tests would; checked by ``mypy --strict``, never run.

The lines marked ``type: ignore`` are misuse that mypy must refuse: with
``warn_unused_ignores`` (part of ``--strict``), mypy fails on this file if
they ever type-check.
"""

from __future__ import annotations

from blat_async.testing import (
    BatchKind,
    FakeBatch,
    FakeBlatServer,
    Fault,
    RecordedRequest,
)


async def serve_both_kinds() -> list[str]:
    async with FakeBlatServer() as server:
        sitemaps: FakeBatch = server.add_batch(size=25, failed=[3], latency=0.01)
        pages = server.add_batch(
            "pages", 30, kind="scrape", content_bytes=50_000, faults=[Fault.wrong_type()]
        )
        kind: BatchKind = pages.kind
        content: str = pages.content_of(0)
        assert content
        urls = [server.batch_url(sitemaps.batch_id), server.batch_url(pages.batch_id, 10)]
        urls.append(server.batch_url("other", kind=kind))
        asked: list[BatchKind | None] = [request.kind for request in server.requests]
        last: RecordedRequest | None = server.requests[-1] if server.requests else None
        assert last is None or last.kind in asked
        return urls


def misspelt_settings(server: FakeBlatServer) -> None:
    server.add_batch(size=25, faild=[3])  # type: ignore[call-arg]
    server.add_batch(size=25, kind="scrap")  # type: ignore[arg-type]
    server.add_batch(size=25, content_bytes="50kB")  # type: ignore[arg-type]
