""""Try a stronger tier": a remembered request answered again on a stronger tier, and recorded.

`tinyarms.reask {trace_id?, tier?, stream_id?}` (protocol.py) takes a request this process
answered (feedback.RecentRequests keeps the messages the model was given and the tier that
answered, for the last 200), sends the same messages to a stronger tier of the same role and
writes one feedback line on the first request: `outcome = "reask_stronger"`, with the new
answer's trace id and its tier. `tinyarms router fit --from-log` counts that outcome as "the
cheap tier's answer did not do" for the difficulty model (difficulty.BAD_OUTCOMES), which is
what a user asking for a stronger tier says. Nothing is routed again: the route stays.

Which tier: the one asked for, else the role's strong tier (`strong_tier`, else the first of
`escalate_to`) when that is not the tier that answered, else the next tier in `escalate_to`
after the one that answered. None left is an error that says so; nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from tinyarms import tiers
from tinyarms.requests.feedback import REASK, FeedbackError, RecentRequests, record

if TYPE_CHECKING:
    from tinyarms.config import Config
    from tinyarms.requests.routing import Routing
    from tinyarms.router.decision import Decision


@attrs.define
class Reasked:
    original: str  # the trace id answered again
    decision: Decision
    answer: tiers.Answer


def stronger_tier(config: Config, role: str, answered: str | None, asked: str | None = None) -> str:
    """The tier a re-ask goes to (see the module docstring); FeedbackError when there is none."""
    if asked is not None:
        if asked not in config.tiers:
            raise FeedbackError(f"unknown tier '{asked}' (tiers: {', '.join(sorted(config.tiers))})")
        return asked
    role_config = config.roles.get(role)
    strong = role_config.strong()
    if strong is not None and strong != answered and strong in config.tiers:
        return strong
    chain = [role_config.tier, *role_config.escalate_to]
    later = chain[chain.index(answered) + 1 :] if answered in chain else []
    found = next((t for t in later if t != answered and t in config.tiers), None)
    if found is None:
        raise FeedbackError(f"no tier stronger than {answered or role_config.tier} for the {role} role")
    return found


async def reask(
    config: Config,
    recent: RecentRequests,
    routing: Routing,
    *,
    trace_id: str | None,
    tier: str | None = None,
    on_delta: Callable[[str], None] | None = None,
    on_restart: Callable[[str], None] | None = None,
) -> Reasked:
    """Raises FeedbackError (nothing remembered, no stronger tier) or tiers.AllTiersFailed."""
    found = recent.get(trace_id)
    if found is None:
        which = f"request {trace_id}" if trace_id else "a request in this session"
        raise FeedbackError(f"a re-ask needs the request's messages, and {which} is not remembered here")
    original, remembered = found
    if remembered.messages is None or remembered.decision is None:
        raise FeedbackError(f"request {original} cannot be asked again (its messages were not kept)")
    target = stronger_tier(config, remembered.role, remembered.tier, tier)
    decision = attrs.evolve(
        remembered.decision, tier=target, reason=f"{remembered.decision.reason}; asked again on {target}"
    )
    answer = await tiers.run_role(
        config, remembered.role, remembered.messages, tier=target, decision=decision,
        on_delta=on_delta, on_restart=on_restart, embed=await routing.embedder(config),
    )  # fmt: skip
    new_id = answer.trace.get("id")
    record(config, recent, trace_id=original, outcome=REASK, extra={"reask_trace_id": new_id, "tier": target})
    if isinstance(new_id, str):
        recent.remember(new_id, remembered.text, decision, messages=remembered.messages, tier=answer.tier)
    return Reasked(original, decision, answer)
