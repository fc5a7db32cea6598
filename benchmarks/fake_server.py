"""The benchmark's server process: `blat_async.testing.FakeBlatServer` with one batch.

The batch is a sitemap batch, or with ``--kind=scrape`` a scrape batch whose
items carry ``--content-bytes`` of content.

``run.py`` starts it with the batch's shape, reads one JSON line with the
address, then talks to it over stdin, one command a line:

* ``stats``: answer a JSON line with the requests served since the last
  ``stats`` (how many, how many failed, the most handled at once, each one's
  ``from``, how long the server was busy) and forget them, so that a long run
  does not pile up the server's request log. A request still being handled
  (one a reader gave up on, waiting out the latency) is waited for, up to
  5 s, and counted with the others; ``unfinished`` counts those that were
  not done by then, which the next ``stats`` counts;
* end of input: close the server and exit.

The server runs on uvloop when it is installed (the ``bench`` extra installs
it), unless ``--loop=asyncio``. The readers do not: they run on asyncio's own
loop, as applications do. On asyncio's loop, the server's work per request
(about 0.1 ms of CPU, two thirds of it in aiohttp.web and the loop) delays the
answers of a round of concurrent requests, and the server, not the client,
would set the pace of the latency-bound scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from _common import API_KEY, BATCH_ID

from blat_async.testing import FakeBlatServer


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, required=True, help="items in the batch")
    parser.add_argument("--page-size", type=int, required=True)
    parser.add_argument("--links", type=int, required=True, help="links per item")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument(
        "--kind",
        choices=("sitemap", "scrape"),
        default="sitemap",
        help="the endpoint that serves the batch",
    )
    parser.add_argument(
        "--content-bytes", type=int, default=0, help="content of each scrape item, in bytes"
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="the server's event loop (auto: uvloop when installed)",
    )
    return parser.parse_args()


Runner = Callable[[Coroutine[Any, Any, None]], None]


def _runner(choice: str) -> tuple[str, Runner]:
    """The event loop to serve on: its name and the function that runs a coroutine on it."""
    if choice != "asyncio":
        # Imported by name: uvloop is optional, and absent where mypy runs in CI.
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            if choice == "uvloop":
                raise SystemExit("--loop=uvloop, but uvloop is not installed") from None
        else:
            run: Runner = uvloop.run
            return "uvloop", run
    return "asyncio", asyncio.run


def _reply(document: object) -> None:
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


_SETTLE_SECONDS = 0.01
"""How long ``stats`` first lets requests that a finished reader left behind arrive."""
_SETTLE_LIMIT = 5.0
"""How long ``stats`` waits at most for the requests still being handled."""


async def _stats(server: FakeBlatServer) -> dict[str, object]:
    await asyncio.sleep(_SETTLE_SECONDS)
    # The server's handlers run on this loop: nothing is recorded between
    # reading the requests and forgetting them, as no await separates them.
    requests = server.requests
    max_in_flight = server.max_in_flight
    server.reset_requests()
    # A request is recorded when its handler ends. Right after a reset,
    # `max_in_flight` is the number of requests still being handled.
    deadline = time.monotonic() + _SETTLE_LIMIT
    while server.max_in_flight and time.monotonic() < deadline:
        await asyncio.sleep(_SETTLE_SECONDS)
        requests += server.requests
        server.reset_requests()
    # Requests still unfinished after the limit are counted by the next ``stats``.
    unfinished = server.max_in_flight
    if not requests:
        return {
            "requests": 0,
            "failed": 0,
            "max_in_flight": 0,
            "froms": [],
            "seconds": 0.0,
            "unfinished": unfinished,
        }
    first = min(request.started for request in requests)
    last = max(request.finished for request in requests)
    return {
        "requests": len(requests),
        "failed": sum(1 for request in requests if request.status != 200),
        "max_in_flight": max_in_flight,
        "froms": [request.from_ for request in requests],
        "seconds": last - first,
        "unfinished": unfinished,
    }


async def _serve(args: argparse.Namespace, loop_name: str) -> None:
    # Enough cache for every page of the largest batch, so none is encoded twice.
    cache_bytes = 1024 * 1024 * 1024
    async with FakeBlatServer(
        host="127.0.0.1", port=0, api_key=API_KEY, page_cache_bytes=cache_bytes
    ) as server:
        started = time.perf_counter()
        server.add_batch(
            BATCH_ID,
            args.size,
            page_size=args.page_size,
            kind=args.kind,
            links_per_job=args.links,
            content_bytes=args.content_bytes if args.kind == "scrape" else None,
            latency=args.latency,
            failed=0.05,
            preencode=True,
        )
        _reply(
            {
                "base_url": server.base_url,
                "api_key": server.api_key,
                "batch_id": BATCH_ID,
                "encode_seconds": time.perf_counter() - started,
                "loop": loop_name,
            }
        )
        loop = asyncio.get_running_loop()
        while command := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            if command == "stats":
                _reply(await _stats(server))
            else:
                _reply({"error": f"unknown command {command!r}"})


def main() -> None:
    args = _parse_args()
    loop_name, run = _runner(args.loop)
    run(_serve(args, loop_name))


if __name__ == "__main__":
    main()
