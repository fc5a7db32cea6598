"""The blat-async command line, run as a subprocess against the fake server."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import json
import os
import pty
import re
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from blat_async import _cli_flags, cli
from blat_async.cli import ExitCode, main
from blat_async.testing import DEFAULT_CONTENT_BYTES, FakeBatch, FakeBlatServer, Fault

from .conftest import loopback_app

SECRET = "sk-cli-SECRET-7777"
BATCHES: dict[str, FakeBatch] = {}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeBlatServer]:
    with FakeBlatServer(api_key=SECRET).run_in_thread() as server:
        BATCHES["b25"] = server.add_batch("b25", 25, failed=[3, 7])
        server.add_batch("forbidden", 5, forbidden=True)
        BATCHES["s12"] = server.add_batch("s12", 12, kind="scrape", content_bytes=3000, failed=[2])
        yield server


def run(
    server: FakeBlatServer | None, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "blat_async", *args]
    if server is not None:
        command += ["--base-url", server.base_url, "--api-key", SECRET]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BLAT_")}
    environment.update(env or {})
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, env=environment, check=False
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], code: ExitCode) -> None:
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith("blat-async: ")
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_items_streams_json_lines(server: FakeBlatServer) -> None:
    result = run(server, "items", "b25")
    assert result.returncode == 0, result.stderr
    items = [json.loads(line) for line in result.stdout.splitlines()]
    assert [i["metadata"]["job_id"] for i in items] == BATCHES["b25"].job_ids
    assert [i["success"] for i in items].count(False) == 2
    assert set(items[0]) == {"metadata", "success", "error", "error_code", "links"}
    assert result.stderr == ""


def test_items_of_a_scrape_batch_carry_every_field_content_included(
    server: FakeBlatServer,
) -> None:
    result = run(server, "items", "s12", "--kind", "scrape")
    assert result.returncode == 0, result.stderr
    items = [json.loads(line) for line in result.stdout.splitlines()]
    batch = BATCHES["s12"]
    assert [i["metadata"]["job_id"] for i in items] == batch.job_ids
    assert set(items[0]) == {
        "metadata",
        "success",
        "error",
        "error_code",
        "content",
        "extracted_links",
    }
    assert set(items[0]["metadata"]) == {"batch_id", "job_id", "url", "final_url", "status_code"}
    # The API leaves out what a failed job lacks; a row has it, as null or [].
    empty: dict[str, Any] = {
        "error": None,
        "error_code": None,
        "content": None,
        "extracted_links": [],
    }
    no_page = {"final_url": None, "status_code": None}
    assert items == [
        {**empty, **job, "metadata": {**no_page, **job["metadata"]}} for job in batch.jobs
    ]
    assert [len(i["content"] or "") for i in items].count(3000) == 11
    assert result.stderr == ""


def test_links_of_a_scrape_batch_are_its_extracted_links(server: FakeBlatServer) -> None:
    result = run(server, "items", "s12", "--kind", "scrape", "--links")
    assert result.returncode == 0, result.stderr
    expected = [link for job in BATCHES["s12"].jobs for link in job.get("extracted_links", [])]
    assert len(expected) == 33  # 11 successful pages with 3 links each
    assert result.stdout.splitlines() == expected


def test_status_of_a_scrape_batch_reads_the_batch_scrape_endpoint(
    server: FakeBlatServer,
) -> None:
    result = run(server, "status", "s12", "--kind", "scrape", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["total"], summary["processed"], summary["status"]) == (12, 11, "completed")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["items", "s12"], ExitCode.NOT_FOUND),
        (["status", "s12"], ExitCode.NOT_FOUND),
        (["items", "b25", "--kind", "scrape"], ExitCode.NOT_FOUND),
        (["status", "b25", "--kind", "sitemap"], ExitCode.OK),
    ],
)
def test_kind_chooses_the_endpoint_and_sitemap_is_the_default(
    server: FakeBlatServer, args: list[str], code: ExitCode
) -> None:
    # The fake server serves a batch only at its kind's path.
    result = run(server, *args)
    assert result.returncode == code, result.stderr


def test_a_scrape_row_of_megabytes_is_written_in_one_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writes: list[str] = []

    class Recorder(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

    monkeypatch.setattr(sys, "stdout", Recorder())
    with FakeBlatServer(api_key=SECRET).run_in_thread() as server:
        batch = server.add_batch("big", 3, kind="scrape", content_bytes=3_000_000)
        args = ["items", "big", "--kind", "scrape", "--no-progress"]
        assert main([*args, "--base-url", server.base_url, "--api-key", SECRET]) == ExitCode.OK
    assert len(writes) == 3
    assert all(write.count("\n") == 1 and write.endswith("\n") for write in writes)
    assert [json.loads(write)["content"] for write in writes] == [
        batch.content_of(index) for index in range(3)
    ]


def test_links_prints_one_link_per_line(server: FakeBlatServer) -> None:
    result = run(server, "items", "b25", "--links")
    expected = [link for job in BATCHES["b25"].jobs for link in job.get("links") or []]
    assert result.stdout.splitlines() == expected


def test_from_and_stop_read_a_slice(server: FakeBlatServer) -> None:
    result = run(server, "items", "b25", "--from", "5", "--stop", "12", "--concurrency", "1")
    ids = [json.loads(line)["metadata"]["job_id"] for line in result.stdout.splitlines()]
    assert ids == BATCHES["b25"].job_ids[5:12]


def test_status_prints_the_batch_summary(server: FakeBlatServer) -> None:
    result = run(server, "status", "b25", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["total"] == 25
    assert summary["processed"] == 23
    assert summary["status"] == "completed"
    human = run(server, "status", "b25")
    assert "total: 25" in human.stdout.splitlines()


def test_demo_streams_a_sample_batch_without_a_key() -> None:
    result = run(None, "demo", "--size", "30")
    assert result.returncode == 0, result.stderr
    items = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(items) == 30
    assert len({i["metadata"]["job_id"] for i in items}) == 30


def test_wrong_key_exits_with_the_authentication_code(server: FakeBlatServer) -> None:
    command = ["items", "b25", "--base-url", server.base_url, "--api-key", "sk-wrong-key"]
    result = run(None, *command)
    assert_clean_failure(result, ExitCode.AUTHENTICATION)
    assert "sk-wrong-key" not in result.stderr


def test_forbidden_batch_exits_with_the_authentication_code(server: FakeBlatServer) -> None:
    assert_clean_failure(run(server, "items", "forbidden"), ExitCode.AUTHENTICATION)


def test_missing_key_exits_with_the_authentication_code() -> None:
    result = run(None, "items", "b25")
    assert_clean_failure(result, ExitCode.AUTHENTICATION)
    assert result.stderr == "blat-async: no API key: pass --api-key or set BLAT_API_KEY\n"


def test_demo_of_a_real_batch_without_a_key_exits_with_the_authentication_code() -> None:
    result = run(None, "demo", "b-123")
    assert_clean_failure(result, ExitCode.AUTHENTICATION)
    assert result.stdout == ""


def test_unknown_batch_exits_with_the_not_found_code(server: FakeBlatServer) -> None:
    result = run(server, "items", "no-such-batch")
    assert_clean_failure(result, ExitCode.NOT_FOUND)
    assert "404" in result.stderr


def test_server_error_exits_with_the_api_error_code() -> None:
    with FakeBlatServer(api_key=SECRET).run_in_thread() as server:
        server.add_batch("b", 5)
        server.inject(Fault.status(500), times=None)
        result = run(server, "items", "b", "--retries", "0")
    assert_clean_failure(result, ExitCode.API_ERROR)
    assert "500" in result.stderr


def test_no_server_exits_with_the_network_code() -> None:
    command = ["items", "b25", "--base-url", "http://127.0.0.1:9/", "--retries", "0"]
    result = run(None, *command, env={"BLAT_API_KEY": SECRET})
    assert_clean_failure(result, ExitCode.NETWORK)


@pytest.mark.parametrize(
    "args",
    [
        ["items"],
        ["items", "b25", "--from", "-1"],
        ["items", "b25", "--from", "9", "--stop", "3"],
        ["items", "b25", "--concurrency", "0"],
        ["items", ".."],
        ["status", ".."],
        ["demo", "--latency", "-1"],
        ["nonsense"],
    ],
)
def test_usage_errors_exit_with_the_usage_code(server: FakeBlatServer, args: list[str]) -> None:
    result = run(None, *args, "--base-url", server.base_url, "--api-key", SECRET)
    assert result.returncode == ExitCode.USAGE
    assert "Traceback" not in result.stderr


def test_a_closed_pipe_ends_quietly() -> None:
    with FakeBlatServer(api_key=SECRET).run_in_thread() as server:
        server.add_batch("big", 5000)
        command = [sys.executable, "-m", "blat_async", "items", "big"]
        command += ["--base-url", server.base_url, "--api-key", SECRET]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        first = process.stdout.readline()
        process.stdout.close()
        _, stderr = process.communicate(timeout=60)
    assert json.loads(first)["metadata"]["job_id"] == "big-job-000000"
    assert process.returncode == 0
    assert stderr == ""


def test_ctrl_c_stops_cleanly_and_keeps_what_was_printed() -> None:
    with FakeBlatServer(api_key=SECRET).run_in_thread() as server:
        batch = server.add_batch("running", 1000, visible=12, jobs_per_second=0.001)
        command = [sys.executable, "-m", "blat_async", "items", "running", "--follow"]
        command += ["--base-url", server.base_url, "--api-key", SECRET, "--poll-interval", "0.05"]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 30
        # Twice asked for offset 12: the twelve visible jobs were read, and it polls.
        while sum(r.from_ == 12 for r in server.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == ExitCode.INTERRUPTED
    assert "Traceback" not in stderr
    ids = [json.loads(line)["metadata"]["job_id"] for line in stdout.splitlines()]
    assert ids == batch.job_ids[:12]
    assert stderr == "blat-async: interrupted; resume with --from 12\n"


def test_python_dash_m_and_version(server: Any) -> None:
    result = run(None, "--version")
    assert result.returncode == 0
    from blat_async import __version__

    assert __version__ in result.stdout


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ([], "blat-async: serving until interrupted (Ctrl-C)\n"),
        (
            ["--kind", "scrape", "--content-bytes", "100"],
            "blat-async: serving until interrupted (Ctrl-C); read them with --kind scrape\n",
        ),
    ],
)
def test_serve_prints_where_it_listens_and_serves_until_interrupted(
    kind: list[str], said: str
) -> None:
    command = [sys.executable, "-m", "blat_async", "serve", "--port", "0", "--size", "15", *kind]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        lines = dict(process.stdout.readline().strip().split(": ", 1) for _ in range(3))
        result = run(
            None,
            "items",
            lines["batch"],
            "--base-url",
            lines["base_url"],
            "--api-key",
            lines["api_key"],
            *kind[:2],
        )
        assert result.returncode == 0, result.stderr
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        assert len(rows) == 15
        if kind:
            assert {len(row["content"] or "") for row in rows} == {0, 100}
        else:
            assert all("links" in row for row in rows)
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == ExitCode.INTERRUPTED
    assert stderr.startswith(said)
    assert "Traceback" not in stderr


def on_terminal(
    server: FakeBlatServer, *args: str, stdout_too: bool = False, env: dict[str, str] | None = None
) -> tuple[int, bytes, bytes]:
    """Run the command with stderr (and stdout, if ``stdout_too``) on a terminal.

    Returns the exit status, what the terminal showed, and stdout if it was a pipe.
    """
    leader, follower = pty.openpty()
    # A new pty is 0 columns wide; a terminal has a size.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    command = [sys.executable, "-m", "blat_async", *args]
    command += ["--base-url", server.base_url, "--api-key", SECRET]
    chunks: list[bytes] = []

    def read_terminal() -> None:
        # Linux drops what a pty holds once its last writer closes: read as it comes.
        with contextlib.suppress(OSError):
            while chunk := os.read(leader, 4096):
                chunks.append(chunk)

    reader = threading.Thread(target=read_terminal)
    reader.start()
    stdout = follower if stdout_too else subprocess.PIPE
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BLAT_")}
    process = subprocess.Popen(
        command, stdout=stdout, stderr=follower, env={**environment, **(env or {})}
    )
    os.close(follower)
    piped, _ = process.communicate(timeout=60)
    reader.join(timeout=10)
    os.close(leader)
    return process.returncode, b"".join(chunks), piped or b""


def test_a_terminal_gets_a_progress_bar_and_a_pipe_does_not(server: FakeBlatServer) -> None:
    returncode, shown, stdout = on_terminal(server, "items", "b25", "--links")
    assert returncode == 0
    assert b"25/25" in shown
    assert b"items" in shown
    assert len(stdout.splitlines()) == 69  # 23 successful jobs with 3 links each
    assert SECRET.encode() not in shown


def test_no_bar_cuts_the_lines_when_stdout_is_the_same_terminal(server: FakeBlatServer) -> None:
    returncode, shown, _ = on_terminal(server, "items", "b25", "--links", stdout_too=True)
    assert returncode == 0
    lines = [line for line in shown.replace(b"\r\n", b"\n").split(b"\n") if line]
    assert len(lines) == 69
    assert all(line.startswith(b"https://example.com/") for line in lines), lines
    assert b"items/s" not in shown


@pytest.mark.parametrize(("flags", "env"), [(["-v"], {}), ([], {"BLAT_LOG": "info"})])
def test_log_lines_go_above_the_bar_not_through_it(flags: list[str], env: dict[str, str]) -> None:
    with flaky_server().run_in_thread() as server:
        returncode, shown, _ = on_terminal(server, "items", "b", *flags, env=env)
    assert returncode == 0
    segments = shown.replace(b"\r", b"\n").split(b"\n")
    retries = [segment for segment in segments if b"retry " in segment]
    assert len(retries) == 2, shown
    assert all(re.match(rb"(blat-async: |\[.* INFO blat_async\] )retry ", r) for r in retries)
    assert SECRET.encode() not in shown


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["--stop", "10"], b"10/10"),
        (["--from", "20"], b"5/5"),
        (["--from", "3", "--stop", "7"], b"4/4"),
    ],
)
def test_the_bar_counts_the_items_between_from_and_stop(
    server: FakeBlatServer, args: list[str], shown: bytes
) -> None:
    returncode, terminal, _ = on_terminal(server, "items", "b25", *args)
    assert returncode == 0
    assert b"100%" in terminal
    assert shown in terminal
    assert b"/25" not in terminal


def test_serve_on_a_port_in_use_exits_with_the_network_code() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(None, "serve", "--port", str(port))
    assert_clean_failure(result, ExitCode.NETWORK)


@pytest.fixture
def no_blat_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("BLAT_"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("no_blat_environment")
@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--version"], ExitCode.OK),
        (["items", "--help"], ExitCode.OK),
        (["items"], ExitCode.USAGE),
        (["nonsense"], ExitCode.USAGE),
        (["items", "b25"], ExitCode.AUTHENTICATION),
        (["items", "b25", "--from", "5", "--stop", "2"], ExitCode.USAGE),
    ],
)
def test_main_returns_the_exit_code_and_never_raises_system_exit(
    args: list[str], code: ExitCode, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == code
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.usefixtures("no_blat_environment")
@pytest.mark.parametrize("command", ["items", "status", "demo"])
def test_an_empty_batch_id_is_a_usage_error_before_the_key_is_asked_for(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, ""]) == ExitCode.USAGE
    assert "argument BATCH_ID: must not be empty" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["items", "b", "--base-url", "http://example.com/"],
            "use https://, or pass --allow-insecure-http (or set BLAT_ALLOW_INSECURE_HTTP=1)",
        ),
        (
            ["items", "b", "--from", "5", "--stop", "2"],
            "blat-async: --stop (2) must be >= --from (5)",
        ),
        (["items", "..", "--base-url", "http://127.0.0.1:9/"], "blat-async: BATCH_ID '..' cannot"),
        (["status", "b", "--base-url", "ftp://example.com/"], "blat-async: --base-url must be an"),
    ],
)
def test_usage_errors_speak_of_flags(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*args, "--api-key", SECRET]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert message in err
    assert not re.search(r"\b[a-z]+_[a-z_]+\b", err)  # no Python names


def test_status_does_not_take_concurrency(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "b", "--concurrency", "2"]) == ExitCode.USAGE
    assert "unrecognized arguments: --concurrency 2" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "defaults"),
    [
        (
            "items",
            [
                "--timeout SECONDS",
                "(default: 30.0)",
                "(default: 3)",
                "(default: 6)",
                "sitemap or scrape (default: sitemap)",
            ],
        ),
        ("status", ["(default: 30.0)", "(default: 3)", "sitemap or scrape (default: sitemap)"]),
        (
            "demo",
            [
                "(default: 120)",
                "items per page (default: 10)",
                "(default: 0.0)",
                "sitemap or scrape (default: sitemap)",
                "with --kind scrape (default: 1024)",
            ],
        ),
        (
            "serve",
            [
                "(default: 120)",
                "(default: 10)",
                "(default: 8089)",
                "(default: 127.0.0.1)",
                "sitemap or scrape (default: sitemap)",
            ],
        ),
    ],
)
def test_each_commands_help_gives_defaults_examples_and_exit_codes(
    command: str, defaults: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--help"]) == ExitCode.OK
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for default in defaults:
        assert default in shown
    assert f"examples: blat-async {command} " in shown
    assert "exit codes:" in shown
    assert "130 " in shown
    assert "6 " in shown


def test_demo_leaves_the_parsed_arguments_as_they_were(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = _cli_flags.parser().parse_args(["demo", "--size", "12", "--no-progress"])
    parsed = dict(vars(args))
    asyncio.run(cli._COMMANDS[args.command](cli._Run(args)))
    assert vars(args) == parsed
    assert len(capsys.readouterr().out.splitlines()) == 12


def flaky_server() -> FakeBlatServer:
    """A server whose batch ``b`` answers 503, then 429, before its first page."""
    server = FakeBlatServer(api_key=SECRET)
    server.add_batch("b", 15)
    server.inject(Fault.status(503, retry_after=0.01), from_=0, times=1)
    server.inject(Fault.status(429, retry_after=0.02), from_=0, times=1)
    return server


def test_verbose_logs_each_retry_and_429_pause_without_the_key() -> None:
    with flaky_server().run_in_thread() as server:
        result = run(server, "items", "b", "-v")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 15
    url = f"{server.base_url}batch/scrape_sitemap/b?from=0"
    retries = result.stderr.splitlines()
    assert len(retries) == 2, result.stderr
    assert retries[0].startswith(f"blat-async: retry 1 of 3 for GET {url} in 0.01 s: HTTP 503")
    assert retries[1].startswith(f"blat-async: retry 2 of 3 for GET {url} in 0.02 s: HTTP 429")
    assert SECRET not in result.stderr


def test_without_verbose_retries_are_quiet() -> None:
    with flaky_server().run_in_thread() as server:
        result = run(server, "items", "b")
    assert result.returncode == 0
    assert result.stderr == ""


def test_very_verbose_logs_each_request_too() -> None:
    with flaky_server().run_in_thread() as server:
        result = run(server, "items", "b", "-vv", "--concurrency", "1")
        requests = len(server.requests)
    lines = result.stderr.splitlines()
    assert requests == 4
    assert [line for line in lines if line.startswith("blat-async: GET ")] == [
        f"blat-async: GET {server.base_url}batch/scrape_sitemap/b?from={offset}"
        for offset in (0, 0, 0, 10)
    ]
    assert sum(line.startswith("blat-async: retry ") for line in lines) == 2
    assert SECRET not in result.stderr


def test_blat_log_shows_the_retries_without_a_flag() -> None:
    with flaky_server().run_in_thread() as server:
        result = run(server, "items", "b", env={"BLAT_LOG": "info"})
    assert result.returncode == 0
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert all(" INFO blat_async] retry " in line for line in lines)
    assert SECRET not in result.stderr


def test_a_running_batch_read_without_follow_says_so() -> None:
    with FakeBlatServer(api_key=SECRET).run_in_thread() as server:
        server.add_batch("running", 30, visible=12, jobs_per_second=0.001)
        result = run(server, "items", "running")
        sliced = run(server, "items", "running", "--stop", "5")
        followed = run(server, "demo", "running", "--follow", "--stop", "12")
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 12
    assert result.stderr == (
        "blat-async: batch running is still running: read 12 items, to offset 12 of 30; "
        "--follow reads on as jobs complete: blat-async items running --from 12 --follow\n"
    )
    assert sliced.stderr == ""
    assert followed.stderr == ""


def test_a_running_scrape_batch_says_to_read_on_with_its_kind() -> None:
    with FakeBlatServer(api_key=SECRET).run_in_thread() as server:
        server.add_batch("pages", 30, kind="scrape", visible=12, jobs_per_second=0.001)
        result = run(server, "items", "pages", "--kind", "scrape")
        demo = run(server, "demo", "pages", "--kind", "scrape")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 12
    assert result.stderr.endswith(
        "--follow reads on as jobs complete: "
        "blat-async items pages --kind scrape --from 12 --follow\n"
    )
    assert demo.stderr.endswith("blat-async demo pages --kind scrape --from 12 --follow\n")


def test_a_finished_batch_says_nothing_more(server: FakeBlatServer) -> None:
    result = run(server, "items", "b25", "--from", "20")
    assert result.returncode == 0
    assert result.stderr == ""


def test_the_bar_total_is_the_items_between_from_and_stop() -> None:
    assert cli._bar_total(0, None, None) is None
    assert cli._bar_total(0, None, 5000) == 5000
    assert cli._bar_total(0, 30, 5000) == 30
    assert cli._bar_total(4000, 5000, 4500) == 500
    assert cli._bar_total(100, None, 50) == 0
    assert cli._bar_total(10, 20, None) == 10


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["items", "b", "--fro", "3"], "--fro 3"),
        (["items", "b", "--link"], "--link"),
        (["demo", "--siz=3"], "--siz=3"),
        (["serve", "--por", "0"], "--por 0"),
        (["status", "b", "--js"], "--js"),
        (["items", "b", "--kin", "scrape"], "--kin scrape"),
        (["demo", "--content-byte=9", "--kind", "scrape"], "--content-byte=9"),
    ],
)
def test_abbreviated_flags_are_refused(
    args: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == ExitCode.USAGE
    assert f"error: unrecognized arguments: {flag}\n" in capsys.readouterr().err


def test_an_abbreviated_top_level_flag_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--vers"]) == ExitCode.USAGE
    assert "blat-async" not in capsys.readouterr().out


def test_an_unknown_flag_is_reported_with_its_commands_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["items", "b", "--frm", "3"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.startswith("usage: blat-async items ")
    assert err.endswith("blat-async items: error: unrecognized arguments: --frm 3\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["items", "b", "--from", "abc"],
            "argument --from: must be a whole number >= 0, got 'abc'",
        ),
        (["items", "b", "--stop", "-1"], "argument --stop: must be a whole number >= 0, got '-1'"),
        (
            ["items", "b", "--concurrency", "abc"],
            "argument --concurrency: must be a whole number >= 1, got 'abc'",
        ),
        (["items", "b", "--retries", "1.5"], "argument --retries: must be a whole number >= 0"),
        (["items", "b", "--timeout", "soon"], "argument --timeout: must be a finite number > 0"),
        (["demo", "--latency", "x"], "argument --latency: must be a finite number >= 0, got 'x'"),
        (["serve", "--port", "x"], "argument --port: must be a whole number from 0 to 65535"),
        (["serve", "--port", "65536"], "argument --port: must be a whole number from 0 to 65535"),
        (["items", "b", "--kind", "scr"], "argument --kind: must be sitemap or scrape, got 'scr'"),
        (["status", "b", "--kind", "Scrape"], "argument --kind: must be sitemap or scrape, got"),
        (["demo", "--kind", ""], "argument --kind: must be sitemap or scrape, got ''"),
        (["serve", "--kind", "pages"], "argument --kind: must be sitemap or scrape, got 'pages'"),
        (["demo", "--kind", "scrape", "--content-bytes", "-1"], "argument --content-bytes: must"),
    ],
)
def test_a_refused_value_names_its_flag_and_what_it_takes(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == ExitCode.USAGE
    error = capsys.readouterr().err.splitlines()[-1]
    assert message in error
    assert "invalid" not in error
    assert not re.search(r"\b_?[a-z]+_[a-z_]+\b", error)  # no Python names


@pytest.mark.usefixtures("no_blat_environment")
@pytest.mark.parametrize(
    "args",
    [
        ["items", "b", "--timeout", "inf"],
        ["items", "b", "--timeout", "nan"],
        ["items", "b", "--timeout", "1e999"],
        ["items", "b", "--timeout", "0"],
        ["status", "b", "--timeout", "-1"],
        ["items", "b", "--poll-interval", "inf"],
        ["items", "b", "--poll-interval", "0"],
        ["demo", "--latency", "inf"],
        ["demo", "--latency", "nan"],
        ["serve", "--jobs-per-second", "inf"],
    ],
)
def test_a_number_no_request_can_wait_is_a_usage_error(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == ExitCode.USAGE
    error = capsys.readouterr().err.splitlines()[-1]
    assert f"argument {args[-2]}: must be a finite number " in error
    assert error.endswith(f"got {args[-1]!r}")


def test_an_infinite_timeout_is_refused_before_anything_runs() -> None:
    result = run(None, "items", "X", "--timeout", "inf", env={"BLAT_API_KEY": SECRET})
    assert result.returncode == ExitCode.USAGE
    assert "Traceback" not in result.stderr
    assert result.stderr.endswith("argument --timeout: must be a finite number > 0, got 'inf'\n")


@pytest.mark.usefixtures("no_blat_environment")
def test_a_key_from_the_environment_is_named_by_its_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BLAT_API_KEY", f" {SECRET} ")
    assert main(["items", "b"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert (
        err == "blat-async: BLAT_API_KEY holds characters that cannot be sent in an HTTP header\n"
    )
    assert SECRET not in err


@pytest.mark.usefixtures("no_blat_environment")
def test_a_key_from_the_flag_is_named_by_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["items", "b", "--api-key", f" {SECRET} "]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err == "blat-async: --api-key holds characters that cannot be sent in an HTTP header\n"


@pytest.mark.usefixtures("no_blat_environment")
def test_a_base_url_from_the_environment_is_named_by_its_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BLAT_BASE_URL", "http://10.1.2.3/")
    assert main(["items", "b", "--api-key", SECRET]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.startswith("blat-async: BLAT_BASE_URL http://10.1.2.3/ is plain http:// to a host")
    assert "--base-url" not in err
    assert SECRET not in err


@pytest.mark.usefixtures("no_blat_environment")
def test_the_base_url_flag_is_named_even_when_the_environment_has_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BLAT_BASE_URL", "https://api.example.com/")
    args = ["items", "b", "--api-key", SECRET, "--base-url", "http://10.1.2.3/"]
    assert main(args) == ExitCode.USAGE
    assert capsys.readouterr().err.startswith("blat-async: --base-url http://10.1.2.3/ is plain")


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--api-key", SECRET], "--api-key"),
        (["--base-url", "https://api.example.com/"], "--base-url"),
        (["--allow-insecure-http"], "--allow-insecure-http"),
    ],
)
def test_demo_without_a_batch_refuses_the_flags_of_a_real_server(
    flags: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", *flags]) == ExitCode.USAGE
    captured = capsys.readouterr()
    assert captured.err == (
        f"blat-async: demo without BATCH_ID reads its own fake server, so it takes no {named}; "
        "pass a BATCH_ID to read a real batch\n"
    )
    assert captured.out == ""


def test_the_demo_content_bytes_default_is_the_fake_servers() -> None:
    assert _cli_flags.DEMO_CONTENT_BYTES == DEFAULT_CONTENT_BYTES


@pytest.mark.parametrize(
    "args",
    [
        ["demo", "--content-bytes", "10"],
        ["demo", "--content-bytes", "10", "--kind", "sitemap"],
        ["serve", "--content-bytes", "0"],
    ],
)
def test_content_bytes_of_a_sitemap_batch_is_a_usage_error(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == ExitCode.USAGE
    captured = capsys.readouterr()
    assert captured.err == (
        "blat-async: --content-bytes is for --kind scrape: a sitemap batch has no content\n"
    )
    assert captured.out == ""


def test_demo_of_kind_scrape_streams_a_sample_scrape_batch() -> None:
    args = ["demo", "--kind", "scrape", "--size", "20", "--content-bytes", "500", "--no-progress"]
    result = run(None, *args)
    assert result.returncode == 0, result.stderr
    assert "(20 scrape jobs, 2 failed) from the embedded fake server" in result.stderr
    items = [json.loads(line) for line in result.stdout.splitlines()]
    assert [len(i["content"] or "") for i in items].count(500) == 18
    assert all(i["metadata"]["final_url"] for i in items if i["success"])


def test_demo_of_kind_scrape_has_pages_of_the_default_content() -> None:
    result = run(None, "demo", "--kind", "scrape", "--size", "5", "--links", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 15  # 5 pages with 3 extracted links each
    rows = run(None, "demo", "--kind", "scrape", "--size", "5", "--no-progress")
    contents = [json.loads(line)["content"] for line in rows.stdout.splitlines()]
    assert [len(content) for content in contents] == [DEFAULT_CONTENT_BYTES] * 5


def test_demo_says_how_many_of_its_jobs_failed() -> None:
    result = run(None, "demo", "--size", "30", "--no-progress")
    assert result.returncode == 0
    assert "(30 sitemap jobs, 3 failed) from the embedded fake server" in result.stderr
    assert [json.loads(line)["success"] for line in result.stdout.splitlines()].count(False) == 3


def test_an_error_after_the_first_item_says_where_to_resume() -> None:
    with FakeBlatServer(api_key=SECRET).run_in_thread() as server:
        batch = server.add_batch("b", 50)
        server.inject(Fault.status(500), from_=20, times=None)
        result = run(server, "items", "b", "--retries", "1")
    assert_clean_failure(result, ExitCode.API_ERROR)
    ids = [json.loads(line)["metadata"]["job_id"] for line in result.stdout.splitlines()]
    assert ids == batch.job_ids[:20]
    assert "500" in result.stderr
    assert result.stderr.endswith("; resume with --from 20\n")


def test_an_error_before_the_first_item_has_no_resume_hint() -> None:
    with FakeBlatServer(api_key=SECRET).run_in_thread() as server:
        server.add_batch("b", 50)
        server.inject(Fault.status(500), times=None)
        result = run(server, "items", "b", "--from", "10", "--retries", "0")
    assert_clean_failure(result, ExitCode.API_ERROR)
    assert "resume" not in result.stderr


@pytest.mark.parametrize(("start", "where"), [("600", "past"), ("25", "at")])
def test_reading_from_past_the_end_says_so(server: FakeBlatServer, start: str, where: str) -> None:
    result = run(server, "items", "b25", "--from", start)
    assert result.returncode == 0
    assert result.stdout == ""
    assert result.stderr == (
        f"blat-async: nothing to read: --from {start} is {where} the end of batch b25, "
        "which has 25 items\n"
    )


def test_the_bar_shows_no_count_of_the_whole_batch_beside_its_own(server: FakeBlatServer) -> None:
    returncode, terminal, _ = on_terminal(server, "items", "b25", "--from", "5", "--stop", "20")
    assert returncode == 0
    assert b"15/15" in terminal
    assert b"status=completed" in terminal
    assert b"processed=" not in terminal


def test_serve_on_a_port_in_use_names_the_address() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(None, "serve", "--port", str(port))
    assert_clean_failure(result, ExitCode.NETWORK)
    assert result.stderr.startswith(f"blat-async: cannot listen on 127.0.0.1:{port}: ")


def test_an_os_error_of_a_read_is_not_taken_for_the_servers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def fails(run: cli._Run) -> None:
        raise OSError("not a listening socket")

    monkeypatch.setitem(cli._COMMANDS, "items", fails)
    with pytest.raises(OSError, match="not a listening socket"):
        main(["items", "b"])


@pytest.mark.parametrize("module", ["blat_async._cli_flags", "blat_async.cli"])
def test_the_command_line_starts_without_the_fake_server(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "print(sorted(m for m in ('aiohttp.web', 'blat_async.testing') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"


@pytest.mark.parametrize(
    "args", [["demo", "--size", "3000"], ["demo", "--size", "3"], ["serve", "--port", "0"]]
)
def test_a_full_disk_ends_with_one_line_and_the_output_code(args: list[str]) -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "blat_async", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == ExitCode.OUTPUT
    last = result.stderr.splitlines()[-1]
    assert last == "blat-async: cannot write to stdout: No space left on device"
    assert "Traceback" not in result.stderr
    assert "Exception ignored" not in result.stderr
    assert "resume" not in result.stderr


async def echo_401_json(request: web.Request) -> web.Response:
    """A 401 whose message holds the Authorization header sent, as some gateways answer."""
    message = f"bad header {request.headers.get('Authorization')}"
    return web.json_response({"code": "UNAUTHORIZED", "message": message}, status=401)


async def echo_502_html(request: web.Request) -> web.Response:
    """A proxy's HTML error page holding the Authorization header, retried by the client."""
    page = (
        "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1>"
        f"<pre>Authorization: {request.headers.get('Authorization')}</pre></body></html>"
    )
    return web.Response(status=502, text=page, content_type="text/html")


@pytest.mark.parametrize(
    ("handler", "code", "retries"),
    [(echo_401_json, ExitCode.AUTHENTICATION, 0), (echo_502_html, ExitCode.API_ERROR, 2)],
)
@pytest.mark.parametrize("command", ["items", "status"])
@pytest.mark.parametrize("kind", ["sitemap", "scrape"])
async def test_the_key_a_server_echoes_never_shows(
    handler: Any, code: ExitCode, retries: int, command: str, kind: str
) -> None:
    """With -v, neither the error nor a logged retry shows the key the server echoed."""
    seen: list[str] = []

    async def echo(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Authorization", ""))
        return await handler(request)  # type: ignore[no-any-return]

    environment = {k: v for k, v in os.environ.items() if not k.startswith("BLAT_")}
    async with loopback_app(echo) as base_url:
        process = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "blat_async", command, "b-1", "--kind", kind, "-v"],
            *["--base-url", base_url, "--api-key", SECRET, "--retries", "2"],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert seen == [f"Bearer {SECRET}"] * (retries + 1)
    assert process.returncode == code, stderr
    shown = (stdout + stderr).decode()
    assert shown.count("blat-async: retry ") == retries, shown
    assert shown.strip()
    assert "Traceback" not in shown
    assert SECRET not in shown
