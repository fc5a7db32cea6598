"""What the numbers were measured on: the CPU, the interpreter and the packages."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> list[str]:
    """What the numbers were measured on, as markdown list items."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    packages = ["blat-async", "aiohttp", "yarl", "attrs", "cattrs", "orjson", "httpx", "uvloop"]
    packages += ["openapi-python-client", "matplotlib"]
    versions = ", ".join(f"{package} {_version(package)}" for package in packages)
    return [
        f"- CPU: {_cpu_model()}, {os.cpu_count()} cores ({usable} usable), load {load}",
        f"- {platform.python_implementation()} {platform.python_version()} "
        f"on {platform.system()} {platform.release()}",
        f"- {versions}",
    ]
