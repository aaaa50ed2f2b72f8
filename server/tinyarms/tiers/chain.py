"""A role's chain of tiers: the walk every model call that may cost money goes through.

`run_role` walks the chain (the role's tier, then `escalate_to`), and for each tier:
skips it while it cools down (health.py) or when the budget forbids paid calls
(costs.py), tries it with retries (attempt.py), checks the answer (empty, then the
cascade: cascade.py) and falls back or escalates when it fails. The response cache
(cache.py) sits in front, spend goes to the ledger, and every request leaves one
decision-trace record (record.py, trace.py). Each step below fits on a screen:
`_prepare` (role, chain, budget), `_cached`, `_walk`, `_try_tier`, `_failed`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from attrs import define, field

from tinyarms.backends import ChatRequest, TierError, ToolCall, ToolSpec, Usage
from tinyarms.backends.registry import provider
from tinyarms.config.schema import ROLE_NAMES
from tinyarms.tiers import cache as response_cache
from tinyarms.tiers import costs
from tinyarms.tiers.attempt import Attempt, with_retries
from tinyarms.tiers.cascade import escalation_reason
from tinyarms.tiers.clients import HttpClients
from tinyarms.tiers.health import Health
from tinyarms.tiers.record import Record, Step
from tinyarms.tiers.run import Run

if TYPE_CHECKING:
    from tinyarms.config import Config
    from tinyarms.config.schema import Role
    from tinyarms.router.decision import Decision

log = logging.getLogger(__name__)


@define
class Answer:
    text: str
    tier: str
    model: str
    usage: Usage
    cost_usd: float
    trace: dict[str, Any]  # the decision-trace record written for this request (Record.to_dict())
    tool_calls: list[ToolCall] = field(factory=list)  # when the request offered tools (the agent's steps)


class AllTiersFailed(Exception):
    """No tier produced an answer. The message names every tier and why, for the user."""

    def __init__(self, message: str, trace: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.trace = trace or {}


class BudgetExceeded(AllTiersFailed):
    """A budget is spent and `budgets.on_exceeded = "refuse"`."""


@define
class Shared:
    """What every request in a process shares: tier health and the pooled HTTP clients."""

    health: Health = field(factory=Health)
    clients: HttpClients = field(factory=HttpClients)


PROCESS = Shared()


def reset_cooldowns() -> None:
    PROCESS.health.reset()


async def aclose() -> None:
    """Close this loop's pooled HTTP client (the CLI before its loop ends, the server at shutdown)."""
    await PROCESS.clients.aclose()


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
    cache_scope: str = "",
    embed: Callable[[str], Sequence[float]] | None = None,
    shared: Shared | None = None,
    tools: Sequence[ToolSpec] = (),
) -> Answer:
    """Answer `messages` with `role`'s tier chain. Raises AllTiersFailed (or BudgetExceeded)
    with a message naming each tier and why when nothing answered. `embed` feeds the
    semantic cache (`cache.semantic`); without it only exact repeats are reused. With
    `tools`, an answer may be tool calls instead of text (the agent's steps); those
    requests are never cached. `context` is file text sent to the model beside the messages;
    `cache_scope` (e.g. a hash of the selection) only keeps cached answers apart, never sent."""
    record = Record(
        role=role,
        route=decision.route if decision else None,
        stage=decision.stage if decision else ("explicit" if tier else None),
        score=round(decision.score, 4) if decision else None,
        requested_tier=tier,
    )
    if decision is not None and decision.strength is not None:
        found = decision.strength
        record.request_tokens, record.context_tokens = found.request_tokens, found.context_tokens
        record.difficulty, record.strong_threshold, record.strong = found.difficulty, found.threshold, found.strong
    shared = shared or PROCESS
    run = Run(config, record, health=shared.health, clients=shared.clients, on_delta=on_delta, on_restart=on_restart)
    try:
        chain, budget = _prepare(run, tier, decision)
        lookup = None if tools else _lookup(run, chain, messages, context + cache_scope, embed)
        if lookup is not None and (hit := _cached(run, lookup)) is not None:
            return hit
        return await _walk(run, chain, budget, messages, context, lookup, list(tools))
    except asyncio.CancelledError:
        run.finish(error="cancelled")
        raise
    except AllTiersFailed as exc:
        exc.trace = run.finish(error="budget" if isinstance(exc, BudgetExceeded) else "all_tiers_failed").to_dict()
        raise


# -- before the walk -----------------------------------------------------------------------


def _prepare(run: Run, tier: str | None, decision: Decision | None) -> tuple[list[str], costs.BudgetCheck]:
    """The role checked, the chain of tier names, and where the budget stands."""
    config, role = run.config, run.role
    if role not in ROLE_NAMES:
        raise AllTiersFailed(f"unknown role '{role}' (roles: {', '.join(ROLE_NAMES)})")
    role_config = config.roles.get(role)
    if not role_config.enabled:
        raise AllTiersFailed(f"role '{role}' is disabled (roles.{role}.enabled = false)")
    first = tier or (decision.tier if decision is not None else None) or role_config.tier
    # A tier chosen by the caller or the route goes first; the role's own chain still backs it up.
    chain = list(dict.fromkeys([first, role_config.tier, *role_config.escalate_to]))
    unknown = [t for t in chain if t not in config.tiers]
    if unknown:
        raise AllTiersFailed(
            f"role '{role}' names unknown tier '{unknown[0]}' (defined: {', '.join(sorted(config.tiers))})"
        )
    # Budgets: checked once up front; paid tiers are skipped when a limit is reached.
    budget = costs.check(config.budgets, role)
    if budget.warning:
        log.warning("budget: %s", budget.warning)
        run.record.budget_warning = budget.warning
    if budget.exceeded:
        run.record.budget_exceeded = budget.exceeded
        if config.budgets.on_exceeded == "local" and all(config.tiers[t].is_remote for t in chain):
            chain += [n for n, t in config.tiers.items() if not t.is_remote][:1]
    return chain, budget


def _setting(role: Role, tier_value: Any, name: str) -> Any:
    """A role's max_tokens / temperature, else the tier's."""
    value = getattr(role, name)
    return value if value is not None else tier_value


def _lookup(
    run: Run,
    chain: list[str],
    messages: list[dict[str, Any]],
    context: str,
    embed: Callable[[str], Sequence[float]] | None,
) -> response_cache.Lookup | None:
    """Layer 0, keyed on the first tier; None when this request may not be cached."""
    config = run.config
    role, first = config.roles.get(run.role), config.tiers[chain[0]]
    temperature = _setting(role, first.temperature, "temperature")
    max_tokens = _setting(role, first.max_tokens, "max_tokens")
    deterministic = temperature == 0 or not config.cache.deterministic_only
    if not (config.cache.enabled and run.role != "autocomplete" and deterministic):
        return None
    # The system text is part of the scope: the same words under another route's task are another question.
    system = [m.get("content", "") for m in messages if m.get("role") == "system"]
    settings = {"temperature": temperature, "max_tokens": max_tokens, "chain": chain, "system": system}
    scope_key = response_cache.scope(run.role, chain[0], first.model, settings, context)
    return response_cache.Lookup(
        response_cache.ResponseCache(ttl_s=config.cache.ttl_s),
        scope_key,
        messages,
        embed=embed if config.cache.semantic else None,
        threshold=config.cache.semantic_threshold,
    )


def _cached(run: Run, lookup: response_cache.Lookup) -> Answer | None:
    run.record.cache = "miss"
    hit = lookup.find()
    if hit is None:
        return None
    run.show(hit.text)
    run.record.cache = hit.kind
    run.record.similarity = hit.similarity
    record = run.finish(tier=hit.tier, model=hit.model)
    return Answer(hit.text, hit.tier, hit.model, Usage(), 0.0, record.to_dict())


# -- the walk ------------------------------------------------------------------------------


@define
class _Tried:
    """What one tier gave: an answer (maybe not good enough), or why not."""

    attempt: Attempt | None = None
    failure: str | None = None  # why this tier gave no answer
    out_of_time: bool = False  # the request's deadline passed while trying it
    escalate: str | None = None  # why its answer is not good enough to stop at


async def _walk(
    run: Run,
    chain: list[str],
    budget: costs.BudgetCheck,
    messages: list[dict[str, Any]],
    context: str,
    lookup: response_cache.Lookup | None,
    tools: list[ToolSpec],
) -> Answer:
    cascade = run.config.roles.get(run.role).cascade
    question = response_cache.request_text(messages)
    best: tuple[str, Attempt] | None = None  # an answer kept while escalating past it
    failures: list[str] = []
    for index, name in enumerate(chain):
        may_escalate = index < len(chain) - 1 and run.record.escalations < cascade.max_steps
        tried = await _try_tier(run, name, budget, messages, context, question, may_escalate, tools)
        if tried.attempt is None:
            failures.append(tried.failure or f"tier '{name}' gave no answer")
            if tried.out_of_time:
                break
            continue
        if tried.escalate:
            run.record.escalations += 1
            best = (name, tried.attempt)
            run.restart(f"escalating: {tried.escalate}")
            continue
        return _answered(run, name, tried.attempt, lookup)
    if best is not None:
        name, attempt = best
        run.record.kept = f"every tier after '{name}' failed; its answer stands"
        run.restart(run.record.kept)
        run.show(attempt.text)
        return _answered(run, name, attempt, lookup)
    raise _failed(run, budget, failures)


async def _try_tier(
    run: Run,
    name: str,
    budget: costs.BudgetCheck,
    messages: list[dict[str, Any]],
    context: str,
    question: str,
    may_escalate: bool,
    tools: list[ToolSpec],
) -> _Tried:
    config = run.config
    tier, role = config.tiers[name], config.roles.get(run.role)
    step = Step(tier=name, provider=tier.provider, model=tier.model)
    run.record.steps.append(step)
    wait = run.health.cooling_down(name, tier)
    if wait > 0:
        step.skipped("cooldown", f"cooling down for {wait:.0f}s more")
        return _Tried(failure=f"{name}: cooling down after repeated failures")
    if budget.exceeded and costs.may_cost(tier):
        step.skipped("budget", budget.exceeded)
        return _Tried(failure=f"{name}: {budget.exceeded}")
    request = ChatRequest(
        messages=messages,
        context=context,
        max_tokens=_setting(role, tier.max_tokens, "max_tokens"),
        temperature=_setting(role, tier.temperature, "temperature"),
        logprobs=role.cascade.min_mean_logprob is not None and may_escalate and provider(tier.provider).logprobs,
        connect_timeout_s=config.reliability.connect_timeout_s,
        read_timeout_s=tier.timeout_s,
        tools=tools,
    )
    attempt = await with_retries(run, name, tier, request, step)
    if isinstance(attempt, TierError):
        step.outcome, step.kind, step.reason = "error", attempt.kind, str(attempt)
        return _Tried(failure=str(attempt), out_of_time=run.remaining() <= 0)
    step.ttft_ms = attempt.ttft_ms
    run.charge(name, tier, attempt.usage, step)
    if attempt.mean_logprob is not None:
        step.mean_logprob = round(attempt.mean_logprob, 4)
    if not attempt.text.strip() and not attempt.tool_calls:
        empty = f"tier '{name}' answered with no text"
        run.health.failed(name, tier, config.reliability, attempt.replica)
        step.errors.append("empty")
        step.outcome, step.kind, step.reason = "error", "empty", empty
        run.restart(empty)
        return _Tried(failure=empty)
    run.health.succeeded(name, tier, attempt.replica)
    judge = may_escalate and not attempt.tool_calls  # the cascade judges answers, not tool calls
    why = await escalation_reason(run, name, tier, role.cascade, question, attempt, step) if judge else None
    step.outcome, step.reason = ("escalated", why) if why else ("ok", None)
    return _Tried(attempt=attempt, escalate=why)


# -- after the walk ------------------------------------------------------------------------


def _answered(run: Run, name: str, attempt: Attempt, lookup: response_cache.Lookup | None) -> Answer:
    model = run.config.tiers[name].model
    if lookup is not None:
        lookup.keep(name, model, attempt.text)
    record = run.finish(tier=name, model=model)
    log.info("role %s answered by tier %s in %.0f ms ($%.6f)", run.role, name, record.latency_ms, record.cost_usd)
    usage = attrs.evolve(run.usage)
    return Answer(attempt.text, name, model, usage, record.cost_usd, record.to_dict(), list(attempt.tool_calls))


def _failed(run: Run, budget: costs.BudgetCheck, failures: list[str]) -> AllTiersFailed:
    listed = "\n".join(f"  - {reason}" for reason in failures) or "  - no tier was tried"
    if budget.exceeded and run.config.budgets.on_exceeded == "refuse":
        return BudgetExceeded(
            f'tinyarms: {budget.exceeded}; refusing paid tiers (budgets.on_exceeded = "refuse")\n{listed}'
        )
    return AllTiersFailed(f"tinyarms: every tier of role '{run.role}' failed:\n{listed}")
