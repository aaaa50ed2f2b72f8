"""`tinyarms stats --plot FILE.png` / `--html FILE`: the decision trace as a chart.

Four panels, from the same records `tinyarms stats` reads: spend per day and tier (each
step's cost on the tier that spent it), the share of requests each tier answered,
latency p50/p95 per tier (each attempt that answered, escalated ones included, so a
cheap tier that escalates still shows its speed), and per role the escalation and
cache-hit rates. matplotlib's Agg canvas draws it off-screen (no display,
no pyplot state); the HTML page embeds the same PNG and the numbers behind it, so it is
one self-contained file (the VS Code command opens it in a webview).
"""

from __future__ import annotations

import base64
import datetime
import html
import io
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from attrs import define, field

from tinyarms.tiers.trace import _pct


@define
class ChartData:
    days: list[str] = field(factory=list)
    spend: dict[str, dict[str, float]] = field(factory=dict)  # tier -> day -> USD
    answered: Counter[str] = field(factory=Counter)  # tier -> requests it answered ("(failed)": none did)
    latency: dict[str, tuple[float | None, float | None, int]] = field(factory=dict)  # tier -> p50, p95, n
    rates: dict[str, tuple[float, float, int]] = field(factory=dict)  # role -> escalation, cache hit, n
    requests: int = 0


def summarise(records: list[dict[str, Any]]) -> ChartData:
    data = ChartData(requests=len(records))
    spend: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    latencies: dict[str, list[float]] = defaultdict(list)
    by_role: dict[str, list[dict[str, Any]]] = defaultdict(list)
    days: set[str] = set()
    for record in records:
        day = datetime.datetime.fromtimestamp(float(record.get("ts", 0))).date().isoformat()
        days.add(day)
        tier = str(record.get("tier") or "(failed)")
        data.answered[tier] += 1
        for step in record.get("steps", []):
            if step.get("outcome") in ("ok", "escalated") and step.get("latency_ms") is not None:
                latencies[str(step.get("tier"))].append(float(step["latency_ms"]))
        steps = [s for s in record.get("steps", []) if s.get("cost_usd")]
        for step in steps:
            spend[str(step.get("tier"))][day] += float(step["cost_usd"])
        if not steps and record.get("cost_usd"):
            spend[tier][day] += float(record["cost_usd"])
        by_role[str(record.get("role"))].append(record)
    data.days = sorted(days)
    data.spend = {tier: dict(per_day) for tier, per_day in sorted(spend.items())}
    data.latency = {tier: (_pct(v, 50), _pct(v, 95), len(v)) for tier, v in sorted(latencies.items())}
    for role, items in sorted(by_role.items()):
        escalated = sum(1 for r in items if r.get("escalations"))
        hits = sum(1 for r in items if str(r.get("cache", "")).endswith("hit"))
        data.rates[role] = (escalated / len(items), hits / len(items), len(items))
    return data


def draw(data: ChartData, title: str = "tinyarms") -> bytes:
    """The four panels as PNG bytes."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 8), dpi=100, layout="constrained")
    figure.suptitle(f"{title}: {data.requests} requests, {data.days[0]} to {data.days[-1]}" if data.days else title)
    spend_ax, share_ax, latency_ax, rates_ax = figure.subplots(2, 2).flatten()

    bottom = [0.0] * len(data.days)
    for tier, per_day in data.spend.items():
        values = [per_day.get(day, 0.0) for day in data.days]
        spend_ax.bar(data.days, values, bottom=bottom, label=tier)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    spend_ax.set_title("spend per day and tier (USD)")
    spend_ax.set_ylabel("USD")
    if data.spend:
        spend_ax.legend(fontsize="small")
    else:
        spend_ax.text(0.5, 0.5, "nothing spent", ha="center", va="center", transform=spend_ax.transAxes)
    spend_ax.tick_params(axis="x", labelrotation=30)

    tiers = [tier for tier, _ in data.answered.most_common()]
    shares = [100 * data.answered[t] / max(data.requests, 1) for t in tiers]
    bars = share_ax.barh(tiers, shares, color="tab:green")
    share_ax.bar_label(bars, labels=[f"{s:.0f}% ({data.answered[t]})" for s, t in zip(shares, tiers, strict=True)])
    share_ax.set_title("share of requests answered per tier")
    share_ax.set_xlabel("% of requests")
    share_ax.set_xlim(0, 115)
    share_ax.invert_yaxis()

    names = list(data.latency)
    positions = list(range(len(names)))
    p50 = [data.latency[n][0] or 0.0 for n in names]
    p95 = [data.latency[n][1] or 0.0 for n in names]
    latency_ax.bar([p - 0.2 for p in positions], p50, width=0.4, label="p50")
    latency_ax.bar([p + 0.2 for p in positions], p95, width=0.4, label="p95")
    latency_ax.set_xticks(positions, [f"{n}\n(n={data.latency[n][2]})" for n in names])
    latency_ax.set_title("latency per tier: attempts that answered (ms)")
    latency_ax.set_ylabel("ms")
    latency_ax.legend(fontsize="small")

    roles = list(data.rates)
    positions = list(range(len(roles)))
    escalation = [100 * data.rates[r][0] for r in roles]
    cache = [100 * data.rates[r][1] for r in roles]
    rates_ax.bar([p - 0.2 for p in positions], escalation, width=0.4, label="escalated", color="tab:orange")
    rates_ax.bar([p + 0.2 for p in positions], cache, width=0.4, label="cache hit", color="tab:purple")
    rates_ax.set_xticks(positions, [f"{r}\n(n={data.rates[r][2]})" for r in roles])
    rates_ax.set_ylim(0, 105)
    rates_ax.set_title("escalation and cache-hit rates per role (%)")
    rates_ax.legend(fontsize="small")

    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def write_png(records: list[dict[str, Any]], path: Path) -> ChartData:
    data = summarise(records)
    path.write_bytes(draw(data))
    return data


def write_html(records: list[dict[str, Any]], path: Path) -> ChartData:
    """One self-contained page: the chart (inline PNG) and the numbers behind it."""
    data = summarise(records)
    png = base64.b64encode(draw(data)).decode()
    rows = "".join(
        f"<tr><td>{html.escape(t)}</td><td>{data.answered[t]}</td><td>{_ms(data.latency.get(t, (None,))[0])}</td>"
        f"<td>{_ms(data.latency.get(t, (None, None))[1])}</td>"
        f"<td>{sum(data.spend.get(t, {}).values()):.6f}</td></tr>"
        for t, _ in data.answered.most_common()
    )
    roles = "".join(
        f"<tr><td>{html.escape(r)}</td><td>{n}</td><td>{e:.0%}</td><td>{c:.0%}</td></tr>"
        for r, (e, c, n) in data.rates.items()
    )
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>tinyarms stats</title>"
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #8888;padding:.2em .6em;text-align:right}td:first-child{text-align:left}"
        "img{max-width:100%}</style></head><body>"
        f"<h1>tinyarms: decision trace and stats</h1><p>{data.requests} requests</p>"
        f"<img alt='spend, share, latency and rates per tier' src='data:image/png;base64,{png}'>"
        "<h2>per tier (the tier that answered)</h2><table><tr><th>tier</th><th>requests</th><th>p50 ms</th>"
        f"<th>p95 ms</th><th>spend USD</th></tr>{rows}</table>"
        "<h2>per role</h2><table><tr><th>role</th><th>requests</th><th>escalated</th><th>cache hits</th></tr>"
        f"{roles}</table></body></html>\n",
        encoding="utf-8",
    )
    return data


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
