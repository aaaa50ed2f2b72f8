"""`tinyarms stats` and `tinyarms cache clear`: what the tier chain recorded (the decision
trace) and kept (the response cache), and what editors did with completions (acceptance
per model and source, autocomplete/feedback.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tinyarms.cli.common import Subparsers, arg, command, flag, group


def register(sub: Subparsers) -> None:
    command(
        sub, "stats", "calls, latency, tokens, cost and errors per role and tier; autocomplete acceptance", cmd_stats,
        arg("--since", metavar="DURATION", help="only the last DURATION, e.g. 7d, 12h, 30m"), flag("--json", "JSON"),
        arg("--plot", metavar="FILE.png", help="draw spend, share, latency and rates per tier as a PNG"),
        arg("--html", metavar="FILE", help="the same chart and its numbers as one HTML page"),
    )  # fmt: skip
    command(group(sub, "cache", "the response cache"), "clear", "remove every cached answer", cmd_cache_clear)


def cmd_stats(args: argparse.Namespace) -> int:
    from tinyarms.autocomplete import feedback
    from tinyarms.tiers import trace

    try:
        since = trace.parse_duration(args.since) if args.since else None
    except ValueError as exc:
        print(f"tinyarms: {exc}", file=sys.stderr)
        return 2
    records = list(trace.read(since_s=since))
    if args.plot or args.html:
        return _charts(records, args.plot, args.html)
    summary = trace.stats(records)
    accepted = feedback.stats(feedback.read(since_s=since))
    if args.json:
        print(json.dumps({**summary, "autocomplete": accepted}, indent=2))
    else:
        sys.stdout.write(trace.format_stats(summary))
        sys.stdout.write("\nautocomplete acceptance, per model and source\n" + feedback.format_stats(accepted))
    return 0


def _charts(records: list[dict[str, Any]], plot: str | None, page: str | None) -> int:
    """`--plot` / `--html`: the trace as a chart (tiers/chart.py); nothing written for an empty trace."""
    from tinyarms.tiers import chart

    if not records:
        print("tinyarms stats: no requests in the decision trace yet; nothing plotted", file=sys.stderr)
        return 1
    try:
        if plot:
            chart.write_png(records, Path(plot))
            print(f"wrote {plot} ({len(records)} requests)")
        if page:
            chart.write_html(records, Path(page))
            print(f"wrote {page} ({len(records)} requests)")
    except OSError as exc:
        print(f"tinyarms stats: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_cache_clear(args: argparse.Namespace) -> int:
    from tinyarms.tiers.cache import ResponseCache

    store = ResponseCache()
    removed = store.clear()
    print(f"removed {removed} cached answer{'s' if removed != 1 else ''} from {store.path}")
    return 0
