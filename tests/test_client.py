"""BlatClient against aioresponses: the exact requests it sends and how it reads answers."""

from __future__ import annotations

import logging
import re
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

from blat_async import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    BatchScrapeSitemapStatusResponse,
    BlatClient,
    BlatError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ReadEnd,
    ReadProgress,
    ResponseValidationError,
    RetryPolicy,
)

from .conftest import API_KEY, BASE, job_ids, page

FAST_RETRY = RetryPolicy(max_retries=3, initial_delay=0.0, max_delay=0.0)


def page_url(batch_id: str = "b1", offset: int = 0, base: str = BASE) -> str:
    return f"{base}batch/scrape_sitemap/{batch_id}?from={offset}"


def sent(mock: aioresponses) -> list[tuple[URL, dict[str, Any]]]:
    """Every request the client sent, in order, with its keyword arguments."""
    calls: list[tuple[URL, dict[str, Any]]] = []
    for (_method, url), requests in mock.requests.items():
        calls.extend((url, request.kwargs) for request in requests)
    return calls


def offsets(mock: aioresponses) -> list[int]:
    return sorted(int(url.query["from"]) for url, _ in sent(mock))


@pytest.fixture
async def client() -> Any:
    async with BlatClient(API_KEY, base_url=BASE, retry=FAST_RETRY) as client:
        yield client


# -- construction ---------------------------------------------------------------


def test_missing_key_is_a_clear_error_before_any_request() -> None:
    with pytest.raises(BlatError, match="BLAT_API_KEY"):
        BlatClient()


def test_key_and_base_url_fall_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLAT_API_KEY", API_KEY)
    monkeypatch.setenv("BLAT_BASE_URL", "https://example.test/v9")
    client = BlatClient()
    assert client.base_url == "https://example.test/v9/"


def test_default_base_url_is_the_real_api() -> None:
    assert BlatClient(API_KEY).base_url == "https://api.blat.ai/"


def test_repr_hides_the_key() -> None:
    client = BlatClient(API_KEY, base_url=BASE)
    assert API_KEY not in repr(client)
    assert "hidden" in repr(client)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"timeout": 0}, ValueError),
        ({"timeout": "30"}, TypeError),
        ({"retry": 3}, TypeError),
        ({"concurrency": 0}, ValueError),
        ({"concurrency": 2.5}, TypeError),
        ({"session": object()}, TypeError),
        ({"base_url": "ftp://example.test"}, ValueError),
        ({"base_url": "http://api.example.test"}, ValueError),
        ({"base_url": ""}, ValueError),
    ],
)
def test_bad_constructor_arguments_are_refused(kwargs: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        BlatClient(API_KEY, **kwargs)


def test_a_key_that_cannot_be_a_header_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="api_key") as caught:
        BlatClient("sk-line\r\nX-Evil: 1")
    assert "sk-line" not in str(caught.value)


def test_insecure_http_can_be_allowed_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    assert BlatClient(API_KEY, base_url="http://api.example.test", allow_insecure_http=True)
    monkeypatch.setenv("BLAT_ALLOW_INSECURE_HTTP", "1")
    assert BlatClient(API_KEY, base_url="http://api.example.test").base_url.startswith("http:")


# -- one page -------------------------------------------------------------------


async def test_get_sends_from_and_bearer_key(client: BlatClient, mocked: aioresponses) -> None:
    mocked.get(page_url(offset=20), payload=page(20, 3, total=23))
    result = await client.get_batch_scrape_sitemap_status("b1", from_=20)
    assert isinstance(result, BatchScrapeSitemapStatusResponse)
    assert job_ids(result.data) == ["b1-job-20", "b1-job-21", "b1-job-22"]
    [(url, kwargs)] = sent(mocked)
    assert url.query["from"] == "20"
    assert kwargs["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert kwargs["allow_redirects"] is False


async def test_base_url_prefix_is_kept(mocked: aioresponses) -> None:
    base = "https://api.test.example/v9/"
    mocked.get(page_url(base=base), payload=page(0, 1, total=1))
    async with BlatClient(API_KEY, base_url="https://api.test.example/v9") as client:
        await client.get_batch_scrape_sitemap_status("b1")
    [(url, _)] = sent(mocked)
    assert url.path == "/v9/batch/scrape_sitemap/b1"


async def test_batch_id_is_one_encoded_segment(client: BlatClient, mocked: aioresponses) -> None:
    mocked.get(re.compile(r".*"), payload=page(0, 1, total=1))
    await client.get_batch_scrape_sitemap_status("a/../b?x=1#f")
    [(url, _)] = sent(mocked)
    assert url.raw_path == "/batch/scrape_sitemap/a%2F..%2Fb%3Fx%3D1%23f"
    assert dict(url.query) == {"from": "0"}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, APIStatusError),
        (429, RateLimitError),
        (500, InternalServerError),
        (502, InternalServerError),
        (503, InternalServerError),
    ],
)
async def test_each_error_status_raises_its_class(
    mocked: aioresponses, status: int, error: type[APIStatusError]
) -> None:
    body = {"code": "some_code", "message": "it went wrong", "details": {"from": "x"}}
    mocked.get(page_url(), status=status, payload=body, repeat=True)
    async with BlatClient(API_KEY, base_url=BASE, retry=RetryPolicy(max_retries=0)) as client:
        with pytest.raises(error) as caught:
            await client.get_batch_scrape_sitemap_status("b1")
    assert type(caught.value) is error
    assert caught.value.status == status
    assert caught.value.code == "some_code"
    assert caught.value.message == "it went wrong"
    assert caught.value.details == {"from": "x"}
    assert API_KEY not in str(caught.value)


async def test_html_error_page_keeps_its_status_class(mocked: aioresponses) -> None:
    html = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    mocked.get(page_url(), status=502, body=html, content_type="text/html", repeat=True)
    async with BlatClient(API_KEY, base_url=BASE, retry=RetryPolicy(max_retries=0)) as client:
        with pytest.raises(InternalServerError, match="502 Bad Gateway") as caught:
            await client.get_batch_scrape_sitemap_status("b1")
    assert caught.value.status == 502
    assert caught.value.code is None


async def test_retries_503_then_429_then_succeeds(
    client: BlatClient, mocked: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    mocked.get(page_url(), status=503, payload={"code": "unavailable"})
    mocked.get(page_url(), status=429, headers={"Retry-After": "0"})
    mocked.get(page_url(), payload=page(0, 2, total=2))
    with caplog.at_level(logging.INFO, logger="blat_async"):
        result = await client.get_batch_scrape_sitemap_status("b1")
    assert job_ids(result.data) == ["b1-job-0", "b1-job-1"]
    assert len(sent(mocked)) == 3
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 2
    assert "503" in retries[0]
    assert "429" in retries[1]
    assert all(API_KEY not in r.getMessage() for r in caplog.records)


async def test_the_last_attempts_error_is_raised(client: BlatClient, mocked: aioresponses) -> None:
    for _ in range(3):
        mocked.get(page_url(), status=503)
    mocked.get(page_url(), status=502)
    with pytest.raises(InternalServerError) as caught:
        await client.get_batch_scrape_sitemap_status("b1")
    assert caught.value.status == 502
    assert len(sent(mocked)) == 4


# A year too big for a C long: parsing it overflowed instead of failing as a ValueError.
OUT_OF_RANGE_DATE = "Mon, 01 Jan 99999999999 00:00:00 GMT"


@pytest.mark.parametrize(("status", "error"), [(429, RateLimitError), (503, InternalServerError)])
async def test_a_retry_after_date_out_of_range_is_ignored(
    client: BlatClient, mocked: aioresponses, status: int, error: type[APIStatusError]
) -> None:
    mocked.get(page_url(), status=status, headers={"Retry-After": OUT_OF_RANGE_DATE})
    mocked.get(page_url(), payload=page(0, 2, total=2))
    result = await client.get_batch_scrape_sitemap_status("b1")
    assert job_ids(result.data) == ["b1-job-0", "b1-job-1"]

    mocked.get(page_url(), status=status, headers={"Retry-After": OUT_OF_RANGE_DATE}, repeat=True)
    with pytest.raises(error) as caught:
        await client.get_batch_scrape_sitemap_status("b1")
    assert caught.value.status == status
    assert caught.value.retry_after is None
    # One request and a retry for the first call, then one and three retries.
    assert len(sent(mocked)) == 2 + 4


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_client_errors_are_never_retried(
    client: BlatClient, mocked: aioresponses, status: int
) -> None:
    mocked.get(page_url(), status=status, repeat=True)
    with pytest.raises(APIStatusError):
        await client.get_batch_scrape_sitemap_status("b1")
    assert len(sent(mocked)) == 1


async def test_a_dropped_connection_is_retried_then_typed(
    client: BlatClient, mocked: aioresponses
) -> None:
    mocked.get(page_url(), exception=aiohttp.ServerDisconnectedError(), repeat=True)
    with pytest.raises(APIConnectionError) as caught:
        await client.get_batch_scrape_sitemap_status("b1")
    assert isinstance(caught.value.__cause__, aiohttp.ServerDisconnectedError)
    assert len(sent(mocked)) == 4


async def test_a_timeout_becomes_api_timeout_error(
    client: BlatClient, mocked: aioresponses
) -> None:
    from blat_async import APITimeoutError

    mocked.get(page_url(), exception=TimeoutError(), repeat=True)
    with pytest.raises(APITimeoutError):
        await client.get_batch_scrape_sitemap_status("b1")


async def test_a_body_that_is_not_json_is_a_validation_error(
    client: BlatClient, mocked: aioresponses
) -> None:
    mocked.get(page_url(), body="<html>maintenance</html>", content_type="text/html", repeat=True)
    with pytest.raises(ResponseValidationError, match="not JSON"):
        await client.get_batch_scrape_sitemap_status("b1")
    assert len(sent(mocked)) == 4


async def test_a_wrong_type_names_its_path_and_is_not_retried(
    client: BlatClient, mocked: aioresponses
) -> None:
    body = page(0, 5, total=5)
    body["data"][3]["links"][0] = 7
    mocked.get(page_url(), payload=body, repeat=True)
    with pytest.raises(ResponseValidationError, match=re.escape("data[3].links[0]")) as caught:
        await client.get_batch_scrape_sitemap_status("b1")
    assert caught.value.path == "data[3].links[0]"
    assert len(sent(mocked)) == 1


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"batch_id": ""}, ValueError),
        ({"batch_id": 42}, TypeError),
        ({"batch_id": ".."}, ValueError),
        ({"from_": -1}, ValueError),
        ({"from_": "0"}, TypeError),
        ({"from_": True}, TypeError),
    ],
)
async def test_bad_get_arguments_raise_before_any_request(
    client: BlatClient, mocked: aioresponses, kwargs: dict[str, Any], error: type
) -> None:
    kwargs.setdefault("batch_id", "b1")
    with pytest.raises(error):
        await client.get_batch_scrape_sitemap_status(**kwargs)
    assert sent(mocked) == []


# -- every item -----------------------------------------------------------------


def serve_batch(mock: aioresponses, size: int, page_size: int = 10, **kwargs: Any) -> None:
    for offset in range(0, size + page_size, page_size):
        count = max(0, min(page_size, size - offset))
        mock.get(page_url(offset=offset), payload=page(offset, count, total=size, **kwargs))


async def test_a_three_page_batch_is_read_with_async_for(mocked: aioresponses) -> None:
    serve_batch(mocked, 25)
    async with BlatClient(API_KEY, base_url=BASE, concurrency=1) as client:
        items = [item async for item in client.iter_batch_scrape_sitemap("b1")]
    assert job_ids(items) == [f"b1-job-{i}" for i in range(25)]
    assert offsets(mocked) == [0, 10, 20]


async def test_failed_jobs_are_yielded_and_processed_never_ends_a_read(
    client: BlatClient, mocked: aioresponses
) -> None:
    serve_batch(mocked, 25, failed=lambda i: i % 3 == 0)
    items = [item async for item in client.iter_batch_scrape_sitemap("b1", concurrency=1)]
    assert len(items) == 25
    assert [item.success for item in items].count(False) == 9
    assert items[0].error_code == "FETCH_FAILED"


async def test_without_total_an_empty_page_ends_the_read(
    client: BlatClient, mocked: aioresponses
) -> None:
    mocked.get(page_url(offset=0), payload=page(0, 10, total=None))
    mocked.get(page_url(offset=10), payload=page(10, 4, total=None))
    mocked.get(page_url(offset=14), payload={"data": None})
    items = [item async for item in client.iter_batch_scrape_sitemap("b1", concurrency=1)]
    assert len(items) == 14
    assert offsets(mocked) == [0, 10, 14]


async def test_start_and_stop_read_one_slice(client: BlatClient, mocked: aioresponses) -> None:
    serve_batch(mocked, 50)
    for offset in (13, 23, 33):
        mocked.get(page_url(offset=offset), payload=page(offset, 10, total=50))
    items = [i async for i in client.iter_batch_scrape_sitemap("b1", 13, 31, concurrency=1)]
    assert job_ids(items) == [f"b1-job-{i}" for i in range(13, 31)]
    assert offsets(mocked) == [13, 23]


async def test_pages_iterator_yields_each_page(client: BlatClient, mocked: aioresponses) -> None:
    serve_batch(mocked, 25)
    progress = ReadProgress()
    pages = [
        p
        async for p in client.iter_batch_scrape_sitemap_pages(
            "b1", concurrency=1, progress=progress
        )
    ]
    assert [len(p.data) for p in pages] == [10, 10, 5]
    assert all(p.total == 25 for p in pages)
    assert (progress.offset, progress.items, progress.pages) == (25, 25, 3)
    assert progress.ended is ReadEnd.TOTAL


async def test_progress_offset_points_past_the_item_being_handled(
    client: BlatClient, mocked: aioresponses
) -> None:
    mocked.get(page_url(offset=2), payload=page(2, 10, total=12))
    progress = ReadProgress()
    seen = []
    async for item in client.iter_batch_scrape_sitemap("b1", 2, progress=progress):
        seen.append((item.metadata.job_id if item.metadata else None, progress.offset))
    assert seen[0] == ("b1-job-2", 3)
    assert seen[-1] == ("b1-job-11", 12)
    assert progress.total == 12
    assert progress.fraction == 1.0


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        (("",), {}, ValueError),
        ((None,), {}, TypeError),
        (("b1", -1), {}, ValueError),
        (("b1", 1.5), {}, TypeError),
        (("b1", 10, 5), {}, ValueError),
        (("b1",), {"concurrency": 0}, ValueError),
        (("b1",), {"follow": True, "poll_interval": 0}, ValueError),
        (("b1",), {"progress": object()}, TypeError),
    ],
)
async def test_bad_iterator_arguments_raise_at_the_call(
    client: BlatClient, mocked: aioresponses, args: tuple[Any, ...], kwargs: Any, error: type
) -> None:
    with pytest.raises(error):
        client.iter_batch_scrape_sitemap(*args, **kwargs)
    with pytest.raises(error):
        client.iter_batch_scrape_sitemap_pages(*args, **kwargs)
    assert sent(mocked) == []


# -- lifecycle ------------------------------------------------------------------


async def test_a_closed_client_refuses_work(mocked: aioresponses) -> None:
    client = BlatClient(API_KEY, base_url=BASE)
    await client.close()
    await client.close()
    assert client.closed
    with pytest.raises(BlatError, match="closed"):
        await client.get_batch_scrape_sitemap_status("b1")
    with pytest.raises(BlatError, match="closed"):
        client.iter_batch_scrape_sitemap("b1")
    with pytest.raises(BlatError, match="closed"):
        async with client:
            pass
    assert sent(mocked) == []


async def test_a_borrowed_session_is_used_and_not_closed(mocked: aioresponses) -> None:
    mocked.get(page_url(), payload=page(0, 1, total=1))
    async with aiohttp.ClientSession() as session:
        async with BlatClient(API_KEY, base_url=BASE, session=session) as client:
            await client.get_batch_scrape_sitemap_status("b1")
        assert not session.closed
    assert len(sent(mocked)) == 1


async def test_the_client_opens_its_session_once_and_closes_it(mocked: aioresponses) -> None:
    serve_batch(mocked, 25)
    async with BlatClient(API_KEY, base_url=BASE) as client:
        [item async for item in client.iter_batch_scrape_sitemap("b1")]
        session = client._shared.session
        mocked.get(page_url(offset=10), payload=page(10, 10, total=25))
        await client.get_batch_scrape_sitemap_status("b1", from_=10)
        assert client._shared.session is session
    assert session is not None
    assert session.closed
