"""Anthropic Messages API over SSE. The system text and the file context are stable from
one request to the next, so each gets a `cache_control` breakpoint (prompt caching)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from tinyarms.backends import ChatRequest, Delta, Event, TierError, ToolCall, Usage
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
        "messages": wire_messages(request.messages),
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        "stream": True,
    }
    if system:
        body["system"] = system
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in request.tools
        ]
    return body


def wire_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages API form: tool calls are `tool_use` blocks of the assistant turn, and their
    results `tool_result` blocks of the next user turn (consecutive results share one)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        if role == "system":
            continue
        if role == "assistant" and m.get("tool_calls"):
            blocks: list[dict[str, Any]] = [{"type": "text", "text": m["content"]}] if m.get("content") else []
            for call in m["tool_calls"]:
                try:
                    arguments = json.loads(call["arguments"] or "{}")
                except ValueError:
                    arguments = {}
                if not isinstance(arguments, dict):
                    arguments = {}
                blocks.append({"type": "tool_use", "id": call["id"], "name": call["name"], "input": arguments})
            out.append({"role": "assistant", "content": blocks})
        elif role == "tool":
            block = {"type": "tool_result", "tool_use_id": m["tool_call_id"], "content": m["content"]}
            last = out[-1] if out else None
            if last and last["role"] == "user" and isinstance(last["content"], list):
                last["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        else:
            out.append({"role": role, "content": m["content"]})
    return out


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
        calls: dict[int, dict[str, str]] = {}  # tool_use blocks by content index
        async for event, data in sse(response, name):
            if stopped:
                continue  # read to the end so the connection goes back to the pool
            payload = parse_json(data, name)
            if not isinstance(payload, dict):
                raise TierError("malformed", f"tier '{name}' sent an event that is not an object")
            kind = payload.get("type", event)
            if kind == "message_start":
                _add_usage(usage, (payload.get("message") or {}).get("usage"), name)
            elif kind == "content_block_start":
                block = payload.get("content_block")
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    calls[int(payload.get("index") or 0)] = {
                        "id": str(block.get("id") or ""), "name": str(block.get("name") or ""), "arguments": "",
                    }  # fmt: skip
            elif kind == "content_block_delta":
                delta = payload.get("delta")
                if not isinstance(delta, dict):
                    raise TierError("malformed", f"tier '{name}' sent a content_block_delta without 'delta'")
                if delta.get("type") == "input_json_delta":
                    call = calls.get(int(payload.get("index") or 0))
                    if call is None:
                        raise TierError("malformed", f"tier '{name}' sent tool input for no tool_use block")
                    call["arguments"] += str(delta.get("partial_json") or "")
                elif delta.get("type") == "text_delta":
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
        for index in sorted(calls):
            call = calls[index]
            yield ToolCall(call["id"] or f"toolu_{index}", call["name"], call["arguments"] or "{}")
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
