"""The targets blat_async is held to, checked on one run's measurements."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from _scenarios import BLAT, BLAT_C8, FLOOR, FLOOR_C6, RAW, Scenario
from _stats import ReaderRuns, ratio
from _tables import span

SPEED_TARGETS: Final = {
    ("a", RAW): 1.0,
    ("a", FLOOR_C6): 0.6,
    ("b", RAW): 1.0,
    ("c", RAW): 3.5,
    ("d", RAW): 0.6,
    ("s", RAW): 1.0,
}
"""The least speed-up of blat_async's defaults over a reader, by scenario and reader."""

BASELINE_NAMES: Final = {RAW: "raw", FLOOR_C6: "zero-waste (6)"}
"""The readers the speed targets compare against, as the targets table names them."""


@dataclass(frozen=True, slots=True)
class Target:
    """One target, measured in this run."""

    scenario: str
    text: str
    measured: str
    passed: bool | None
    """``None`` when it could not be measured (a reader was skipped or failed)."""
    timed: bool = True
    """Whether it judges time or memory, which reads at ``--smoke`` sizes are too short for."""

    def line(self, smoke: bool = False) -> str:
        if smoke and self.timed and self.passed is not None:
            return f"| {self.scenario} | {self.text} | {self.measured} | not judged |"
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[self.passed]
        return f"| {self.scenario} | {self.text} | {self.measured} | **{verdict}** |"


def targets(
    all_runs: dict[str, dict[str, ReaderRuns]], by_key: dict[str, Scenario]
) -> list[Target]:
    """Check the targets on this run: speed and memory on the medians, requests on every run."""
    found: list[Target] = []
    if (runs := all_runs.get("a")) is not None:
        found.append(_speed_target("a", runs, RAW))
        found.append(_speed_target("a", runs, FLOOR_C6))
        found += _request_targets(by_key["a"], runs)
    if (runs := all_runs.get("b")) is not None:
        found.append(_speed_target("b", runs, RAW))
        found += _request_targets(by_key["b"], runs)
    if (runs := all_runs.get("c")) is not None:
        found.append(_speed_target("c", runs, RAW))
        found.append(_floor_target("c", runs, 1.05))
        found += _request_targets(by_key["c"], runs)
    if (runs := all_runs.get("d")) is not None:
        found.append(_memory_target("d", runs, 10))
        found.append(_speed_target("d", runs, RAW))
        found += _request_targets(by_key["d"], runs)
    if (runs := all_runs.get("e")) is not None:
        found += _request_targets(by_key["e"], runs, aligned=True)
    if (runs := all_runs.get("s")) is not None:
        found.append(_speed_target("s", runs, RAW))
        found.append(_memory_target("s", runs, 16))
        found += _request_targets(by_key["s"], runs)
    return found


def _speed_target(key: str, runs: dict[str, ReaderRuns], against: str) -> Target:
    at_least = SPEED_TARGETS[key, against]
    text = f"defaults >= {at_least:.1f}x {BASELINE_NAMES[against]} items/s"
    speed_up = ratio(runs.get(against), runs[BLAT]) if BLAT in runs else math.nan
    if math.isnan(speed_up):
        return Target(key, text, "not measured", None)
    return Target(key, text, f"{speed_up:.3f}x", speed_up >= at_least)


def _floor_target(key: str, runs: dict[str, ReaderRuns], within: float) -> Target:
    """concurrency=8 against the zero-waste floor: the same eight in flight, nothing decoded."""
    text = f"concurrency=8 <= {within:.2f}x zero-waste (8)'s time"
    floor, c8 = runs.get(FLOOR), runs.get(BLAT_C8)
    if floor is None or c8 is None or not floor.results or not c8.results:
        return Target(key, text, "not measured", None)
    slower = c8.median_seconds / floor.median_seconds
    measured = f"{slower:.3f}x ({c8.median_seconds:.3f} s)"
    return Target(key, text, measured, slower <= within)


def _request_targets(
    scenario: Scenario, runs: dict[str, ReaderRuns], aligned: bool = False
) -> list[Target]:
    """blat_async sends one request a page, in every run; with ``aligned``, at page boundaries."""
    found: list[Target] = []
    for reader, name in ((BLAT, "defaults"), (BLAT_C8, "concurrency=8")):
        if reader not in runs:
            continue
        served = runs[reader].served
        text = f"{name}: requests == pages ({scenario.pages:,})"
        if not served:
            found.append(Target(scenario.key, text, "not measured", None, timed=False))
            continue
        counts = [one.requests for one in served]
        measured = f"{span(counts)} in {len(counts)} run(s)"
        passed = all(n == scenario.pages for n in counts)
        found.append(Target(scenario.key, text, measured, passed, timed=False))
        if aligned:
            found.append(_aligned_target(scenario, name, runs[reader]))
    return found


def _aligned_target(scenario: Scenario, name: str, runs: ReaderRuns) -> Target:
    """Every request of ``runs`` asks for an offset at a page boundary."""
    text = f"{name}: every from a multiple of {scenario.page_size:,}"
    froms = [offset for one in runs.served for offset in one.froms]
    # `None`: the request had no `from`, or one the server could not read.
    off = [offset for offset in froms if offset is None or offset % scenario.page_size]
    if off:
        shown = sorted({-1 if offset is None else offset for offset in off})[:5]
        listed = ", ".join("none" if offset < 0 else f"{offset:,}" for offset in shown)
        measured = f"{len(off):,} of {len(froms):,} are not (from {listed}...)"
    else:
        measured = f"all {len(froms):,} are"
    return Target(scenario.key, text, measured, not off, timed=False)


def _memory_target(key: str, runs: dict[str, ReaderRuns], megabytes: int) -> Target:
    """Peak RSS at most ``megabytes`` MB (10**6 bytes) above the raw streaming loop's."""
    raw, blat = runs.get(RAW), runs.get(BLAT)
    text = f"defaults' peak RSS <= raw's + {megabytes} MB"
    if not (raw and blat and raw.results and blat.results):
        return Target(key, text, "not measured", None)
    extra = blat.median_peak_mib - raw.median_peak_mib
    measured = f"{blat.median_peak_mib:.1f} MiB ({extra:+.1f} MiB)"
    return Target(key, text, measured, extra <= megabytes * 1000**2 / 1024**2)
