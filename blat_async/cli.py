"""The ``blat-async`` command line, built on blat_async's public names only.

```text
blat-async items BATCH_ID [--links] [--from N] [--stop N]  # JSON Lines on stdout
blat-async status BATCH_ID       # status, processed, total, expiry
blat-async demo                  # a sample batch from the embedded fake server
blat-async serve                 # the fake server in the foreground
```

Exit codes: 0 success (and a closed pipe, as in ``| head``), 2 usage,
3 authentication or permission, 4 batch not found, 5 any other API error or
a response the client cannot read, 6 network, 130 interrupted (Ctrl-C).

Its defaults are the client's: read from the signatures of `BlatClient` and
`RetryPolicy`, so that the two cannot differ. The key and the base URL are
left to the client, which reads ``BLAT_API_KEY`` and ``BLAT_BASE_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import inspect
import json
import logging
import os
import shlex
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from typing import IO, Any, Final, NoReturn

import attrs

from . import (
    FINAL_STATUSES,
    APIConnectionError,
    AuthenticationError,
    BatchScrapeSitemapData,
    BlatClient,
    BlatError,
    NotFoundError,
    PermissionDeniedError,
    ReadEnd,
    ReadProgress,
    RetryPolicy,
    __version__,
)

__all__ = ["ExitCode", "entry_point", "main"]

_PROG: Final = "blat-async"
_DEMO_SIZE: Final = 120
_DEMO_PAGE_SIZE: Final = 10


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


class _Failure(Exception):
    """A failure the command reports in one line, with its exit code."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code


# The client's messages name its arguments; the command line has flags.
_CLI_WORDS: Final = (
    ("api_key= to BlatClient", "--api-key"),
    ("allow_insecure_http=True", "--allow-insecure-http"),
    ("base_url", "--base-url"),
    ("api_key", "--api-key"),
    ("batch_id", "BATCH_ID"),
)


def _in_cli_words(message: str) -> str:
    for python, cli in _CLI_WORDS:
        message = message.replace(python, cli)
    return message


@contextlib.contextmanager
def _arguments_checked() -> Iterator[None]:
    """Report the client's refusal of an argument as a usage error, in the flags' names."""
    try:
        yield
    except (ValueError, TypeError) as error:
        raise _Failure(ExitCode.USAGE, _in_cli_words(str(error))) from error


def _exit_code(error: BlatError) -> ExitCode:
    if isinstance(error, AuthenticationError | PermissionDeniedError):
        return ExitCode.AUTHENTICATION
    if isinstance(error, NotFoundError):
        return ExitCode.NOT_FOUND
    if isinstance(error, APIConnectionError):
        return ExitCode.NETWORK
    return ExitCode.API_ERROR


def _say(message: str) -> None:
    print(f"{_PROG}: {message}", file=sys.stderr)


@attrs.define
class _Run:
    """One run of a command: its arguments, and the read that `main` reports on Ctrl-C."""

    args: argparse.Namespace
    progress: ReadProgress | None = None


# -- output ------------------------------------------------------------------------


def _item_json(item: BatchScrapeSitemapData) -> str:
    """One item as one line of JSON, with the API's field names."""
    return json.dumps(attrs.asdict(item), ensure_ascii=False)


def _bar_total(start: int, stop: int | None, total: int | None) -> int | None:
    """The items a read from ``start`` to ``stop`` hands out, in a batch of ``total`` jobs."""
    ends = [end for end in (stop, total) if end is not None]
    return max(0, min(ends) - start) if ends else None


@contextlib.contextmanager
def _progress_bar(enabled: bool, out: IO[str]) -> Iterator[Any]:
    """A tqdm bar on stderr when it is a terminal and ``out`` is not, or ``None``.

    On the terminal that shows the data, the bar's redraws would cut its
    lines, and the lines scrolling by already show the progress. The log
    lines of ``-v`` or ``BLAT_LOG`` are written above the bar, not through it.
    """
    if not enabled or not sys.stderr.isatty() or out.isatty():
        yield None
        return
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    logger = logging.getLogger("blat_async")
    # Without a handler of its own, the logger prints nothing the bar could cut.
    redirect = logging_redirect_tqdm([logger]) if logger.handlers else contextlib.nullcontext()
    with redirect, tqdm(unit=" items", file=sys.stderr, dynamic_ncols=True) as bar:
        yield bar


async def _stream(
    client: BlatClient, args: argparse.Namespace, batch_id: str, progress: ReadProgress
) -> None:
    """Write every item (or link) of the batch to stdout, updating ``progress``."""
    out = sys.stdout
    with _arguments_checked():
        pages = client.iter_batch_scrape_sitemap_pages(
            batch_id,
            args.start,
            args.stop,
            concurrency=args.concurrency,
            follow=args.follow,
            poll_interval=args.poll_interval,
            progress=progress,
        )
    with _progress_bar(not args.no_progress, out) as bar:
        async with contextlib.aclosing(pages):
            async for page in pages:
                if args.links:
                    out.writelines(f"{link}\n" for item in page.data for link in item.links)
                else:
                    out.writelines(f"{_item_json(item)}\n" for item in page.data)
                if bar is not None:
                    bar.total = _bar_total(args.start, args.stop, progress.total)
                    bar.set_postfix(processed=progress.processed, status=progress.status)
                    bar.update(len(page.data))
    out.flush()


def _unfinished(args: argparse.Namespace, batch_id: str, progress: ReadProgress) -> str | None:
    """What to say when a read without --follow ended at the end of a running batch."""
    status = progress.status
    if args.follow or progress.ended is not ReadEnd.EMPTY_PAGE or status is None:
        return None
    if status.strip().lower() in FINAL_STATUSES:
        return None
    of_total = "" if progress.total is None else f" of {progress.total}"
    again = f"{_PROG} {args.command} {shlex.quote(batch_id)} --from {progress.offset} --follow"
    return (
        f"batch {batch_id} is still {status}: read {progress.items} items, to offset "
        f"{progress.offset}{of_total}; --follow reads on as jobs complete: {again}"
    )


async def _read(run: _Run, client: BlatClient, batch_id: str) -> None:
    """Stream a batch as ``items`` does, and say so if it was still running."""
    run.progress = progress = ReadProgress(offset=run.args.start)
    await _stream(client, run.args, batch_id, progress)
    if (note := _unfinished(run.args, batch_id, progress)) is not None:
        _say(note)


# -- commands ----------------------------------------------------------------------


def _client(
    args: argparse.Namespace, api_key: str | None = None, base_url: str | None = None
) -> BlatClient:
    try:
        with _arguments_checked():
            return BlatClient(
                api_key or args.api_key,
                base_url=base_url or args.base_url,
                timeout=args.timeout,
                retry=RetryPolicy(max_retries=args.retries),
                allow_insecure_http=args.allow_insecure_http or None,
            )
    except BlatError as error:
        # The one BlatError of a new client: no key, and none in the environment.
        raise _Failure(ExitCode.AUTHENTICATION, _in_cli_words(str(error))) from error


async def _items(run: _Run) -> None:
    async with _client(run.args) as client:
        await _read(run, client, run.args.batch_id)


async def _status(run: _Run) -> None:
    args = run.args
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


@attrs.frozen
class _Sample:
    """The fake server and the sample batches that ``demo`` and ``serve`` start."""

    size: int
    page_size: int
    latency: float
    host: str = "127.0.0.1"
    port: int = 0
    api_key: str = "demo-key"
    batches: int = 1
    jobs_per_second: float | None = None


@contextlib.asynccontextmanager
async def _sample_server(sample: _Sample) -> AsyncIterator[tuple[Any, list[str]]]:
    from .testing import FakeBlatServer

    server = FakeBlatServer(host=sample.host, port=sample.port, api_key=sample.api_key)
    async with server:
        ids = []
        for number in range(sample.batches):
            batch = server.add_batch(
                f"demo-{number + 1}",
                sample.size,
                page_size=sample.page_size,
                failed=0.1,
                latency=sample.latency,
                jobs_per_second=sample.jobs_per_second,
                seed=number,
            )
            ids.append(batch.batch_id)
        yield server, ids


async def _demo(run: _Run) -> None:
    args = run.args
    if args.batch_id is not None:
        # With a batch id, the demo is the real thing.
        async with _client(args) as client:
            await _read(run, client, args.batch_id)
        return
    sample = _Sample(size=args.size, page_size=args.page_size, latency=args.latency)
    async with _sample_server(sample) as (server, [batch_id]):
        print(
            f"{_PROG} demo: streaming batch {batch_id} ({args.size} sitemap jobs, "
            f"10% failed) from the embedded fake server at {server.base_url}",
            file=sys.stderr,
        )
        async with _client(args, api_key=server.api_key, base_url=server.base_url) as client:
            await _read(run, client, batch_id)


async def _serve(run: _Run) -> None:
    args = run.args
    sample = _Sample(
        size=args.size,
        page_size=args.page_size,
        latency=args.latency,
        host=args.host,
        port=args.port,
        api_key=args.fake_key,
        batches=args.batches,
        jobs_per_second=args.jobs_per_second,
    )
    async with _sample_server(sample) as (server, ids):
        print(f"base_url: {server.base_url}")
        print(f"api_key: {server.api_key}")
        for batch_id in ids:
            print(f"batch: {batch_id}")
        _say("serving until interrupted (Ctrl-C)")
        sys.stdout.flush()
        await asyncio.Event().wait()


# -- arguments ---------------------------------------------------------------------


def _default(function: Callable[..., object], name: str) -> Any:
    """The default of one of the client's parameters: the command line uses the same."""
    return inspect.signature(function).parameters[name].default


def _batch_id(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


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


_EXIT_CODES: Final = {
    ExitCode.OK: "success, or the reader of stdout went away (| head)",
    ExitCode.USAGE: "a mistake in the command line",
    ExitCode.AUTHENTICATION: "no key, a wrong key (401), or no access to the batch (403)",
    ExitCode.NOT_FOUND: "no such batch, or it expired (404)",
    ExitCode.API_ERROR: "any other API error, or a response the client cannot read",
    ExitCode.NETWORK: "no connection, a dropped connection or a timeout, after the retries",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


def _epilog(examples: Sequence[str], codes: dict[ExitCode, str] | None = None) -> str:
    """The end of a command's help: examples, then what its exit codes mean."""
    lines = ["examples:", *(f"  {example}" for example in examples), "", "exit codes:"]
    lines += [f"  {int(code):>3}  {text}" for code, text in (codes or _EXIT_CODES).items()]
    return "\n".join(lines)


def _command(
    commands: Any,
    name: str,
    summary: str,
    examples: Sequence[str],
    parents: list[argparse.ArgumentParser],
    codes: dict[ExitCode, str] | None = None,
) -> argparse.ArgumentParser:
    """Add a command whose help ends with examples and its exit codes."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        parents=parents,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=_epilog(examples, codes),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _connection_flags() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--api-key", metavar="KEY", help="the API key (default: $BLAT_API_KEY)")
    flags.add_argument(
        "--base-url",
        metavar="URL",
        help="the API's address (default: $BLAT_BASE_URL, then the real API)",
    )
    flags.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="accept a plain http:// base URL to a host that is not loopback "
        "(default: $BLAT_ALLOW_INSECURE_HTTP, else refused)",
    )
    flags.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="SECONDS",
        default=_default(BlatClient, "timeout"),
        help="seconds each attempt may take (default: %(default)s)",
    )
    flags.add_argument(
        "--retries",
        type=_offset,
        metavar="N",
        default=_default(RetryPolicy, "max_retries"),
        help="retries of a failed request (default: %(default)s)",
    )
    flags.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log each retry and 429 pause on stderr; -vv each request too "
        "(default: $BLAT_LOG, else quiet)",
    )
    return flags


def _reading_flags() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument(
        "--links", action="store_true", help="print every link, one per line, not items"
    )
    flags.add_argument(
        "--from",
        dest="start",
        type=_offset,
        metavar="N",
        default=0,
        help="the first offset to read (default: %(default)s)",
    )
    flags.add_argument(
        "--stop",
        type=_offset,
        metavar="N",
        help="the offset to stop before (default: the end of the batch)",
    )
    flags.add_argument(
        "--follow", action="store_true", help="keep reading a running batch until it completes"
    )
    flags.add_argument(
        "--poll-interval",
        type=_positive_float,
        metavar="SECONDS",
        default=_default(BlatClient.iter_batch_scrape_sitemap_pages, "poll_interval"),
        help="first wait between polls of a followed batch, growing while idle "
        "(default: %(default)s s)",
    )
    flags.add_argument(
        "--concurrency",
        type=_positive_int,
        metavar="N",
        default=_default(BlatClient, "concurrency"),
        help="page requests in flight (default: %(default)s)",
    )
    flags.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (default: a bar on stderr when it is a terminal and stdout is not)",
    )
    return flags


def _fake_server_flags() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument(
        "--size",
        type=_offset,
        metavar="N",
        default=_DEMO_SIZE,
        help="sitemap jobs in a sample batch (default: %(default)s)",
    )
    flags.add_argument(
        "--page-size",
        type=_positive_int,
        metavar="N",
        default=_DEMO_PAGE_SIZE,
        help="items per page (default: %(default)s)",
    )
    flags.add_argument(
        "--latency",
        type=_non_negative_float,
        metavar="SECONDS",
        default=0.0,
        help="seconds each answer is delayed (default: %(default)s)",
    )
    return flags


def _add_items(commands: Any, connection: Any, reading: Any) -> None:
    items = _command(
        commands,
        "items",
        "stream every item of a batch as JSON Lines (or its links)",
        [
            f"{_PROG} items b-123 > b-123.jsonl",
            f"{_PROG} items b-123 --links --from 4000 --stop 5000 | sort -u",
            f"{_PROG} items b-123 --follow -v   # a running batch, showing retries",
        ],
        parents=[connection, reading],
    )
    items.add_argument("batch_id", metavar="BATCH_ID", type=_batch_id)
    items.set_defaults(run=_items)


def _add_status(commands: Any, connection: Any) -> None:
    status = _command(
        commands,
        "status",
        "print a batch's status, processed, total and expiry",
        [f"{_PROG} status b-123", f"{_PROG} status b-123 --json | jq .processed"],
        parents=[connection],
    )
    status.add_argument("batch_id", metavar="BATCH_ID", type=_batch_id)
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(run=_status)


def _add_demo(commands: Any, connection: Any, reading: Any, fake: Any) -> None:
    demo = _command(
        commands,
        "demo",
        "stream a sample batch from the embedded fake server (no key needed)",
        [
            f"{_PROG} demo | head -3",
            f"{_PROG} demo --size 1000 --page-size 50 --latency 0.05 > sample.jsonl",
        ],
        parents=[connection, reading, fake],
    )
    demo.add_argument(
        "batch_id",
        metavar="BATCH_ID",
        nargs="?",
        type=_batch_id,
        help="stream this real batch instead, as items does (needs a key)",
    )
    demo.set_defaults(run=_demo)


def _add_serve(commands: Any, fake: Any) -> None:
    serve = _command(
        commands,
        "serve",
        "run the fake server in the foreground for other programs",
        [
            f"{_PROG} serve --port 8089 --size 500 --batches 2",
            f"{_PROG} serve --jobs-per-second 20   # running batches, to try --follow",
        ],
        parents=[fake],
        codes={
            ExitCode.USAGE: _EXIT_CODES[ExitCode.USAGE],
            ExitCode.NETWORK: "cannot listen (the port is in use)",
            ExitCode.INTERRUPTED: "stopped by Ctrl-C, its usual end",
        },
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--port",
        type=int,
        default=8089,
        metavar="N",
        help="the port, 0 for any free one (default: %(default)s)",
    )
    serve.add_argument(
        "--api-key",
        dest="fake_key",
        metavar="KEY",
        default="fake-blat-key",
        help="the key it accepts (default: %(default)s)",
    )
    serve.add_argument(
        "--batches",
        type=_positive_int,
        metavar="N",
        default=1,
        help="sample batches, demo-1, demo-2... (default: %(default)s)",
    )
    serve.add_argument(
        "--jobs-per-second",
        type=_positive_float,
        metavar="N",
        help="make the batches run: jobs appear at this rate (default: all are done)",
    )
    serve.set_defaults(run=_serve)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Read Blat batch sitemap scrape results.",
        epilog="Each command's --help gives its flags, defaults, examples and exit codes.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    connection, reading, fake = _connection_flags(), _reading_flags(), _fake_server_flags()
    _add_items(commands, connection, reading)
    _add_status(commands, connection)
    _add_demo(commands, connection, reading, fake)
    _add_serve(commands, fake)
    return parser


def _check(args: argparse.Namespace) -> None:
    """Refuse what argparse cannot see, before anything is sent."""
    start, stop = getattr(args, "start", 0), getattr(args, "stop", None)
    if stop is not None and stop < start:
        raise _Failure(ExitCode.USAGE, f"--stop ({stop}) must be >= --from ({start})")


# -- running -----------------------------------------------------------------------


@contextlib.contextmanager
def _verbose(count: int) -> Iterator[None]:
    """Show the library's log on stderr: each retry with -v, each request too with -vv."""
    if not count:
        yield
        return
    logger = logging.getLogger("blat_async")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{_PROG}: %(message)s"))
    level = logger.level
    logger.setLevel(logging.INFO if count == 1 else logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _flush_stdout() -> None:
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.flush()


def _quiet_stdout() -> None:
    """After the reader of stdout went away, send what is left to /dev/null."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError):
        os.dup2(devnull, sys.stdout.fileno())


def _fail(code: ExitCode, message: str) -> ExitCode:
    _flush_stdout()
    _say(message)
    return code


def _run(run: _Run) -> ExitCode:
    command: Callable[[_Run], Coroutine[Any, Any, None]] = run.args.run
    try:
        _check(run.args)
        with _verbose(getattr(run.args, "verbose", 0)):
            asyncio.run(command(run))
    except KeyboardInterrupt:
        resume = "" if run.progress is None else f"; resume with --from {run.progress.offset}"
        return _fail(ExitCode.INTERRUPTED, f"interrupted{resume}")
    except BrokenPipeError:
        _quiet_stdout()
    except _Failure as failure:
        return _fail(failure.code, str(failure))
    except BlatError as error:
        return _fail(_exit_code(error), str(error))
    except OSError as error:
        # The fake server of `demo` and `serve` could not listen (a port in use).
        return _fail(ExitCode.NETWORK, str(error))
    return ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code; it never raises `SystemExit`.

    ``--help`` and ``--version`` return 0, a usage error 2, after argparse
    has printed them.
    """
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:
        # argparse exits after --help and --version (0) and after a usage error (2).
        return exit_.code if isinstance(exit_.code, int) else ExitCode.USAGE
    return int(_run(_Run(args)))


def entry_point() -> NoReturn:
    """The ``blat-async`` console script."""
    # Ctrl-C raises KeyboardInterrupt inside asyncio.run, which cancels the
    # read cleanly; a second Ctrl-C is the default, immediate exit.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    raise SystemExit(main())
