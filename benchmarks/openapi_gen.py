"""Generate the comparison client from the API's OpenAPI spec, with openapi-python-client.

The specs are the repository's contracts, ``openapi/get-batch-scrape-sitemap.yaml``
and ``openapi/get-batch-scrape.yaml`` (each endpoint's OpenAPI document, as the
API reference publishes it); one client is generated from each, at benchmark
time, into a temporary folder, and never committed. When the generator is
missing or fails, `generate` says why instead of raising, and the benchmark
skips that reader.
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
SCRAPE_PACKAGE: Final = "blat_openapi_scrape_client"
ROOT: Final = Path(__file__).resolve().parent.parent
CONTRACT: Final = ROOT / "openapi" / "get-batch-scrape-sitemap.yaml"
SCRAPE_CONTRACT: Final = ROOT / "openapi" / "get-batch-scrape.yaml"
_TIMEOUT: Final = 120.0


def _config(package: str) -> str:
    # No post-hooks: the generator would otherwise run ruff over its output.
    return f"package_name_override: {package}\npost_hooks: []\n"


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
    scrape_reason: str | None = None
    """Why the batch scrape client (`SCRAPE_PACKAGE`) could not be generated, when it could not."""


def _version() -> str | None:
    try:
        return metadata.version("openapi-python-client")
    except metadata.PackageNotFoundError:
        # Installed some other way (pipx, a system package): the version is unknown here.
        return None


def _generate_one(command: list[str], spec: Path, workdir: Path, package: str) -> str | None:
    """Generate ``package`` from ``spec`` into ``workdir/generated``; return why not, if not."""
    scratch = workdir / package
    scratch.mkdir()
    try:
        shutil.copyfile(spec, scratch / "spec.yaml")
    except OSError as exc:
        return f"could not read the spec: {exc}"
    (scratch / "config.yaml").write_text(_config(package))
    output = workdir / "generated" / package
    arguments = [
        "generate",
        "--path",
        str(scratch / "spec.yaml"),
        "--config",
        str(scratch / "config.yaml"),
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
        return f"openapi-python-client could not run: {exc}"
    if finished.returncode != 0 or not (output / "__init__.py").is_file():
        lines = (finished.stderr or finished.stdout).strip().splitlines()
        why = lines[-1] if lines else f"exit status {finished.returncode}"
        return f"openapi-python-client failed: {why}"
    return None


def generate(workdir: Path) -> Generated:
    """Generate both clients into ``workdir``; never raises for a missing or failing generator.

    Without the sitemap client there is no generated reader at all; without
    the scrape client (`Generated.scrape_reason` says why), only the scrape
    scenario goes without one.
    """
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
    reason = _generate_one(command, spec, workdir, PACKAGE)
    if reason is not None:
        return Generated(None, reason)
    scrape_reason = _generate_one(command, SCRAPE_CONTRACT, workdir, SCRAPE_PACKAGE)
    return Generated(workdir / "generated", version=_version(), scrape_reason=scrape_reason)
