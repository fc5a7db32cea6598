"""blat_async: an asyncio client for Blat's batch results, sitemap and scrape.

```python
from blat_async import BlatClient

async with BlatClient() as client:  # the key comes from BLAT_API_KEY
    async for item in client.iter_batch_scrape_sitemap("b-123"):
        print(item.metadata.url if item.metadata else None, len(item.links))
    async for page in client.iter_batch_scrape("b-456"):
        print(page.metadata.final_url if page.metadata else None, len(page.content or ""))
```
"""

# Importing the package imports nothing but its version: each name below is
# imported from its module on first use (PEP 562), so that loading the pytest
# plugin, a submodule, does not import aiohttp and cattrs. Type checkers and
# IDEs read the imports under TYPE_CHECKING; _LAZY_NAMES says where each name
# lives at run time. tests/test_layers.py holds the two and __all__ in agreement.

from importlib import import_module
from typing import TYPE_CHECKING, Final

from ._version import __version__

if TYPE_CHECKING:
    from ._batch import FINAL_STATUSES
    from ._pagination import (
        ReadEnd,
        # Importable for code written against earlier versions, but no longer
        # public: the read plan applies the end-of-read rules itself.
        end_of_read,  # noqa: F401
    )
    from ._readahead import ReadProgress
    from ._retry import RetryPolicy
    from .client import BlatClient
    from .errors import (
        APIConnectionError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        BlatError,
        InternalServerError,
        NotFoundError,
        PaginationError,
        PermissionDeniedError,
        RateLimitError,
        ResponseTooLargeError,
        ResponseValidationError,
    )
    from .models import (
        BatchScrapeData,
        BatchScrapeMetadata,
        BatchScrapeSitemapData,
        BatchScrapeSitemapMetadata,
        BatchScrapeSitemapStatusResponse,
        BatchScrapeStatusResponse,
    )

# Each name the package imports on first use, and the submodule it comes from.
_LAZY_NAMES: Final = {
    "FINAL_STATUSES": "_batch",
    "ReadEnd": "_pagination",
    "end_of_read": "_pagination",
    "ReadProgress": "_readahead",
    "RetryPolicy": "_retry",
    "BlatClient": "client",
    "APIConnectionError": "errors",
    "APIStatusError": "errors",
    "APITimeoutError": "errors",
    "AuthenticationError": "errors",
    "BadRequestError": "errors",
    "BlatError": "errors",
    "InternalServerError": "errors",
    "NotFoundError": "errors",
    "PaginationError": "errors",
    "PermissionDeniedError": "errors",
    "RateLimitError": "errors",
    "ResponseTooLargeError": "errors",
    "ResponseValidationError": "errors",
    "BatchScrapeData": "models",
    "BatchScrapeMetadata": "models",
    "BatchScrapeSitemapData": "models",
    "BatchScrapeSitemapMetadata": "models",
    "BatchScrapeSitemapStatusResponse": "models",
    "BatchScrapeStatusResponse": "models",
}

__all__ = [
    "FINAL_STATUSES",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BatchScrapeData",
    "BatchScrapeMetadata",
    "BatchScrapeSitemapData",
    "BatchScrapeSitemapMetadata",
    "BatchScrapeSitemapStatusResponse",
    "BatchScrapeStatusResponse",
    "BlatClient",
    "BlatError",
    "InternalServerError",
    "NotFoundError",
    "PaginationError",
    "PermissionDeniedError",
    "RateLimitError",
    "ReadEnd",
    "ReadProgress",
    "ResponseTooLargeError",
    "ResponseValidationError",
    "RetryPolicy",
    "__version__",
]


# Defined for the interpreter only: a type checker that saw a module-level
# __getattr__ would accept any name imported from the package, a typo included.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        """Import ``name`` from its submodule on first use, and keep it."""
        try:
            submodule = _LAZY_NAMES[name]
        except KeyError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        value = getattr(import_module(f".{submodule}", __name__), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    """The module's attributes, with every public name, imported yet or not."""
    return sorted({*globals(), *__all__})
