"""``--profile``: where blat_async's time goes in one scenario, under cProfile."""

from __future__ import annotations

import pstats
import tempfile
from pathlib import Path
from typing import Any, Final

from _processes import fake_server, run_reader
from _scenarios import BLAT, full_size

_AREAS: Final = (
    ("blat_async", "blat_async/"),
    ("cattrs (generated hooks)", "<cattrs generated"),
    ("attrs __init__", "<attrs generated"),
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


def profile(key: str) -> int:
    """Profile blat_async's default reader in one scenario and print where the time goes."""
    scenario = full_size(key)
    with tempfile.TemporaryDirectory() as folder, fake_server(scenario) as server:
        output = Path(folder) / "blat.prof"
        result = run_reader(BLAT, scenario, server, None, [f"--profile={output}"])
        stats = pstats.Stats(str(output))
    print(f"# blat_async, defaults, scenario ({key}) under cProfile: {scenario.describe()}")
    print(f"read in {result.seconds:.2f} s under the profiler\n")
    # `Stats.stats` is the parsed profile, undocumented and missing from typeshed.
    raw_stats: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in raw_stats.values())
    by_area: dict[str, float] = {}
    for (filename, _line, _name), row in raw_stats.items():
        by_area[_area(filename)] = by_area.get(_area(filename), 0.0) + row[2]
    print("| where (own time) | share |")
    print("| --- | ---: |")
    for area, seconds in sorted(by_area.items(), key=lambda pair: -pair[1]):
        print(f"| {area} | {seconds / total:.0%} |")
    print()
    stats.sort_stats("tottime").print_stats(25)
    return 0
