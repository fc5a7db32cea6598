"""The models follow the contract: the endpoint's OpenAPI document in ``openapi/``.

``openapi/get-batch-scrape-sitemap.yaml`` is the YAML block of the endpoint's
page in the API reference (https://docs.blat.ai), copied verbatim. When the API
changes, replace the file with the new block: these tests then name each
property that a model lacks, types otherwise, or holds beyond the schema.
"""

from __future__ import annotations

import copy
import json
import typing
from collections.abc import Mapping
from typing import Any, Final

import attrs
import pytest

from blat_async import APIStatusError
from blat_async._converter import structure_page
from blat_async.models import (
    BatchScrapeSitemapData,
    BatchScrapeSitemapMetadata,
    BatchScrapeSitemapStatusResponse,
)

from ._contract import PATH, load_contract

# The schema of each model, by the name the contract gives it.
MODELS: Final[Mapping[str, type]] = {
    "api.BatchScrapeSitemapStatusResponse": BatchScrapeSitemapStatusResponse,
    "api.BatchScrapeSitemapData": BatchScrapeSitemapData,
    "api.BatchScrapeSitemapMetadata": BatchScrapeSitemapMetadata,
}
_REF_PREFIX: Final = "#/components/schemas/"
# The Python type of each JSON type, within a field's type.
_SCALARS: Final[Mapping[str, type]] = {"string": str, "integer": int, "boolean": bool}


def _model(reference: str) -> type:
    return MODELS[reference.removeprefix(_REF_PREFIX)]


def _element_type(schema: Mapping[str, Any]) -> object:
    if "$ref" in schema:
        return _model(schema["$ref"])
    if schema.get("type") in _SCALARS:
        return _SCALARS[schema["type"]]
    raise AssertionError(f"no Python type for the JSON schema {dict(schema)}: add it to the test")


def expected_type(schema: Mapping[str, Any]) -> object:
    """The type of a model's field for a property of the contract.

    No property is required, so a field may be absent or ``null``: ``None``
    for an object or a scalar, an empty tuple for an array.
    """
    if schema.get("type") == "array":
        return tuple[_element_type(schema["items"]), ...]  # type: ignore[misc]
    return _element_type(schema) | None  # type: ignore[operator]


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
            want = expected_type(prop_schema)
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


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    return load_contract()


@pytest.fixture
def schemas(contract: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(contract["components"]["schemas"])


def test_the_models_cover_every_property_with_its_json_type(schemas: dict[str, Any]) -> None:
    assert mismatches(schemas, MODELS) == []


def test_every_schema_of_a_200_answer_has_a_model(contract: dict[str, Any]) -> None:
    answer = contract["paths"][PATH]["get"]["responses"]["200"]
    schemas = contract["components"]["schemas"]
    reachable = _references(answer)
    while more := _references([schemas[name] for name in reachable]) - reachable:
        reachable |= more

    assert reachable == set(MODELS)


def test_the_error_schema_is_what_api_status_error_carries(contract: dict[str, Any]) -> None:
    error_schema = contract["components"]["schemas"]["utils.APIError"]
    error = APIStatusError(404)

    for prop in error_schema["properties"]:
        assert hasattr(error, prop), f"APIStatusError has no {prop!r}"


def test_the_contract_example_decodes_into_the_models(contract: dict[str, Any]) -> None:
    example = contract["components"]["schemas"]["api.BatchScrapeSitemapStatusResponse"]["example"]

    page = structure_page(example)

    # Through JSON, tuples become lists again.
    assert json.loads(json.dumps(attrs.asdict(page))) == example


# How the contract or the models may drift; each must be caught.
def _add_property(schemas: dict[str, Any]) -> None:
    schemas["api.BatchScrapeSitemapData"]["properties"]["depth"] = {"type": "integer"}


def _retype_property(schemas: dict[str, Any]) -> None:
    schemas["api.BatchScrapeSitemapStatusResponse"]["properties"]["total"] = {"type": "string"}


def _retype_array(schemas: dict[str, Any]) -> None:
    schemas["api.BatchScrapeSitemapData"]["properties"]["links"]["items"] = {"type": "integer"}


def _remove_property(schemas: dict[str, Any]) -> None:
    del schemas["api.BatchScrapeSitemapMetadata"]["properties"]["url"]


def _require_property(schemas: dict[str, Any]) -> None:
    schemas["api.BatchScrapeSitemapMetadata"]["required"] = ["job_id"]


@pytest.mark.parametrize(
    "drift",
    [_add_property, _retype_property, _retype_array, _remove_property, _require_property],
)
def test_a_contract_that_drifts_from_the_models_is_caught(
    schemas: dict[str, Any], drift: typing.Callable[[dict[str, Any]], None]
) -> None:
    drift(schemas)

    assert mismatches(schemas, MODELS) != []


@attrs.frozen
class _MetadataWithoutUrl:
    batch_id: str | None = None
    job_id: str | None = None


@attrs.frozen
class _MetadataRetyped:
    batch_id: str | None = None
    job_id: int | None = None
    url: str | None = None


@pytest.mark.parametrize("model", [_MetadataWithoutUrl, _MetadataRetyped])
def test_a_model_that_drifts_from_the_contract_is_caught(
    schemas: dict[str, Any], model: type
) -> None:
    models = {**MODELS, "api.BatchScrapeSitemapMetadata": model}

    assert mismatches(schemas, models) != []
