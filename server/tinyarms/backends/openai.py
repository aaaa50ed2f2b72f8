"""OpenAI-compatible Chat Completions over SSE: OpenAI, vLLM, llama-server, Ollama /v1,
OpenRouter, LM Studio. `base_url` is the API root (…/v1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from tinyarms.backends import ChatRequest, Delta, Event, TierError, ToolCall, Usage
from tinyarms.backends.http import api_key, is_event_stream, open_stream, parse_json, sse, stream_chunk

if TYPE_CHECKING:
    import httpx

    from tinyarms.config import Tier

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def build_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """The file context goes in as a system message after the caller's system text, so the
    stable part of the prompt stays a prefix (which OpenAI caches automatically)."""
    messages = [_wire_message(m) for m in request.messages]
    if request.context:
        at = next((i for i, m in enumerate(messages) if m.get("role") != "system"), len(messages))
        messages.insert(at, {"role": "system", "content": f"File context:\n{request.context}"})
    return messages


def _wire_message(message: dict[str, Any]) -> dict[str, Any]:
    """tinyarms' tool-call turns in Chat Completions form."""
    calls = message.get("tool_calls")
    if message.get("role") == "assistant" and calls:
        return {
            "role": "assistant",
            "content": message.get("content") or None,
            "tool_calls": [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in calls
            ],
        }
    if message.get("role") == "tool":
        return {"role": "tool", "tool_call_id": message["tool_call_id"], "content": message["content"]}
    return dict(message)


def build_body(tier: Tier, request: ChatRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": tier.model,
        "messages": build_messages(request),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.logprobs:
        body["logprobs"] = True
    if request.tools:
        body["tools"] = [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in request.tools
        ]
    return body


async def stream_chat(
    tier: Tier, name: str, request: ChatRequest, *, client: httpx.AsyncClient
) -> AsyncIterator[Event]:
    key = api_key(tier, name)
    headers = {"accept": "text/event-stream", **request.extra_headers}
    if key:
        headers["authorization"] = f"Bearer {key}"
    url = (tier.base_url or DEFAULT_BASE_URL).rstrip("/") + "/chat/completions"
    body = build_body(tier, request)
    async with open_stream(client, name, url, headers, body, request) as response:
        if not is_event_stream(response):
            # Some servers ignore `stream`; a whole JSON completion is fine too.
            for event in _whole(parse_json((await response.aread()).decode("utf-8", "replace"), name), name):
                yield event
            return
        usage: Usage | None = None
        finished = False
        deltas = 0
        done = False
        calls: dict[int, dict[str, str]] = {}  # tool calls stream in pieces, by index
        async for _, data in sse(response, name):
            # Read on to the end of the body after [DONE]: a fully read response returns its
            # connection to the pool (keep-alive); breaking out would close it.
            if done:
                continue
            if data.strip() == "[DONE]":
                finished = done = True
                continue
            chunk = stream_chunk(data, name)
            if isinstance(chunk.get("usage"), dict):
                usage = _usage(chunk["usage"], name)
            choices = chunk.get("choices")
            if not isinstance(choices, list):
                raise TierError("malformed", f"tier '{name}' sent a chunk without 'choices'")
            for choice in choices[:1]:
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if not isinstance(delta, dict):
                    raise TierError("malformed", f"tier '{name}' sent a choice without 'delta'")
                text = delta.get("content")
                if text is not None and not isinstance(text, str):
                    raise TierError("malformed", f"tier '{name}' sent non-text content")
                if text:
                    deltas += 1
                    yield Delta(text, *_logprob(choice))
                _add_call_pieces(calls, delta.get("tool_calls"), name)
                if choice.get("finish_reason"):
                    finished = True
        if not finished:
            raise TierError("stream_cut", f"tier '{name}' ended the stream before the answer was finished")
        for index in sorted(calls):
            call = calls[index]
            deltas += 1
            yield ToolCall(call["id"] or f"call_{index}", call["name"], call["arguments"])
        yield usage or _estimate(body["messages"], deltas)


def _add_call_pieces(calls: dict[int, dict[str, str]], pieces: Any, name: str) -> None:
    """Chat Completions streams a tool call as an id and name, then argument fragments."""
    if pieces is None:
        return
    if not isinstance(pieces, list):
        raise TierError("malformed", f"tier '{name}' sent tool_calls that are not a list")
    for piece in pieces:
        if not isinstance(piece, dict):
            raise TierError("malformed", f"tier '{name}' sent a tool call that is not an object")
        index = piece.get("index")
        index = index if isinstance(index, int) else len(calls)
        call = calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
        function: dict[str, Any] = piece["function"] if isinstance(piece.get("function"), dict) else {}
        call["id"] = call["id"] or str(piece.get("id") or "")
        call["name"] += str(function.get("name") or "")
        call["arguments"] += str(function.get("arguments") or "")


def _logprob(choice: dict[str, Any]) -> tuple[float | None, int]:
    content = (choice.get("logprobs") or {}).get("content") if isinstance(choice.get("logprobs"), dict) else None
    if not isinstance(content, list) or not content:
        return None, 0
    values = [t.get("logprob") for t in content if isinstance(t, dict)]
    numbers = [float(v) for v in values if isinstance(v, int | float)]
    return (sum(numbers), len(numbers)) if numbers else (None, 0)


def _estimate(messages: list[dict[str, Any]], deltas: int) -> Usage:
    """Some servers (llama-cpp-python's among them) ignore `stream_options.include_usage`.
    Their stream sends one token per chunk, and prompts run about 4 characters a token."""
    chars = sum(len(str(m.get("content") or "")) + len(str(m.get("tool_calls") or "")) for m in messages)
    return Usage(prompt_tokens=-(-chars // 4), completion_tokens=deltas, estimated=True)


def _usage(data: dict[str, Any], name: str) -> Usage:
    try:
        details = data.get("prompt_tokens_details") or {}
        return Usage(
            prompt_tokens=int(data.get("prompt_tokens") or 0),
            completion_tokens=int(data.get("completion_tokens") or 0),
            cache_read_tokens=int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
        )
    except (TypeError, ValueError):
        raise TierError("malformed", f"tier '{name}' sent usage that is not numbers") from None


def _whole(body: Any, name: str) -> list[Event]:
    try:
        message = body["choices"][0]["message"]
        text = message.get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        raise TierError("malformed", f"tier '{name}' sent a completion without choices[0].message") from None
    if not isinstance(text, str):
        raise TierError("malformed", f"tier '{name}' sent non-text content")
    usage = _usage(body["usage"], name) if isinstance(body.get("usage"), dict) else Usage()
    calls: dict[int, dict[str, str]] = {}
    _add_call_pieces(calls, message.get("tool_calls"), name)
    events: list[Event] = [Delta(text)] if text else []
    events += [ToolCall(c["id"] or f"call_{i}", c["name"], c["arguments"]) for i, c in sorted(calls.items())]
    return [*events, usage]
