"""Checking the client's options and arguments before any request: no I/O."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Final

import aiohttp
import attrs

from . import _defaults
from ._retry import RetryPolicy
from .errors import BlatError

__all__ = [
    "api_key",
    "check_int",
    "check_positive",
    "env_flag",
    "extra_headers",
    "retry_policy",
    "timeout",
]


def check_int(name: str, value: object, minimum: int = 0) -> int:
    """Return ``value``, an int of at least ``minimum``, or raise naming the argument."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_positive(name: str, value: object) -> float:
    """Return ``value``, a finite number above 0, or raise naming the argument."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    # `not 0 < value < inf` also refuses NaN, which compares false to everything.
    if not 0 < value < math.inf:
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


_TIMEOUT_FIELDS: Final = ("total", "connect", "sock_read", "sock_connect")


def timeout(value: object) -> aiohttp.ClientTimeout:
    """A timeout in seconds, or an `aiohttp.ClientTimeout` whose every limit is possible.

    ``None`` in a `ClientTimeout` field means no limit, as aiohttp says; an
    infinite, NaN, zero or negative one is refused here, before any request.
    """
    if not isinstance(value, aiohttp.ClientTimeout):
        return aiohttp.ClientTimeout(total=check_positive("timeout", value))
    for field in _TIMEOUT_FIELDS:
        limit = getattr(value, field)
        if limit is not None:
            check_positive(f"timeout.{field}", limit)
    return value


def retry_policy(value: object, max_retries: object = None) -> RetryPolicy:
    """Return ``value`` if it is a `RetryPolicy`, with ``max_retries`` in it when given."""
    if not isinstance(value, RetryPolicy):
        raise TypeError(f"retry must be a RetryPolicy, got {type(value).__name__}")
    if max_retries is None:
        return value
    return attrs.evolve(value, max_retries=check_int("max_retries", max_retries))


def api_key(value: object) -> str:
    """The key given, else ``BLAT_API_KEY``'s; never echoed in an error."""
    key = value if value is not None else os.environ.get(_defaults.API_KEY_ENV)
    if not key:
        raise BlatError(f"no API key: pass api_key= to BlatClient or set {_defaults.API_KEY_ENV}")
    if not isinstance(key, str):
        raise TypeError(f"api_key must be a str, got {type(key).__name__}")
    if not key.isprintable() or not key.isascii() or key != key.strip():
        # The key is not echoed: it is a secret even when malformed.
        raise ValueError("api_key holds characters that cannot be sent in an HTTP header")
    return key


def extra_headers(headers: object) -> dict[str, str]:
    """Headers a caller adds to every request, checked: never the client's own."""
    if not isinstance(headers, Mapping):
        raise TypeError(f"default_headers must be a mapping, got {type(headers).__name__}")
    checked = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("default_headers must map str to str")
        if name.strip().lower() in {"authorization", "accept"}:
            raise ValueError(f"default_headers cannot set {name}: the client sets it")
        if not (name + value).isprintable():
            # CR or LF would let a value start a header of its own.
            raise ValueError(f"default_headers[{name!r}] holds characters a header cannot")
        checked[name] = value
    return checked


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` says yes."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
