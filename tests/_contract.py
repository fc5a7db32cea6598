"""The endpoints' OpenAPI documents in ``openapi/``, the contracts that tests hold code to."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import attrs
import yaml

_OPENAPI: Final = Path(__file__).resolve().parent.parent / "openapi"


@attrs.frozen
class Contract:
    """One endpoint's OpenAPI document and the path it describes."""

    file: Path
    path: str
    response: str
    """The schema of the endpoint's 200 answer."""

    def load(self) -> dict[str, Any]:
        """The OpenAPI document, parsed."""
        with self.file.open(encoding="utf-8") as file:
            document: dict[str, Any] = yaml.safe_load(file)
        return document


SITEMAP: Final = Contract(
    _OPENAPI / "get-batch-scrape-sitemap.yaml",
    "/batch/scrape_sitemap/{batch_id}",
    "api.BatchScrapeSitemapStatusResponse",
)
SCRAPE: Final = Contract(
    _OPENAPI / "get-batch-scrape.yaml",
    "/batch/scrape/{batch_id}",
    "api.BatchScrapeStatusResponse",
)

# The batch sitemap endpoint's, which the fake server serves.
CONTRACT: Final = SITEMAP.file
PATH: Final = SITEMAP.path


def load_contract() -> dict[str, Any]:
    """The batch sitemap endpoint's OpenAPI document, parsed."""
    return SITEMAP.load()
