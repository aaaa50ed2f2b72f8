"""A role's chain of tiers: the one place every model call that may cost money goes through.

`run_role` walks the chain (the role's tier, then `escalate_to`), and for each tier:
skips it while it cools down or when the budget forbids paid calls, retries connect
errors, 429 and 5xx with exponential backoff and jitter (honouring Retry-After) within
the request's deadline, checks the answer (empty, low mean log-prob, optional self-check)
and escalates when it fails. A response cache sits in front, spend goes to the ledger,
and every request leaves one decision-trace record.

Streaming: deltas go to `on_delta` as they arrive. When text already shown has to be
abandoned (a stream cut, a retry, a fallback, an escalation), `on_restart(reason)` comes
first, so a client clears it: two answers are never silently mixed.

Cooldown (LiteLLM's semantics): `reliability.cooldown_failures` consecutive failed
attempts (3) put a tier in cooldown for `reliability.cooldown_s` (30 s); any success
resets the count. A missing key does not count: it is a setup problem, not an outage.
The state is per process, like LiteLLM's in-memory cooldowns.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from attrs import define, field

from tinyarms import cache as response_cache
from tinyarms import costs, trace
from tinyarms.backends import ChatRequest, Delta, TierError, ToolCall, ToolSpec, Usage, stream_chat
from tinyarms.config.schema import ROLE_NAMES

if TYPE_CHECKING:
    import httpx

    from tinyarms.config import Config, Tier
    from tinyarms.router.decision import Decision

log = logging.getLogger(__name__)

SELF_CHECK_PROMPT = (
    "You check answers. Reply with exactly one word: yes if the answer below correctly and "
    "completely answers the question, no otherwise."
)


@define
class Answer:
    text: str
    tier: str
    model: str
    usage: Usage
    cost_usd: float
    trace: dict[str, Any]  # the decision-trace record written for this request
    tool_calls: list[ToolCall] = field(factory=list)  # when the request offered tools


class AllTiersFailed(Exception):
    """No tier produced an answer. The message names every tier and why, for the user."""

    def __init__(self, message: str, trace: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.trace = trace or {}


class BudgetExceeded(AllTiersFailed):
    """A budget is spent and `budgets.on_exceeded = "refuse"`."""


# -- cooldowns -----------------------------------------------------------------------------


@define
class _Health:
    failures: int = 0
    until: float = 0.0


_health: dict[str, _Health] = {}


def _health_key(name: str, tier: Tier) -> str:
    return f"{name}|{tier.provider}|{tier.base_url}|{tier.model}"


def cooling_down(name: str, tier: Tier) -> float:
    """Seconds left in this tier's cooldown (0 when it may be called)."""
    health = _health.get(_health_key(name, tier))
    return max(0.0, health.until - time.monotonic()) if health else 0.0


def _failed(name: str, tier: Tier, config: Config) -> None:
    health = _health.setdefault(_health_key(name, tier), _Health())
    health.failures += 1
    if health.failures >= config.reliability.cooldown_failures:
        health.until = time.monotonic() + config.reliability.cooldown_s
        health.failures = 0
        log.warning(
            "tier '%s' failed %d times in a row: cooling down for %gs",
            name,
            config.reliability.cooldown_failures,
            config.reliability.cooldown_s,
        )


def _succeeded(name: str, tier: Tier) -> None:
    _health.pop(_health_key(name, tier), None)


def reset_cooldowns() -> None:
    _health.clear()


# -- HTTP clients --------------------------------------------------------------------------

_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}


def _client() -> httpx.AsyncClient:
    """One pooled client per event loop, so keep-alive connections are reused across requests."""
    import httpx

    loop = asyncio.get_running_loop()
    for stale in [other for other in _clients if other.is_closed()]:
        del _clients[stale]  # a loop that ended without aclose(): forget its client
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = _clients[loop] = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=8))
    return client


async def aclose() -> None:
    """Close this loop's HTTP client (the CLI calls it before its loop ends)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


# -- one request ---------------------------------------------------------------------------


@define
class _Attempt:
    text: str = ""
    usage: Usage = field(factory=Usage)
    logprob_sum: float = 0.0
    logprob_tokens: int = 0
    ttft_ms: float | None = None
    tool_calls: list[ToolCall] = field(factory=list)

    @property
    def mean_logprob(self) -> float | None:
        return self.logprob_sum / self.logprob_tokens if self.logprob_tokens else None


class _Run:
    """The state of one run_role call: what the user has seen, the steps, the clock."""

    def __init__(
        self,
        config: Config,
        role: str,
        on_delta: Callable[[str], None] | None,
        on_restart: Callable[[str], None] | None,
    ) -> None:
        self.config = config
        self.role = role
        self.on_delta = on_delta
        self.on_restart = on_restart
        self.started = time.monotonic()
        self.deadline = self.started + config.reliability.deadline_s
        self.shown = False  # text of an answer that may still be abandoned is on screen
        self.ttft_ms: float | None = None
        self.steps: list[dict[str, Any]] = []
        self.cost_usd = 0.0
        self.usage = Usage()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def show(self, text: str) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = _ms(self.started)
        self.shown = True
        if self.on_delta:
            self.on_delta(text)

    def restart(self, reason: str) -> None:
        """Abandon what the user saw; say why."""
        if self.shown and self.on_restart:
            self.on_restart(reason)
        self.shown = False

    def charge(self, name: str, tier: Tier, usage: Usage, step: dict[str, Any]) -> None:
        spent = costs.cost(tier, usage)
        step.update(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=round(spent.usd, 8),
            price=spent.source,
        )
        if usage.cache_read_tokens:
            step["cache_read_tokens"] = usage.cache_read_tokens
        if usage.estimated:
            step["usage"] = "estimated"
        self.cost_usd += spent.usd
        self.usage.prompt_tokens += usage.prompt_tokens
        self.usage.completion_tokens += usage.completion_tokens
        try:
            costs.record(self.role, name, usage, spent.usd)
        except Exception as exc:  # the ledger is bookkeeping: losing a row must not lose the answer
            log.warning("could not record spend: %s", exc)


def _ms(since: float) -> float:
    return round((time.monotonic() - since) * 1000, 1)


def _chain(config: Config, role: str, tier: str | None, decision: Decision | None) -> list[str]:
    role_config = config.roles.get(role)
    first = tier or (decision.tier if decision is not None else None) or role_config.tier
    # A tier chosen by the caller or the route goes first; the role's own chain still backs it up.
    chain = list(dict.fromkeys([first, role_config.tier, *role_config.escalate_to]))
    unknown = [t for t in chain if t not in config.tiers]
    if unknown:
        raise AllTiersFailed(
            f"role '{role}' names unknown tier '{unknown[0]}' (defined: {', '.join(sorted(config.tiers))})"
        )
    return chain


async def _attempt(run: _Run, name: str, tier: Tier, request: ChatRequest, timeout: float) -> _Attempt:
    result = _Attempt()
    started = time.monotonic()

    async def consume() -> None:
        async for event in stream_chat(tier, name, request, client=_client() if tier.is_remote else None):
            if isinstance(event, Delta):
                if result.ttft_ms is None:
                    result.ttft_ms = _ms(started)
                result.text += event.text
                if event.logprob is not None:
                    result.logprob_sum += event.logprob
                    result.logprob_tokens += event.tokens or 1
                run.show(event.text)
            elif isinstance(event, ToolCall):
                result.tool_calls.append(event)
            else:
                result.usage = event

    try:
        await asyncio.wait_for(consume(), timeout)  # wait_for, not asyncio.timeout: Python 3.10 too
    except asyncio.TimeoutError:
        raise TierError("timeout", f"tier '{name}' did not finish within {timeout:.3g}s") from None
    return result


async def _self_check(run: _Run, name: str, tier: Tier, question: str, answer: str) -> bool | None:
    """A short yes/no from the same tier; None when the check itself could not run."""
    request = ChatRequest(
        messages=[
            {"role": "system", "content": SELF_CHECK_PROMPT},
            {"role": "user", "content": f"Question:\n{question}\n\nAnswer:\n{answer}\n\nyes or no?"},
        ],
        max_tokens=3,
        temperature=0.0,
        connect_timeout_s=run.config.reliability.connect_timeout_s,
        read_timeout_s=tier.timeout_s,
    )
    usage = Usage()
    text = ""

    async def consume() -> None:
        nonlocal usage, text
        async for event in stream_chat(tier, name, request, client=_client() if tier.is_remote else None):
            if isinstance(event, Delta):
                text += event.text
            elif isinstance(event, Usage):
                usage = event

    try:
        await asyncio.wait_for(consume(), max(0.1, min(run.remaining(), tier.timeout_s)))
    except (TierError, asyncio.TimeoutError):
        return None
    step: dict[str, Any] = {"tier": name, "outcome": "self-check"}
    run.charge(name, tier, usage, step)
    verdict = text.strip().lower()
    return not verdict.startswith("no")


def _backoff(config: Config, retry: int, error: TierError) -> float:
    if error.retry_after is not None:
        return error.retry_after
    cap = min(config.reliability.backoff_max_s, config.reliability.backoff_base_s * 2**retry)
    return random.uniform(0, cap)  # full jitter: spreads out clients that failed together


async def run_role(
    config: Config,
    role: str,
    messages: list[dict[str, Any]],
    *,
    tier: str | None = None,
    decision: Decision | None = None,
    on_delta: Callable[[str], None] | None = None,
    on_restart: Callable[[str], None] | None = None,
    context: str = "",
    embed: Callable[[str], Sequence[float]] | None = None,
    tools: Sequence[ToolSpec] = (),
) -> Answer:
    """Answer `messages` with `role`'s tier chain. Raises AllTiersFailed (or BudgetExceeded)
    with a message naming each tier and why when nothing answered. With `tools`, an answer
    may be tool calls instead of text (the agent's steps); those are never cached."""
    run = _Run(config, role, on_delta, on_restart)
    record: dict[str, Any] = {
        "ts": round(time.time(), 3),
        "id": uuid.uuid4().hex[:12],
        "role": role,
        "route": decision.route if decision else None,
        "stage": decision.stage if decision else ("explicit" if tier else None),
        "score": round(decision.score, 4) if decision else None,
        "requested_tier": tier,
    }
    try:
        answer = await _run(run, record, messages, tier, decision, context, embed, list(tools))
    except asyncio.CancelledError:
        _finish(run, record, error="cancelled")
        raise
    except AllTiersFailed as exc:
        _finish(run, record, error="budget" if isinstance(exc, BudgetExceeded) else "all_tiers_failed")
        exc.trace = record
        raise
    return answer


def _finish(run: _Run, record: dict[str, Any], *, error: str | None = None, **extra: Any) -> None:
    record.update(
        steps=run.steps,
        escalations=sum(1 for s in run.steps if s.get("outcome") == "escalated"),
        latency_ms=_ms(run.started),
        ttft_ms=run.ttft_ms,
        prompt_tokens=run.usage.prompt_tokens,
        completion_tokens=run.usage.completion_tokens,
        cost_usd=round(run.cost_usd, 8),
        **extra,
    )
    if error:
        record["error"] = error
    record.setdefault("cache", "off")
    trace.append(record)


async def _run(
    run: _Run,
    record: dict[str, Any],
    messages: list[dict[str, Any]],
    tier_name: str | None,
    decision: Decision | None,
    context: str,
    embed: Callable[[str], Sequence[float]] | None,
    tools: list[ToolSpec],
) -> Answer:
    config = run.config
    if run.role not in ROLE_NAMES:
        raise AllTiersFailed(f"unknown role '{run.role}' (roles: {', '.join(ROLE_NAMES)})")
    role_config = config.roles.get(run.role)
    if not role_config.enabled:
        raise AllTiersFailed(f"role '{run.role}' is disabled (roles.{run.role}.enabled = false)")
    chain = _chain(config, run.role, tier_name, decision)

    # Budgets: checked once up front; paid tiers are skipped when a limit is reached.
    budget = costs.check(config.budgets, run.role)
    if budget.warning:
        log.warning("budget: %s", budget.warning)
        record["budget_warning"] = budget.warning
    if budget.exceeded:
        record["budget_exceeded"] = budget.exceeded
        if config.budgets.on_exceeded == "local" and not any(not config.tiers[t].is_remote for t in chain):
            chain += [n for n, t in config.tiers.items() if not t.is_remote][:1]

    # Layer 0 cache, keyed on the first tier.
    first = config.tiers[chain[0]]
    temperature = role_config.temperature if role_config.temperature is not None else first.temperature
    max_tokens = role_config.max_tokens if role_config.max_tokens is not None else first.max_tokens
    use_cache = (
        config.cache.enabled
        and not tools
        and run.role != "autocomplete"
        and (temperature == 0 or not config.cache.deterministic_only)
    )
    store = response_cache.ResponseCache(ttl_s=config.cache.ttl_s) if use_cache else None
    scope_key = key = ""
    vector: Sequence[float] | None = None
    if store is not None:
        settings = {"temperature": temperature, "max_tokens": max_tokens, "chain": chain}
        scope_key = response_cache.scope(run.role, chain[0], first.model, settings, context)
        key = response_cache.exact_key(scope_key, messages)
        hit = store.get(key)
        if hit is None and config.cache.semantic and embed is not None:
            vector = _embed(embed, messages)
            hit = store.nearest(scope_key, vector, config.cache.semantic_threshold) if vector else None
        record["cache"] = "miss"
        if hit is not None:
            run.show(hit.text)
            record["cache"] = hit.kind
            if hit.similarity is not None:
                record["similarity"] = hit.similarity
            _finish(run, record, tier=hit.tier, model=hit.model)
            return Answer(hit.text, hit.tier, hit.model, Usage(), 0.0, record)

    question = response_cache.request_text(messages)
    best: tuple[str, str, _Attempt] | None = None  # an answer kept while escalating past it
    escalations = 0
    failures: list[str] = []
    for index, name in enumerate(chain):
        tier = config.tiers[name]
        is_last = index == len(chain) - 1
        step: dict[str, Any] = {"tier": name, "provider": tier.provider, "model": tier.model}
        run.steps.append(step)
        wait = cooling_down(name, tier)
        if wait > 0:
            step.update(outcome="skipped", kind="cooldown", reason=f"cooling down for {wait:.0f}s more")
            failures.append(f"{name}: cooling down after repeated failures")
            continue
        if budget.exceeded and costs.may_cost(tier):
            step.update(outcome="skipped", kind="budget", reason=budget.exceeded)
            failures.append(f"{name}: {budget.exceeded}")
            continue
        cascade = role_config.cascade
        request = ChatRequest(
            messages=messages,
            context=context,
            max_tokens=role_config.max_tokens if role_config.max_tokens is not None else tier.max_tokens,
            temperature=role_config.temperature if role_config.temperature is not None else tier.temperature,
            logprobs=cascade.min_mean_logprob is not None and not is_last and tier.provider == "openai",
            connect_timeout_s=config.reliability.connect_timeout_s,
            read_timeout_s=tier.timeout_s,
            tools=tools,
        )
        attempt: _Attempt | None = None
        error: TierError | None = None
        started = time.monotonic()
        tries = 0
        for retry in range(tier.max_retries + 1):
            remaining = run.remaining()
            if remaining <= 0:
                error = TierError("timeout", f"the request deadline ({config.reliability.deadline_s:g}s) passed")
                break
            tries += 1
            try:
                attempt = await _attempt(run, name, tier, request, min(remaining, tier.timeout_s))
                error = None
                break
            except TierError as exc:
                error = exc
                attempt = None
                step.setdefault("errors", []).append(exc.kind)
                if exc.kind != "missing_key":
                    _failed(name, tier, config)
                run.restart(f"{exc}; trying again" if exc.retryable else f"{exc}")
                log.info("%s (attempt %d)", exc, retry + 1)
                if not exc.retryable or retry == tier.max_retries:
                    break
                pause = _backoff(config, retry, exc)
                if pause >= run.remaining():
                    break  # waiting would outlast the deadline: go to the next tier now
                await asyncio.sleep(pause)
        step.update(attempts=tries, latency_ms=_ms(started))
        if attempt is None:
            assert error is not None
            step.update(outcome="error", kind=error.kind, reason=str(error))
            failures.append(str(error))
            if run.remaining() <= 0:
                break
            continue
        step["ttft_ms"] = attempt.ttft_ms
        run.charge(name, tier, attempt.usage, step)
        if attempt.mean_logprob is not None:
            step["mean_logprob"] = round(attempt.mean_logprob, 4)
        if not attempt.text.strip() and not attempt.tool_calls:
            _failed(name, tier, config)
            step.setdefault("errors", []).append("empty")
            step.update(outcome="error", kind="empty", reason=f"tier '{name}' answered with no text")
            failures.append(f"tier '{name}' answered with no text")
            run.restart(f"tier '{name}' answered with no text")
            continue
        _succeeded(name, tier)

        # Cascade: is this answer good enough to stop?
        why: str | None = None
        if not is_last and escalations < cascade.max_steps and not attempt.tool_calls:
            low = cascade.min_mean_logprob
            if low is not None and attempt.mean_logprob is not None and attempt.mean_logprob < low:
                why = f"mean token log-prob {attempt.mean_logprob:.2f} is below {low:g}"
            elif cascade.self_check:
                verdict = await _self_check(run, name, tier, question, attempt.text)
                step["self_check"] = {True: "pass", False: "fail", None: "error"}[verdict]
                if verdict is False:
                    why = f"tier '{name}' judged its own answer inadequate"
        if why:
            escalations += 1
            step.update(outcome="escalated", reason=why)
            best = (name, tier.model, attempt)
            run.restart(f"escalating: {why}")
            continue
        step["outcome"] = "ok"
        if attempt.tool_calls:
            step["tool_calls"] = [call.name for call in attempt.tool_calls]
        answer = _answered(run, record, name, tier.model, attempt.text, store, key, scope_key, vector, embed, messages)
        answer.tool_calls = attempt.tool_calls
        return answer

    if best is not None:
        name, model, attempt = best
        record["kept"] = f"every tier after '{name}' failed; its answer stands"
        run.restart(record["kept"])
        run.show(attempt.text)
        return _answered(run, record, name, model, attempt.text, store, key, scope_key, vector, embed, messages)
    listed = "\n".join(f"  - {reason}" for reason in failures) or "  - no tier was tried"
    if budget.exceeded and config.budgets.on_exceeded == "refuse":
        raise BudgetExceeded(
            f'tinyarms: {budget.exceeded}; refusing paid tiers (budgets.on_exceeded = "refuse")\n{listed}'
        )
    raise AllTiersFailed(f"tinyarms: every tier of role '{run.role}' failed:\n{listed}")


def _embed(embed: Callable[[str], Sequence[float]], messages: list[dict[str, Any]]) -> Sequence[float] | None:
    """The request's vector for the semantic cache; a failing embedder only costs the cache."""
    try:
        return embed(response_cache.request_text(messages))
    except Exception as exc:
        log.warning("the semantic cache's embedder failed (%s); skipping it", exc)
        return None


def _answered(
    run: _Run,
    record: dict[str, Any],
    name: str,
    model: str,
    text: str,
    store: response_cache.ResponseCache | None,
    key: str,
    scope_key: str,
    vector: Sequence[float] | None,
    embed: Callable[[str], Sequence[float]] | None,
    messages: list[dict[str, Any]],
) -> Answer:
    if store is not None:
        if vector is None and run.config.cache.semantic and embed is not None:
            vector = _embed(embed, messages)
        try:
            store.put(key, scope_key, name, model, text, vector)
        except Exception as exc:
            log.warning("could not store the answer in the cache: %s", exc)
    _finish(run, record, tier=name, model=model)
    log.info("role %s answered by tier %s in %.0f ms ($%.6f)", run.role, name, record["latency_ms"], run.cost_usd)
    return Answer(text, name, model, attrs.evolve(run.usage), run.cost_usd, record)
