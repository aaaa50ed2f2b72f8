"""What the HTTP providers share: the key from the environment, status codes and
transport errors mapped to `TierError`, and a Server-Sent Events reader."""

from __future__ import annotations

import email.utils
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx

from tinyarms.backends import ChatRequest, TierError

if TYPE_CHECKING:
    from tinyarms.config import Tier


def api_key(tier: Tier, name: str) -> str | None:
    """The key from the variable the tier names; None when it names none (a local server)."""
    if not tier.api_key_env:
        return None
    key = os.environ.get(tier.api_key_env, "").strip()
    if not key:
        raise TierError(
            "missing_key",
            f"tier '{name}' needs an API key in the environment variable {tier.api_key_env} "
            f"(tiers.{name}.api_key_env), and it is not set",
        )
    if not (key.isascii() and key.isprintable()):
        # httpx would raise UnicodeEncodeError building the header, outside the tier's
        # error handling; say so without showing any of the key.
        raise TierError(
            "missing_key",
            f"tier '{name}': the API key in {tier.api_key_env} holds a character that cannot go in an HTTP "
            "header (non-ASCII or a control character); check the variable",
        )
    return key


def retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _status_error(name: str, response: httpx.Response) -> TierError:
    code = response.status_code
    # The body is not quoted: servers echo prompts (code) back in error bodies.
    if code == 429:
        after = retry_after(response.headers.get("retry-after"))
        return TierError("rate_limit", f"tier '{name}' is rate limited (HTTP 429)", retry_after=after, status=code)
    if code >= 500:
        after = retry_after(response.headers.get("retry-after"))
        return TierError("server", f"tier '{name}' had a server error (HTTP {code})", retry_after=after, status=code)
    if code in (401, 403):
        return TierError("http", f"tier '{name}' rejected the API key (HTTP {code})")
    return TierError("http", f"tier '{name}' refused the request (HTTP {code})")


@asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient, name: str, url: str, headers: dict[str, str], body: dict[str, Any], request: ChatRequest
) -> AsyncIterator[httpx.Response]:
    """POST and yield the streaming response once its status is OK; any failure is a TierError."""
    timeout = httpx.Timeout(request.read_timeout_s, connect=request.connect_timeout_s)
    try:
        async with client.stream("POST", url, headers=headers, json=body, timeout=timeout) as response:
            if response.status_code >= 400:
                await response.aclose()
                raise _status_error(name, response)
            yield response
    except httpx.ConnectError as exc:
        raise TierError("connect", f"tier '{name}' could not connect to {_origin(url)}") from _bare(exc)
    except httpx.ConnectTimeout as exc:
        raise TierError("connect", f"tier '{name}' timed out connecting to {_origin(url)}") from _bare(exc)
    except httpx.TimeoutException as exc:
        raise TierError("timeout", f"tier '{name}' sent nothing for {request.read_timeout_s:g}s") from _bare(exc)
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        raise TierError("stream_cut", f"tier '{name}' closed the connection mid-answer") from _bare(exc)
    except httpx.HTTPError as exc:
        raise TierError("connect", f"tier '{name}': {type(exc).__name__} talking to {_origin(url)}") from _bare(exc)


def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}{f':{parsed.port}' if parsed.port else ''}"


def _bare(exc: httpx.HTTPError) -> Exception:
    """The cause chained to a TierError, without the request (and so without its headers)."""
    return Exception(f"{type(exc).__name__}")


async def sse(response: httpx.Response, name: str) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs of a text/event-stream body."""
    event, data = "", list[str]()
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield event or "message", "\n".join(data)
            event, data = "", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
    if data:
        yield event or "message", "\n".join(data)


def parse_json(data: str, name: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise TierError("malformed", f"tier '{name}' sent invalid JSON") from None


def stream_chunk(data: str, name: str) -> dict[str, Any]:
    """One streamed JSON chunk of an OpenAI-style stream: an object, or an error the tier reported mid-stream."""
    chunk = parse_json(data, name)
    if not isinstance(chunk, dict):
        raise TierError("malformed", f"tier '{name}' sent a chunk that is not an object")
    if "error" in chunk:
        raise TierError("server", f"tier '{name}' reported an error mid-stream")
    return chunk


def is_event_stream(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").split(";")[0].strip() == "text/event-stream"
