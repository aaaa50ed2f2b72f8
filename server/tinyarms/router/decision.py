"""A routing decision: which route, role and tier a request goes to, and why.

The router produces it; the role handlers, the decision trace, `tinyarms route` and the
editors' status bars read it. It never holds the request text.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs
from attrs import define

# How the decision was reached, cheapest first. `explicit`: a slash command or a role
# named by the caller; `fallback`: nothing was confident enough.
Stage = Literal["explicit", "rule", "embedding", "fallback"]


@define(kw_only=True)
class Strength:
    """Strong or weak (router/difficulty.py), for roles with a cheap and a strong tier."""

    difficulty: float  # predicted chance that the cheap tier's answer will not do, 0..1
    threshold: float | None  # at or above it the request goes straight to the strong tier; None: off
    strong: bool  # sent straight to the strong tier
    request_tokens: int  # estimated (characters / 4)
    context_tokens: int


@define(kw_only=True)
class Decision:
    route: str | None  # None: nothing matched; the configured fallback role handles it
    role: str  # chat / edit / agent
    tier: str  # the tier that runs it: the route's override, else the role's tier
    score: float  # confidence in the chosen route, 0..1 (similarity for embeddings)
    margin: float  # score minus the runner-up's score
    stage: Stage
    reason: str  # one sentence a user understands
    strength: Strength | None = None  # None: the role has no cheap/strong pair (or no request text)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def explicit(cls, role: str, tier: str) -> Decision:
        """The caller named the role: no routing."""
        reason = f"the caller asked for the {role} role"
        return cls(route=None, role=role, tier=tier, score=1.0, margin=1.0, stage="explicit", reason=reason)
