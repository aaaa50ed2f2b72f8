"""The in-process local tier: chat through the shared, crash-isolated model manager
(`tinyarms.local_model`), which applies the model's own chat template."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from tinyarms.backends import ChatRequest, Delta, Event, TierError, Usage

if TYPE_CHECKING:
    from tinyarms.config import Tier

DEFAULT_MAX_TOKENS = 512


def build_messages(request: ChatRequest) -> list[dict[str, str]]:
    messages = list(request.messages)
    if request.context:
        at = next((i for i, m in enumerate(messages) if m.get("role") != "system"), len(messages))
        messages.insert(at, {"role": "system", "content": f"File context:\n{request.context}"})
    return messages


async def stream_chat(tier: Tier, name: str, request: ChatRequest, *, client: object = None) -> AsyncIterator[Event]:
    """The local tier, through the shared model manager; `client` (HTTP) is not used."""
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
        async for piece in model.chat(
            build_messages(request),
            max_tokens=request.max_tokens or DEFAULT_MAX_TOKENS,
            temperature=request.temperature if request.temperature is not None else 0.0,
            stop=None,
        ):
            if piece.text:
                logprob = piece.logprob
                yield Delta(piece.text, logprob, 1 if logprob is not None else 0)
            if piece.done:
                if piece.usage:
                    usage = Usage(prompt_tokens=int(piece.usage[0]), completion_tokens=int(piece.usage[1]))
                break
        yield usage
    except LocalModelError as exc:
        raise TierError("local", f"tier '{name}': the local model failed ({exc})") from None
    except Exception as exc:  # ModelNotAvailable and friends: a local tier failing is a tier failure
        if isinstance(exc, TierError):
            raise
        raise TierError("unavailable", f"tier '{name}': {exc}") from None
