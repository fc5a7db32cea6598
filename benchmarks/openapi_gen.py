"""Generate the comparison client from the API's OpenAPI spec, with openapi-python-client.

The spec is the YAML block of the endpoint's page in ``shared/spec``; the
client is generated at benchmark time into a temporary folder and never
committed. When the generator is missing or fails, `generate` says why
instead of raising, and the benchmark skips that column.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Final

PACKAGE: Final = "blat_openapi_client"
_YAML_BLOCK = re.compile(r"^````yaml[^\n]*\n(.*?)^````", re.MULTILINE | re.DOTALL)
# No post-hooks: the generator would otherwise run ruff over its output.
_CONFIG: Final = f"package_name_override: {PACKAGE}\npost_hooks: []\n"
_TIMEOUT: Final = 120.0


def find_spec() -> Path | None:
    """Find the endpoint's spec page: ``$BLAT_SPEC``, or ``shared/spec`` beside the repo."""
    candidates = [os.environ.get("BLAT_SPEC")]
    repo = Path(__file__).resolve().parent.parent
    for parent in (repo, *repo.parents):
        candidates.append(str(parent / "shared" / "spec" / "get-batch-scrape-sitemap.md"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def extract_yaml(markdown: str) -> str:
    """Return the OpenAPI YAML fenced in the spec page."""
    match = _YAML_BLOCK.search(markdown)
    if match is None:
        raise ValueError("the spec page has no ````yaml block")
    return match.group(1)


def _generator_command() -> list[str] | None:
    beside_python = Path(sys.executable).parent / "openapi-python-client"
    if beside_python.exists():
        return [str(beside_python)]
    on_path = shutil.which("openapi-python-client")
    return [on_path] if on_path else None


@dataclass(frozen=True, slots=True)
class Generated:
    """Where the generated package is, or why there is none."""

    folder: Path | None
    """The folder to put on ``sys.path`` to import `PACKAGE`."""
    reason: str | None = None
    """Why the client could not be generated, when it could not."""
    version: str | None = None


def _version() -> str | None:
    try:
        return metadata.version("openapi-python-client")
    except metadata.PackageNotFoundError:
        # Installed some other way (pipx, a system package): the version is unknown here.
        return None


def generate(workdir: Path) -> Generated:
    """Generate the client into ``workdir``; never raises for a missing or failing generator."""
    command = _generator_command()
    if command is None:
        return Generated(None, "openapi-python-client is not installed (pip install it)")
    spec = find_spec()
    if spec is None:
        return Generated(None, "the spec page get-batch-scrape-sitemap.md was not found")
    try:
        (workdir / "spec.yaml").write_text(extract_yaml(spec.read_text()))
    except (OSError, ValueError) as exc:
        return Generated(None, f"could not read the spec: {exc}")
    (workdir / "config.yaml").write_text(_CONFIG)
    output = workdir / "generated" / PACKAGE
    arguments = [
        "generate",
        "--path",
        str(workdir / "spec.yaml"),
        "--config",
        str(workdir / "config.yaml"),
        "--meta",
        "none",
        "--output-path",
        str(output),
        "--overwrite",
    ]
    try:
        # The generator found beside this interpreter or on PATH, with arguments built here.
        finished = subprocess.run(  # noqa: S603
            [*command, *arguments],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Generated(None, f"openapi-python-client could not run: {exc}")
    if finished.returncode != 0 or not (output / "__init__.py").is_file():
        lines = (finished.stderr or finished.stdout).strip().splitlines()
        why = lines[-1] if lines else f"exit status {finished.returncode}"
        return Generated(None, f"openapi-python-client failed: {why}")
    return Generated(output.parent, version=_version())
