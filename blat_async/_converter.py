"""The private cattrs converters that turn decoded JSON into the models.

cattrs' own hooks are lenient where the API's contract is not: they would turn
``"links": "abc"`` into ``("a", "b", "c")``, ``"success": "false"`` into
``True`` and ``"total": "10"`` into ``10``. The hooks here accept exactly the
JSON types of the schema, ``null`` for any field, and ``null`` as an empty list.
Unknown keys are ignored so that a new server field never breaks this client.

Two converters share one configuration. The fast one structures every page,
its items through the hand-written `_item_fast`, because a long read
structures millions of values. Only a page that fails it is structured again
by the detailed one, whose class hooks cattrs generates with detailed
validation, so that a wrong field is reported with its path
(``data[3].links[0]``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

import cattrs
from cattrs.errors import IterableValidationError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn

from .models import (
    BatchScrapeSitemapData,
    BatchScrapeSitemapMetadata,
    BatchScrapeSitemapStatusResponse,
)

__all__ = ["StructureError", "structure_page"]

_T = TypeVar("_T")


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


def _optional_count(value: Any, _: object) -> int | None:
    # The only integers of the schema are counts (`processed`, `total`). bool
    # is a subclass of int, but true is not a count.
    if value is None:
        return None
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {_type_name(value)}")
    if value < 0:
        raise ValueError(f"expected a count >= 0, got {value}")
    return value


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


def _links(value: Any, _: object) -> tuple[str, ...]:
    links = _optional_list(value)
    for index, link in enumerate(links):
        if type(link) is not str:
            raise _iterable_error(
                index, TypeError(f"expected a string, got {_type_name(link)}"), str
            )
    return tuple(links)


def _object_hook(cls: type[_T], converter: cattrs.Converter) -> Callable[[Any, Any], _T]:
    generated = make_dict_structure_fn(cls, converter)

    def structure(value: Any, _: object) -> _T:
        # The generated function would read a string or a list as an object
        # with no keys and return all defaults, silently.
        if type(value) is not dict:
            raise TypeError(f"expected an object, got {_type_name(value)}")
        return generated(value, cls)

    return structure


_MAYBE_STR: Final = frozenset({str, type(None)})
_MAYBE_BOOL: Final = frozenset({bool, type(None)})


def _item_fast(raw: Any) -> BatchScrapeSitemapData:
    """Structure an item that fits the schema; raise `TypeError` at the first doubt.

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
        metadata = BatchScrapeSitemapMetadata(batch_id, job_id, url)
    success, error, error_code = get("success"), get("error"), get("error_code")
    if (
        type(success) not in _MAYBE_BOOL
        or type(error) not in _MAYBE_STR
        or type(error_code) not in _MAYBE_STR
    ):
        raise TypeError
    links = get("links")
    if links is None:
        links = ()
    elif type(links) is list:
        "".join(links)  # raises TypeError unless every link is a string
        links = tuple(links)
    else:
        raise TypeError
    # Positional, for speed: the field order is pinned by a test.
    return BatchScrapeSitemapData(metadata, success, error, error_code, links)


def _register(converter: cattrs.Converter, target: Any, hook: Callable[[Any, Any], Any]) -> None:
    # Matched by equality: generic aliases and unions are not classes, so
    # cattrs' singledispatch registration refuses them.
    converter.register_structure_hook_func(lambda type_: bool(type_ == target), hook)


def _build(*, detailed: bool) -> Callable[[Any, Any], BatchScrapeSitemapStatusResponse]:
    """Configure a converter and return its hook for a whole page.

    With ``detailed``, items go through cattrs' generated hooks and every
    failure carries its path. Without, items go through the hand-written
    `_item_fast`, and a page that fails is structured again with detail to
    find where.
    """
    converter = cattrs.Converter(detailed_validation=detailed, forbid_extra_keys=False)
    _register(converter, str | None, _optional_str)
    _register(converter, int | None, _optional_count)
    _register(converter, bool | None, _optional_bool)

    if not detailed:

        def items(value: Any, _: object) -> tuple[BatchScrapeSitemapData, ...]:
            return tuple([_item_fast(raw) for raw in _optional_list(value)])

    else:
        _register(converter, tuple[str, ...], _links)
        metadata = _object_hook(BatchScrapeSitemapMetadata, converter)

        def optional_metadata(value: Any, _: object) -> BatchScrapeSitemapMetadata | None:
            return None if value is None else metadata(value, BatchScrapeSitemapMetadata)

        _register(converter, BatchScrapeSitemapMetadata | None, optional_metadata)
        item = _object_hook(BatchScrapeSitemapData, converter)

        def items(value: Any, _: object) -> tuple[BatchScrapeSitemapData, ...]:
            result = []
            for index, raw in enumerate(_optional_list(value)):
                try:
                    result.append(item(raw, BatchScrapeSitemapData))
                # Whatever a hook raised, it gets the item's index in its path.
                except Exception as exc:  # noqa: BLE001
                    raise _iterable_error(index, exc, BatchScrapeSitemapData) from None
            return tuple(result)

    _register(converter, tuple[BatchScrapeSitemapData, ...], items)
    return _object_hook(BatchScrapeSitemapStatusResponse, converter)


# The fast converter structures every page; the detailed one only runs on a
# page that failed, to name the offending field.
_STRUCTURE_PAGE: Final = _build(detailed=False)
_STRUCTURE_PAGE_DETAILED: Final = _build(detailed=True)


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


def structure_page(value: Any) -> BatchScrapeSitemapStatusResponse:
    """Structure one decoded JSON page; raise `StructureError` naming the bad field."""
    try:
        return _STRUCTURE_PAGE(value, BatchScrapeSitemapStatusResponse)
    except Exception:  # noqa: BLE001, S110 - structured again below, to say where and why
        pass
    try:
        # The detailed converter names the field's place in the response.
        page = _STRUCTURE_PAGE_DETAILED(value, BatchScrapeSitemapStatusResponse)
    except Exception as exc:
        path, problem = _first_problem(exc)
        raise StructureError(path, problem) from exc
    # Unreachable for these hooks: both converters accept the same values.
    return page  # pragma: no cover
