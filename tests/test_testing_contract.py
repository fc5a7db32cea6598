"""`FakeBlatServer` answers as each endpoint's OpenAPI document says.

Schemathesis generates requests from ``openapi/get-batch-scrape-sitemap.yaml``
and ``openapi/get-batch-scrape.yaml``, read as one document of both paths
(valid and invalid ``batch_id`` and ``from``, other methods, no key), and
checks every answer against it: a documented status, a JSON content type, a
body of the documented schema, a 401 without the key and a 405 that says
which method is allowed. Half the generated cases ask for a batch the server
holds, of either kind, so that 200 pages and 403s are checked as well as 404s
(a batch asked for at the other kind's path among them); a few cases written
out ask for each kind of page at each endpoint, whatever hypothesis draws.

Two deliberate differences, where the test reads the documents otherwise:

- The documents let ``from`` be any integer; the server answers 400 to a
  negative one, where no item can be. The test adds ``minimum: 0`` to
  ``from``, so that schemathesis counts a negative ``from`` as invalid and
  checks that it is refused.
- The documents give the GET an optional JSON body, which HTTP gives no
  meaning (RFC 9110, 9.3.1) and no client sends; the server ignores any body,
  as servers do for a GET. The test drops ``requestBody``, so that it does not
  expect a body that is not JSON to be refused.

Only the server's own answers are held to the contract: faults such as an
HTML page or a dropped connection are there to break it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
import schemathesis
import yaml
from hypothesis import settings
from schemathesis.checks import not_a_server_error

from blat_async.testing import BatchKind, FakeBlatServer, Fault

OPENAPI: Final = Path(__file__).resolve().parent.parent / "openapi"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint the fake server serves, and its OpenAPI document."""

    document: str
    """The document's file name in ``openapi/``."""
    path: str
    """The endpoint's path template in the document."""


ENDPOINTS: Final[dict[BatchKind, Endpoint]] = {
    "sitemap": Endpoint("get-batch-scrape-sitemap.yaml", "/batch/scrape_sitemap/{batch_id}"),
    "scrape": Endpoint("get-batch-scrape.yaml", "/batch/scrape/{batch_id}"),
}

# The batches a case may ask for, each showing a kind of answer; the server
# holds each of them once per kind, as "{kind}-{name}".
BATCHES: Final[dict[str, dict[str, Any]]] = {
    "done": {"size": 25, "failed": [1, 7]},
    "running": {"size": 30, "visible": 12},
    "empty": {"size": 0},
    "forbidden": {"size": 5, "forbidden": True},
    # A 500, as `Fault.status` sends it: the API's JSON error body.
    "failing": {"size": 5, "faults": [Fault.status(500)]},
}
BATCH_IDS: Final = [f"{kind}-{name}" for kind in ENDPOINTS for name in BATCHES]


def _load(kind: BatchKind) -> dict[str, Any]:
    with (OPENAPI / ENDPOINTS[kind].document).open(encoding="utf-8") as file:
        document: dict[str, Any] = yaml.safe_load(file)
    operation = document["paths"][ENDPOINTS[kind].path]["get"]
    for parameter in operation["parameters"]:
        if parameter["name"] == "from":
            parameter["schema"]["minimum"] = 0
    del operation["requestBody"]
    return document


def _both(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One document with the paths and components of each; shared names must agree."""
    first, *others = documents
    for document in others:
        sections = [(first["paths"], document["paths"])] + [
            (first["components"].setdefault(name, {}), entries)
            for name, entries in document["components"].items()
        ]
        for merged, entries in sections:
            for name, entry in entries.items():
                if merged.setdefault(name, entry) != entry:
                    raise ValueError(f"the OpenAPI documents disagree on {name!r}")
    return first


def _schema() -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict(
        {
            # The server ignores query parameters it does not know, as APIs do:
            # an unknown one does not make a request invalid.
            "generation": {"allow-extra-parameters": False},
            # Batches of both kinds: one of the other kind is not found.
            "dictionaries": {"batches": {"values": BATCH_IDS}},
            "parameters": {"path.batch_id": {"dictionary": "batches", "probability": 0.5}},
        }
    )
    document = _both([_load(kind) for kind in ENDPOINTS])
    return schemathesis.openapi.from_dict(document, config=config)


schema = _schema()


@pytest.fixture(scope="module")
def server() -> Iterator[FakeBlatServer]:
    with FakeBlatServer().run_in_thread() as server:
        for kind in ENDPOINTS:
            for name, settings_ in BATCHES.items():
                server.add_batch(f"{kind}-{name}", kind=kind, **settings_)
        yield server


def _call_and_validate(case: Any, server: FakeBlatServer) -> Any:
    # A 500 is what the "failing" batches are for: its body is checked all the same.
    batch_id = case.path_parameters.get("batch_id", "")
    excluded = [not_a_server_error] if batch_id.endswith("-failing") else []
    return case.call_and_validate(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {server.api_key}"},
        excluded_checks=excluded,
    )


@schema.parametrize()
@settings(max_examples=40, deadline=None)
def test_the_fake_server_follows_the_contract(case: Any, server: FakeBlatServer) -> None:
    _call_and_validate(case, server)


@pytest.mark.parametrize("kind", list(ENDPOINTS))
@pytest.mark.parametrize(
    ("batch", "from_", "status"),
    [
        ("{kind}-done", None, 200),
        ("{kind}-done", 0, 200),  # with failed jobs: error and error_code, no links
        ("{kind}-done", 20, 200),  # a short last page
        ("{kind}-done", 25, 200),  # past the end: an empty page
        ("{kind}-running", 10, 200),
        ("{kind}-empty", 0, 200),
        ("{kind}-forbidden", 0, 403),
        ("{other}-done", 0, 404),  # a batch of the other kind
        ("missing", 0, 404),
        ("{kind}-failing", 0, 500),
    ],
)
def test_each_kind_of_page_follows_the_contract(
    server: FakeBlatServer, kind: BatchKind, batch: str, from_: int | None, status: int
) -> None:
    (other,) = set(ENDPOINTS) - {kind}
    query = {} if from_ is None else {"from": from_}
    batch_id = batch.format(kind=kind, other=other)
    case = schema[ENDPOINTS[kind].path]["GET"].Case(
        path_parameters={"batch_id": batch_id}, query=query
    )

    response = _call_and_validate(case, server)

    assert response.status_code == status


def test_documents_that_disagree_on_a_shared_name_are_refused() -> None:
    sitemap, scrape = _load("sitemap"), _load("scrape")
    scrape["components"]["schemas"]["utils.APIError"]["properties"]["code"]["type"] = "integer"

    with pytest.raises(ValueError, match=r"utils\.APIError"):
        _both([sitemap, scrape])
