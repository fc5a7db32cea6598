"""``--profile``: where blat_async's time goes in one scenario, under cProfile.

It prints the share of own time by where the code lives (blat_async,
aiohttp, asyncio, C calls...), then blat_async's own functions, the top ones
by own time and by cumulative time, in microseconds a page.
"""

from __future__ import annotations

import os
import pstats
import tempfile
from pathlib import Path
from typing import Any, Final

from _processes import fake_server, run_reader
from _scenarios import BLAT, full_size

_PACKAGE: Final = "blat_async"
_TOP: Final = 10

_AREAS: Final = (
    ("blat_async", "blat_async/"),
    ("cattrs (generated hooks)", "<cattrs generated"),
    ("attrs' generated `__init__`", "<attrs generated"),
    ("aiohttp", "aiohttp/"),
    ("yarl / multidict", "yarl/"),
    ("yarl / multidict", "multidict/"),
    ("asyncio", "asyncio/"),
)


def _area(filename: str) -> str:
    for area, marker in _AREAS:
        if marker in filename:
            return area
    if filename == "~":
        return "built-ins (orjson, socket, C calls)"
    return "other"


def _own_functions(raw_stats: dict[Any, Any], pages: int, column: int) -> list[str]:
    """blat_async's own functions, the top ``_TOP`` by ``column`` (2: own time, 3: cumulative)."""
    rows = [(key, row) for key, row in raw_stats.items() if f"{_PACKAGE}{os.sep}" in key[0]]
    rows.sort(key=lambda pair: -pair[1][column])
    lines = [
        "| function | calls | own µs/page | cumulative µs/page |",
        "| --- | ---: | ---: | ---: |",
    ]
    for (filename, _line, name), row in rows[:_TOP]:
        calls, own, cumulative = row[1], row[2], row[3]
        where = f"`{Path(filename).name}:{name}`"
        own_us, cumulative_us = own / pages * 1e6, cumulative / pages * 1e6
        lines.append(f"| {where} | {calls:,} | {own_us:,.1f} | {cumulative_us:,.1f} |")
    return lines


def profile(key: str) -> int:
    """Profile blat_async's default reader in one scenario and print where the time goes."""
    scenario = full_size(key)
    with tempfile.TemporaryDirectory() as folder, fake_server(scenario) as server:
        output = Path(folder) / "blat.prof"
        result = run_reader(BLAT, scenario, server, None, [f"--profile={output}"])
        stats = pstats.Stats(str(output))
    print(f"# blat_async, defaults, scenario ({key}) under cProfile: {scenario.describe()}")
    print()
    per_page = result.seconds / scenario.pages * 1e6
    print(
        f"Read in {result.seconds:.2f} s under the profiler: {per_page:,.0f} µs a page"
        f" of {scenario.page_size:,} items."
    )
    print()
    # `Stats.stats` is the parsed profile, undocumented and missing from typeshed.
    raw_stats: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in raw_stats.values())
    by_area: dict[str, float] = {}
    for (filename, _line, _name), row in raw_stats.items():
        by_area[_area(filename)] = by_area.get(_area(filename), 0.0) + row[2]
    print("| where (own time) | share | µs/page |")
    print("| --- | ---: | ---: |")
    for area, seconds in sorted(by_area.items(), key=lambda pair: -pair[1]):
        print(f"| {area} | {seconds / total:.0%} | {seconds / scenario.pages * 1e6:,.1f} |")
    print()
    print(f"## blat_async's own functions, by own time (top {_TOP})")
    print()
    print("\n".join(_own_functions(raw_stats, scenario.pages, 2)))
    print()
    print(f"## blat_async's own functions, by cumulative time (top {_TOP})")
    print()
    print("\n".join(_own_functions(raw_stats, scenario.pages, 3)))
    print()
    print(
        "Own time is spent in the function itself; cumulative time includes what it"
        " calls (aiohttp's, the decoder's and the loop's work among it); a coroutine's"
        " calls count each time it resumes. Times are under cProfile, which slows"
        " Python calls more than C calls."
    )
    return 0
