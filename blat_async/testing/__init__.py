"""A fake Blat server for tests, demos and benchmarks.

[`FakeBlatServer`][blat_async.testing.FakeBlatServer] serves
``GET /batch/scrape_sitemap/{batch_id}?from=N`` and
``GET /batch/scrape/{batch_id}?from=N`` from an
``aiohttp.web`` application on loopback, with real sockets, the API's pagination,
status codes and error bodies, and faults to inject (latency, 429s, proxy pages,
broken bodies, dropped connections):

```python
async with FakeBlatServer() as server:
    batch = server.add_batch(size=25, failed=[3])
    async with BlatClient(server.api_key, base_url=server.base_url) as client:
        items = [item async for item in client.iter_batch_scrape_sitemap(batch.batch_id)]
    assert len(items) == batch.size
```

A batch's [`BatchKind`][blat_async.testing.BatchKind] says which endpoint serves
it: sitemaps with their links (the default), or scraped pages with their
content and extracted links:

```python
pages = server.add_batch(size=30, kind="scrape", content_bytes=50_000)
server.batch_url(pages.batch_id)  # http://127.0.0.1:PORT/batch/scrape/batch-000002
```

From synchronous code, or a test framework without asyncio, run it on its own
event loop in a background thread:

```python
with FakeBlatServer().run_in_thread() as server:
    batch = server.add_batch(size=25)
    ...  # any HTTP client against server.base_url
```

With pytest, the [`fake_blat_server`][blat_async.pytest_plugin.fake_blat_server]
fixture of `blat_async.pytest_plugin` does exactly that. Configuring and
inspecting the server
([`add_batch`][blat_async.testing.FakeBlatServer.add_batch],
[`inject`][blat_async.testing.FakeBlatServer.inject],
[`requests`][blat_async.testing.FakeBlatServer.requests],
[`FakeBatch.reveal`][blat_async.testing.FakeBatch.reveal]) is safe from any thread.

For a crawler, [`FakeSite`][blat_async.testing.FakeSite] serves web pages on
loopback at the links of a batch made with its ``link_base``:

```python
async with FakeSite() as site, FakeBlatServer() as server:
    batch = server.add_batch(size=20, link_base=site.link_base)
    ...  # crawl the links; site.hits counts the pages fetched
```

Faults are small frozen classes made by the factories on
[`Fault`][blat_async.testing.Fault]:

```python
server.inject(Fault.status(429, retry_after=0.05))           # the next request
server.add_batch(faults=[Fault.html(502)], fault_rate=0.3)   # 30 % of this batch's requests
```
"""

from ._batch import (
    DEFAULT_CONTENT_BYTES,
    DEFAULT_LINK_BASE,
    DEFAULT_PAGE_SIZE,
    BatchKind,
    FakeBatch,
)
from ._faults import (
    DropConnection,
    Fault,
    HtmlError,
    IgnoreFrom,
    Latency,
    MalformedJson,
    StatusError,
    TruncatedJson,
    WrongType,
)
from ._server import DEFAULT_API_KEY, ENDPOINT_PATHS, FakeBlatServer, RecordedRequest
from ._site import FakeSite, Visit

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_CONTENT_BYTES",
    "DEFAULT_LINK_BASE",
    "DEFAULT_PAGE_SIZE",
    "ENDPOINT_PATHS",
    "BatchKind",
    "DropConnection",
    "FakeBatch",
    "FakeBlatServer",
    "FakeSite",
    "Fault",
    "HtmlError",
    "IgnoreFrom",
    "Latency",
    "MalformedJson",
    "RecordedRequest",
    "StatusError",
    "TruncatedJson",
    "Visit",
    "WrongType",
]
