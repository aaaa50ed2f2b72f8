"""The autocomplete engine for a config, started: the one way the LSP feature,
`tinyarms complete` and `tinyarms demo` get one.

The autocomplete role needs a tier whose provider runs a GGUF in-process (`runs_gguf` in
backends/registry.py: llama-cpp): its `tier`, or, when `tier` is a remote server
(llama-server /infill, openai /v1/completions; autocomplete/remote.py), the first such
tier in `escalate_to`, which answers whenever the remote is slow or down (a keystroke
cannot wait for a network round trip: the budget is `max_latency_ms`, 100 ms). Starting
loads the model in its crash-isolated child (local_model/) and detects its FIM template
from the GGUF.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tinyarms.autocomplete import remote
from tinyarms.autocomplete.engine import CompletionEngine, detect_template
from tinyarms.autocomplete.remote import RemoteFim
from tinyarms.backends.registry import provider
from tinyarms.local_model import LocalModel, get_model

if TYPE_CHECKING:
    from tinyarms.config import Config, Tier

DEFAULT = object()  # "the role's max_latency_ms"


class NotLocal(Exception):
    """The autocomplete role's tier cannot run autocomplete; the message says why."""


def local_tier(config: Config) -> Tier:
    """The autocomplete role's local GGUF tier: its tier, else the first in `escalate_to`."""
    role = config.roles.autocomplete
    for name in (role.tier, *role.escalate_to):
        tier = config.tiers.get(name)
        if tier is not None and provider(tier.provider).runs_gguf:
            return tier
    raise NotLocal(
        f"neither tier '{role.tier}' nor a tier in roles.autocomplete.escalate_to is a local GGUF tier "
        "(provider llama-cpp); a remote autocomplete tier needs one to fall back to"
    )


def remote_for(config: Config) -> RemoteFim | None:
    """The role's remote tier, asked before the local one; None when `tier` is local."""
    try:
        return remote.for_config(config)
    except ValueError as exc:
        raise NotLocal(str(exc)) from None


def model_for(config: Config) -> LocalModel:
    """The (shared, not yet started) model process of the autocomplete tier."""
    tier = local_tier(config)
    return get_model(tier.model, purpose="autocomplete", n_ctx=tier.n_ctx, n_threads=tier.n_threads)


async def start_engine(
    config: Config,
    *,
    max_latency_ms: int | None | object = DEFAULT,
    on_model_change: Callable[[LocalModel], None] | None = None,
) -> CompletionEngine:
    """Start the model and build the engine. Raises NotLocal, LocalModelError, UnknownTemplate.
    `max_latency_ms=None` waits for the whole line (the CLI, evaluations)."""
    role = config.roles.autocomplete
    tier = local_tier(config)
    model = model_for(config)
    if on_model_change is not None:
        model.listeners.append(on_model_change)
    await model.start()
    template = await detect_template(model, tier.template)
    budget = role.max_latency_ms if max_latency_ms is DEFAULT else max_latency_ms
    assert budget is None or isinstance(budget, int)
    engine = CompletionEngine(model, template, model_name=tier.model, max_latency_ms=budget, multiline=role.multiline)
    engine.remote = remote_for(config)
    return engine
