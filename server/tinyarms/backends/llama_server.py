"""llama.cpp's own HTTP server (`llama-server`), the engine llama.vim and llama.vscode use.

`base_url` is the server's root (`http://127.0.0.1:8012`, as llama.vim's endpoint without
`/infill`): autocomplete calls `/infill` there (backends/fim.py), chat, edit and the agent
its OpenAI-compatible `/v1/chat/completions`, through the openai provider.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import attrs

from tinyarms.backends import ChatRequest, Event, openai

if TYPE_CHECKING:
    import httpx

    from tinyarms.config import Tier

DEFAULT_BASE_URL = "http://127.0.0.1:8012"  # llama.vim's default endpoint


def root(tier: Tier) -> str:
    """The server's root URL, without a trailing `/` (a `/v1` written by habit is dropped)."""
    url = (tier.base_url or DEFAULT_BASE_URL).rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def stream_chat(tier: Tier, name: str, request: ChatRequest, *, client: httpx.AsyncClient) -> AsyncIterator[Event]:
    return openai.stream_chat(attrs.evolve(tier, base_url=root(tier) + "/v1"), name, request, client=client)
