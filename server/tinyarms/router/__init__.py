"""The semantic command router: a request to a route, a role and a tier, explained.

`load_router(config)` loads the encoder once; `router.route(text)` returns a `Decision`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tinyarms.router.decision import Decision, Stage

if TYPE_CHECKING:
    from tinyarms.config import Config
    from tinyarms.router.router import Router

__all__ = ["Decision", "Router", "Stage", "load_router"]


def load_router(config: Config) -> Router:
    from tinyarms.router.router import load_router as load

    return load(config)


def __getattr__(name: str) -> Any:  # `from tinyarms.router import Router` without importing numpy eagerly
    if name == "Router":
        from tinyarms.router.router import Router

        return Router
    raise AttributeError(name)
