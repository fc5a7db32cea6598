"""Generate the comparison client from the API's OpenAPI spec, with openapi-python-client.

The spec is the repository's contract, ``openapi/get-batch-scrape-sitemap.yaml``
(the endpoint's OpenAPI document, as the API reference publishes it); the
client is generated at benchmark time into a temporary folder and never
committed. When the generator is missing or fails, `generate` says why
instead of raising, and the benchmark skips that column.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Final

PACKAGE: Final = "blat_openapi_client"
ROOT: Final = Path(__file__).resolve().parent.parent
CONTRACT: Final = ROOT / "openapi" / "get-batch-scrape-sitemap.yaml"
# No post-hooks: the generator would otherwise run ruff over its output.
_CONFIG: Final = f"package_name_override: {PACKAGE}\npost_hooks: []\n"
_TIMEOUT: Final = 120.0


def find_spec() -> Path | None:
    """Find the OpenAPI document: ``$BLAT_SPEC`` if set, else the repository's `CONTRACT`."""
    candidate = Path(os.environ.get("BLAT_SPEC") or CONTRACT)
    return candidate if candidate.is_file() else None


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
    # The generator may come from another environment on PATH; the client it
    # writes runs here, and needs httpx here.
    if importlib.util.find_spec("httpx") is None:
        return Generated(None, "httpx, which the generated client needs, is not installed")
    spec = find_spec()
    if spec is None:
        where = os.environ.get("BLAT_SPEC") or CONTRACT
        return Generated(None, f"the OpenAPI document {where} was not found")
    try:
        shutil.copyfile(spec, workdir / "spec.yaml")
    except OSError as exc:
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
