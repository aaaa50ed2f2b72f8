"""One tier, tried: the streamed attempt and the retries around it, over the tier's replicas.

Connect errors, 429 and 5xx are retried with exponential backoff and full jitter
(honouring Retry-After) within the request's deadline: `backoff_base_s * 2**n` capped at
`backoff_max_s` (0.5 s, 1 s, 2 s ... 8 s by default). A retry that would outlast the
deadline is not waited for: the chain moves to the next tier at once. With several
replicas (`base_urls`) a failed attempt moves to another replica at once (failover, not a
retry); a 429/503 holds its replica for the Retry-After (health.py), so the request goes
elsewhere or waits, and never sends to that replica before the time.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING

import attrs
from attrs import define, field

from tinyarms.backends import ChatRequest, Delta, TierError, ToolCall, Usage, stream_chat
from tinyarms.tiers.health import Endpoint
from tinyarms.tiers.run import ms_since

if TYPE_CHECKING:
    from tinyarms.config import Config, Tier
    from tinyarms.tiers.record import Step
    from tinyarms.tiers.run import Run

log = logging.getLogger(__name__)


@define
class Attempt:
    text: str = ""
    usage: Usage = field(factory=Usage)
    logprob_sum: float = 0.0
    logprob_tokens: int = 0
    ttft_ms: float | None = None
    tool_calls: list[ToolCall] = field(factory=list)  # when the request offered tools
    replica: Endpoint = None  # the endpoint that answered

    @property
    def mean_logprob(self) -> float | None:
        return self.logprob_sum / self.logprob_tokens if self.logprob_tokens else None


async def stream_once(
    run: Run,
    name: str,
    tier: Tier,
    request: ChatRequest,
    timeout: float,
    *,
    show: bool = True,
    replica: Endpoint = None,
) -> Attempt:
    """One call to the tier (to `replica`, one of its `base_urls`; the first when None),
    streamed to the user when `show`; raises TierError."""
    target = tier
    if tier.base_urls:
        replica = replica if replica is not None else tier.base_urls[0]
        target = attrs.evolve(tier, base_url=replica, base_urls=[])
    result = Attempt(replica=replica if tier.base_urls else tier.base_url)
    started = time.monotonic()

    async def consume() -> None:
        client = run.clients.get() if tier.is_remote else None
        async for event in stream_chat(target, name, request, client=client):
            if isinstance(event, Delta):
                if result.ttft_ms is None:
                    result.ttft_ms = ms_since(started)
                result.text += event.text
                if event.logprob is not None:
                    result.logprob_sum += event.logprob
                    result.logprob_tokens += event.tokens or 1
                if show:
                    run.show(event.text)
            elif isinstance(event, ToolCall):
                result.tool_calls.append(event)
            else:
                result.usage = event

    try:
        await asyncio.wait_for(consume(), timeout)  # wait_for, not asyncio.timeout: Python 3.10 too
    except TimeoutError:
        raise TierError("timeout", f"tier '{name}' did not finish within {timeout:.3g}s") from None
    return result


def jitter(config: Config, retry: int) -> float:
    """Retry n waits up to `backoff_base_s * 2**n` (capped), full jitter: spreads out clients that failed together."""
    return random.uniform(0, min(config.reliability.backoff_max_s, config.reliability.backoff_base_s * 2**retry))


def backpressure(config: Config, retry: int, error: TierError) -> float | None:
    """How long a replica is left alone after `error`: its Retry-After on a 429 or 503 (a
    jittered backoff when it gave none); None for errors that are not backpressure."""
    if error.kind == "rate_limit" or error.status == 503:
        return error.retry_after if error.retry_after is not None else jitter(config, retry)
    if error.retry_after is not None:  # another 5xx that said when to come back
        return error.retry_after
    return None


async def with_retries(run: Run, name: str, tier: Tier, request: ChatRequest, step: Step) -> Attempt | TierError:
    """The tier's answer, or the error of its last attempt; every attempt is noted in `step`.

    Each attempt goes to the replica `Health.pick` chooses. Moving to a replica this request
    has not tried yet is failover and happens at once; calling a tried one again is a retry
    (at most `max_retries`), after a jittered backoff unless a 429/503 hold already made it
    wait. An error not worth retrying (a timeout, a 4xx, a malformed answer) still moves on to
    replicas not tried yet, never back to a tried one. When every usable replica is held, the
    request waits for the soonest one if that fits its deadline, else gives up on the tier."""
    config, health = run.config, run.health
    error: TierError | None = None
    started = time.monotonic()
    tried: list[Endpoint] = []
    held: set[Endpoint] = set()  # replicas a 429/503 made this request wait for
    retries = 0
    fresh_only = False  # after an error not worth retrying: only replicas not tried yet
    try:
        while True:
            if run.remaining() <= 0:
                return TierError("timeout", f"the request deadline ({config.reliability.deadline_s:g}s) passed")
            pick = health.pick(name, tier, tried)
            if pick is None:
                return error or TierError("connect", f"every replica of tier '{name}' is cooling down")
            if pick.wait > 0:
                if pick.wait >= run.remaining():
                    why = f"tier '{name}' asked to wait {pick.wait:.1f}s, past the request deadline"
                    return error or TierError("rate_limit", why)
                await asyncio.sleep(pick.wait)
                continue
            url = pick.url
            if url in tried and fresh_only:
                break
            if url in tried:
                retries += 1
                if retries > tier.max_retries:
                    break
                if url not in held:
                    pause = jitter(config, retries - 1)
                    if pause >= run.remaining():
                        break  # waiting would outlast the deadline: go to the next tier now
                    await asyncio.sleep(pause)
            tried.append(url)
            outcome = await _attempt(run, name, tier, request, step, url)
            if isinstance(outcome, Attempt):
                return outcome
            error = outcome
            hold = backpressure(config, retries, error)
            if hold is not None:
                health.hold(name, tier, url, hold)
                held.add(url)
            if not error.retryable:
                if error.kind == "missing_key" or len(tried) >= len(tier.endpoints):
                    break
                fresh_only = True  # a hung or broken replica: the others may still answer
        assert error is not None
        return error
    finally:
        step.attempts, step.latency_ms = len(tried), ms_since(started)


async def _attempt(
    run: Run, name: str, tier: Tier, request: ChatRequest, step: Step, url: Endpoint
) -> Attempt | TierError:
    """One call to one replica, counted in flight and noted in `step` (with the replica, when
    the tier has several)."""
    started = time.monotonic()
    try:
        with run.health.sending(name, tier, url):
            attempt = await stream_once(run, name, tier, request, min(run.remaining(), tier.timeout_s), replica=url)
    except TierError as error:
        step.errors.append(error.kind)
        step.replica_attempt(tier, url, ms_since(started), error.kind)
        if error.kind != "missing_key":
            run.health.failed(name, tier, run.config.reliability, url)
        run.restart(f"{error}; trying again" if error.retryable else f"{error}")
        log.info("%s (attempt %d)", error, len(step.errors))
        return error
    step.replica_attempt(tier, url, ms_since(started), None)
    return attempt
