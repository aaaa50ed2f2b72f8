"""The providers tinyarms can call, as data: name -> module, where it runs, what it can do.

Adding a provider is a module in `backends/` with `stream_chat(tier, name, request, *,
client)` and one line in `PROVIDERS`; nothing else names providers. Callers ask the
registry (`provider(tier.provider).remote`, `.logprobs`, ...) instead of comparing names.
This module imports nothing from tinyarms, so `config/` can check provider names against
it without loading a backend.
"""

from __future__ import annotations

from attrs import define


@define(frozen=True, kw_only=True)
class Provider:
    name: str  # what `tiers.NAME.provider` says
    module: str  # imported on the first call, so a local-only setup never loads httpx code paths
    remote: bool  # sends code over the network: workspace trust, budgets and pooled HTTP clients apply
    runs_gguf: bool = False  # runs a local GGUF in-process: autocomplete FIM, the router's LLM stage
    logprobs: bool = False  # streams token log-probs (the cascade's `min_mean_logprob` check)
    tool_calls: bool = False  # function / tool calling (the agent)
    price_table: str | None = None  # the genai-prices provider id of the provider's own endpoint
    price_host: str | None = None  # ... used only when `base_url` is unset or on this host
    # How it answers autocomplete (fill-in-the-middle): "local" (in-process GGUF), "infill"
    # (llama-server's /infill), "completions" (/v1/completions with a FIM template); "" cannot.
    fim: str = ""

    def prices_at(self, base_url: str | None) -> str | None:
        """The genai-prices provider id for a tier at `base_url` (None: look the model up anywhere)."""
        if self.price_table is None or self.price_host is None:
            return self.price_table
        # An OpenAI-compatible server elsewhere (vLLM, OpenRouter, ...) serves other vendors' models.
        return self.price_table if base_url is None or self.price_host in base_url.lower() else None


PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider(name="llama-cpp", module="tinyarms.backends.llama_cpp", remote=False, runs_gguf=True, fim="local"),
        Provider(name="openai", module="tinyarms.backends.openai", remote=True, logprobs=True, tool_calls=True,
                 price_table="openai", price_host="api.openai.com", fim="completions"),
        # llama.cpp's own server; `base_url` is its root (http://host:8012): /infill, and /v1 for chat.
        Provider(name="llama-server", module="tinyarms.backends.llama_server", remote=True, logprobs=True,
                 tool_calls=True, fim="infill"),
        Provider(name="anthropic", module="tinyarms.backends.anthropic", remote=True, tool_calls=True,
                 price_table="anthropic"),
    )  # fmt: skip
}
LOCAL_DEFAULT = "llama-cpp"  # a tier that names no provider


def provider(name: str) -> Provider:
    """The registry entry (the config validated the name; an unknown one is a KeyError naming the choices)."""
    try:
        return PROVIDERS[name]
    except KeyError:
        raise KeyError(f"unknown provider {name!r}; expected one of {', '.join(PROVIDERS)}") from None
