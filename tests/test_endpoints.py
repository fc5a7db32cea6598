"""The engine reads any ``from``-paged endpoint: a made-up one, given as data."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from aiohttp import web

from blat_async import BlatClient, ReadProgress, ResponseValidationError
from blat_async._converter import StructureError
from blat_async._endpoints import SCRAPE, SITEMAP, Endpoint
from blat_async._readahead import items_of, pages_of

from .conftest import loopback_app


@attrs.frozen
class Widget:
    name: str


@attrs.frozen
class WidgetPage:
    """A made-up page model: nothing of the engine knows it."""

    data: tuple[Widget, ...] = ()
    total: int | None = None
    processed: int | None = None
    status: str | None = None


def structure_widgets(value: Any) -> WidgetPage:
    if not isinstance(value, dict) or not isinstance(value.get("widgets"), list):
        raise StructureError("widgets", "expected a list")
    for index, raw in enumerate(value["widgets"]):
        if not isinstance(raw, str):
            raise StructureError(f"widgets[{index}]", "expected a string")
    return WidgetPage(
        data=tuple(Widget(name) for name in value["widgets"]),
        total=value.get("count"),
        status="completed",
    )


WIDGETS = Endpoint(
    name="widget page",
    path="v1/widgets/",
    structure=structure_widgets,
    max_response_bytes=1024 * 1024,
    read_ahead_bytes=64 * 1024,
)


def widget_server(total: int, page_size: int, asked: list[str]) -> Any:
    async def handle(request: web.Request) -> web.Response:
        asked.append(request.path_qs)
        assert request.path.startswith("/v1/widgets/box-1")
        start = int(request.query["from"])
        names = [f"w{i}" for i in range(start, min(start + page_size, total))]
        if start == 30:
            names = [7]  # type: ignore[list-item]
        return web.json_response({"widgets": names, "count": total})

    return loopback_app(handle)


async def test_a_made_up_endpoint_is_read_whole_by_the_engine() -> None:
    asked: list[str] = []
    async with (
        widget_server(25, 4, asked) as base_url,
        BlatClient("key", base_url=base_url, concurrency=3) as client,
    ):
        progress = ReadProgress()
        read = client._read(WIDGETS, "box-1", 0, None, None, False, 1.0)
        items = items_of(client._deliveries(read, progress), progress)
        names = [widget.name async for widget in items]
    assert names == [f"w{i}" for i in range(25)]
    # Requests equal pages: the first alone, then the known offsets.
    assert sorted(asked, key=lambda q: int(q.rpartition("=")[2])) == [
        f"/v1/widgets/box-1?from={offset}" for offset in range(0, 25, 4)
    ]
    assert progress.offset == 25
    assert progress.total == 25


async def test_a_made_up_endpoints_name_is_in_its_errors() -> None:
    asked: list[str] = []
    async with (
        widget_server(40, 10, asked) as base_url,
        BlatClient("key", base_url=base_url, max_retries=0) as client,
    ):
        read = client._read(WIDGETS, "box-1", 30, None, None, False, 1.0)
        pages = pages_of(client._deliveries(read, None), None)
        with pytest.raises(ResponseValidationError, match="widget page schema") as caught:
            await anext(pages)
    assert caught.value.path == "widgets[0]"


def test_the_two_batch_endpoints_are_data() -> None:
    assert SITEMAP.path == "batch/scrape_sitemap/"
    assert SCRAPE.path == "batch/scrape/"
    # A page of ten scraped documents is allowed more than a sitemap page.
    assert SCRAPE.max_response_bytes > SITEMAP.max_response_bytes
    assert json.dumps(attrs.asdict(SITEMAP, filter=lambda a, v: not callable(v)))
