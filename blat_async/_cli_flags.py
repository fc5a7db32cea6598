"""The ``blat-async`` command line's flags, help texts and exit codes: no I/O.

The connection and reading flags' defaults are the client's: read from the
signatures of `BlatClient` and `RetryPolicy`, so that the two cannot differ.
The fake server's flags have defaults of their own, set here.

Every parser refuses abbreviated flags (``--fro`` is not ``--from``), and a
flag a command does not know is reported with that command's usage. Each
value is checked as it is parsed, and a refusal names the flag and what it
takes. This module imports neither aiohttp's server nor `blat_async.testing`,
so that the command starts without them.
"""

from __future__ import annotations

import argparse
import enum
import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any, Final

from . import BlatClient, RetryPolicy, __version__
from ._defaults import DEFAULT_PAGE_SIZE

__all__ = ["DEMO_CONTENT_BYTES", "KINDS", "PROG", "ExitCode", "parse_args", "parser"]

PROG: Final = "blat-async"
KINDS: Final = ("sitemap", "scrape")
"""The batches ``--kind`` names: the batch sitemap results (the default), or the batch scrape's."""
_DEMO_SIZE: Final = 120
"""Jobs in each sample batch of ``demo`` and ``serve`` (``--size``)."""
DEMO_CONTENT_BYTES: Final = 1024
"""Bytes of content in each scraped page of a sample scrape batch (``--content-bytes``)."""
_DEMO_PAGE_SIZE: Final = DEFAULT_PAGE_SIZE
"""Items per page of the sample batches (``--page-size``): the fake server's default."""
_SERVE_PORT: Final = 8089
"""The port ``serve`` listens on (``--port``); ``demo`` takes any free one."""
_SERVE_KEY: Final = "fake-blat-key"
"""The key ``serve`` accepts (its ``--api-key``)."""
_MAX_PORT: Final = 65535


class ExitCode(enum.IntEnum):
    """What the command's exit status means."""

    OK = 0
    """Success, or the reader of stdout went away (``| head``)."""
    OUTPUT = 1
    """Stdout could not take what was written (a full disk)."""
    USAGE = 2
    """A mistake in the command line."""
    AUTHENTICATION = 3
    """No key, a wrong key (401), or a key that may not read the batch (403)."""
    NOT_FOUND = 4
    """No batch has this id (404)."""
    API_ERROR = 5
    """Any other API error, or a response the client cannot read."""
    NETWORK = 6
    """No connection, a dropped connection, or a timeout; or the fake server cannot listen."""
    INTERRUPTED = 130
    """Stopped by Ctrl-C."""


def _default(function: Callable[..., object], name: str) -> Any:
    """The default of one of the client's parameters: the command line uses the same."""
    return inspect.signature(function).parameters[name].default


def _batch_id(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


# argparse calls a value's check with the text after the flag, and prints the
# flag before the message of the ArgumentTypeError it raises; a ValueError
# would print "invalid <the check's Python name> value" instead.


def _whole_number(text: str, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        expected = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        raise argparse.ArgumentTypeError(f"must be a whole number {expected}, got {text!r}")
    return value


def _kind(text: str) -> str:
    if text not in KINDS:
        raise argparse.ArgumentTypeError(f"must be {' or '.join(KINDS)}, got {text!r}")
    return text


def _offset(text: str) -> int:
    return _whole_number(text, 0)


def _positive_int(text: str) -> int:
    return _whole_number(text, 1)


def _port(text: str) -> int:
    return _whole_number(text, 0, _MAX_PORT)


def _finite_number(text: str, minimum: float, *, above: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    in_range = value > minimum if above else value >= minimum
    # NaN fails both comparisons.
    if not (in_range and math.isfinite(value)):
        expected = f"> {minimum:g}" if above else f">= {minimum:g}"
        raise argparse.ArgumentTypeError(f"must be a finite number {expected}, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    return _finite_number(text, 0, above=False)


def _positive_float(text: str) -> float:
    return _finite_number(text, 0, above=True)


_EXIT_CODES: Final = {
    ExitCode.OK: "success, or the reader of stdout went away (| head)",
    ExitCode.OUTPUT: "stdout could not take what was written (a full disk)",
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
        allow_abbrev=False,
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


def _kind_flag(help_text: str) -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument(
        "--kind",
        type=_kind,
        metavar="KIND",
        default=KINDS[0],
        help=f"{help_text}: {' or '.join(KINDS)} (default: %(default)s)",
    )
    return flags


def _reading_flags() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument(
        "--links",
        action="store_true",
        help="print every link (a scrape batch's extracted_links), one per line, not items",
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
        help="jobs in a sample batch (default: %(default)s)",
    )
    flags.add_argument(
        "--content-bytes",
        type=_offset,
        metavar="N",
        help=f"bytes of content in each scraped page, with --kind scrape "
        f"(default: {DEMO_CONTENT_BYTES})",
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


def _add_items(commands: Any, connection: Any, reading: Any) -> argparse.ArgumentParser:
    items = _command(
        commands,
        "items",
        "stream every item of a batch as JSON Lines (or its links)",
        [
            f"{PROG} items b-123 > b-123.jsonl",
            f"{PROG} items b-123 --links --from 4000 --stop 5000 | sort -u",
            f"{PROG} items b-123 --follow -v   # a running batch, showing retries",
            f"{PROG} items b-456 --kind scrape > b-456.jsonl   # scraped pages",
        ],
        parents=[connection, _kind_flag("the kind of batch"), reading],
    )
    items.add_argument("batch_id", metavar="BATCH_ID", type=_batch_id)
    return items


def _add_status(commands: Any, connection: Any) -> argparse.ArgumentParser:
    status = _command(
        commands,
        "status",
        "print a batch's status, processed, total and expiry",
        [
            f"{PROG} status b-123",
            f"{PROG} status b-123 --json | jq .processed",
            f"{PROG} status b-456 --kind scrape",
        ],
        parents=[connection, _kind_flag("the kind of batch")],
    )
    status.add_argument("batch_id", metavar="BATCH_ID", type=_batch_id)
    status.add_argument("--json", action="store_true", help="print one JSON object")
    return status


def _add_demo(commands: Any, connection: Any, reading: Any, fake: Any) -> argparse.ArgumentParser:
    demo = _command(
        commands,
        "demo",
        "stream a sample batch from the embedded fake server (no key needed)",
        [
            f"{PROG} demo | head -3",
            f"{PROG} demo --size 1000 --page-size 50 --latency 0.05 > sample.jsonl",
            f"{PROG} demo --kind scrape --content-bytes 200000 | head -1",
        ],
        parents=[
            connection,
            _kind_flag("the kind of batch, the sample or BATCH_ID"),
            reading,
            fake,
        ],
    )
    demo.add_argument(
        "batch_id",
        metavar="BATCH_ID",
        nargs="?",
        type=_batch_id,
        help="stream this real batch instead, as items does (needs a key)",
    )
    return demo


def _add_serve(commands: Any, fake: Any) -> argparse.ArgumentParser:
    serve = _command(
        commands,
        "serve",
        "run the fake server in the foreground for other programs",
        [
            f"{PROG} serve --port 8089 --size 500 --batches 2",
            f"{PROG} serve --jobs-per-second 20   # running batches, to try --follow",
            f"{PROG} serve --kind scrape   # then: {PROG} items demo-1 --kind scrape",
        ],
        parents=[_kind_flag("the kind of the sample batches"), fake],
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
        type=_port,
        default=_SERVE_PORT,
        metavar="N",
        help="the port, 0 for any free one (default: %(default)s)",
    )
    serve.add_argument(
        "--api-key",
        dest="fake_key",
        metavar="KEY",
        default=_SERVE_KEY,
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
    return serve


def parser() -> argparse.ArgumentParser:
    """The whole command line's parser; each command's name is in ``command``."""
    return _parsers()[0]


def _parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The whole command line's parser, and each command's, by name."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Read Blat's batch sitemap results and batch scrape results.",
        epilog="Each command's --help gives its flags, defaults, examples and exit codes.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    connection, reading, fake = _connection_flags(), _reading_flags(), _fake_server_flags()
    return parser, {
        "items": _add_items(commands, connection, reading),
        "status": _add_status(commands, connection),
        "demo": _add_demo(commands, connection, reading, fake),
        "serve": _add_serve(commands, fake),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line, or exit as argparse does (0 after ``--help``, 2 on a mistake).

    argparse reports a flag that a command does not know with the usage of
    the whole program; here the command's own usage reports it.
    """
    top, commands = _parsers()
    args, unknown = top.parse_known_args(argv)
    if unknown:
        commands.get(args.command, top).error(f"unrecognized arguments: {' '.join(unknown)}")
    return args
