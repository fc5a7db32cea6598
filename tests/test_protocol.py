"""The protocol without I/O: URLs, headers, Retry-After, and decoding responses."""

from __future__ import annotations

import email.utils
import gc
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from blat_async import _protocol
from blat_async._endpoints import SCRAPE, SITEMAP, Endpoint
from blat_async._protocol import (
    PagePath,
    build_headers,
    decode_page_response,
    encode_batch_id,
    error_from_response,
    normalize_base_url,
    parse_retry_after,
)
from blat_async.errors import (
    APIStatusError,
    InternalServerError,
    NotFoundError,
    ResponseValidationError,
)
from blat_async.models import BatchScrapeSitemapStatusResponse
from tests._tables import STATUS_ERROR_CLASSES
from tests.conftest import page

# -- encode_batch_id -----------------------------------------------------------


@pytest.mark.parametrize(
    ("batch_id", "encoded"),
    [
        pytest.param("b-123_x.y~z", "b-123_x.y~z", id="unreserved-kept"),
        pytest.param("a/b", "a%2Fb", id="slash"),
        pytest.param("a?from=9", "a%3Ffrom%3D9", id="question-mark"),
        pytest.param("a#frag", "a%23frag", id="hash"),
        pytest.param("a%2Fb", "a%252Fb", id="already-encoded-percent"),
        pytest.param("a b", "a%20b", id="space"),
        pytest.param("lot-ü-日本", "lot-%C3%BC-%E6%97%A5%E6%9C%AC", id="non-ascii"),
        pytest.param("a\r\nHost: x", "a%0D%0AHost%3A%20x", id="crlf"),
        pytest.param("../admin", "..%2Fadmin", id="dot-dot-slash"),
        pytest.param("...", "...", id="three-dots"),
    ],
)
def test_batch_id_is_encoded_as_one_segment(batch_id: str, encoded: str) -> None:
    assert encode_batch_id(batch_id) == encoded


@pytest.mark.parametrize(
    "batch_id", ["a/b/c", "x?y#z", "../../etc", "a\r\nb", "a\nb", "a\rb", "%2F/%3F"]
)
def test_encoded_batch_id_has_no_raw_delimiters(batch_id: str) -> None:
    encoded = encode_batch_id(batch_id)

    assert not set(encoded) & {"/", "?", "#", "\r", "\n", " "}


@pytest.mark.parametrize("batch_id", [".", "..", ""])
def test_batch_id_that_cannot_be_a_segment_is_refused(batch_id: str) -> None:
    with pytest.raises(ValueError, match="batch_id"):
        encode_batch_id(batch_id)


@pytest.mark.parametrize("batch_id", [None, 123, b"bytes"])
def test_batch_id_that_is_not_str_is_a_type_error(batch_id: object) -> None:
    with pytest.raises(TypeError, match="batch_id must be a str"):
        encode_batch_id(batch_id)  # type: ignore[arg-type]  # the wrong type under test


def test_batch_id_with_lone_surrogate_is_refused() -> None:
    with pytest.raises(ValueError, match="not valid Unicode"):
        encode_batch_id("a\ud800b")


# -- PagePath --------------------------------------------------------------------


def test_page_url_keeps_the_base_path_prefix() -> None:
    path = PagePath(URL("http://127.0.0.1:1/v9/"), "b-1")

    assert str(path.url(0)) == "http://127.0.0.1:1/v9/batch/scrape_sitemap/b-1?from=0"


def test_page_url_sets_from_to_the_offset() -> None:
    url = PagePath(URL("https://api.blat.ai/"), "b-1").url(250)

    assert url.query == {"from": "250"}


def test_page_url_is_not_encoded_twice() -> None:
    url = PagePath(URL("https://api.blat.ai/"), "a/b c%").url(0)

    assert url.raw_path == "/batch/scrape_sitemap/a%2Fb%20c%25"


def test_page_url_batch_id_is_one_path_segment() -> None:
    url = PagePath(URL("https://api.blat.ai/"), "x/../../y?from=3#z").url(7)

    assert url.raw_parts[-2:] == ("scrape_sitemap", "x%2F..%2F..%2Fy%3Ffrom%3D3%23z")
    assert url.query == {"from": "7"}
    assert url.fragment == ""


def test_page_path_refuses_a_bad_batch_id_before_any_request() -> None:
    with pytest.raises(ValueError, match="batch_id"):
        PagePath(URL("https://api.blat.ai/"), "..")


# -- normalize_base_url --------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "normalized"),
    [
        pytest.param("https://api.blat.ai", "https://api.blat.ai/", id="slash-added"),
        pytest.param("https://api.blat.ai/", "https://api.blat.ai/", id="slash-kept"),
        pytest.param(
            "https://proxy.example/blat/v1", "https://proxy.example/blat/v1/", id="prefix"
        ),
        pytest.param("https://proxy.example/v1/", "https://proxy.example/v1/", id="prefix-slash"),
    ],
)
def test_base_url_ends_with_one_slash_and_keeps_its_prefix(base_url: str, normalized: str) -> None:
    assert str(normalize_base_url(base_url)) == normalized


def test_base_url_accepts_a_yarl_url() -> None:
    assert normalize_base_url(URL("https://api.blat.ai/v2")) == URL("https://api.blat.ai/v2/")


@pytest.mark.parametrize(
    "base_url",
    ["https://user:pw@api.blat.ai/", "https://user@api.blat.ai/"],
)
def test_base_url_with_credentials_is_refused(base_url: str) -> None:
    with pytest.raises(ValueError, match="credentials"):
        normalize_base_url(base_url)


@pytest.mark.parametrize("base_url", ["https://api.blat.ai/?k=v", "https://api.blat.ai/#top"])
def test_base_url_with_query_or_fragment_is_refused(base_url: str) -> None:
    with pytest.raises(ValueError, match="query or fragment"):
        normalize_base_url(base_url)


@pytest.mark.parametrize(
    "base_url", ["ftp://api.blat.ai/", "file:///etc/passwd", "api.blat.ai", "https://", ""]
)
def test_base_url_that_is_not_http_with_a_host_is_refused(base_url: str) -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        normalize_base_url(base_url)


@pytest.mark.parametrize(
    "base_url", ["http://api.blat.ai/", "http://10.0.0.1:8080/", "http://localhost.evil.example/"]
)
def test_plain_http_to_a_remote_host_is_refused(base_url: str) -> None:
    with pytest.raises(ValueError, match="clear text"):
        normalize_base_url(base_url)


def test_plain_http_to_a_remote_host_is_allowed_when_asked() -> None:
    url = normalize_base_url("http://api.blat.ai", allow_insecure_http=True)

    assert str(url) == "http://api.blat.ai/"


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8080",
        "http://127.0.0.2/",
        "http://localhost:1/",
        "http://LOCALHOST/",
        "http://[::1]:8080/",
        "http://api.localhost/",
    ],
)
def test_plain_http_to_loopback_is_allowed(base_url: str) -> None:
    assert normalize_base_url(base_url).scheme == "http"


# -- build_headers -------------------------------------------------------------


def test_headers_carry_the_key_as_bearer_token() -> None:
    headers = build_headers("sk-test", "blat-async/1.0")

    assert headers == {
        "Authorization": "Bearer sk-test",
        "Accept": "application/json",
        "User-Agent": "blat-async/1.0",
    }


# -- parse_retry_after ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param("120", 120.0, id="integer"),
        pytest.param(" 7 ", 7.0, id="spaces"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param("1.5", 1.5, id="decimal"),
        pytest.param("0.25", 0.25, id="small-decimal"),
    ],
)
def test_retry_after_in_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value) == seconds


def test_retry_after_http_date_in_the_future_is_the_time_until_it() -> None:
    now = 1_800_000_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)

    assert parse_retry_after(header, now=now) == pytest.approx(30.0)


def test_retry_after_http_date_in_the_past_is_no_wait() -> None:
    now = 1_800_000_000.0
    header = email.utils.formatdate(now - 3600, usegmt=True)

    assert parse_retry_after(header, now=now) == 0.0


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="absent"),
        pytest.param("", id="empty"),
        pytest.param("soon", id="garbage"),
        pytest.param("-5", id="negative"),
        pytest.param("-0.5", id="negative-decimal"),
        pytest.param("nan", id="nan"),
        pytest.param("inf", id="infinity"),
        pytest.param("Wed, 99 Foo 2015 07:28:00 GMT", id="broken-date"),
    ],
)
def test_unreadable_retry_after_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=0.0) is None


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("Mon, 01 Jan 99999999999 00:00:00 GMT", id="year-past-c-long"),
        pytest.param("Mon, 01 Jan 99999999999999999999999 00:00:00 GMT", id="year-past-int64"),
        pytest.param("Mon, 01 Jan 10000 00:00:00 GMT", id="year-past-datetime"),
        pytest.param("Mon, 99999999999 Jan 2020 00:00:00 GMT", id="huge-day"),
        pytest.param("Mon, 01 Jan 2020 99999999999:00:00 GMT", id="huge-hour"),
        pytest.param("Mon, 01 Jan 2020 00:99999999999:00 GMT", id="huge-minute"),
        pytest.param("Mon, 01 Jan 2020 00:00:00 +99999999999", id="huge-offset"),
        pytest.param("Mon, 01 Jan 2020 00:00:00 -0000", id="no-zone"),
    ],
)
def test_retry_after_date_out_of_range_is_none(value: str) -> None:
    assert parse_retry_after(value, now=0.0) is None


_DATE_NUMBERS = st.one_of(st.integers(min_value=-(10**30), max_value=10**30), st.text(max_size=8))


@st.composite
def _retry_after_values(draw: st.DrawFn) -> str:
    """Any text, and dates built from fields of any size in the places a date has numbers."""
    day, year, hour, minute, second = (draw(_DATE_NUMBERS) for _ in range(5))
    zone = draw(st.sampled_from(["GMT", "UTC", "+0000", "-2359", "+99999999999", "EST", ""]))
    built = f"Mon, {day} Jan {year} {hour}:{minute}:{second} {zone}"
    return draw(st.one_of(st.text(), st.just(built), st.from_regex(r"\A[0-9eE.+-]{0,40}\Z")))


@settings(max_examples=500, deadline=None)
@given(value=_retry_after_values(), now=st.floats(min_value=0, max_value=2e10))
def test_any_retry_after_is_none_or_a_wait_and_never_raises(value: str, now: float) -> None:
    seconds = parse_retry_after(value, now=now)

    assert seconds is None or (isinstance(seconds, float) and 0 <= seconds < float("inf"))


# -- error_from_response -------------------------------------------------------


def _api_error(code: str, message: str) -> bytes:
    return json.dumps({"code": code, "message": message, "details": {"field": "batch_id"}}).encode()


@pytest.mark.parametrize(("status", "error_class"), STATUS_ERROR_CLASSES)
def test_error_class_follows_the_status(status: int, error_class: type[APIStatusError]) -> None:
    error = error_from_response(status, {}, _api_error("X", "y"))

    assert type(error) is error_class
    assert error.status == status


def test_unlisted_4xx_is_a_plain_api_status_error() -> None:
    error = error_from_response(418, {}, b"")

    assert type(error) is APIStatusError
    assert error.status == 418


def test_api_error_body_fields_are_kept() -> None:
    error = error_from_response(
        400, {}, _api_error("INVALID_BATCH_ID", "bad id"), url="https://api.blat.ai/x"
    )

    assert (error.code, error.message, dict(error.details), error.body, error.url) == (
        "INVALID_BATCH_ID",
        "bad id",
        {"field": "batch_id"},
        None,
        "https://api.blat.ai/x",
    )


def test_api_error_body_with_fields_of_wrong_type_keeps_none() -> None:
    body = json.dumps({"code": 7, "message": ["x"], "details": "no"}).encode()

    error = error_from_response(400, {}, body)

    assert (error.code, error.message, dict(error.details)) == (None, None, {})


def test_html_error_page_keeps_its_title_as_body() -> None:
    body = (
        b"<html><head><title>502 Bad Gateway</title></head>"
        b"<body><center><h1>502 Bad Gateway</h1></center><hr>nginx</body></html>"
    )

    error = error_from_response(502, {"Content-Type": "text/html"}, body)

    assert type(error) is InternalServerError
    assert (error.status, error.message, error.code, error.body) == (
        502,
        None,
        None,
        "502 Bad Gateway",
    )
    assert "502" in str(error)


@pytest.mark.parametrize(
    ("body", "excerpt"),
    [
        pytest.param(
            b"<HTML><HEAD><TITLE lang='en'>503 Service\n  Unavailable</TITLE></HEAD></HTML>",
            "503 Service Unavailable",
            id="upper-case-with-attribute",
        ),
        pytest.param(b"<html><title>one</title><title>two</title></html>", "one", id="first-title"),
        pytest.param(b"<title>no end in sight", "<title>no end in sight", id="unclosed"),
        pytest.param(b"<title never closed", "<title never closed", id="unclosed-tag"),
        pytest.param(b"x" * 70_000 + b"<title>late</title>", "x" * 200 + "...", id="title-late"),
    ],
)
def test_the_excerpt_of_a_page_is_its_title_or_its_start(body: bytes, excerpt: str) -> None:
    assert error_from_response(502, {}, body).body == excerpt


# Bodies built to slow a search for the title down. On the repeated ones, the regular
# expression it used to be took from seconds (<title alone) to minutes.
HOSTILE_BODIES = [
    pytest.param(b"<title>" * 50_000, id="title-repeated"),
    pytest.param(b"<TiTlE>" * 50_000, id="mixed-case-title-repeated"),
    pytest.param(b"<title" * 60_000, id="open-tag-repeated"),
    pytest.param(b"<title " + b"a" * 400_000, id="tag-never-closed"),
    pytest.param(b"<title>" + b"x" * 400_000, id="title-never-closed"),
    pytest.param(b"<title>" * 50_000 + b"</title>", id="closed-at-the-very-end"),
    pytest.param(b"<title>a</titl" * 30_000, id="almost-closed-repeated"),
    pytest.param(b"<" * 400_000, id="angle-brackets"),
    pytest.param(b" \n\t" * 150_000, id="whitespace"),
]


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_an_error_excerpt_of_a_hostile_body_takes_bounded_time(body: bytes) -> None:
    started = time.perf_counter()
    error = error_from_response(502, {}, body)
    elapsed = time.perf_counter() - started

    assert elapsed < 1.0
    assert error.body is None or len(error.body) <= 203


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_decoding_a_hostile_success_body_takes_bounded_time(body: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(ResponseValidationError, match="not JSON") as caught:
        decode_page_response(200, {}, body)
    elapsed = time.perf_counter() - started

    assert elapsed < 1.0
    assert len(str(caught.value)) < 300


def test_long_non_json_body_is_cut_to_an_excerpt() -> None:
    error = error_from_response(500, {}, b"x" * 5000)

    assert error.body is not None
    assert len(error.body) < 300
    assert error.body.endswith("...")


def test_empty_error_body_leaves_everything_none() -> None:
    error = error_from_response(503, {}, b"")

    assert (error.code, error.message, error.body) == (None, None, None)
    assert str(error) == "HTTP 503"


def test_retry_after_header_is_parsed_onto_the_error() -> None:
    error = error_from_response(429, {"Retry-After": "2.5"}, _api_error("RATE", "slow down"))

    assert error.retry_after == 2.5


def test_error_without_retry_after_has_none() -> None:
    assert error_from_response(429, {}, b"").retry_after is None


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_gives_a_message_about_redirects(status: int) -> None:
    error = error_from_response(status, {"Location": "https://elsewhere.example/"}, b"")

    assert error.status == status
    assert error.message is not None
    assert "redirect" in error.message
    assert "https://elsewhere.example/" in error.message


# -- decode_page_response ------------------------------------------------------


def test_good_page_is_decoded() -> None:
    body = json.dumps(page(0, 3, total=3)).encode()

    result = decode_page_response(200, {}, body)

    assert isinstance(result, BatchScrapeSitemapStatusResponse)
    assert [item.metadata.job_id for item in result.data if item.metadata] == [
        "b1-job-0",
        "b1-job-1",
        "b1-job-2",
    ]


def test_error_status_raises_its_typed_error() -> None:
    with pytest.raises(NotFoundError) as caught:
        decode_page_response(404, {}, _api_error("NOT_FOUND", "no batch"), url="https://u/")

    assert caught.value.url == "https://u/"


def test_non_json_success_is_a_retryable_validation_error() -> None:
    with pytest.raises(ResponseValidationError) as caught:
        decode_page_response(200, {}, b'{"data": [', url="https://u/")

    error = caught.value
    assert (error.decodable, error.retryable, error.path, error.status) == (False, True, None, 200)
    assert isinstance(error.__cause__, ValueError)


def test_html_success_is_a_retryable_validation_error_with_an_excerpt() -> None:
    with pytest.raises(ResponseValidationError, match="Captive portal") as caught:
        decode_page_response(200, {}, b"<html><title>Captive portal</title></html>")

    assert caught.value.retryable


def test_json_of_the_wrong_shape_names_the_path_and_is_not_retryable() -> None:
    body = json.dumps({"data": [{}, {"links": [1]}]}).encode()

    with pytest.raises(ResponseValidationError, match=r"data\[1\]\.links\[0\]") as caught:
        decode_page_response(200, {}, body)

    error = caught.value
    assert (error.path, error.decodable, error.retryable) == ("data[1].links[0]", True, False)


def test_json_list_at_top_level_is_not_retryable() -> None:
    with pytest.raises(ResponseValidationError, match="the body") as caught:
        decode_page_response(200, {}, b"[]")

    error = caught.value
    assert (error.path, error.retryable) == ("", False)


# -- the collector paused while a large page is decoded ---------------------------------


@pytest.fixture
def collector_seen(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """Whether the cyclic GC was enabled each time a body was decoded."""
    seen: list[bool] = []
    real = _protocol.loads

    def loads(body: bytes) -> Any:
        seen.append(gc.isenabled())
        return real(body)

    monkeypatch.setattr(_protocol, "loads", loads)
    was_enabled = gc.isenabled()
    yield seen
    if was_enabled:
        gc.enable()


def _large_body() -> bytes:
    body = json.dumps(page(0, 500, total=500)).encode()
    assert len(body) >= 64 * 1024
    return body


def test_a_large_page_is_decoded_with_the_collector_paused(collector_seen: list[bool]) -> None:
    result = decode_page_response(200, {}, _large_body())

    assert len(result.data) == 500
    assert collector_seen == [False]
    assert gc.isenabled()


def test_a_small_page_leaves_the_collector_alone(collector_seen: list[bool]) -> None:
    decode_page_response(200, {}, json.dumps(page(0, 3, total=3)).encode())

    assert collector_seen == [True]


def test_the_collector_is_enabled_again_after_a_bad_large_page(
    collector_seen: list[bool],
) -> None:
    with pytest.raises(ResponseValidationError):
        decode_page_response(200, {}, _large_body()[:-1])

    assert collector_seen == [False]
    assert gc.isenabled()


def test_a_collector_disabled_by_the_application_stays_disabled(
    collector_seen: list[bool],
) -> None:
    gc.disable()
    decode_page_response(200, {}, _large_body())

    assert collector_seen == [False]
    assert not gc.isenabled()


@pytest.mark.parametrize("endpoint", [SITEMAP, SCRAPE], ids=["sitemap", "scrape"])
@pytest.mark.parametrize("where", ["total", "processed"])
def test_an_integer_past_64_bits_is_described_as_the_integer_it_is(
    endpoint: Endpoint[Any], where: str
) -> None:
    # orjson reads an integer past 64 bits as a float: the problem reported
    # is the one of the integer the body held.
    body = b'{"%s": -9223372036854775809, "data": []}' % where.encode()
    with pytest.raises(ResponseValidationError) as caught:
        decode_page_response(200, {}, body, endpoint=endpoint)
    message = str(caught.value)
    assert "float" not in message
    assert "expected a count >= 0" in message
    assert f"{endpoint.name} schema at {where}" in message
