"""The benchmark's processes: the fake server's, and one fresh process for every read."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from _common import ReadResult
from _scenarios import GENERATED, Scenario
from _stats import ReaderRuns, Served

HERE: Final = Path(__file__).resolve().parent
_READER_TIMEOUT: Final = 300.0


def _python(script: str, *arguments: str) -> list[str]:
    return [sys.executable, str(HERE / script), *arguments]


@dataclass(slots=True)
class ServerProcess:
    """The fake server's process, and the line protocol of `fake_server.py`."""

    process: subprocess.Popen[str]
    base_url: str
    encode_seconds: float
    loop: str
    """The server's event loop: uvloop or asyncio (the readers always run on asyncio's)."""

    def stats(self) -> Served:
        """The requests the server answered since the last call."""
        assert self.process.stdin is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        return Served.from_stats(_read_json_line(self.process.stdout))


def _read_json_line(stream: IO[str] | None) -> dict[str, Any]:
    assert stream is not None
    line = stream.readline()
    if not line:
        raise RuntimeError("the fake server exited early; see its messages above")
    document: dict[str, Any] = json.loads(line)
    return document


@contextmanager
def fake_server(scenario: Scenario, loop: str = "auto") -> Iterator[ServerProcess]:
    """Run the fake server for ``scenario`` in its own process while the block runs."""
    command = _python(
        "fake_server.py",
        f"--size={scenario.size}",
        f"--page-size={scenario.page_size}",
        f"--links={scenario.links}",
        f"--latency={scenario.latency}",
        f"--kind={scenario.kind}",
        f"--content-bytes={scenario.content_bytes}",
        f"--loop={loop}",
    )
    # This interpreter runs a script of this folder with arguments built here.
    process = subprocess.Popen(  # noqa: S603
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        hello = _read_json_line(process.stdout)
        yield ServerProcess(process, hello["base_url"], hello["encode_seconds"], hello["loop"])
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_reader(
    reader: str,
    scenario: Scenario,
    server: ServerProcess,
    generated: Path | None,
    extra: Sequence[str] = (),
) -> ReadResult:
    """Run one reader process against ``server``; raise `RuntimeError` if it fails."""
    command = _python(
        "readers.py",
        reader,
        f"--base-url={server.base_url}",
        f"--expect={scenario.size}",
        f"--page-size={scenario.page_size}",
        f"--kind={scenario.kind}",
        *([f"--generated={generated}"] if generated is not None else []),
        *extra,
    )
    # This interpreter runs a script of this folder with arguments built here.
    finished = subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, timeout=_READER_TIMEOUT, check=False
    )
    lines = finished.stdout.strip().splitlines()
    if finished.returncode != 0 or not lines:
        tail = " | ".join(finished.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"exit status {finished.returncode}: {tail or 'no output'}")
    return ReadResult.from_json(lines[-1])


def _check(result: ReadResult, scenario: Scenario, links: int | None) -> str | None:
    if result.items != scenario.size:
        return f"read {result.items} items, expected {scenario.size}"
    if links is not None and result.links >= 0 and result.links != links:
        return f"read {result.links} links, another reader read {links}"
    return None


def run_scenario(
    scenario: Scenario,
    repeat: int,
    generated: Path | None,
    log: Callable[[str], None],
    server_loop: str = "auto",
) -> tuple[dict[str, ReaderRuns], str]:
    """Run every reader of ``scenario`` ``repeat`` times, in turns.

    Returns the runs, and the event loop the server ran on.
    """
    readers = [r for r in scenario.readers if r != GENERATED or generated is not None]
    runs = {reader: ReaderRuns(reader) for reader in readers}
    links: int | None = None
    with fake_server(scenario, server_loop) as server:
        log(
            f"  server at {server.base_url} on {server.loop}, "
            f"pages encoded in {server.encode_seconds:.2f} s"
        )
        for repetition in range(repeat):
            # Each repetition starts with the next reader, so none always goes first.
            shift = repetition % len(readers)
            for reader in readers[shift:] + readers[:shift]:
                try:
                    result = run_reader(reader, scenario, server, generated)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    runs[reader].errors.append(str(exc))
                    log(f"  {reader}: CRASHED: {exc}")
                    server.stats()
                    continue
                served = server.stats()
                if served.unfinished:
                    log(f"  {reader}: {served.unfinished} request(s) still unfinished")
                problem = _check(result, scenario, links)
                if problem is not None:
                    runs[reader].errors.append(problem)
                    log(f"  {reader}: WRONG: {problem}")
                    continue
                if links is None and result.links >= 0:
                    links = result.links
                runs[reader].results.append(result)
                runs[reader].served.append(served)
            log(f"  repetition {repetition + 1}/{repeat} done")
    return runs, server.loop


def run_structuring(
    smoke: bool, generated: Path | None, items: int, links: int
) -> dict[str, Any] | None:
    """Time structuring alone in a fresh process; ``None`` (and a message) if it failed."""
    command = _python(
        "structuring.py",
        f"--items={items}",
        f"--links={links}",
        f"--repeat={1 if smoke else 7}",
        *([f"--generated={generated}"] if generated is not None else []),
    )
    # This interpreter runs a script of this folder with arguments built here.
    finished = subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, timeout=_READER_TIMEOUT, check=False
    )
    if finished.returncode != 0:
        print(f"structuring benchmark CRASHED: {finished.stderr.strip()[-500:]}")
        return None
    result: dict[str, Any] = json.loads(finished.stdout.strip().splitlines()[-1])
    return result
