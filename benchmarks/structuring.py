"""Structuring alone: decoded JSON pages into objects, with no HTTP.

Compares blat_async's converter (`blat_async._converter.structure_page`, which
checks every value's JSON type) with calling the same attrs classes' constructors
by hand (no checks), and with the generated client's ``from_dict`` when a
generated package is given. Prints one JSON line of microseconds per page.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import timeit
from collections.abc import Callable
from typing import Any, Final

from blat_async._converter import structure_page
from blat_async.models import (
    BatchScrapeSitemapData,
    BatchScrapeSitemapMetadata,
    BatchScrapeSitemapStatusResponse,
)
from blat_async.testing import FakeBlatServer

_TARGET_SECONDS: Final = 0.1
"""Roughly how long one timing (many calls) lasts."""


def by_hand(page: dict[str, Any]) -> BatchScrapeSitemapStatusResponse:
    """Build the models from a decoded page with their constructors, checking nothing."""
    return BatchScrapeSitemapStatusResponse(
        processed=page.get("processed"),
        total=page.get("total"),
        status=page.get("status"),
        expires_at=page.get("expires_at"),
        data=tuple(
            BatchScrapeSitemapData(
                metadata=None
                if (metadata := item.get("metadata")) is None
                else BatchScrapeSitemapMetadata(
                    batch_id=metadata.get("batch_id"),
                    job_id=metadata.get("job_id"),
                    url=metadata.get("url"),
                ),
                success=item.get("success"),
                error=item.get("error"),
                error_code=item.get("error_code"),
                links=tuple(item.get("links") or ()),
            )
            for item in page.get("data") or ()
        ),
    )


def sample_page(items: int, links: int) -> dict[str, Any]:
    """A decoded page as the fake server sends it: ``items`` items of ``links`` links."""
    batch = FakeBlatServer().add_batch("bench", items, page_size=items, links_per_job=links)
    decoded: dict[str, Any] = json.loads(json.dumps(batch.page(0)))
    return decoded


def time_per_call(function: Callable[[], object], repeat: int) -> float:
    """Median seconds per call over ``repeat`` timings of many calls each."""
    timer = timeit.Timer(function)
    number, _ = timer.autorange()
    number = max(1, int(number * _TARGET_SECONDS / 0.2))
    return statistics.median(t / number for t in timer.repeat(repeat=repeat, number=number))


def _generated_from_dict(folder: str, package: str) -> Callable[[dict[str, Any]], object]:
    sys.path.insert(0, folder)
    models = importlib.import_module(f"{package}.models")
    from_dict: Callable[[dict[str, Any]], object] = (
        models.ApiBatchScrapeSitemapStatusResponse.from_dict
    )
    return from_dict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1000, help="items per page")
    parser.add_argument("--links", type=int, default=20, help="links per item")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--generated", help="the folder that holds the generated package")
    parser.add_argument("--generated-package", default="blat_openapi_client")
    args = parser.parse_args()

    page = sample_page(args.items, args.links)
    if structure_page(page) != by_hand(page):
        raise SystemExit("structure_page and the hand-written constructors disagree")
    results = {
        "items": args.items,
        "links": args.links,
        "structure_page": time_per_call(lambda: structure_page(page), args.repeat),
        "by_hand": time_per_call(lambda: by_hand(page), args.repeat),
    }
    if args.generated:
        from_dict = _generated_from_dict(args.generated, args.generated_package)
        results["generated_from_dict"] = time_per_call(lambda: from_dict(page), args.repeat)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
