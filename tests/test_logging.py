"""What the library logs, and ``BLAT_LOG``, which shows it without code."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator

import pytest

from blat_async import BlatClient, RetryPolicy
from blat_async._logging import LOG_FORMAT, configure_from_env
from blat_async.testing import FakeBlatServer, Fault

SECRET = "sk-logging-SECRET-3141"
QUICK_RETRY = RetryPolicy(max_retries=3, initial_delay=0.001, max_delay=0.005)


@pytest.fixture
async def server() -> AsyncIterator[FakeBlatServer]:
    async with FakeBlatServer(api_key=SECRET) as server:
        yield server


@pytest.fixture
def blat_logger(monkeypatch: pytest.MonkeyPatch) -> Iterator[logging.Logger]:
    """The ``blat_async`` logger as an application that never touched it finds it."""
    monkeypatch.delenv("BLAT_LOG", raising=False)
    logger = logging.getLogger("blat_async")
    level, handlers = logger.level, logger.handlers[:]
    logger.setLevel(logging.NOTSET)
    for handler in handlers:
        logger.removeHandler(handler)
    yield logger
    for handler in logger.handlers[:]:
        logger.removeHandler(handler)
    for handler in handlers:
        logger.addHandler(handler)
    logger.setLevel(level)


@contextlib.contextmanager
def unconfigured_root() -> Iterator[None]:
    """No handler on the root logger, as in a program that never configured logging."""
    root = logging.getLogger()
    handlers = root.handlers[:]
    for handler in handlers:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            root.addHandler(handler)


async def test_each_request_retry_and_429_pause_is_logged_without_the_key(
    server: FakeBlatServer, caplog: pytest.LogCaptureFixture
) -> None:
    batch = server.add_batch("b", 30)
    server.inject(Fault.status(503), from_=0, times=1)
    server.inject(Fault.status(429, retry_after=0.01), from_=10, times=1)
    caplog.set_level(logging.DEBUG, logger="blat_async")
    async with BlatClient(SECRET, base_url=server.base_url, retry=QUICK_RETRY) as client:
        items = [item async for item in client.iter_batch_scrape_sitemap("b", concurrency=1)]
    assert len(items) == batch.size
    messages = [record.getMessage() for record in caplog.records]
    requests = [m for m in messages if m.startswith("GET ")]
    assert len(requests) == len(server.requests)
    assert f"GET {server.base_url}batch/scrape_sitemap/b?from=10" in requests
    retries = [m for m in messages if m.startswith("retry ")]
    assert len(retries) == 2
    assert "503" in retries[0]
    assert retries[1].startswith("retry 1 of 3 for GET ")
    assert "429" in retries[1]
    assert " in 0.01 s" in retries[1]  # the pause is the server's Retry-After
    formatted = [logging.Formatter(LOG_FORMAT).format(record) for record in caplog.records]
    assert not [text for text in messages + formatted if SECRET in text]


def test_without_blat_log_nothing_is_configured(blat_logger: logging.Logger) -> None:
    configure_from_env()
    assert blat_logger.level == logging.NOTSET
    assert blat_logger.handlers == []


@pytest.mark.parametrize(("value", "level"), [("info", logging.INFO), (" DEBUG ", logging.DEBUG)])
def test_blat_log_adds_one_stderr_handler_when_nothing_would_print(
    blat_logger: logging.Logger,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    value: str,
    level: int,
) -> None:
    monkeypatch.setenv("BLAT_LOG", value)
    with unconfigured_root():
        configure_from_env()
        configure_from_env()  # once only
        assert blat_logger.level == level
        assert len(blat_logger.handlers) == 1
        blat_logger.info("retry 1 of 3 for GET http://x/ in 0.50 s: 503")
        blat_logger.debug("GET http://x/")
    err = capsys.readouterr().err
    assert "INFO blat_async] retry 1 of 3 for GET http://x/ in 0.50 s: 503" in err
    assert ("DEBUG blat_async] GET http://x/" in err) == (level == logging.DEBUG)


def test_blat_log_leaves_a_logger_the_application_configured_alone(
    blat_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BLAT_LOG", "debug")
    blat_logger.setLevel(logging.WARNING)
    with unconfigured_root():
        configure_from_env()
    assert blat_logger.level == logging.WARNING
    assert blat_logger.handlers == []


def test_blat_log_prints_through_the_applications_handlers_once(
    blat_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BLAT_LOG", "info")
    # The root logger has handlers here (pytest's), as after logging.basicConfig().
    configure_from_env()
    assert blat_logger.level == logging.INFO
    assert blat_logger.handlers == []


def test_an_unknown_blat_log_value_is_ignored_with_a_warning(
    blat_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BLAT_LOG", "verbose")
    configure_from_env()
    assert blat_logger.level == logging.NOTSET
    assert blat_logger.handlers == []
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["BLAT_LOG='verbose' is not one of info, debug: ignored"]


def test_a_client_reads_blat_log_in_a_program_that_never_configured_logging() -> None:
    with FakeBlatServer(api_key=SECRET).run_in_thread() as server:
        server.add_batch("b", 12)
        server.inject(Fault.status(503), from_=0, times=1)
        program = textwrap.dedent(
            f"""
            import asyncio
            from blat_async import BlatClient, RetryPolicy

            async def main():
                retry = RetryPolicy(initial_delay=0.001)
                async with BlatClient({SECRET!r}, base_url={server.base_url!r}, retry=retry) as c:
                    print(sum([1 async for _ in c.iter_batch_scrape_sitemap("b")]))

            asyncio.run(main())
            """
        )
        environment = {k: v for k, v in os.environ.items() if not k.startswith("BLAT_")}
        result = subprocess.run(
            [sys.executable, "-c", program],
            capture_output=True,
            text=True,
            timeout=60,
            env={**environment, "BLAT_LOG": "debug"},
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "12\n"
    lines = result.stderr.splitlines()
    assert sum("DEBUG blat_async] GET " in line for line in lines) == 3
    assert sum("INFO blat_async] retry 1 of 3 for GET " in line for line in lines) == 1
    assert SECRET not in result.stderr
