"""Autocomplete from a remote server (a GPU box's llama-server, vLLM, Ollama), with the
local model as the fallback, inside the keystroke's budget.

The engine (engine.py) keeps its caches and typed-through logic and asks `RemoteFim.stream`
where it would ask the local model. Per generation:

- the remote is asked first (backends/fim.py: `/infill` or `/v1/completions`), streaming;
- no first token within `roles.autocomplete.remote_wait_ms` (60 ms of the 100 ms budget),
  or a failure before it: the request is closed and the local tier generates instead, into
  the same generation, so the keystroke still answers by its deadline (with what the local
  model has by then; the rest lands in the cache for the next keystroke);
- a remote that refuses or fails (connect error, HTTP error) is in cooldown for
  `reliability.cooldown_s` (30 s): the keystrokes meanwhile go local at once, with no
  connect attempt; one that is only slow is, after `reliability.cooldown_failures` (3) slow
  answers in a row;
- the next keystroke cancels the engine's task, which closes the HTTP stream: llama-server
  stops the task at its next token (its slot goes idle), so a GPU shared by a team never
  works for keystrokes nobody waits for.

Nothing here blocks: every wait is bounded by the keystroke's deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import attrs
import httpx

from tinyarms.autocomplete.engine import Answering
from tinyarms.autocomplete.engine import _clean_text as _clean
from tinyarms.autocomplete.prompt import build
from tinyarms.autocomplete.templates import FimTemplate
from tinyarms.backends import TierError
from tinyarms.backends.fim import FimQuery, Finished, stream
from tinyarms.backends.registry import provider
from tinyarms.local_model import CompletionResult

if TYPE_CHECKING:
    from tinyarms.autocomplete.engine import CompletionRequest
    from tinyarms.config import Config, Tier

log = logging.getLogger(__name__)

Item = str | CompletionResult | Answering
MAX_TOKENS = 24  # one line, as the local engine
MAX_TOKENS_BLOCK = 64
COOLDOWN_NOW = frozenset({"connect", "http", "server", "missing_key", "malformed"})  # not worth a retry soon


class RemoteFim:
    """One remote autocomplete tier, its pooled HTTP client and its cooldown."""

    def __init__(
        self,
        name: str,
        tier: Tier,
        *,
        template: FimTemplate | None,
        wait_ms: int,
        max_predict_ms: int,
        cooldown_s: float,
        cooldown_failures: int,
        connect_timeout_s: float,
    ) -> None:
        self.name = name
        self.tier = tier
        self.kind = provider(tier.provider).fim
        self.template = template
        self.wait_ms = wait_ms
        self.max_predict_ms = max_predict_ms
        self.cooldown_s = cooldown_s
        self.cooldown_failures = cooldown_failures
        self.connect_timeout_s = connect_timeout_s
        self.client = httpx.AsyncClient()
        self.counts: Counter[str] = Counter()  # remote answers, fallbacks by reason, cancellations
        self.slow_in_a_row = 0
        self.down_until = 0.0
        self.last_error: str | None = None

    @property
    def settings(self) -> tuple[Any, ...]:
        return (self.name, repr(self.tier), self.template, self.wait_ms, self.max_predict_ms, self.cooldown_s,
                self.cooldown_failures, self.connect_timeout_s)  # fmt: skip

    def cooling(self) -> bool:
        return time.monotonic() < self.down_until

    def status(self) -> dict[str, Any]:
        return {
            "tier": self.name,
            "endpoint": self.kind,
            "cooldown_s": round(max(0.0, self.down_until - time.monotonic()), 1),
            "last_error": self.last_error,
            "counts": dict(self.counts),
        }

    async def aclose(self) -> None:
        await self.client.aclose()

    def query(self, request: CompletionRequest, multiline: bool) -> FimQuery:
        """The remote's prompt: the whole window of prompt.py (the server caches the prompt,
        so the local engine's small cold-start window is not needed), the other files' chunks."""
        prompt = build(request.lines, request.line, request.column)
        block = request.context
        extra = [(label, _clean(text)) for label, text in block.files] if block else []
        before, line_prefix, after = _clean(prompt.before), _clean(prompt.line_prefix), _clean(prompt.after)
        stop = ["\n\n"] if multiline else ["\n"]
        text = ""
        if self.kind == "completions" and self.template is not None:
            segments = self.template.segments(
                before,
                line_prefix,
                after,
                path=block.current if block else request.path,
                extra_files=extra,
                context_text=_clean(block.comments) if block else "",
            )
            text = "".join(piece for _, piece in segments)
            stop += [s for s in self.template.stop if s not in stop]
        blank = not line_prefix.strip()
        return FimQuery(
            before=before,
            line_prefix=line_prefix,
            after=after,
            extra=extra,
            prompt_text=text,
            max_tokens=self.tier.max_tokens or (MAX_TOKENS_BLOCK if multiline else MAX_TOKENS),
            stop=stop,
            n_indent=0 if blank else len(line_prefix) - len(line_prefix.lstrip()),
            t_max_predict_ms=self.max_predict_ms,
            temperature=self.tier.temperature or 0.0,
        )

    async def stream(
        self, request: CompletionRequest, local: Callable[[], AsyncIterator[Item]], *, multiline: bool
    ) -> AsyncIterator[Item]:
        """The generation's pieces and its `CompletionResult`: from the remote, or from
        `local()` when the remote is cooling down, fails, or is slower than `wait_ms`."""
        if self.cooling():
            self.counts["local_cooldown"] += 1
            async for item in local():
                yield item
            return
        started = time.perf_counter()
        pieces = stream(
            self.tier,
            self.name,
            self.kind,
            self.query(request, multiline),
            client=self.client,
            connect_timeout_s=min(self.connect_timeout_s, self.tier.timeout_s),
            read_timeout_s=self.tier.timeout_s,
        )
        try:
            async with asyncio.timeout(self.wait_ms / 1000):
                first = await anext(pieces)
        except TimeoutError:
            await pieces.aclose()
            self._failed("slow", f"no first token within {self.wait_ms} ms")
            async for item in local():
                yield item
            return
        except TierError as exc:
            await pieces.aclose()
            self._failed(exc.kind, str(exc))
            async for item in local():
                yield item
            return
        except asyncio.CancelledError:
            self.counts["cancelled"] += 1
            await pieces.aclose()  # closes the HTTP stream: the server stops the task
            raise
        self.slow_in_a_row = 0
        self.counts["remote"] += 1
        yield Answering(self.tier.model or self.name)
        first_ms = _ms(started)
        text = ""
        try:
            piece = first
            while True:
                if isinstance(piece, Finished):
                    stats = {**piece.stats, "tier": self.name, "first_token_ms": first_ms, "total_ms": _ms(started)}
                    yield CompletionResult(text, piece.reason, stats)
                    return
                text += piece
                yield piece
                piece = await anext(pieces)
        except TierError as exc:
            self.counts["cut"] += 1
            self.last_error = str(exc)
            yield CompletionResult(text, "cut", {"tier": self.name})
        except asyncio.CancelledError:
            self.counts["cancelled"] += 1
            raise
        finally:
            await pieces.aclose()

    def _failed(self, kind: str, message: str) -> None:
        self.counts["local_" + kind] += 1
        self.last_error = message
        self.slow_in_a_row = self.slow_in_a_row + 1 if kind == "slow" else 0
        if kind in COOLDOWN_NOW or self.slow_in_a_row >= self.cooldown_failures:
            self.down_until = time.monotonic() + self.cooldown_s
            self.slow_in_a_row = 0
            log.warning("autocomplete: tier '%s' %s; local for %.0f s", self.name, message, self.cooldown_s)
        else:
            log.info("autocomplete: tier '%s' %s; the local tier answers", self.name, message)


def for_config(config: Config) -> RemoteFim | None:
    """The remote tier of the autocomplete role, or None when it runs on a local tier.
    Raises ValueError when the tier cannot do autocomplete (the message says why)."""
    role = config.roles.autocomplete
    tier = config.tiers.get(role.tier)
    if tier is None or provider(tier.provider).fim == "local":
        return None
    kind = provider(tier.provider).fim
    if not kind:
        raise ValueError(
            f"tier '{role.tier}' (provider {tier.provider}) cannot serve autocomplete: use llama-cpp, "
            "llama-server (/infill) or openai (/v1/completions with tiers.NAME.template)"
        )
    template = None
    if kind == "completions":
        from tinyarms.autocomplete.templates import by_name

        if not tier.template:
            raise ValueError(
                f"tier '{role.tier}' answers autocomplete on /v1/completions and needs tiers.{role.tier}.template "
                "(the model's FIM template, e.g. qwen2.5-coder)"
            )
        template = by_name(tier.template)
    reliability = config.reliability
    if tier.base_urls:  # replicas (tiers/): autocomplete keeps to the first, where its KV cache is warm
        tier = attrs.evolve(tier, base_url=tier.base_urls[0])
    return RemoteFim(
        role.tier,
        tier,
        template=template,
        wait_ms=role.remote_wait_ms,
        max_predict_ms=role.remote_max_predict_ms,
        cooldown_s=reliability.cooldown_s,
        cooldown_failures=reliability.cooldown_failures,
        connect_timeout_s=reliability.connect_timeout_s,
    )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
