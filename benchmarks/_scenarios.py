"""The benchmark's scenarios: each a batch shape, and the readers that read it."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Final

from blat_async.testing import DEFAULT_PAGE_SIZE

RAW: Final = "raw"
GENERATED: Final = "generated"
BLAT: Final = "blat_async"
BLAT_C8: Final = "blat_async-c8"
COLLECT: Final = "collect-all"
SERVER: Final = "server"
FLOOR: Final = "zero-waste"
FLOOR_C6: Final = "zero-waste-c6"


@dataclass(frozen=True, slots=True)
class Scenario:
    """One batch shape and the readers that read it."""

    key: str
    title: str
    size: int
    smoke_size: int
    """The size ``--smoke`` reads instead."""
    page_size: int
    links: int
    latency: float
    readers: tuple[str, ...]
    kind: str = "sitemap"
    """The endpoint: ``sitemap`` (``batch/scrape_sitemap/``) or ``scrape`` (``batch/scrape/``)."""
    content_bytes: int = 0
    """The ``content`` of each successful item of a scrape batch, in bytes."""

    @property
    def pages(self) -> int:
        return math.ceil(self.size / self.page_size)

    def describe(self) -> str:
        latency = f"{self.latency * 1000:g} ms a request" if self.latency else "no latency"
        content = f"{self.content_bytes:,} bytes of content and " if self.content_bytes else ""
        return (
            f"{self.size:,} items, {self.pages:,} pages of {self.page_size:,}, "
            f"{content}{self.links} links an item, {latency}"
        )


_SCENARIOS: Final = (
    Scenario(
        key="a",
        title=f"CPU-bound: zero latency, pages of {DEFAULT_PAGE_SIZE}",
        size=40_000,
        smoke_size=300,
        page_size=DEFAULT_PAGE_SIZE,
        links=3,
        latency=0.0,
        readers=(SERVER, FLOOR_C6, RAW, GENERATED, BLAT, BLAT_C8),
    ),
    Scenario(
        key="b",
        title="Big pages: 1,000 items of 20 links",
        size=30_000,
        smoke_size=2_000,
        page_size=1_000,
        links=20,
        latency=0.0,
        readers=(RAW, GENERATED, BLAT, BLAT_C8),
    ),
    Scenario(
        key="c",
        title="Latency-bound: 20 ms a request",
        size=2_000,
        smoke_size=200,
        page_size=DEFAULT_PAGE_SIZE,
        links=3,
        latency=0.020,
        readers=(FLOOR, RAW, GENERATED, BLAT, BLAT_C8),
    ),
    Scenario(
        key="d",
        title="Memory: a long batch of big pages streamed",
        size=200_000,
        smoke_size=2_000,
        page_size=1_000,
        links=20,
        latency=0.0,
        readers=(RAW, BLAT, COLLECT),
    ),
    Scenario(
        key="d3",
        title="Memory: the same batch with light items",
        size=200_000,
        smoke_size=2_000,
        page_size=100,
        links=3,
        latency=0.0,
        readers=(RAW, BLAT, COLLECT),
    ),
    Scenario(
        key="e",
        title="Requests: pages of 1,000",
        size=20_000,
        smoke_size=3_000,
        page_size=1_000,
        links=0,
        latency=0.0,
        readers=(RAW, BLAT),
    ),
    Scenario(
        key="s",
        title="Scrape: pages of 10 items of 50 KB content",
        size=2_000,
        smoke_size=100,
        page_size=DEFAULT_PAGE_SIZE,
        links=3,
        latency=0.0,
        readers=(RAW, GENERATED, BLAT),
        kind="scrape",
        content_bytes=50_000,
    ),
)


def scenarios(smoke: bool) -> list[Scenario]:
    """Every scenario, full size or tiny for ``--smoke``."""
    if smoke:
        return [replace(scenario, size=scenario.smoke_size) for scenario in _SCENARIOS]
    return list(_SCENARIOS)


def full_size(key: str) -> Scenario:
    """The full-size scenario ``key``."""
    return next(scenario for scenario in _SCENARIOS if scenario.key == key)
