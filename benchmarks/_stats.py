"""What a benchmark run measured: each reader's reads and the server's view of them, and medians."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Final

from _common import ReadResult

_MIB: Final = 1024.0


@dataclass(frozen=True, slots=True)
class Served:
    """What the fake server answered while one reader ran: the requests the reader sent."""

    requests: int
    failed: int
    """Requests answered with another status than 200, or not answered."""
    max_in_flight: int
    froms: tuple[int | None, ...]
    """Each request's ``from``, in the order they finished (``None`` when absent)."""
    seconds: float
    """From the first request's arrival to the last one's end."""
    unfinished: int
    """Requests still being handled when the server reported; the next report counts them."""

    @classmethod
    def from_stats(cls, stats: dict[str, Any]) -> Served:
        return cls(
            requests=stats["requests"],
            failed=stats["failed"],
            max_in_flight=stats["max_in_flight"],
            froms=tuple(stats["froms"]),
            seconds=stats["seconds"],
            unfinished=stats["unfinished"],
        )


@dataclass(slots=True)
class ReaderRuns:
    """Every run of one reader in one scenario."""

    reader: str
    results: list[ReadResult] = field(default_factory=list)
    served: list[Served] = field(default_factory=list)
    """What the server answered during each of `results`, in the same order."""
    errors: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> list[float]:
        return [result.seconds for result in self.results]

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds) if self.results else math.nan

    @property
    def median_peak_mib(self) -> float:
        if not self.results:
            return math.nan
        return statistics.median(result.peak_rss_kib for result in self.results) / _MIB

    @property
    def median_growth_mib(self) -> float:
        """Peak memory above what the process held before the read, median."""
        if not self.results:
            return math.nan
        growth = [result.peak_rss_kib - result.baseline_rss_kib for result in self.results]
        return statistics.median(growth) / _MIB


def ratio(baseline: ReaderRuns | None, runs: ReaderRuns) -> float:
    """How many times faster ``runs`` read than ``baseline``, on the medians (NaN if unknown)."""
    if baseline is None or not baseline.results or not runs.results:
        return math.nan
    return baseline.median_seconds / runs.median_seconds
