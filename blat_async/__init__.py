"""blat_async: an asyncio client for Blat's batch sitemap scrape results.

```python
from blat_async import BlatClient

async with BlatClient() as client:  # the key comes from BLAT_API_KEY
    async for item in client.iter_batch_scrape_sitemap("b-123"):
        print(item.metadata.url if item.metadata else None, len(item.links))
```
"""

from ._batch import FINAL_STATUSES
from ._pagination import (
    ReadEnd,
    # Importable for code written against earlier versions, but no longer
    # public: the read plan applies the end-of-read rules itself.
    end_of_read,  # noqa: F401
)
from ._readahead import ReadProgress
from ._retry import RetryPolicy
from ._version import __version__
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
    BatchScrapeSitemapData,
    BatchScrapeSitemapMetadata,
    BatchScrapeSitemapStatusResponse,
)

__all__ = [
    "FINAL_STATUSES",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BatchScrapeSitemapData",
    "BatchScrapeSitemapMetadata",
    "BatchScrapeSitemapStatusResponse",
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
