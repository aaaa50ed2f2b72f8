"""A request answered: decide, build the messages, run the role on its tier chain.

`ask` is the whole path; the front doors adapt it: the LSP feature reads the selection
and streams `tinyarms/stream` notifications, the CLI prints. The semantic cache gets the
router's embedder here (`embed=`), so `cache.semantic` works from every front door. The
selection also keys the cache (as a hash): the same question about other code is not a hit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from attrs import define

from tinyarms import tiers
from tinyarms.requests.messages import build_messages
from tinyarms.router.difficulty import estimate_tokens

if TYPE_CHECKING:
    from tinyarms.config import Config
    from tinyarms.requests.routing import Routing
    from tinyarms.router.decision import Decision


@define(kw_only=True)
class Request:
    text: str  # what the user typed (a slash command is spelled out in messages.py)
    role: str | None = None  # skip routing: chat, edit or agent
    tier: str | None = None  # start on this tier; the role's chain still backs it up
    selection: str = ""  # the selected code, read by the front door


@define
class Answered:
    decision: Decision
    answer: tiers.Answer
    messages: list[dict[str, str]]  # what the model was given (tinyarms.reask sends them again)


async def ask(
    config: Config,
    request: Request,
    routing: Routing,
    *,
    on_decision: Callable[[Decision], None] | None = None,
    on_delta: Callable[[str], None] | None = None,
    on_restart: Callable[[str], None] | None = None,
) -> Answered:
    """Raises requests.decide.RequestError (a bad role or tier) or tiers.AllTiersFailed."""
    context_tokens = estimate_tokens(request.selection)  # what goes along feeds the strong/weak decision
    decision = await routing.decide(
        config, request.text, role=request.role, tier=request.tier, context_tokens=context_tokens
    )
    if on_decision is not None:
        on_decision(decision)
    messages = build_messages(request.text, decision, request.selection, config.routes)
    answer = await tiers.run_role(
        config,
        decision.role,
        messages,
        tier=request.tier,
        decision=decision,
        on_delta=on_delta,
        on_restart=on_restart,
        # The selection is in the messages already; its hash keeps cached answers of other code apart.
        cache_scope=hashlib.sha256(request.selection.encode()).hexdigest() if request.selection else "",
        embed=await routing.embedder(config),
    )
    return Answered(decision, answer, messages)
