"""Every line of a code block in README.md and docs/ fits the width a code box shows.

At 1280 px, the site's code boxes show about 81 characters; a longer line is
cut, and a reader must scroll sideways to see the end of a command. The
limit is 80. Files a page includes with a ``--8<--`` snippet line (the
recipes' programs from examples/, the changelog) count as part of that page.

README.md's two set-up commands are exempt: .ci/run reads each as one line
by its trailing ``# the main job`` / ``# the tests`` label.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parent.parent
WIDTH: Final = 80
PAGES: Final = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
README_LABELS: Final = ("  # the main job", "  # the tests")

_FENCE = re.compile(r"^\s*(?P<fence>`{3,}|~{3,})")
_SNIPPET = re.compile(r"""^(?P<indent>\s*)--8<--\s+(?P<quote>["'])(?P<path>[^"']+)(?P=quote)\s*$""")


def resolve_snippets(text: str, where: str) -> Iterator[tuple[str, str]]:
    """Yield ``(where, line)`` for each line of ``text``, with snippet lines replaced.

    A ``--8<-- "path"`` line becomes the lines of that file (relative to the
    repository root, as mkdocs.yml's ``base_path`` says), indented like the
    snippet line and resolved in turn.
    """
    for number, line in enumerate(text.splitlines(), start=1):
        snippet = _SNIPPET.match(line)
        if snippet is None:
            yield f"{where}:{number}", line
            continue
        path = ROOT / snippet["path"]
        assert path.is_file(), f"{where}:{number} includes {snippet['path']}, which is missing"
        for included_where, included in resolve_snippets(path.read_text(), snippet["path"]):
            yield included_where, snippet["indent"] + included if included else included


def code_lines(text: str, where: str) -> Iterator[tuple[str, str]]:
    """Yield ``(where, line)`` for each line inside a fenced code block, snippets resolved."""
    fence: str | None = None
    for line_where, line in resolve_snippets(text, where):
        opening = _FENCE.match(line)
        if fence is None:
            if opening is not None:
                fence = opening["fence"]
        elif (
            opening is not None
            and opening["fence"][0] == fence[0]
            and len(opening["fence"]) >= len(fence)
            and not line.strip()[len(opening["fence"]) :].strip()
        ):
            fence = None
        else:
            yield line_where, line


def too_wide(page: Path) -> list[str]:
    """The lines of ``page``'s code blocks longer than `WIDTH`, with where they are."""
    where = str(page.relative_to(ROOT))
    wide = []
    for line_where, line in code_lines(page.read_text(), where):
        if page.name == "README.md" and page.parent == ROOT and line.endswith(README_LABELS):
            continue
        if len(line) > WIDTH:
            wide.append(f"{line_where} ({len(line)}): {line}")
    return wide


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_code_lines_fit_the_code_box(page: Path) -> None:
    """No line of a code block of the page, included files counted, is over 80 characters."""
    wide = too_wide(page)
    assert not wide, f"{len(wide)} code lines over {WIDTH} characters:\n" + "\n".join(wide)


def test_only_the_two_labelled_readme_commands_are_exempt() -> None:
    """README.md holds exactly one line per label, each a command inside a code block."""
    labelled = [
        line
        for _, line in code_lines((ROOT / "README.md").read_text(), "README.md")
        if line.endswith(README_LABELS)
    ]
    assert sorted(line.rpartition("#")[2] for line in labelled) == [" the main job", " the tests"]


def test_snippets_and_fences_are_followed() -> None:
    """An included file's lines count, and only the lines between fences do."""
    page = "prose " + "x" * 100 + '\n```python\n--8<-- "examples/export_batch.sh"\n```\n'
    lines = [line for _, line in code_lines(page, "page.md")]
    assert lines == (ROOT / "examples/export_batch.sh").read_text().splitlines()


def test_a_wide_code_line_is_found() -> None:
    """The check itself sees a line of 81 characters in a block, and not in prose."""
    page = "x" * 200 + "\n\n```text\n" + "y" * 81 + "\n" + "z" * 80 + "\n```\n"
    wide = [line for _, line in code_lines(page, "page.md") if len(line) > WIDTH]
    assert wide == ["y" * 81]
