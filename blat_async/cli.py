"""The ``blat-async`` command line, built on blat_async's public names.

Of the private modules, it uses only ``_cli_flags.py`` (its flags) and the
names of the environment variables in ``_defaults.py``.

```text
blat-async items BATCH_ID [--links] [--from N] [--stop N]  # JSON Lines on stdout
blat-async status BATCH_ID       # status, processed, total, expiry
blat-async demo                  # a sample batch from the embedded fake server
blat-async serve                 # the fake server in the foreground
```

Each command reads a batch sitemap's results (``--kind sitemap``, the
default) or a batch scrape's (``--kind scrape``).

Exit codes: 0 success (and a closed pipe, as in ``| head``), 1 stdout could
not take the output (a full disk), 2 usage, 3 authentication or permission,
4 batch not found, 5 any other API error or a response the client cannot
read, 6 network (or the fake server of ``demo`` and ``serve`` cannot listen),
130 interrupted (Ctrl-C).

The key and the base URL are left to the client, which reads
``BLAT_API_KEY`` and ``BLAT_BASE_URL``; a message about a value the
environment gave names the variable, not the flag. An error after the first
item says where to resume, as Ctrl-C does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
    BatchScrapeData,
    BatchScrapeSitemapData,
    BlatClient,
    BlatError,
    NotFoundError,
    PermissionDeniedError,
    ReadEnd,
    ReadProgress,
    RetryPolicy,
)
from ._cli_flags import DEMO_CONTENT_BYTES, KINDS, PROG, ExitCode, parse_args
from ._defaults import API_KEY_ENV, BASE_URL_ENV

__all__ = ["ExitCode", "entry_point", "main"]


class _Failure(Exception):
    """A failure the command reports in one line, with its exit code."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@attrs.frozen
class _Sources:
    """Where the key and the base URL came from: a flag, or the environment."""

    api_key: str = "--api-key"
    base_url: str = "--base-url"


def _in_cli_words(message: str, sources: _Sources = _Sources()) -> str:
    """The client's message, naming the flags (or variables) instead of its arguments."""
    words = (
        ("api_key= to BlatClient", "--api-key"),
        ("allow_insecure_http=True", "--allow-insecure-http"),
        ("; pass None for the default", ""),
        ("base_url", sources.base_url),
        ("api_key", sources.api_key),
        ("batch_id", "BATCH_ID"),
    )
    for python, cli in words:
        message = message.replace(python, cli)
    return message


@contextlib.contextmanager
def _arguments_checked(sources: _Sources = _Sources()) -> Iterator[None]:
    """Report the client's refusal of an argument as a usage error, in the flags' names."""
    try:
        yield
    except (ValueError, TypeError) as error:
        raise _Failure(ExitCode.USAGE, _in_cli_words(str(error), sources)) from error


@contextlib.contextmanager
def _writing() -> Iterator[None]:
    """Report a stdout that cannot take more (a full disk) in one line.

    A closed pipe is no failure: `BrokenPipeError` goes on to `_run`.
    """
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as error:
        message = f"cannot write to stdout: {error.strerror or error}"
        raise _Failure(ExitCode.OUTPUT, message) from error


def _exit_code(error: BlatError) -> ExitCode:
    if isinstance(error, AuthenticationError | PermissionDeniedError):
        return ExitCode.AUTHENTICATION
    if isinstance(error, NotFoundError):
        return ExitCode.NOT_FOUND
    if isinstance(error, APIConnectionError):
        return ExitCode.NETWORK
    return ExitCode.API_ERROR


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


@attrs.define
class _Run:
    """One run of a command: its arguments, and the read that `main` reports on Ctrl-C."""

    args: argparse.Namespace
    progress: ReadProgress | None = None


# -- output ------------------------------------------------------------------------


def _json_line(item: BatchScrapeSitemapData | BatchScrapeData) -> str:
    """One item as one line of JSON, every field with the API's name, ending in a newline.

    The one string is written in one write. A scraped page's content (megabytes)
    is copied by the JSON encoding, by the newline (the price of one write) and
    by stdout's encoding to bytes; `attrs.asdict` keeps the string, not a copy.
    """
    return f"{json.dumps(attrs.asdict(item), ensure_ascii=False)}\n"


def _links(item: BatchScrapeSitemapData | BatchScrapeData) -> tuple[str, ...]:
    """A sitemap job's ``links``, or a scraped page's ``extracted_links``."""
    return item.links if isinstance(item, BatchScrapeSitemapData) else item.extracted_links


def _kind_flag(args: argparse.Namespace) -> str:
    """The ``--kind`` to repeat in a command the user is told to run, if not the default."""
    return "" if args.kind == KINDS[0] else f" --kind {args.kind}"


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
    iter_pages = (
        client.iter_batch_scrape_pages
        if args.kind == "scrape"
        else client.iter_batch_scrape_sitemap_pages
    )
    with _arguments_checked():
        pages = iter_pages(
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
                with _writing():
                    if args.links:
                        out.writelines(f"{link}\n" for item in page.data for link in _links(item))
                    else:
                        out.writelines(_json_line(item) for item in page.data)
                if bar is not None:
                    bar.total = _bar_total(args.start, args.stop, progress.total)
                    # Only the batch's status: its processed count is of the whole
                    # batch, not of the items from --from to --stop that the bar counts.
                    bar.set_postfix(status=progress.status)
                    bar.update(len(page.data))


def _unfinished(args: argparse.Namespace, batch_id: str, progress: ReadProgress) -> str | None:
    """What to say when a read without --follow ended at the end of a running batch."""
    status = progress.status
    if args.follow or progress.ended is not ReadEnd.EMPTY_PAGE or status is None:
        return None
    if status.strip().lower() in FINAL_STATUSES:
        return None
    of_total = "" if progress.total is None else f" of {progress.total}"
    again = (
        f"{PROG} {args.command} {shlex.quote(batch_id)}{_kind_flag(args)} "
        f"--from {progress.offset} --follow"
    )
    return (
        f"batch {batch_id} is still {status}: read {progress.items} items, to offset "
        f"{progress.offset}{of_total}; --follow reads on as jobs complete: {again}"
    )


def _past_the_end(args: argparse.Namespace, batch_id: str, progress: ReadProgress) -> str | None:
    """What to say when --from is at or past the end of the batch, so nothing was read."""
    start, total = args.start, progress.total
    if progress.items or total is None or not 0 < total <= start:
        return None
    where = "at" if start == total else "past"
    return (
        f"nothing to read: --from {start} is {where} the end of batch {batch_id}, "
        f"which has {total} items"
    )


async def _read(run: _Run, client: BlatClient, batch_id: str) -> None:
    """Stream a batch as ``items`` does; say so if --from was past its end or it was running."""
    run.progress = progress = ReadProgress(offset=run.args.start)
    await _stream(client, run.args, batch_id, progress)
    note = _past_the_end(run.args, batch_id, progress) or _unfinished(run.args, batch_id, progress)
    if note is not None:
        _say(note)


# -- commands ----------------------------------------------------------------------


def _client(
    args: argparse.Namespace, api_key: str | None = None, base_url: str | None = None
) -> BlatClient:
    key = api_key if api_key is not None else args.api_key
    url = base_url if base_url is not None else args.base_url
    # The client reads a key or a base URL it is not given from the environment.
    sources = _Sources(
        api_key="--api-key" if key is not None else API_KEY_ENV,
        base_url="--base-url"
        if url is not None or not os.environ.get(BASE_URL_ENV)
        else BASE_URL_ENV,
    )
    try:
        with _arguments_checked(sources):
            return BlatClient(
                key,
                base_url=url,
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
        get_status = (
            client.get_batch_scrape_status
            if args.kind == "scrape"
            else client.get_batch_scrape_sitemap_status
        )
        with _arguments_checked():
            page = await get_status(args.batch_id)
    fields = {
        "status": page.status,
        "processed": page.processed,
        "total": page.total,
        "expires_at": page.expires_at,
    }
    with _writing():
        if args.json:
            print(json.dumps(fields))
        else:
            for name, value in fields.items():
                print(f"{name}: {'-' if value is None else value}")


@attrs.frozen
class _Sample:
    """The fake server and the sample batches that ``demo`` and ``serve`` start.

    The defaults are ``demo``'s: any free port on loopback, a key of its own,
    one batch, all of it done. ``serve`` passes its flags for each.
    """

    size: int
    page_size: int
    latency: float
    kind: str = KINDS[0]
    content_bytes: int | None = None
    """Bytes of content of each scraped page; ``None`` for a sitemap batch, which has none."""
    host: str = "127.0.0.1"
    port: int = 0
    api_key: str = "demo-key"
    batches: int = 1
    jobs_per_second: float | None = None


@contextlib.asynccontextmanager
async def _sample_server(sample: _Sample) -> AsyncIterator[tuple[Any, list[Any]]]:
    """The started fake server and its sample batches, in each a tenth of the jobs failed.

    The tenth is rounded: a batch of 5 jobs has none that failed.
    """
    # Imported here: the fake server loads aiohttp's web server, which the
    # other commands never need.
    from .testing import FakeBlatServer

    server = FakeBlatServer(host=sample.host, port=sample.port, api_key=sample.api_key)
    async with contextlib.AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(server)
        except OSError as error:
            # A port in use, or a --host that is not an address of this machine.
            where = f"{sample.host}:{sample.port}"
            raise _Failure(ExitCode.NETWORK, f"cannot listen on {where}: {error}") from error
        batches = [
            server.add_batch(
                f"demo-{number + 1}",
                sample.size,
                kind="scrape" if sample.kind == "scrape" else "sitemap",
                content_bytes=sample.content_bytes,
                page_size=sample.page_size,
                failed=0.1,
                latency=sample.latency,
                jobs_per_second=sample.jobs_per_second,
                seed=number,
            )
            for number in range(sample.batches)
        ]
        yield server, batches


def _content_bytes(args: argparse.Namespace) -> int | None:
    """The content of each scraped page of a sample scrape batch; ``None`` for a sitemap batch."""
    if args.kind != "scrape":
        return None
    return DEMO_CONTENT_BYTES if args.content_bytes is None else args.content_bytes


async def _demo(run: _Run) -> None:
    args = run.args
    if args.batch_id is not None:
        # With a batch id, the demo is the real thing.
        async with _client(args) as client:
            await _read(run, client, args.batch_id)
        return
    sample = _Sample(
        size=args.size,
        page_size=args.page_size,
        latency=args.latency,
        kind=args.kind,
        content_bytes=_content_bytes(args),
    )
    async with _sample_server(sample) as (server, [batch]):
        print(
            f"{PROG} demo: streaming batch {batch.batch_id} ({args.size} {args.kind} jobs, "
            f"{len(batch.failed)} failed) from the embedded fake server at {server.base_url}",
            file=sys.stderr,
        )
        async with _client(args, api_key=server.api_key, base_url=server.base_url) as client:
            await _read(run, client, batch.batch_id)


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
        kind=args.kind,
        content_bytes=_content_bytes(args),
    )
    async with _sample_server(sample) as (server, batches):
        with _writing():
            print(f"base_url: {server.base_url}")
            print(f"api_key: {server.api_key}")
            for batch in batches:
                print(f"batch: {batch.batch_id}")
            sys.stdout.flush()
        read_with = "" if args.kind == KINDS[0] else f"; read them with{_kind_flag(args)}"
        _say(f"serving until interrupted (Ctrl-C){read_with}")
        await asyncio.Event().wait()


def _check(args: argparse.Namespace) -> None:
    """Refuse what argparse cannot see, before anything is sent."""
    start, stop = getattr(args, "start", 0), getattr(args, "stop", None)
    if stop is not None and stop < start:
        raise _Failure(ExitCode.USAGE, f"--stop ({stop}) must be >= --from ({start})")
    if getattr(args, "content_bytes", None) is not None and args.kind != "scrape":
        raise _Failure(
            ExitCode.USAGE,
            "--content-bytes is for --kind scrape: a sitemap batch has no content",
        )
    if args.command == "demo" and args.batch_id is None:
        unused = [
            flag
            for flag, given in (
                ("--api-key", args.api_key is not None),
                ("--base-url", args.base_url is not None),
                ("--allow-insecure-http", args.allow_insecure_http),
            )
            if given
        ]
        if unused:
            raise _Failure(
                ExitCode.USAGE,
                f"demo without BATCH_ID reads its own fake server, so it takes no "
                f"{', '.join(unused)}; pass a BATCH_ID to read a real batch",
            )


# -- running -----------------------------------------------------------------------


@contextlib.contextmanager
def _verbose(count: int) -> Iterator[None]:
    """Show the library's log on stderr: each retry with -v, each request too with -vv."""
    if not count:
        yield
        return
    logger = logging.getLogger("blat_async")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
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


def _resume(progress: ReadProgress | None) -> str:
    """Where a read that stopped can resume: its next offset."""
    return "" if progress is None else f"; resume with --from {progress.offset}"


def _run(run: _Run) -> ExitCode:
    command = _COMMANDS[run.args.command]
    try:
        _check(run.args)
        with _verbose(getattr(run.args, "verbose", 0)):
            asyncio.run(command(run))
        with _writing():
            sys.stdout.flush()
    except KeyboardInterrupt:
        return _fail(ExitCode.INTERRUPTED, f"interrupted{_resume(run.progress)}")
    except BrokenPipeError:
        _quiet_stdout()
    except (_Failure, BlatError) as error:
        code = error.code if isinstance(error, _Failure) else _exit_code(error)
        # Before the first item, the command as it was typed is where to resume.
        progress = run.progress if run.progress is not None and run.progress.items else None
        if code is ExitCode.OUTPUT:
            # Items were handed out that stdout did not take: no offset is sure.
            progress = None
        return _fail(code, f"{error}{_resume(progress)}")
    return ExitCode.OK


_COMMANDS: Final[dict[str, Callable[[_Run], Coroutine[Any, Any, None]]]] = {
    "items": _items,
    "status": _status,
    "demo": _demo,
    "serve": _serve,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code; it never raises `SystemExit`.

    ``--help`` and ``--version`` return 0, a usage error 2, after argparse
    has printed them.
    """
    try:
        args = parse_args(argv)
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
