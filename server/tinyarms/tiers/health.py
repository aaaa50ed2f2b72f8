"""Tier health, per replica: which endpoints are cooling down, which asked to be left alone
for a while, and how many requests each has in flight.

A tier has one endpoint (`base_url`) or several replicas of the same model (`base_urls`).
Each replica keeps its own state:

- **cooldown** (LiteLLM's semantics): `reliability.cooldown_failures` consecutive failed
  attempts (3) take it out for `reliability.cooldown_s` (30 s); any success resets the count.
  A missing key does not count: it is a setup problem, not an outage. A tier is skipped only
  while every one of its replicas cools down.
- **hold**: a 429 or 503 (backpressure) keeps it unused until its `Retry-After` (or a jittered
  backoff when the server gave none), so a busy server is never hammered.
- **in flight**: requests sent and not yet finished. `pick` takes the replica with the fewest
  (ties at random), preferring ones this request has not tried yet.

One `Health` per process (like LiteLLM's in-memory cooldowns); tests make their own or
`reset()` it. The state of a tier with one endpoint is exactly the old per-tier state.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from attrs import define

if TYPE_CHECKING:
    from tinyarms.config import Tier
    from tinyarms.config.schema import Reliability

log = logging.getLogger(__name__)

Endpoint = str | None  # a replica's API root; None: the provider's default
LONGEST_HOLD_S = 3600.0  # a Retry-After beyond this (a far-off date) is read as an hour


@define
class _State:
    failures: int = 0  # consecutive failed attempts
    until: float = 0.0  # cooling down until (monotonic)
    not_before: float = 0.0  # held by a 429/503 until (monotonic)
    in_flight: int = 0


@define(frozen=True)
class Pick:
    """The replica to call now (`wait` 0), or how long until one may be called."""

    url: Endpoint
    wait: float = 0.0


def label(url: Endpoint) -> str:
    """A replica as the trace and `tinyarms stats` show it: no user, password or query."""
    if url is None:
        return "(default)"
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "(invalid URL)"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path.rstrip('/')}"


def _key(name: str, tier: Tier, url: Endpoint) -> str:
    return f"{name}|{tier.provider}|{url}|{tier.model}"


class Health:
    def __init__(self) -> None:
        self._replicas: dict[str, _State] = {}

    def _state(self, name: str, tier: Tier, url: Endpoint) -> _State:
        return self._replicas.setdefault(_key(name, tier, url), _State())

    def cooling_down(self, name: str, tier: Tier) -> float:
        """Seconds until some replica of this tier is out of its cooldown (0 when one may be called)."""
        now = time.monotonic()
        return min(max(0.0, self._state(name, tier, url).until - now) for url in tier.endpoints)

    def pick(self, name: str, tier: Tier, tried: Collection[Endpoint] = ()) -> Pick | None:
        """The replica to call: not cooling down, not held, fewest in flight (ties at random),
        one not in `tried` when there is one. None when every replica cools down; a `wait`
        when every other one is held (the soonest it may be called)."""
        now = time.monotonic()
        states = {url: self._state(name, tier, url) for url in tier.endpoints}
        usable = [url for url, state in states.items() if state.until <= now]
        if not usable:
            return None
        ready = [url for url in usable if states[url].not_before <= now]
        if not ready:
            soonest = min(usable, key=lambda url: states[url].not_before)
            return Pick(soonest, states[soonest].not_before - now)
        fresh = [url for url in ready if url not in tried] or ready
        fewest = min(states[url].in_flight for url in fresh)
        return Pick(random.choice([url for url in fresh if states[url].in_flight == fewest]))

    @contextmanager
    def sending(self, name: str, tier: Tier, url: Endpoint) -> Iterator[None]:
        """Count one request in flight on this replica while the block runs."""
        state = self._state(name, tier, url)
        state.in_flight += 1
        try:
            yield
        finally:
            state.in_flight -= 1

    def in_flight(self, name: str, tier: Tier, url: Endpoint) -> int:
        return self._state(name, tier, url).in_flight

    def held_for(self, name: str, tier: Tier, url: Endpoint) -> float:
        """Seconds this replica is still held by a 429/503 (0: not held)."""
        return max(0.0, self._state(name, tier, url).not_before - time.monotonic())

    def hold(self, name: str, tier: Tier, url: Endpoint, seconds: float) -> None:
        """Leave this replica alone for `seconds` (its Retry-After): no request goes to it before."""
        state = self._state(name, tier, url)
        state.not_before = max(state.not_before, time.monotonic() + min(seconds, LONGEST_HOLD_S))

    def failed(self, name: str, tier: Tier, reliability: Reliability, url: Endpoint = None) -> None:
        """One failed attempt on this replica (`url`; the tier's only endpoint when None)."""
        url = url if url is not None else tier.endpoints[0]
        state = self._state(name, tier, url)
        state.failures += 1
        if state.failures >= reliability.cooldown_failures:
            state.until = time.monotonic() + reliability.cooldown_s
            state.failures = 0
            where = f" replica {label(url)}" if len(tier.endpoints) > 1 else ""
            log.warning(
                "tier '%s'%s failed %d times in a row: cooling down for %gs",
                name,
                where,
                reliability.cooldown_failures,
                reliability.cooldown_s,
            )

    def succeeded(self, name: str, tier: Tier, url: Endpoint = None) -> None:
        state = self._state(name, tier, url if url is not None else tier.endpoints[0])
        state.failures = 0
        state.until = 0.0

    def cooling(self, name: str, tier: Tier, url: Endpoint) -> float:
        """Seconds left in this one replica's cooldown (0: it may be called)."""
        return max(0.0, self._state(name, tier, url).until - time.monotonic())

    def reset(self) -> None:
        self._replicas.clear()
