"""The state of one `run_role` call: the clock, what the user has seen, the spend, the record.

Streaming: deltas go to `on_delta` as they arrive. When text already shown has to be
abandoned (a stream cut, a retry, a fallback, an escalation), `on_restart(reason)` comes
first, so a client clears it: two answers are never silently mixed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tinyarms.backends import Usage
from tinyarms.tiers import costs, redact, trace
from tinyarms.tiers.record import Record, Step

if TYPE_CHECKING:
    from tinyarms.config import Config, Tier
    from tinyarms.tiers.clients import HttpClients
    from tinyarms.tiers.health import Health

log = logging.getLogger(__name__)


def ms_since(since: float) -> float:
    return round((time.monotonic() - since) * 1000, 1)


class Run:
    def __init__(
        self,
        config: Config,
        record: Record,
        *,
        health: Health,
        clients: HttpClients,
        on_delta: Callable[[str], None] | None,
        on_restart: Callable[[str], None] | None,
    ) -> None:
        self.config = config
        self.role = record.role
        self.record = record
        self.health = health
        self.clients = clients
        self.on_delta = on_delta
        self.on_restart = on_restart
        self.started = time.monotonic()
        self.deadline = self.started + config.reliability.deadline_s
        self.shown = False  # text of an answer that may still be abandoned is on screen
        self.usage = Usage()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def show(self, text: str) -> None:
        if self.record.ttft_ms is None:
            self.record.ttft_ms = ms_since(self.started)
        self.shown = True
        if self.on_delta:
            self.on_delta(text)

    def restart(self, reason: str) -> None:
        """Abandon what the user saw; say why."""
        if self.shown and self.on_restart:
            self.on_restart(reason)
        self.shown = False

    def charge(self, name: str, tier: Tier, usage: Usage, step: Step | None) -> None:
        """Price `usage`, add it to the totals and the ledger (and to `step`, when given)."""
        spent = costs.cost(tier, usage)
        if step is not None:
            step.charged(usage, spent.usd, spent.source)
        self.record.cost_usd += spent.usd
        self.usage.prompt_tokens += usage.prompt_tokens
        self.usage.completion_tokens += usage.completion_tokens
        try:
            costs.record(self.role, name, usage, spent.usd)
        except Exception as exc:  # the ledger is bookkeeping: losing a row must not lose the answer
            log.warning("could not record spend: %s", exc)

    def finish(self, *, tier: str | None = None, model: str | None = None, error: str | None = None) -> Record:
        """Totals into the record, and the record into the trace."""
        record = self.record
        record.tier, record.model, record.error = tier, model, error
        record.escalations = sum(1 for s in record.steps if s.outcome == "escalated")
        record.latency_ms = ms_since(self.started)
        record.prompt_tokens = self.usage.prompt_tokens
        record.completion_tokens = self.usage.completion_tokens
        record.cost_usd = round(record.cost_usd, 8)
        if self.config.trace.enabled:
            data = record.to_dict()  # `trace.text = false` (the privacy preset): names and numbers only
            trace.append(data if self.config.trace.text else redact.names_only(data))
        return record
