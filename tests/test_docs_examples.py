"""Every Python block of README.md and docs/ runs, offline, and passes ``mypy --strict``.

Readers copy these blocks, so they are held to what the code is held to. The
fence of a block says what it is:

- ```` ```python ````: a program, complete as shown (it imports what it uses).
  It runs as ``__main__`` with ``BLAT_API_KEY`` and ``BLAT_BASE_URL`` set to a
  `FakeBlatServer` holding the batch the pages read, ``b-123``. A program that
  defines ``test_`` functions is a test module: it runs with pytest in a
  project of its own, with no configuration (so no asyncio mode), beside
  ``myapp.py`` (tests/_docs_myapp.py), which stands for the reader's code.
- ```` ```python {test="fragment"} ````: lines from the middle of a program. It
  runs, and is type-checked, as the body of
  ``async def fragment(client, server, batch_id)`` with the names of
  tests/_docs_prelude.py: a client of a fake server, the server, the batch id,
  and helpers that stand for the reader's code (``handle``, ``store``...).
  Anything else it uses, it imports.
- ```` ```pycon ````: an interactive session, run by doctest, which compares
  what it prints, in an environment without ``BLAT_*`` variables.

docs/recipes/ is left to tests/test_recipes.py: its programs are the files of
examples/, which the pages include and which are run there and type-checked
with the code; its sketches for Ray, Dask and Celery need those libraries.

Nothing reaches the network: while a block runs in this process, no name but
loopback resolves, and the test modules read the fake server they start.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import doctest
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, Literal

import pytest
from pytest_examples import CodeExample, find_examples

from blat_async.testing import FakeBlatServer

from ._docs_prelude import add_batches, run_fragment

ROOT: Final = Path(__file__).resolve().parent.parent
MYAPP: Final = Path(__file__).with_name("_docs_myapp.py")
FRAGMENT: Final = "fragment"

# A fragment's module: the prelude, then the block as the body of `fragment`.
_FRAGMENT_HEAD: Final = (
    "from tests._docs_prelude import *  # noqa: F403\n"
    "async def fragment(client: BlatClient, server: FakeBlatServer, batch_id: str) -> None:\n"
)
_FRAGMENT_HEAD_LINES: Final = _FRAGMENT_HEAD.count("\n")
_MYPY_LINE = re.compile(r"^(?P<module>\w+)\.py:(?P<line>\d+): (?P<message>error: .*)$")

Kind = Literal["program", "test module", "fragment", "session"]


@dataclasses.dataclass(frozen=True)
class Block:
    """One code block of a page, and what its fence and content make it."""

    example: CodeExample
    kind: Kind

    @property
    def where(self) -> str:
        return f"{self.example.path.relative_to(ROOT)}:{self.example.start_line}"

    @property
    def module(self) -> str:
        """A module name for the block, unique among all the pages' blocks."""
        stem = re.sub(r"\W", "_", str(self.example.path.relative_to(ROOT)))
        return f"{stem}_{self.example.start_line}"

    @property
    def source(self) -> str:
        """The block as a module: a fragment inside `fragment`, anything else as it is."""
        if self.kind == FRAGMENT:
            return _FRAGMENT_HEAD + textwrap.indent(self.example.source, "    ")
        return self.example.source

    @property
    def first_line(self) -> int:
        """The page's line before the block's first line in `source`."""
        if self.kind == FRAGMENT:
            return self.example.start_line - _FRAGMENT_HEAD_LINES
        return self.example.start_line


def execute(block: Block) -> dict[str, Any]:
    """Run ``block`` as ``__main__``; a traceback names the page and the page's lines.

    pytest-examples finds the blocks, but its ``EvalExample.run`` is not used:
    it rewrites tracebacks with ctypes, which crashes pytest on Python 3.11
    when a block fails.
    """
    tree = ast.parse(block.source)
    ast.increment_lineno(tree, block.first_line)
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": str(block.example.path)}
    # The pages' own code, which is what this test is about.
    exec(compile(tree, str(block.example.path), "exec"), namespace)  # noqa: S102
    return namespace


def _kind(example: CodeExample) -> Kind:
    if example.prefix.split()[0] == "pycon":
        return "session"
    if example.prefix_settings().get("test") == FRAGMENT:
        return FRAGMENT
    tree = ast.parse(example.source)
    defines_tests = any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
        for node in tree.body
    )
    return "test module" if defines_tests else "program"


def _pages() -> list[Path]:
    docs = sorted(path for path in (ROOT / "docs").rglob("*.md") if "recipes" not in path.parts)
    return [ROOT / "README.md", *docs]


BLOCKS: Final = [Block(example, _kind(example)) for example in find_examples(*_pages())]


def blocks(*kinds: Kind) -> pytest.MarkDecorator:
    """Run a test once for each block of these kinds, named by page and line."""
    return pytest.mark.parametrize(
        "block", [block for block in BLOCKS if block.kind in kinds], ids=lambda block: block.where
    )


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let no name but loopback resolve."""
    resolve = socket.getaddrinfo

    def loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in {"localhost", "127.0.0.1", "::1", None}:
            raise OSError(f"the docs' examples must not reach the network (asked for {name!r})")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)


@pytest.fixture(autouse=True)
def _keep_logging() -> Iterator[None]:
    """Undo what a block may change in logging for the rest of the run."""
    loggers = [logging.getLogger(), logging.getLogger("blat_async")]
    saved = [(logger, logger.level, list(logger.handlers)) for logger in loggers]
    yield
    for logger, level, handlers in saved:
        logger.setLevel(level)
        logger.handlers[:] = handlers


@pytest.fixture
def docs_server(
    fake_blat_server: FakeBlatServer, monkeypatch: pytest.MonkeyPatch
) -> FakeBlatServer:
    """The fake server with the pages' batches, which the environment points at."""
    add_batches(fake_blat_server)
    monkeypatch.setenv("BLAT_API_KEY", fake_blat_server.api_key)
    monkeypatch.setenv("BLAT_BASE_URL", fake_blat_server.base_url)
    return fake_blat_server


@pytest.fixture(scope="session")
def mypy_errors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Type-check every block that is Python source in one mypy run: errors by module."""
    folder = tmp_path_factory.mktemp("docs-mypy")
    typed = [block for block in BLOCKS if block.kind != "session"]
    for block in typed:
        (folder / f"{block.module}.py").write_text(block.source)
    shutil.copyfile(MYAPP, folder / "myapp.py")
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(folder / ".mypy_cache"),
            *(f"{block.module}.py" for block in typed),
        ],
        cwd=folder,
        env={**os.environ, "MYPYPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if checked.returncode not in {0, 1} or checked.stderr:
        pytest.fail(f"mypy did not run: {checked.stderr or checked.stdout}")
    by_module = {block.module: block for block in typed}
    errors: dict[str, list[str]] = {}
    for line in checked.stdout.splitlines():
        match = _MYPY_LINE.match(line)
        if match is None:
            continue
        block = by_module[match["module"]]
        page_line = block.first_line + int(match["line"])
        where = f"{block.example.path.relative_to(ROOT)}:{page_line}"
        errors.setdefault(block.module, []).append(f"{where}: {match['message']}")
    return errors


@blocks("program", "test module", FRAGMENT)
def test_block_passes_mypy_strict(block: Block, mypy_errors: dict[str, list[str]]) -> None:
    assert mypy_errors.get(block.module, []) == []


@blocks("program")
@pytest.mark.usefixtures("docs_server")
def test_program_runs(block: Block) -> None:
    execute(block)


@blocks(FRAGMENT)
def test_fragment_runs(block: Block, docs_server: FakeBlatServer) -> None:
    fragment = execute(block)["fragment"]

    asyncio.run(run_fragment(fragment, docs_server))


@blocks("test module")
def test_test_module_passes_in_a_plain_project(block: Block, tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    shutil.copyfile(MYAPP, tmp_path / "myapp.py")
    (tmp_path / f"test_{block.module}.py").write_text(block.source)
    env = {name: value for name, value in os.environ.items() if not name.startswith("BLAT_")}

    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"\b[1-9]\d* passed\b", run.stdout), run.stdout


@blocks("session")
def test_session_prints_what_it_shows(block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("BLAT_")]:
        monkeypatch.delenv(name)
    session = doctest.DocTestParser().get_doctest(
        block.example.source, {}, block.where, str(block.example.path), block.example.start_line
    )
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report: list[str] = []

    result = runner.run(session, out=report.append)

    assert result.failed == 0, "".join(report)
