"""Strong or weak: how likely a request is to be too hard for its role's cheap tier.

The router decides *which route*; this decides *how strong a model* the request needs, the way
RouteLLM and FrugalGPT save money: score every request with the predicted chance that the cheap
tier's answer will not do, and send the hardest share of the user's own traffic (`[roles.chat]
strong_share = 0.2`) straight to the strong tier, skipping a cheap attempt that would be
escalated anyway. The threshold is a quantile of the score over logged traffic
(`tinyarms router calibrate`, calibrate.py), so the share holds whatever the score's scale.

The score is a logistic regression over what the decision trace keeps (never request text):
- the route (one weight per route; unrouted requests have none),
- log(1 + request tokens) and log(1 + context tokens) (tokens estimated as characters / 4).
Its labels come from the trace (`outcome_label`): an answer did not do when the cascade
escalated past the cheap tier, the user asked for a stronger tier, rated it down or rejected the
edit; it did when the cheap tier's answer stood. What happened to *similar* requests is what the
route and size weights learn. Until `tinyarms router fit --from-log` has fitted it, the prior
below says only "longer requests and more context are harder" (route-blind).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from tinyarms.config.schema import Difficulty

MIN_OUTCOMES = 20  # fewer labelled requests than this: keep the prior


def estimate_tokens(text: str) -> int:
    """~4 characters a token for English code and prose (runs of whitespace count once); no tokenizer."""
    return (len(" ".join(text.split())) + 3) // 4


def score(weights: Difficulty, route: str | None, request_tokens: int, context_tokens: int = 0) -> float:
    """The predicted chance that the cheap tier's answer will not do, 0..1.

    With the prior (config.schema.Difficulty's defaults) a 20-token request with no context
    scores 0.14, a 400-token one with 4000 tokens of context 0.74; only the ranking matters for calibration.
    """
    z = weights.bias + weights.request * math.log1p(max(0, request_tokens))
    z += weights.context * math.log1p(max(0, context_tokens)) + weights.routes.get(route or "", 0.0)
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def score_record(weights: Difficulty, record: Mapping[str, Any]) -> float | None:
    """The score of a logged request, or None when the record lacks the sizes."""
    request, context = record.get("request_tokens"), record.get("context_tokens") or 0
    if not isinstance(request, int | float) or not isinstance(context, int | float):
        return None
    return score(weights, record.get("route"), int(request), int(context))


# -- outcomes from the trace ---------------------------------------------------------------

BAD_RATINGS = {"down"}
BAD_OUTCOMES = {"rejected", "stronger", "reask_stronger"}  # edit rejected; "try a stronger tier" (tinyarms.reask)


def feedback_by_request(records: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        if record.get("kind") == "feedback" and isinstance(record.get("trace_id"), str):
            out.setdefault(record["trace_id"], []).append(record)
    return out


def outcome_label(record: Mapping[str, Any], feedback: list[Mapping[str, Any]], cheap_tier: str) -> int | None:
    """1: the cheap tier's answer did not do; 0: it stood; None: the log cannot say.

    Requests sent straight to the strong tier, failed ones and ones that never started on the
    cheap tier say nothing about the cheap tier.
    """
    if record.get("error") or record.get("strong"):
        return None
    steps = record.get("steps") or []
    first = steps[0].get("tier") if steps and isinstance(steps[0], dict) else record.get("tier")
    if first != cheap_tier:
        return None
    if any(f.get("rating") in BAD_RATINGS or f.get("outcome") in BAD_OUTCOMES for f in feedback):
        return 1
    if record.get("escalations"):
        return 1
    return 0


def training_data(
    records: Sequence[Mapping[str, Any]], cheap_tiers: Mapping[str, str]
) -> tuple[list[tuple[str | None, int, int]], list[int]]:
    """(route, request tokens, context tokens) and labels for every labelled request of the roles in `cheap_tiers`."""
    feedback = feedback_by_request(records)
    rows: list[tuple[str | None, int, int]] = []
    labels: list[int] = []
    for record in records:
        role = record.get("role")
        if record.get("kind") == "feedback" or role not in cheap_tiers or "request_tokens" not in record:
            continue
        label = outcome_label(record, feedback.get(str(record.get("id")), []), cheap_tiers[str(role)])
        if label is None:
            continue
        rows.append((record.get("route"), int(record["request_tokens"]), int(record.get("context_tokens") or 0)))
        labels.append(label)
    return rows, labels


def fit(rows: list[tuple[str | None, int, int]], labels: list[int], *, l2: float = 1.0, steps: int = 500) -> Difficulty:
    """Logistic regression by gradient descent (L2 on every weight but the bias); deterministic."""
    if len(rows) < MIN_OUTCOMES or len(set(labels)) < 2:
        return Difficulty()
    routes = sorted({r for r, _, _ in rows if r})
    x = np.zeros((len(rows), 2 + len(routes)))
    for i, (route, request, context) in enumerate(rows):
        x[i, 0], x[i, 1] = math.log1p(request), math.log1p(context)
        if route:
            x[i, 2 + routes.index(route)] = 1.0
    y = np.array(labels, dtype=np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    xs = (x - mean) / std  # standardised for a well-conditioned descent; undone below
    w, b, n = np.zeros(x.shape[1]), math.log((y.mean() + 1e-3) / (1 - y.mean() + 1e-3)), len(y)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(xs @ w + b)))
        w -= 0.5 * (xs.T @ (p - y) / n + l2 * w / n)
        b -= 0.5 * float((p - y).mean())
    raw = w / std
    bias = b - float((mean / std) @ w)
    return Difficulty(
        bias=round(bias, 4), request=round(float(raw[0]), 4), context=round(float(raw[1]), 4),
        routes={r: round(float(raw[2 + i]), 4) for i, r in enumerate(routes)}, fitted_on=len(rows),
    )  # fmt: skip


def log_loss(weights: Difficulty, rows: list[tuple[str | None, int, int]], labels: list[int]) -> float | None:
    if not rows:
        return None
    total = 0.0
    for (route, request, context), label in zip(rows, labels, strict=True):
        p = min(1 - 1e-6, max(1e-6, score(weights, route, request, context)))
        total -= math.log(p) if label else math.log(1 - p)
    return round(total / len(rows), 4)
