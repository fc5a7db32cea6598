"""Benchmark blat_async against a raw aiohttp loop and a generated OpenAPI client.

    python benchmarks/run.py            # every scenario, 5 repetitions (a few minutes)
    python benchmarks/run.py --smoke    # tiny sizes, 1 repetition: checks that every reader works
    python benchmarks/run.py --only a,c --repeat 3
    python benchmarks/run.py --profile b  # where blat_async's time goes in scenario (b)

The scenarios, each a finished batch that reports its ``total``:

* (a) CPU-bound: 40,000 items in pages of 10, 3 links an item, no latency;
* (b) big pages: 30,000 items in pages of 1,000, 20 links an item, no latency;
* (c) latency-bound: 2,000 items in pages of 10 (200 pages), 20 ms a request;
* (d) memory: 200,000 items in pages of 100, 20 links an item, streamed,
  and (d3) the same batch with 3 links an item;
* (e) requests: 20,000 items in pages of 1,000, no links, no latency.

For each scenario, the fake server (`blat_async.testing.FakeBlatServer`) runs
in its own process on 127.0.0.1, on uvloop when it is installed (``--server-loop``
chooses), and every read runs in a fresh process of its own, on asyncio's own
loop, the readers taking turns within each repetition. The tables show median
and range of the read's wall time, the requests the reader sent (counted by
the server, beside the scenario's pages: one request a page wastes none),
items per second, the speed-up against the raw loop and the generated client
(above 1: faster), and each reader's peak resident memory. The targets are
checked on the same run: times and memory on the medians, requests on every
run.

The exit status is 1 only when a reader crashed or read the wrong number of
items or links; a missed target or a slow machine never fails the run.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any, Final

import openapi_gen
from _common import ReadResult

HERE: Final = Path(__file__).resolve().parent
_READER_TIMEOUT: Final = 300.0
_MIB: Final = 1024.0

RAW: Final = "raw"
GENERATED: Final = "generated"
BLAT: Final = "blat_async"
BLAT_C8: Final = "blat_async-c8"
COLLECT: Final = "collect-all"
SERVER: Final = "server"
FLOOR: Final = "zero-waste"

_READER_LABELS: Final = {
    SERVER: "server alone (8 in flight, bytes only)",
    FLOOR: "zero-waste floor (first page alone, then 8 in flight, bytes only)",
    RAW: "raw aiohttp loop",
    GENERATED: "generated (openapi-python-client)",
    BLAT: "blat_async, defaults",
    BLAT_C8: "blat_async, concurrency=8",
    COLLECT: "collect every page, then read",
}


@dataclass(frozen=True, slots=True)
class Scenario:
    """One batch shape and the readers that read it."""

    key: str
    title: str
    size: int
    page_size: int
    links: int
    latency: float
    readers: tuple[str, ...]

    @property
    def pages(self) -> int:
        return math.ceil(self.size / self.page_size)

    def describe(self) -> str:
        latency = f"{self.latency * 1000:g} ms a request" if self.latency else "no latency"
        return (
            f"{self.size:,} items, {self.pages:,} pages of {self.page_size:,}, "
            f"{self.links} links an item, {latency}"
        )


def scenarios(smoke: bool) -> list[Scenario]:
    """Every scenario, full size or tiny for ``--smoke``."""

    def size(full: int, tiny: int) -> int:
        return tiny if smoke else full

    return [
        Scenario(
            "a",
            "CPU-bound: zero latency, pages of 10",
            size(40_000, 300),
            10,
            3,
            0.0,
            (SERVER, RAW, GENERATED, BLAT, BLAT_C8),
        ),
        Scenario(
            "b",
            "Big pages: 1,000 items of 20 links",
            size(30_000, 2_000),
            1_000,
            20,
            0.0,
            (RAW, GENERATED, BLAT, BLAT_C8),
        ),
        Scenario(
            "c",
            "Latency-bound: 20 ms a request",
            size(2_000, 200),
            10,
            3,
            0.020,
            (FLOOR, RAW, GENERATED, BLAT, BLAT_C8),
        ),
        Scenario(
            "d",
            "Memory: a long batch of big pages streamed",
            size(200_000, 2_000),
            1_000,
            20,
            0.0,
            (RAW, BLAT, COLLECT),
        ),
        Scenario(
            "d3",
            "Memory: the same batch with light items",
            size(200_000, 2_000),
            100,
            3,
            0.0,
            (RAW, BLAT, COLLECT),
        ),
        Scenario(
            "e",
            "Requests: pages of 1,000",
            size(20_000, 3_000),
            1_000,
            0,
            0.0,
            (RAW, BLAT),
        ),
    ]


# --- Processes ------------------------------------------------------------------------


def _python(script: str, *arguments: str) -> list[str]:
    return [sys.executable, str(HERE / script), *arguments]


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
class ServerProcess:
    """The fake server's process, and the line protocol of `fake_server.py`."""

    process: subprocess.Popen[str]
    base_url: str
    encode_seconds: float
    loop: str
    """The server's event loop: uvloop or asyncio (the readers always run on asyncio's)."""

    def stats(self) -> Served:
        """The requests the server answered since the last call."""
        assert self.process.stdin is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        return Served.from_stats(_read_json_line(self.process.stdout))


def _read_json_line(stream: IO[str] | None) -> dict[str, Any]:
    import json

    assert stream is not None
    line = stream.readline()
    if not line:
        raise RuntimeError("the fake server exited early; see its messages above")
    document: dict[str, Any] = json.loads(line)
    return document


@contextmanager
def fake_server(scenario: Scenario, loop: str = "auto") -> Iterator[ServerProcess]:
    """Run the fake server for ``scenario`` in its own process while the block runs."""
    command = _python(
        "fake_server.py",
        f"--size={scenario.size}",
        f"--page-size={scenario.page_size}",
        f"--links={scenario.links}",
        f"--latency={scenario.latency}",
        f"--loop={loop}",
    )
    # This interpreter runs a script of this folder with arguments built here.
    process = subprocess.Popen(  # noqa: S603
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        hello = _read_json_line(process.stdout)
        yield ServerProcess(process, hello["base_url"], hello["encode_seconds"], hello["loop"])
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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


def run_reader(
    reader: str,
    scenario: Scenario,
    server: ServerProcess,
    generated: Path | None,
    extra: Sequence[str] = (),
) -> ReadResult:
    """Run one reader process against ``server``; raise `RuntimeError` if it fails."""
    command = _python(
        "readers.py",
        reader,
        f"--base-url={server.base_url}",
        f"--expect={scenario.size}",
        f"--page-size={scenario.page_size}",
        *([f"--generated={generated}"] if generated is not None else []),
        *extra,
    )
    # This interpreter runs a script of this folder with arguments built here.
    finished = subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, timeout=_READER_TIMEOUT, check=False
    )
    lines = finished.stdout.strip().splitlines()
    if finished.returncode != 0 or not lines:
        tail = " | ".join(finished.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"exit status {finished.returncode}: {tail or 'no output'}")
    return ReadResult.from_json(lines[-1])


def _check(result: ReadResult, scenario: Scenario, links: int | None) -> str | None:
    if result.items != scenario.size:
        return f"read {result.items} items, expected {scenario.size}"
    if links is not None and result.links >= 0 and result.links != links:
        return f"read {result.links} links, another reader read {links}"
    return None


def run_scenario(
    scenario: Scenario,
    repeat: int,
    generated: Path | None,
    log: Callable[[str], None],
    server_loop: str = "auto",
) -> tuple[dict[str, ReaderRuns], str]:
    """Run every reader of ``scenario`` ``repeat`` times, in turns.

    Returns the runs, and the event loop the server ran on.
    """
    readers = [r for r in scenario.readers if r != GENERATED or generated is not None]
    runs = {reader: ReaderRuns(reader) for reader in readers}
    links: int | None = None
    with fake_server(scenario, server_loop) as server:
        log(
            f"  server at {server.base_url} on {server.loop}, "
            f"pages encoded in {server.encode_seconds:.2f} s"
        )
        for repetition in range(repeat):
            # Each repetition starts with the next reader, so none always goes first.
            shift = repetition % len(readers)
            for reader in readers[shift:] + readers[:shift]:
                try:
                    result = run_reader(reader, scenario, server, generated)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    runs[reader].errors.append(str(exc))
                    log(f"  {reader}: CRASHED: {exc}")
                    server.stats()
                    continue
                served = server.stats()
                if served.unfinished:
                    log(f"  {reader}: {served.unfinished} request(s) still unfinished")
                problem = _check(result, scenario, links)
                if problem is not None:
                    runs[reader].errors.append(problem)
                    log(f"  {reader}: WRONG: {problem}")
                    continue
                if links is None and result.links >= 0:
                    links = result.links
                runs[reader].results.append(result)
                runs[reader].served.append(served)
            log(f"  repetition {repetition + 1}/{repeat} done")
    return runs, server.loop


# --- Reporting ------------------------------------------------------------------------


def _ratio(baseline: ReaderRuns | None, runs: ReaderRuns) -> float:
    if baseline is None or not baseline.results or not runs.results:
        return math.nan
    return baseline.median_seconds / runs.median_seconds


def _fmt(value: float, spec: str, suffix: str = "") -> str:
    return "n/a" if math.isnan(value) else f"{value:{spec}}{suffix}"


def _span(values: Sequence[int]) -> str:
    """``4,000`` when every run gave the same number, else ``4,000-4,005``."""
    low, high = min(values), max(values)
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def _requests_cell(runs: ReaderRuns) -> str:
    cell = _span([served.requests for served in runs.served])
    failed = [served.failed for served in runs.served]
    if any(failed):
        cell += f" ({_span(failed)} failed)"
    return cell


def scenario_table(scenario: Scenario, runs: dict[str, ReaderRuns]) -> list[str]:
    """The markdown table of one scenario."""
    raw, generated = runs.get(RAW), runs.get(GENERATED)
    # Without latency, the server answers each request before it reads the
    # next: it never holds more than one, whatever the client sends.
    in_flight = scenario.latency > 0
    header = ["reader", "median s", "min-max s", f"requests (pages: {scenario.pages:,})"]
    header += ["max in flight"] if in_flight else []
    header += ["items/s", "vs raw", "vs generated", "peak RSS MiB", "RSS growth MiB"]
    lines = [
        "| " + " | ".join(header) + " |",
        "| --- |" + " ---: |" * (len(header) - 1),
    ]
    for reader, reader_runs in runs.items():
        label = _READER_LABELS[reader]
        if not reader_runs.results:
            lines.append(f"| {label} | failed |" + " |" * (len(header) - 2))
            continue
        seconds = reader_runs.seconds
        median = reader_runs.median_seconds
        cells = [
            label,
            f"{median:.3f}",
            f"{min(seconds):.3f}-{max(seconds):.3f}",
            _requests_cell(reader_runs),
        ]
        if in_flight:
            cells.append(_span([served.max_in_flight for served in reader_runs.served]))
        cells += [
            f"{scenario.size / median:,.0f}",
            _fmt(_ratio(raw, reader_runs), ".2f", "x"),
            _fmt(_ratio(generated, reader_runs), ".2f", "x"),
            f"{reader_runs.median_peak_mib:.1f}",
            f"{reader_runs.median_growth_mib:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


@dataclass(frozen=True, slots=True)
class Target:
    """One target, measured in this run."""

    scenario: str
    text: str
    measured: str
    passed: bool | None
    """``None`` when it could not be measured (a reader was skipped or failed)."""

    def line(self) -> str:
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[self.passed]
        return f"| {self.scenario} | {self.text} | {self.measured} | **{verdict}** |"


def _speed_target(
    key: str, text: str, runs: dict[str, ReaderRuns], against: str, at_least: float
) -> Target:
    ratio = _ratio(runs.get(against), runs[BLAT]) if BLAT in runs else math.nan
    if math.isnan(ratio):
        return Target(key, text, "not measured", None)
    return Target(key, text, f"{ratio:.3f}x", ratio >= at_least)


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


def _floor_target(key: str, runs: dict[str, ReaderRuns], within: float) -> Target:
    """concurrency=8 against the zero-waste floor: the same eight in flight, nothing decoded."""
    text = f"concurrency=8 within {within:.2f}x of the zero-waste floor"
    floor, c8 = runs.get(FLOOR), runs.get(BLAT_C8)
    if floor is None or c8 is None or not floor.results or not c8.results:
        return Target(key, text, "not measured", None)
    ratio = c8.median_seconds / floor.median_seconds
    measured = f"{c8.median_seconds:.3f} vs {floor.median_seconds:.3f} s = {ratio:.3f}x"
    return Target(key, text, measured, ratio <= within)


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
            found.append(Target(scenario.key, text, "not measured", None))
            continue
        counts = [one.requests for one in served]
        measured = f"{_span(counts)} requests in {len(counts)} run(s)"
        found.append(Target(scenario.key, text, measured, all(n == scenario.pages for n in counts)))
        if not aligned:
            continue
        text = f"{name}: every request's from a multiple of {scenario.page_size:,}"
        froms = [offset for one in served for offset in one.froms]
        # `None`: the request had no `from`, or one the server could not read.
        off = [offset for offset in froms if offset is None or offset % scenario.page_size]
        if off:
            shown = sorted({-1 if offset is None else offset for offset in off})[:5]
            listed = ", ".join("none" if offset < 0 else f"{offset:,}" for offset in shown)
            measured = f"{len(off):,} of {len(froms):,} are not (from {listed}...)"
        else:
            measured = f"all {len(froms):,} are"
        found.append(Target(scenario.key, text, measured, not off))
    return found


def _memory_targets(key: str, runs: dict[str, ReaderRuns]) -> list[Target]:
    """Peak RSS near the raw streaming loop's."""
    raw, blat = runs.get(RAW), runs.get(BLAT)
    text = "defaults' peak RSS within 10 MB of the raw streaming loop"
    if not (raw and blat and raw.results and blat.results):
        return [Target(key, text, "not measured", None)]
    extra = blat.median_peak_mib - raw.median_peak_mib
    measured = f"{blat.median_peak_mib:.1f} vs {raw.median_peak_mib:.1f} MiB ({extra:+.1f} MiB)"
    return [Target(key, text, measured, extra <= 10 * 1000**2 / 1024**2)]


# --- Structuring micro-benchmark ------------------------------------------------------


def run_structuring(
    smoke: bool, generated: Path | None, items: int, links: int
) -> dict[str, Any] | None:
    """Time structuring alone in a fresh process; ``None`` (and a message) if it failed."""
    import json

    command = _python(
        "structuring.py",
        f"--items={items}",
        f"--links={links}",
        f"--repeat={1 if smoke else 7}",
        *([f"--generated={generated}"] if generated is not None else []),
    )
    # This interpreter runs a script of this folder with arguments built here.
    finished = subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, timeout=_READER_TIMEOUT, check=False
    )
    if finished.returncode != 0:
        print(f"structuring benchmark CRASHED: {finished.stderr.strip()[-500:]}")
        return None
    result: dict[str, Any] = json.loads(finished.stdout.strip().splitlines()[-1])
    return result


def structuring_table(results: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "| page | structure_page µs | by hand µs | generated from_dict µs "
        "| structure_page / by hand |",
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


# --- The machine ----------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> list[str]:
    """What the numbers were measured on."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    packages = ["blat-async", "aiohttp", "yarl", "attrs", "cattrs", "orjson", "httpx", "uvloop"]
    packages.append("openapi-python-client")
    versions = ", ".join(f"{package} {_version(package)}" for package in packages)
    return [
        f"- CPU: {_cpu_model()}, {os.cpu_count()} cores ({usable} usable), load {load}",
        f"- {platform.python_implementation()} {platform.python_version()} "
        f"on {platform.system()} {platform.release()}",
        f"- {versions}",
    ]


# --- Profile --------------------------------------------------------------------------

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
    scenario = next(s for s in scenarios(smoke=False) if s.key == key)
    with tempfile.TemporaryDirectory() as folder, fake_server(scenario) as server:
        output = Path(folder) / "blat.prof"
        result = run_reader(BLAT, scenario, server, None, [f"--profile={output}"])
        stats = pstats.Stats(str(output))
    print(f"# blat_async, defaults, scenario ({key}) under cProfile: {scenario.describe()}")
    print(f"read in {result.seconds:.2f} s under the profiler\n")
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


# --- Main -----------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 repetition")
    parser.add_argument("--repeat", type=int, help="repetitions (default 5, 1 with --smoke)")
    keys = [scenario.key for scenario in scenarios(smoke=False)]
    parser.add_argument("--only", help=f"scenarios to run, among {','.join(keys)} (default: all)")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="a",
        choices=keys,
        help="only profile blat_async in one scenario (default a) and print where the time goes",
    )
    parser.add_argument(
        "--server-loop",
        choices=["auto", "uvloop", "asyncio"],
        default="auto",
        help="the fake server's event loop (default: uvloop when installed); readers use asyncio's",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.profile:
        return profile(args.profile)
    repeat = args.repeat or (1 if args.smoke else 5)
    chosen = [s for s in scenarios(args.smoke) if not args.only or s.key in args.only.split(",")]
    started = time.perf_counter()

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    print("# blat_async benchmark" + (" (smoke)" if args.smoke else ""))
    print()
    print("\n".join(machine()))
    print(f"- command: python benchmarks/run.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"- {repeat} repetition(s), every read in a fresh process, readers in turns")
    print(
        "- requests: counted by the fake server while the reader ran, failed ones included;"
        " a reader that wastes none sends one a page. max in flight (with latency only):"
        " the most requests the server was answering at once"
    )
    print()
    crashed = False
    all_runs: dict[str, dict[str, ReaderRuns]] = {}
    with tempfile.TemporaryDirectory(prefix="blat-bench-") as workdir:
        generated = openapi_gen.generate(Path(workdir))
        if generated.folder is None:
            print(f"generated client: SKIPPED: {generated.reason}\n")
        else:
            print(
                f"generated client: openapi-python-client {generated.version}, in a temp folder\n"
            )
        for scenario in chosen:
            log(f"scenario ({scenario.key}): {scenario.describe()}")
            runs, server_loop = run_scenario(
                scenario, repeat, generated.folder, log, args.server_loop
            )
            all_runs[scenario.key] = runs
            crashed = crashed or any(r.errors for r in runs.values())
            print(f"## ({scenario.key}) {scenario.title}")
            print()
            print(f"{scenario.describe()}. The fake server runs on {server_loop}'s event loop.")
            print()
            print("\n".join(scenario_table(scenario, runs)))
            print()
            if SERVER in runs and runs[SERVER].results:
                server_rate = scenario.pages / runs[SERVER].median_seconds
                print(
                    f"The fake server alone answers {server_rate:,.0f} requests/s "
                    f"({scenario.size / runs[SERVER].median_seconds:,.0f} items/s) "
                    "to a client that decodes nothing."
                )
                print()
        if not args.only or "b" in args.only.split(","):
            log("structuring micro-benchmark")
            big = run_structuring(args.smoke, generated.folder, 1_000, 20)
            small = run_structuring(args.smoke, generated.folder, 10, 3)
            crashed = crashed or big is None or small is None
            results = [r for r in (big, small) if r is not None]
            if results:
                print("## Structuring alone (decoded JSON to objects, no HTTP)")
                print()
                print("\n".join(structuring_table(results)))
                print()
    by_key = {scenario.key: scenario for scenario in chosen}
    found = targets(all_runs, by_key)
    print("## Targets (time and memory: medians of this run; requests: every run)")
    print()
    print("| scenario | target | measured | result |")
    print("| --- | --- | --- | --- |")
    print("\n".join(target.line() for target in found))
    print()
    print(f"Finished in {time.perf_counter() - started:.0f} s.")
    if crashed:
        print("A reader CRASHED or read the wrong data: see the messages above.")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
