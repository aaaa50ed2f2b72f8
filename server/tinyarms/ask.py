"""One question, routed and answered: what `tinyarms ask` (and `tinyarms demo`) run.

Routing uses the router (`tinyarms.router.load_router`); if it fails, the fallback role (`router.fallback_role`)
answers with a `fallback` decision that says why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import attrs

from tinyarms import tiers
from tinyarms.config import Config
from tinyarms.prompts import build_messages
from tinyarms.router.decision import Decision

log = logging.getLogger(__name__)

def route(config: Config, text: str, *, role: str | None = None, tier: str | None = None) -> Decision:
    """The decision for `text`: explicit when the caller names a role, else the router's."""
    if role is not None:
        return Decision.explicit(role, tier or config.roles.get(role).tier)
    from tinyarms.router import load_router

    try:
        decision = load_router(config).route(text)
    except Exception as exc:  # a broken router must not stop the answer
        role = config.router.fallback_role  # where unrouted requests go anyway
        log.warning("the router failed (%s); the %s role answers", exc, role)
        reason = f"the router failed ({type(exc).__name__}), so the {role} role answers"
        return Decision(route=None, role=role, tier=tier or config.roles.get(role).tier,
                        score=0.0, margin=0.0, stage="fallback", reason=reason)  # fmt: skip
    return attrs.evolve(decision, tier=tier) if tier is not None else decision


async def ask_once(
    config: Config,
    text: str,
    *,
    role: str | None = None,
    tier: str | None = None,
    on_delta: Callable[[str], None] | None = None,
    on_restart: Callable[[str], None] | None = None,
) -> tuple[Decision, tiers.Answer]:
    """Route `text` and run the chosen role's tier chain. Raises tiers.AllTiersFailed."""
    decision = route(config, text, role=role, tier=tier)
    try:
        answer = await tiers.run_role(
            config,
            decision.role,
            build_messages(text, decision, selection=""),
            tier=tier,
            decision=decision,
            on_delta=on_delta,
            on_restart=on_restart,
        )
    finally:
        await tiers.aclose()
    return decision, answer
