"""The crawler integrations in examples/ run for real, each in its own process.

Each reads a batch from a fake server and crawls its links on a `FakeSite`,
both run here, so that the test sees every page fetched, whatever the
program says. Scrapy and Dask come from the ``scrapy`` and ``dask`` extras:
a test whose package is missing is skipped on a developer's machine, and
fails where ``CI`` is set; ``.ci/run`` installs the extras and fails on such
a skip too, so that CI never skips one.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from blat_async import BlatClient, BlatError, NotFoundError
from blat_async.testing import FakeBatch, FakeBlatServer, FakeSite, Fault

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
    # An uncaught exception. (Dask's workers log the tasks that failed with
    # their remote traceback, on a line "Traceback: ..." of their own.)
    assert "Traceback (most recent call last)" not in result.stderr
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
    assert "Traceback (most recent call last)" not in stderr
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


def test_scrapy_spider_ends_its_start_on_a_blat_error_and_exits_1() -> None:
    require("scrapy")
    with FakeBlatServer().run_in_thread() as server:
        result = run_example("scrapy_spider.py", "no-such-batch", env=keyed(server), expect=1)

    assert "reading batch no-such-batch failed: HTTP 404 " in result.stderr
    assert result.stdout.splitlines()[-2:] == [
        "spider closed: finished",
        "reading the batch failed: HTTP 404 NOT_FOUND: Batch not found "
        f"(GET {server.batch_url('no-such-batch', 0)})",
    ]


def test_scrapy_takes_a_batch_scrapes_pages_without_fetching_them(tmp_path: Path) -> None:
    """Every successful page becomes an item, built from its content; no page is downloaded."""
    require("scrapy")
    output = tmp_path / "pages.jsonl"
    with FakeSite().run_in_thread() as site, FakeBlatServer().run_in_thread() as server:
        # The pages' links point at the site: nothing may fetch them.
        batch = server.add_batch(
            "scraped",
            17,
            kind="scrape",
            page_size=4,
            failed=[2, 11],
            link_base=site.link_base,
        )
        arguments = ("scraped", "--kind", "scrape", "-o", str(output))
        result = run_example("scrapy_spider.py", *arguments, env=keyed(server))

    assert result.stdout.splitlines() == [
        "batch scraped: 17 scrape jobs, 2 failed, 15 pages scraped by Blat",
        "pages crawled: 0, items scraped: 15",
        "spider closed: finished",
    ]
    assert not site.hits
    assert [r.kind for r in server.requests] == ["scrape"] * 5
    items = [json.loads(line) for line in output.read_text().splitlines()]
    done = [index for index in range(17) if index not in batch.failed]
    assert sorted(items, key=lambda item: item["job_id"]) == [
        {
            "url": batch.final_url_of(index),
            "status": 200,
            "title": f"Page {index:06d}",
            "job_id": batch.job_id(index),
        }
        for index in done
    ]


def test_scrapy_recipe_takes_the_demo_batch_scrape_without_a_key() -> None:
    require("scrapy")
    result = run_example(
        "scrapy_spider.py", "--kind", "scrape", "--size", "12", "--jobs-per-second", "40"
    )

    # round(12 * 0.1) = 1 failed job.
    assert result.stdout.splitlines() == [
        "batch scrapy-demo: 12 scrape jobs, 1 failed, 11 pages scraped by Blat",
        "pages crawled: 0, items scraped: 11",
        "spider closed: finished",
    ]


def test_scrapy_spider_refuses_an_unknown_kind() -> None:
    require("scrapy")
    spec = importlib.util.spec_from_file_location("scrapy_spider", EXAMPLES / "scrapy_spider.py")
    assert spec is not None
    assert spec.loader is not None
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    with pytest.raises(ValueError, match="kind must be one of"):
        recipe.BatchLinksSpider("b-1", kind="pages")
    title_of = recipe.title_of
    assert title_of("<html><head><title>Home</title></head></html>") == "Home"
    assert title_of("Intro\n\n# First heading\n") == "First heading"
    assert title_of("") is None


# --- SQLite, exactly once ---------------------------------------------------------------

# Seeds of the kill times, and of each batch's failed jobs.
KILL_SEEDS: Final = (1, 2, 3)
KILLS_PER_SEED: Final = 3


def checkpoint(db: Path, batch_id: str) -> int | None:
    """The committed checkpoint of ``batch_id``, or ``None`` before the first run."""
    if not db.exists():
        return None
    with contextlib.closing(sqlite3.connect(db)) as connection:
        try:
            row = connection.execute(
                "SELECT next_offset FROM checkpoint WHERE batch_id = ?", (batch_id,)
            ).fetchone()
        except sqlite3.OperationalError:  # Killed before the tables were made.
            return None
    return None if row is None else int(row[0])


def assert_stored_exactly_once(db: Path, batch: FakeBatch) -> None:
    """The tables hold every job and every page of the batch, once, and nothing else."""
    with contextlib.closing(sqlite3.connect(db)) as connection:
        jobs = connection.execute(
            "SELECT job_offset, job_id, success FROM jobs WHERE batch_id = ? ORDER BY job_offset",
            (batch.batch_id,),
        ).fetchall()
        pages = connection.execute(
            "SELECT job_offset, position, url, status FROM pages WHERE batch_id = ? "
            "ORDER BY job_offset, position",
            (batch.batch_id,),
        ).fetchall()
    assert jobs == [
        (index, batch.job_id(index), int(index not in batch.failed)) for index in range(batch.size)
    ]
    assert pages == [
        (index, position, link, 200)
        for index in range(batch.size)
        for position, link in enumerate(batch.links_of(index))
    ]
    assert checkpoint(db, batch.batch_id) == batch.size


def test_sqlite_crawl_killed_at_random_moments_stores_every_page_exactly_once(
    tmp_path: Path,
) -> None:
    mid_read_kills = 0
    for seed in KILL_SEEDS:
        rng = random.Random(seed)
        db = tmp_path / f"crawl-{seed}.db"
        with (
            # 108 links fetched 4 at a time, 20 ms each: a first run takes half a second.
            FakeSite(latency=0.02).run_in_thread() as site,
            FakeBlatServer().run_in_thread() as server,
        ):
            batch = server.add_batch(
                "kill-me", 40, page_size=5, failed=0.1, seed=seed, link_base=site.link_base
            )
            arguments = ("kill-me", "--db", str(db), "--workers", "4", "--window", "3")
            for _ in range(KILLS_PER_SEED):
                with started("crawl_to_sqlite.py", *arguments, env=keyed(server)) as process:
                    assert process.stdout is not None
                    assert process.stdout.readline().startswith("resuming batch kill-me")
                    time.sleep(rng.uniform(0, 0.4))
                    process.kill()  # SIGKILL: no cleanup of any kind runs.
                    process.wait()
                offset = checkpoint(db, "kill-me")
                if process.returncode == -signal.SIGKILL and offset and offset < batch.size:
                    mid_read_kills += 1
            resumed = run_example("crawl_to_sqlite.py", *arguments, env=keyed(server))

        assert resumed.stdout.splitlines()[-1].endswith("each exactly once"), seed
        assert_stored_exactly_once(db, batch)
        # Every page was fetched; those of pages read but not committed, again.
        assert set(site.hits) == set(batch.links), seed
    # The kills did land in the middle of reads, between committed pages.
    assert mid_read_kills >= 1


def free_port() -> int:
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_sqlite_recipe_resumes_the_demo_batch_after_a_simulated_crash(tmp_path: Path) -> None:
    arguments = ("--db", str(tmp_path / "crawl.db"), "--site-port", str(free_port()))
    crashed = run_example("crawl_to_sqlite.py", *arguments, "--crash-after", "3", expect=70)
    resumed = run_example("crawl_to_sqlite.py", *arguments)
    again = run_example("crawl_to_sqlite.py", *arguments)

    assert crashed.stdout.splitlines() == [
        "resuming batch sqlite-demo from offset 0",
        "simulated crash after committing 3 pages",
    ]
    # 45 jobs in pages of 5; round(45 * 0.1) = 4 failed, 41 of 3 links.
    assert resumed.stdout.splitlines() == [
        "resuming batch sqlite-demo from offset 15",
        "read 6 pages in this run",
        "stored 45 jobs and 123 pages, each exactly once",
    ]
    assert again.stdout.splitlines()[1:] == [
        "read 0 pages in this run",
        "stored 45 jobs and 123 pages, each exactly once",
    ]


def test_sqlite_crawl_stops_on_a_blat_error_and_resumes_where_it_committed(
    tmp_path: Path,
) -> None:
    db = tmp_path / "crawl.db"
    with FakeSite().run_in_thread() as site, FakeBlatServer().run_in_thread() as server:
        batch = server.add_batch("fails", 30, page_size=5, link_base=site.link_base)
        # The batch is refused from offset 15 on: not retried, the read fails there.
        server.inject(Fault.status(403), batch_id="fails", from_=15, times=None)
        arguments = ("fails", "--db", str(db))
        failed = run_example("crawl_to_sqlite.py", *arguments, env=keyed(server), expect=1)
        committed = checkpoint(db, "fails")
        server.clear_faults()
        resumed = run_example("crawl_to_sqlite.py", *arguments, env=keyed(server))

    # The pages before offset 15 may or may not have been committed when the read failed.
    assert committed in (0, 5, 10, 15)
    assert "reading batch fails failed: HTTP 403 " in failed.stderr
    assert f"committed up to offset {committed}: run again to resume" in failed.stderr
    assert resumed.stdout.splitlines()[0] == f"resuming batch fails from offset {committed}"
    assert_stored_exactly_once(db, batch)


def assert_scraped_exactly_once(db: Path, batch: FakeBatch) -> None:
    """The table holds every job of a batch scrape, with its page, once, and nothing else."""
    with contextlib.closing(sqlite3.connect(db)) as connection:
        rows = connection.execute(
            "SELECT job_offset, job_id, url, final_url, status_code, success, error_code, content"
            " FROM scraped WHERE batch_id = ? ORDER BY job_offset",
            (batch.batch_id,),
        ).fetchall()
    expected = []
    for index in range(batch.size):
        job = batch.job(index)
        failed = index in batch.failed
        expected.append(
            (
                index,
                batch.job_id(index),
                batch.url_of(index),
                None if failed else batch.final_url_of(index),
                None if failed else 200,
                int(not failed),
                job.get("error_code"),
                None if failed else batch.content_of(index),
            )
        )
    assert rows == expected
    assert checkpoint(db, batch.batch_id) == batch.size


def test_sqlite_store_of_a_batch_scrape_killed_at_random_moments_keeps_each_page_once(
    tmp_path: Path,
) -> None:
    mid_read_kills = 0
    for seed in KILL_SEEDS[:2]:
        rng = random.Random(seed)
        db = tmp_path / f"scraped-{seed}.db"
        with FakeBlatServer().run_in_thread() as server:
            # 15 pages of 2 scraped pages, 0.2 s a request, 6 at a time: a read takes 0.9 s.
            batch = server.add_batch(
                "kill-me",
                30,
                kind="scrape",
                page_size=2,
                content_bytes=20_000,
                failed=0.1,
                seed=seed,
                latency=0.2,
            )
            arguments = ("kill-me", "--db", str(db), "--kind", "scrape")
            for _ in range(KILLS_PER_SEED):
                with started("crawl_to_sqlite.py", *arguments, env=keyed(server)) as process:
                    assert process.stdout is not None
                    assert process.stdout.readline().startswith("resuming batch kill-me")
                    time.sleep(rng.uniform(0.1, 0.8))
                    process.kill()  # SIGKILL: no cleanup of any kind runs.
                    process.wait()
                offset = checkpoint(db, "kill-me")
                if process.returncode == -signal.SIGKILL and offset and offset < batch.size:
                    mid_read_kills += 1
            resumed = run_example("crawl_to_sqlite.py", *arguments, env=keyed(server))
            kinds = {r.kind for r in server.requests}

        assert resumed.stdout.splitlines()[-1].endswith("each exactly once"), seed
        assert_scraped_exactly_once(db, batch)
        assert kinds == {"scrape"}
    assert mid_read_kills >= 1


def test_sqlite_recipe_stores_the_demo_batch_scrape_after_a_simulated_crash(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "crawl.db")
    arguments = ("--db", db, "--kind", "scrape", "--site-port", str(free_port()))
    crashed = run_example("crawl_to_sqlite.py", *arguments, "--crash-after", "3", expect=70)
    resumed = run_example("crawl_to_sqlite.py", *arguments)
    again = run_example("crawl_to_sqlite.py", *arguments)

    assert crashed.stdout.splitlines() == [
        "resuming batch sqlite-scrape-demo from offset 0",
        "simulated crash after committing 3 pages",
    ]
    # 45 jobs in pages of 5; round(45 * 0.1) = 4 failed.
    assert resumed.stdout.splitlines() == [
        "resuming batch sqlite-scrape-demo from offset 15",
        "read 6 pages in this run",
        "stored 45 scraped pages (4 failed), each exactly once",
    ]
    assert again.stdout.splitlines()[1:] == [
        "read 0 pages in this run",
        "stored 45 scraped pages (4 failed), each exactly once",
    ]


def test_sqlite_store_of_a_batch_scrape_stops_on_a_blat_error_and_resumes(
    tmp_path: Path,
) -> None:
    db = tmp_path / "crawl.db"
    with FakeBlatServer().run_in_thread() as server:
        batch = server.add_batch("fails", 30, kind="scrape", page_size=5, failed=[4, 21])
        server.inject(Fault.status(403), batch_id="fails", from_=15, times=None)
        arguments = ("fails", "--db", str(db), "--kind", "scrape")
        failed = run_example("crawl_to_sqlite.py", *arguments, env=keyed(server), expect=1)
        committed = checkpoint(db, "fails")
        server.clear_faults()
        resumed = run_example("crawl_to_sqlite.py", *arguments, env=keyed(server))

    # The pages before the refused one are committed as they are read.
    assert committed == 15
    assert "reading batch fails failed: HTTP 403 " in failed.stderr
    assert resumed.stdout.splitlines()[0] == "resuming batch fails from offset 15"
    assert_scraped_exactly_once(db, batch)


async def test_a_blat_error_leaves_a_task_group_as_an_exception_group() -> None:
    async def read_all(client: BlatClient, batch_id: str) -> int:
        return len([item async for item in client.iter_batch_scrape_sitemap(batch_id)])

    async with FakeBlatServer() as server:
        server.add_batch("here", 3)
        async with BlatClient(server.api_key, base_url=server.base_url) as client:
            with pytest.raises(ExceptionGroup) as raised:  # noqa: PT012
                async with asyncio.TaskGroup() as group:
                    group.create_task(read_all(client, "here"))
                    group.create_task(read_all(client, "gone"))

    # `except BlatError` does not catch the group; `except* BlatError` does.
    assert not isinstance(raised.value, BlatError)
    matched, rest = raised.value.split(BlatError)
    assert rest is None
    assert matched is not None
    assert [type(error) for error in matched.exceptions] == [NotFoundError]


def test_sqlite_crawl_stores_a_page_it_cannot_fetch_with_its_error(tmp_path: Path) -> None:
    db = tmp_path / "crawl.db"
    nowhere = f"http://127.0.0.1:{free_port()}/pages/"  # Nothing listens there.
    with FakeBlatServer().run_in_thread() as server:
        server.add_batch("unreachable", 4, links_per_job=2, link_base=nowhere)
        result = run_example(
            "crawl_to_sqlite.py", "unreachable", "--db", str(db), env=keyed(server)
        )

    assert result.stdout.splitlines()[-1] == "stored 4 jobs and 8 pages, each exactly once"
    with contextlib.closing(sqlite3.connect(db)) as connection:
        rows = connection.execute("SELECT status, bytes, error FROM pages").fetchall()
    assert len(rows) == 8
    assert all(
        status is None and size is None and "Connect" in error for status, size, error in rows
    )


# --- Dask -------------------------------------------------------------------------------


def read_slices(out: Path, batch: FakeBatch) -> list[dict[str, Any]]:
    """The records the slices of ``batch`` wrote, in offset order of the slices."""
    paths = sorted((out / batch.batch_id).iterdir())
    assert all(path.suffix == ".jsonl" for path in paths), "a partial file was left"
    return [json.loads(line) for path in paths for line in path.read_text().splitlines()]


def test_dask_reads_several_batches_across_worker_processes_each_job_once(
    tmp_path: Path,
) -> None:
    require("distributed")
    out = tmp_path / "out"
    with (
        FakeSite(latency=0.01).run_in_thread() as site,
        FakeBlatServer().run_in_thread() as server,
    ):
        batches = [
            server.add_batch(
                f"dask-{number}", size, page_size=5, failed=0.1, link_base=site.link_base
            )
            for number, size in enumerate((23, 40, 7), 1)
        ]
        result = run_example(
            "dask_batches.py",
            *(batch.batch_id for batch in batches),
            "--out",
            str(out),
            "--slice-jobs",
            "10",
            "--workers",
            "2",
            env=keyed(server),
        )

    # Slices of 10 jobs: 3 + 4 + 1 tasks, on both worker processes.
    assert result.stdout.splitlines()[-1] == (
        "3 batches, 70 of 70 jobs in 8 slices, read by 2 worker processes"
    )
    for batch in batches:
        records = read_slices(out, batch)
        assert [record["job_id"] for record in records] == batch.job_ids
        assert [record["offset"] for record in records] == list(range(batch.size))
        pages = [page for record in records for page in record["pages"].items()]
        assert pages == [(link, 200) for link in batch.links]
    assert site.hits == Counter(link for batch in batches for link in batch.links)


def test_dask_reports_a_blat_error_raised_in_a_worker(tmp_path: Path) -> None:
    require("distributed")
    with FakeBlatServer().run_in_thread() as server:
        server.add_batch("refused-late", 30, page_size=5)
        # The first page answers, so the batch is planned; the slice from 20 is refused.
        server.inject(Fault.status(403), batch_id="refused-late", from_=20, times=None)
        arguments = ("refused-late", "--out", str(tmp_path), "--slice-jobs", "10")
        result = run_example("dask_batches.py", *arguments, env=keyed(server), expect=1)

    # Dask's workers may still log their cancelled tasks after the program's
    # own last line, on the same stderr.
    reported = [line for line in result.stderr.splitlines() if line.startswith("reading failed: ")]
    assert len(reported) == 1, result.stderr
    assert reported[0].startswith("reading failed: HTTP 403 FORBIDDEN: ")
    assert reported[0].endswith("refused-late?from=20)")
