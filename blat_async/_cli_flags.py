"""The ``blat-async`` command line's flags, help texts and exit codes: no I/O.

Its defaults are the client's: read from the signatures of `BlatClient` and
`RetryPolicy`, so that the two cannot differ.
"""

from __future__ import annotations

import argparse
import enum
import inspect
from collections.abc import Callable, Sequence
from typing import Any, Final

from . import BlatClient, RetryPolicy, __version__
from .testing import DEFAULT_PAGE_SIZE

__all__ = ["PROG", "ExitCode", "parser"]

PROG: Final = "blat-async"
_DEMO_SIZE: Final = 120
_DEMO_PAGE_SIZE: Final = DEFAULT_PAGE_SIZE


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
            f"{PROG} items b-123 > b-123.jsonl",
            f"{PROG} items b-123 --links --from 4000 --stop 5000 | sort -u",
            f"{PROG} items b-123 --follow -v   # a running batch, showing retries",
        ],
        parents=[connection, reading],
    )
    items.add_argument("batch_id", metavar="BATCH_ID", type=_batch_id)


def _add_status(commands: Any, connection: Any) -> None:
    status = _command(
        commands,
        "status",
        "print a batch's status, processed, total and expiry",
        [f"{PROG} status b-123", f"{PROG} status b-123 --json | jq .processed"],
        parents=[connection],
    )
    status.add_argument("batch_id", metavar="BATCH_ID", type=_batch_id)
    status.add_argument("--json", action="store_true", help="print one JSON object")


def _add_demo(commands: Any, connection: Any, reading: Any, fake: Any) -> None:
    demo = _command(
        commands,
        "demo",
        "stream a sample batch from the embedded fake server (no key needed)",
        [
            f"{PROG} demo | head -3",
            f"{PROG} demo --size 1000 --page-size 50 --latency 0.05 > sample.jsonl",
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


def _add_serve(commands: Any, fake: Any) -> None:
    serve = _command(
        commands,
        "serve",
        "run the fake server in the foreground for other programs",
        [
            f"{PROG} serve --port 8089 --size 500 --batches 2",
            f"{PROG} serve --jobs-per-second 20   # running batches, to try --follow",
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


def parser() -> argparse.ArgumentParser:
    """The whole command line's parser; each command's name is in ``command``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
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
