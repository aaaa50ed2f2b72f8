"""The router of one process, loaded in the background, and the decision for a request.

Loading the router takes a second or more (the MiniLM encoder; an ONNX export on first
use, about a minute on 2 busy cores), so the language server starts it after
`initialized` and a request waits for it at most `READY_TIMEOUT_S`. The CLI starts it on
the first request that needs it. Either way a router that cannot load, or that raises,
never stops a request: it gets the fallback decision with the reason (decide.py). The
router is rebuilt only when its inputs (router settings, routes, roles) change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from tinyarms.requests import decide
from tinyarms.router import strength
from tinyarms.router.difficulty import estimate_tokens

if TYPE_CHECKING:
    from tinyarms.config import Config
    from tinyarms.router import Router
    from tinyarms.router.decision import Decision

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 120.0


def _inputs(config: Config) -> Any:
    """What the router is built from; a config change elsewhere does not reload it."""
    return (attrs.asdict(config.router), {k: attrs.asdict(v) for k, v in config.routes.items()},
            attrs.asdict(config.roles))  # fmt: skip


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


class Routing:
    def __init__(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self.router: Router | None = None
        self.error: str | None = None  # why the router is not loaded
        self._task: asyncio.Future[None] | None = None
        self._inputs: Any = None

    def load(self, config: Config) -> None:
        """Start loading the router for `config`, unless it is loaded (or loading) for the same inputs."""
        inputs = _inputs(config)
        if self._task is not None and inputs == self._inputs:
            return
        self._inputs = inputs
        self._task = asyncio.ensure_future(self._load(config, inputs))

    def config_changed(self, config: Config) -> None:
        """Reload when the router's inputs changed, if it was started at all."""
        if self._task is not None:
            self.load(config)

    async def _load(self, config: Config, inputs: Any) -> None:
        from tinyarms.router import load_router

        start = time.perf_counter()
        try:
            router = await asyncio.to_thread(load_router, config)
        except Exception as exc:
            if inputs is self._inputs:
                self.router, self.error = None, _why(exc)
            log.warning("the router could not load: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
            return
        if inputs is self._inputs:  # a newer config started another load: that one wins
            self.router, self.error = router, None
            log.info("router ready in %.1f s", time.perf_counter() - start)

    async def ready(self, config: Config) -> Router | None:
        """The loaded router, or None (then `error` says why)."""
        self.load(config)
        deadline = time.monotonic() + self.timeout_s
        while self._task is not None and not self._task.done():
            task = self._task
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                self.error = f"it is still loading after {self.timeout_s:.0f} s"
                return None
            if task is self._task:
                break
        return self.router

    async def decide(
        self, config: Config, text: str, *, role: str | None = None, tier: str | None = None, context_tokens: int = 0
    ) -> Decision:
        """Explicit when the caller names a role, else the router's; the fallback role when the router fails.
        Unless the caller named a tier, chat and edit requests also get the strong/weak decision."""
        decide.check(config, role, tier)
        if role is not None:
            named = decide.explicit(config, role, tier)
            return named if tier is not None else strength.apply(config, named, estimate_tokens(text), context_tokens)
        router = await self.ready(config)
        if router is None:
            log.warning("the router is not available (%s); the fallback role answers", self.error)
            return decide.fallback(config, self.error or "it is not loaded", tier)
        try:
            decision = await asyncio.to_thread(router.route, text, context_tokens=context_tokens)
        except Exception as exc:  # a broken router must not stop the answer
            log.warning("the router failed (%s); the fallback role answers", exc)
            return decide.fallback(config, _why(exc), tier)
        return attrs.evolve(decision, tier=tier) if tier is not None else decision

    async def embedder(self, config: Config) -> Callable[[str], Sequence[float]] | None:
        """The router's encoder for the semantic cache, when `cache.semantic` is on and it loaded."""
        if not (config.cache.enabled and config.cache.semantic):
            return None
        router = await self.ready(config)
        return router.embed if router is not None and router.encoder is not None else None
