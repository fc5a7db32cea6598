"""The ``blat-async`` command line, built on the public client only.

```text
blat-async items BATCH_ID [--links] [--from N] [--stop N]  # JSON Lines on stdout
blat-async status BATCH_ID       # status, processed, total, expiry
blat-async demo                  # a sample batch from the embedded fake server
blat-async serve                 # the fake server in the foreground
```

Exit codes: 0 success (and a closed pipe, as in ``| head``), 2 usage,
3 authentication or permission, 4 batch not found, 5 any other API error or
a response the client cannot read, 6 network, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import IO, Any, Final, NoReturn

import attrs

from . import __version__, _defaults
from ._readahead import ReadProgress
from ._retry import RetryPolicy
from .client import BlatClient
from .errors import (
    APIConnectionError,
    AuthenticationError,
    BlatError,
    NotFoundError,
    PermissionDeniedError,
)
from .models import BatchScrapeSitemapData

__all__ = ["ExitCode", "main"]

_DEMO_SIZE: Final = 120


class ExitCode(enum.IntEnum):
    """What the command's exit status means."""

    OK = 0
    """Success, or the reader of stdout went away (``| head``)."""
    USAGE = 2
    """A mistake in the command line."""
    AUTHENTICATION = 3
    """No key, a wrong key (401), or a key that may not read the batch (403)."""
    NOT_FOUND = 4
    """No batch has this id (404)."""
    API_ERROR = 5
    """Any other API error, or a response the client cannot read."""
    NETWORK = 6
    """No connection, a dropped connection, or a timeout."""
    INTERRUPTED = 130
    """Stopped by Ctrl-C."""


class _Usage(Exception):
    """A mistake in the command line that argparse could not see."""


@contextlib.contextmanager
def _arguments_checked() -> Iterator[None]:
    """Report the client's refusal of an argument as a usage error."""
    try:
        yield
    except (ValueError, TypeError) as error:
        raise _Usage(str(error)) from error


def _exit_code(error: BaseException) -> ExitCode:
    if isinstance(error, AuthenticationError | PermissionDeniedError):
        return ExitCode.AUTHENTICATION
    if isinstance(error, NotFoundError):
        return ExitCode.NOT_FOUND
    if isinstance(error, APIConnectionError):
        return ExitCode.NETWORK
    if isinstance(error, _Usage):
        return ExitCode.USAGE
    return ExitCode.API_ERROR


# -- output ------------------------------------------------------------------------


def _item_json(item: BatchScrapeSitemapData) -> str:
    """One item as one line of JSON, with the API's field names."""
    return json.dumps(attrs.asdict(item), ensure_ascii=False)


@contextlib.contextmanager
def _progress_bar(enabled: bool) -> Iterator[Any]:
    """A tqdm bar on stderr when it is a terminal, or ``None``."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(unit=" items", file=sys.stderr, dynamic_ncols=True) as bar:
        yield bar


async def _stream(client: BlatClient, args: argparse.Namespace, out: IO[str]) -> ReadProgress:
    """Write every item (or link) of the batch to ``out``; return the read's progress."""
    progress = ReadProgress()
    with _arguments_checked():
        pages = client.iter_batch_scrape_sitemap_pages(
            args.batch_id,
            args.start,
            args.stop,
            concurrency=args.concurrency,
            follow=args.follow,
            poll_interval=args.poll_interval,
            progress=progress,
        )
    with _progress_bar(not args.no_progress) as bar:
        async with contextlib.aclosing(pages):
            async for page in pages:
                if args.links:
                    out.writelines(f"{link}\n" for item in page.data for link in item.links)
                else:
                    out.writelines(f"{_item_json(item)}\n" for item in page.data)
                if bar is not None:
                    bar.total = progress.total
                    bar.set_postfix(processed=progress.processed, status=progress.status)
                    bar.update(len(page.data))
    out.flush()
    return progress


# -- commands ----------------------------------------------------------------------


def _client(
    args: argparse.Namespace, api_key: str | None = None, base_url: str | None = None
) -> BlatClient:
    api_key = api_key or args.api_key or os.environ.get("BLAT_API_KEY")
    if not api_key:
        _fail(ExitCode.AUTHENTICATION, "no API key: pass --api-key or set BLAT_API_KEY")
    with _arguments_checked():
        return BlatClient(
            api_key,
            base_url=base_url or args.base_url,
            timeout=args.timeout,
            retry=RetryPolicy(max_retries=args.retries),
            concurrency=args.concurrency,
            allow_insecure_http=args.allow_insecure_http or None,
        )


async def _items(args: argparse.Namespace) -> None:
    async with _client(args) as client:
        await _stream(client, args, sys.stdout)


async def _status(args: argparse.Namespace) -> None:
    async with _client(args) as client:
        with _arguments_checked():
            page = await client.get_batch_scrape_sitemap_status(args.batch_id)
    fields = {
        "status": page.status,
        "processed": page.processed,
        "total": page.total,
        "expires_at": page.expires_at,
    }
    if args.json:
        print(json.dumps(fields))
    else:
        for name, value in fields.items():
            print(f"{name}: {'-' if value is None else value}")


@contextlib.asynccontextmanager
async def _sample_server(args: argparse.Namespace) -> AsyncIterator[tuple[Any, list[str]]]:
    """The fake server with the sample batches that ``demo`` and ``serve`` offer."""
    from .testing import FakeBlatServer

    server = FakeBlatServer(host=args.host, port=args.port, api_key=args.fake_key)
    async with server:
        ids = []
        for number in range(args.batches):
            batch = server.add_batch(
                f"demo-{number + 1}",
                args.size,
                page_size=args.page_size,
                failed=0.1,
                latency=args.latency,
                jobs_per_second=args.jobs_per_second,
                seed=number,
            )
            ids.append(batch.batch_id)
        yield server, ids


async def _demo(args: argparse.Namespace) -> None:
    key = args.api_key or os.environ.get("BLAT_API_KEY")
    if key and args.batch_id:
        # With a key and a batch, the demo is the real thing.
        async with _client(args, api_key=key) as client:
            await _stream(client, args, sys.stdout)
        return
    args.host, args.port, args.fake_key = "127.0.0.1", 0, "demo-key"
    args.batches, args.jobs_per_second = 1, None
    async with _sample_server(args) as (server, [batch_id]):
        print(
            f"blat-async demo: streaming batch {batch_id} ({args.size} sitemap jobs, "
            f"10% failed) from the embedded fake server at {server.base_url}",
            file=sys.stderr,
        )
        args.batch_id = batch_id
        async with _client(args, api_key=server.api_key, base_url=server.base_url) as client:
            await _stream(client, args, sys.stdout)


async def _serve(args: argparse.Namespace) -> None:
    async with _sample_server(args) as (server, ids):
        print(f"base_url: {server.base_url}")
        print(f"api_key: {server.api_key}")
        for batch_id in ids:
            print(f"batch: {batch_id}")
        print("serving until interrupted (Ctrl-C)", file=sys.stderr)
        sys.stdout.flush()
        await asyncio.Event().wait()


# -- arguments ---------------------------------------------------------------------


def _offset(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blat-async",
        description="Read Blat batch sitemap scrape results.",
        epilog="Exit codes: 2 usage, 3 authentication, 4 not found, 5 API error, "
        "6 network, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--api-key", help="the API key (default: $BLAT_API_KEY)")
    connection.add_argument(
        "--base-url", help="the API's address (default: $BLAT_BASE_URL, then the real API)"
    )
    connection.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="accept a plain http:// base URL to a host that is not loopback",
    )
    connection.add_argument(
        "--timeout",
        type=_positive_float,
        default=_defaults.DEFAULT_TIMEOUT,
        help="seconds per attempt (default %(default)s)",
    )
    connection.add_argument(
        "--retries",
        type=_offset,
        default=RetryPolicy().max_retries,
        help="retries of a failed request (default %(default)s)",
    )
    connection.add_argument(
        "--concurrency",
        type=_positive_int,
        default=_defaults.DEFAULT_CONCURRENCY,
        help="page requests in flight (default %(default)s)",
    )

    reading = argparse.ArgumentParser(add_help=False)
    reading.add_argument(
        "--links", action="store_true", help="print every link, one per line, not items"
    )
    reading.add_argument(
        "--from", dest="start", type=_offset, default=0, help="the first offset to read"
    )
    reading.add_argument("--stop", type=_offset, help="the offset to stop before")
    reading.add_argument(
        "--follow", action="store_true", help="keep reading a running batch until it completes"
    )
    reading.add_argument(
        "--poll-interval",
        type=_positive_float,
        default=_defaults.DEFAULT_POLL_INTERVAL,
        help="first wait between polls of a followed batch (default %(default)s s, growing)",
    )
    reading.add_argument("--no-progress", action="store_true", help="never show a progress bar")

    items = commands.add_parser(
        "items",
        parents=[connection, reading],
        help="stream every item of a batch as JSON Lines (or its links)",
    )
    items.add_argument("batch_id", metavar="BATCH_ID")
    items.set_defaults(run=_items)

    status = commands.add_parser(
        "status", parents=[connection], help="print a batch's status, processed, total and expiry"
    )
    status.add_argument("batch_id", metavar="BATCH_ID")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(run=_status)

    fake = argparse.ArgumentParser(add_help=False)
    fake.add_argument(
        "--size", type=_offset, default=_DEMO_SIZE, help="sitemap jobs in a sample batch"
    )
    fake.add_argument("--page-size", type=_positive_int, default=10, help="items per page")
    fake.add_argument(
        "--latency", type=_non_negative_float, default=0.0, help="seconds per request"
    )

    demo = commands.add_parser(
        "demo",
        parents=[connection, reading, fake],
        help="stream a sample batch from the embedded fake server (no key needed)",
    )
    demo.add_argument(
        "batch_id",
        metavar="BATCH_ID",
        nargs="?",
        help="with an API key, stream this real batch instead",
    )
    demo.set_defaults(run=_demo)

    serve = commands.add_parser(
        "serve", parents=[fake], help="run the fake server in the foreground for other programs"
    )
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    serve.add_argument("--port", type=int, default=8089, help="the port (0: any free one)")
    serve.add_argument("--api-key", dest="fake_key", default="fake-blat-key", help="its key")
    serve.add_argument("--batches", type=_positive_int, default=1, help="sample batches")
    serve.add_argument(
        "--jobs-per-second",
        type=_positive_float,
        help="make the batches run: jobs appear at this rate",
    )
    serve.set_defaults(run=_serve)
    return parser


# -- running -----------------------------------------------------------------------


def _fail(code: ExitCode, message: str) -> NoReturn:
    print(f"blat-async: {message}", file=sys.stderr)
    raise SystemExit(int(code))


def _quiet_stdout() -> None:
    """After the reader of stdout went away, send what is left to /dev/null."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError):
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit code."""
    args = _parser().parse_args(argv)
    try:
        asyncio.run(args.run(args))
    except KeyboardInterrupt:
        with contextlib.suppress(BrokenPipeError):
            sys.stdout.flush()
        print("blat-async: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return ExitCode.OK
    except (BlatError, _Usage) as error:
        with contextlib.suppress(BrokenPipeError):
            sys.stdout.flush()
        _fail(_exit_code(error), str(error))
    except OSError as error:
        # The fake server of `demo` and `serve` could not listen (a port in use).
        _fail(ExitCode.NETWORK, str(error))
    return ExitCode.OK


def entry_point() -> NoReturn:
    """The ``blat-async`` console script."""
    # Ctrl-C raises KeyboardInterrupt inside asyncio.run, which cancels the
    # read cleanly; a second Ctrl-C is the default, immediate exit.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    raise SystemExit(main())
