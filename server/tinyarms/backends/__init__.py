"""Backends: one module per provider behind one small interface.

`stream_chat(tier, name, request, client=...)` yields `Delta`s (text, optional log-prob),
`ToolCall`s when the request offered tools and the model called one, and ends with one
`Usage`. Every failure is a `TierError` with a `kind` the tiers layer
acts on (retry, cool down, fall back) and a message that is safe to show and log: it
never holds the key, the request text or the response body.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

from attrs import define, field

from tinyarms.backends.registry import provider

if TYPE_CHECKING:
    import httpx

    from tinyarms.config import Tier

ErrorKind = Literal[
    "connect",  # refused, DNS, TLS: retried
    "rate_limit",  # 429: retried, honouring Retry-After
    "server",  # 5xx: retried
    "stream_cut",  # the connection closed mid-answer: retried (the client is told to restart)
    "timeout",  # the attempt ran past its deadline: not retried on this tier
    "http",  # another 4xx (bad key, unknown model): not retried
    "malformed",  # bad JSON, wrong schema, no choices: not retried
    "empty",  # a well-formed answer with no text
    "missing_key",  # the env var named by api_key_env is unset, or holds what no header can carry
    "unavailable",  # the local model manager or model is missing
    "local",  # the local model failed
]
RETRYABLE: frozenset[str] = frozenset({"connect", "rate_limit", "server", "stream_cut"})


class TierError(Exception):
    """One failed attempt on one tier. `str(error)` is safe to log and show."""

    def __init__(
        self, kind: ErrorKind, message: str, *, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.retry_after = retry_after
        self.status = status  # the HTTP status, when there was one (503 is backpressure, 500 is not)

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


@define
class Delta:
    text: str
    logprob: float | None = None  # the sum over the tokens in `text`, when the provider gives it
    tokens: int = 0  # how many tokens `logprob` covers


@define
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0  # prompt tokens served from the provider's prompt cache
    cache_write_tokens: int = 0
    estimated: bool = False  # the provider sent no usage; tinyarms counted (see openai.py)


@define
class ToolCall:
    """A call the model made. `arguments` is the JSON text as the model wrote it: checking it
    is the caller's job (a malformed call goes back to the model as an error)."""

    id: str
    name: str
    arguments: str


@define
class ToolSpec:
    """A tool offered to the model: its name, what it does, and a JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


Event = Delta | Usage | ToolCall


@define(kw_only=True)
class ChatRequest:
    """What every provider is asked. `context` is stable file context: providers that
    can cache a prompt prefix (Anthropic) mark it, and the system text, for caching.

    With `tools`, messages may also be an assistant turn with `tool_calls`
    ([{"id", "name", "arguments"}]) and `{"role": "tool", "tool_call_id", "name", "content"}`
    results; each provider turns them into its own wire format."""

    messages: list[dict[str, Any]]
    context: str = ""
    max_tokens: int | None = None
    temperature: float | None = None
    logprobs: bool = False
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    extra_headers: dict[str, str] = field(factory=dict)
    tools: list[ToolSpec] = field(factory=list)


def stream_chat(
    tier: Tier, name: str, request: ChatRequest, *, client: httpx.AsyncClient | None
) -> AsyncIterator[Event]:
    """The provider module for `tier.provider` (registry.py), called. Imports stay lazy: a
    local-only setup never loads httpx code paths, a cloud-only one never loads llama.cpp."""
    spec = provider(tier.provider)
    if spec.remote and client is None:
        raise ValueError(f"provider {spec.name!r} sends requests over HTTP and needs the pooled client")
    module = importlib.import_module(spec.module)
    events: AsyncIterator[Event] = module.stream_chat(tier, name, request, client=client)
    return events
