"""What the API service reads from the environment: where it listens, its tokens and its body limit.

TRADING_API_HOST         address to bind (default 127.0.0.1: only this machine)
TRADING_API_PORT         port (default 8000)
TRADING_API_WRITE_TOKEN  bearer token that writes need (submitting jobs); unset: the API refuses writes
TRADING_API_READ_TOKEN   bearer token that reads need; unset: reads are open (to whoever reaches the port)
TRADING_API_MAX_BODY     largest request body in bytes (default 1 MiB)

Tokens are compared in constant time and never logged or echoed.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass, field

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_BODY = 1 << 20


class ApiConfigError(ValueError):
    """An environment variable of the API holds something it cannot use; the message names it."""


@dataclass(frozen=True)
class ApiSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    # repr=False: a settings object printed or logged never shows a token.
    write_token: str | None = field(default=None, repr=False)
    read_token: str | None = field(default=None, repr=False)
    max_body: int = DEFAULT_MAX_BODY

    @classmethod
    def from_env(cls) -> ApiSettings:
        return cls(
            host=os.environ.get("TRADING_API_HOST", DEFAULT_HOST),
            port=_int("TRADING_API_PORT", DEFAULT_PORT, 1, 65535),
            write_token=_token("TRADING_API_WRITE_TOKEN"),
            read_token=_token("TRADING_API_READ_TOKEN"),
            max_body=_int("TRADING_API_MAX_BODY", DEFAULT_MAX_BODY, 1, 1 << 30),
        )


def _int(name: str, default: int, low: int, high: int) -> int:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiConfigError(f"{name}={text!r} is not a whole number") from None
    if not low <= value <= high:
        raise ApiConfigError(f"{name}={value} is not between {low} and {high}")
    return value


def _token(name: str) -> str | None:
    text = os.environ.get(name)
    if text is None or text == "":
        return None
    if len(text) < 16:
        # The value itself is not repeated: an error message can end up in a log.
        raise ApiConfigError(f"{name} is shorter than 16 characters; use a long random token")
    return text


def token_matches(given: str | None, expected: str) -> bool:
    """Whether `given` is `expected`, in time that does not depend on where they differ."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
