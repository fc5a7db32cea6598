"""Griffe extensions for the API reference, loaded by mkdocstrings.

mkdocs.yml lists them.

- `AttrsFieldDefaults` shows an attrs field's default, not the
  ``attrs.field(default=3, validator=...)`` call that declares it.
- `ConstantDefaults` shows a default as its value, of a parameter or of an
  attribute. The code keeps every default in one place, as named constants
  (``DEFAULT_TIMEOUT``), and the reference would otherwise show the names,
  which tell a reader nothing.
- `DoctestBlocks` shows a docstring's doctest (``>>>`` lines) as a Python
  session. Markdown reads ``>>>`` as three nested quotes, and griffe's Google
  parser only knows doctests inside an ``Examples:`` section.

Griffe runs them in this order, the order of the classes in this module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import griffe

_CONSTANT = re.compile(r"_?[A-Z][A-Z0-9_]*")


def _objects(obj: griffe.Object) -> Iterator[griffe.Object]:
    """``obj`` and every object defined in it, but no alias (imported name)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)  # type: ignore[arg-type]


_ATTRS_FIELDS = frozenset(
    {"attrs.field", "attr.ib", "attr.attrib", "attr.field"}
)


class AttrsFieldDefaults(griffe.Extension):
    """Replace an attrs field's ``attrs.field(...)`` value with its default.

    A field with a converter shows none: the value it holds is not the default
    given.
    """

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _objects(pkg):
            if not isinstance(obj, griffe.Attribute) or not isinstance(
                obj.value, griffe.ExprCall
            ):
                continue
            if obj.value.function.canonical_path in _ATTRS_FIELDS:
                obj.value = self._default(obj.value)

    @staticmethod
    def _default(field: griffe.ExprCall) -> str | griffe.Expr | None:
        keywords = {
            argument.name: argument.value
            for argument in field.arguments
            if isinstance(argument, griffe.ExprKeyword)
        }
        if "converter" in keywords:
            return None
        if "default" in keywords:
            return keywords["default"]
        if "factory" in keywords:
            return f"{keywords['factory']}()"
        return None


class ConstantDefaults(griffe.Extension):
    """Replace a default that names a module constant with its value."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _objects(pkg):
            if isinstance(obj, griffe.Function):
                for parameter in obj.parameters:
                    value = self._value(parameter.default, pkg)
                    if value is not None:
                        parameter.default = value
            elif isinstance(obj, griffe.Attribute):
                value = self._value(obj.value, pkg)
                if value is not None:
                    obj.value = value

    @staticmethod
    def _value(
        default: str | griffe.Expr | None, pkg: griffe.Module
    ) -> str | griffe.Expr | None:
        if not isinstance(default, griffe.ExprName | griffe.ExprAttribute):
            return None
        path = default.canonical_path
        if not _CONSTANT.fullmatch(path.rpartition(".")[2]):
            return None
        try:
            constant = pkg.modules_collection.get_member(path)
        except (KeyError, ValueError, griffe.AliasResolutionError):
            return None
        value: str | griffe.Expr | None = getattr(constant, "value", None)
        return value


class DoctestBlocks(griffe.Extension):
    """Fence the doctests of docstrings, outside sections, as pycon blocks."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _objects(pkg):
            if obj.docstring is not None and ">>>" in obj.docstring.value:
                obj.docstring.value = fence_doctests(obj.docstring.value)


def fence_doctests(text: str) -> str:
    """Put each run of doctest lines outside fences in a ``pycon`` block.

    A doctest line is one that starts with ``>>>``.

    A run ends at a blank line, as doctest's own examples do.
    """
    lines: list[str] = []
    in_fence = in_session = False
    for line in text.splitlines():
        if in_session and not line.strip():
            lines.append("```")
            in_session = False
        elif not in_session and line.startswith("```"):
            in_fence = not in_fence
        elif not in_session and not in_fence and line.startswith(">>>"):
            lines.append("```pycon")
            in_session = True
        lines.append(line)
    if in_session:
        lines.append("```")
    return "\n".join(lines)
