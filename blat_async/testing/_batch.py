"""One batch a `FakeBlatServer` serves: its kind, its settings, its jobs and its pages."""

from __future__ import annotations

import random
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, Final, Literal, TypeAlias, get_args

import attrs

from ._faults import Fault

DEFAULT_PAGE_SIZE: Final = 10
"""The most items a page of a `FakeBlatServer`'s batch holds unless told otherwise.

Ten, as the API's batch endpoints send.
"""

DEFAULT_LINK_BASE: Final = "https://example.com/pages/"
"""Where the links of a `FakeBlatServer`'s batch point unless told otherwise."""

DEFAULT_CONTENT_BYTES: Final = 1024
"""How many bytes of ``content`` each page of a scrape batch holds unless told otherwise."""

BatchKind: TypeAlias = Literal["sitemap", "scrape"]
"""Which endpoint serves a `FakeBlatServer`'s batch.

``"sitemap"``: ``GET /batch/scrape_sitemap/{batch_id}``, an item per sitemap
with its ``links``. ``"scrape"``: ``GET /batch/scrape/{batch_id}``, an item per
scraped page with its ``content`` and ``extracted_links``.
"""

_KINDS: Final = get_args(BatchKind)
# The key of an item that holds its links, by kind; Fault.wrong_type() replaces it.
_LINKS_FIELDS: Final[dict[str, str]] = {"sitemap": "links", "scrape": "extracted_links"}

_EXPIRY: Final = timedelta(days=1)

# (error_code, error) of failed jobs, by kind, chosen by the job's index.
_JOB_ERRORS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "sitemap": (
        ("SITEMAP_NOT_FOUND", "sitemap returned HTTP 404"),
        ("SITEMAP_TIMEOUT", "timed out fetching the sitemap"),
        ("SITEMAP_INVALID", "sitemap is not valid XML"),
    ),
    "scrape": (
        ("PAGE_NOT_FOUND", "page returned HTTP 404"),
        ("SCRAPE_TIMEOUT", "timed out fetching the page"),
        ("PAGE_FORBIDDEN", "page returned HTTP 403"),
    ),
}
# What fills a scrape job's content after its heading: ASCII, so that a
# character is a byte.
_PARAGRAPH: Final = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod "
    "tempor incididunt ut labore et dolore magna aliqua.\n\n"
)


def _expires_at(value: str | None) -> str:
    if value is not None:
        return value
    return (datetime.now(UTC) + _EXPIRY).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fault_tuple(faults: Iterable[Fault]) -> tuple[Fault, ...]:
    return tuple(faults)


# Not slotted, and compared by identity: a batch is one live object, which
# tests may patch (such as its `page`) and keep in sets.
@attrs.define(kw_only=True, slots=False, eq=False, repr=False)
class FakeBatch:
    """One batch the server knows, returned by `FakeBlatServer.add_batch`.

    Its settings are the keyword arguments of
    [`add_batch`][blat_async.testing.FakeBlatServer.add_batch], each with the
    default given here. Its ``kind`` says which endpoint serves it: a
    ``"sitemap"`` batch's jobs are sitemaps with their ``links``, a
    ``"scrape"`` batch's jobs are scraped pages with their ``content``,
    ``extracted_links``, ``final_url`` and ``status_code``.

    Jobs are computed from their index on demand, so a batch of 200,000 jobs
    costs little more than its list of failed indices; a scrape batch's
    content is cut from one string of ``content_bytes``, made when first asked for.
    [`visible`][blat_async.testing.FakeBatch.visible] jobs are served; it grows by
    [`reveal`][blat_async.testing.FakeBatch.reveal],
    [`complete`][blat_async.testing.FakeBatch.complete] and, with
    ``jobs_per_second``, with time.
    """

    batch_id: str
    """The batch's id, as it appears in the URL path once decoded."""
    size: int = 25
    """How many jobs (sitemaps, or URLs of a scrape batch) it holds, the response's ``total``."""
    kind: BatchKind = "sitemap"
    """Which endpoint serves it: ``"sitemap"`` or ``"scrape"``; the other answers 404 for it."""
    page_size: int = DEFAULT_PAGE_SIZE
    """The most items one page holds."""
    links_per_job: int = 3
    """How many links each successful job extracted: its ``links`` or ``extracted_links``."""
    content_bytes: int | None = None
    """How many bytes (ASCII characters) of ``content`` each successful scrape job holds.

    ``None`` for a sitemap batch, whose jobs have no content; for a scrape batch
    it defaults to [`DEFAULT_CONTENT_BYTES`][blat_async.testing.DEFAULT_CONTENT_BYTES].
    """
    link_base: str = DEFAULT_LINK_BASE
    """Where the links point: link ``n`` of job ``index`` is ``f"{link_base}{index:06d}/{n}"``.

    Give a [`FakeSite`][blat_async.testing.FakeSite]'s
    [`link_base`][blat_async.testing.FakeSite.link_base] for links a crawler can
    fetch on loopback.
    """
    _failed_given: Iterable[int] | float = attrs.field(default=(), alias="failed")
    # What `failed=` was given, resolved into `failed` when the batch is made.
    _visible_given: int | None = attrs.field(default=None, alias="visible")
    # What `visible=` was given, resolved into the jobs shown when the batch is made.
    jobs_per_second: float | None = None
    """How fast more jobs become visible, or ``None`` if only by hand."""
    running_status: str = "running"
    """The response's ``status`` while some jobs are not visible yet."""
    final_status: str = "completed"
    """The response's ``status`` once every job is visible."""
    expires_at: str = attrs.field(default=None, converter=_expires_at)
    """The response's ``expires_at``; by default a day after the batch was added, in UTC."""
    latency: float = 0.0
    """Seconds the server waits before answering each request for this batch."""
    forbidden: bool = False
    """Whether every request for this batch is answered 403."""
    faults: tuple[Fault, ...] = attrs.field(default=(), converter=_fault_tuple)
    """Faults for this batch's requests, one drawn at random for a ``fault_rate`` share of them."""
    fault_rate: float = 1.0
    """The share of this batch's requests that get one of ``faults``, 0 to 1."""
    seed: int | None = 0
    """Seeds the random choices of failed jobs and faults."""
    _clock: Callable[[], float] = time.monotonic
    # What makes `jobs_per_second` batches grow: the server's clock.

    failed: frozenset[int] = attrs.field(init=False)
    """The indices of the jobs that fail.

    ``failed=`` takes them, or the fraction of jobs that fail, chosen at random
    with ``seed``.
    """
    _failed: tuple[int, ...] = attrs.field(init=False)
    _random: random.Random = attrs.field(init=False)
    _added_at: float = attrs.field(init=False)
    _shown: int = attrs.field(init=False)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)

    def __attrs_post_init__(self) -> None:
        self._shown = self._check_settings()
        if self.kind == "scrape" and self.content_bytes is None:
            self.content_bytes = DEFAULT_CONTENT_BYTES
        self._random = random.Random(self.seed)
        self._failed = tuple(sorted(_failed_indices(self._failed_given, self.size, self._random)))
        self.failed = frozenset(self._failed)
        self._added_at = self._clock()

    def _check_settings(self) -> int:
        """Refuse settings that make no batch; return how many jobs are visible at first."""
        size, page_size, links_per_job = self.size, self.page_size, self.links_per_job
        jobs_per_second, latency, fault_rate = self.jobs_per_second, self.latency, self.fault_rate
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size!r}")
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {self.kind!r}")
        if self.content_bytes is not None:
            if self.kind != "scrape":
                raise ValueError("content_bytes is for scrape batches: pass kind='scrape'")
            if self.content_bytes < 0:
                raise ValueError(f"content_bytes must be >= 0, got {self.content_bytes!r}")
        if page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {page_size!r}")
        if links_per_job < 0:
            raise ValueError(f"links_per_job must be >= 0, got {links_per_job!r}")
        if not isinstance(self.link_base, str):
            raise TypeError(f"link_base must be a str, got {self.link_base!r}")
        if jobs_per_second is not None and not jobs_per_second > 0:
            raise ValueError(f"jobs_per_second must be > 0, got {jobs_per_second!r}")
        visible = self._visible_given
        if visible is None:
            visible = 0 if jobs_per_second is not None else size
        if not 0 <= visible <= size:
            raise ValueError(f"visible must be between 0 and size={size}, got {visible!r}")
        if not latency >= 0:
            raise ValueError(f"latency must be >= 0, got {latency!r}")
        if not 0 <= fault_rate <= 1:
            raise ValueError(f"fault_rate must be between 0 and 1, got {fault_rate!r}")
        for fault in self.faults:
            if not isinstance(fault, Fault):
                raise TypeError(f"faults must be Fault instances, got {fault!r}")
        return visible

    def __repr__(self) -> str:
        return (
            f"<FakeBatch {self.batch_id!r} {self.kind} size={self.size} visible={self.visible} "
            f"failed={len(self._failed)}>"
        )

    @property
    def visible(self) -> int:
        """How many jobs the server shows now: the first ``visible`` of ``size``.

        ``visible=`` sets how many at first: by default all of them, or none
        when ``jobs_per_second`` is given.
        """
        with self._lock:
            shown = self._shown
        if self.jobs_per_second is not None:
            shown += int((self._clock() - self._added_at) * self.jobs_per_second)
        return min(shown, self.size)

    @property
    def is_complete(self) -> bool:
        """Whether every job is visible, so ``status`` is ``final_status``."""
        return self.visible == self.size

    def reveal(self, count: int = 1) -> None:
        """Make ``count`` more jobs visible (no more than ``size`` in all)."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count!r}")
        with self._lock:
            self._shown = min(self._shown + count, self.size)

    def complete(self) -> None:
        """Make every job visible: the batch is finished."""
        with self._lock:
            self._shown = self.size

    def processed(self, visible: int | None = None) -> int:
        """Count the successful jobs among the first ``visible`` (default: those visible now)."""
        if visible is None:
            visible = self.visible
        return visible - bisect_left(self._failed, visible)

    def job_id(self, index: int) -> str:
        """Return the id of job ``index``."""
        return f"{self.batch_id}-job-{index:06d}"

    def job(self, index: int) -> dict[str, Any]:
        """Return job ``index`` as the API sends it in ``data``.

        A failed job has ``error`` and ``error_code`` in place of its links (and,
        in a scrape batch, its content, ``final_url`` and ``status_code``).
        """
        self._check_index(index)
        metadata: dict[str, Any] = {
            "batch_id": self.batch_id,
            "job_id": self.job_id(index),
            "url": self.url_of(index),
        }
        if index in self.failed:
            errors = _JOB_ERRORS[self.kind]
            error_code, error = errors[index % len(errors)]
            return {
                "metadata": metadata,
                "success": False,
                "error": error,
                "error_code": error_code,
            }
        if self.kind == "sitemap":
            return {"metadata": metadata, "success": True, "links": self.links_of(index)}
        metadata["final_url"] = self.final_url_of(index)
        metadata["status_code"] = 200
        return {
            "metadata": metadata,
            "success": True,
            "content": self.content_of(index),
            "extracted_links": self.links_of(index),
        }

    def url_of(self, index: int) -> str:
        """Return the URL job ``index`` was asked to fetch: a sitemap's, or a page's."""
        self._check_index(index)
        if self.kind == "sitemap":
            return f"https://example.com/sitemaps/{index:06d}.xml"
        return f"https://example.com/articles/{index:06d}"

    def final_url_of(self, index: int) -> str:
        """Return where scrape job ``index`` ended after redirects.

        Every fifth job (index 4, 9, 14...) was redirected to its URL with a
        trailing slash; the others ended at their URL.
        """
        url = self.url_of(index)
        return f"{url}/" if index % 5 == 4 else url

    def content_of(self, index: int) -> str:
        """Return the content of scrape job ``index``: ``content_bytes`` ASCII characters.

        It opens with a Markdown heading that names the job, followed by filler
        text; a failed job, and any job of a sitemap batch, has none (``""``).
        """
        self._check_index(index)
        if self.content_bytes is None or index in self.failed:
            return ""
        heading = f"# Page {index:06d}\n\n"
        # One filler string per batch, sliced: no page builds megabytes in a loop.
        return heading[: self.content_bytes] + self._filler[len(heading) :]

    @cached_property
    def _filler(self) -> str:
        length = self.content_bytes or 0
        return (_PARAGRAPH * (length // len(_PARAGRAPH) + 1))[:length]

    @property
    def links_field(self) -> str:
        """The key of an item that holds its links: ``"links"``, or ``"extracted_links"``."""
        return _LINKS_FIELDS[self.kind]

    def links_of(self, index: int) -> list[str]:
        """Return the links of job ``index``, or none if it failed."""
        self._check_index(index)
        if index in self.failed:
            return []
        return [f"{self.link_base}{index:06d}/{n}" for n in range(self.links_per_job)]

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.size:
            raise IndexError(f"job index {index} out of range for a batch of {self.size}")

    @property
    def jobs(self) -> list[dict[str, Any]]:
        """Every job, in order, as the API sends them (built on each access)."""
        return [self.job(index) for index in range(self.size)]

    @property
    def job_ids(self) -> list[str]:
        """Every job id, in order (built on each access)."""
        return [self.job_id(index) for index in range(self.size)]

    @property
    def links(self) -> list[str]:
        """Every link of every job, in order (built on each access)."""
        return [link for index in range(self.size) for link in self.links_of(index)]

    def page(self, from_: int = 0) -> dict[str, Any]:
        """Return the response body the server sends now for offset ``from_``."""
        if from_ < 0:
            raise ValueError(f"from_ must be >= 0, got {from_!r}")
        visible = self.visible
        end = min(from_ + self.page_size, visible)
        return {
            "status": self.final_status if visible == self.size else self.running_status,
            "total": self.size,
            "processed": self.processed(visible),
            "expires_at": self.expires_at,
            "data": [self.job(index) for index in range(from_, end)],
        }

    def _draw_fault(self) -> Fault | None:
        if not self.faults:
            return None
        with self._lock:
            if self._random.random() >= self.fault_rate:
                return None
            return self._random.choice(self.faults)


def _failed_indices(failed: Iterable[int] | float, size: int, rng: random.Random) -> set[int]:
    if isinstance(failed, int):  # bool too
        raise TypeError(
            f"failed must be job indices or a fraction, got {failed!r}: "
            f"pass [{failed:d}] for one job, or {float(failed)!r} for a fraction"
        )
    if isinstance(failed, float):
        if not 0 <= failed <= 1:
            raise ValueError(f"a fraction of failed jobs must be between 0 and 1, got {failed!r}")
        return set(rng.sample(range(size), k=round(size * failed)))
    indices = set(failed)
    for index in indices:
        if not 0 <= index < size:
            raise ValueError(f"failed job index {index!r} out of range for a batch of {size}")
    return indices
