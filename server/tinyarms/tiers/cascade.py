"""The cascade: is an answer good enough to stop, or should the request go up the chain?

Two checks, cheapest first (`roles.X.cascade`): the answer's mean token log-prob, when the
provider returns log-probs, against `min_mean_logprob`; then, with `self_check`, a 3-token
yes/no from the same tier ("does this answer the question?"). At most `max_steps` (2)
quality escalations per request; tier failures always fall back regardless.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tinyarms.backends import ChatRequest, TierError
from tinyarms.tiers.attempt import stream_once

if TYPE_CHECKING:
    from tinyarms.config import Tier
    from tinyarms.config.schema import Cascade
    from tinyarms.tiers.attempt import Attempt
    from tinyarms.tiers.record import Step
    from tinyarms.tiers.run import Run

SELF_CHECK_PROMPT = (
    "You check answers. Reply with exactly one word: yes if the answer below correctly and "
    "completely answers the question, no otherwise."
)


async def self_check(
    run: Run, name: str, tier: Tier, question: str, answer: str, replica: str | None = None
) -> bool | None:
    """A short yes/no from the same tier (the replica that answered); None when the check itself could not run."""
    request = ChatRequest(
        messages=[
            {"role": "system", "content": SELF_CHECK_PROMPT},
            {"role": "user", "content": f"Question:\n{question}\n\nAnswer:\n{answer}\n\nyes or no?"},
        ],
        max_tokens=3,
        temperature=0.0,
        connect_timeout_s=run.config.reliability.connect_timeout_s,
        read_timeout_s=tier.timeout_s,
    )
    try:
        verdict = await stream_once(
            run, name, tier, request, max(0.1, min(run.remaining(), tier.timeout_s)), show=False, replica=replica
        )
    except (TimeoutError, TierError):
        return None
    run.charge(name, tier, verdict.usage, None)
    return not verdict.text.strip().lower().startswith("no")


async def escalation_reason(
    run: Run, name: str, tier: Tier, cascade: Cascade, question: str, attempt: Attempt, step: Step
) -> str | None:
    """Why `attempt` is not good enough to stop at, or None when it is."""
    low = cascade.min_mean_logprob
    if low is not None and attempt.mean_logprob is not None and attempt.mean_logprob < low:
        return f"mean token log-prob {attempt.mean_logprob:.2f} is below {low:g}"
    if cascade.self_check:
        verdict = await self_check(run, name, tier, question, attempt.text, attempt.replica)
        step.self_check = {True: "pass", False: "fail", None: "error"}[verdict]
        if verdict is False:
            return f"tier '{name}' judged its own answer inadequate"
    return None
