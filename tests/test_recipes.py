"""The recipes in examples/ run, each as its own process, and print exactly what they promise.

Every recipe reads from the fake server when ``BLAT_API_KEY`` is not set, so
the environment of each run is cleared of ``BLAT_*`` variables first: nothing
here reaches the network.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from blat_async.testing import FakeBlatServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DOCS = ROOT / "docs"
SH = shutil.which("sh") or "/bin/sh"

# The CSV one-liner that docs/recipes/export.md shows; the test runs it as shown.
JQ_CSV = (
    "jq -r '[.metadata.job_id, .metadata.url, .success, .error_code, .error,\n"
    "    (.links | length)] | @csv' batch.jsonl > batch.csv"
)


def environment(**extra: str) -> dict[str, str]:
    """This environment without BLAT_* variables, the venv's scripts first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLAT_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra)
    return env


def run_recipe(
    name: str, *args: str, env: dict[str, str] | None = None, expect: int = 0
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or environment(),
        check=False,
    )
    assert result.returncode == expect, result.stderr
    assert "Traceback" not in result.stderr
    return result


def test_crawler_pipeline_crawls_every_link_once() -> None:
    result = run_recipe(
        "crawler_pipeline.py", "--size", "50", "--workers", "4", "--queue-size", "5"
    )
    lines = result.stdout.splitlines()
    # 50 jobs, 10 % failed: 45 successful jobs of 3 links each.
    assert lines[0] == "batch crawl-demo: 50 sitemap jobs, 5 failed"
    assert lines[1] == "links crawled: 135 by 4 workers"
    per_worker = [int(n) for n in lines[2].removeprefix("per worker: ").split()]
    assert len(per_worker) == 4
    assert sum(per_worker) == 135


def test_crawler_pipeline_with_one_worker_and_a_queue_of_one() -> None:
    result = run_recipe(
        "crawler_pipeline.py", "--size", "12", "--workers", "1", "--queue-size", "1"
    )
    # round(12 * 0.1) = 1 failed job: 11 successful ones.
    assert "links crawled: 33 by 1 workers" in result.stdout


def test_resume_after_crash_handles_every_item_exactly_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    crashed = run_recipe(
        "resume_after_crash.py",
        "--state",
        str(state),
        "--size",
        "45",
        "--crash-after",
        "17",
        expect=70,
    )
    assert "simulated crash after 17 items" in crashed.stdout
    # The 17th item was handled but its checkpoint never committed.
    assert json.loads((state / "checkpoint.json").read_text())["offset"] == 16
    assert len((state / "handled.jsonl").read_text().splitlines()) == 17

    resumed = run_recipe("resume_after_crash.py", "--state", str(state), "--size", "45")
    assert re.search(
        r"resuming from offset 16 \(dropped [1-9][0-9]* uncommitted bytes\)", resumed.stdout
    )
    assert "read 29 items in this run, ended at offset 45" in resumed.stdout
    assert "45 items handled overall, each exactly once" in resumed.stdout
    records = [json.loads(line) for line in (state / "handled.jsonl").read_text().splitlines()]
    assert [r["job_id"] for r in records] == [f"resume-demo-job-{i:06d}" for i in range(45)]
    # Failed jobs are handled too: round(45 * 0.2) of them.
    assert sum(not r["success"] for r in records) == 9

    again = run_recipe("resume_after_crash.py", "--state", str(state), "--size", "45")
    assert "read 0 items in this run, ended at offset 45" in again.stdout


def test_split_across_processes_reads_each_slice_once() -> None:
    result = run_recipe("split_across_processes.py", "--size", "230", "--processes", "3")
    lines = result.stdout.splitlines()
    # Pages of 20: 12 pages cut into 3 slices of 4 pages, the last one short.
    slices = [(0, 80), (80, 160), (160, 230)]
    assert len(lines) == 4
    for line, (start, stop) in zip(lines[:3], slices, strict=True):
        assert line.startswith(f"slice [{start}, {stop}): {stop - start} items, ")
        assert line.endswith(f"jobs split-demo-job-{start:06d} .. split-demo-job-{stop - 1:06d}")
    # round(230 * 0.1) = 23 failed jobs, 3 links for each of the other 207.
    assert lines[3] == "3 processes read 230 of 230 items, 621 links"


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_export_script_writes_the_demo_batch_without_a_key(tmp_path: Path) -> None:
    result = subprocess.run(
        [SH, str(EXAMPLES / "export_batch.sh"), "", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(DEMO_SIZE="30"),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    items = [json.loads(line) for line in (tmp_path / "demo.jsonl").read_text().splitlines()]
    assert [item["metadata"]["job_id"] for item in items] == [
        f"demo-1-job-{i:06d}" for i in range(30)
    ]
    rows = read_csv(tmp_path / "demo.csv")
    assert [row["job_id"] for row in rows] == [item["metadata"]["job_id"] for item in items]
    assert sum(row["success"] == "False" for row in rows) == 3
    assert f"wrote 30 items to {tmp_path / 'demo'}.jsonl" in result.stderr


def test_export_script_reads_a_batch_with_a_key(tmp_path: Path) -> None:
    with FakeBlatServer(api_key="sk-export-test").run_in_thread() as server:
        batch = server.add_batch("export-me", 27, failed=[0, 13, 26], page_size=4)
        result = subprocess.run(
            [SH, str(EXAMPLES / "export_batch.sh"), "export-me", str(tmp_path / "out")],
            capture_output=True,
            text=True,
            timeout=60,
            env=environment(BLAT_API_KEY=server.api_key, BLAT_BASE_URL=server.base_url),
            check=False,
        )
    assert result.returncode == 0, result.stderr
    rows = read_csv(tmp_path / "out.csv")
    assert [row["job_id"] for row in rows] == batch.job_ids
    assert [i for i, row in enumerate(rows) if row["success"] == "False"] == [0, 13, 26]
    assert {row["links"] for row in rows} == {"0", "3"}
    assert all(row["error_code"] for row in rows if row["success"] == "False")


def test_export_script_refuses_a_key_without_a_batch(tmp_path: Path) -> None:
    result = subprocess.run(
        [SH, str(EXAMPLES / "export_batch.sh")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=environment(BLAT_API_KEY="sk-unused"),
        check=False,
    )
    assert result.returncode == 2
    assert "usage:" in result.stderr


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_jq_one_liner_of_the_docs_converts_items_to_csv(tmp_path: Path) -> None:
    assert JQ_CSV in (DOCS / "recipes" / "export.md").read_text()
    with FakeBlatServer().run_in_thread() as server:
        batch = server.add_batch("jq", 12, failed=[5])
        items = subprocess.run(
            [sys.executable, "-m", "blat_async", "items", "jq", "--no-progress"],
            capture_output=True,
            text=True,
            timeout=60,
            env=environment(BLAT_API_KEY=server.api_key, BLAT_BASE_URL=server.base_url),
            check=True,
        )
    (tmp_path / "batch.jsonl").write_text(items.stdout)
    subprocess.run(JQ_CSV, shell=True, cwd=tmp_path, check=True, timeout=60)  # noqa: S602
    rows = list(csv.reader(io.StringIO((tmp_path / "batch.csv").read_text())))
    assert [row[0] for row in rows] == batch.job_ids
    assert rows[5][2:5] == ["false", "SITEMAP_INVALID", "sitemap is not valid XML"]
    assert rows[0][2:] == ["true", "", "", "3"]


def test_pages_to_disk_writes_every_item_once_across_a_crash(tmp_path: Path) -> None:
    out = tmp_path / "pages"
    crashed = run_recipe(
        "pages_to_disk.py", "--out", str(out), "--size", "40", "--crash-after", "13", expect=70
    )
    assert "simulated crash after 13 items" in crashed.stdout
    # The 13th item's file is written, its checkpoint never committed.
    assert json.loads((out / "checkpoint.json").read_text()) == {"offset": 12}
    assert len(list(out.glob("pages-demo-job-*"))) == 13

    resumed = run_recipe("pages_to_disk.py", "--out", str(out), "--size", "40")
    assert "resuming from offset 12" in resumed.stdout
    # round(40 * 0.1) = 4 failed jobs, none of them among the first 12.
    assert "wrote 26 pages and 2 failures in this run, ended at offset 40" in resumed.stdout
    assert f"40 files in {out}" in resumed.stdout
    names = sorted(path.name for path in out.iterdir())
    assert len([name for name in names if name.endswith(".failed.json")]) == 4
    stems = {name.removesuffix(".failed.json").removesuffix(".md") for name in names}
    assert stems == {f"pages-demo-job-{i:06d}" for i in range(40)} | {"checkpoint.json"}
    assert (out / "pages-demo-job-000000.md").read_text().startswith("# Page 000000\n")

    again = run_recipe("pages_to_disk.py", "--out", str(out), "--size", "40")
    assert "wrote 0 pages and 0 failures in this run, ended at offset 40" in again.stdout


def test_pages_to_disk_writes_each_pages_content_under_a_safe_name(tmp_path: Path) -> None:
    """A batch's own pages, byte for byte; a job id with ``/`` and ``..`` stays in the folder."""
    out = tmp_path / "pages"
    with FakeBlatServer().run_in_thread() as server:
        batch = server.add_batch(
            "../up", 23, kind="scrape", content_bytes=30_000, failed=[7], page_size=4
        )
        result = run_recipe(
            "pages_to_disk.py",
            batch.batch_id,
            "--out",
            str(out),
            env=environment(BLAT_API_KEY=server.api_key, BLAT_BASE_URL=server.base_url),
        )
    assert "wrote 22 pages and 1 failures in this run, ended at offset 23" in result.stdout
    assert sorted(tmp_path.iterdir()) == [out]
    for index in range(23):
        stem = "%2E.%2Fup-job-" + f"{index:06d}"
        if index == 7:
            failure = json.loads((out / f"{stem}.failed.json").read_text())
            assert failure["url"] == batch.url_of(7)
            assert failure["error_code"] == batch.job(7)["error_code"]
        else:
            assert (out / f"{stem}.md").read_text() == batch.content_of(index)
