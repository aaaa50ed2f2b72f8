"""The typed shape of a tinyarms config.

Each class is one TOML table. Field names are the TOML keys. Layers are merged as
plain dicts first (see ``layers.py``); only the merged result is structured into
these classes, so a layer can set a single key without repeating the rest.
"""

from __future__ import annotations

from typing import Literal

import attrs
from attrs import define, field

ROLE_NAMES = ("autocomplete", "chat", "edit", "agent")
Provider = Literal["llama-cpp", "openai", "anthropic"]
PROVIDERS: tuple[str, ...] = ("llama-cpp", "openai", "anthropic")


@define(kw_only=True)
class Price:
    """USD per million tokens; overrides the price table for one tier."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0


@define(kw_only=True)
class Tier:
    """Where a model runs: in-process llama.cpp or an HTTP provider."""

    provider: Provider
    model: str
    # HTTP providers. The key itself never appears in config, only the name of
    # the environment variable that holds it.
    base_url: str | None = None
    api_key_env: str | None = None
    timeout_s: float = 60.0
    max_retries: int = 2
    max_tokens: int | None = None
    temperature: float | None = None
    price: Price | None = None
    # llama-cpp only.
    template: str | None = None  # FIM template name; detected from the GGUF when unset
    n_ctx: int | None = None
    n_threads: int | None = None

    @property
    def is_remote(self) -> bool:
        return self.provider != "llama-cpp"


@define(kw_only=True)
class Cascade:
    """When an answer is good enough to stop, or should go up the `escalate_to` chain."""

    max_steps: int = 2  # quality escalations per request (tier failures always fall back)
    min_mean_logprob: float | None = None  # escalate when the mean token log-prob is below this
    self_check: bool = False  # ask the same tier a short yes/no "does this answer it?"


@define(kw_only=True)
class Role:
    """A task role runs on one tier and may escalate along a chain of others."""

    tier: str
    escalate_to: list[str] = field(factory=list)
    enabled: bool = True
    max_tokens: int | None = None
    temperature: float | None = None
    cascade: Cascade = field(factory=lambda: Cascade())
    # Tokens of context a chat/edit request may carry: rules, the code, @files and earlier turns
    # (requests/context.py). A llama-cpp tier's n_ctx caps it further.
    context_tokens: int = 4000


Multiline = Literal["auto", "always", "never"]


@define(kw_only=True)
class AutocompleteRole(Role):
    """The keystroke path's settings (README "Autocomplete"; defaults measured on 2 cores)."""

    max_latency_ms: int = 100
    multiline: Multiline = "auto"  # auto: a block on an empty line after a block opener, else one line
    context: bool = True  # chunks of other files and the current file's imported definitions
    context_tokens: int = 512  # cap on that context block (estimated at 3 characters a token)
    context_chunks: int = 16  # ring buffer of chunks from recently opened, edited and saved files
    context_chunk_lines: int = 32
    prefill: bool = True  # evaluate the prompt ahead (didOpen, context change) at low priority
    feedback: bool = True  # record shown / accepted / partial / dismissed in the state dir
    feedback_text: bool = False  # also record the suggestion's text (off: lengths only)


@define(kw_only=True)
class Roles:
    autocomplete: AutocompleteRole = field(factory=lambda: AutocompleteRole(tier="local"))
    chat: Role = field(factory=lambda: Role(tier="local"))
    edit: Role = field(factory=lambda: Role(tier="local"))
    agent: Role = field(factory=lambda: Role(tier="local"))

    def get(self, name: str) -> Role:
        role: Role = getattr(self, name)
        return role


# -- router (issue 4) -------------------------------------------------------------------
ROUTE_NAMES = ("explain", "generate", "refactor", "fix", "test", "document", "review", "plan")


@define(kw_only=True)
class Route:
    """One route of the semantic router: example requests, and where they go."""

    role: str = "chat"  # chat / edit / agent
    tier: str | None = None  # overrides the role's tier for this route
    threshold: float = 0.5  # the classifier's probability needed to take this route
    utterances: list[str] = field(factory=list)
    more_utterances: list[str] = field(factory=list)  # added to `utterances` (lists replace across layers)
    enabled: bool = True


@define(kw_only=True)
class Router:
    """`[router]`: how requests are routed. The routes themselves are `[routes.NAME]`."""

    enabled: bool = True
    encoder: str = "all-MiniLM-L6-v2"  # the packaged model, or a local sentence-transformers folder
    backend: Literal["onnx-int8", "onnx", "torch"] = "onnx-int8"
    threads: int = 1
    fallback_role: str = "chat"
    low_confidence: Literal["fallback", "llm"] = "fallback"
    llm_tier: str = "local"  # a llama-cpp tier that classifies the hard rest when low_confidence = "llm"
    cache_size: int = 512  # recent decisions kept (LRU)
    out_of_scope: list[str] = field(factory=list)  # example requests that are no route
    more_out_of_scope: list[str] = field(factory=list)


@define(kw_only=True)
class Reliability:
    """Deadlines, retries and cooldowns for every call that goes through tiers.py."""

    deadline_s: float = 120.0  # one request, every tier and retry included
    connect_timeout_s: float = 5.0
    backoff_base_s: float = 0.5  # retry n waits up to base * 2**n (full jitter), or Retry-After
    backoff_max_s: float = 8.0
    cooldown_failures: int = 3  # consecutive failed attempts before a tier is skipped
    cooldown_s: float = 30.0


@define(kw_only=True)
class Limit:
    """USD limits; 0 means no limit."""

    daily_usd: float = 0.0
    monthly_usd: float = 0.0


@define(kw_only=True)
class Budgets:
    daily_usd: float = 0.0  # overall, every role; 0 means no limit
    monthly_usd: float = 0.0
    roles: dict[str, Limit] = field(factory=dict)
    warn_at: float = 0.8  # fraction of a limit that logs a warning and marks the trace
    on_exceeded: Literal["local", "refuse"] = "local"  # fall back to a local tier, or refuse


@define(kw_only=True)
class Cache:
    """Layer 0: answers reused for identical (or, optionally, near-identical) requests."""

    enabled: bool = True
    deterministic_only: bool = True  # only when the temperature is 0
    ttl_s: float = 86400.0
    semantic: bool = False  # needs an embedder (the router's)
    semantic_threshold: float = 0.95


@define(kw_only=True)
class McpServer:
    """`[agent.mcp_servers.NAME]`: an MCP server the agent starts over stdio and whose tools it may call.
    `env` names environment variables passed through to it (their values never appear in config)."""

    command: str
    args: list[str] = field(factory=list)
    env: list[str] = field(factory=list)
    enabled: bool = True


@define(kw_only=True)
class Agent:
    """`[agent]`: what one agent run may do and spend. At a limit the run stops and reports."""

    max_steps: int = 16  # model turns per run
    max_seconds: float = 300.0  # wall time per run
    max_tokens: int = 200_000  # prompt + completion tokens per run
    max_cost_usd: float = 0.50  # spend per run; 0 means no limit
    max_malformed: int = 3  # malformed tool calls sent back to the model before the run stops
    # run_command: off unless allowed, and then only these programs (argv[0]). A workspace
    # file can set neither unless the folder is trusted.
    allow_commands: bool = False
    commands: list[str] = field(factory=list)
    command_timeout_s: float = 30.0
    output_cap_bytes: int = 16_000  # what one tool result may hand the model
    mcp_servers: dict[str, McpServer] = field(factory=dict)


@define(kw_only=True)
class Conversations:
    """`[conversations]`: chat conversations kept in the state dir (one JSON file each)."""

    keep: int = 100  # conversations kept; the least recently used beyond this are deleted
    max_turns: int = 100  # turns kept per conversation (the oldest go first); the budget trims what is sent


@define(kw_only=True)
class Config:
    """The effective config: every layer merged, validated and typed."""

    extends: str | None = None
    trusted_workspaces: list[str] = field(factory=list)
    tiers: dict[str, Tier] = field(factory=dict)
    roles: Roles = field(factory=Roles)
    reliability: Reliability = field(factory=Reliability)
    budgets: Budgets = field(factory=Budgets)
    cache: Cache = field(factory=Cache)
    conversations: Conversations = field(factory=Conversations)
    router: Router = field(factory=Router)
    routes: dict[str, Route] = field(factory=dict)
    agent: Agent = field(factory=Agent)

    def tier_for(self, role: str) -> Tier:
        return self.tiers[self.roles.get(role).tier]


def table_fields(cls: type) -> dict[str, type | str]:
    """The TOML keys a table accepts, mapped to their annotated types."""
    return {f.name: f.type for f in attrs.fields(cls)}
