"""Anthropic Messages API over SSE. The system text and the file context are stable from
one request to the next, so each gets a `cache_control` breakpoint (prompt caching)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from tinyarms.backends import ChatRequest, Delta, Event, TierError, Usage
from tinyarms.backends.http import api_key, is_event_stream, open_stream, parse_json, sse

if TYPE_CHECKING:
    import httpx

    from tinyarms.config import Tier

DEFAULT_BASE_URL = "https://api.anthropic.com/v1"
VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024  # the Messages API requires max_tokens


def build_body(tier: Tier, request: ChatRequest) -> dict[str, Any]:
    system_text = "\n\n".join(m["content"] for m in request.messages if m.get("role") == "system")
    system: list[dict[str, Any]] = []
    if system_text:
        system.append({"type": "text", "text": system_text, "cache_control": {"type": "ephemeral"}})
    if request.context:
        system.append(
            {"type": "text", "text": f"File context:\n{request.context}", "cache_control": {"type": "ephemeral"}}
        )
    body: dict[str, Any] = {
        "model": tier.model,
        "messages": [
            {"role": m["role"], "content": m["content"]} for m in request.messages if m.get("role") != "system"
        ],
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        "stream": True,
    }
    if system:
        body["system"] = system
    if request.temperature is not None:
        body["temperature"] = request.temperature
    return body


async def stream_chat(
    tier: Tier, name: str, request: ChatRequest, *, client: httpx.AsyncClient
) -> AsyncIterator[Event]:
    key = api_key(tier, name)
    headers = {"accept": "text/event-stream", "anthropic-version": VERSION, **request.extra_headers}
    if key:
        headers["x-api-key"] = key
    url = (tier.base_url or DEFAULT_BASE_URL).rstrip("/") + "/messages"
    async with open_stream(client, name, url, headers, build_body(tier, request), request) as response:
        if not is_event_stream(response):
            raise TierError("malformed", f"tier '{name}' answered without an event stream")
        usage = Usage()
        stopped = False
        async for event, data in sse(response, name):
            if stopped:
                continue  # read to the end so the connection goes back to the pool
            payload = parse_json(data, name)
            if not isinstance(payload, dict):
                raise TierError("malformed", f"tier '{name}' sent an event that is not an object")
            kind = payload.get("type", event)
            if kind == "message_start":
                _add_usage(usage, (payload.get("message") or {}).get("usage"), name)
            elif kind == "content_block_delta":
                delta = payload.get("delta")
                if not isinstance(delta, dict):
                    raise TierError("malformed", f"tier '{name}' sent a content_block_delta without 'delta'")
                if delta.get("type") == "text_delta":
                    text = delta.get("text")
                    if not isinstance(text, str):
                        raise TierError("malformed", f"tier '{name}' sent a text_delta without text")
                    if text:
                        yield Delta(text)
            elif kind == "message_delta":
                _add_usage(usage, payload.get("usage"), name)
            elif kind == "message_stop":
                stopped = True
            elif kind == "error":
                error: dict[str, Any] = payload["error"] if isinstance(payload.get("error"), dict) else {}
                overloaded = error.get("type") in ("overloaded_error", "api_error")
                raise TierError("server" if overloaded else "http", f"tier '{name}' reported {error.get('type')}")
        if not stopped:
            raise TierError("stream_cut", f"tier '{name}' ended the stream before message_stop")
        yield usage


def _add_usage(usage: Usage, data: Any, name: str) -> None:
    if not isinstance(data, dict):
        return
    try:
        if data.get("input_tokens"):
            # Anthropic counts cached prompt tokens apart; prompt_tokens here is the whole prompt.
            usage.prompt_tokens = (
                int(data["input_tokens"])
                + int(data.get("cache_read_input_tokens") or 0)
                + int(data.get("cache_creation_input_tokens") or 0)
            )
        if data.get("output_tokens"):
            usage.completion_tokens = int(data["output_tokens"])
        usage.cache_read_tokens = max(usage.cache_read_tokens, int(data.get("cache_read_input_tokens") or 0))
        usage.cache_write_tokens = max(usage.cache_write_tokens, int(data.get("cache_creation_input_tokens") or 0))
    except (TypeError, ValueError):
        raise TierError("malformed", f"tier '{name}' sent usage that is not numbers") from None
