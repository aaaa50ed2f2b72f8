"""`tinyarms router calibrate`: the difficulty threshold that sends a target share of traffic to the strong tier.

RouteLLM's calibration: score the role's logged requests with the difficulty model and take the
(1 - share) quantile, so that share of *this user's* recent traffic scores at or above it. The
report says what the share was with the threshold in force before, what it is with the new one,
what the logged requests cost, and what they would have cost with the new threshold: a request
at or above it at the strong tier's mean cost per request, one below it at what it cost (if it
started on the cheap tier, its escalations included) or else the cheap tier's mean. Means come
from the trace where it has requests on that tier, else from the tier's price at the role's mean
token counts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from attrs import define

from tinyarms.config.schema import Difficulty
from tinyarms.router.difficulty import score_record

# (tier name, prompt tokens, completion tokens) -> USD
PriceFn = Callable[[str, int, int], float]
MIN_REQUESTS = 20


class CalibrationError(ValueError):
    """Not enough logged traffic (or no strong tier) to calibrate; the message says what is missing."""


def threshold_for(scores: list[float], share: float) -> float:
    """The lowest score among the top `share` of `scores`: that share scores >= it."""
    if not scores:
        raise CalibrationError("no scored requests")
    ordered = sorted(scores, reverse=True)
    k = max(1, min(len(ordered), round(share * len(ordered))))
    return round(ordered[k - 1], 6)


def share_at(scores: list[float], threshold: float | None) -> float:
    if not scores or threshold is None:
        return 0.0
    return round(float(np.mean([s >= threshold for s in scores])), 4)


@define
class Calibration:
    role: str
    requests: int
    target_share: float
    threshold: float
    before_threshold: float | None
    before_share: float  # share at or above the threshold in force before (0 when none)
    logged_strong_share: float  # share the trace shows was actually sent straight to strong
    after_share: float
    cheap_tier: str
    strong_tier: str
    cost_per_request: dict[str, float | None]  # "cheap" / "strong": mean USD per request
    cost_sources: dict[str, str]  # "trace" or "price"
    cost_before_usd: float  # what the logged requests cost
    cost_after_usd: float  # ... projected with the new threshold

    def to_dict(self) -> dict[str, Any]:
        from attrs import asdict

        return asdict(self)


def _mean_cost(
    records: Sequence[Mapping[str, Any]], tokens: tuple[int, int], tier: str, price: PriceFn | None
) -> tuple[float | None, str]:
    costs = [
        float(r.get("cost_usd") or 0.0)
        for r in records
        if not r.get("error") and r.get("cache", "off") not in ("exact", "semantic")
    ]
    if costs:
        return sum(costs) / len(costs), "trace"
    if price is None:
        return None, "unknown"
    return price(tier, *tokens), "price"


def calibrate(
    records: Sequence[Mapping[str, Any]], *, role: str, share: float, weights: Difficulty, cheap_tier: str,
    strong_tier: str, current_threshold: float | None = None, price: PriceFn | None = None,
) -> Calibration:  # fmt: skip
    if not 0.0 < share < 1.0:
        raise CalibrationError(f"--strong-share must be between 0 and 1 (exclusive), got {share}")
    if cheap_tier == strong_tier:
        raise CalibrationError(
            f"role '{role}' has only {cheap_tier}; name a stronger tier in escalate_to or strong_tier"
        )
    mine = [r for r in records if r.get("role") == role and r.get("kind") != "feedback" and not r.get("error")]
    scored = [(r, s) for r in mine if (s := score_record(weights, r)) is not None]
    if len(scored) < MIN_REQUESTS:
        raise CalibrationError(
            f"the trace has {len(scored)} {role} requests with sizes logged; calibrating needs at least {MIN_REQUESTS}"
        )
    scores = [s for _, s in scored]
    threshold = threshold_for(scores, share)
    prompt = int(np.mean([r.get("prompt_tokens") or 0 for r, _ in scored]))
    completion = int(np.mean([r.get("completion_tokens") or 0 for r, _ in scored]))

    def first_tier(r: Mapping[str, Any]) -> str | None:
        steps = r.get("steps") or []
        return steps[0].get("tier") if steps and isinstance(steps[0], dict) else r.get("tier")

    cheap_cost, cheap_src = _mean_cost(
        [r for r, _ in scored if first_tier(r) == cheap_tier], (prompt, completion), cheap_tier, price
    )
    strong_cost, strong_src = _mean_cost(
        [r for r, _ in scored if first_tier(r) == strong_tier], (prompt, completion), strong_tier, price
    )
    before = share_at(scores, current_threshold)
    logged_strong = round(float(np.mean([bool(r.get("strong")) for r, _ in scored])), 4)
    after = share_at(scores, threshold)

    def projected(r: Mapping[str, Any], score: float) -> float:
        """What this request would have cost: the strong tier's mean at or above the threshold;
        below it, what it cost if it started on the cheap tier (escalations included), else the cheap mean."""
        if score >= threshold:
            return strong_cost or 0.0
        return float(r.get("cost_usd") or 0.0) if first_tier(r) == cheap_tier else (cheap_cost or 0.0)

    return Calibration(
        role=role, requests=len(scores), target_share=share, threshold=threshold,
        before_threshold=current_threshold, before_share=before, logged_strong_share=logged_strong,
        after_share=after, cheap_tier=cheap_tier, strong_tier=strong_tier,
        cost_per_request={"cheap": cheap_cost, "strong": strong_cost},
        cost_sources={"cheap": cheap_src, "strong": strong_src},
        cost_before_usd=round(sum(float(r.get("cost_usd") or 0.0) for r, _ in scored), 6),
        cost_after_usd=round(sum(projected(r, score) for r, score in scored), 6),
    )  # fmt: skip


def format_calibration(c: Calibration) -> str:
    def usd(value: float | None) -> str:
        return "unknown" if value is None else f"${value:.6f}"

    was = (
        f"{c.before_share:.1%} at threshold {c.before_threshold}" if c.before_threshold is not None else "no threshold"
    )
    return "\n".join([
        f"{c.role}: {c.requests} logged requests; target strong share {c.target_share:.1%}",
        f"  threshold {c.threshold} (was: {was}; "
        f"the log shows {c.logged_strong_share:.1%} sent straight to {c.strong_tier})",
        f"  share at or above it: {c.after_share:.1%}",
        f"  cost per request: {c.cheap_tier} {usd(c.cost_per_request['cheap'])} ({c.cost_sources['cheap']}), "
        f"{c.strong_tier} {usd(c.cost_per_request['strong'])} ({c.cost_sources['strong']})",
        f"  these {c.requests} requests cost ${c.cost_before_usd:.4f}; with the new threshold ${c.cost_after_usd:.4f}",
    ])  # fmt: skip
