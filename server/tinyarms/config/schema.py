"""The typed shape of a tinyarms config.

Each class is one TOML table. Field names are the TOML keys. Layers are merged as
plain dicts first (see ``layers.py``); only the merged result is structured into
these classes, so a layer can set a single key without repeating the rest.

Every field's trailing ``# comment`` (or the comment block right above it) and every
class docstring are its documentation: ``tinyarms config schema`` turns them into the
JSON Schema's descriptions, and the language server's hover shows them. A test fails
when a field has none.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs
from attrs import define, field

from tinyarms.backends.registry import provider

ROLE_NAMES = ("autocomplete", "chat", "edit", "agent")
MAX_REPLICAS = 64  # `base_urls` entries a tier may list


def bounds(*, ge: float | None = None, gt: float | None = None, le: float | None = None) -> dict[str, Any]:
    """Field metadata: the range a number must fall in (validate.py checks it; every
    number must also be finite). `ge`/`gt`: at least / more than; `le`: at most."""
    return {"bounds": {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le)) if v is not None}}




@define(kw_only=True)
class Price:
    """USD per million tokens; overrides the price table for one tier."""

    input_per_mtok: float = field(default=0.0, metadata=bounds(ge=0))  # USD per million input (prompt) tokens
    output_per_mtok: float = field(default=0.0, metadata=bounds(ge=0))  # USD per million output (completion) tokens


@define(kw_only=True)
class Tier:
    """Where a model runs: in-process llama.cpp or an HTTP provider."""

    # Where the model runs (a provider in backends/registry.py): llama-cpp (in-process),
    # openai (any OpenAI-compatible server), llama-server (llama.cpp's server: /infill), anthropic.
    provider: str
    model: str  # model name for HTTP providers; llama-cpp: embedded:NAME, a .gguf path or hf:owner/repo/file.gguf
    base_url: str | None = None  # the API root of an HTTP provider, e.g. https://api.openai.com/v1
    # Several API roots serving the same model (replicas), instead of base_url: each request goes
    # to the one with the fewest requests in flight (ties at random); a failing one cools down
    # on its own, a 429/503 keeps it unused for its Retry-After. At most MAX_REPLICAS.
    base_urls: list[str] = field(factory=list)
    # The name of the environment variable that holds the key ("" = no key, clearing a preset's);
    # the key itself never appears in config.
    api_key_env: str | None = None
    # read timeout, and the cap on one attempt, in seconds
    timeout_s: float = field(default=60.0, metadata=bounds(gt=0, le=3600))
    # retries on connect errors, 429, 5xx and cut streams
    max_retries: int = field(default=2, metadata=bounds(ge=0, le=10))
    # the most tokens an answer may have
    max_tokens: int | None = field(default=None, metadata=bounds(ge=1, le=1_000_000))
    # sampling temperature (0 = deterministic; the cache needs 0)
    temperature: float | None = field(default=None, metadata=bounds(ge=0, le=2))
    price: Price | None = None  # USD per million tokens, overriding the price table
    # FIM template name; llama-cpp: detected from the GGUF when unset; openai autocomplete
    # tiers (/v1/completions) need it
    template: str | None = None
    # llama-cpp: context size in tokens (2048 when unset)
    n_ctx: int | None = field(default=None, metadata=bounds(ge=64, le=1_048_576))
    # llama-cpp: threads (1 for autocomplete, else 2; at most 2)
    n_threads: int | None = field(default=None, metadata=bounds(ge=1, le=16))

    @property
    def is_remote(self) -> bool:
        return provider(self.provider).remote

    @property
    def endpoints(self) -> list[str | None]:
        """The replicas requests spread over: `base_urls`, else the one `base_url` (None: the provider's default)."""
        return list(self.base_urls) if self.base_urls else [self.base_url]


@define(kw_only=True)
class Cascade:
    """When an answer is good enough to stop, or should go up the `escalate_to` chain."""

    # quality escalations per request (tier failures always fall back)
    max_steps: int = field(default=2, metadata=bounds(ge=0, le=10))
    # escalate when the mean token log-prob is below this
    min_mean_logprob: float | None = field(default=None, metadata=bounds(le=0))
    self_check: bool = False  # ask the same tier a short yes/no "does this answer it?"


@define(kw_only=True)
class Role:
    """A task role runs on one tier and may escalate along a chain of others."""

    tier: str  # the tier this role runs on (a name under [tiers])
    escalate_to: list[str] = field(factory=list)  # tiers tried next, in order, on failure or low confidence
    enabled: bool = True  # false switches the role off
    # the most tokens an answer may have (overrides the tier's)
    max_tokens: int | None = field(default=None, metadata=bounds(ge=1, le=1_000_000))
    # sampling temperature (overrides the tier's)
    temperature: float | None = field(default=None, metadata=bounds(ge=0, le=2))
    cascade: Cascade = field(factory=lambda: Cascade())  # when an answer is good enough, or escalates
    context_tokens: int = 4000  # tokens a chat/edit request may send (rules, code, @files, earlier turns)
    # Strong or weak (chat and edit; router/strength.py). `router calibrate` writes the threshold.
    strong_share: float = 0.0  # the hardest share of requests sent straight to the strong tier; 0 = off
    strong_threshold: float | None = None  # difficulty at or above which a request goes strong
    strong_tier: str | None = None  # the strong tier (default: the first of escalate_to)

    def strong(self) -> str | None:
        """The tier that hard requests go straight to, or None (no stronger tier than `tier`)."""
        tier = self.strong_tier or next((t for t in self.escalate_to if t != self.tier), None)
        return tier if tier != self.tier else None


Multiline = Literal["auto", "always", "never"]


@define(kw_only=True)
class AutocompleteRole(Role):
    """The autocomplete role: FIM completions as you type, local or from a remote server
    with a local fallback (`tier` remote, a llama-cpp tier in `escalate_to`)."""

    # wall-clock budget per completion, in milliseconds
    max_latency_ms: int = field(default=100, metadata=bounds(ge=1, le=60_000))
    # A remote `tier` (llama-server /infill, openai /v1/completions): the time its first token
    # may take before the local tier in `escalate_to` answers instead, in milliseconds
    remote_wait_ms: int = field(default=60, metadata=bounds(ge=1, le=60_000))
    # a remote llama-server's `t_max_predict_ms`: it ends the answer at a newline after this long
    remote_max_predict_ms: int = field(default=250, metadata=bounds(ge=1, le=60_000))
    multiline: Multiline = "auto"  # auto: a block on an empty line after a block opener; always; never
    context: bool = True  # chunks of other files and the definitions the current file imports
    # cap on that context block, in tokens (estimated at 3 characters a token)
    context_tokens: int = field(default=512, metadata=bounds(ge=0, le=100_000))
    # ring buffer of chunks from recently opened, edited and saved files
    context_chunks: int = field(default=16, metadata=bounds(ge=0, le=1000))
    context_chunk_lines: int = field(default=32, metadata=bounds(ge=1, le=1000))  # lines per chunk
    prefill: bool = True  # evaluate the prompt ahead (didOpen, context change) at low priority
    # also where the cursor settles at a new place (tinyarms/cursorMoved, or an edit far from the last prompt)
    prefill_on_cursor: bool = True
    feedback: bool = True  # record shown / accepted / partial / dismissed in the state dir
    feedback_text: bool = False  # also record the suggestion's text (off: lengths only)


@define(kw_only=True)
class Roles:
    """Which tier each editor task runs on."""

    autocomplete: AutocompleteRole = field(factory=lambda: AutocompleteRole(tier="local"))  # ghost text as you type
    chat: Role = field(factory=lambda: Role(tier="local"))  # questions and explanations
    edit: Role = field(factory=lambda: Role(tier="local"))  # changes to the selected code
    agent: Role = field(factory=lambda: Role(tier="local"))  # multi-step, multi-file work

    def get(self, name: str) -> Role:
        role: Role = getattr(self, name)
        return role


# -- router (issue 4) -------------------------------------------------------------------
# LSP code action kinds a route's action may have ("": none in particular).
ACTION_KINDS = ("", "quickfix", "refactor", "refactor.extract", "refactor.inline", "refactor.rewrite", "source")


@define(kw_only=True)
class Route:
    """One route of the semantic router: example requests, and where they go."""

    role: str = "chat"  # the role this route's requests go to: chat, edit or agent
    tier: str | None = None  # overrides the role's tier for this route
    # the classifier's probability needed to take this route
    threshold: float = field(default=0.5, metadata=bounds(ge=0, le=1))
    utterances: list[str] = field(factory=list)  # example requests for this route
    more_utterances: list[str] = field(factory=list)  # added to `utterances` (lists replace across layers)
    enabled: bool = True  # false switches the route off
    # What the route's requests ask the model: the request for a bare `/NAME` (or an empty
    # request sent to this route), and the task in the system message otherwise.
    instruction: str = ""
    action: str = ""  # the title of the code action offered on a selection; "": no action
    action_kind: str = ""  # one of ACTION_KINDS


@define(kw_only=True)
class Difficulty:
    """`[router.difficulty]`: the strong/weak score's weights (router/difficulty.py); written by
    `tinyarms router fit --from-log`. The defaults are the prior: longer requests are harder."""

    bias: float = -3.0  # the logistic regression's intercept
    request: float = 0.4  # weight of log(1 + request tokens)
    context: float = 0.2  # weight of log(1 + context tokens)
    routes: dict[str, float] = field(factory=dict)  # per-route offsets (missing: 0)
    fitted_on: int = 0  # labelled requests it was fitted on; 0 = the prior


@define(kw_only=True)
class Router:
    """`[router]`: how requests are routed. The routes themselves are `[routes.NAME]`."""

    enabled: bool = True  # route requests (false: every request goes to router.fallback_role)
    # English requests: all-MiniLM-L6-v2 (packaged), use-multilingual-v3, a local folder, or "a+b"
    encoder: str = "all-MiniLM-L6-v2"  # the encoder for English requests
    multilingual_encoder: str = "use-multilingual-v3"  # the second encoder (multilingual); "" = `encoder` alone
    # Requests not in English: `multilingual_encoder`'s classifier. English ones: "switch": `encoder`'s
    # alone (one encode a request), or "average" of both classifiers' probabilities (two encodes)
    combine: Literal["average", "switch"] = "switch"
    encoder_weight: float = field(default=0.5, metadata=bounds(ge=0, le=1))  # `encoder`'s share in "average"
    augment: int = field(default=0, metadata=bounds(ge=0, le=4))  # typed-like variants per training row (0: off)
    backend: Literal["onnx-int8", "onnx", "torch"] = "onnx-int8"  # how the encoder runs
    threads: int = field(default=1, metadata=bounds(ge=1, le=16))  # encoder threads
    fallback_role: str = "chat"  # the role for requests no route takes
    cache_size: int = field(default=512, metadata=bounds(ge=0, le=1_000_000))  # recent decisions kept (LRU)
    difficulty: Difficulty = field(factory=lambda: Difficulty())  # the strong/weak score's weights
    out_of_scope: list[str] = field(factory=list)  # example requests that are no route
    more_out_of_scope: list[str] = field(factory=list)  # added to `out_of_scope` (lists replace across layers)


@define(kw_only=True)
class Reliability:
    """Deadlines, retries and cooldowns for every call that goes through tiers/."""

    # one request, every tier and retry included
    deadline_s: float = field(default=120.0, metadata=bounds(gt=0, le=3600))
    connect_timeout_s: float = field(default=5.0, metadata=bounds(gt=0, le=600))  # TCP/TLS connect timeout, in seconds
    # retry n waits up to base * 2**n (full jitter), or Retry-After
    backoff_base_s: float = field(default=0.5, metadata=bounds(ge=0, le=60))
    # the longest wait between retries, in seconds
    backoff_max_s: float = field(default=8.0, metadata=bounds(ge=0, le=600))
    # consecutive failed attempts before a tier is skipped
    cooldown_failures: int = field(default=3, metadata=bounds(ge=1, le=1000))
    # how long a failing tier is skipped, in seconds
    cooldown_s: float = field(default=30.0, metadata=bounds(ge=0, le=86_400))


@define(kw_only=True)
class Limit:
    """USD limits; 0 means no limit."""

    daily_usd: float = field(default=0.0, metadata=bounds(ge=0))  # USD per day (0 = none)
    monthly_usd: float = field(default=0.0, metadata=bounds(ge=0))  # USD per calendar month (0 = none)


@define(kw_only=True)
class Budgets:
    """Spend limits; at 100% paid tiers are skipped (or the request refused)."""

    daily_usd: float = field(default=0.0, metadata=bounds(ge=0))  # overall, every role; 0 means no limit
    # overall, every role, per calendar month; 0 means no limit
    monthly_usd: float = field(default=0.0, metadata=bounds(ge=0))
    roles: dict[str, Limit] = field(factory=dict)  # per-role limits: [budgets.roles.ROLE]
    # fraction of a limit that logs a warning and marks the trace
    warn_at: float = field(default=0.8, metadata=bounds(ge=0, le=1))
    on_exceeded: Literal["local", "refuse"] = "local"  # fall back to a local tier, or refuse


@define(kw_only=True)
class Cache:
    """Layer 0: answers reused for identical (or, optionally, near-identical) requests."""

    enabled: bool = True  # the response cache
    deterministic_only: bool = True  # only when the temperature is 0
    ttl_s: float = field(default=86400.0, metadata=bounds(ge=0))  # how long an answer is reused, in seconds
    semantic: bool = False  # also reuse the answer of a near-identical request (the router's embeddings)
    # cosine similarity a near-identical request needs
    semantic_threshold: float = field(default=0.95, metadata=bounds(ge=0, le=1))


@define(kw_only=True)
class Trace:
    """The decision trace: one JSON line per request, read by `tinyarms stats`."""

    enabled: bool = True  # write trace.jsonl at all
    # Keep free text (reasons and error messages, which may quote a server's answer or the request)
    # in the trace; false keeps names and numbers only.
    text: bool = True


@define(kw_only=True)
class PresetInfo:
    """`[preset]` in a preset file: shown by `tinyarms presets list`; not part of the effective config."""

    description: str = ""  # one line: what the preset is for
    version: str = ""  # the preset's own version, e.g. "1.2"
    author: str = ""  # who wrote it (a name or a URL)


@define(kw_only=True)
class McpServer:
    """`[agent.mcp_servers.NAME]`: an MCP server the agent starts over stdio and whose tools it may call.
    `env` names environment variables passed through to it (their values never appear in config)."""

    command: str  # the program that starts the server (stdio)
    args: list[str] = field(factory=list)  # its arguments
    env: list[str] = field(factory=list)  # names of environment variables passed through to it
    enabled: bool = True  # false leaves the server out


@define(kw_only=True)
class Agent:
    """`[agent]`: what one agent run may do and spend. At a limit the run stops and reports."""

    max_steps: int = 16  # model turns per run
    max_seconds: float = 300.0  # wall time per run
    max_tokens: int = 200_000  # prompt + completion tokens per run
    max_cost_usd: float = 0.50  # spend per run; 0 means no limit
    max_malformed: int = 3  # malformed tool calls sent back to the model before the run stops
    # run_command: off unless allowed, and then only commands starting with an entry of
    # `commands`. A workspace file can set neither unless the folder is trusted.
    allow_commands: bool = False  # offer run_command to the agent
    commands: list[str] = field(factory=list)  # the allow-list: "pytest", "git status" (argv prefixes, no shell)
    command_timeout_s: float = 30.0  # a command's process group is killed after this
    output_cap_bytes: int = 16_000  # what one tool result may hand the model
    mcp_servers: dict[str, McpServer] = field(factory=dict)  # MCP servers whose tools the agent may call


@define(kw_only=True)
class Conversations:
    """`[conversations]`: chat conversations kept in the state dir (one JSON file each)."""

    keep: int = 100  # conversations kept; the least recently used beyond this are deleted
    max_turns: int = 100  # turns kept per conversation (the oldest go first); the budget trims what is sent


@define(kw_only=True)
class Config:
    """The effective config: every layer merged, validated and typed."""

    # A preset name (shipped in roles/ or installed with `tinyarms presets install`), or in a
    # user or workspace file a path to another TOML file, relative to the file that names it.
    extends: str | None = None
    # Folders (and their subfolders) whose workspace file may change endpoints and keys; user file only.
    trusted_workspaces: list[str] = field(factory=list)
    tiers: dict[str, Tier] = field(factory=dict)  # where models run: [tiers.NAME]
    roles: Roles = field(factory=Roles)  # which tier each editor task runs on: [roles.ROLE]
    reliability: Reliability = field(factory=Reliability)  # deadlines, retries and cooldowns
    budgets: Budgets = field(factory=Budgets)  # spend limits in USD
    cache: Cache = field(factory=Cache)  # the response cache
    conversations: Conversations = field(factory=Conversations)  # chat conversations kept in the state dir
    router: Router = field(factory=Router)  # how requests are routed to roles
    routes: dict[str, Route] = field(factory=dict)  # the router's routes: [routes.NAME]
    agent: Agent = field(factory=Agent)  # what one agent run may do and spend: [agent]
    trace: Trace = field(factory=lambda: Trace())  # the decision trace (trace.jsonl)
    preset: PresetInfo | None = None  # a preset file's name, version and description (not config)

    def tier_for(self, role: str) -> Tier:
        return self.tiers[self.roles.get(role).tier]


def table_fields(cls: type) -> dict[str, type | str]:
    """The TOML keys a table accepts, mapped to their annotated types."""
    return {f.name: f.type for f in attrs.fields(cls)}
