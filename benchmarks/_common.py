"""What the benchmark's processes share: the result of a read, and how a process measures itself."""

from __future__ import annotations

import json
import resource
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

API_KEY: Final = "bench-key"
"""The key the benchmark's fake server accepts; loopback only, never a secret."""

BATCH_ID: Final = "bench"

_PROC_STATUS: Final = Path("/proc/self/status")


def _status_kib(field: str) -> int | None:
    try:
        text = _PROC_STATUS.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def current_rss_kib() -> int:
    """This process's resident memory now, in KiB (its peak where /proc is missing)."""
    return _status_kib("VmRSS") or peak_rss_kib()


def peak_rss_kib() -> int:
    """This process's peak resident memory, in KiB: ``VmHWM``, or ``ru_maxrss``."""
    peak = _status_kib("VmHWM")
    if peak is not None:
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # macOS reports bytes, Linux KiB.
    return maxrss // 1024 if sys.platform == "darwin" else maxrss


@dataclass(frozen=True, slots=True)
class ReadResult:
    """What one reader process reports: what it read, how long it took, its memory."""

    reader: str
    items: int
    links: int
    pages: int
    seconds: float
    baseline_rss_kib: int
    """Resident memory after imports, just before the read started."""
    peak_rss_kib: int
    """Peak resident memory of the whole process (``VmHWM``), read at exit."""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, line: str) -> ReadResult:
        fields: dict[str, Any] = json.loads(line)
        return cls(**fields)
