"""The decision trace: one JSONL record per request in the platformdirs state dir, and the
`tinyarms stats` summary over it. Records hold names, numbers and reasons that tinyarms
wrote itself: never request or answer text, never keys."""

from __future__ import annotations

import logging
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import platformdirs

from tinyarms import jsonl

log = logging.getLogger(__name__)


def trace_path() -> Path:
    return platformdirs.user_state_path("tinyarms") / "trace.jsonl"


def append(record: dict[str, Any], *, path: Path | None = None) -> None:
    """One line, one write(2) on an O_APPEND file: concurrent servers do not interleave."""
    jsonl.append(path or trace_path(), record)


def read(*, since_s: float | None = None, path: Path | None = None) -> Iterator[dict[str, Any]]:
    return jsonl.read(path or trace_path(), since_s=since_s)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """'7d', '12h', '30m' -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (try 30m, 12h, 7d, 2w)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 1)


def stats(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per role and per (role, final tier): calls, p50/p95 latency, tokens, cost, escalation
    rate, cache hits, and errors by kind (every failed attempt, on the tier that failed);
    and per replica of a tier with `base_urls` (`replica_stats`)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    errors: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for record in records:
        if record.get("kind") == "feedback":  # what the user said about a request, not a request
            continue
        role = str(record.get("role"))
        groups[(role, str(record.get("tier") or "(failed)"))].append(record)
        for step in record.get("steps", []):
            for kind in step.get("errors", []):  # every failed attempt, retried or not
                errors[(role, str(step.get("tier")))][str(kind)] += 1
            if step.get("outcome") == "skipped":
                errors[(role, str(step.get("tier")))][f"skipped:{step.get('kind')}"] += 1
        if record.get("error"):
            errors[(role, "(request)")][str(record["error"])] += 1

    def summary(items: list[dict[str, Any]]) -> dict[str, Any]:
        latencies = [float(r["latency_ms"]) for r in items if r.get("latency_ms") is not None]
        ttft = [float(r["ttft_ms"]) for r in items if r.get("ttft_ms") is not None]
        return {
            "calls": len(items),
            "answered": sum(1 for r in items if not r.get("error")),
            "latency_p50_ms": _pct(latencies, 50),
            "latency_p95_ms": _pct(latencies, 95),
            "ttft_p50_ms": _pct(ttft, 50),
            "prompt_tokens": sum(int(r.get("prompt_tokens") or 0) for r in items),
            "completion_tokens": sum(int(r.get("completion_tokens") or 0) for r in items),
            "cost_usd": round(sum(float(r.get("cost_usd") or 0) for r in items), 6),
            "escalation_rate": round(sum(1 for r in items if r.get("escalations")) / len(items), 3),
            "cache_hits": sum(1 for r in items if str(r.get("cache", "")).endswith("hit")),
            "semantic_hits": sum(1 for r in items if r.get("cache") == "semantic-hit"),  # of cache_hits
        }

    by_role: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (role, _), items in groups.items():
        by_role[role] += items
    return {
        "requests": len(records),
        "replicas": replica_stats(records),
        "roles": {
            role: {
                **summary(items),
                "tiers": {tier: summary(group) for (r, tier), group in sorted(groups.items()) if r == role},
                "errors": {
                    tier: dict(counter) for (r, tier), counter in sorted(errors.items()) if r == role and counter
                },
            }
            for role, items in sorted(by_role.items())
        },
    }


def replica_stats(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per tier with several replicas (`base_urls`), per replica: attempts sent to it, how many
    answered, errors by kind, and the latency of the attempts that answered (p50/p95)."""
    attempts: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        for step in record.get("steps", []):
            for attempt in step.get("replicas") or []:
                if isinstance(attempt, dict):
                    attempts[(str(step.get("tier")), str(attempt.get("replica")))].append(attempt)
    found: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for (tier, replica), items in sorted(attempts.items()):
        answered = [float(a["latency_ms"]) for a in items if not a.get("error") and a.get("latency_ms") is not None]
        errors = Counter(str(a["error"]) for a in items if a.get("error"))
        found[tier][replica] = {
            "requests": len(items),
            "answered": len(answered),
            "errors": dict(sorted(errors.items())),
            "latency_p50_ms": _pct(answered, 50),
            "latency_p95_ms": _pct(answered, 95),
        }
    return dict(found)


def _format_replicas(replicas: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    if not replicas:
        return []
    width = max(len(r) for per_tier in replicas.values() for r in per_tier)
    header = f"{'tier':<14} {'replica':<{width}} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8}"
    lines = ["", "per replica (attempts; latency of those that answered)", header, "-" * len(header)]
    for tier, per_tier in replicas.items():
        for replica, s in per_tier.items():
            p50 = "-" if s["latency_p50_ms"] is None else f"{s['latency_p50_ms']:.0f}"
            p95 = "-" if s["latency_p95_ms"] is None else f"{s['latency_p95_ms']:.0f}"
            failed = sum(s["errors"].values())
            lines.append(f"{tier:<14} {replica:<{width}} {s['requests']:>8} {failed:>6} {p50:>8} {p95:>8}")
            if s["errors"]:
                listed = ", ".join(f"{kind} {n}" for kind, n in s["errors"].items())
                lines.append(f"{'':<14} errors on {replica}: {listed}")
    return lines


def format_stats(data: dict[str, Any]) -> str:
    if not data["requests"]:
        return "no requests recorded yet\n"
    header = (
        f"{'role':<10} {'tier':<14} {'calls':>5} {'p50 ms':>8} {'p95 ms':>8} {'tokens':>8} {'cost $':>10} {'esc':>5}"
    )
    lines = [header, "-" * len(header)]

    def row(role: str, tier: str, s: dict[str, Any]) -> str:
        tokens = s["prompt_tokens"] + s["completion_tokens"]
        p50 = "-" if s["latency_p50_ms"] is None else f"{s['latency_p50_ms']:.0f}"
        p95 = "-" if s["latency_p95_ms"] is None else f"{s['latency_p95_ms']:.0f}"
        return (
            f"{role:<10} {tier:<14} {s['calls']:>5} {p50:>8} {p95:>8} {tokens:>8} "
            f"{s['cost_usd']:>10.6f} {s['escalation_rate']:>5.0%}"
        )

    for role, summary in data["roles"].items():
        lines.append(row(role, "(all)", summary))
        for tier, tier_summary in summary["tiers"].items():
            lines.append(row("", tier, tier_summary))
        for tier, kinds in summary["errors"].items():
            listed = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
            lines.append(f"{'':<10} errors on {tier}: {listed}")
    hits = sum(s["cache_hits"] for s in data["roles"].values())
    semantic = sum(s.get("semantic_hits", 0) for s in data["roles"].values())
    lines.append(f"{data['requests']} requests; cache hits: {hits} ({semantic} semantic)")
    lines += _format_replicas(data.get("replicas") or {})
    return "\n".join(lines) + "\n"
