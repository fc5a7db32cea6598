"""The crawler integrations in examples/ run for real, each in its own process.

Each reads a batch from a fake server and crawls its links on a `FakeSite`,
both run here, so that the test sees every page fetched, whatever the
program says. Scrapy and Dask come from the ``scrapy`` and ``dask`` extras:
a test whose package is missing is skipped on a developer's machine and
fails in CI (where ``CI`` is set), so that CI never skips one.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import pytest

from blat_async.testing import FakeBlatServer, FakeSite

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# The extra that installs each integration's package.
EXTRAS: Final = {"scrapy": "scrapy", "distributed": "dask"}


def require(module: str) -> None:
    """Skip the test if ``module`` is not installed; fail instead where ``CI`` is set."""
    if importlib.util.find_spec(module) is not None:
        return
    message = f"{module} is not installed: pip install -e '.[{EXTRAS[module]}]'"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI installs the extras and runs every integration test")
    pytest.skip(message)


def environment(**extra: str) -> dict[str, str]:
    """This environment without BLAT_* variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLAT_")}
    env.update(extra)
    return env


def keyed(server: FakeBlatServer) -> dict[str, str]:
    """The environment of a program that reads ``server`` as if it were the real API."""
    return environment(BLAT_API_KEY=server.api_key, BLAT_BASE_URL=server.base_url)


def run_example(
    name: str, *args: str, env: dict[str, str] | None = None, expect: int = 0, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or environment(),
        check=False,
    )
    assert result.returncode == expect, result.stderr
    assert "Traceback" not in result.stderr
    return result


@contextlib.contextmanager
def started(name: str, *args: str, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """Start an example in the background; kill it if the test ends first."""
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / name), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], what: str) -> None:
    """Wait until ``condition()`` holds; fail if the process ends first, or after 60 s."""
    deadline = time.monotonic() + 60
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the program ended before {what}: {process.communicate()[1]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


# --- Scrapy -----------------------------------------------------------------------------


def test_scrapy_crawls_every_page_once_starting_while_the_batch_runs(tmp_path: Path) -> None:
    require("scrapy")
    output = tmp_path / "pages.jsonl"
    with FakeSite().run_in_thread() as site, FakeBlatServer().run_in_thread() as server:
        # 24 sitemap jobs of 2 links; 10 scraped so far, so the batch is running.
        batch = server.add_batch(
            "crawl-me",
            24,
            page_size=5,
            links_per_job=2,
            failed=[3, 17],
            visible=10,
            link_base=site.link_base,
        )
        arguments = ("crawl-me", "--poll-interval", "0.05", "-o", str(output))
        with started("scrapy_spider.py", *arguments, env=keyed(server)) as process:
            scraped = {link for index in range(10) for link in batch.links_of(index)}
            wait_for(lambda: scraped <= set(site.hits), process, "the first pages were crawled")
            # Crawling started while the batch was running; now it finishes.
            assert not batch.is_complete
            batch.complete()
            stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "Spider closed (finished)" in stderr
    assert stdout.splitlines() == [
        "batch crawl-me: 24 sitemap jobs, 2 failed, 44 links",
        "pages crawled: 44, items scraped: 44",
        "spider closed: finished",
    ]
    # Every page of the batch was fetched, each exactly once.
    assert site.hits == Counter(batch.links)
    pages = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted(page["url"] for page in pages) == sorted(batch.links)
    assert {page["status"] for page in pages} == {200}


def test_scrapy_recipe_crawls_the_demo_batch_without_a_key() -> None:
    require("scrapy")
    result = run_example("scrapy_spider.py", "--size", "12", "--jobs-per-second", "40")

    # round(12 * 0.1) = 1 failed job: 11 of 3 links.
    assert result.stdout.splitlines() == [
        "batch scrapy-demo: 12 sitemap jobs, 1 failed, 33 links",
        "pages crawled: 33, items scraped: 33",
        "spider closed: finished",
    ]


def test_scrapy_spider_closes_on_a_blat_error_and_says_why() -> None:
    require("scrapy")
    with FakeBlatServer().run_in_thread() as server:
        result = run_example("scrapy_spider.py", "no-such-batch", env=keyed(server), expect=1)

    assert "reading batch no-such-batch failed: " in result.stderr
    assert result.stdout.splitlines()[-1] == "spider closed: blat_error"
