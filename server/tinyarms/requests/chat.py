"""One chat turn, without the editor: the messages a turn sends (the role's system text and the
project rules, the earlier turns that fit, the labelled context and the request) and the budget.

The budget is the role's `context_tokens`, capped for a llama-cpp tier by its `n_ctx` less
the answer's `max_tokens` (a 2048-token local model cannot take a 4000-token prompt). The
current request and its context come first; earlier turns get what is left, newest first,
so a long conversation loses its oldest turns and the result says how many.
"""

from __future__ import annotations

import attrs

from tinyarms.config import Config
from tinyarms.requests.context import Context, tokens
from tinyarms.requests.conversations import History, Turn, history
from tinyarms.requests.messages import SLASH, SYSTEM, build_messages
from tinyarms.router.decision import Decision
from tinyarms.router.rules import CHAT_COMMANDS

DEFAULT_N_CTX = 2048  # what the local model runs with when the tier does not say
ANSWER_RESERVE = 512  # tokens kept for the answer when the role and tier set no max_tokens
MIN_BUDGET = 256


def budget(config: Config, role: str, tier: str | None = None) -> int:
    """Tokens of prompt a request on `role` may send (context, history and request together)."""
    role_config = config.roles.get(role)
    tier_config = config.tiers.get(tier or role_config.tier)
    limit = role_config.context_tokens
    if tier_config is not None and not tier_config.is_remote:
        answer = role_config.max_tokens or tier_config.max_tokens or ANSWER_RESERVE
        limit = min(limit, (tier_config.n_ctx or DEFAULT_N_CTX) - answer - 64)
    return max(limit, MIN_BUDGET)


def request_text(text: str, decision: Decision) -> str:
    """The request as the model reads it: a slash command spelled out ("/explain" -> "Explain ..."),
    `/chat` and `/ask` (no route) dropped."""
    request = build_messages(text, decision, selection="")[-1]["content"]
    match = SLASH.match(request)
    if match and match.group(1).lower() in CHAT_COMMANDS:
        request = request[match.end() :]
    return request


@attrs.frozen
class TurnMessages:
    messages: list[dict[str, str]]
    content: str  # the user message of this turn (kept in the conversation)
    history: History


def turn_messages(
    text: str, decision: Decision, context: Context, earlier: list[Turn], budget_tokens: int
) -> TurnMessages:
    system = SYSTEM.get(decision.role, SYSTEM["chat"])
    if context.system_text():
        system += "\n\n" + context.system_text()
    request = request_text(text, decision)
    content = f"{context.user_text()}\n\n{request}" if context.user_text() else request
    left = budget_tokens - tokens(system) - tokens(content)
    past = history(earlier, max(left, 0))
    messages = [{"role": "system", "content": system}, *past.messages, {"role": "user", "content": content}]
    return TurnMessages(messages=messages, content=content, history=past)
