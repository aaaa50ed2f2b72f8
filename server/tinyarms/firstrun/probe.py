"""Does an endpoint answer? The check `tinyarms init` runs before writing a file and
`tinyarms doctor` runs for every remote tier.

First the models list (`GET BASE/models`: cheap, no tokens, and it names the models);
servers without one (404/405) get a one-token streamed call instead. Only the status and
at most the first bytes are read, and the key is sent only in its header: a probe costs a
fraction of a cent at most and never prints a secret.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from attrs import define, field

ANTHROPIC_VERSION = "2023-06-01"


@define
class Probe:
    ok: bool
    latency_ms: float
    how: str  # "models list" or "one-token call"
    detail: str = ""  # why not, in one line (never a key)
    models: list[str] = field(factory=list)


def _headers(provider: str, key: str | None) -> dict[str, str]:
    if provider == "anthropic":
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if key:
            headers["x-api-key"] = key
        return headers
    return {"Authorization": f"Bearer {key}"} if key else {}


def _why(status: int) -> str:
    if status in (401, 403):
        return f"the key was rejected (HTTP {status})"
    if status == 404:
        return "no such API there (HTTP 404): is base_url the API root, e.g. ending in /v1?"
    return f"HTTP {status}"


def probe(provider: str, base_url: str, key: str | None, model: str | None = None, timeout: float = 5.0) -> Probe:
    """Check `base_url` answers like `provider` (openai or anthropic)."""
    base = base_url.rstrip("/")
    headers = _headers(provider, key)
    started = time.perf_counter()

    def elapsed() -> float:
        return round((time.perf_counter() - started) * 1000, 1)

    try:
        with httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)), trust_env=True) as client:
            response = client.get(f"{base}/models", headers=headers)
            if response.status_code == 200:
                return Probe(True, elapsed(), "models list", models=_model_ids(response))
            if response.status_code in (401, 403) or not model:
                return Probe(False, elapsed(), "models list", _why(response.status_code))
            return _one_token(client, provider, base, headers, model, started)
    except httpx.HTTPError as exc:
        return Probe(False, elapsed(), "models list", f"{type(exc).__name__}: {exc or 'no answer'}")


def _model_ids(response: httpx.Response) -> list[str]:
    try:
        data: Any = response.json()
    except ValueError:
        return []
    items = data.get("data") if isinstance(data, dict) else None
    return [str(item["id"]) for item in items or [] if isinstance(item, dict) and "id" in item]


def _one_token(
    client: httpx.Client, provider: str, base: str, headers: dict[str, str], model: str, started: float
) -> Probe:
    path = "/messages" if provider == "anthropic" else "/chat/completions"
    body = {"model": model, "max_tokens": 1, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with client.stream("POST", base + path, json=body, headers=headers) as response:
        status = response.status_code
        if status == 200:
            next(response.iter_bytes(), b"")  # the first bytes: it is answering
    latency = round((time.perf_counter() - started) * 1000, 1)
    return Probe(status == 200, latency, "one-token call", "" if status == 200 else _why(status))
