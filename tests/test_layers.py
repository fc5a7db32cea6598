"""Which module may import what: the import-linter contracts, and what importing costs.

The contracts live in ``pyproject.toml``'s ``[tool.importlinter]`` and CI
checks the package against them (``lint-imports`` in ``.ci/run``). Here each
rule is shown to catch the import it forbids: a copy of the package gets
imports that break the architecture, and ``lint-imports`` must name each one.
import-linter comes from the ``lint`` extra: without it these tests are
skipped on a developer's machine, and fail where ``CI`` is set.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Imports that break the architecture, added to a copy of the package: the
# module (a path under blat_async/) and the line appended to it. A module that
# does not exist yet is created.
BREACHES: Final = [
    ("_protocol.py", "import aiohttp"),
    ("_endpoints.py", "import aiohttp"),
    ("_converter.py", "import blat_async.testing"),
    ("cli.py", "from . import __main__"),
    ("_cli_flags.py", "from . import cli"),
    ("client.py", "from . import _cli_flags"),
    ("_options.py", "from . import client"),
    ("_retry.py", "from . import _options"),
    ("testing/_wire.py", "from blat_async import client"),
    ("_batch.py", "from . import _pagination"),
    ("models.py", "from . import _converter"),
]


def require_import_linter() -> None:
    """Skip the test if import-linter is not installed; fail instead where ``CI`` is set."""
    if importlib.util.find_spec("importlinter") is not None:
        return
    message = "import-linter is not installed: pip install -e '.[lint]'"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI installs the lint extra and checks the contracts")
    pytest.skip(message)


@pytest.fixture(scope="module")
def breached(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package and its pyproject.toml, with every import of ``BREACHES``."""
    root = tmp_path_factory.mktemp("breached")
    shutil.copytree(
        ROOT / "blat_async", root / "blat_async", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    for module, line in BREACHES:
        with (root / "blat_async" / module).open("a") as file:
            file.write(f"\n{line}\n")
    return root


@functools.cache
def lint_imports(root: Path, contract: str) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the package under ``root``, one contract of its pyproject.toml."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())",
            "--no-cache",
            "--no-logo",
            "--contract",
            contract,
            "pyproject.toml",
        ],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("contract", "reported"),
    [
        # A sans-I/O module may not touch aiohttp...
        ("aiohttp", "- blat_async._protocol -> aiohttp"),
        # ...nor may a module added later, until the contract names it.
        ("aiohttp", "- blat_async._endpoints -> aiohttp"),
        ("testing", "- blat_async._converter -> blat_async.testing"),
        ("layers", "- blat_async.cli -> blat_async.__main__"),
        ("layers", "- blat_async._cli_flags -> blat_async.cli"),
        ("layers", "- blat_async.client -> blat_async._cli_flags"),
        ("layers", "- blat_async._options -> blat_async.client"),
        ("layers", "- blat_async._retry -> blat_async._options"),
        # The fake server speaks HTTP itself; it never drives the client.
        ("layers", "- blat_async.testing._wire -> blat_async.client"),
        ("layers", "- blat_async._batch -> blat_async._pagination"),
        ("layers", "- blat_async.models -> blat_async._converter"),
        # Every module has a layer: a new one is placed on purpose.
        ("layers", "- blat_async._endpoints\n"),
    ],
)
def test_a_contract_names_the_import_that_breaks_it(
    breached: Path, contract: str, reported: str
) -> None:
    require_import_linter()
    result = lint_imports(breached, contract)

    assert result.returncode == 1, result.stdout + result.stderr
    assert reported in result.stdout, result.stdout
