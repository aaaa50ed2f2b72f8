"""Strong or weak, applied to a routing decision: the difficulty score, and the strong tier when it is high.

For a role with a cheap tier (`roles.X.tier`) and a stronger one (`strong_tier`, else the first
of `escalate_to`), every decision carries `strength`: the difficulty score (difficulty.py) and,
when `strong_share` is set, the threshold that `tinyarms router calibrate` wrote. A request at or
above it starts on the strong tier (the cheap one stays in the chain behind it). A route with a
tier of its own keeps it: the user chose that tier for the route.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from tinyarms.router.decision import Decision, Strength
from tinyarms.router.difficulty import score

if TYPE_CHECKING:
    from tinyarms.config import Config

ROLES = ("chat", "edit")  # the roles with a cheap and a strong tier; the agent starts strong


def apply(config: Config, decision: Decision, request_tokens: int, context_tokens: int = 0) -> Decision:
    if decision.role not in ROLES:
        return decision
    role = config.roles.get(decision.role)
    strong_tier = role.strong()
    if strong_tier is None or strong_tier not in config.tiers:
        return decision
    difficulty = round(score(config.router.difficulty, decision.route, request_tokens, context_tokens), 4)
    threshold = role.strong_threshold if role.strong_share > 0 else None
    own_tier = decision.tier != role.tier  # a route (or the caller) chose the tier
    strong = threshold is not None and difficulty >= threshold and not own_tier
    reason = decision.reason
    if strong:
        reason += (
            f"; difficulty {difficulty:.2f} >= {threshold:.2f} (the hardest {role.strong_share:.0%}): "
            f"straight to {strong_tier}"
        )
    elif role.strong_share > 0 and threshold is None:
        reason += f"; strong_share is set but not calibrated (tinyarms router calibrate --role {decision.role})"
    found = Strength(
        difficulty=difficulty, threshold=threshold, strong=strong,
        request_tokens=request_tokens, context_tokens=context_tokens,
    )  # fmt: skip
    return attrs.evolve(decision, tier=strong_tier if strong else decision.tier, reason=reason, strength=found)
