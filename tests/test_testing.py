"""The fake Blat server of ``blat_async.testing``, driven by a plain aiohttp client."""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
import sys
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import attrs
import pytest
from multidict import CIMultiDictProxy
from yarl import URL

from blat_async.testing import (
    DEFAULT_API_KEY,
    DEFAULT_CONTENT_BYTES,
    DEFAULT_LINK_BASE,
    BatchKind,
    DropConnection,
    FakeBatch,
    FakeBlatServer,
    FakeSite,
    Fault,
    HtmlError,
    IgnoreFrom,
    Latency,
    MalformedJson,
    StatusError,
    TruncatedJson,
    WrongType,
)

pytest_plugins = ["pytester"]

BEARER = f"Bearer {DEFAULT_API_KEY}"


@dataclass
class Answer:
    """What the client saw of one response."""

    status: int
    content_type: str
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def server() -> AsyncIterator[FakeBlatServer]:
    async with FakeBlatServer() as server:
        yield server


@pytest.fixture
async def session(server: FakeBlatServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(params=["sitemap", "scrape"])
def kind(request: pytest.FixtureRequest) -> BatchKind:
    """Each kind of batch, for tests of what both endpoints do alike."""
    param: BatchKind = request.param
    return param


async def fetch(
    session: aiohttp.ClientSession, url: str | URL, *, authorization: str | None = BEARER
) -> Answer:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with session.get(url, headers=headers) as response:
        body = await response.read()
        return Answer(response.status, response.content_type, response.headers, body)


async def fetch_page(
    session: aiohttp.ClientSession, server: FakeBlatServer, batch: FakeBatch, from_: int | None
) -> dict[str, Any]:
    answer = await fetch(session, server.batch_url(batch.batch_id, from_))
    assert answer.status == 200
    assert answer.content_type == "application/json"
    page: dict[str, Any] = answer.json()
    return page


# --- Pagination and content -------------------------------------------------------------


async def test_pages_follow_the_offset_until_the_end(
    server: FakeBlatServer, session: aiohttp.ClientSession
) -> None:
    batch = server.add_batch(size=25, failed=[4])
    pages = [await fetch_page(session, server, batch, offset) for offset in (0, 10, 20, 25)]

    assert [len(page["data"]) for page in pages] == [10, 10, 5, 0]
    assert [item for page in pages for item in page["data"]] == batch.jobs


async def test_from_defaults_to_zero(
    server: FakeBlatServer, session: aiohttp.ClientSession
) -> None:
    batch = server.add_batch(size=12)

    page = await fetch_page(session, server, batch, None)

    assert page["data"] == batch.jobs[:10]


async def test_a_page_starts_at_any_offset(
    server: FakeBlatServer, session: aiohttp.ClientSession
) -> None:
    batch = server.add_batch(size=25, page_size=4)

    page = await fetch_page(session, server, batch, 7)

    assert page["data"] == batch.jobs[7:11]


async def test_an_offset_past_the_end_gives_no_data(
    server: FakeBlatServer, session: aiohttp.ClientSession
) -> None:
    batch = server.add_batch(size=5)

    page = await fetch_page(session, server, batch, 1000)

    assert page["data"] == []
    assert page["total"] == 5


async def test_a_page_has_the_fields_of_the_contract(
    server: FakeBlatServer, session: aiohttp.ClientSession
) -> None:
    batch = server.add_batch("b-1", size=3, links_per_job=2)

    page = await fetch_page(session, server, batch, 0)

    assert page["status"] == "completed"
    assert page["total"] == 3
    assert page["processed"] == 3
    assert datetime.fromisoformat(page["expires_at"]).tzinfo is not None
    assert page["data"][1] == {
        "metadata": {
            "batch_id": "b-1",
            "job_id": "b-1-job-000001",
            "url": "https://example.com/sitemaps/000001.xml",
        },
        "success": True,
        "links": ["https://example.com/pages/000001/0", "https://example.com/pages/000001/1"],
    }


async def test_links_point_at_the_link_base(
    server: FakeBlatServer, session: aiohttp.ClientSession
) -> None:
    batch = server.add_batch(size=3, links_per_job=2, failed=[1], link_base="http://h:8/x/")

    page = await fetch_page(session, server, batch, 0)

    assert [item.get("links") for item in page["data"]] == [
        ["http://h:8/x/000000/0", "http://h:8/x/000000/1"],
        None,
        ["http://h:8/x/000002/0", "http://h:8/x/000002/1"],
    ]
    assert batch.links == page["data"][0]["links"] + page["data"][2]["links"]
    assert batch.links_of(1) == []


def test_links_point_at_example_com_by_default() -> None:
    batch = FakeBlatServer().add_batch(size=2, links_per_job=1)

    assert batch.link_base == DEFAULT_LINK_BASE == "https://example.com/pages/"
    assert batch.links == [f"{DEFAULT_LINK_BASE}000000/0", f"{DEFAULT_LINK_BASE}000001/0"]


def test_jobs_are_deterministic_and_unique() -> None:
    first = FakeBlatServer().add_batch("same", size=50)
    second = FakeBlatServer().add_batch("same", size=50)

    assert first.jobs == second.jobs
    assert len(set(first.job_ids)) == 50


async def test_failed_jobs_carry_an_error_and_no_links(
    server: FakeBlatServer, session: aiohttp.ClientSession
) -> None:
    batch = server.add_batch(size=5, failed=[2])

    page = await fetch_page(session, server, batch, 0)

    failed = page["data"][2]
    assert failed["success"] is False
    assert failed["error"]
    assert failed["error_code"]
    assert "links" not in failed
    assert [item["success"] for item in page["data"]] == [True, True, False, True, True]


async def test_processed_counts_only_successful_visible_jobs(
    server: FakeBlatServer, session: aiohttp.ClientSession
) -> None:
    batch = server.add_batch(size=10, failed=[1, 5, 8], visible=6)

    page = await fetch_page(session, server, batch, 0)

    assert (page["processed"], page["total"], len(page["data"])) == (4, 10, 6)
    assert batch.processed() == 4


def test_a_failed_fraction_is_chosen_with_the_seed() -> None:
    server = FakeBlatServer()
    one = server.add_batch(size=100, failed=0.2, seed=1)
    same = server.add_batch(size=100, failed=0.2, seed=1)
    other = server.add_batch(size=100, failed=0.2, seed=2)

    assert len(one.failed) == 20
    assert one.failed == same.failed
    assert one.failed != other.failed


def test_default_batch_ids_are_unique() -> None:
    server = FakeBlatServer()
    server.add_batch("batch-000002")

    ids = {server.add_batch().batch_id for _ in range(3)}

    assert len(ids) == 3
    assert "batch-000002" not in ids


def test_a_batch_id_is_added_once() -> None:
    server = FakeBlatServer()
    server.add_batch("b")

    with pytest.raises(ValueError, match="already exists"):
        server.add_batch("b")


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"size": -1}, ValueError),
        ({"page_size": 0}, ValueError),
        ({"links_per_job": -1}, ValueError),
        ({"link_base": None}, TypeError),
        ({"latency": -0.5}, ValueError),
        ({"visible": 26}, ValueError),
        ({"failed": [25]}, ValueError),
        ({"failed": 1.5}, ValueError),
        ({"failed": True}, TypeError),
        ({"failed": 1}, TypeError),
        ({"jobs_per_second": 0}, ValueError),
        ({"fault_rate": 2}, ValueError),
        ({"faults": ["500"]}, TypeError),
        ({"kind": "scrap"}, ValueError),
        ({"content_bytes": 10}, ValueError),
        ({"kind": "scrape", "content_bytes": -1}, ValueError),
        ({"faild": [3]}, TypeError),
    ],
)
def test_add_batch_refuses_bad_arguments(arguments: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        FakeBlatServer().add_batch(**{"size": 25, **arguments})


def test_add_batch_takes_the_settings_of_a_fake_batch() -> None:
    """Each argument of add_batch but preencode is a FakeBatch setting of that name and default.

    Only ``batch_id``'s default differs: add_batch makes one up.
    """
    parameters = inspect.signature(FakeBlatServer.add_batch).parameters
    settings = {
        field.alias: field.default
        for field in attrs.fields(FakeBatch)
        if field.init and field.alias != "clock"
    }

    arguments = {
        name: parameter.default
        for name, parameter in parameters.items()
        if name not in {"self", "preencode"}
    }

    assert arguments.pop("batch_id") is None
    assert settings.pop("batch_id") is attrs.NOTHING
    assert arguments == settings


def test_a_batch_refuses_bad_indices() -> None:
    batch = FakeBlatServer().add_batch(size=25)

    with pytest.raises(IndexError):
        batch.job(25)
    with pytest.raises(IndexError):
        batch.links_of(-1)
    with pytest.raises(ValueError, match="from_"):
        batch.page(-1)
    with pytest.raises(ValueError, match="count"):
        batch.reveal(-1)


def test_a_server_needs_an_api_key() -> None:
    with pytest.raises(ValueError, match="api_key"):
        FakeBlatServer(api_key="")


# --- Scrape batches, at GET /batch/scrape/{batch_id} ------------------------------------


async def test_a_scrape_page_has_the_fields_of_its_contract(
    server: FakeBlatServer, session: aiohttp.ClientSession
) -> None:
    batch = server.add_batch("s-1", size=25, kind="scrape", links_per_job=2, content_bytes=40)

    answer = await fetch(session, f"{server.base_url}batch/scrape/s-1?from=0")
    page = answer.json()

    assert answer.status == 200
    assert (page["status"], page["total"], page["processed"]) == ("completed", 25, 25)
    assert datetime.fromisoformat(page["expires_at"]).tzinfo is not None
    assert len(page["data"]) == 10
    assert batch.content_of(1) == "# Page 000001\n\nor sit amet, consectetur "
    assert page["data"][1] == {
        "metadata": {
            "batch_id": "s-1",
            "job_id": "s-1-job-000001",
            "url": "https://example.com/articles/000001",
            "final_url": "https://example.com/articles/000001",
            "status_code": 200,
        },
        "success": True,
        "content": batch.content_of(1),
        "extracted_links": [
            "https://example.com/pages/000001/0",
            "https://example.com/pages/000001/1",
        ],
    }
    assert page["data"] == batch.jobs[:10]


async def test_scrape_pages_follow_the_offset_until_the_end(
    server: FakeBlatServer, session: aiohttp.ClientSession
) -> None:
    batch = server.add_batch(size=25, kind="scrape", failed=[4])
    pages = [await fetch_page(session, server, batch, offset) for offset in (0, 10, 20, 25)]

    assert [len(page["data"]) for page in pages] == [10, 10, 5, 0]
    assert [item for page in pages for item in page["data"]] == batch.jobs
    assert {page["processed"] for page in pages} == {24}


@pytest.mark.parametrize(("kind", "other"), [("sitemap", "scrape"), ("scrape", "sitemap")])
async def test_a_batch_is_served_only_at_its_kinds_path(
    server: FakeBlatServer, session: aiohttp.ClientSession, kind: BatchKind, other: BatchKind
) -> None:
    server.add_batch("b", kind=kind)

    served = await fetch(session, server.batch_url("b", 0, kind=kind))
    elsewhere = await fetch(session, server.batch_url("b", 0, kind=other))

    assert served.status == 200
    assert (elsewhere.status, elsewhere.content_type) == (404, "application/json")
    assert elsewhere.json()["details"] == {"batch_id": "b"}


async def test_a_batch_of_the_other_kind_gets_no_faults_and_no_latency(
    server: FakeBlatServer, session: aiohttp.ClientSession
) -> None:
    server.add_batch("b", kind="scrape", latency=5, faults=[Fault.status(500)])

    answer = await fetch(session, server.batch_url("b", kind="sitemap"))

    assert answer.status == 404
    assert server.requests[0].duration < 5


async def test_content_has_the_chosen_size_and_names_its_job() -> None:
    batch = FakeBlatServer().add_batch(size=3, kind="scrape", content_bytes=100_000)

    contents = [batch.content_of(index) for index in range(3)]

    assert [len(content.encode()) for content in contents] == [100_000] * 3
    assert [content.split("\n")[0] for content in contents] == [
        "# Page 000000",
        "# Page 000001",
        "# Page 000002",
    ]
    assert batch.job(2)["content"] == contents[2]


@pytest.mark.parametrize("content_bytes", [0, 1, 14, 15, 16])
def test_content_is_cut_to_size_even_inside_its_heading(content_bytes: int) -> None:
    batch = FakeBlatServer().add_batch(size=1, kind="scrape", content_bytes=content_bytes)
    heading = "# Page 000000\n\n"

    content = batch.content_of(0)

    assert len(content) == content_bytes
    assert content.startswith(heading[:content_bytes])


def test_content_defaults_to_a_kilobyte_and_only_scrape_batches_have_it() -> None:
    server = FakeBlatServer()
    scrape = server.add_batch(size=1, kind="scrape")
    sitemap = server.add_batch(size=1)

    assert scrape.content_bytes == DEFAULT_CONTENT_BYTES == 1024
    assert len(scrape.content_of(0)) == 1024
    assert sitemap.content_bytes is None
    assert sitemap.content_of(0) == ""
    assert set(sitemap.job(0)) == {"metadata", "success", "links"}


def test_big_content_is_built_lazily_from_one_buffer() -> None:
    tracemalloc.start()
    try:
        batch = FakeBlatServer().add_batch(size=200_000, kind="scrape", content_bytes=1_000_000)
        _, added = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for index in range(10):
            batch.content_of(index)
        _, ten_pages = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # Adding the batch builds no content; reading ten jobs' keeps one buffer of
    # a megabyte, and no job's content once it is dropped.
    assert added < 1_000_000
    assert ten_pages < 3_500_000


async def test_failed_scrape_jobs_carry_an_error_and_no_content(
    server: FakeBlatServer, session: aiohttp.ClientSession
) -> None:
    batch = server.add_batch(size=5, kind="scrape", failed=[1])

    page = await fetch_page(session, server, batch, 0)

    failed = page["data"][1]
    assert (failed["success"], failed["error_code"]) == (False, "SCRAPE_TIMEOUT")
    assert failed["error"] == "timed out fetching the page"
    assert set(failed) == {"metadata", "success", "error", "error_code"}
    assert set(failed["metadata"]) == {"batch_id", "job_id", "url"}
    assert page["processed"] == 4
    assert (batch.content_of(1), batch.links_of(1)) == ("", [])


def test_every_fifth_scrape_job_was_redirected() -> None:
    batch = FakeBlatServer().add_batch("r", size=10, kind="scrape")

    finals = [job["metadata"]["final_url"] for job in batch.jobs]

    assert [final.endswith("/") for final in finals] == [False] * 4 + [True] + [False] * 4 + [True]
    assert finals[4] == "https://example.com/articles/000004/"
    assert {job["metadata"]["status_code"] for job in batch.jobs} == {200}


# --- A batch that grows -----------------------------------------------------------------


async def test_reveal_and_complete_grow_a_running_batch(
    server: FakeBlatServer, session: aiohttp.ClientSession, kind: BatchKind
) -> None:
    batch = server.add_batch(
        size=20, visible=3, running_status="queued", final_status="done", kind=kind
    )

    first = await fetch_page(session, server, batch, 0)
    batch.reveal(4)
    second = await fetch_page(session, server, batch, 0)
    batch.complete()
    last = await fetch_page(session, server, batch, 10)

    assert (first["status"], len(first["data"])) == ("queued", 3)
    assert (second["status"], len(second["data"])) == ("queued", 7)
    assert (last["status"], last["processed"], len(last["data"])) == ("done", 20, 10)


async def test_jobs_per_second_grow_a_batch_with_the_clock(kind: BatchKind) -> None:
    clock = FakeClock()
    async with FakeBlatServer(clock=clock) as server, aiohttp.ClientSession() as session:
        batch = server.add_batch(size=10, jobs_per_second=2, kind=kind)
        assert batch.visible == 0

        clock.now += 2.5
        growing = await fetch_page(session, server, batch, 0)
        clock.now += 100
        done = await fetch_page(session, server, batch, 0)

    assert (growing["status"], len(growing["data"])) == ("running", 5)
    assert (done["status"], len(done["data"])) == ("completed", 10)


# --- Errors as the API sends them -------------------------------------------------------


@pytest.mark.parametrize(
    ("batch_id", "query", "authorization", "status"),
    [
        ("b", "", None, 401),
        ("b", "", "Bearer wrong-key", 401),
        ("b", "", f"Basic {DEFAULT_API_KEY}", 401),
        ("b", "?from=ten", BEARER, 400),
        ("b", "?from=-1", BEARER, 400),
        ("b", "?from=1.5", BEARER, 400),
        ("%FF", "", BEARER, 400),
        ("missing", "", BEARER, 404),
        ("secret", "", BEARER, 403),
    ],
)
async def test_errors_have_the_api_json_body(
    server: FakeBlatServer,
    session: aiohttp.ClientSession,
    batch_id: str,
    query: str,
    authorization: str | None,
    status: int,
) -> None:
    server.add_batch("b")
    server.add_batch("secret", forbidden=True)
    url = URL(f"{server.base_url}batch/scrape_sitemap/{batch_id}{query}", encoded=True)

    answer = await fetch(session, url, authorization=authorization)

    assert answer.status == status
    assert answer.content_type == "application/json"
    body = answer.json()
    assert set(body) == {"code", "message", "details"}
    assert isinstance(body["code"], str)
    assert isinstance(body["message"], str)
    assert isinstance(body["details"], dict)
    assert DEFAULT_API_KEY.encode() not in answer.body


@pytest.mark.parametrize(
    "path", ["", "batch/scrape_sitemap/", "batch/scrape_sitemap/b/extra", "other/b"]
)
async def test_other_paths_are_not_found(
    server: FakeBlatServer, session: aiohttp.ClientSession, path: str
) -> None:
    server.add_batch("b")

    answer = await fetch(session, server.base_url + path)

    assert answer.status == 404
    assert answer.json()["code"] == "NOT_FOUND"


async def test_a_batch_id_with_a_newline_is_not_found_as_json(
    server: FakeBlatServer, session: aiohttp.ClientSession
) -> None:
    answer = await fetch(session, URL(server.batch_url("a\nb"), encoded=True))

    assert answer.status == 404
    assert answer.content_type == "application/json"
    assert answer.json()["details"] == {"batch_id": "a\nb"}


async def test_only_get_is_allowed(server: FakeBlatServer, session: aiohttp.ClientSession) -> None:
    batch = server.add_batch()

    async with session.post(server.batch_url(batch.batch_id)) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET"
        assert (await response.json())["code"] == "METHOD_NOT_ALLOWED"


async def test_a_prefix_puts_the_api_under_a_path() -> None:
    async with FakeBlatServer(prefix="/v9") as server, aiohttp.ClientSession() as session:
        batch = server.add_batch("b")
        served = await fetch(session, f"{server.base_url}batch/scrape_sitemap/b")
        outside = await fetch(
            session, server.base_url.replace("/v9/", "/") + "batch/scrape_sitemap/b"
        )

    assert server.base_url.endswith("/v9/")
    assert served.json()["data"] == batch.jobs[:10]
    assert outside.status == 404


# --- Batch ids in one percent-encoded segment -------------------------------------------


@pytest.mark.parametrize(
    "batch_id", ["a/b", "what?from=5", "50%", "50%2F", "with space", "#top", "día/über", "批次"]
)
async def test_batch_ids_are_decoded_exactly_once(
    server: FakeBlatServer, session: aiohttp.ClientSession, batch_id: str
) -> None:
    batch = server.add_batch(batch_id, size=2)
    segment = quote(batch_id, safe="")
    url = URL(f"{server.base_url}batch/scrape_sitemap/{segment}?from=0", encoded=True)

    answer = await fetch(session, url)

    assert answer.status == 200
    assert answer.json()["data"] == batch.jobs
    (request,) = server.requests
    assert request.batch_id == batch_id
    assert request.path.endswith(f"/{segment}")


async def test_batch_url_encodes_the_id_as_one_segment(server: FakeBlatServer) -> None:
    url = server.batch_url("a/b?c", 10)

    assert url == f"{server.base_url}batch/scrape_sitemap/a%2Fb%3Fc?from=10"


async def test_batch_url_takes_the_path_of_the_batchs_kind(server: FakeBlatServer) -> None:
    server.add_batch("s", kind="scrape")
    server.add_batch("m")

    assert server.batch_url("s") == f"{server.base_url}batch/scrape/s"
    assert server.batch_url("m") == f"{server.base_url}batch/scrape_sitemap/m"
    assert server.batch_url("unknown") == f"{server.base_url}batch/scrape_sitemap/unknown"
    assert server.batch_url("s", 10, kind="sitemap") == (
        f"{server.base_url}batch/scrape_sitemap/s?from=10"
    )
    assert server.batch_url("unknown", kind="scrape") == f"{server.base_url}batch/scrape/unknown"


# --- Faults seen from the client --------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        (Fault.status(429, retry_after=2), 429),
        (Fault.status(500), 500),
        (Fault.status(502), 502),
        (Fault.status(503, code="MAINTENANCE", message="back soon"), 503),
    ],
)
async def test_a_status_fault_answers_the_api_error_body(
    server: FakeBlatServer,
    session: aiohttp.ClientSession,
    fault: StatusError,
    status: int,
    kind: BatchKind,
) -> None:
    batch = server.add_batch(kind=kind)
    server.inject(fault)

    answer = await fetch(session, server.batch_url(batch.batch_id))

    assert answer.status == status
    assert answer.content_type == "application/json"
    body = answer.json()
    assert set(body) == {"code", "message", "details"}
    assert answer.headers.get("Retry-After") == (None if fault.retry_after is None else "2")
    if fault.code is not None:
        assert (body["code"], body["message"]) == (fault.code, fault.message)


async def test_a_fractional_retry_after_is_sent_as_is(
    server: FakeBlatServer, session: aiohttp.ClientSession, kind: BatchKind
) -> None:
    batch = server.add_batch(kind=kind)
    server.inject(Fault.status(429, retry_after=0.05))

    answer = await fetch(session, server.batch_url(batch.batch_id))

    assert answer.headers["Retry-After"] == "0.05"


async def test_an_html_fault_answers_a_proxy_page(
    server: FakeBlatServer, session: aiohttp.ClientSession, kind: BatchKind
) -> None:
    batch = server.add_batch(kind=kind)
    server.inject(Fault.html(502))

    answer = await fetch(session, server.batch_url(batch.batch_id))

    assert answer.status == 502
    assert answer.content_type == "text/html"
    assert b"<title>502 Bad Gateway</title>" in answer.body


async def test_a_malformed_json_fault_answers_200_with_a_body_that_is_not_json(
    server: FakeBlatServer, session: aiohttp.ClientSession, kind: BatchKind
) -> None:
    batch = server.add_batch(kind=kind)
    server.inject(Fault.malformed_json())

    answer = await fetch(session, server.batch_url(batch.batch_id))

    assert (answer.status, answer.content_type) == (200, "application/json")
    with pytest.raises(json.JSONDecodeError):
        answer.json()


async def test_a_truncated_json_fault_gives_a_payload_error(
    server: FakeBlatServer, session: aiohttp.ClientSession, kind: BatchKind
) -> None:
    batch = server.add_batch(kind=kind)
    server.inject(Fault.truncated_json())

    with pytest.raises(aiohttp.ClientPayloadError):
        await fetch(session, server.batch_url(batch.batch_id))
    assert server.requests[0].status == 200


async def test_a_connection_dropped_mid_body_gives_a_client_error(
    server: FakeBlatServer, session: aiohttp.ClientSession, kind: BatchKind
) -> None:
    batch = server.add_batch(kind=kind)
    server.inject(Fault.drop_connection())

    with pytest.raises(aiohttp.ClientError):
        await fetch(session, server.batch_url(batch.batch_id))


async def test_a_connection_dropped_before_headers_is_a_disconnect(
    server: FakeBlatServer, session: aiohttp.ClientSession, kind: BatchKind
) -> None:
    batch = server.add_batch(kind=kind)
    # aiohttp itself sends a GET again once after a disconnect: drop both.
    server.inject(Fault.drop_connection(send_headers=False), times=2)

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await fetch(session, server.batch_url(batch.batch_id))
    assert [request.status for request in server.requests] == [None, None]


@pytest.mark.parametrize(
    ("fault", "read"),
    [
        (Fault.wrong_type("total", "ten"), lambda page: page["total"]),
        (
            Fault.wrong_type("metadata.job_id", 7),
            lambda page: page["data"][-1]["metadata"]["job_id"],
        ),
    ],
)
async def test_a_wrong_type_fault_changes_one_field(
    server: FakeBlatServer,
    session: aiohttp.ClientSession,
    fault: WrongType,
    read: Any,
    kind: BatchKind,
) -> None:
    batch = server.add_batch(kind=kind)
    server.inject(fault)

    page = await fetch_page(session, server, batch, 0)
    normal = await fetch_page(session, server, batch, 0)

    assert read(page) == fault.value
    assert read(normal) != fault.value


@pytest.mark.parametrize(("kind", "links"), [("sitemap", "links"), ("scrape", "extracted_links")])
async def test_a_wrong_type_fault_replaces_the_links_of_either_kind_by_default(
    server: FakeBlatServer, session: aiohttp.ClientSession, kind: BatchKind, links: str
) -> None:
    batch = server.add_batch(kind=kind, size=3, failed=[1])
    server.inject(Fault.wrong_type())

    page = await fetch_page(session, server, batch, 0)

    assert [item[links] for item in page["data"]] == ["not-a-list"] * 3
    assert batch.links_field == links


async def test_an_ignore_from_fault_answers_the_first_page(
    server: FakeBlatServer, session: aiohttp.ClientSession, kind: BatchKind
) -> None:
    batch = server.add_batch(size=25, kind=kind)
    server.inject(Fault.ignore_from(), times=None)

    page = await fetch_page(session, server, batch, 10)

    assert page["data"] == batch.jobs[:10]


async def test_a_latency_fault_delays_the_answer(
    server: FakeBlatServer, session: aiohttp.ClientSession, kind: BatchKind
) -> None:
    batch = server.add_batch(kind=kind)
    server.inject(Fault.latency(0.05))

    started = time.monotonic()
    page = await fetch_page(session, server, batch, 0)

    assert time.monotonic() - started >= 0.05
    assert page["data"] == batch.jobs[:10]
    assert server.requests[0].duration >= 0.05


async def test_a_batch_latency_delays_every_answer(
    server: FakeBlatServer, session: aiohttp.ClientSession, kind: BatchKind
) -> None:
    batch = server.add_batch(latency=0.05, kind=kind)

    await fetch_page(session, server, batch, 0)
    await fetch_page(session, server, batch, 10)

    assert all(request.duration >= 0.05 for request in server.requests)


async def test_injected_faults_match_batch_and_offset(
    server: FakeBlatServer, session: aiohttp.ClientSession, kind: BatchKind
) -> None:
    server.add_batch("b", size=30, kind=kind)
    server.add_batch("other", kind=kind)
    server.inject(Fault.status(500), batch_id="b", from_=10, times=2)

    statuses = [
        (await fetch(session, server.batch_url(batch_id, from_))).status
        for batch_id, from_ in [("other", 10), ("b", 0), ("b", 10), ("b", 10), ("b", 10)]
    ]

    assert statuses == [200, 200, 500, 500, 200]


async def test_faults_injected_for_every_request_last_until_cleared(
    server: FakeBlatServer, session: aiohttp.ClientSession, kind: BatchKind
) -> None:
    batch = server.add_batch(kind=kind)
    server.inject(Fault.status(503), times=None)

    before = [(await fetch(session, server.batch_url(batch.batch_id))).status for _ in range(3)]
    server.clear_faults()
    after = await fetch(session, server.batch_url(batch.batch_id))

    assert (before, after.status) == ([503, 503, 503], 200)


async def test_injected_faults_come_before_the_batch_faults(
    server: FakeBlatServer, session: aiohttp.ClientSession, kind: BatchKind
) -> None:
    batch = server.add_batch(faults=[Fault.status(500)], kind=kind)
    server.inject(Fault.status(429))
    assert batch.faults == (Fault.status(500),)

    statuses = [(await fetch(session, server.batch_url(batch.batch_id))).status for _ in range(2)]

    assert statuses == [429, 500]


async def test_a_fault_rate_draws_faults_with_the_seed(
    server: FakeBlatServer, session: aiohttp.ClientSession, kind: BatchKind
) -> None:
    faults = [Fault.status(502), Fault.status(503)]
    runs = []
    for batch_id in ("first", "second"):
        batch = server.add_batch(batch_id, faults=faults, fault_rate=0.5, seed=7, kind=kind)
        url = server.batch_url(batch.batch_id)
        runs.append([(await fetch(session, url)).status for _ in range(30)])

    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 502, 503}


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Fault.latency(-1), "seconds"),
        (lambda: Fault.status(200), "4xx or 5xx"),
        (lambda: Fault.status(429, retry_after=-1), "retry_after"),
        (lambda: Fault.html(302), "4xx or 5xx"),
    ],
)
def test_fault_factories_refuse_bad_arguments(make: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_fault_factories_make_small_frozen_values() -> None:
    assert Fault.latency(0.5) == Latency(0.5)
    assert Fault.status(429, retry_after=1) == StatusError(429, retry_after=1)
    assert Fault.html() == HtmlError(502)
    assert Fault.malformed_json() == MalformedJson()
    assert Fault.truncated_json() == TruncatedJson()
    assert Fault.drop_connection() == DropConnection(send_headers=True)
    assert Fault.wrong_type() == WrongType(None, "not-a-list")
    assert Fault.ignore_from() == IgnoreFrom()
    assert hash(Fault.status(500)) == hash(StatusError(500))


def test_fault_is_made_by_its_factories() -> None:
    with pytest.raises(TypeError, match="factory"):
        Fault()


def test_inject_refuses_bad_arguments() -> None:
    server = FakeBlatServer()
    with pytest.raises(TypeError):
        server.inject("500")  # type: ignore[arg-type]  # the wrong type under test
    with pytest.raises(ValueError, match="times"):
        server.inject(Fault.status(500), times=0)


# --- The request log --------------------------------------------------------------------


async def test_requests_are_recorded(
    server: FakeBlatServer, session: aiohttp.ClientSession
) -> None:
    server.add_batch("a/b")
    url = URL(f"{server.base_url}batch/scrape_sitemap/a%2Fb?from=10&x=%20", encoded=True)

    await fetch(session, url, authorization=None)
    await fetch(session, url)

    anonymous, authorized = server.requests
    assert anonymous.method == "GET"
    assert anonymous.path == "/batch/scrape_sitemap/a%2Fb"
    assert anonymous.query == "from=10&x=%20"
    assert anonymous.from_ == 10
    assert anonymous.batch_id == "a/b"
    assert (anonymous.authorized, anonymous.status) == (False, 401)
    assert (authorized.authorized, authorized.status) == (True, 200)
    assert anonymous.started <= anonymous.finished <= authorized.started <= authorized.finished


async def test_requests_record_which_endpoint_was_asked(
    server: FakeBlatServer, session: aiohttp.ClientSession
) -> None:
    server.add_batch("s", kind="scrape")
    server.add_batch("m")

    for path in ["batch/scrape/s", "batch/scrape_sitemap/m", "batch/scrape_sitemap/s", "other/s"]:
        await fetch(session, server.base_url + path)

    assert [(request.kind, request.batch_id, request.status) for request in server.requests] == [
        ("scrape", "s", 200),
        ("sitemap", "m", 200),
        ("sitemap", "s", 404),
        (None, None, 404),
    ]


async def test_requests_never_hold_the_api_key(
    server: FakeBlatServer, session: aiohttp.ClientSession
) -> None:
    batch = server.add_batch()

    await fetch(session, server.batch_url(batch.batch_id))
    await fetch(session, server.batch_url(batch.batch_id), authorization="Bearer other-secret")

    assert all("Authorization" not in request.headers for request in server.requests)
    assert "User-Agent" in server.requests[0].headers
    text = repr(server.requests)
    assert DEFAULT_API_KEY not in text
    assert "other-secret" not in text


async def test_reset_requests_forgets_the_log(
    server: FakeBlatServer, session: aiohttp.ClientSession
) -> None:
    batch = server.add_batch()
    await fetch(session, server.batch_url(batch.batch_id))

    server.reset_requests()

    assert (server.requests, server.max_in_flight) == ([], 0)


async def test_max_in_flight_shows_requests_that_overlapped(
    server: FakeBlatServer, session: aiohttp.ClientSession
) -> None:
    batch = server.add_batch(latency=0.1)
    url = server.batch_url(batch.batch_id)

    await asyncio.gather(*(fetch(session, url) for _ in range(4)))
    overlapping = server.max_in_flight
    server.reset_requests()
    for _ in range(2):
        await fetch(session, url)

    assert (overlapping, server.max_in_flight) == (4, 1)


# --- Serving fast and lean --------------------------------------------------------------


def count_pages_built(batch: FakeBatch, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the offset of every page ``batch`` builds from now on."""
    built: list[int] = []
    build = batch.page

    def counting_page(from_: int = 0) -> dict[str, Any]:
        built.append(from_)
        return build(from_)

    monkeypatch.setattr(batch, "page", counting_page)
    return built


async def test_pages_of_a_complete_batch_are_encoded_once(
    server: FakeBlatServer,
    session: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    kind: BatchKind,
) -> None:
    batch = server.add_batch(size=25, kind=kind)
    built = count_pages_built(batch, monkeypatch)

    first = await fetch(session, server.batch_url(batch.batch_id, 10))
    again = await fetch(session, server.batch_url(batch.batch_id, 10))

    assert first.body == again.body
    assert built == [10]


async def test_the_page_cache_keeps_to_its_budget(
    monkeypatch: pytest.MonkeyPatch, kind: BatchKind
) -> None:
    async with FakeBlatServer(page_cache_bytes=0) as server, aiohttp.ClientSession() as session:
        batch = server.add_batch(size=25, kind=kind)
        built = count_pages_built(batch, monkeypatch)
        for _ in range(2):
            await fetch_page(session, server, batch, 0)

    assert built == [0, 0]


async def test_preencode_encodes_every_page_up_front(
    server: FakeBlatServer,
    session: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    kind: BatchKind,
) -> None:
    batch = server.add_batch(size=25, preencode=True, kind=kind)
    built = count_pages_built(batch, monkeypatch)

    pages = [await fetch_page(session, server, batch, offset) for offset in (0, 10, 20)]

    assert [item for page in pages for item in page["data"]] == batch.jobs
    assert built == []


def test_preencode_needs_a_complete_batch() -> None:
    server = FakeBlatServer()

    with pytest.raises(ValueError, match="complete"):
        server.add_batch("b", visible=3, preencode=True)
    server.add_batch("b")


async def test_pages_of_a_growing_batch_are_built_for_each_request(
    server: FakeBlatServer, session: aiohttp.ClientSession, kind: BatchKind
) -> None:
    batch = server.add_batch(size=25, visible=5, kind=kind)

    first = await fetch_page(session, server, batch, 0)
    batch.reveal(3)
    again = await fetch_page(session, server, batch, 0)

    assert (len(first["data"]), len(again["data"])) == (5, 8)


async def test_a_big_batch_is_generated_lazily(
    server: FakeBlatServer, session: aiohttp.ClientSession
) -> None:
    tracemalloc.start()
    try:
        batch = server.add_batch("big", size=200_000, failed=0.01)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    page = await fetch_page(session, server, batch, 199_995)

    assert peak < 1_000_000
    assert [item["metadata"]["job_id"] for item in page["data"]] == [
        f"big-job-{index:06d}" for index in range(199_995, 200_000)
    ]
    assert page["processed"] == 198_000


# --- Lifecycle and the threaded runner --------------------------------------------------


async def test_start_and_close_without_a_with_block() -> None:
    server = FakeBlatServer()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.base_url

    await server.start()
    try:
        with pytest.raises(RuntimeError, match="only once"):
            await server.start()
        assert server.base_url == f"http://127.0.0.1:{server.port}/"
    finally:
        await server.close()
    await server.close()


async def test_closing_does_not_wait_for_an_injected_delay() -> None:
    server = FakeBlatServer()
    await server.start()
    try:
        batch = server.add_batch()
        server.inject(Fault.latency(30))
        timeout = aiohttp.ClientTimeout(total=0.05)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            with pytest.raises(asyncio.TimeoutError):
                await fetch(session, server.batch_url(batch.batch_id))
    finally:
        started = time.monotonic()
        await server.close()

    assert time.monotonic() - started < 5
    assert server.requests[0].status is None


async def test_closing_drops_requests_still_waiting_out_a_delay() -> None:
    server = FakeBlatServer()
    await server.start()
    try:
        batch = server.add_batch(latency=30)
        async with aiohttp.ClientSession() as session:
            waiting = asyncio.create_task(fetch(session, server.batch_url(batch.batch_id)))
            # Poll: the server offers no event to await for "a request arrived".
            async with asyncio.timeout(5):
                while not server.max_in_flight:  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
            await server.close()
            with pytest.raises(aiohttp.ClientError):
                await waiting
    finally:
        await server.close()

    assert server.requests[0].status is None


def _get(url: str, authorization: str = BEARER) -> dict[str, Any]:
    # S310: the URL is always the fake server's own http:// address on loopback.
    request = urllib.request.Request(url, headers={"Authorization": authorization})  # noqa: S310
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        page: dict[str, Any] = json.load(response)
    return page


def test_run_in_thread_serves_synchronous_code() -> None:
    with FakeBlatServer().run_in_thread() as server:
        batch = server.add_batch(size=12, visible=2)
        server.inject(Fault.ignore_from())

        repeated = _get(server.batch_url(batch.batch_id, 10))
        batch.complete()
        last = _get(server.batch_url(batch.batch_id, 10))

    assert repeated["data"] == batch.jobs[:2]
    assert last["data"] == batch.jobs[10:]
    assert [request.from_ for request in server.requests] == [10, 10]


def test_run_in_thread_stops_the_server_and_its_thread() -> None:
    with pytest.raises(KeyError), FakeBlatServer().run_in_thread() as server:  # noqa: PT012
        url = server.batch_url(server.add_batch().batch_id)
        raise KeyError("the with block failed")

    with pytest.raises(urllib.error.URLError):
        _get(url)
    assert not any(thread.name == "FakeBlatServer" for thread in threading.enumerate())


async def test_run_in_thread_serves_async_code_too() -> None:
    with FakeBlatServer().run_in_thread() as server:
        batch = server.add_batch(latency=0.1)
        async with aiohttp.ClientSession() as session:
            answers = await asyncio.gather(
                *(fetch(session, server.batch_url(batch.batch_id)) for _ in range(3))
            )

    assert [answer.status for answer in answers] == [200, 200, 200]
    assert server.max_in_flight == 3


# --- The site to crawl ------------------------------------------------------------------


async def test_the_site_serves_every_link_of_a_batch_and_counts_the_hits(
    server: FakeBlatServer, session: aiohttp.ClientSession
) -> None:
    async with FakeSite() as site:
        batch = server.add_batch(size=4, links_per_job=2, failed=[2], link_base=site.link_base)
        answers = [await fetch(session, link, authorization=None) for link in batch.links]
        again = await fetch(session, batch.links[0], authorization=None)

    assert [answer.status for answer in answers] == [200] * 6
    assert answers[0].content_type == "text/html"
    assert b"<title>/pages/000000/0</title>" in answers[0].body
    assert again.status == 200
    assert site.hits == Counter(batch.links) + Counter(batch.links[:1])
    assert all(link.startswith(f"http://127.0.0.1:{site.port}/pages/") for link in batch.links)


async def test_the_site_answers_404_outside_its_pages(session: aiohttp.ClientSession) -> None:
    async with FakeSite() as site:
        robots = await fetch(session, f"{site.base_url}robots.txt", authorization=None)

    assert robots.status == 404
    assert site.hits == Counter()
    assert [(visit.url, visit.status) for visit in site.visits] == [
        (f"{site.base_url}robots.txt", 404)
    ]


async def test_the_site_waits_its_latency(session: aiohttp.ClientSession) -> None:
    async with FakeSite(latency=0.1) as site:
        started = time.monotonic()
        answer = await fetch(session, f"{site.link_base}a", authorization=None)

    assert answer.status == 200
    assert time.monotonic() - started >= 0.1


def test_the_site_runs_in_a_thread_and_refuses_bad_arguments() -> None:
    with FakeSite().run_in_thread() as site:
        with urllib.request.urlopen(f"{site.link_base}p", timeout=5) as response:  # noqa: S310
            assert response.status == 200
        assert repr(site) == f"<FakeSite {site.base_url} visits=1>"

    assert not any(thread.name == "FakeSite" for thread in threading.enumerate())
    with pytest.raises(ValueError, match="latency"):
        FakeSite(latency=-1)
    with pytest.raises(RuntimeError, match="not started"):
        _ = FakeSite().port


async def test_a_site_on_a_port_in_use_fails_to_start() -> None:
    async with FakeSite() as taken:
        site = FakeSite(port=taken.port)
        with pytest.raises(OSError):  # noqa: PT011
            await site.start()

    with pytest.raises(RuntimeError, match="only once"):
        await site.start()


async def test_a_site_starts_once() -> None:
    site = FakeSite()
    await site.start()
    await site.close()
    await site.close()

    with pytest.raises(RuntimeError, match="only once"):
        await site.start()


# --- The pytest plugin ------------------------------------------------------------------


def test_the_fixture_serves_sync_and_async_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Load only this plugin and pytest-asyncio, whatever the installed entry points are.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(
        """
        import json
        import urllib.request

        import aiohttp

        def get(server, batch):
            request = urllib.request.Request(
                server.batch_url(batch.batch_id),
                headers={"Authorization": f"Bearer {server.api_key}"},
            )
            with urllib.request.urlopen(request) as response:
                return json.load(response)

        def test_sync(fake_blat_server):
            batch = fake_blat_server.add_batch(size=3)
            assert get(fake_blat_server, batch)["data"] == batch.jobs

        async def test_async(fake_blat_server):
            batch = fake_blat_server.add_batch(size=3)
            headers = {"Authorization": f"Bearer {fake_blat_server.api_key}"}
            async with aiohttp.ClientSession(headers=headers) as session:
                async with session.get(fake_blat_server.batch_url(batch.batch_id)) as response:
                    assert (await response.json())["data"] == batch.jobs

        def test_a_new_server_for_each_test(fake_blat_server):
            assert fake_blat_server.requests == []
        """
    )

    # In a subprocess: in this process the plugin is already imported, which
    # pytest reports as a warning (an error under -W error) on some versions.
    result = pytester.runpytest_subprocess(
        "-p",
        "blat_async.pytest_plugin",
        "-p",
        "pytest_asyncio.plugin",
        "-o",
        "asyncio_mode=auto",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        "-W",
        "error",
    )

    result.assert_outcomes(passed=3)


def test_loading_the_plugin_does_not_import_the_server() -> None:
    code = (
        "import sys, blat_async.pytest_plugin; "
        "assert 'blat_async.testing' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
