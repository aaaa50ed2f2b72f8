"""`tinyarms route` and `tinyarms router fit | eval | calibrate`: the semantic router on its own,
loaded directly (a router that cannot load is an error here, not a fallback: these
commands exist to look at it). `calibrate` and `fit --from-log` write what they computed
into the user file (config/edit.py keeps its comments)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinyarms.cli.common import WORKSPACE, Subparsers, arg, command, flag, group, inputs, load_or_exit, prepare_router

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
        router, "fit",
        "fit per-route thresholds on label<TAB>text lines (writes TOML), or --from-log: learn from your traffic",
        cmd_fit,
        arg("file", nargs="?", help="labelled requests (not with --from-log)"),
        arg("--out", metavar="FILE", help="write the thresholds here (default: stdout)"),
        arg("--min-oos-recall", type=float, default=0.9, metavar="X", help="out-of-scope recall floor"),
        flag("--from-log", "refit on your route corrections and the trace's outcomes; writes the user file"),
        arg("--since", metavar="AGE", default="30d", help="with --from-log: how far back (default 30d)"),
        arg("--heldout", nargs="*", metavar="FILE", help="held-out sets to check against (default: the shipped ones)"),
        flag("--force", "write a --from-log fit even if held-out accuracy drops by more than a point"),
        flag("--dry-run", "print what would be written, write nothing"), WORKSPACE,
    )  # fmt: skip
    command(
        router, "calibrate", "the difficulty threshold that sends a share of a role's requests to its strong tier",
        cmd_calibrate,
        arg("--role", required=True, choices=["chat", "edit"]),
        arg("--strong-share", type=float, required=True, metavar="X", help="e.g. 0.2: the hardest 20%%"),
        arg("--since", metavar="AGE", default="30d", help="logged traffic this recent (default 30d)"),
        flag("--dry-run", "print the result, write nothing"), flag("--json", "JSON"), WORKSPACE,
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


def _labelled(args: argparse.Namespace, file: str | None = None) -> list[tuple[str, str]]:
    """The labelled rows of `file` (default `args.file`), or exit 2 with what is wrong with it."""
    from tinyarms.router.fit import LabelledFileError, load_labelled

    try:
        return load_labelled(Path(file or args.file))
    except LabelledFileError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def _since(args: argparse.Namespace) -> float:
    from tinyarms.tiers import trace

    try:
        return trace.parse_duration(args.since)
    except ValueError as exc:
        print(f"tinyarms: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _user_file(args: argparse.Namespace) -> Path:
    from tinyarms.config.layers import user_config_file

    return inputs(args).user_file or user_config_file()


def _write(path: Path, updates: dict[tuple[str, ...], Any], dry_run: bool) -> int:
    import tomlkit

    from tinyarms.config.edit import ConfigEditError, set_keys

    for keys, value in updates.items():
        shown = tomlkit.item(value).as_string() if not isinstance(value, dict) else json.dumps(value)
        print(f"  {'.'.join(keys)} = {shown[:200]}")
    if dry_run:
        print("(dry run: nothing written)")
        return 0
    try:
        set_keys(path, updates)
    except ConfigEditError as exc:
        print(f"tinyarms: {exc}", file=sys.stderr)
        return 1
    print(f"written to {path}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from tinyarms.backends import Usage
    from tinyarms.router.calibrate import CalibrationError, calibrate, format_calibration
    from tinyarms.tiers import costs, trace

    loaded = load_or_exit(args)
    config = loaded.config
    role = config.roles.get(args.role)
    strong_tier = role.strong()
    if strong_tier is None:
        print(f"tinyarms: roles.{args.role} has no stronger tier (set escalate_to or strong_tier)", file=sys.stderr)
        return 1

    def price(tier: str, prompt: int, completion: int) -> float:
        return costs.cost(config.tiers[tier], Usage(prompt_tokens=prompt, completion_tokens=completion)).usd

    records = list(trace.read(since_s=_since(args)))
    try:
        result = calibrate(
            records, role=args.role, share=args.strong_share, weights=config.router.difficulty,
            cheap_tier=role.tier, strong_tier=strong_tier, current_threshold=role.strong_threshold, price=price,
        )  # fmt: skip
    except CalibrationError as exc:
        print(f"tinyarms router calibrate: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_calibration(result))
    updates: dict[tuple[str, ...], Any] = {
        ("roles", args.role, "strong_share"): args.strong_share,
        ("roles", args.role, "strong_threshold"): result.threshold,
    }
    return _write(_user_file(args), updates, args.dry_run)


def _fit_from_log(args: argparse.Namespace) -> int:
    from tinyarms.router import corrections, learn
    from tinyarms.tiers import trace

    loaded = load_or_exit(args)
    since = _since(args)
    sets = {Path(f).name: _labelled(args, f) for f in args.heldout} if args.heldout else learn.heldout_sets()
    if not sets and not args.force:
        print("tinyarms router fit --from-log: no held-out sets to check a fit against; "
              "name some with --heldout FILE (label<TAB>text), or --force", file=sys.stderr)  # fmt: skip
        return 1
    router = _load_router(args)
    if router.encoder is None:
        print("tinyarms router fit --from-log: the router is off (router.enabled = false)", file=sys.stderr)
        return 1
    fixed = list(corrections.read(since_s=since))
    records = list(trace.read(since_s=since))
    result = learn.learn(
        loaded.config, router.encoder, fixed, records, sets, force=args.force, multilingual=router.multilingual
    )
    print(f"route corrections: {result.corrections} ({sum(len(v) for v in result.added.values())} new examples)")
    print(f"  corrected requests routed as corrected: {result.corrected_routed['before']} before, "
          f"{result.corrected_routed['after']} after")  # fmt: skip
    for name in sets:
        print(f"  held-out {name}: accuracy {result.before[name]:.4f} before, {result.after[name]:.4f} after")
    report = result.difficulty_report
    kept = f"; {report['kept']}" if "kept" in report else ""
    print(f"difficulty: {report['labelled_requests']} labelled requests{kept}")
    if "log_loss_last_fifth" in report:
        losses = report["log_loss_last_fifth"]
        print(f"  log-loss on the last fifth: {losses['current']} current, {losses['fitted_on_the_rest']} fitted")
    if result.refused is not None:
        print(f"refused: {result.refused}", file=sys.stderr)
        return 1
    updates = result.updates()
    if not updates:
        print("nothing to write")
        return 0
    return _write(_user_file(args), updates, args.dry_run)


def cmd_fit(args: argparse.Namespace) -> int:
    from tinyarms.router.fit import fit, thresholds_toml

    if args.from_log:
        return _fit_from_log(args)
    if not args.file:
        print("tinyarms router fit: give a labelled file, or --from-log", file=sys.stderr)
        return 2
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
