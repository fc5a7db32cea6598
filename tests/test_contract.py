"""The models follow the contract: each endpoint's OpenAPI document in ``openapi/``.

``openapi/get-batch-scrape-sitemap.yaml`` is the YAML block of the batch
sitemap endpoint's page in the API reference (https://docs.blat.ai), copied
verbatim; ``openapi/get-batch-scrape.yaml`` is the batch scrape endpoint's,
made as its header comment says. When the API changes, replace the file with
the new block: these tests then name each property that a model lacks, types
otherwise, or holds beyond the schema. Every test runs for both endpoints.
"""

from __future__ import annotations

import copy
import json
import typing
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs
import pytest
from attrs import AttrsInstance

from blat_async import APIStatusError
from blat_async._converter import structure_page, structure_scrape_page
from blat_async.models import (
    BatchScrapeData,
    BatchScrapeMetadata,
    BatchScrapeSitemapData,
    BatchScrapeSitemapMetadata,
    BatchScrapeSitemapStatusResponse,
    BatchScrapeStatusResponse,
)

from ._contract import SCRAPE, SITEMAP, Contract


@attrs.frozen
class Endpoint:
    """An endpoint's contract, its models by schema name, and how a page is structured."""

    contract: Contract
    models: Mapping[str, type]
    structure: Callable[[Any], AttrsInstance]
    item: str
    """The schema of one item of ``data``."""
    links: str
    """The item's array of strings."""
    metadata: str
    """The schema of an item's metadata."""


ENDPOINTS: Final = [
    pytest.param(
        Endpoint(
            SITEMAP,
            {
                "api.BatchScrapeSitemapStatusResponse": BatchScrapeSitemapStatusResponse,
                "api.BatchScrapeSitemapData": BatchScrapeSitemapData,
                "api.BatchScrapeSitemapMetadata": BatchScrapeSitemapMetadata,
            },
            structure_page,
            item="api.BatchScrapeSitemapData",
            links="links",
            metadata="api.BatchScrapeSitemapMetadata",
        ),
        id="sitemap",
    ),
    pytest.param(
        Endpoint(
            SCRAPE,
            {
                "api.BatchScrapeStatusResponse": BatchScrapeStatusResponse,
                "api.BatchScrapeData": BatchScrapeData,
                "api.BatchScrapeMetadata": BatchScrapeMetadata,
            },
            structure_scrape_page,
            item="api.BatchScrapeData",
            links="extracted_links",
            metadata="api.BatchScrapeMetadata",
        ),
        id="scrape",
    ),
]
_REF_PREFIX: Final = "#/components/schemas/"
# The Python type of each JSON type, within a field's type.
_SCALARS: Final[Mapping[str, type]] = {"string": str, "integer": int, "boolean": bool}


def _element_type(schema: Mapping[str, Any], models: Mapping[str, type]) -> object:
    if "$ref" in schema:
        return models[schema["$ref"].removeprefix(_REF_PREFIX)]
    if schema.get("type") in _SCALARS:
        return _SCALARS[schema["type"]]
    raise AssertionError(f"no Python type for the JSON schema {dict(schema)}: add it to the test")


def expected_type(schema: Mapping[str, Any], models: Mapping[str, type]) -> object:
    """The type of a model's field for a property of the contract.

    No property is required, so a field may be absent or ``null``: ``None``
    for an object or a scalar, an empty tuple for an array.
    """
    if schema.get("type") == "array":
        return tuple[_element_type(schema["items"], models), ...]  # type: ignore[misc]
    return _element_type(schema, models) | None  # type: ignore[operator]


def mismatches(schemas: Mapping[str, Any], models: Mapping[str, type]) -> list[str]:
    """Say where ``models`` and the contract's ``schemas`` disagree; empty if nowhere."""
    problems = []
    for name, model in models.items():
        schema = schemas[name]
        properties: Mapping[str, Any] = schema.get("properties", {})
        fields = {field.name for field in attrs.fields(model)}
        hints = typing.get_type_hints(model)
        for prop, prop_schema in properties.items():
            if prop not in fields:
                problems.append(f"{name}.{prop}: {model.__name__} has no field {prop!r}")
                continue
            want = expected_type(prop_schema, models)
            if hints[prop] != want:
                problems.append(
                    f"{name}.{prop}: {model.__name__}.{prop} is {hints[prop]}, "
                    f"the contract says {want}"
                )
        for extra in sorted(fields - properties.keys()):
            problems.append(f"{name}: {model.__name__}.{extra} is not in the contract")
        for required in schema.get("required", []):
            problems.append(f"{name}.{required}: the contract requires it, the model defaults it")
    return problems


def _references(schema: Any) -> set[str]:
    """The schema names that ``schema`` refers to, at any depth."""
    if isinstance(schema, dict):
        found = {schema["$ref"].removeprefix(_REF_PREFIX)} if "$ref" in schema else set()
        return found.union(*(_references(value) for value in schema.values()))
    if isinstance(schema, list):
        return set().union(*(_references(value) for value in schema))
    return set()


@pytest.fixture(params=ENDPOINTS)
def endpoint(request: pytest.FixtureRequest) -> Endpoint:
    endpoint: Endpoint = request.param
    return endpoint


@pytest.fixture
def contract(endpoint: Endpoint) -> dict[str, Any]:
    return endpoint.contract.load()


@pytest.fixture
def schemas(contract: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(contract["components"]["schemas"])


def test_the_models_cover_every_property_with_its_json_type(
    schemas: dict[str, Any], endpoint: Endpoint
) -> None:
    assert mismatches(schemas, endpoint.models) == []


def test_every_schema_of_a_200_answer_has_a_model(
    contract: dict[str, Any], endpoint: Endpoint
) -> None:
    answer = contract["paths"][endpoint.contract.path]["get"]["responses"]["200"]
    schemas = contract["components"]["schemas"]
    reachable = _references(answer)
    while more := _references([schemas[name] for name in reachable]) - reachable:
        reachable |= more

    assert _references(answer) == {endpoint.contract.response}
    assert reachable == set(endpoint.models)


def test_the_error_schema_is_what_api_status_error_carries(contract: dict[str, Any]) -> None:
    error_schema = contract["components"]["schemas"]["utils.APIError"]
    error = APIStatusError(404)

    for prop in error_schema["properties"]:
        assert hasattr(error, prop), f"APIStatusError has no {prop!r}"


def test_the_contract_example_decodes_into_the_models(
    contract: dict[str, Any], endpoint: Endpoint
) -> None:
    example = contract["components"]["schemas"][endpoint.contract.response]["example"]

    page = endpoint.structure(example)

    # Through JSON, tuples become lists again.
    assert json.loads(json.dumps(attrs.asdict(page))) == example


# How the contract or the models may drift; each must be caught.
def _add_property(schemas: dict[str, Any], endpoint: Endpoint) -> None:
    schemas[endpoint.item]["properties"]["depth"] = {"type": "integer"}


def _retype_property(schemas: dict[str, Any], endpoint: Endpoint) -> None:
    schemas[endpoint.contract.response]["properties"]["total"] = {"type": "string"}


def _retype_array(schemas: dict[str, Any], endpoint: Endpoint) -> None:
    schemas[endpoint.item]["properties"][endpoint.links]["items"] = {"type": "integer"}


def _remove_property(schemas: dict[str, Any], endpoint: Endpoint) -> None:
    del schemas[endpoint.metadata]["properties"]["url"]


def _require_property(schemas: dict[str, Any], endpoint: Endpoint) -> None:
    schemas[endpoint.metadata]["required"] = ["job_id"]


@pytest.mark.parametrize(
    "drift",
    [_add_property, _retype_property, _retype_array, _remove_property, _require_property],
)
def test_a_contract_that_drifts_from_the_models_is_caught(
    schemas: dict[str, Any],
    endpoint: Endpoint,
    drift: Callable[[dict[str, Any], Endpoint], None],
) -> None:
    drift(schemas, endpoint)

    assert mismatches(schemas, endpoint.models) != []


def _metadata_without_url(model: type) -> type:
    hints = typing.get_type_hints(model)
    fields = {
        field.name: attrs.field(default=None, type=hints[field.name])
        for field in attrs.fields(model)
        if field.name != "url"
    }
    return attrs.make_class(f"{model.__name__}WithoutUrl", fields, frozen=True)


def _metadata_retyped(model: type) -> type:
    hints = {**typing.get_type_hints(model), "job_id": int | None}
    fields = {
        field.name: attrs.field(default=None, type=hints[field.name])
        for field in attrs.fields(model)
    }
    return attrs.make_class(f"{model.__name__}Retyped", fields, frozen=True)


@pytest.mark.parametrize("drift", [_metadata_without_url, _metadata_retyped])
def test_a_model_that_drifts_from_the_contract_is_caught(
    schemas: dict[str, Any], endpoint: Endpoint, drift: Callable[[type], type]
) -> None:
    metadata = endpoint.models[endpoint.metadata]
    models = {**endpoint.models, endpoint.metadata: drift(metadata)}

    assert mismatches(schemas, models) != []
