"""The converter: JSON pages into models, strictly typed, with the path of any bad field."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blat_async import _converter
from blat_async._converter import StructureError, structure_page
from blat_async.models import (
    BatchScrapeSitemapData,
    BatchScrapeSitemapMetadata,
    BatchScrapeSitemapStatusResponse,
)
from tests.conftest import job, page


def test_full_page_is_structured_into_models() -> None:
    result = structure_page(page(0, 2, total=5, status="running"))

    assert result == BatchScrapeSitemapStatusResponse(
        processed=2,
        total=5,
        status="running",
        expires_at="2026-12-05T12:00:00Z",
        data=(
            BatchScrapeSitemapData(
                metadata=BatchScrapeSitemapMetadata(
                    batch_id="b1", job_id="b1-job-0", url="https://site0.example/sitemap.xml"
                ),
                success=True,
                links=("https://site0.example/a", "https://site0.example/b"),
            ),
            BatchScrapeSitemapData(
                metadata=BatchScrapeSitemapMetadata(
                    batch_id="b1", job_id="b1-job-1", url="https://site1.example/sitemap.xml"
                ),
                success=True,
                links=("https://site1.example/a", "https://site1.example/b"),
            ),
        ),
    )


def test_failed_job_keeps_its_error_fields() -> None:
    result = structure_page({"data": [job(7, success=False)]})

    item = result.data[0]
    assert (item.success, item.error, item.error_code, item.links) == (
        False,
        "sitemap unreachable",
        "FETCH_FAILED",
        (),
    )


def test_empty_object_gives_every_default() -> None:
    assert structure_page({}) == BatchScrapeSitemapStatusResponse()


def test_item_with_missing_fields_gives_defaults() -> None:
    result = structure_page({"data": [{}, {"metadata": {}}]})

    assert result.data == (
        BatchScrapeSitemapData(),
        BatchScrapeSitemapData(metadata=BatchScrapeSitemapMetadata()),
    )


def test_null_fields_give_defaults() -> None:
    body = {"processed": None, "total": None, "status": None, "expires_at": None}

    assert structure_page(body) == BatchScrapeSitemapStatusResponse()


def test_null_data_is_an_empty_page() -> None:
    assert structure_page({"data": None, "total": 3}).data == ()


def test_null_links_is_no_links() -> None:
    assert structure_page({"data": [{"links": None}]}).data[0].links == ()


def test_null_metadata_is_none() -> None:
    assert structure_page({"data": [{"metadata": None}]}).data[0].metadata is None


def test_unknown_keys_are_ignored_at_every_level() -> None:
    body = page(0, 1, total=1)
    body["new_top_level"] = {"anything": [1, 2]}
    body["data"][0]["new_item_field"] = 1
    body["data"][0]["metadata"]["new_metadata_field"] = None

    assert structure_page(body) == structure_page(page(0, 1, total=1))


def test_links_are_a_tuple() -> None:
    links = structure_page({"data": [{"links": ["a", "b"]}]}).data[0].links

    assert links == ("a", "b")
    assert type(links) is tuple


def _path_of(value: Any) -> str:
    with pytest.raises(StructureError) as caught:
        structure_page(value)
    return caught.value.path


@pytest.mark.parametrize(
    ("body", "path"),
    [
        pytest.param({"data": [{}, {}, {}, {"links": ["a", 1]}]}, "data[3].links[1]", id="link"),
        pytest.param({"data": [{}, {}, {}, {"links": [1]}]}, "data[3].links[0]", id="first-link"),
        pytest.param({"data": [{"metadata": {"job_id": 5}}]}, "data[0].metadata.job_id", id="job"),
        pytest.param({"data": [{"metadata": []}]}, "data[0].metadata", id="metadata-list"),
        pytest.param({"data": [{}, "x"]}, "data[1]", id="item-not-object"),
        pytest.param({"data": [{}, None]}, "data[1]", id="item-null"),
        pytest.param({"data": [{"success": "false"}]}, "data[0].success", id="success-str"),
        pytest.param({"data": [{"error": 1}]}, "data[0].error", id="error-int"),
        pytest.param({"data": "abc"}, "data", id="data-str"),
        pytest.param({"data": {}}, "data", id="data-object"),
        pytest.param({"total": "10"}, "total", id="total-str"),
        pytest.param({"processed": 1.5}, "processed", id="processed-float"),
        pytest.param({"status": 1}, "status", id="status-int"),
        pytest.param({"expires_at": []}, "expires_at", id="expires-list"),
        pytest.param([], "", id="top-level-list"),
        pytest.param("page", "", id="top-level-str"),
        pytest.param(None, "", id="top-level-null"),
    ],
)
def test_wrong_type_is_rejected_with_its_path(body: Any, path: str) -> None:
    assert _path_of(body) == path


def test_error_message_starts_with_the_path() -> None:
    with pytest.raises(StructureError, match=r"^data\[3\]\.links\[0\]: expected a string, got int"):
        structure_page({"data": [{}, {}, {}, {"links": [1]}]})


def test_top_level_list_is_reported_as_not_an_object() -> None:
    with pytest.raises(StructureError) as caught:
        structure_page([{"data": []}])

    assert caught.value.problem == "expected an object, got list"


@pytest.mark.parametrize("field", ["total", "processed"])
def test_bool_is_not_accepted_as_int(field: str) -> None:
    assert _path_of({field: True}) == field


def test_int_is_not_accepted_as_str() -> None:
    assert _path_of({"data": [{"metadata": {"batch_id": 1}}]}) == "data[0].metadata.batch_id"


@pytest.mark.parametrize("field", ["total", "processed"])
@pytest.mark.parametrize("value", [-1, -100])
def test_a_negative_count_is_refused_naming_its_field(field: str, value: int) -> None:
    with pytest.raises(StructureError) as caught:
        structure_page({field: value, "data": []})
    assert caught.value.path == field
    assert ">= 0" in caught.value.problem


def test_int_is_not_accepted_as_bool() -> None:
    assert _path_of({"data": [{"success": 1}]}) == "data[0].success"


def test_string_is_not_accepted_as_list_of_links() -> None:
    assert _path_of({"data": [{"links": "abc"}]}) == "data[0].links"


def test_structure_error_keeps_the_original_as_cause() -> None:
    with pytest.raises(StructureError) as caught:
        structure_page({"total": "x"})

    assert caught.value.__cause__ is not None


# -- the fast path and the detailed path agree ----------------------------------------

_maybe_text = st.none() | st.text(max_size=8)
_json_scalar = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
_metadata = st.none() | st.fixed_dictionaries(
    {}, optional={"batch_id": _maybe_text, "job_id": _maybe_text, "url": _maybe_text}
)
_item = st.fixed_dictionaries(
    {},
    optional={
        "metadata": _metadata,
        "success": st.none() | st.booleans(),
        "error": _maybe_text,
        "error_code": _maybe_text,
        "links": st.none() | st.lists(st.text(max_size=8), max_size=4),
        "surprise": _json_scalar,
    },
)
_page = st.fixed_dictionaries(
    {},
    optional={
        "processed": st.none() | st.integers(min_value=0),
        "total": st.none() | st.integers(min_value=0),
        "status": _maybe_text,
        "expires_at": _maybe_text,
        "data": st.none() | st.lists(_item, max_size=5),
    },
)


def test_the_fast_item_hook_builds_fields_in_declaration_order() -> None:
    # _item_fast calls the constructors positionally.
    assert [f.name for f in attrs.fields(BatchScrapeSitemapData)] == [
        "metadata",
        "success",
        "error",
        "error_code",
        "links",
    ]
    assert [f.name for f in attrs.fields(BatchScrapeSitemapMetadata)] == [
        "batch_id",
        "job_id",
        "url",
    ]


@settings(deadline=None)
@given(_page)
def test_fast_and_detailed_structuring_agree_on_valid_pages(value: dict[str, Any]) -> None:
    fast = _converter._STRUCTURE_PAGE(value, BatchScrapeSitemapStatusResponse)
    detailed = _converter._STRUCTURE_PAGE_DETAILED(value, BatchScrapeSitemapStatusResponse)
    assert fast == detailed


@settings(deadline=None)
@given(
    _page,
    st.sampled_from(["metadata", "success", "error", "error_code", "links"]),
    st.one_of(st.integers(), st.floats(), st.lists(st.integers(), min_size=1), st.text()),
)
def test_a_wrong_item_field_is_refused_by_both_paths(
    value: dict[str, Any], field: str, wrong: Any
) -> None:
    value = {**value, "data": [{field: wrong}]}
    fits = (field in {"error", "error_code"} and isinstance(wrong, str)) or (
        field == "links" and isinstance(wrong, list) and all(type(x) is str for x in wrong)
    )
    if fits:
        assert structure_page(value).data[0] is not None
        return
    with pytest.raises(StructureError) as caught:
        structure_page(value)
    assert caught.value.path.startswith(f"data[0].{field}")
