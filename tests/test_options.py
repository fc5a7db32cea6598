"""Client options that shape every request: proxies, extra headers, and per-call options."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from yarl import URL

from blat_async import (
    APIConnectionError,
    BlatClient,
    BlatError,
    InternalServerError,
    RetryPolicy,
)
from blat_async.testing import FakeBlatServer, Fault

from .conftest import loopback_app

QUICK = RetryPolicy(max_retries=3, initial_delay=0.001, max_delay=0.002)


@pytest.fixture
async def server() -> AsyncIterator[FakeBlatServer]:
    async with FakeBlatServer() as server:
        yield server


def client_for(server: FakeBlatServer, **kwargs: Any) -> BlatClient:
    return BlatClient(server.api_key, base_url=server.base_url, **kwargs)


# -- proxies ------------------------------------------------------------------------------

# A host that cannot be resolved: only a proxy can answer for it.
_UNREACHABLE = "http://api.blat.invalid/"


@pytest.fixture
async def proxy(server: FakeBlatServer) -> AsyncIterator[tuple[str, list[str]]]:
    """A forward proxy on 127.0.0.1 that sends every request on to the fake server."""
    hosts: list[str] = []

    async def forward(request: web.Request) -> web.Response:
        hosts.append(request.url.host or "")
        target = URL(server.base_url).join(URL(request.rel_url.path_qs.lstrip("/")))
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with (
            aiohttp.ClientSession() as session,
            session.get(target, headers=headers) as answer,
        ):
            return web.Response(
                body=await answer.read(), status=answer.status, content_type="application/json"
            )

    async with loopback_app(forward) as proxy_url:
        yield proxy_url, hosts


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


async def test_http_proxy_from_the_environment_carries_the_requests(
    server: FakeBlatServer, proxy: tuple[str, list[str]], no_proxy_env: pytest.MonkeyPatch
) -> None:
    batch = server.add_batch(size=25)
    proxy_url, hosts = proxy
    no_proxy_env.setenv("HTTP_PROXY", proxy_url)
    async with BlatClient(server.api_key, base_url=_UNREACHABLE, allow_insecure_http=True) as c:
        items = [item async for item in c.iter_batch_scrape_sitemap(batch.batch_id)]
    assert len(items) == 25
    assert hosts == ["api.blat.invalid"] * 3


async def test_no_proxy_sends_the_requests_directly(
    server: FakeBlatServer, proxy: tuple[str, list[str]], no_proxy_env: pytest.MonkeyPatch
) -> None:
    proxy_url, hosts = proxy
    no_proxy_env.setenv("HTTP_PROXY", proxy_url)
    no_proxy_env.setenv("NO_PROXY", "api.blat.invalid")
    async with BlatClient(
        server.api_key, base_url=_UNREACHABLE, allow_insecure_http=True, retry=QUICK
    ) as c:
        with pytest.raises(APIConnectionError):
            await c.get_batch_scrape_sitemap_status("b")
    assert hosts == []


async def test_a_loopback_base_url_never_goes_through_the_environments_proxy(
    server: FakeBlatServer, proxy: tuple[str, list[str]], no_proxy_env: pytest.MonkeyPatch
) -> None:
    batch = server.add_batch(size=3)
    proxy_url, hosts = proxy
    no_proxy_env.setenv("HTTP_PROXY", proxy_url)
    async with client_for(server) as client:
        assert len((await client.get_batch_scrape_sitemap_status(batch.batch_id)).data) == 3
    assert hosts == []


async def test_an_explicit_proxy_wins_over_the_environment(
    server: FakeBlatServer, proxy: tuple[str, list[str]], no_proxy_env: pytest.MonkeyPatch
) -> None:
    batch = server.add_batch(size=3)
    proxy_url, hosts = proxy
    no_proxy_env.setenv("HTTP_PROXY", "http://127.0.0.1:9/")  # nothing listens there
    async with BlatClient(
        server.api_key, base_url=_UNREACHABLE, allow_insecure_http=True, proxy=proxy_url
    ) as c:
        page = await c.get_batch_scrape_sitemap_status(batch.batch_id)
    assert len(page.data) == 3
    assert hosts == ["api.blat.invalid"]


# -- default headers ----------------------------------------------------------------------


async def test_default_headers_go_with_every_request(server: FakeBlatServer) -> None:
    batch = server.add_batch(size=25)
    headers = {"X-Team": "crawlers", "User-Agent": "my-crawler/2"}
    async with client_for(server, default_headers=headers) as client:
        assert len([i async for i in client.iter_batch_scrape_sitemap(batch.batch_id)]) == 25
    assert len(server.requests) == 3
    for request in server.requests:
        assert request.headers["X-Team"] == "crawlers"
        assert request.headers.getall("User-Agent") == ["my-crawler/2"]
        assert request.authorized


@pytest.mark.parametrize("name", ["Authorization", "authorization", "Accept"])
def test_default_headers_cannot_set_the_clients_own(name: str) -> None:
    with pytest.raises(ValueError, match="cannot set"):
        BlatClient("key", default_headers={name: "Bearer other"})


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({"X-A": "1\r\nX-Injected: 1"}, ValueError),
        ({"X-A": 1}, TypeError),
        ([("X-A", "1")], TypeError),
    ],
)
def test_default_headers_are_checked_before_any_request(headers: Any, error: type) -> None:
    with pytest.raises(error):
        BlatClient("key", default_headers=headers)


# -- with_options ---------------------------------------------------------------------------


async def test_with_options_changes_only_what_it_is_given(server: FakeBlatServer) -> None:
    batch = server.add_batch(size=60, latency=0.01)
    async with client_for(server, concurrency=4) as client:
        one_at_a_time = client.with_options(concurrency=1)
        items = [i async for i in one_at_a_time.iter_batch_scrape_sitemap(batch.batch_id)]
        assert len(items) == 60
        assert server.max_in_flight == 1
        server.reset_requests()
        assert len([i async for i in client.iter_batch_scrape_sitemap(batch.batch_id)]) == 60
        assert server.max_in_flight == 4


async def test_with_options_retry_and_timeout_apply_to_its_requests(
    server: FakeBlatServer,
) -> None:
    batch = server.add_batch(size=5)
    async with client_for(server, retry=QUICK) as client:
        server.inject(Fault.status(500), times=1)
        impatient = client.with_options(retry=RetryPolicy(max_retries=0))
        with pytest.raises(InternalServerError):
            await impatient.get_batch_scrape_sitemap_status(batch.batch_id)
        server.inject(Fault.status(500), times=1)
        assert len((await client.get_batch_scrape_sitemap_status(batch.batch_id)).data) == 5
        server.inject(Fault.latency(0.5), times=1)
        with pytest.raises(APIConnectionError, match=r"within 0\.05 s"):
            await client.with_options(
                timeout=0.05, retry=RetryPolicy(max_retries=0)
            ).get_batch_scrape_sitemap_status(batch.batch_id)


async def test_with_options_shares_the_session_slots_and_pause(server: FakeBlatServer) -> None:
    batch = server.add_batch(size=5)
    async with client_for(server) as client:
        derived = client.with_options(timeout=5)
        await derived.get_batch_scrape_sitemap_status(batch.batch_id)
        await client.get_batch_scrape_sitemap_status(batch.batch_id)
        assert derived._shared is client._shared
        assert derived._shared.session is not None


async def test_closing_the_parent_closes_what_with_options_made(server: FakeBlatServer) -> None:
    batch = server.add_batch(size=5)
    client = client_for(server)
    derived = client.with_options(concurrency=2)
    await client.close()
    assert derived.closed
    with pytest.raises(BlatError, match="closed"):
        await derived.get_batch_scrape_sitemap_status(batch.batch_id)


async def test_closing_what_with_options_made_leaves_the_parent_open(
    server: FakeBlatServer,
) -> None:
    batch = server.add_batch(size=5)
    async with client_for(server) as client:
        async with client.with_options(concurrency=2) as derived:
            await derived.get_batch_scrape_sitemap_status(batch.batch_id)
        assert not client.closed
        assert len((await client.get_batch_scrape_sitemap_status(batch.batch_id)).data) == 5


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"timeout": 0}, ValueError), ({"retry": 3}, TypeError), ({"concurrency": 0}, ValueError)],
)
def test_with_options_checks_its_arguments(kwargs: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        BlatClient("key").with_options(**kwargs)


# -- timeouts no request can have -----------------------------------------------------------

IMPOSSIBLE = [math.inf, -math.inf, math.nan, 0, 0.0, -1, -0.5]


@pytest.mark.parametrize("value", IMPOSSIBLE)
def test_an_impossible_timeout_is_refused_at_construction(value: float) -> None:
    with pytest.raises(ValueError, match="timeout must be a finite number of seconds > 0"):
        BlatClient("key", timeout=value)


@pytest.mark.parametrize("value", IMPOSSIBLE)
def test_an_impossible_timeout_is_refused_by_with_options(value: float) -> None:
    with pytest.raises(ValueError, match="timeout must be a finite number of seconds > 0"):
        BlatClient("key").with_options(timeout=value)


@pytest.mark.parametrize("field", ["total", "connect", "sock_read", "sock_connect"])
@pytest.mark.parametrize("value", [math.inf, math.nan, 0, -1])
def test_an_impossible_client_timeout_field_is_refused(field: str, value: float) -> None:
    timeout = aiohttp.ClientTimeout(**{field: value})
    with pytest.raises(ValueError, match=rf"timeout\.{field} must be a finite number"):
        BlatClient("key", timeout=timeout)


def test_a_client_timeout_without_limits_is_accepted() -> None:
    # None is aiohttp's own "no limit" for a field.
    assert BlatClient("key", timeout=aiohttp.ClientTimeout(total=None, sock_read=5))


# -- max_retries --------------------------------------------------------------------------


async def test_max_retries_on_the_client_and_with_options(server: FakeBlatServer) -> None:
    batch = server.add_batch(size=5)
    async with client_for(server, retry=QUICK, max_retries=1) as client:
        assert client._retry == attrs.evolve(QUICK, max_retries=1)
        server.inject(Fault.status(500), times=None)
        with pytest.raises(InternalServerError):
            await client.get_batch_scrape_sitemap_status(batch.batch_id)
        assert len(server.requests) == 2
        server.reset_requests()
        with pytest.raises(InternalServerError):
            await client.with_options(max_retries=3).get_batch_scrape_sitemap_status(batch.batch_id)
        assert len(server.requests) == 4
        # max_retries replaces the count of the policy given beside it.
        patient = client.with_options(retry=RetryPolicy(max_retries=9), max_retries=0)
        assert patient._retry.max_retries == 0


@pytest.mark.parametrize(
    ("value", "error"), [(-1, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_max_retries_is_checked(value: Any, error: type) -> None:
    with pytest.raises(error, match="max_retries"):
        BlatClient("key", max_retries=value)
    with pytest.raises(error, match="max_retries"):
        BlatClient("key").with_options(max_retries=value)
