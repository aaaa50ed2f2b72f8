"""Decisions a request gets without the router: a role the caller named, or the fallback
role when the router cannot answer. Also the one check of what a caller may name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tinyarms.router.decision import Decision

if TYPE_CHECKING:
    from tinyarms.config import Config

# The roles a request can be answered by (autocomplete has its own path: autocomplete/).
ANSWER_ROLES = ("chat", "edit", "agent")


class RequestError(ValueError):
    """The caller named a role or tier that does not exist; the message says which exist."""


def check(config: Config, role: str | None, tier: str | None) -> None:
    if role is not None and role not in ANSWER_ROLES:
        raise RequestError(f"unknown role '{role}' (expected {', '.join(ANSWER_ROLES)})")
    if tier is not None and tier not in config.tiers:
        raise RequestError(f"unknown tier '{tier}' (defined: {', '.join(sorted(config.tiers))})")


def explicit(config: Config, role: str, tier: str | None) -> Decision:
    """The caller named the role: no routing."""
    return Decision.explicit(role, tier or config.roles.get(role).tier)


def fallback(config: Config, why: str, tier: str | None) -> Decision:
    """The router could not decide (it failed to load or raised): `router.fallback_role` answers."""
    role = config.router.fallback_role  # where unrouted requests go anyway
    return Decision(
        route=None, role=role, tier=tier or config.roles.get(role).tier, score=0.0, margin=0.0,
        stage="fallback", reason=f"the router failed ({why}), so the {role} role answers",
    )  # fmt: skip
