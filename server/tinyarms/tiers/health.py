"""Tier health: which tiers are cooling down after repeated failures.

LiteLLM's semantics: `reliability.cooldown_failures` consecutive failed attempts (3) put a
tier in cooldown for `reliability.cooldown_s` (30 s); any success resets the count. A
missing key does not count: it is a setup problem, not an outage. One `Health` per
process (like LiteLLM's in-memory cooldowns); tests make their own or `reset()` it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from attrs import define

if TYPE_CHECKING:
    from tinyarms.config import Tier
    from tinyarms.config.schema import Reliability

log = logging.getLogger(__name__)


@define
class _State:
    failures: int = 0
    until: float = 0.0


def _key(name: str, tier: Tier) -> str:
    return f"{name}|{tier.provider}|{tier.base_url}|{tier.model}"


class Health:
    def __init__(self) -> None:
        self._tiers: dict[str, _State] = {}

    def cooling_down(self, name: str, tier: Tier) -> float:
        """Seconds left in this tier's cooldown (0 when it may be called)."""
        state = self._tiers.get(_key(name, tier))
        return max(0.0, state.until - time.monotonic()) if state else 0.0

    def failed(self, name: str, tier: Tier, reliability: Reliability) -> None:
        state = self._tiers.setdefault(_key(name, tier), _State())
        state.failures += 1
        if state.failures >= reliability.cooldown_failures:
            state.until = time.monotonic() + reliability.cooldown_s
            state.failures = 0
            log.warning(
                "tier '%s' failed %d times in a row: cooling down for %gs",
                name,
                reliability.cooldown_failures,
                reliability.cooldown_s,
            )

    def succeeded(self, name: str, tier: Tier) -> None:
        self._tiers.pop(_key(name, tier), None)

    def reset(self) -> None:
        self._tiers.clear()
