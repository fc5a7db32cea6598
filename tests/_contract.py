"""The endpoint's OpenAPI document in ``openapi/``, the contract that tests hold code to."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import yaml

CONTRACT: Final = (
    Path(__file__).resolve().parent.parent / "openapi" / "get-batch-scrape-sitemap.yaml"
)
PATH: Final = "/batch/scrape_sitemap/{batch_id}"


def load_contract() -> dict[str, Any]:
    """The OpenAPI document, parsed."""
    with CONTRACT.open(encoding="utf-8") as file:
        document: dict[str, Any] = yaml.safe_load(file)
    return document
