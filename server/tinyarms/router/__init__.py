"""The semantic command router: a request to a route, a role and a tier, explained."""

from tinyarms.router.decision import Decision, Stage

__all__ = ["Decision", "Stage"]
