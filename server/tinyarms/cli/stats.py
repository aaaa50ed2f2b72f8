"""`tinyarms stats` and `tinyarms cache clear`: what the tier chain recorded (the decision
trace) and kept (the response cache), and what editors did with completions (acceptance
per model and source, autocomplete/feedback.py)."""

from __future__ import annotations

import argparse
import json
import sys

from tinyarms.cli.common import Subparsers, arg, command, flag, group


def register(sub: Subparsers) -> None:
    command(
        sub, "stats", "calls, latency, tokens, cost and errors per role and tier; autocomplete acceptance", cmd_stats,
        arg("--since", metavar="DURATION", help="only the last DURATION, e.g. 7d, 12h, 30m"), flag("--json", "JSON"),
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
    summary = trace.stats(list(trace.read(since_s=since)))
    accepted = feedback.stats(feedback.read(since_s=since))
    if args.json:
        print(json.dumps({**summary, "autocomplete": accepted}, indent=2))
    else:
        sys.stdout.write(trace.format_stats(summary))
        sys.stdout.write("\nautocomplete acceptance, per model and source\n" + feedback.format_stats(accepted))
    return 0


def cmd_cache_clear(args: argparse.Namespace) -> int:
    from tinyarms.tiers.cache import ResponseCache

    store = ResponseCache()
    removed = store.clear()
    print(f"removed {removed} cached answer{'s' if removed != 1 else ''} from {store.path}")
    return 0
