"""`tinyarms route` and `tinyarms router fit | eval`: the semantic router on its own,
loaded directly (a router that cannot load is an error here, not a fallback: these
commands exist to look at it)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tinyarms.cli.common import WORKSPACE, Subparsers, arg, command, flag, group, load_or_exit, prepare_router

if TYPE_CHECKING:
    from tinyarms.router import Router


def register(sub: Subparsers) -> None:
    command(
        sub, "route", "route a request: which route, role and tier, and why", cmd_route,
        arg("text", nargs="*", help="the request; none: one request per line on stdin, JSON out"),
        flag("--json", "print the decision as JSON"), WORKSPACE,
    )  # fmt: skip
    router = group(sub, "router", "fit or evaluate the router on labelled requests")
    command(
        router, "fit", "fit per-route thresholds on label<TAB>text lines; writes TOML", cmd_fit,
        arg("file"), arg("--out", metavar="FILE", help="write the thresholds here (default: stdout)"),
        arg("--min-oos-recall", type=float, default=0.9, metavar="X", help="out-of-scope recall floor"), WORKSPACE,
    )  # fmt: skip
    command(
        router, "eval", "accuracy, macro-F1, OOS recall, confusion, latency", cmd_eval,
        arg("file"), flag("--json", "JSON"), WORKSPACE,
    )  # fmt: skip


def _load_router(args: argparse.Namespace) -> Router:
    from tinyarms.router import load_router

    config = load_or_exit(args).config
    prepare_router(config, args)
    return load_router(config)


def cmd_route(args: argparse.Namespace) -> int:
    router = _load_router(args)

    def show(text: str, as_json: bool) -> None:
        start = time.perf_counter()
        try:
            decision = router.route(text).to_dict()
        except ValueError as exc:
            decision = {"error": str(exc)}
        decision["elapsed_ms"] = round((time.perf_counter() - start) * 1000, 3)
        if as_json:
            print(json.dumps(decision), flush=True)
        else:
            print(f"{decision.get('route') or '(none)'} -> {decision.get('role')} on {decision.get('tier')}"
                  f" [{decision.get('stage')}, score {decision.get('score')}] {decision.get('reason')}")  # fmt: skip

    if args.text:
        show(" ".join(args.text), args.json)
        return 0
    for line in sys.stdin:  # one query per line, one JSON decision per line, in order
        show(line.rstrip("\n"), True)
    return 0


def _labelled(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The labelled rows of `args.file`, or exit 2 with what is wrong with it."""
    from tinyarms.router.fit import LabelledFileError, load_labelled

    try:
        return load_labelled(Path(args.file))
    except LabelledFileError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def cmd_fit(args: argparse.Namespace) -> int:
    from tinyarms.router.fit import fit, thresholds_toml

    rows = _labelled(args)
    router = _load_router(args)
    result = fit(router, rows, args.min_oos_recall)
    for name, figures in (("before", result.before), ("after", result.after)):
        print(f"{name}: accuracy {figures['accuracy']}, macro-F1 {figures['macro_f1']}, "
              f"OOS recall {figures['oos_recall']} (n={figures['n']})", file=sys.stderr)  # fmt: skip
    text = thresholds_toml(result, args.file)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"thresholds written to {args.out}", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from tinyarms.router.fit import evaluate

    rows = _labelled(args)
    router = _load_router(args)
    report = evaluate(router, rows)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"n={report['n']}  accuracy {report['accuracy']}  macro-F1 {report['macro_f1']}  "
          f"OOS recall {report['oos_recall']}  latency p50 {report['latency_ms']['p50']} ms "
          f"p95 {report['latency_ms']['p95']} ms  stages {report['stages']}")  # fmt: skip
    names = list(report["confusion"])
    width = max(len(n) for n in names) + 1
    print("confusion (rows: gold, columns: predicted)")
    print(" " * width + " ".join(f"{n[:8]:>8}" for n in names))
    for gold in names:
        print(f"{gold:<{width}}" + " ".join(f"{report['confusion'][gold][p]:>8}" for p in names))
    return 0
