"""Which module may import what: the import-linter contracts, and what importing costs.

The contracts live in ``pyproject.toml``'s ``[tool.importlinter]`` and CI
checks the package against them (``lint-imports`` in ``.ci/run``). Here each
rule is shown to catch the import it forbids: a copy of the package gets
imports that break the architecture, and ``lint-imports`` must name each one.
import-linter comes from the ``lint`` extra: without it those tests are
skipped on a developer's machine, and fail where ``CI`` is set.

The package itself imports its public names on first use, so that loading
the pytest plugin costs neither aiohttp nor cattrs; the tests that import it
afresh do so in a new interpreter.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

import blat_async

ROOT = Path(__file__).resolve().parent.parent

# Importable from blat_async for code written against earlier versions, not in __all__.
FORMER_NAMES: Final = {"end_of_read"}

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
    ("_newcomer.py", "import json"),
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
        ("layers", "- blat_async._newcomer\n"),
    ],
)
def test_a_contract_names_the_import_that_breaks_it(
    breached: Path, contract: str, reported: str
) -> None:
    require_import_linter()
    result = lint_imports(breached, contract)

    assert result.returncode == 1, result.stdout + result.stderr
    assert reported in result.stdout, result.stdout


def run_python(code: str) -> None:
    """Run ``code`` in a new interpreter, which has imported nothing of blat_async yet."""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_loading_the_pytest_plugin_imports_neither_aiohttp_nor_cattrs() -> None:
    run_python(
        "import sys, blat_async.pytest_plugin\n"
        "loaded = {'aiohttp', 'cattrs'} & set(sys.modules)\n"
        "assert not loaded, loaded"
    )


def test_every_public_name_and_every_former_one_imports_from_a_fresh_package() -> None:
    names = [*blat_async.__all__, *FORMER_NAMES]
    run_python("".join(f"from blat_async import {name}\n" for name in names))


def test_dir_lists_every_public_name_before_it_is_imported() -> None:
    run_python(
        "import blat_async\n"
        "missing = set(blat_async.__all__) - set(dir(blat_async))\n"
        "assert not missing, missing"
    )


def test_an_unknown_name_is_an_attribute_error_that_names_it() -> None:
    with pytest.raises(AttributeError, match="'NoSuchName'"):
        _ = blat_async.NoSuchName  # type: ignore[attr-defined]


def test_a_name_imported_on_first_use_is_kept_in_the_package() -> None:
    client_class = blat_async.BlatClient

    assert vars(blat_async)["BlatClient"] is client_class


def type_checking_imports() -> dict[str, str]:
    """Each name that ``blat_async/__init__.py`` imports under TYPE_CHECKING, and its module."""
    tree = ast.parse((ROOT / "blat_async" / "__init__.py").read_text())
    (block,) = [
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    ]
    return {
        alias.name: node.module or ""
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


def test_the_lazy_names_the_type_checking_imports_and_all_agree() -> None:
    lazy = blat_async._LAZY_NAMES

    assert type_checking_imports() == lazy
    assert set(blat_async.__all__) == set(lazy) - FORMER_NAMES | {"__version__"}
    assert set(lazy) >= FORMER_NAMES


def test_every_default_is_used_by_the_package() -> None:
    """A constant of ``_defaults.py`` that no module reads says what the code does not do."""
    source = (ROOT / "blat_async" / "_defaults.py").read_text()
    names = [
        target.id
        for node in ast.parse(source).body
        if isinstance(node, ast.AnnAssign) and isinstance(target := node.target, ast.Name)
    ]
    users = [
        path.read_text()
        for path in (ROOT / "blat_async").rglob("*.py")
        if path.name != "_defaults.py"
    ]
    unused = [name for name in names if not any(name in text for text in users)]
    assert names
    assert unused == []
