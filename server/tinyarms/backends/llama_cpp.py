"""The in-process local tier: chat through the shared, crash-isolated model manager
(`tinyarms.local_model`), which applies the model's own chat template."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from tinyarms.backends import ChatRequest, Delta, Event, TierError, Usage, local_tools

if TYPE_CHECKING:
    from tinyarms.config import Tier

DEFAULT_MAX_TOKENS = 512


def build_messages(request: ChatRequest) -> list[dict[str, Any]]:
    messages = list(request.messages)
    if request.context:
        at = next((i for i, m in enumerate(messages) if m.get("role") != "system"), len(messages))
        messages.insert(at, {"role": "system", "content": f"File context:\n{request.context}"})
    return messages


async def stream_chat(tier: Tier, name: str, request: ChatRequest) -> AsyncIterator[Event]:
    """Text as it comes; with tools, one grammar-constrained JSON answer (local_tools.py) read
    as a tool call or the final answer."""
    try:
        from tinyarms.local_model import LocalModelError, get_model
    except ImportError:
        raise TierError(
            "unavailable", f"tier '{name}' needs the local model manager (tinyarms.local_model), missing here"
        ) from None
    try:
        model = get_model(tier.model, purpose="chat", n_ctx=tier.n_ctx, n_threads=tier.n_threads)
        await model.start()
        usage = Usage()
        messages, schema = build_messages(request), None
        # An agent conversation (tools offered, or tool turns in it, as on a run's last step)
        # is written as text and answered in grammar-constrained JSON.
        if request.tools or any(m.get("role") == "tool" or m.get("tool_calls") for m in request.messages):
            messages = local_tools.build_messages(messages, request)
            schema = json.dumps(local_tools.output_schema(request))
        answer = ""
        async for piece in model.chat(
            messages,
            max_tokens=request.max_tokens or DEFAULT_MAX_TOKENS,
            temperature=request.temperature if request.temperature is not None else 0.0,
            stop=None,
            json_schema=schema,
        ):
            if piece.text and schema is None:
                logprob = piece.logprob
                yield Delta(piece.text, logprob, 1 if logprob is not None else 0)
            answer += piece.text
            if piece.done:
                if piece.usage:
                    usage = Usage(prompt_tokens=int(piece.usage[0]), completion_tokens=int(piece.usage[1]))
                break
        if schema is not None:
            turn = sum(1 for m in request.messages if m.get("role") == "assistant")
            for event in local_tools.parse(answer.strip(), turn, tools_offered=bool(request.tools)):
                yield event
        yield usage
    except LocalModelError as exc:
        raise TierError("local", f"tier '{name}': the local model failed ({exc})") from None
    except Exception as exc:  # ModelNotAvailable and friends: a local tier failing is a tier failure
        if isinstance(exc, TierError):
            raise
        raise TierError("unavailable", f"tier '{name}': {exc}") from None
