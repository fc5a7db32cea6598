"""Benchmark blat_async against a raw aiohttp loop and a generated OpenAPI client.

    python benchmarks/run.py            # every scenario, 5 repetitions (a few minutes)
    python benchmarks/run.py --smoke    # tiny sizes, 1 repetition: checks that every reader works
    python benchmarks/run.py --only a,c --repeat 3
    python benchmarks/run.py --profile b  # where blat_async's time goes in scenario (b)
    python benchmarks/run.py --chart docs/img/benchmark.png  # also draw the speed-ups

The scenarios, each a finished batch that reports its ``total``:

* (a) CPU-bound: 40,000 items in pages of 10, 3 links an item, no latency,
  also read by a zero-waste reader with six requests in flight that decodes
  nothing;
* (b) big pages: 30,000 items in pages of 1,000, 20 links an item, no latency;
* (c) latency-bound: 2,000 items in pages of 10 (200 pages), 20 ms a request;
* (d) memory: 200,000 items in pages of 100, 20 links an item, streamed,
  and (d3) the same batch with 3 links an item;
* (e) requests: 20,000 items in pages of 1,000, no links, no latency;
* (s) scrape: 2,000 items of 50,000 bytes of content and 3 links in pages of
  10, no latency, from ``GET /batch/scrape/{id}``; the others read
  ``GET /batch/scrape_sitemap/{id}``.

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

A last table counts the requests of the zero-waste rules' corner cases,
each read once in this process against servers on 127.0.0.1: finished
batches of 0 to 200 items at concurrency 1 to 8, a slice, a batch without
``total``, a followed batch that grows, and an offset that always fails.

``--chart PATH`` draws blat_async's speed-up over the raw loop in each
scenario, and over the zero-waste reader in (a), with the targets as lines,
into a PNG (matplotlib, from the ``bench`` extra, is needed then only).

The exit status is 1 only when a reader crashed or read the wrong number of
items or links; a missed target or a slow machine never fails the run. At
``--smoke`` sizes the time and memory targets are not judged at all.
"""

# The modules beside this one each do one job: _scenarios.py the scenarios,
# _processes.py the server's and the readers' processes, _stats.py what a run
# measured, _tables.py the tables, _targets.py the targets, _machine.py the
# machine, _profile.py --profile, _waste.py the requests of the corner cases,
# _chart.py --chart.

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import openapi_gen
from _machine import machine
from _processes import run_scenario, run_structuring
from _profile import profile
from _scenarios import SERVER, Scenario, scenarios
from _stats import ReaderRuns
from _tables import scenario_table, structuring_table
from _targets import targets
from _waste import waste_table

from blat_async.testing import DEFAULT_PAGE_SIZE


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
        "--chart",
        type=Path,
        metavar="PNG",
        help="draw blat_async's speed-ups and the targets into this PNG (needs matplotlib)",
    )
    parser.add_argument(
        "--server-loop",
        choices=["auto", "uvloop", "asyncio"],
        default="auto",
        help="the fake server's event loop (default: uvloop when installed); readers use asyncio's",
    )
    return parser.parse_args(argv)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _print_header(smoke: bool, repeat: int) -> None:
    print("# blat_async benchmark" + (" (smoke)" if smoke else ""))
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


def _print_scenario(scenario: Scenario, runs: dict[str, ReaderRuns], server_loop: str) -> None:
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


def _structuring(smoke: bool, generated: Path | None) -> bool:
    """Run and print the structuring micro-benchmark; return whether it crashed."""
    _log("structuring micro-benchmark")
    big = run_structuring(smoke, generated, 1_000, 20)
    small = run_structuring(smoke, generated, DEFAULT_PAGE_SIZE, 3)
    results = [r for r in (big, small) if r is not None]
    if results:
        print("## Structuring alone (decoded JSON to objects, no HTTP)")
        print()
        print("\n".join(structuring_table(results)))
        print()
    return big is None or small is None


def _chart(
    all_runs: dict[str, dict[str, ReaderRuns]], chosen: list[Scenario], path: Path, title: str
) -> None:
    # Imported here: it imports matplotlib by name, which only --chart needs.
    from _chart import bars, draw

    found = bars(all_runs, {scenario.key: scenario for scenario in chosen})
    why_not = draw(found, path, title)
    if why_not is None:
        print(f"Chart of the speed-ups written to {path}.")
    else:
        print(f"chart: SKIPPED: {why_not}")
    print()


def _print_targets(
    all_runs: dict[str, dict[str, ReaderRuns]], chosen: list[Scenario], smoke: bool
) -> None:
    found = targets(all_runs, {scenario.key: scenario for scenario in chosen})
    print("## Targets (time and memory: medians of this run; requests: every run)")
    print()
    print("| scenario | target | measured | result |")
    print("| --- | --- | --- | --- |")
    print("\n".join(target.line(smoke) for target in found))
    print()
    if smoke:
        print(
            "Time and memory targets are not judged at smoke sizes: reads of a few"
            " milliseconds measure start-up and noise, not the reader."
        )
        print()


def _waste() -> bool:
    """Print the requests of the zero-waste rules' corner cases; return whether one failed."""
    _log("requests in the corner cases of the zero-waste rules")
    lines, kept = waste_table()
    print("## Requests in the corner cases (each case read once, in this process)")
    print()
    print("\n".join(lines))
    print()
    return not kept


def _run(args: argparse.Namespace, chosen: list[Scenario], repeat: int) -> bool:
    """Run the chosen scenarios and print their tables; return whether a reader crashed."""
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
        if generated.folder is not None and generated.scrape_reason is not None:
            print(f"generated client of batch scrapes: SKIPPED: {generated.scrape_reason}\n")
        for scenario in chosen:
            _log(f"scenario ({scenario.key}): {scenario.describe()}")
            folder = generated.folder
            if scenario.kind == "scrape" and generated.scrape_reason is not None:
                folder = None
            runs, server_loop = run_scenario(scenario, repeat, folder, _log, args.server_loop)
            all_runs[scenario.key] = runs
            crashed = crashed or any(r.errors for r in runs.values())
            _print_scenario(scenario, runs, server_loop)
        if not args.only or "b" in args.only.split(","):
            crashed = _structuring(args.smoke, generated.folder) or crashed
    wasted = _waste() if not args.only else False
    _print_targets(all_runs, chosen, args.smoke)
    if args.chart is not None:
        title = "blat_async's defaults: speed-up over each reader, medians of "
        title += f"{repeat} run(s)" + (" (smoke sizes)" if args.smoke else "")
        _chart(all_runs, chosen, args.chart, title)
    if wasted:
        print("A read sent more requests than a corner case allows: see the table above.")
    return crashed


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.profile:
        return profile(args.profile)
    repeat = args.repeat or (1 if args.smoke else 5)
    chosen = [s for s in scenarios(args.smoke) if not args.only or s.key in args.only.split(",")]
    started = time.perf_counter()
    _print_header(args.smoke, repeat)
    crashed = _run(args, chosen, repeat)
    print(f"Finished in {time.perf_counter() - started:.0f} s.")
    if crashed:
        print("A reader CRASHED or read the wrong data: see the messages above.")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
