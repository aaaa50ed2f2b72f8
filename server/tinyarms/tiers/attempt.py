"""One tier, tried: the streamed attempt and the retries around it.

Connect errors, 429 and 5xx are retried with exponential backoff and full jitter
(honouring Retry-After) within the request's deadline: `backoff_base_s * 2**n` capped at
`backoff_max_s` (0.5 s, 1 s, 2 s ... 8 s by default). A retry that would outlast the
deadline is not waited for: the chain moves to the next tier at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING

from attrs import define, field

from tinyarms.backends import ChatRequest, Delta, TierError, ToolCall, Usage, stream_chat
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

    @property
    def mean_logprob(self) -> float | None:
        return self.logprob_sum / self.logprob_tokens if self.logprob_tokens else None


async def stream_once(
    run: Run, name: str, tier: Tier, request: ChatRequest, timeout: float, *, show: bool = True
) -> Attempt:
    """One call to the tier, streamed to the user when `show`; raises TierError."""
    result = Attempt()
    started = time.monotonic()

    async def consume() -> None:
        client = run.clients.get() if tier.is_remote else None
        async for event in stream_chat(tier, name, request, client=client):
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


def backoff(config: Config, retry: int, error: TierError) -> float:
    if error.retry_after is not None:
        return error.retry_after
    cap = min(config.reliability.backoff_max_s, config.reliability.backoff_base_s * 2**retry)
    return random.uniform(0, cap)  # full jitter: spreads out clients that failed together


async def with_retries(run: Run, name: str, tier: Tier, request: ChatRequest, step: Step) -> Attempt | TierError:
    """The tier's answer, or the error of its last attempt; every attempt is noted in `step`."""
    config = run.config
    error: TierError | None = None
    started = time.monotonic()
    tries = 0
    try:
        for retry in range(tier.max_retries + 1):
            remaining = run.remaining()
            if remaining <= 0:
                return TierError("timeout", f"the request deadline ({config.reliability.deadline_s:g}s) passed")
            tries += 1
            try:
                return await stream_once(run, name, tier, request, min(remaining, tier.timeout_s))
            except TierError as exc:
                error = exc
            step.errors.append(error.kind)
            if error.kind != "missing_key":
                run.health.failed(name, tier, config.reliability)
            run.restart(f"{error}; trying again" if error.retryable else f"{error}")
            log.info("%s (attempt %d)", error, retry + 1)
            if not error.retryable or retry == tier.max_retries:
                break
            pause = backoff(config, retry, error)
            if pause >= run.remaining():
                break  # waiting would outlast the deadline: go to the next tier now
            await asyncio.sleep(pause)
        assert error is not None
        return error
    finally:
        step.attempts, step.latency_ms = tries, ms_since(started)
