"""The documentation site shows every public name, and only public names, as a reader needs.

- Every name of ``blat_async.__all__`` and ``blat_async.testing.__all__``
  has an entry in docs/reference/: a ``:::`` directive, or a ``members:``
  entry under one. The lists are read when the test runs, so a name added
  later needs its entry too.
- No ``:::`` directive, ``members:`` entry or ``from blat_async import`` in a
  page's code presents a name its module does not export.
- Every attribute of every error has a type and a docstring, which the
  reference renders; the six status classes show their constructor once.
- The navigation's titles are unique, and the table of contents lets long
  method names wrap.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import pytest
import yaml

import blat_async
import blat_async.testing
from blat_async import errors

from .test_docs_width import PAGES, ROOT, code_lines

REFERENCE: Final = ROOT / "docs" / "reference"

_DIRECTIVE = re.compile(r"^::: (?P<target>[\w.]+)\s*$")
_MEMBER = re.compile(r"^ +- (?P<name>\w+)\s*$")
_OPTION = re.compile(r"^ +(?P<name>\w+): (?P<value>\S.*?)\s*$")
_IMPORT = re.compile(
    r"from (?P<module>blat_async(?:\.\w+)*) import "
    r"(?:\((?P<group>[^)]*)\)|(?P<line>[^\n(]+))"
)


def directives(page: Path) -> Iterator[tuple[str, list[str], dict[str, str]]]:
    """Yield each ``:::`` directive of ``page``: its target, ``members:`` and other options."""
    target: str | None = None
    members: list[str] = []
    options: dict[str, str] = {}
    for line in [*page.read_text().splitlines(), ""]:
        if target is not None and (member := _MEMBER.match(line)):
            members.append(member["name"])
        elif target is not None and (option := _OPTION.match(line)):
            options[option["name"]] = option["value"]
        elif target is not None and (not line.strip() or not line.startswith(" ")):
            yield target, members, options
            target, members, options = None, [], {}
        if directive := _DIRECTIVE.match(line):
            target = directive["target"]


def reference_directives() -> list[tuple[str, list[str], dict[str, str]]]:
    return [found for page in sorted(REFERENCE.glob("*.md")) for found in directives(page)]


def documented_names() -> set[str]:
    """Full dotted names the reference documents: directive targets and their members."""
    names = set()
    for target, members, _ in reference_directives():
        names.add(target)
        names.update(f"{target}.{member}" for member in members)
    return names


def split_target(target: str) -> tuple[ModuleType, list[str]]:
    """The deepest module of a dotted name, and the names after it."""
    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            return importlib.import_module(".".join(parts[:cut])), parts[cut:]
        except ModuleNotFoundError:
            continue
    raise AssertionError(f"{target} names no module")


def is_exported(module: ModuleType, name: str) -> bool:
    return name in getattr(module, "__all__", ())


@pytest.mark.parametrize(
    ("module", "name"),
    [(blat_async, name) for name in blat_async.__all__]
    + [(blat_async.testing, name) for name in blat_async.testing.__all__],
    ids=lambda value: value if isinstance(value, str) else value.__name__,
)
def test_every_public_name_has_a_reference_entry(module: ModuleType, name: str) -> None:
    """The name, or the object it is, is a directive or a member of one in docs/reference/."""
    documented = documented_names()
    obj = getattr(module, name)
    home = getattr(obj, "__module__", None)
    candidates = {f"{module.__name__}.{name}"}
    if home is not None:
        # `::: blat_async.errors.BlatError` documents `blat_async.BlatError` too.
        public_home = home if not home.rpartition(".")[2].startswith("_") else module.__name__
        candidates.add(f"{public_home}.{name}")
    assert candidates & documented, f"{module.__name__}.{name} has no entry in docs/reference/"


def test_reference_documents_only_exported_names() -> None:
    """Every directive and ``members:`` entry names a module or a name its module exports."""
    for target, members, _ in reference_directives():
        module, rest = split_target(target)
        if rest:
            assert is_exported(module, rest[0]), f"::: {target}: not in {module.__name__}.__all__"
        for member in members:
            assert not rest, f"::: {target} lists members of a class"
            assert is_exported(module, member), f"{member} is not in {module.__name__}.__all__"


def imported_names(text: str) -> Iterator[tuple[str, str]]:
    """``(module, name)`` for each name a ``from blat_async... import`` in ``text`` imports."""
    for found in _IMPORT.finditer(text):
        names = found["group"] if found["group"] is not None else found["line"]
        names = re.sub(r"#.*", "", names)
        for name in names.replace("\n", ",").split(","):
            name = name.strip().split(" as ")[0].strip()
            if name and name != "*":
                yield found["module"], name


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_pages_import_only_public_names(page: Path) -> None:
    """A page's code blocks, included files counted, import from blat_async only its exports."""
    where = str(page.relative_to(ROOT))
    text = "\n".join(line for _, line in code_lines(page.read_text(), where))
    for module_name, name in imported_names(text):
        module = importlib.import_module(module_name)
        if module_name.rpartition(".")[2].startswith("_"):
            continue
        assert is_exported(module, name), f"{where} imports {name}, not in {module_name}.__all__"


def test_the_import_check_sees_a_private_name() -> None:
    """The import check finds names in one-line and parenthesised imports alike."""
    text = "from blat_async import (\n    BlatClient,  # x\n    end_of_read,\n)\n"
    text += ">>> from blat_async.testing import FakeSite as Site\n"
    assert list(imported_names(text)) == [
        ("blat_async", "BlatClient"),
        ("blat_async", "end_of_read"),
        ("blat_async.testing", "FakeSite"),
    ]
    assert not is_exported(blat_async, "end_of_read")


def error_attributes() -> Iterator[tuple[str, ast.stmt, ast.stmt | None]]:
    """``(where, assignment, next statement)`` for each ``self.x = ...`` in errors.py."""
    tree = ast.parse(Path(errors.__file__).read_text())
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef):
            continue
        for function in cls.body:
            if not isinstance(function, ast.FunctionDef) or function.name != "__init__":
                continue
            body = function.body
            for index, statement in enumerate(body):
                targets: list[ast.expr] = []
                if isinstance(statement, ast.Assign):
                    targets = statement.targets
                elif isinstance(statement, ast.AnnAssign):
                    targets = [statement.target]
                for target in targets:
                    if isinstance(target, ast.Attribute) and not target.attr.startswith("_"):
                        following = body[index + 1] if index + 1 < len(body) else None
                        yield f"{cls.name}.{target.attr}", statement, following


def test_every_error_attribute_has_a_type_and_a_docstring() -> None:
    """The reference shows each attribute's type and meaning, not ``status = status``."""
    found = list(error_attributes())
    assert {where for where, _, _ in found} >= {
        "APIStatusError.status",
        "ResponseValidationError.path",
        "ResponseTooLargeError.limit",
    }
    for where, assignment, following in found:
        assert isinstance(assignment, ast.AnnAssign), f"{where} has no type annotation"
        docstring = following.value if isinstance(following, ast.Expr) else None
        assert isinstance(docstring, ast.Constant), f"{where} has no docstring"
        assert isinstance(docstring.value, str), f"{where} has no docstring"
        assert docstring.value.strip(), f"{where} has an empty docstring"


def test_every_error_property_has_a_type_and_a_docstring() -> None:
    for name in errors.__all__:
        obj = getattr(errors, name)
        if not isinstance(obj, type):
            continue
        for attribute, value in vars(obj).items():
            if isinstance(value, property) and not attribute.startswith("_"):
                assert value.__doc__, f"{name}.{attribute} has no docstring"
                assert value.fget is not None
                assert "return" in value.fget.__annotations__, f"{name}.{attribute} has no type"


def test_status_classes_show_the_constructor_once() -> None:
    """APIStatusError shows its signature; its subclasses, which share it, do not."""
    options = {
        target: found_options for target, _, found_options in directives(REFERENCE / "errors.md")
    }
    assert options["blat_async.errors.APIStatusError"].get("show_signature") != "false"
    subclasses = [
        name
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
        and issubclass(getattr(errors, name), errors.APIStatusError)
        and name != "APIStatusError"
    ]
    assert len(subclasses) == 6
    for name in subclasses:
        assert options[f"blat_async.errors.{name}"].get("show_signature") == "false", name


def nav_titles(entries: list[Any]) -> Iterator[str]:
    for entry in entries:
        if isinstance(entry, dict):
            for title, value in entry.items():
                yield title
                if isinstance(value, list):
                    yield from nav_titles(value)


def test_navigation_titles_are_unique() -> None:
    """No two entries of the navigation, sections included, share a title."""
    titles = list(nav_titles(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]))
    assert "Guide" in titles
    assert "Reading a batch" in titles
    repeated = sorted({title for title in titles if titles.count(title) > 1})
    assert not repeated, f"titles used twice in mkdocs.yml's nav: {repeated}"


def test_table_of_contents_labels_wrap() -> None:
    """The stylesheet the site loads lets a long method name wrap in the right-hand contents."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    css = "\n".join((ROOT / "docs" / path).read_text() for path in config.get("extra_css", []))
    rule = re.search(r"\.md-nav--secondary[^{]*\.md-ellipsis\s*\{(?P<body>[^}]*)\}", css)
    assert rule is not None, "no rule for the table of contents' labels"
    assert "white-space: normal" in rule["body"]
    assert "overflow-wrap: anywhere" in rule["body"]


def test_no_page_points_at_a_guide_outside_the_repository() -> None:
    """Pages speak of blat_async's own documents, not of a "house style" a reader cannot open."""
    for page in PAGES:
        assert "house style" not in page.read_text().lower(), page.relative_to(ROOT)


@pytest.mark.parametrize("page", sorted(REFERENCE.glob("*.md")), ids=lambda page: page.name)
def test_reference_pages_introduce_what_they_document(page: Path) -> None:
    """Read in the repository, a page says in prose what it documents, before any directive."""
    text = page.read_text()
    intro = text.split("\n::: ", 1)[0]
    prose = [line for line in intro.splitlines()[1:] if line.strip()]
    assert len(prose) >= 2, f"{page.name} has no introduction above its directives"
    for target, members, _ in directives(page):
        for name in members or [target.rpartition(".")[2]]:
            assert re.search(rf"`[^`\n]*\b{name}\b[^`\n]*`", intro), (
                f"{page.name}'s introduction does not name {name}"
            )


def test_the_errors_guide_tables_every_attribute() -> None:
    """docs/errors.md's table names each error class and each of its attributes."""
    guide = (ROOT / "docs" / "errors.md").read_text()
    section = guide.partition("## What each error carries")[2].partition("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    table = "\n".join(rows)
    for name in errors.__all__:
        if isinstance(getattr(errors, name), type):
            assert f"`{name}`" in table, f"the table has no row for {name}"
    for where, _, _ in error_attributes():
        assert f"`{where.rpartition('.')[2]}`" in table, f"the table does not show {where}"


def test_the_testing_guide_covers_the_fake_servers_surface() -> None:
    """docs/testing.md shows the key option, clear_faults, every RecordedRequest field, fraction."""
    guide = (ROOT / "docs" / "testing.md").read_text()
    assert "FakeBlatServer(api_key=" in guide
    assert "clear_faults()" in guide
    for field in dataclasses.fields(blat_async.testing.RecordedRequest):
        assert f"| `{field.name}`" in guide or f", `{field.name}`" in guide, field.name
    assert "`fraction`" in guide
    assert "`None`" in guide.partition("`fraction`")[2].partition("\n\n")[0]
