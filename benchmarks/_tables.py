"""The report's markdown tables: two a scenario, and structuring alone."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

from _scenarios import (
    BLAT,
    BLAT_C8,
    COLLECT,
    FLOOR,
    FLOOR_C6,
    GENERATED,
    RAW,
    SERVER,
    Scenario,
)
from _stats import ReaderRuns, ratio

# Short, so that a table's rows fit a page; docs/performance.md describes each reader.
_READER_LABELS: Final = {
    SERVER: "server alone, 8 in flight",
    FLOOR: "zero-waste, 8 in flight",
    FLOOR_C6: "zero-waste, 6 in flight",
    RAW: "raw aiohttp loop",
    GENERATED: "generated client",
    BLAT: "blat_async, defaults",
    BLAT_C8: "blat_async, concurrency=8",
    COLLECT: "collect every page",
}


def _fmt(value: float, spec: str, suffix: str = "") -> str:
    return "n/a" if math.isnan(value) else f"{value:{spec}}{suffix}"


def span(values: Sequence[int]) -> str:
    """``4,000`` when every run gave the same number, else ``4,000-4,005``."""
    low, high = min(values), max(values)
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def _requests_cell(runs: ReaderRuns) -> str:
    cell = span([served.requests for served in runs.served])
    failed = [served.failed for served in runs.served]
    if any(failed):
        cell += f" ({span(failed)} failed)"
    return cell


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def scenario_table(scenario: Scenario, runs: dict[str, ReaderRuns]) -> list[str]:
    """The markdown tables of one scenario: speed, then requests and memory.

    Two narrow tables rather than one wide one, so that each fits a page.
    """
    raw, generated = runs.get(RAW), runs.get(GENERATED)
    # Without latency, the server answers each request before it reads the
    # next: it never holds more than one, whatever the client sends.
    in_flight = scenario.latency > 0
    speed: list[list[str]] = []
    load: list[list[str]] = []
    for reader, reader_runs in runs.items():
        label = _READER_LABELS[reader]
        if not reader_runs.results:
            speed.append([label, "failed", "", "", "", ""])
            load.append([label, "failed", *([""] if in_flight else []), "", ""])
            continue
        seconds = reader_runs.seconds
        median = reader_runs.median_seconds
        speed.append(
            [
                label,
                f"{median:.3f}",
                f"{min(seconds):.3f}-{max(seconds):.3f}",
                f"{scenario.size / median:,.0f}",
                _fmt(ratio(raw, reader_runs), ".2f", "x"),
                _fmt(ratio(generated, reader_runs), ".2f", "x"),
            ]
        )
        row = [label, _requests_cell(reader_runs)]
        if in_flight:
            row.append(span([served.max_in_flight for served in reader_runs.served]))
        row += [f"{reader_runs.median_peak_mib:.1f}", f"{reader_runs.median_growth_mib:.1f}"]
        load.append(row)
    speed_header = ["reader", "median s", "min-max s", "items/s", "vs raw", "vs generated"]
    load_header = ["reader", f"requests ({scenario.pages:,} pages)"]
    load_header += ["max in flight"] if in_flight else []
    load_header += ["peak RSS MiB", "RSS growth MiB"]
    return [*_table(speed_header, speed), "", *_table(load_header, load)]


def structuring_table(results: Sequence[dict[str, Any]]) -> list[str]:
    """The markdown table of the structuring micro-benchmark, one row a page shape."""
    lines = [
        "| page | structure_page µs | by hand µs | generated µs | time / by hand |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        generated = result.get("generated_from_dict")
        cells = [
            f"{result['items']:,} items of {result['links']} links",
            f"{result['structure_page'] * 1e6:,.1f}",
            f"{result['by_hand'] * 1e6:,.1f}",
            "skipped" if generated is None else f"{generated * 1e6:,.1f}",
            f"{result['structure_page'] / result['by_hand']:.2f}x",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
