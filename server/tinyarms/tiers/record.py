"""The decision-trace record of one request, typed: what `trace.jsonl` holds and what a
front door returns as `trace`.

Each field is written in one place (the chain walk, an attempt, the cache, the budget
check); `to_dict()` is the JSON shape, unchanged from the dict it replaced: optional
fields are left out until set. Records hold names, numbers and reasons tinyarms wrote
itself: never request or answer text, never keys.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import attrs
from attrs import define, field

from tinyarms.tiers.health import label

if TYPE_CHECKING:
    from tinyarms.backends import Usage
    from tinyarms.config import Tier

_OPTIONAL = {"omit_none": True}


def _optional() -> Any:
    return field(default=None, metadata=_OPTIONAL)


@define(kw_only=True)
class Step:
    """One tier of the chain, as it was tried."""

    tier: str
    provider: str
    model: str
    outcome: str | None = _optional()  # ok | error | skipped | escalated
    kind: str | None = _optional()  # why it was skipped or failed (an ErrorKind, cooldown, budget)
    reason: str | None = _optional()
    errors: list[str] = field(factory=list)  # every failed attempt's kind, retried or not
    attempts: int | None = _optional()
    latency_ms: float | None = _optional()
    ttft_ms: float | None = _optional()
    prompt_tokens: int | None = _optional()
    completion_tokens: int | None = _optional()
    cost_usd: float | None = _optional()
    price: str | None = _optional()  # local | config | genai-prices | unknown
    cache_read_tokens: int | None = _optional()
    usage: str | None = _optional()  # "estimated" when the provider sent none
    mean_logprob: float | None = _optional()
    self_check: str | None = _optional()  # pass | fail | error
    # A tier with several replicas (`base_urls`): the one whose answer stood (or that failed
    # last), and every attempt as {"replica", "latency_ms", "error"} for `tinyarms stats`.
    replica: str | None = _optional()
    replicas: list[dict[str, Any]] | None = _optional()

    def charged(self, usage: Usage, usd: float, price: str) -> None:
        self.prompt_tokens = usage.prompt_tokens
        self.completion_tokens = usage.completion_tokens
        self.cost_usd = round(usd, 8)
        self.price = price
        if usage.cache_read_tokens:
            self.cache_read_tokens = usage.cache_read_tokens
        if usage.estimated:
            self.usage = "estimated"

    def replica_attempt(self, tier: Tier, url: str | None, latency_ms: float, error: str | None) -> None:
        """Note one attempt on one replica (only for tiers that list `base_urls`)."""
        if not tier.base_urls:
            return
        self.replica = label(url)
        self.replicas = [*(self.replicas or []), {"replica": self.replica, "latency_ms": latency_ms, "error": error}]

    def skipped(self, kind: str, reason: str) -> None:
        self.outcome, self.kind, self.reason = "skipped", kind, reason

    def to_dict(self) -> dict[str, Any]:
        data = _without_unset(self)
        if not self.errors:
            del data["errors"]
        return data


@define(kw_only=True)
class Record:
    """One request: the decision that sent it, every tier tried, the totals."""

    ts: float = field(factory=lambda: round(time.time(), 3))
    id: str = field(factory=lambda: uuid.uuid4().hex[:12])
    role: str
    route: str | None = None
    stage: str | None = None
    score: float | None = None
    requested_tier: str | None = None
    # Strong or weak (router/strength.py): the request's size, its difficulty score, the threshold
    # in force and whether it went straight to the strong tier. `router calibrate` and
    # `router fit --from-log` read these back.
    request_tokens: int | None = _optional()
    context_tokens: int | None = _optional()
    difficulty: float | None = _optional()
    strong_threshold: float | None = _optional()
    strong: bool | None = _optional()
    budget_warning: str | None = _optional()
    budget_exceeded: str | None = _optional()
    cache: str = "off"  # off | miss | hit | semantic-hit
    similarity: float | None = _optional()
    steps: list[Step] = field(factory=list)
    escalations: int = 0
    latency_ms: float | None = None
    ttft_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    tier: str | None = _optional()  # the tier whose answer stood
    model: str | None = _optional()
    kept: str | None = _optional()  # why an escalated-past answer stood
    error: str | None = _optional()  # cancelled | budget | all_tiers_failed

    def to_dict(self) -> dict[str, Any]:
        data = _without_unset(self)
        data["steps"] = [step.to_dict() for step in self.steps]
        return data


def _without_unset(instance: Any) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for spec in attrs.fields(type(instance)):
        value = getattr(instance, spec.name)
        if value is None and spec.metadata.get("omit_none"):
            continue
        data[spec.name] = value
    return data
