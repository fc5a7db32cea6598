"""The targets blat_async is held to, checked on one run's measurements."""

from __future__ import annotations

import math
from dataclasses import dataclass

from _scenarios import BLAT, BLAT_C8, FLOOR, RAW, Scenario
from _stats import ReaderRuns, ratio
from _tables import span


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
        found.append(_speed_target("a", "defaults >= 1.0x raw items/s", runs, RAW, 1.0))
        found += _request_targets(by_key["a"], runs)
    if (runs := all_runs.get("b")) is not None:
        found.append(_speed_target("b", "defaults >= 0.6x raw items/s", runs, RAW, 0.6))
        found += _request_targets(by_key["b"], runs)
    if (runs := all_runs.get("c")) is not None:
        found.append(_speed_target("c", "defaults >= 3.5x faster than raw", runs, RAW, 3.5))
        found.append(_floor_target("c", runs, 1.05))
        found += _request_targets(by_key["c"], runs)
    if (runs := all_runs.get("d")) is not None:
        found += _memory_targets("d", runs)
        found.append(_speed_target("d", "defaults >= 0.6x raw items/s", runs, RAW, 0.6))
        found += _request_targets(by_key["d"], runs)
    if (runs := all_runs.get("e")) is not None:
        found += _request_targets(by_key["e"], runs, aligned=True)
    return found


def _speed_target(
    key: str, text: str, runs: dict[str, ReaderRuns], against: str, at_least: float
) -> Target:
    speed_up = ratio(runs.get(against), runs[BLAT]) if BLAT in runs else math.nan
    if math.isnan(speed_up):
        return Target(key, text, "not measured", None)
    return Target(key, text, f"{speed_up:.3f}x", speed_up >= at_least)


def _floor_target(key: str, runs: dict[str, ReaderRuns], within: float) -> Target:
    """concurrency=8 against the zero-waste floor: the same eight in flight, nothing decoded."""
    text = f"concurrency=8 within {within:.2f}x of the zero-waste floor"
    floor, c8 = runs.get(FLOOR), runs.get(BLAT_C8)
    if floor is None or c8 is None or not floor.results or not c8.results:
        return Target(key, text, "not measured", None)
    slower = c8.median_seconds / floor.median_seconds
    measured = f"{c8.median_seconds:.3f} vs {floor.median_seconds:.3f} s = {slower:.3f}x"
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
        text = f"{name}: requests == pages ({scenario.pages:,}) in every run"
        if not served:
            found.append(Target(scenario.key, text, "not measured", None, timed=False))
            continue
        counts = [one.requests for one in served]
        measured = f"{span(counts)} requests in {len(counts)} run(s)"
        passed = all(n == scenario.pages for n in counts)
        found.append(Target(scenario.key, text, measured, passed, timed=False))
        if aligned:
            found.append(_aligned_target(scenario, name, runs[reader]))
    return found


def _aligned_target(scenario: Scenario, name: str, runs: ReaderRuns) -> Target:
    """Every request of ``runs`` asks for an offset at a page boundary."""
    text = f"{name}: every request's from a multiple of {scenario.page_size:,}"
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


def _memory_targets(key: str, runs: dict[str, ReaderRuns]) -> list[Target]:
    """Peak RSS near the raw streaming loop's."""
    raw, blat = runs.get(RAW), runs.get(BLAT)
    text = "defaults' peak RSS within 10 MB of the raw streaming loop"
    if not (raw and blat and raw.results and blat.results):
        return [Target(key, text, "not measured", None)]
    extra = blat.median_peak_mib - raw.median_peak_mib
    measured = f"{blat.median_peak_mib:.1f} vs {raw.median_peak_mib:.1f} MiB ({extra:+.1f} MiB)"
    return [Target(key, text, measured, extra <= 10 * 1000**2 / 1024**2)]
