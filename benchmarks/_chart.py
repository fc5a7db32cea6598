"""``--chart``: blat_async's speed-ups of one run as a bar chart, with the targets as lines.

matplotlib comes with the ``bench`` extra only, so it is imported when a
chart is asked for, never by ``--smoke`` or a run without ``--chart``.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from _scenarios import BLAT, FLOOR_C6, RAW, Scenario
from _stats import ReaderRuns, ratio
from _targets import BASELINE_NAMES, SPEED_TARGETS

_BAR: Final = "#4477aa"
_TARGET: Final = "#cc3311"


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: blat_async's defaults against one reader in one scenario."""

    label: str
    speed_up: float
    target: float | None


def bars(all_runs: dict[str, dict[str, ReaderRuns]], by_key: dict[str, Scenario]) -> list[Bar]:
    """blat_async's defaults against the raw loop in each scenario, and against zero-waste (6)."""
    found: list[Bar] = []
    for key, runs in all_runs.items():
        title = by_key[key].title.split(":")[0]
        for against in (RAW, FLOOR_C6):
            if against not in runs or BLAT not in runs:
                continue
            speed_up = ratio(runs[against], runs[BLAT])
            if math.isnan(speed_up):
                continue
            label = f"({key}) {title}"
            if against != RAW:
                label = f"({key}) vs {BASELINE_NAMES[against]}"
            found.append(Bar(label, speed_up, SPEED_TARGETS.get((key, against))))
    return found


def draw(found: list[Bar], path: Path, title: str) -> str | None:
    """Draw ``found`` into the PNG at ``path``; return why not when matplotlib is missing."""
    try:
        # By name: matplotlib is optional, and absent where mypy runs in CI.
        figure_module: Any = importlib.import_module("matplotlib.figure")
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]')"
    figure = figure_module.Figure(figsize=(8, 4.2), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    positions = range(len(found))
    axes.bar(positions, [bar.speed_up for bar in found], width=0.6, color=_BAR)
    labelled = False
    for position, bar in zip(positions, found, strict=True):
        axes.annotate(
            f"{bar.speed_up:.2f}x",
            (position, bar.speed_up),
            textcoords="offset points",
            xytext=(0, 3),
            ha="center",
            fontsize=9,
        )
        if bar.target is not None:
            # One legend entry for every target line.
            label = None if labelled else "target"
            labelled = True
            axes.hlines(
                bar.target, position - 0.4, position + 0.4, colors=_TARGET, linewidth=2, label=label
            )
    axes.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    axes.set_yscale("log")
    values = [bar.speed_up for bar in found] + [bar.target or 1.0 for bar in found]
    low, high = min([0.4, *values]) / 1.4, max([4.0, *values]) * 1.4
    ticks = [2.0**power for power in range(-8, 8) if low <= 2.0**power <= high]
    axes.set_yticks(ticks, labels=[f"{tick:g}x" for tick in ticks])
    axes.minorticks_off()
    axes.set_ylim(low, high)
    axes.set_xticks(list(positions), labels=[bar.label for bar in found], fontsize=8)
    axes.tick_params(axis="x", labelrotation=20)
    axes.set_ylabel("speed-up of blat_async's defaults (log)")
    axes.set_title(title, fontsize=10)
    axes.legend(loc="upper left", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return None
