"""`FakeBlatServer` answers as the endpoint's OpenAPI document says.

Schemathesis generates requests from ``openapi/get-batch-scrape-sitemap.yaml``
(valid and invalid ``batch_id`` and ``from``, other methods, no key) and
checks every answer against it: a documented status, a JSON content type, a
body of the documented schema, a 401 without the key and a 405 that says
which method is allowed. Half the generated cases ask for a batch the server
holds, so that 200 pages and 403s are checked as well as 404s; a few cases
written out ask for each kind of page, whatever hypothesis draws.

Two deliberate differences, where the test reads the document otherwise:

- The document lets ``from`` be any integer; the server answers 400 to a
  negative one, where no item can be. The test adds ``minimum: 0`` to
  ``from``, so that schemathesis counts a negative ``from`` as invalid and
  checks that it is refused.
- The document gives the GET an optional JSON body, which HTTP gives no
  meaning (RFC 9110, 9.3.1) and no client sends; the server ignores any body,
  as servers do for a GET. The test drops ``requestBody``, so that it does not
  expect a body that is not JSON to be refused.

Only the server's own answers are held to the contract: faults such as an
HTML page or a dropped connection are there to break it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import pytest
import schemathesis
from hypothesis import settings
from schemathesis.checks import not_a_server_error

from blat_async.testing import FakeBlatServer, Fault

from ._contract import PATH, load_contract

# The batches a case may ask for, each showing a kind of answer.
BATCHES: Final[dict[str, dict[str, Any]]] = {
    "done": {"size": 25, "failed": [1, 7]},
    "running": {"size": 30, "visible": 12},
    "empty": {"size": 0},
    "forbidden": {"size": 5, "forbidden": True},
    # A 500, as `Fault.status` sends it: the API's JSON error body.
    "failing": {"size": 5, "faults": [Fault.status(500)]},
}


def _schema() -> schemathesis.BaseSchema:
    document = load_contract()
    operation = document["paths"][PATH]["get"]
    for parameter in operation["parameters"]:
        if parameter["name"] == "from":
            parameter["schema"]["minimum"] = 0
    del operation["requestBody"]
    config = schemathesis.Config.from_dict(
        {
            # The server ignores query parameters it does not know, as APIs do:
            # an unknown one does not make a request invalid.
            "generation": {"allow-extra-parameters": False},
            "dictionaries": {"batches": {"values": list(BATCHES)}},
            "parameters": {"path.batch_id": {"dictionary": "batches", "probability": 0.5}},
        }
    )
    return schemathesis.openapi.from_dict(document, config=config)


schema = _schema()


@pytest.fixture(scope="module")
def server() -> Iterator[FakeBlatServer]:
    with FakeBlatServer().run_in_thread() as server:
        for batch_id, settings_ in BATCHES.items():
            server.add_batch(batch_id, **settings_)
        yield server


def _call_and_validate(case: Any, server: FakeBlatServer) -> Any:
    # A 500 is what the "failing" batch is for: its body is checked all the same.
    excluded = [not_a_server_error] if case.path_parameters.get("batch_id") == "failing" else []
    return case.call_and_validate(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {server.api_key}"},
        excluded_checks=excluded,
    )


@schema.parametrize()
@settings(max_examples=40, deadline=None)
def test_the_fake_server_follows_the_contract(case: Any, server: FakeBlatServer) -> None:
    _call_and_validate(case, server)


@pytest.mark.parametrize(
    ("batch_id", "from_", "status"),
    [
        ("done", None, 200),
        ("done", 0, 200),  # with failed jobs: error and error_code, no links
        ("done", 20, 200),  # a short last page
        ("done", 25, 200),  # past the end: an empty page
        ("running", 10, 200),
        ("empty", 0, 200),
        ("forbidden", 0, 403),
        ("missing", 0, 404),
        ("failing", 0, 500),
    ],
)
def test_each_kind_of_page_follows_the_contract(
    server: FakeBlatServer, batch_id: str, from_: int | None, status: int
) -> None:
    query = {} if from_ is None else {"from": from_}
    case = schema[PATH]["GET"].Case(path_parameters={"batch_id": batch_id}, query=query)

    response = _call_and_validate(case, server)

    assert response.status_code == status
