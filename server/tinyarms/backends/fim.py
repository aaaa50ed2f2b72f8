"""Fill-in-the-middle over HTTP: llama-server's `/infill`, or `/v1/completions` with a FIM
prompt (vLLM, Ollama, llama-server, llama-cpp-python serving a coder model).

Both stream (SSE), so that closing the response is how a superseded keystroke's request is
cancelled: llama-server notices the closed connection at its next token and stops the task
(`srv stop: cancel task` in its log; its slot goes idle).

`/infill` is called the way llama.vim calls it (autoload/llama.vim, `llama#fim`): the text
before the cursor's line as `input_prefix`, the cursor's line up to the cursor as `prompt`,
the rest as `input_suffix`, other files as `input_extra` chunks `{filename, text}`,
`cache_prompt: true` (the server keeps the KV cache of the previous prompt), `n_indent` the
indentation of the cursor's line (0 on a blank line), `t_max_predict_ms`, llama.vim's
`top_k: 40, top_p: 0.90` and `samplers: ["top_k", "top_p", "infill"]`. Two differences, on
purpose: `stream: true` (above), and `temperature` from the tier (0, greedy, by default, so
that the same keystroke gets the same answer; llama.vim samples at the server's default).

Every failure is a `TierError` (backends/__init__.py), whose message never quotes the code.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import TYPE_CHECKING, Any

from attrs import define, field

from tinyarms.backends import ChatRequest, TierError
from tinyarms.backends.http import api_key, open_stream, sse, stream_chunk
from tinyarms.backends.llama_server import root

if TYPE_CHECKING:
    import httpx

    from tinyarms.config import Tier

# llama.vim's sampling for /infill.
TOP_K = 40
TOP_P = 0.90
SAMPLERS = ("top_k", "top_p", "infill")
MAX_STOPS = 4  # OpenAI's /v1/completions takes at most 4 stop strings
TIMINGS = ("timings/prompt_n", "timings/prompt_ms", "timings/predicted_n", "timings/predicted_ms")


@define(kw_only=True)
class FimQuery:
    """One completion at the cursor, in the parts both endpoints need."""

    before: str  # whole lines before the cursor's line
    line_prefix: str  # the cursor's line up to the cursor
    after: str  # the rest of the line and the lines below
    extra: Sequence[tuple[str, str]] = ()  # other files' chunks: (label, text)
    prompt_text: str = ""  # /v1/completions: the whole prompt, FIM tokens included (templates.py)
    max_tokens: int = 24
    stop: list[str] = field(factory=list)
    n_indent: int = 0
    t_max_predict_ms: int = 250
    temperature: float = 0.0


@define
class Finished:
    """The end of an answer: why it stopped (the engine's reasons: end, newline, stop, length)."""

    reason: str
    stats: dict[str, Any] = field(factory=dict)


def infill_body(query: FimQuery) -> dict[str, Any]:
    return {
        "input_prefix": query.before,
        "input_suffix": query.after,
        "input_extra": [{"filename": label, "text": text} for label, text in query.extra],
        "prompt": query.line_prefix,
        "n_predict": query.max_tokens,
        "stop": query.stop,
        "n_indent": query.n_indent,
        "top_k": TOP_K,
        "top_p": TOP_P,
        "samplers": list(SAMPLERS),
        "temperature": query.temperature,
        "stream": True,
        "cache_prompt": True,
        "t_max_predict_ms": query.t_max_predict_ms,
        # The last chunk would also repeat the whole prompt and the settings; these are read.
        "response_fields": ["content", "stop", "stop_type", "stopping_word", "tokens_cached", *TIMINGS],
    }


def completions_body(tier: Tier, query: FimQuery) -> dict[str, Any]:
    return {
        "model": tier.model,
        "prompt": query.prompt_text,
        "max_tokens": query.max_tokens,
        "temperature": query.temperature,
        "stop": query.stop[:MAX_STOPS],
        "stream": True,
    }


def _headers(tier: Tier, name: str) -> dict[str, str]:
    headers = {"accept": "text/event-stream"}
    if key := api_key(tier, name):
        headers["authorization"] = f"Bearer {key}"
    return headers


async def stream(
    tier: Tier,
    name: str,
    kind: str,
    query: FimQuery,
    *,
    client: httpx.AsyncClient,
    connect_timeout_s: float,
    read_timeout_s: float,
) -> AsyncGenerator[str | Finished, None]:
    """Text pieces, then one `Finished`. `kind` is the provider's `fim` (registry.py)."""
    timeouts = ChatRequest(messages=[], connect_timeout_s=connect_timeout_s, read_timeout_s=read_timeout_s)
    if kind == "infill":
        url, body = root(tier) + "/infill", infill_body(query)
    elif kind == "completions":
        url, body = (tier.base_url or "").rstrip("/") + "/completions", completions_body(tier, query)
    else:
        raise TierError("http", f"tier '{name}' cannot answer autocomplete (provider {tier.provider})")
    async with open_stream(client, name, url, _headers(tier, name), body, timeouts) as response:
        finished: Finished | None = None
        async for _, data in sse(response, name):
            # Read on to the end of the body: a fully read response keeps its connection
            # (keep-alive) for the next keystroke; breaking out would close it.
            if finished is not None or data.strip() == "[DONE]":
                continue
            chunk = stream_chunk(data, name)
            text, finished = _infill_chunk(chunk, name) if kind == "infill" else _completions_chunk(chunk, name)
            if text:
                yield text
    if finished is None:
        raise TierError("stream_cut", f"tier '{name}' ended the stream before the answer was finished")
    yield finished


def _infill_chunk(chunk: dict[str, Any], name: str) -> tuple[str, Finished | None]:
    text = chunk.get("content", "")
    if not isinstance(text, str):
        raise TierError("malformed", f"tier '{name}' sent non-text content")
    if not chunk.get("stop"):
        return text, None
    stop_type = chunk.get("stop_type")
    word = chunk.get("stopping_word") or ""
    reason = {"eos": "end", "limit": "length"}.get(str(stop_type), "newline" if "\n" in word else "stop")
    # `response_fields` flattens "timings/prompt_n"; a server that ignores it nests them.
    nested: dict[str, Any] = chunk["timings"] if isinstance(chunk.get("timings"), dict) else {}
    stats: dict[str, Any] = {}
    for path in TIMINGS:
        key = path.split("/")[1]
        if (found := chunk.get(path, nested.get(key))) is not None:
            stats[key] = found
    if isinstance(chunk.get("tokens_cached"), int):
        stats["tokens_cached"] = chunk["tokens_cached"]
    return text, Finished(reason, stats)


def _completions_chunk(chunk: dict[str, Any], name: str) -> tuple[str, Finished | None]:
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise TierError("malformed", f"tier '{name}' sent a chunk without 'choices'")
    text = choices[0].get("text") or ""
    if not isinstance(text, str):
        raise TierError("malformed", f"tier '{name}' sent non-text content")
    reason = choices[0].get("finish_reason")
    if not reason:
        return text, None
    return text, Finished("length" if reason == "length" else "stop")
