"""The private cattrs converters that turn decoded JSON into the models.

Two kinds of page: `structure_page` reads the batch sitemap results,
`structure_scrape_page` the batch scrape results. Both are built by one
configuration from a `_Kind` that names the page's classes.

cattrs' own hooks are lenient where the API's contract is not: they would turn
``"links": "abc"`` into ``("a", "b", "c")``, ``"success": "false"`` into
``True`` and ``"total": "10"`` into ``10``. The hooks here accept exactly the
JSON types of the schema, ``null`` for any field, and ``null`` as an empty list.
Unknown keys are ignored so that a new server field never breaks this client.

Each kind of page has two converters of one configuration. The fast one
structures every page, its items through a hand-written function
(`_item_fast`, `_scrape_item_fast`), because a long read structures millions
of values. Only a page that fails it is structured again by the detailed one,
whose class hooks cattrs generates with detailed validation, so that a wrong
field is reported with its path (``data[3].links[0]``). A scrape item's
``content`` can be megabytes: it is type-checked and kept, never copied or
scanned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, Generic, TypeVar

import attrs
import cattrs
from cattrs.errors import IterableValidationError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn, override

from .models import (
    BatchScrapeData,
    BatchScrapeMetadata,
    BatchScrapeSitemapData,
    BatchScrapeSitemapMetadata,
    BatchScrapeSitemapStatusResponse,
    BatchScrapeStatusResponse,
)

__all__ = ["StructureError", "structure_page", "structure_scrape_page"]

_T = TypeVar("_T")
_Page = TypeVar("_Page")
_Model = TypeVar("_Model", bound=attrs.AttrsInstance)


class StructureError(Exception):
    """A JSON value does not fit the schema; ``path`` names it (``data[3].links[0]``)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _optional_str(value: Any, _: object) -> str | None:
    if value is None or type(value) is str:
        return value
    raise TypeError(f"expected a string, got {_type_name(value)}")


# A message prints an integer whole up to 20 digits, below this magnitude; a
# longer one is of no use there, and Python refuses to print one past 4300
# digits (`sys.get_int_max_str_digits`).
_PRINTED_BELOW: Final = 10**20


def _integer_text(value: int) -> str:
    if -_PRINTED_BELOW < value < _PRINTED_BELOW:
        return str(value)
    digits = int(value.bit_length() * 0.30103) + 1  # log10(2)
    return f"{'a negative' if value < 0 else 'an'} integer of about {digits} digits"


def _bounded_int(expected: str, low: int, high: int | None) -> Callable[[Any, object], int | None]:
    """A hook for ``null`` or a JSON integer from ``low`` to ``high`` (no limit if ``None``)."""

    def structure(value: Any, _: object) -> int | None:
        # bool is a subclass of int, but true is not a number.
        if value is None:
            return None
        if type(value) is not int:
            raise TypeError(f"expected an integer, got {_type_name(value)}")
        if value < low or (high is not None and value > high):
            raise ValueError(f"expected {expected}, got {_integer_text(value)}")
        return value

    return structure


# `processed` and `total` are counts; `status_code` is an HTTP status, three
# digits (RFC 9110) or the 0 of the API's own example.
_optional_count: Final = _bounded_int("a count >= 0", 0, None)
_STATUS_CODE_MAX: Final = 999
_optional_status_code: Final = _bounded_int(
    f"a status code from 0 to {_STATUS_CODE_MAX}", 0, _STATUS_CODE_MAX
)


def _optional_bool(value: Any, _: object) -> bool | None:
    if value is None or type(value) is bool:
        return value
    raise TypeError(f"expected a boolean, got {_type_name(value)}")


def _iterable_error(index: int, exc: Exception, item_type: type) -> IterableValidationError:
    exc.__notes__ = [
        *getattr(exc, "__notes__", []),
        IterableValidationNote(f"Structuring item @ index {index}", index, item_type),
    ]
    return IterableValidationError("invalid list item", [exc], tuple)


def _optional_list(value: Any) -> list[Any]:
    """A JSON list, with ``null`` read as an empty one."""
    if value is None:
        return []
    if type(value) is not list:
        raise TypeError(f"expected a list, got {_type_name(value)}")
    return value


def _strings(value: Any, _: object) -> tuple[str, ...]:
    strings = _optional_list(value)
    for index, string in enumerate(strings):
        if type(string) is not str:
            raise _iterable_error(
                index, TypeError(f"expected a string, got {_type_name(string)}"), str
            )
    return tuple(strings)


def _object_hook(
    cls: type[_T], converter: cattrs.Converter, **overrides: Any
) -> Callable[[Any, Any], _T]:
    generated = make_dict_structure_fn(cls, converter, **overrides)

    def structure(value: Any, _: object) -> _T:
        # The generated function would read a string or a list as an object
        # with no keys and return all defaults, silently.
        if type(value) is not dict:
            raise TypeError(f"expected an object, got {_type_name(value)}")
        return generated(value, cls)

    return structure


def _builder(cls: type[_Model]) -> Callable[..., _Model]:
    """A function that builds ``cls`` from every field's value, in order, without ``__init__``.

    A frozen attrs class's ``__init__`` sets each field through
    ``object.__setattr__``, which is most of the cost of structuring an item;
    the builder sets each slot through its descriptor, which builds an equal
    object in two thirds of the time. Only for a slotted class whose
    ``__init__`` does nothing else: no validator, converter or init hook.
    """
    fields = attrs.fields(cls)
    names = [field.name for field in fields]
    slots = set(cls.__dict__.get("__slots__", ())) - {"__weakref__"}
    if (
        slots != set(names)
        or any(f.validator or f.converter or not f.init for f in fields)
        or any(hasattr(cls, hook) for hook in ("__attrs_pre_init__", "__attrs_post_init__"))
    ):
        raise TypeError(f"{cls.__name__}.__init__ does more than set its slots")
    values = ", ".join(f"v{index}" for index in range(len(names)))
    sets = "".join(f"    set{index}(built, v{index})\n" for index in range(len(names)))
    scope: dict[str, Any] = {"new": object.__new__, "cls": cls}
    scope.update({f"set{index}": cls.__dict__[name].__set__ for index, name in enumerate(names)})
    # Generated as attrs generates ``__init__``: one plain function, no loop.
    exec(f"def build({values}):\n    built = new(cls)\n{sets}    return built\n", scope)  # noqa: S102
    build: Callable[..., _Model] = scope["build"]
    return build


_sitemap_metadata: Final = _builder(BatchScrapeSitemapMetadata)
_sitemap_item: Final = _builder(BatchScrapeSitemapData)
_scrape_metadata: Final = _builder(BatchScrapeMetadata)
_scrape_item: Final = _builder(BatchScrapeData)

_MAYBE_STR: Final = frozenset({str, type(None)})
_MAYBE_BOOL: Final = frozenset({bool, type(None)})


def _strings_fast(value: Any) -> tuple[str, ...]:
    """A list of strings, or ``null`` for none, as a tuple; `TypeError` otherwise."""
    if value is None:
        return ()
    if type(value) is not list:
        raise TypeError
    "".join(value)  # raises TypeError unless every element is a string
    return tuple(value)


def _item_fast(raw: Any) -> BatchScrapeSitemapData:
    """Structure a sitemap item that fits the schema; raise `TypeError` at the first doubt.

    The hot loop of a read, so written out by hand: a third of the generated
    function's calls. Any doubt sends the page to the detailed converter,
    which finds and names the offending field.
    """
    if type(raw) is not dict:
        raise TypeError
    get = raw.get
    metadata = get("metadata")
    if metadata is not None:
        if type(metadata) is not dict:
            raise TypeError
        batch_id, job_id, url = (
            metadata.get("batch_id"),
            metadata.get("job_id"),
            metadata.get("url"),
        )
        if (
            type(batch_id) not in _MAYBE_STR
            or type(job_id) not in _MAYBE_STR
            or type(url) not in _MAYBE_STR
        ):
            raise TypeError
        metadata = _sitemap_metadata(batch_id, job_id, url)
    success, error, error_code = get("success"), get("error"), get("error_code")
    if (
        type(success) not in _MAYBE_BOOL
        or type(error) not in _MAYBE_STR
        or type(error_code) not in _MAYBE_STR
    ):
        raise TypeError
    # In field order, which a test pins.
    return _sitemap_item(metadata, success, error, error_code, _strings_fast(get("links")))


def _scrape_item_fast(raw: Any) -> BatchScrapeData:
    """Structure a scrape item that fits the schema; raise `TypeError` at the first doubt.

    `_item_fast` for the batch scrape results, with the same design. The
    content is type-checked only: it can be megabytes.
    """
    if type(raw) is not dict:
        raise TypeError
    get = raw.get
    metadata = get("metadata")
    if metadata is not None:
        if type(metadata) is not dict:
            raise TypeError
        field = metadata.get
        batch_id, job_id, url, final_url, status_code = (
            field("batch_id"),
            field("job_id"),
            field("url"),
            field("final_url"),
            field("status_code"),
        )
        if (
            type(batch_id) not in _MAYBE_STR
            or type(job_id) not in _MAYBE_STR
            or type(url) not in _MAYBE_STR
            or type(final_url) not in _MAYBE_STR
            or not (
                status_code is None
                or (type(status_code) is int and 0 <= status_code <= _STATUS_CODE_MAX)
            )
        ):
            raise TypeError
        metadata = _scrape_metadata(batch_id, job_id, url, final_url, status_code)
    success, error, error_code, content = (
        get("success"),
        get("error"),
        get("error_code"),
        get("content"),
    )
    if (
        type(success) not in _MAYBE_BOOL
        or type(error) not in _MAYBE_STR
        or type(error_code) not in _MAYBE_STR
        or type(content) not in _MAYBE_STR
    ):
        raise TypeError
    # In field order, which a test pins.
    return _scrape_item(
        metadata, success, error, error_code, content, _strings_fast(get("extracted_links"))
    )


def _register(converter: cattrs.Converter, target: Any, hook: Callable[[Any, Any], Any]) -> None:
    # Matched by equality: generic aliases and unions are not classes, so
    # cattrs' singledispatch registration refuses them.
    converter.register_structure_hook_func(lambda type_: bool(type_ == target), hook)


@attrs.frozen
class _Kind(Generic[_Page]):
    """What differs between the kinds of page: their classes and item hooks."""

    page: type[_Page]
    item: type[Any]
    metadata: type[Any]
    item_fast: Callable[[Any], Any]
    """Structures an item that fits, or raises `TypeError`."""
    metadata_hooks: Mapping[str, Callable[[Any, Any], Any]] = attrs.field(factory=dict)
    """Hooks for the metadata fields whose type alone does not say how to check them."""


_SITEMAP: Final = _Kind(
    BatchScrapeSitemapStatusResponse,
    BatchScrapeSitemapData,
    BatchScrapeSitemapMetadata,
    _item_fast,
)
_SCRAPE: Final = _Kind(
    BatchScrapeStatusResponse,
    BatchScrapeData,
    BatchScrapeMetadata,
    _scrape_item_fast,
    # An `int | None` is a count unless said otherwise.
    {"status_code": _optional_status_code},
)


def _build(kind: _Kind[_Page], *, detailed: bool) -> Callable[[Any, Any], _Page]:
    """Configure a converter for ``kind`` and return its hook for a whole page.

    With ``detailed``, items go through cattrs' generated hooks and every
    failure carries its path. Without, items go through ``kind.item_fast``,
    and a page that fails is structured again with detail to find where.
    """
    converter = cattrs.Converter(detailed_validation=detailed, forbid_extra_keys=False)
    _register(converter, str | None, _optional_str)
    _register(converter, int | None, _optional_count)
    _register(converter, bool | None, _optional_bool)
    item_fast = kind.item_fast

    if not detailed:

        def items(value: Any, _: object) -> tuple[Any, ...]:
            return tuple([item_fast(raw) for raw in _optional_list(value)])

    else:
        _register(converter, tuple[str, ...], _strings)
        metadata = _object_hook(
            kind.metadata,
            converter,
            **{name: override(struct_hook=hook) for name, hook in kind.metadata_hooks.items()},
        )

        def optional_metadata(value: Any, _: object) -> Any:
            return None if value is None else metadata(value, kind.metadata)

        _register(converter, kind.metadata | None, optional_metadata)
        item = _object_hook(kind.item, converter)

        def items(value: Any, _: object) -> tuple[Any, ...]:
            result = []
            for index, raw in enumerate(_optional_list(value)):
                try:
                    result.append(item(raw, kind.item))
                # Whatever a hook raised, it gets the item's index in its path.
                except Exception as exc:  # noqa: BLE001
                    raise _iterable_error(index, exc, kind.item) from None
            return tuple(result)

    _register(converter, tuple[kind.item, ...], items)  # type: ignore[name-defined]
    return _object_hook(kind.page, converter)


# The fast converters structure every page; the detailed ones only run on a
# page that failed, to name the offending field.
_STRUCTURE_PAGE: Final = _build(_SITEMAP, detailed=False)
_STRUCTURE_PAGE_DETAILED: Final = _build(_SITEMAP, detailed=True)
_STRUCTURE_SCRAPE_PAGE: Final = _build(_SCRAPE, detailed=False)
_STRUCTURE_SCRAPE_PAGE_DETAILED: Final = _build(_SCRAPE, detailed=True)


def _first_problem(exc: BaseException) -> tuple[str, str]:
    """Return the path and description of the first leaf error under ``exc``."""
    messages = cattrs.transform_error(
        exc, path="$", format_exception=lambda error, _type: str(error)
    )
    first = messages[0] if messages else str(exc)
    problem, _, path = first.rpartition(" @ ")
    if not problem:
        problem, path = first, "$"
    return path.removeprefix("$").removeprefix("."), problem


def _structure(
    value: Any,
    page: type[_Page],
    fast: Callable[[Any, Any], _Page],
    detailed: Callable[[Any, Any], _Page],
) -> _Page:
    try:
        return fast(value, page)
    except Exception:  # noqa: BLE001, S110 - structured again below, to say where and why
        pass
    try:
        # The detailed converter names the field's place in the response.
        result = detailed(value, page)
    except Exception as exc:
        path, problem = _first_problem(exc)
        raise StructureError(path, problem) from exc
    # Unreachable for these hooks: both converters accept the same values.
    return result  # pragma: no cover


def structure_page(value: Any) -> BatchScrapeSitemapStatusResponse:
    """Structure one decoded JSON page of sitemap results.

    Raises `StructureError` naming the first field that does not fit.
    """
    return _structure(
        value, BatchScrapeSitemapStatusResponse, _STRUCTURE_PAGE, _STRUCTURE_PAGE_DETAILED
    )


def structure_scrape_page(value: Any) -> BatchScrapeStatusResponse:
    """Structure one decoded JSON page of scrape results.

    Raises `StructureError` naming the first field that does not fit.
    """
    return _structure(
        value, BatchScrapeStatusResponse, _STRUCTURE_SCRAPE_PAGE, _STRUCTURE_SCRAPE_PAGE_DETAILED
    )
