"""The converter: JSON pages into models, strictly typed, with the path of any bad field.

The sitemap page's tests come first, then the scrape page's, then what both
kinds share, run for each.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blat_async import _converter
from blat_async._converter import StructureError, structure_page, structure_scrape_page
from blat_async.models import (
    BatchScrapeData,
    BatchScrapeMetadata,
    BatchScrapeSitemapData,
    BatchScrapeSitemapMetadata,
    BatchScrapeSitemapStatusResponse,
    BatchScrapeStatusResponse,
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


# -- the scrape page ---------------------------------------------------------------


def scrape_item(index: int, *, success: bool = True) -> dict[str, Any]:
    """The JSON of scraped page ``index``, every field set."""
    item: dict[str, Any] = {
        "metadata": {
            "batch_id": "b1",
            "job_id": f"b1-job-{index}",
            "url": f"http://site{index}.example/",
            "final_url": f"https://site{index}.example/home",
            "status_code": 200 if success else 503,
        },
        "success": success,
        "error": None if success else "site unavailable",
        "error_code": None if success else "FETCH_FAILED",
        "content": f"<html>page {index}</html>" if success else None,
        "extracted_links": [f"https://site{index}.example/a"] if success else [],
    }
    return item


def scrape_page(*items: dict[str, Any]) -> dict[str, Any]:
    """The JSON of a scrape page holding ``items``, every field set."""
    return {
        "processed": 8,
        "total": 10,
        "status": "running",
        "expires_at": "2026-12-05T12:00:00Z",
        "data": list(items),
    }


def test_full_scrape_page_is_structured_into_models() -> None:
    result = structure_scrape_page(scrape_page(scrape_item(0), scrape_item(1, success=False)))

    assert result == BatchScrapeStatusResponse(
        processed=8,
        total=10,
        status="running",
        expires_at="2026-12-05T12:00:00Z",
        data=(
            BatchScrapeData(
                metadata=BatchScrapeMetadata(
                    batch_id="b1",
                    job_id="b1-job-0",
                    url="http://site0.example/",
                    final_url="https://site0.example/home",
                    status_code=200,
                ),
                success=True,
                content="<html>page 0</html>",
                extracted_links=("https://site0.example/a",),
            ),
            BatchScrapeData(
                metadata=BatchScrapeMetadata(
                    batch_id="b1",
                    job_id="b1-job-1",
                    url="http://site1.example/",
                    final_url="https://site1.example/home",
                    status_code=503,
                ),
                success=False,
                error="site unavailable",
                error_code="FETCH_FAILED",
            ),
        ),
    )


def test_empty_scrape_object_gives_every_default() -> None:
    assert structure_scrape_page({}) == BatchScrapeStatusResponse()


def test_scrape_item_with_missing_fields_gives_defaults() -> None:
    result = structure_scrape_page({"data": [{}, {"metadata": {}}]})

    assert result.data == (BatchScrapeData(), BatchScrapeData(metadata=BatchScrapeMetadata()))


_SCRAPE_FIELDS = [
    *(("page", name) for name in ("processed", "total", "status", "expires_at", "data")),
    *(
        ("item", name)
        for name in ("metadata", "success", "error", "error_code", "content", "extracted_links")
    ),
    *(("metadata", name) for name in ("batch_id", "job_id", "url", "final_url", "status_code")),
]


@pytest.mark.parametrize(("level", "name"), _SCRAPE_FIELDS)
def test_null_for_any_scrape_field_gives_its_default(level: str, name: str) -> None:
    # Every field set, errors included, so that each null changes the result.
    body = scrape_page({**scrape_item(0), "error": "slow", "error_code": "SLOW"})
    full = structure_scrape_page(body)
    item, metadata = full.data[0], full.data[0].metadata
    assert metadata is not None
    if level == "page":
        body[name] = None
        page_default: Any = attrs.fields_dict(BatchScrapeStatusResponse)[name].default
        expected = attrs.evolve(full, **{name: page_default})
    elif level == "item":
        body["data"][0][name] = None
        default: Any = attrs.fields_dict(BatchScrapeData)[name].default
        expected = attrs.evolve(full, data=(attrs.evolve(item, **{name: default}),))
    else:
        body["data"][0]["metadata"][name] = None
        metadata = attrs.evolve(metadata, **{name: None})
        expected = attrs.evolve(full, data=(attrs.evolve(item, metadata=metadata),))

    assert structure_scrape_page(body) == expected
    assert expected != full


def test_unknown_scrape_keys_are_ignored_at_every_level() -> None:
    body = scrape_page(scrape_item(0))
    body["new_top_level"] = {"anything": [1, 2]}
    body["data"][0]["new_item_field"] = 1
    body["data"][0]["metadata"]["new_metadata_field"] = None

    assert structure_scrape_page(body) == structure_scrape_page(scrape_page(scrape_item(0)))


def test_extracted_links_are_a_tuple() -> None:
    links = structure_scrape_page({"data": [{"extracted_links": ["a", "b"]}]})
    extracted = links.data[0].extracted_links

    assert extracted == ("a", "b")
    assert type(extracted) is tuple


def _scrape_path_of(value: Any) -> str:
    with pytest.raises(StructureError) as caught:
        structure_scrape_page(value)
    return caught.value.path


def _metadata(**fields: Any) -> dict[str, Any]:
    return {"data": [{}, {}, {}, {"metadata": fields}]}


@pytest.mark.parametrize(
    ("body", "path"),
    [
        pytest.param(_metadata(status_code="200"), "data[3].metadata.status_code", id="code-str"),
        pytest.param(_metadata(status_code=200.0), "data[3].metadata.status_code", id="code-float"),
        pytest.param(_metadata(status_code=True), "data[3].metadata.status_code", id="code-bool"),
        pytest.param(_metadata(final_url=1), "data[3].metadata.final_url", id="final-url"),
        pytest.param(_metadata(url=[]), "data[3].metadata.url", id="url"),
        pytest.param(_metadata(job_id=5), "data[3].metadata.job_id", id="job"),
        pytest.param(_metadata(batch_id=False), "data[3].metadata.batch_id", id="batch"),
        pytest.param({"data": [{"metadata": "m"}]}, "data[0].metadata", id="metadata-str"),
        pytest.param({"data": [{"content": 1}]}, "data[0].content", id="content-int"),
        pytest.param({"data": [{"content": ["a"]}]}, "data[0].content", id="content-list"),
        pytest.param(
            {"data": [{"extracted_links": ["a", 1]}]}, "data[0].extracted_links[1]", id="link"
        ),
        pytest.param({"data": [{"extracted_links": "a"}]}, "data[0].extracted_links", id="links"),
        pytest.param({"data": [{"success": 0}]}, "data[0].success", id="success-int"),
        pytest.param({"data": [{"error": 1}]}, "data[0].error", id="error-int"),
        pytest.param({"data": [{"error_code": {}}]}, "data[0].error_code", id="code-object"),
        pytest.param({"data": [{}, 3]}, "data[1]", id="item-not-object"),
        pytest.param({"data": {}}, "data", id="data-object"),
        pytest.param({"total": "10"}, "total", id="total-str"),
        pytest.param({"processed": True}, "processed", id="processed-bool"),
        pytest.param({"status": 1}, "status", id="status-int"),
        pytest.param({"expires_at": 1.5}, "expires_at", id="expires-float"),
        pytest.param([], "", id="top-level-list"),
    ],
)
def test_wrong_scrape_type_is_rejected_with_its_path(body: Any, path: str) -> None:
    assert _scrape_path_of(body) == path


@pytest.mark.parametrize("code", [0, 100, 200, 599, 999])
def test_a_status_code_from_0_to_999_is_kept(code: int) -> None:
    result = structure_scrape_page({"data": [{"metadata": {"status_code": code}}]})

    assert result.data[0].metadata == BatchScrapeMetadata(status_code=code)


@pytest.mark.parametrize(
    ("code", "shown"),
    [
        pytest.param(-1, "-1", id="-1"),
        pytest.param(1000, "1000", id="1000"),
        pytest.param(10**5000, "an integer of about 5001 digits", id="5001-digits"),
    ],
)
def test_a_status_code_out_of_range_is_refused_naming_its_field(code: int, shown: str) -> None:
    with pytest.raises(StructureError) as caught:
        structure_scrape_page(_metadata(status_code=code))

    assert str(caught.value) == (
        f"data[3].metadata.status_code: expected a status code from 0 to 999, got {shown}"
    )


def test_a_content_of_megabytes_is_structured_without_a_copy() -> None:
    content = "<p>" + "x" * 4_000_000 + "</p>"
    body = scrape_page(*[{**scrape_item(i), "content": content} for i in range(10)])

    result = structure_scrape_page(body)

    assert all(item.content is content for item in result.data)


def test_a_wrong_field_beside_megabytes_of_content_is_named() -> None:
    content = "x" * 4_000_000
    body = scrape_page(scrape_item(0), {**scrape_item(1), "content": content, "success": "yes"})

    assert _scrape_path_of(body) == "data[1].success"


def test_the_fast_scrape_item_hook_builds_fields_in_declaration_order() -> None:
    # _scrape_item_fast calls the constructors positionally.
    assert [f.name for f in attrs.fields(BatchScrapeData)] == [
        "metadata",
        "success",
        "error",
        "error_code",
        "content",
        "extracted_links",
    ]
    assert [f.name for f in attrs.fields(BatchScrapeMetadata)] == [
        "batch_id",
        "job_id",
        "url",
        "final_url",
        "status_code",
    ]


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


# -- building items without __init__ ------------------------------------------------


_BUILT = [
    (_converter._sitemap_metadata, BatchScrapeSitemapMetadata, ("b1", "j1", "https://a.example/")),
    (
        _converter._sitemap_item,
        BatchScrapeSitemapData,
        (BatchScrapeSitemapMetadata(job_id="j1"), False, "gone", "E1", ("https://a.example/",)),
    ),
    (
        _converter._scrape_metadata,
        BatchScrapeMetadata,
        ("b1", "j1", "https://a.example/", "https://b.example/", 404),
    ),
    (
        _converter._scrape_item,
        BatchScrapeData,
        (BatchScrapeMetadata(job_id="j1"), True, None, None, "# Title", ("https://a.example/",)),
    ),
]


@pytest.mark.parametrize(
    ("build", "cls", "values"), _BUILT, ids=lambda v: getattr(v, "__name__", "")
)
def test_a_built_item_is_the_one_its_class_makes(
    build: Callable[..., Any], cls: type[Any], values: tuple[Any, ...]
) -> None:
    built, made = build(*values), cls(*values)

    assert type(built) is cls
    assert built == made
    assert hash(built) == hash(made)
    assert repr(built) == repr(made)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.success = None


@attrs.frozen
class _Checked:
    count: int = attrs.field(validator=attrs.validators.instance_of(int))


@attrs.frozen
class _Converted:
    name: str = attrs.field(converter=str)


@attrs.frozen
class _Hooked:
    name: str

    def __attrs_post_init__(self) -> None:
        pass


@attrs.frozen
class _PreHooked:
    name: str

    def __attrs_pre_init__(self) -> None:
        pass


@attrs.frozen
class _Derived:
    name: str = attrs.field(init=False, default="x")


@attrs.frozen(slots=False)
class _Unslotted:
    name: str


@pytest.mark.parametrize("cls", [_Checked, _Converted, _Hooked, _PreHooked, _Derived, _Unslotted])
def test_no_builder_for_a_class_whose_init_does_more_than_set_slots(cls: type[Any]) -> None:
    with pytest.raises(TypeError, match="does more than set its slots"):
        _converter._builder(cls)


# -- both kinds of page ---------------------------------------------------------------


@attrs.frozen
class Kind:
    """A kind of page: how it is structured, and what its items hold."""

    structure: Callable[[Any], Any]
    fast: Callable[[Any, Any], Any]
    detailed: Callable[[Any, Any], Any]
    page_class: type
    metadata: dict[str, Any]
    """A strategy for each metadata field."""
    strings: frozenset[str]
    """The item's string fields."""
    links: str
    """The item's list of strings."""


_maybe_text = st.none() | st.text(max_size=8)
_json_scalar = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
_IDS = {"batch_id": _maybe_text, "job_id": _maybe_text, "url": _maybe_text}

KINDS = [
    pytest.param(
        Kind(
            structure_page,
            _converter._STRUCTURE_PAGE,
            _converter._STRUCTURE_PAGE_DETAILED,
            BatchScrapeSitemapStatusResponse,
            _IDS,
            frozenset({"error", "error_code"}),
            "links",
        ),
        id="sitemap",
    ),
    pytest.param(
        Kind(
            structure_scrape_page,
            _converter._STRUCTURE_SCRAPE_PAGE,
            _converter._STRUCTURE_SCRAPE_PAGE_DETAILED,
            BatchScrapeStatusResponse,
            {
                **_IDS,
                "final_url": _maybe_text,
                "status_code": st.none() | st.integers(min_value=0, max_value=999),
            },
            frozenset({"error", "error_code", "content"}),
            "extracted_links",
        ),
        id="scrape",
    ),
]


def _pages(kind: Kind) -> st.SearchStrategy[dict[str, Any]]:
    metadata = st.none() | st.fixed_dictionaries({}, optional=kind.metadata)
    item = st.fixed_dictionaries(
        {},
        optional={
            "metadata": metadata,
            "success": st.none() | st.booleans(),
            **dict.fromkeys(kind.strings, _maybe_text),
            kind.links: st.none() | st.lists(st.text(max_size=8), max_size=4),
            "surprise": _json_scalar,
        },
    )
    return st.fixed_dictionaries(
        {},
        optional={
            "processed": st.none() | st.integers(min_value=0),
            "total": st.none() | st.integers(min_value=0),
            "status": _maybe_text,
            "expires_at": _maybe_text,
            "data": st.none() | st.lists(item, max_size=5),
        },
    )


@pytest.mark.parametrize("kind", KINDS)
@settings(deadline=None)
@given(data=st.data())
def test_fast_and_detailed_structuring_agree_on_valid_pages(
    kind: Kind, data: st.DataObject
) -> None:
    value = data.draw(_pages(kind))
    fast = kind.fast(value, kind.page_class)
    detailed = kind.detailed(copy.deepcopy(value), kind.page_class)
    assert fast == detailed


@pytest.mark.parametrize("kind", KINDS)
@settings(deadline=None)
@given(data=st.data())
def test_a_wrong_item_field_is_refused_by_both_paths(kind: Kind, data: st.DataObject) -> None:
    field = data.draw(st.sampled_from(sorted({"metadata", "success", kind.links, *kind.strings})))
    wrong: Any = data.draw(
        st.one_of(st.integers(), st.floats(), st.lists(st.integers(), min_size=1), st.text())
    )
    value = {**data.draw(_pages(kind)), "data": [{field: wrong}]}
    fits = (field in kind.strings and isinstance(wrong, str)) or (
        field == kind.links and isinstance(wrong, list) and all(type(x) is str for x in wrong)
    )
    if fits:
        assert kind.structure(value).data[0] is not None
        return
    with pytest.raises(StructureError) as caught:
        kind.structure(value)
    assert caught.value.path.startswith(f"data[0].{field}")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("field", ["total", "processed"])
@pytest.mark.parametrize(
    ("value", "shown"),
    [
        pytest.param(-9223372036854775809, "-9223372036854775809", id="past-64-bits"),
        pytest.param(-(10**20 - 1), "-" + "9" * 20, id="20-digits"),
        pytest.param(-(10**20), "a negative integer of about 21 digits", id="21-digits"),
        pytest.param(-(10**5000), "a negative integer of about 5001 digits", id="5001-digits"),
    ],
)
def test_a_huge_negative_count_is_refused_as_a_count(
    kind: Kind, field: str, value: int, shown: str
) -> None:
    with pytest.raises(StructureError) as caught:
        kind.structure({field: value})

    assert str(caught.value) == f"{field}: expected a count >= 0, got {shown}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "value",
    [
        pytest.param(2**63, id="2**63"),
        pytest.param(2**64, id="2**64"),
        pytest.param(10**5000, id="5001-digits"),
    ],
)
def test_a_huge_count_is_kept(kind: Kind, value: int) -> None:
    assert kind.structure({"total": value, "processed": value}).total == value
