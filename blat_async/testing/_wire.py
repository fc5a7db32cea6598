"""What a `FakeBlatServer` reads from a request and how it writes an answer.

The bytes on the wire: the request's path, ``from`` and key; the API's JSON
bodies and errors; and the answers faults change, replace or cut short.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import parse_qs, unquote

from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy

from ._batch import BatchKind
from ._faults import (
    DropConnection,
    Fault,
    HtmlError,
    MalformedJson,
    StatusError,
    TruncatedJson,
    WrongType,
)

_JSON: Final = "application/json"
_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)

# The messages of the statuses the OpenAPI contract documents.
_ERROR_MESSAGES: Final[Mapping[int, str]] = {
    400: "Invalid batch ID",
    401: "Unauthorized - Make sure you have a valid API key",
    403: "Forbidden - You do not have access to this batch",
    404: "Batch not found",
    500: "Internal server error",
}

_NGINX_PAGE: Final = """<html>
<head><title>{status} {phrase}</title></head>
<body>
<center><h1>{status} {phrase}</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""


@dataclass(frozen=True, slots=True)
class Incoming:
    """What the server reads from a request before answering it."""

    method: str
    path: str
    query: str
    kind: BatchKind | None
    """Whose endpoint the path is, or ``None`` if neither's (``segment`` is empty then)."""
    segment: str
    """The batch id as sent, still percent-encoded; empty if the path is no endpoint's."""
    batch_id: str | None
    """The batch id decoded once, or ``None`` if absent or not UTF-8."""
    from_: int | None
    from_error: str | None
    authorized: bool


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer before it is sent, so that faults can cut it short."""

    status: int
    body: bytes
    content_type: str = _JSON
    headers: Mapping[str, str] = field(default_factory=dict)


def read_request(
    request: web.Request, roots: Mapping[BatchKind, str], expected_authorization: bytes
) -> Incoming:
    """Read ``request``: ``roots`` are each endpoint's path up to the batch id, with its slashes."""
    path, _, query = request.raw_path.partition("?")
    kind: BatchKind | None = None
    segment = ""
    for endpoint, root in roots.items():
        if path.startswith(root):
            kind, segment = endpoint, path[len(root) :]
            break
    if not segment or "/" in segment:
        kind, segment = None, ""
    from_values = parse_qs(query, keep_blank_values=True).get("from")
    from_, from_error = _parse_from(from_values[0] if from_values else None)
    authorization = request.headers.get(hdrs.AUTHORIZATION, "").encode(errors="replace")
    return Incoming(
        method=request.method,
        path=path,
        query=query,
        kind=kind,
        segment=segment,
        batch_id=_decode_segment(segment) if segment else None,
        from_=from_,
        from_error=from_error,
        authorized=hmac.compare_digest(authorization, expected_authorization),
    )


def _parse_from(value: str | None) -> tuple[int | None, str | None]:
    """Return ``(offset, None)``, or ``(None, why it is malformed)``."""
    if value is None:
        return None, None
    if not _INTEGER.fullmatch(value):
        return None, f"from must be an integer, got {value!r}"
    offset = int(value)
    if offset < 0:
        return None, f"from must not be negative, got {offset}"
    return offset, None


def _decode_segment(segment: str) -> str | None:
    """Percent-decode a path segment once, or return ``None`` if it is not UTF-8."""
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return None


def without_authorization(headers: Mapping[str, str]) -> CIMultiDictProxy[str]:
    kept = CIMultiDict(
        (name, value) for name, value in headers.items() if name.lower() != "authorization"
    )
    return CIMultiDictProxy(kept)


def encode(document: object) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def error_reply(
    status: int,
    *,
    code: str | None = None,
    message: str | None = None,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """Build the API's JSON error ``{"code", "message", "details"}`` for ``status``."""
    phrase = HTTPStatus(status).phrase
    body = {
        "code": code or phrase.upper().replace(" ", "_").replace("-", "_"),
        "message": message or _ERROR_MESSAGES.get(status, phrase),
        "details": dict(details or {}),
    }
    return Reply(status, encode(body), headers=headers or {})


def replacement(fault: Fault | None) -> Reply | None:
    """Return the answer a fault puts in place of the normal one, if it does."""
    match fault:
        case StatusError(status_code=status, retry_after=retry_after, code=code, message=message):
            if retry_after is None:
                return error_reply(status, code=code, message=message)
            return error_reply(
                status,
                code=code,
                message=message,
                details={"retry_after": retry_after},
                headers={hdrs.RETRY_AFTER: _format_seconds(retry_after)},
            )
        case HtmlError(status_code=status):
            page = _NGINX_PAGE.format(status=status, phrase=HTTPStatus(status).phrase)
            return Reply(status, page.encode(), "text/html", {hdrs.SERVER: "nginx"})
        case MalformedJson():
            return Reply(200, b'{"status": "completed", "total": 3, "data": [}')
    return None


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if seconds == int(seconds) else str(seconds)


def with_wrong_type(page: dict[str, Any], fault: WrongType, links_field: str) -> dict[str, Any]:
    """Set ``fault.field`` of ``page``, or of every item of it, to ``fault.value``.

    ``links_field`` is the items' key the fault replaces when its ``field`` is ``None``.
    """
    field = links_field if fault.field is None else fault.field
    if field in page:
        page[field] = fault.value
        return page
    *parents, name = field.split(".")
    for item in page["data"]:
        target = item
        for parent in parents:
            target = target.setdefault(parent, {})
        target[name] = fault.value
    return page


async def send(request: web.Request, reply: Reply, fault: Fault | None) -> web.StreamResponse:
    """Send ``reply``, or half of it when ``fault`` cuts it short."""
    if not isinstance(fault, TruncatedJson | DropConnection):
        return web.Response(
            status=reply.status,
            body=reply.body,
            content_type=reply.content_type,
            headers=reply.headers,
        )
    response = web.StreamResponse(status=reply.status, headers=reply.headers)
    response.content_type = reply.content_type
    if isinstance(fault, TruncatedJson):
        response.content_length = len(reply.body)
    else:
        response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(reply.body[: len(reply.body) // 2])
    close_connection(request)
    return response


def close_connection(request: web.Request) -> None:
    # aiohttp ignores the connection error of finishing a response on a closed
    # transport, so the handler can simply return afterwards.
    if request.transport is not None:
        request.transport.close()
